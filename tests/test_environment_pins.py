"""pyproject.toml and environment.yml pin the same versions, so both install routes agree."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# conda-forge names that differ from the PyPI distribution names
CONDA_TO_PYPI = {"python-graphviz": "graphviz"}


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[match[1].lower()] = match[2]
    return pins


def environment_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        conda = re.fullmatch(r"- ([A-Za-z0-9_.-]+)=([^=\s]+)", line)
        pip = re.fullmatch(r"- ([A-Za-z0-9_.-]+)==(\S+)", line)
        for match in (conda, pip):
            if match:
                name = CONDA_TO_PYPI.get(match[1].lower(), match[1].lower())
                pins[name] = match[2]
    return pins


def test_every_pyproject_pin_appears_in_environment_yml_with_the_same_version():
    env = environment_pins()
    for name, version in pyproject_pins().items():
        assert env.get(name) == version, (
            f"{name}: pyproject {version}, environment.yml {env.get(name)}"
        )


def test_environment_yml_pins_nothing_pyproject_does_not():
    extra = set(environment_pins()) - set(pyproject_pins()) - {"python"}
    assert not extra, f"environment.yml pins {sorted(extra)} that pyproject.toml does not"


def test_environment_yml_brings_the_dot_program_and_installs_the_package():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*- graphviz\b", text, re.M), "conda's graphviz package provides `dot`"
    assert "- -e ." in text
    assert "conda-forge" in text


def test_python_version_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert environment_pins()["python"] == "3.11"
