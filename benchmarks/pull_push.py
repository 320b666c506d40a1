"""Pull and push of a 1 MiB package on loopback: our code next to plain aiocoap and libcoap.

Run it with ``.venv/bin/python benchmarks/pull_push.py`` (or ``make bench``); it needs libcoap's
example programs (Debian: ``apt-get install libcoap3-bin``). ``benchmarks/README.md`` says how
to read the table. Everything is measured side by side in one run, on 127.0.0.1, so the numbers
that matter are the *ratios*: they carry over between machines far better than seconds do.

(a) **Pull** (Block2, 1024-byte blocks) of a package that ``coap-server-notls`` hosts, by

    * ``lwm2m_edu.download.download`` — our lock-step downloader, into a sink that only counts;
    * a plain aiocoap GET — aiocoap's own block-wise handling assembles the whole body;
    * ``coap-client-notls -b 1024`` — libcoap's client, a C program (its process start-up is
      part of its time; the table shows that start-up alone on a line of its own).

(b) **Push** (Block1, 1024-byte blocks) of the same package with ``coap-client-notls -m put``

    * into an ``EmulatedDevice``'s /5/0/0 — every block is checked and streamed into emulated
      flash by the Object /5 handlers, as a push to a real device is;
    * into a plain aiocoap server — an ``aiocoap.resource.Resource`` whose ``render_put``
      aiocoap calls once, with the body it assembled from the blocks (its default);
    * into a plain aiocoap server that takes the blocks one by one — the same resource saying
      ``needs_blockwise_assembly() -> False``, so ``render_put`` sees each block and answers
      2.31 Continue itself, as our device does (it streams, never holding the package whole);
    * into ``coap-server-notls`` — a dynamic resource kept in memory.

Every measurement is repeated ``--repeat`` times (default 5), round-robin, so slow drift of the
machine hits all of them alike; the table shows the median with the fastest and slowest run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiocoap
import aiocoap.error
import aiocoap.resource
from aiocoap import CHANGED, CONTINUE, GET, Context, Message
from aiocoap.optiontypes import BlockOption

from lwm2m_edu.coap import memoize_address_parsing
from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.download import download
from lwm2m_edu.fota import State
from lwm2m_edu.server import Server

CLIENT = "coap-client-notls"
SERVER = "coap-server-notls"
BLOCK = 1024
SZX_1024 = 6  # Block2 size exponent: 2 ** (6 + 4) = 1024 bytes
TOOL_TIMEOUT = 60.0  # seconds one libcoap run may take before it is killed


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """The wall times of one contender, run after run."""

    label: str
    run: Callable[[], Awaitable[None]] = field(repr=False)
    #: a plain aiocoap contender: run it with aiocoap as it ships (see ``measure``)
    plain_aiocoap: bool = False
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def kib_per_s(self, size: int) -> float:
        return size / 1024 / self.median


async def measure(contenders: list[Measurement], repeat: int) -> None:
    """Run every contender ``repeat`` times, round-robin, recording wall times.

    Importing ``lwm2m_edu`` makes aiocoap's udp6 memoize its address parsing, in the whole
    process (``lwm2m_edu.coap.memoize_address_parsing``); a plain aiocoap contender runs
    without that, as aiocoap ships, and ours with it, as our library ships.
    """
    try:
        for _ in range(repeat):
            for contender in contenders:
                memoize_address_parsing(not contender.plain_aiocoap)
                started = time.perf_counter()
                await contender.run()
                contender.seconds.append(time.perf_counter() - started)
    finally:
        memoize_address_parsing(True)


def table(
    title: str, contenders: list[Measurement], size: int, notes: tuple[Measurement, ...] = ()
) -> str:
    """The contenders as a text table. The first one is ours; ``ours/this`` is its median time
    over the row's (2.00: ours takes twice as long). ``notes`` rows show times only."""
    ours = contenders[0].median
    lines = [title, f"  {'':50} {'median s':>9} {'min-max s':>13} {'KiB/s':>8} {'ours/this':>9}"]
    for row in [*contenders, *notes]:
        spread = f"{min(row.seconds):.3f}-{max(row.seconds):.3f}"
        figures = (
            f"{row.kib_per_s(size):8.0f} {ours / row.median:9.2f}" if row in contenders else ""
        )
        lines.append(f"  {row.label:50} {row.median:9.3f} {spread:>13} {figures}".rstrip())
    return "\n".join(lines)


# -- libcoap's programs ---------------------------------------------------------------------------


async def run_tool(*args: str) -> bytes:
    """Run a libcoap program; its stderr (where it reports CoAP errors: it exits 0 anyway)."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(TOOL_TIMEOUT):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0 or stderr.strip():
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}): {stderr.decode()}")
    return stderr


def libcoap_version() -> str:
    """libcoap's version as its client announces it in its usage text (run before the loop)."""
    usage = subprocess.run([CLIENT], capture_output=True, text=True, timeout=10)
    found = re.search(r"v(\d+\.\d+\.\d+\S*)", usage.stdout + usage.stderr)
    return found.group(1) if found else "unknown"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coap-server-notls binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@contextlib.asynccontextmanager
async def loopback_context() -> AsyncIterator[Context]:
    """An aiocoap context on 127.0.0.1 and a free port."""
    context = await Context.create_server_context(None, bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        yield context
    finally:
        await context.shutdown()


@contextlib.asynccontextmanager
async def libcoap_server(deadline: float = 5.0) -> AsyncIterator[str]:
    """``coap-server-notls`` on 127.0.0.1 and a free port, with dynamic resources; its base URI.

    Ready when GET / brings its greeting (polled, 0.2 s per attempt). On a port clash its TCP
    bind fails on stderr (UDP still binds: SO_REUSEADDR), and another port is tried.
    """
    async with loopback_context() as context:
        with tempfile.TemporaryFile() as log:
            for _attempt in range(3):
                port = free_port()
                base = f"coap://127.0.0.1:{port}"
                log.seek(0)
                log.truncate()
                process = await asyncio.create_subprocess_exec(
                    SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "10",
                    stdout=asyncio.subprocess.DEVNULL, stderr=log,
                )  # fmt: skip
                try:
                    loop = asyncio.get_running_loop()
                    give_up, ready = loop.time() + deadline, False
                    while not ready and process.returncode is None and loop.time() < give_up:
                        ready = await _greets(context, base)
                    log.seek(0)
                    if ready and b"in use" not in log.read():
                        yield base
                        return
                finally:
                    if process.returncode is None:
                        process.terminate()
                        try:
                            async with asyncio.timeout(2):
                                await process.wait()
                        except TimeoutError:
                            process.kill()
                            await process.wait()
    raise RuntimeError(f"{SERVER} did not start on a free port within three attempts")


async def _greets(context: Context, base: str) -> bool:
    try:
        async with asyncio.timeout(0.2):
            response = await context.request(Message(code=GET, uri=base + "/")).response
    except (TimeoutError, aiocoap.error.Error):
        return False
    return response.code.is_successful() and b"libcoap" in response.payload


# -- the contenders -------------------------------------------------------------------------------


class CountingSink:
    """A download sink that only counts what arrives (no flash, no copy)."""

    def __init__(self) -> None:
        self.received = 0

    def __call__(self, chunk: bytes) -> None:
        self.received += len(chunk)


async def pull_ours(uri: str, size: int) -> None:
    sink = CountingSink()
    async with loopback_context() as context:
        await download(uri, sink, coap_context=context, block_size=BLOCK)
    if sink.received != size:
        raise RuntimeError(f"our downloader got {sink.received} bytes, not {size}")


async def pull_aiocoap(uri: str, size: int) -> None:
    async with loopback_context() as context:
        request = Message(code=GET, uri=uri)
        request.opt.block2 = BlockOption.BlockwiseTuple(0, False, SZX_1024)
        response = await context.request(request).response  # aiocoap assembles the blocks
    if not response.code.is_successful() or len(response.payload) != size:
        raise RuntimeError(f"aiocoap got {response.code}, {len(response.payload)} bytes")


async def pull_libcoap(uri: str) -> None:
    await run_tool(CLIENT, "-B", "30", "-b", str(BLOCK), "-o", os.devnull, uri)


async def libcoap_start_only(base: str) -> None:
    await run_tool(CLIENT, "-B", "30", "-o", os.devnull, base + "/")  # one small response


async def push_libcoap_client(file: Path, uri: str) -> None:
    await run_tool(
        CLIENT, "-B", "30", "-m", "put", "-t", "42", "-b", str(BLOCK), "-f", str(file), uri
    )


class UploadResource(aiocoap.resource.Resource):
    """A plain aiocoap resource taking a PUT: the whole body, or (``streamed``) block by block.

    Assembled (aiocoap's default), aiocoap answers 2.31 Continue to each Block1 block itself,
    appends it to the body, and calls ``render_put`` once, with the whole body. Streamed
    (``needs_blockwise_assembly`` says no), aiocoap hands every block over as it comes and
    ``render_put`` answers it: 2.31 Continue, or 2.04 Changed for the last, with the request's
    Block1 option. Either way ``render_put`` only counts the bytes (``received``).
    """

    def __init__(self, *, streamed: bool = False) -> None:
        super().__init__()
        self.streamed = streamed
        self.received = 0

    async def needs_blockwise_assembly(self, request: Message) -> bool:
        return not self.streamed

    async def render_put(self, request: Message) -> Message:
        block = request.opt.block1
        if not self.streamed or block is None or block.block_number == 0:
            self.received = 0
        self.received += len(request.payload)
        more = self.streamed and block is not None and block.more
        response = Message(code=CONTINUE if more else CHANGED)
        if self.streamed:
            response.opt.block1 = block
        return response


@contextlib.asynccontextmanager
async def aiocoap_server(resource: UploadResource, *, site: bool = True) -> AsyncIterator[str]:
    """A plain aiocoap server with ``resource`` at /upload, on 127.0.0.1, a free port; its URI.

    With ``site`` the resource sits in an ``aiocoap.resource.Site`` (aiocoap's usual way, which
    copies each request to strip the path); without, it *is* the server's root, as our client's
    resource is: the leanest aiocoap server there is.
    """
    root: aiocoap.interfaces.Resource = resource
    if site:
        root = aiocoap.resource.Site()
        root.add_resource(["upload"], resource)
    port = free_port()
    context = await Context.create_server_context(
        root, bind=("127.0.0.1", port), transports=["udp6"]
    )
    try:
        yield f"coap://127.0.0.1:{port}/upload"
    finally:
        await context.shutdown()


async def push_into_aiocoap(resource: UploadResource, file: Path, uri: str, size: int) -> None:
    await push_libcoap_client(file, uri)
    if resource.received != size:
        raise RuntimeError(f"the aiocoap server got {resource.received} bytes, not {size}")


async def push_into_device(server: Server, device: EmulatedDevice, file: Path, uri: str) -> None:
    """One push into /5/0/0, then a reset to Idle so the device takes the next push.

    The reset (our Server writes a single 0 byte to /5/0/0) is one small request, timed with
    the push: a fraction of a percent of it."""
    await push_libcoap_client(file, uri)
    assert device.firmware is not None
    if device.firmware.state is not State.DOWNLOADED:
        raise RuntimeError(f"the device is in {device.firmware.state.name} after the push")
    await server.write(device.endpoint, "/5/0/0", b"\0")  # reset: Idle, ready for the next


# -- the run --------------------------------------------------------------------------------------


async def run(repeat: int, size: int) -> str:
    out = []
    image = random.Random(1).randbytes(size)
    async with libcoap_server() as base:
        with tempfile.TemporaryDirectory() as directory:
            hosted = Path(directory) / "hosted.bin"
            hosted.write_bytes(image)
            pull_uri = base + "/hosted"
            await push_libcoap_client(hosted, pull_uri)  # hosted as a dynamic resource
            await check_libcoap_copy(pull_uri, image, Path(directory) / "check.bin")

            pulls = [
                Measurement(
                    "lwm2m_edu.download (ours, lock-step)", lambda: pull_ours(pull_uri, size)
                ),
                Measurement(
                    "aiocoap GET (library block-wise)",
                    lambda: pull_aiocoap(pull_uri, size),
                    plain_aiocoap=True,
                ),
                Measurement(f"{CLIENT} -b {BLOCK}", lambda: pull_libcoap(pull_uri)),
            ]
            start_up = Measurement(
                f"  of which {CLIENT} start-up (GET /)", lambda: libcoap_start_only(base)
            )
            await measure([*pulls, start_up], repeat)
            title = f"(a) pull {size // 1024} KiB from {SERVER}, Block2 {BLOCK} B"
            out.append(table(title, pulls, size, notes=(start_up,)))

            package = bytes(factory_package("1.1.0", size=size))
            pushed = Path(directory) / "package.bin"
            pushed.write_bytes(package)
            assembled, streamed = UploadResource(), UploadResource(streamed=True)
            lean = UploadResource(streamed=True)
            async with (
                aiocoap_server(assembled) as assembled_uri,
                aiocoap_server(streamed) as streamed_uri,
                aiocoap_server(lean, site=False) as lean_uri,
            ):
                server = await Server.start()
                try:
                    device = EmulatedDevice("bench-device", flash="w25q64-spi-nor")
                    await device.start(server.uri)
                    try:
                        assert device.client is not None
                        host, port = device.client.address
                        device_uri = f"coap://{host}:{port}/5/0/0"
                        pushes = [
                            Measurement(
                                "EmulatedDevice /5/0/0 (ours, into emulated flash)",
                                lambda: push_into_device(server, device, pushed, device_uri),
                            ),
                            Measurement(
                                "aiocoap Resource render_put (assembled body)",
                                lambda: push_into_aiocoap(
                                    assembled, pushed, assembled_uri, len(package)
                                ),
                                plain_aiocoap=True,
                            ),
                            Measurement(
                                "aiocoap Resource render_put (block by block)",
                                lambda: push_into_aiocoap(
                                    streamed, pushed, streamed_uri, len(package)
                                ),
                                plain_aiocoap=True,
                            ),
                            Measurement(
                                "aiocoap root Resource, block by block (no Site)",
                                lambda: push_into_aiocoap(lean, pushed, lean_uri, len(package)),
                                plain_aiocoap=True,
                            ),
                            Measurement(
                                f"{SERVER} (dynamic resource, in memory)",
                                lambda: push_libcoap_client(pushed, base + "/upload"),
                            ),
                        ]
                        await measure(pushes, repeat)
                    finally:
                        await device.stop()
                finally:
                    await server.stop()
            out.append(
                table(
                    f"(b) push {len(package) // 1024} KiB with {CLIENT} -m put, Block1 {BLOCK} B",
                    pushes,
                    len(package),
                )
            )
    return "\n\n".join(out)


async def check_libcoap_copy(uri: str, image: bytes, scratch: Path) -> None:
    """Before timing anything: libcoap's client fetches exactly the hosted bytes."""
    await run_tool(CLIENT, "-B", "30", "-b", str(BLOCK), "-o", str(scratch), uri)
    if scratch.read_bytes() != image:
        raise RuntimeError(f"{CLIENT} fetched different bytes from {uri}")


def machine() -> str:
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}\n"
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"aiocoap {importlib.metadata.version('aiocoap')}, libcoap {libcoap_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--size", type=int, default=1024 * 1024, help="package size in bytes (default 1 MiB)"
    )
    options = parser.parse_args(argv)
    missing = [tool for tool in (CLIENT, SERVER) if shutil.which(tool) is None]
    if missing:
        print(
            f"{' and '.join(missing)} not found: install libcoap's example programs "
            "(Debian/Ubuntu: sudo apt-get install libcoap3-bin)",
            file=sys.stderr,
        )
        return 1
    print(machine())
    print(
        f"{options.repeat} runs each, round-robin, on 127.0.0.1\n"
        "aiocoap rows: aiocoap as it ships (lwm2m_edu's memoized udp6 address parsing off)\n"
    )
    started = time.perf_counter()
    print(asyncio.run(run(options.repeat, options.size)))
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
