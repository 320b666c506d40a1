"""Execute notebooks and keep only the outputs nbval checks.

    .venv/bin/python scripts/refresh_notebooks.py notebooks/01-lwm2m-in-a-nutshell.ipynb ...

Each notebook runs top to bottom in its own folder (as JupyterLab runs it). Cells whose first
line is ``# NBVAL_CHECK_OUTPUT`` keep their outputs and execution count: those are the teaching
cells nbval compares in ``make test``. Every other cell is cleared, and widget state is dropped,
so the repository never holds stale outputs or machine-specific paths.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHECK = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    ).execute()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if not cell.source.lstrip().startswith(CHECK):
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3", "language": "python", "name": "python3",
    }  # fmt: skip
    nbformat.write(notebook, path)
    print(f"refreshed {path}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for name in sys.argv[1:]:
        refresh(Path(name))
