"""The sans-I/O core imports no network or event-loop library and never reads the wall clock.

Core modules take bytes and events in and give bytes and effects out; time comes in as a
parameter. That is what lets tests and notebooks step them with no network at all.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lwm2m_edu"
CORE = [
    "paths.py",
    "model.py",
    "codecs",
    "fota.py",
    "handlers.py",
    "flash.py",
    "package.py",
    "bootloader.py",
    "flash_handlers.py",
    "objects",
    "observe.py",
    "dm.py",
    "simulate.py",
]
FORBIDDEN_MODULES = {"aiocoap", "aiohttp", "asyncio", "socket", "selectors", "time"}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}


def core_files() -> list[Path]:
    files = []
    for name in CORE:
        target = PACKAGE / name
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return files


@pytest.mark.parametrize("source", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_imports_no_io_library(source):
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{source.name} imports {name}"


@pytest.mark.parametrize("source", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_never_reads_the_clock(source):
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_CALLS, (
                f"{source.name}:{node.lineno} calls .{node.func.attr}(); pass time in instead"
            )


def test_core_layer_is_listed_in_the_architecture_document():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for name in CORE:
        assert name.removesuffix(".py") in text
