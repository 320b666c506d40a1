"""Soak: 100 firmware updates in a row on one device, alternating push and pull, through links
that lose 10 % of the datagrams each way (issue 7). Prints what each update cost and whether
tasks, sockets and memory stay bounded.

Run it with ``.venv/bin/python benchmarks/soak.py`` (about two minutes; ``--updates``,
``--loss``, ``--seed`` change the run). The scenario is the one ``tests/test_failures.py`` runs
in short (``soak``): a ``Server``, an ``EmulatedDevice`` that reaches it through a
``netem.Link``, and a ``PackageHost`` it pulls from through a second link; every update is an
8 KiB package, ends Idle with Update Result 1, and is checked by reading /5/0/3, /5/0/5 and
/3/0/3. CoAP retransmits after 0.1-0.15 s (not RFC 7252's 2-3 s, meant for radio links) and up
to 8 times.

Columns: ``tasks`` (asyncio), ``fds`` (open file descriptors, minus the links' per-client
upstream sockets, which grow by one per device reboot up to the link's ``max_clients``), traced
Python memory (tracemalloc) and the process RSS (/proc/self/statm). Memory grows while the run
goes on mostly because aiocoap keeps each message it received, with its answer, for
EXCHANGE_LIFETIME (247 s) to recognise duplicates; the last lines show what is left once the
event loop has closed, compared with the state after a first, 2-update run that warmed up
lazy imports and caches (RSS shows what the process holds; Python rarely returns freed memory
to the system, so RSS stays at its peak).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import pathlib
import sys
import time
import tracemalloc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from aiocoap.numbers.constants import TransportTuning

from tests.test_failures import soak


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mib(n: float) -> str:
    return f"{n / 2**20:7.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    TransportTuning.ACK_TIMEOUT = 0.1
    TransportTuning.MAX_RETRANSMIT = 8

    tracemalloc.start()
    asyncio.run(soak(2, first=1000))  # first use: lazy imports, codec and model caches
    gc.collect()
    start_traced, start_rss = tracemalloc.get_traced_memory()[0], rss()
    began = last = time.monotonic()
    rows: list[tuple] = []
    dropped = [0, 0]

    def on_update(number, outcome, usage, links) -> None:
        nonlocal last
        now = time.monotonic()
        rows.append((number, outcome.mode, now - last, usage, rss()))
        dropped[:] = [
            sum(link.stats.up.dropped + link.stats.down.dropped for link in links),
            sum(link.stats.up.received + link.stats.down.received for link in links),
        ]
        last = now
        if number == 1 or number % 10 == 0:
            print(
                f"update {number:3d} {outcome.mode:9s} {now - began:6.1f} s  "
                f"tasks {usage.tasks:2d}  fds {usage.own_descriptors:2d} "
                f"(+{usage.link_sockets} link)  traced {mib(usage.traced)}  RSS {mib(rss())}",
                flush=True,
            )

    print(f"{args.updates} updates, loss {args.loss:.0%} each way, seed {args.seed}")
    asyncio.run(soak(args.updates, loss=args.loss, seed=args.seed, on_update=on_update))
    gc.collect()
    end_traced, end_rss = tracemalloc.get_traced_memory()[0], rss()
    tracemalloc.stop()

    times = sorted(row[2] for row in rows)
    tasks = {row[3].tasks for row in rows}
    fds = {row[3].own_descriptors for row in rows}
    print()
    took = time.monotonic() - began
    print(f"all {len(rows)} updates ended Idle with Update Result 1 in {took:.1f} s")
    print(f"per update: median {times[len(times) // 2]:.2f} s, slowest {times[-1]:.2f} s")
    print(
        f"datagrams through the links: {dropped[1]}, dropped {dropped[0]} "
        f"({dropped[0] / max(dropped[1], 1):.1%})"
    )
    print(f"tasks after each update: {sorted(tasks)}; fds: {sorted(fds)}")
    settled = min(10, len(rows))  # the first updates still fill caches: count from the 10th
    growth = (rows[-1][3].traced - rows[settled - 1][3].traced) / max(len(rows) - settled, 1)
    print(f"traced memory from update {settled} to {len(rows)}: {growth / 1024:.1f} KiB per update")
    print(
        f"after the event loop closed: traced {mib(end_traced - start_traced)} more than "
        f"before the run, RSS {mib(end_rss - start_rss)} more"
    )


if __name__ == "__main__":
    main()
