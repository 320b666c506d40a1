"""A fleet of emulated devices on one server, in one process, updated by pull: how it scales.

Run it with ``.venv/bin/python benchmarks/fleet.py`` (or ``make bench``); ``--quick`` for 10 and
100 devices only. For every fleet size N (default 10, 100 and 1000):

* N ``EmulatedDevice`` (nRF52840 internal flash profile, the factory image shared) register with
  one ``Server``, all in **one process** on one event loop; every device has its own UDP
  socket, as a real device has its own address;
* ``server.campaign(..., mode="pull", concurrency=C)`` updates all of them to a 64 KiB package
  that the server hosts once (CoAP Block2, 1024-byte blocks, lock-step; ``--via http``: one HTTP
  GET); each device downloads it into its emulated flash, is told to Update, reboots, installs
  and registers again.

Each fleet size runs in a **fresh child process** (``--one N``), so its memory high-water marks
are its own: ``ru_maxrss`` never goes down within a process, and a process that ran 1000 devices
would report that for every smaller size run after it. Measured per size: registration wall
time, update (campaign) wall time, CPU time of the process (``time.process_time``, user +
system), the ``tracemalloc`` peak of Python allocations, the RSS high-water mark
(``getrusage(RUSAGE_SELF).ru_maxrss``), the emulated flash the devices hold at the end (only
written sectors take memory: ``EmulatedFlash.resident_bytes``), the open file descriptors
(``/proc/self/fd``) with all devices registered, and how many devices were updated. Then how
each grows with N.

``tracemalloc`` slows Python down several times over, so it is off by default (the run then
judges the time target, and the RSS high-water mark the memory target); ``--tracemalloc``
adds the peak of Python's own allocations, and the table says which. Nothing is tuned or retried
behind the measurement's back: a device whose update fails is counted as failed and its error
is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import importlib.metadata
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
import tracemalloc

PACKAGE_SIZE = 64 * 1024
FLASH = "nrf52840-internal"
DEFAULT_SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
#: Devices updated at once. The whole fleet shares one event loop on one core, so more devices
#: at once do not go faster once the loop is busy: they only stretch every exchange (and risk
#: the timeouts). 32 keeps the loop busy without a long queue of ready callbacks.
DEFAULT_CONCURRENCY = 32
TARGET_SECONDS = 120.0  # issue 8: 1000 devices complete within 2 minutes ...
TARGET_BYTES = 2 * 1024**3  # ... and 2 GiB
TARGET_N = 1000
TEARDOWN_TIMEOUT = 60.0  # seconds for stopping every device and the server


# -- one fleet, in this process -------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def raise_fd_limit(needed: int) -> str:
    """Raise the soft RLIMIT_NOFILE toward the hard limit when ``needed`` fds may not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return f"fd limit {soft} (soft) / {hard} (hard): enough"
    new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    note = "" if new >= needed else f" -- still below the {needed} needed"
    return f"fd limit raised from {soft} to {new} (hard {hard}){note}"


async def run_fleet(
    n: int, concurrency: int, update_timeout: float, profile_to: str | None, via: str = "coap"
) -> dict[str, object]:
    from lwm2m_edu.device import EmulatedDevice, factory_package
    from lwm2m_edu.server import Server

    result: dict[str, object] = {"n": n, "concurrency": concurrency}
    fds_before = open_fds()
    server = await Server.start()
    factory = factory_package("1.0.0")  # one factory image for the whole fleet, as in a factory
    package = bytes(factory_package("1.1.0", size=PACKAGE_SIZE))
    devices = [EmulatedDevice(f"fleet-{i:04d}", flash=FLASH, firmware=factory) for i in range(n)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    registered = await asyncio.gather(
        *(device.start(server.uri) for device in devices), return_exceptions=True
    )
    result["register_s"] = time.perf_counter() - wall0
    result["register_cpu_s"] = time.process_time() - cpu0
    result["register_errors"] = [
        f"{d.endpoint}: {r!r}" for d, r in zip(devices, registered, strict=True) if r is not None
    ]
    result["registered"] = len(server.endpoints)
    result["fds"] = open_fds() - fds_before
    result["fds_total"] = open_fds()

    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu1, wall1 = time.process_time(), time.perf_counter()
    step = max(1, n // 10)

    def progress(done: int, total: int, outcome: object) -> None:
        if n >= 100 and (done % step == 0 or done == total):  # stderr: a long run is alive
            print(f"  N={n}: {done}/{total} devices done after "
                  f"{time.perf_counter() - wall1:.0f} s", file=sys.stderr, flush=True)  # fmt: skip

    report = await server.campaign(
        [d.endpoint for d in devices],
        package,
        mode="pull",
        via=via,
        concurrency=concurrency,
        progress=progress,
        timeout=update_timeout,
    )
    result["update_s"] = time.perf_counter() - wall1
    result["update_cpu_s"] = time.process_time() - cpu1
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_to)
    result["succeeded"] = len(report.succeeded)
    durations = sorted(o.duration for o in report.outcomes)
    result["device_median_s"] = durations[len(durations) // 2]
    result["device_max_s"] = durations[-1]
    result["failures"] = [
        str(o) for o in report.outcomes if not o.ok
    ]  # each with its steps: where it stopped
    result["cpu_s"] = time.process_time() - cpu0
    result["wall_s"] = time.perf_counter() - wall0
    result["flash_resident"] = sum(d.flash.resident_bytes for d in devices)
    wall2 = time.perf_counter()
    print(f"  N={n}: stopping the devices and the server", file=sys.stderr, flush=True)
    try:  # bounded: a teardown that hangs is a finding, reported, not a stuck benchmark
        async with asyncio.timeout(TEARDOWN_TIMEOUT):
            await asyncio.gather(*(d.stop() for d in devices), return_exceptions=True)
            await server.stop()
        result["teardown"] = f"{time.perf_counter() - wall2:.1f} s"
    except TimeoutError:
        stuck = [d.endpoint for d in devices if d.client is not None]
        result["teardown"] = (
            f"did not finish within {TEARDOWN_TIMEOUT:.0f} s; {len(stuck)} devices still had a "
            f"client: {stuck[:5]}"
        )
    return result


class GarbageCollectorClock:
    """Time spent in the cyclic garbage collector (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def child(n: int, options: argparse.Namespace) -> int:
    """Measure one fleet size in this (fresh) process; print the figures as JSON."""
    limit_note = raise_fd_limit(3 * n + 256)  # a socket per device, with room to spare
    from lwm2m_edu.coap import memoize_address_parsing

    memoize_address_parsing(options.address_cache)
    if options.tracemalloc:
        tracemalloc.start()
    gc.collect()
    rss_start = maxrss_bytes()
    collector = GarbageCollectorClock()
    gc.callbacks.append(collector)
    result = asyncio.run(
        run_fleet(n, options.concurrency, options.update_timeout, options.profile, options.via)
    )
    gc.callbacks.remove(collector)
    result["gc_s"] = collector.seconds
    result["fd_limit"] = limit_note
    result["rss_start"] = rss_start
    result["rss_peak"] = maxrss_bytes()
    result["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1] if options.tracemalloc else None
    print(json.dumps(result))
    return 0


# -- the parent: a child per size, then the table ----------------------------------------------


def measure(n: int, options: argparse.Namespace) -> dict[str, object]:
    args = [sys.executable, __file__, "--one", str(n), "--concurrency", str(options.concurrency)]
    args += ["--update-timeout", str(options.update_timeout), "--via", options.via]
    args += ["--tracemalloc"] if options.tracemalloc else []
    args += [] if options.address_cache else ["--no-address-cache"]
    if options.profile:
        args += ["--profile", f"{options.profile}.{n}"]
    done = subprocess.run(args, stdout=subprocess.PIPE, text=True)  # its stderr: progress
    if done.returncode != 0:
        return {"n": n, "crashed": f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(value: object) -> str:
    return "-" if value is None else f"{value / 1024**2:.0f}"


def table(results: list[dict[str, object]], tracemalloc_on: bool) -> str:
    head = (
        f"  {'devices':>7} {'register s':>10} {'update s':>9} {'CPU s':>7} {'CPU/wall':>8} "
        f"{'GC s':>6} "
        f"{'tracemalloc MiB':>15} {'RSS peak MiB':>12} {'flash MiB':>9} {'fds':>5} {'updated':>9} "
        f"{'median/max s per device':>23}"
    )
    lines = [head]
    for r in results:
        if "crashed" in r:
            lines.append(f"  {r['n']:>7} CRASHED ({r['crashed']})")
            continue
        per = f"{r['device_median_s']:.2f}/{r['device_max_s']:.2f}"
        lines.append(
            f"  {r['n']:>7} {r['register_s']:10.2f} {r['update_s']:9.2f} {r['cpu_s']:7.1f} "
            f"{r['cpu_s'] / r['wall_s']:8.2f} {r['gc_s']:6.1f} {mib(r['tracemalloc_peak']):>15} "
            f"{mib(r['rss_peak']):>12} {mib(r['flash_resident']):>9} {r['fds']:>5} "
            f"{r['succeeded']:>4}/{r['n']:<4} {per:>23}"
        )
    if tracemalloc_on:
        lines.append("  (times include tracemalloc's overhead; --no-tracemalloc to time without)")
    return "\n".join(lines)


def growth(results: list[dict[str, object]]) -> str:
    ok = {r["n"]: r for r in results if "crashed" not in r}
    rows = [
        ("registration wall time", "register_s"),
        ("update wall time", "update_s"),
        ("CPU time", "cpu_s"),
        ("garbage collector time", "gc_s"),
        ("tracemalloc peak", "tracemalloc_peak"),
        ("RSS peak", "rss_peak"),
        ("RSS peak above start-up", None),
        ("file descriptors", "fds"),
    ]
    pairs = [(a, b) for a, b in ((10, 100), (100, 1000)) if a in ok and b in ok]
    if not pairs:
        return ""
    lines = ["growth with N (a ratio of 10 = linear in N)"]
    lines.append(f"  {'':28}" + "".join(f" {f'{b}/{a}':>10}" for a, b in pairs))

    def value(r: dict[str, object], key: str | None) -> float | None:
        if key is None:
            return float(r["rss_peak"]) - float(r["rss_start"])
        return None if r[key] is None else float(r[key])

    for label, key in rows:
        cells = []
        for a, b in pairs:
            va, vb = value(ok[a], key), value(ok[b], key)
            cells.append(f"{vb / va:10.1f}" if va and vb is not None else f"{'-':>10}")
        lines.append(f"  {label:28}" + "".join(cells))
    return "\n".join(lines)


def targets(results: list[dict[str, object]]) -> str:
    big = next((r for r in results if r["n"] == TARGET_N), None)
    if big is None:
        return f"target (issue 8, {TARGET_N} devices): not measured in this run"
    if "crashed" in big:
        return (
            f"target (issue 8, {TARGET_N} devices): NOT MET -- the run crashed ({big['crashed']})"
        )
    wall = big["register_s"] + big["update_s"]
    memory = max(big["rss_peak"], big["tracemalloc_peak"] or 0)
    complete = big["succeeded"] == TARGET_N
    lines = [
        f"target (issue 8): {TARGET_N} devices complete within {TARGET_SECONDS:.0f} s and 2 GiB",
        f"  time   {wall:7.1f} s (registration + update)  "
        f"{'met' if wall <= TARGET_SECONDS else 'NOT MET'}",
        f"  memory {memory / 1024**3:7.2f} GiB (RSS high-water mark)      "
        f"{'met' if memory <= TARGET_BYTES else 'NOT MET'}",
        f"  all updated: {big['succeeded']}/{TARGET_N}  {'met' if complete else 'NOT MET'}",
    ]
    if big["tracemalloc_peak"] is not None:
        lines.append(
            "  (tracemalloc was on: it slows this run several times over; judge the time "
            "with --no-tracemalloc)"
        )
    return "\n".join(lines)


def machine() -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, load average {os.getloadavg()[0]:.2f} at the start\n"
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"aiocoap {importlib.metadata.version('aiocoap')}; fd limit {soft} soft / {hard} hard"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="fleet sizes, comma-separated (default 10,100,1000)",
    )
    parser.add_argument("--quick", action="store_true", help="only 10 and 100 devices")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"devices updated at once (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--update-timeout",
        type=float,
        default=120.0,
        help="seconds one device's update may take before it counts as failed "
        "(Server.update's default, 120)",
    )
    parser.add_argument(
        "--tracemalloc", action=argparse.BooleanOptionalAction, default=False,
        help="trace Python allocations for their peak (default off: it slows the run)",
    )  # fmt: skip
    parser.add_argument(
        "--via", choices=("coap", "http"), default="coap",
        help="how the devices pull the package (default coap: Block2, lock-step)",
    )  # fmt: skip
    parser.add_argument(
        "--address-cache", action=argparse.BooleanOptionalAction, default=True,
        help="lwm2m_edu.coap's memoized address parsing in aiocoap's udp6 (default on; "
        "--no-address-cache measures aiocoap as it ships)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", metavar="PREFIX", help="cProfile the update phase into PREFIX.N (pstats)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one fleet size
    options = parser.parse_args(argv)
    if options.one is not None:
        return child(options.one, options)

    sizes = QUICK_SIZES if options.quick else tuple(int(s) for s in options.sizes.split(","))
    print(machine())
    print(
        f"one Server and N EmulatedDevice ({FLASH}) in one process per N, each device its own "
        f"UDP socket;\npull campaign of a {PACKAGE_SIZE // 1024} KiB package over "
        + ("CoAP (Block2 1024 B, lock-step)" if options.via == "coap" else "HTTP (one GET)")
        + f", concurrency {options.concurrency}, on 127.0.0.1; "
        f"address parsing {'memoized' if options.address_cache else 'as aiocoap ships it'}\n"
    )
    started = time.perf_counter()
    results = []
    for n in sizes:
        result = measure(n, options)
        results.append(result)
        if "crashed" in result:
            print(f"N={n}: the child process crashed ({result['crashed']}): its traceback is above")
        elif result["register_errors"] or result["failures"]:
            print(f"N={n}: {len(result['register_errors'])} registrations and "
                  f"{len(result['failures'])} updates failed:")  # fmt: skip
            for line in result["register_errors"][:5]:
                print(f"  {line}")
            kinds = collections.Counter(
                re.sub(r"'fleet-\d+'", "'…'", text.splitlines()[0].split(" — ", 1)[-1])
                for text in result["failures"]
            )
            for kind, count in kinds.most_common():
                print(f"  {count:4} x {kind}")
            for text in result["failures"][:3]:
                print("  " + text.replace("\n", "\n  "))
    for r in results:
        if "teardown" in r:
            print(f"N={r['n']}: teardown (stop every device, then the server): {r['teardown']}")
    print(table(results, options.tracemalloc))
    print()
    print(growth(results))
    print()
    print(targets(results))
    limits = {r["fd_limit"] for r in results if "fd_limit" in r}
    for note in sorted(limits):
        print(f"({note})")
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
