"""Lock-step vs windowed CoAP pulls over links with 0, 50 and 200 ms round trips.

    .venv/bin/python benchmarks/windowed_pull.py [--size 65536] [--window 8] [--repeat 3]

A lock-step Block2 pull (RFC 7252's NSTART = 1, the default) waits one round trip per block,
so on a 200 ms link a 64 KiB package in 1024-byte blocks needs at least 64 x 0.2 s = 13 s,
whatever the bandwidth. ``download(..., window=N)`` keeps N block requests in flight.
The link is ``lwm2m_edu.netem.Link`` with ``delay = RTT / 2`` each way, on loopback; both
variants run in the same process, one after the other, and the table prints their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time

from lwm2m_edu.download import download
from lwm2m_edu.hosting import PackageHost
from lwm2m_edu.netem import Link


async def pull(uri: str, size: int, window: int) -> float:
    received = 0

    def sink(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    started = time.perf_counter()
    await download(uri, sink, window=window, timeout=30.0)
    elapsed = time.perf_counter() - started
    assert received == size, (received, size)
    return elapsed


async def main(size: int, window: int, repeat: int) -> None:
    data = os.urandom(size)
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"package {size} B in 1024-byte blocks; window = {window}; median of {repeat}\n")
    print(f"{'RTT':>7}  {'lock-step':>10}  {'window':>10}  {'lock-step / window':>19}")
    async with await PackageHost.start(http=False) as host:
        hosted = host.add("fw.bin", data)
        for rtt in (0.0, 0.05, 0.2):
            link = await Link.start(("127.0.0.1", host.coap_port), delay=rtt / 2, seed=1)
            try:
                uri = link.uri_for(hosted.coap_uri)
                lock = statistics.median([await pull(uri, size, 1) for _ in range(repeat)])
                wide = statistics.median([await pull(uri, size, window) for _ in range(repeat)])
            finally:
                await link.stop()
            print(f"{rtt * 1000:5.0f} ms  {lock:9.2f} s  {wide:9.2f} s  {lock / wide:18.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.size, args.window, args.repeat))
