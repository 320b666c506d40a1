"""How long each notebook takes to run top to bottom, against the 20 s budget of a notebook.

Run it with ``.venv/bin/python benchmarks/notebooks.py`` (or ``make bench``). Every
``notebooks/*.ipynb`` and ``notebooks/solutions/*.ipynb`` is executed with nbclient, in its own
folder (as JupyterLab and nbval run it), with this virtualenv's ``python3`` kernel; nothing is
written back. Per notebook the table shows:

* ``kernel s`` — starting the kernel (the same for every notebook: not the notebook's doing);
* ``cells s`` — executing the cells, the figure the 20 s budget is about ("Run All" after the
  kernel is up);
* ``total s`` — both, as ``jupyter nbconvert --execute`` would take.

Each notebook runs ``--repeat`` times (default 1: the suite takes a minute or so); with more,
the median is shown. A notebook that raises is reported with its error, and counts as over
budget.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUDGET_S = 20.0  # DESIGN.md: each notebook runs top to bottom offline in under 20 s
CELL_TIMEOUT = 120  # as make notebooks (nbval) gives each cell


def run_once(path: Path) -> tuple[float, float, str | None]:
    """Execute ``path`` in its folder: (kernel start-up s, cells s, error or None)."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    error = None
    # The kernel's own stderr (ipykernel warns about TCP on every start) is kept aside and
    # shown only when the notebook fails.
    with tempfile.TemporaryFile("w+") as kernel_log:
        started = time.perf_counter()
        with client.setup_kernel(cwd=str(path.parent), stderr=kernel_log):
            up = time.perf_counter()
            try:
                for index, cell in enumerate(notebook.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError as exc:
                error = str(exc).strip().splitlines()[-1][:200]
            cells = time.perf_counter() - up
        if error is not None:
            kernel_log.seek(0)
            print(kernel_log.read()[-2000:], file=sys.stderr)
    return up - started, cells, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per notebook (default 1)")
    parser.add_argument("notebooks", nargs="*", type=Path, help="only these notebooks")
    options = parser.parse_args(argv)
    paths = [path.resolve() for path in options.notebooks] or [
        *sorted(NOTEBOOKS.glob("*.ipynb")),
        *sorted((NOTEBOOKS / "solutions").glob("*.ipynb")),
    ]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, load average {os.getloadavg()[0]:.2f} at the start\n"
        f"Python {platform.python_version()}, nbclient {importlib.metadata.version('nbclient')}, "
        f"ipykernel {importlib.metadata.version('ipykernel')}; {options.repeat} run(s) each, "
        f"budget {BUDGET_S:.0f} s for the cells\n"
    )
    started = time.perf_counter()
    rows = []
    for path in paths:
        kernel, cells, errors = [], [], []
        for _ in range(options.repeat):
            k, c, e = run_once(path)
            kernel.append(k)
            cells.append(c)
            if e:
                errors.append(e)
        rows.append((path, statistics.median(kernel), statistics.median(cells), errors))
        print(f"  ran {path.relative_to(ROOT)}: {statistics.median(cells):.1f} s", flush=True)

    print(
        f"\n  {'notebook':52} {'kernel s':>8} {'cells s':>8} {'total s':>8} "
        f"{'cells/budget':>12}  within {BUDGET_S:.0f} s"
    )
    over = 0
    for path, kernel, cells, errors in rows:
        ok = cells <= BUDGET_S and not errors
        over += not ok
        verdict = "yes" if ok else ("FAILED: " + errors[0] if errors else "NO")
        print(
            f"  {path.relative_to(NOTEBOOKS)!s:52} {kernel:8.1f} {cells:8.1f} "
            f"{kernel + cells:8.1f} {cells / BUDGET_S:12.2f}  {verdict}"
        )
    total_cells = sum(r[2] for r in rows)
    print(
        f"  {'all ' + str(len(rows)) + ' notebooks':52} {'':8} {total_cells:8.1f}\n\n"
        f"{len(rows) - over} of {len(rows)} notebooks within the budget"
        f"\n(whole run: {time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
