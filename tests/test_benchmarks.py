"""The benchmarks still run and print their tables (``make bench``), at a tiny size.

Nothing here looks at a time: each script runs as a user runs it, in a subprocess, and the test
checks that it ends well and prints the table it promises. The numbers are for ``make bench``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
LIBCOAP = ("coap-client-notls", "coap-server-notls")


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_every_benchmark_has_a_smoke_test_here():
    scripts = {path.name for path in BENCHMARKS.glob("*.py")}
    tested = {"fleet.py", "notebooks.py", "pull_push.py", "soak.py", "windowed_pull.py"}
    assert scripts == tested


def test_the_fleet_benchmark_prints_its_table_and_the_targets():
    out = run("fleet.py", "--sizes", "2")
    assert "devices register s  update s" in out
    assert "2/2" in out  # both devices updated
    assert "not measured in this run" in out  # the 1000-device target needs --sizes 1000


def test_the_fleet_benchmark_runs_over_http_too():
    out = run("fleet.py", "--sizes", "2", "--via", "http", "--no-address-cache")
    assert "over HTTP (one GET)" in out and "as aiocoap ships it" in out
    assert "2/2" in out


@pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in LIBCOAP), reason="needs libcoap3-bin"
)
def test_the_pull_push_benchmark_prints_both_tables_with_every_contender():
    out = run("pull_push.py", "--repeat", "1", "--size", "16384")
    assert "(a) pull 16 KiB" in out and "(b) push" in out
    for row in ("ours, lock-step", "aiocoap GET", "ours, into emulated flash", "(no Site)"):
        assert row in out


def test_the_windowed_pull_benchmark_prints_a_ratio_per_round_trip_time():
    out = run("windowed_pull.py", "--size", "4096", "--repeat", "1")
    for rtt in ("0 ms", "50 ms", "200 ms"):
        assert rtt in out
    assert out.count("x\n") == 3


def test_the_soak_benchmark_runs_a_short_soak():
    out = run("soak.py", "--updates", "2")
    assert "all 2 updates ended Idle with Update Result 1" in out


def test_the_notebook_benchmark_times_a_notebook():
    notebook = BENCHMARKS.parent / "notebooks" / "07-write-your-own-handlers.ipynb"
    out = run("notebooks.py", str(notebook))
    assert "07-write-your-own-handlers.ipynb" in out and "1 of 1 notebooks within the budget" in out
