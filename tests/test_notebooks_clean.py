"""The committed notebooks are clean: outputs only where nbval checks them, nothing stale.

A participant opens them fresh; nbval compares the ``# NBVAL_CHECK_OUTPUT`` cells. Anything
else stored in the files would be stale, machine-specific or noise in every diff.
``scripts/refresh_notebooks.py`` brings a notebook into this shape.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").rglob("*.ipynb"))
NOTEBOOKS = [n for n in NOTEBOOKS if ".ipynb_checkpoints" not in n.parts]
CHECK = "# NBVAL_CHECK_OUTPUT"
MACHINE_PATH = re.compile(r"/(work|home|root|tmp|Users)/[A-Za-z]")


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


ids = [str(n.relative_to(n.parents[1])) for n in NOTEBOOKS]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_only_checked_cells_keep_outputs(notebook):
    for cell in cells(notebook):
        if cell["cell_type"] != "code":
            continue
        checked = source(cell).lstrip().startswith(CHECK)
        if checked:
            assert cell["outputs"] and cell["execution_count"], source(cell)[:80]
        else:
            assert not cell["outputs"] and cell["execution_count"] is None, source(cell)[:80]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_every_notebook_has_checked_cells(notebook):
    assert any(source(c).lstrip().startswith(CHECK) for c in cells(notebook))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_no_errors_widget_state_or_machine_paths(notebook):
    text = notebook.read_text()
    data = json.loads(text)
    assert "widgets" not in data["metadata"]
    assert data["metadata"]["kernelspec"]["name"] == "python3"
    assert '"output_type": "error"' not in text
    assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=ids)
def test_each_notebook_opens_with_its_learning_goals_and_time(notebook):
    first = cells(notebook)[0]
    assert first["cell_type"] == "markdown"
    text = source(first)
    assert "Learning goals" in text and "minutes" in text
