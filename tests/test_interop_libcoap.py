"""Interoperability with libcoap: its command-line client and server against our code.

libcoap (https://libcoap.net) is an independent C implementation of CoAP, so these tests show
that our devices and our downloader speak CoAP to somebody other than aiocoap. Debian ships its
example programs in ``libcoap3-bin`` (CI installs it; see ``.ci/run``):

* ``coap-client-notls`` pushes a firmware package block-wise (RFC 7959 Block1) into a running
  ``EmulatedDevice``'s /5/0/0 and reads the device's resources in the LwM2M content formats;
* ``coap-server-notls`` hosts a package for our pull downloader (Block2).

What libcoap 4.3.1 does, as these tests pin it down:

* **Block1 (the client's PUT).** ``-b SIZE`` sets the block size (16..1024). Every block
  carries ``Block1``, ``Size1`` (the whole length) and a ``Request-Tag``; the client waits for
  the answer to each block before sending the next (lock-step) and expects ``2.31 Continue``
  for every block but the last. It exits 0 even when the answer is an error and prints the
  error (``4.04 ...``) on stderr, so a test must read the output, not only the exit code.
  With ``-v 7`` it logs every message it sends and receives on stdout.
* **Dynamic resources (the server).** ``coap-server-notls -d N`` lets a PUT create up to N new
  resources (``2.01 Created``; the Content-Format of the PUT is kept and served back). It
  answers the blocks of a PUT with ``2.31`` + Block1, the last one with ``2.01`` (or ``2.04``
  when the resource existed) *without* Block1.
* **Block2 (the server's GET answers).** Asked without Block2, the server answers with
  1024-byte blocks; asked for a smaller size, it uses that size. A transfer that starts at
  block 0 gets ``ETag`` and ``Size2`` on every block. The ETag is *not* derived from the
  content: it is a counter the server increments for every new transfer (1, 2, 3, ...), so two
  downloads of the same unchanged bytes see different ETags. A transfer that starts in the
  middle (a resume from a new socket) gets its blocks with neither ETag nor Size2.

Subprocesses run with ``asyncio.create_subprocess_exec`` and a timeout and are always killed and
waited for. Nothing sleeps to wait for readiness: the server is polled with CoAP requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FilePath

import aiocoap
import aiocoap.error
import pytest
from aiocoap import GET, Context, Message
from aiocoap.optiontypes import BlockOption

from lwm2m_edu.codecs import ContentFormat, decode
from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.download import DownloadError, download
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.paths import Path
from lwm2m_edu.server import Server

CLIENT = "coap-client-notls"
SERVER = "coap-server-notls"

pytestmark = pytest.mark.skipif(
    shutil.which(CLIENT) is None or shutil.which(SERVER) is None,
    reason=f"libcoap's {CLIENT} / {SERVER} are not installed "
    "(Debian/Ubuntu: apt-get install libcoap3-bin; CI installs it through .ci/run)",
)

TOOL_TIMEOUT = 10.0  # seconds a libcoap program may run before the test kills it
DATA = random.Random(7).randbytes(20_000)  # 19 blocks of 1024 bytes and a short one


# -- running libcoap's programs -------------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    """What a libcoap program did: exit code and both output streams."""

    returncode: int
    stdout: bytes
    stderr: str


async def run_tool(*args: str, timeout: float = TOOL_TIMEOUT) -> Completed:
    """Run a libcoap program to completion; kill it if it outlives ``timeout`` seconds."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Completed(process.returncode, stdout, stderr.decode(errors="replace"))


async def coap_get(uri: str, *options: str) -> tuple[bytes, str]:
    """GET ``uri`` with ``coap-client-notls``: (the payload exactly as received, stderr).

    ``-o FILE`` writes the payload without the newline the tool adds when it prints to stdout.
    """
    with tempfile.TemporaryDirectory() as directory:
        out = FilePath(directory) / "payload"
        done = await run_tool(CLIENT, "-B", "5", *options, "-o", str(out), uri)
        assert done.returncode == 0, done
        return (out.read_bytes() if out.exists() else b""), done.stderr


#: One message in ``coap-client-notls -v 7`` output, e.g. ``v:1 t:ACK c:2.31 i:c8a5 {03} [ ... ]``.
_LOGGED = re.compile(r"^v:1 t:(?P<type>\w+) c:(?P<code>[\w.]+) i:\w+ \{\w*\} \[(?P<options>.*)\]")
_BLOCK1 = re.compile(r"Block1:(?P<num>\d+)/(?P<more>[M_])/(?P<size>\d+)")


def answers_to_blocks(log: bytes) -> list[tuple[str, int | None, int | None]]:
    """(code, Block1 number, Block1 size) of every ACK the client logged, in order
    (``None`` for an answer without Block1)."""
    answers: list[tuple[str, int | None, int | None]] = []
    for line in log.decode(errors="replace").splitlines():
        message = _LOGGED.match(line)
        if message is None or message["type"] != "ACK":
            continue
        block = _BLOCK1.search(message["options"])
        if block is None:
            answers.append((message["code"], None, None))
        else:
            answers.append((message["code"], int(block["num"]), int(block["size"])))
    return answers


@dataclass(frozen=True)
class Pushed:
    """What ``coap-client-notls`` saw of a block-wise PUT."""

    answers: list[tuple[str, int | None, int | None]]  #: (code, Block1 NUM, size) per block
    problem: str  #: the error it printed on stderr ("" when the PUT succeeded)

    @property
    def codes(self) -> list[str]:
        return [code for code, _, _ in self.answers]


async def push_with_libcoap(uri: str, package: bytes, block_size: int) -> Pushed:
    """PUT ``package`` to ``uri`` block-wise in Content-Format 42 (application/octet-stream)."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        file.write(package)
        file.flush()
        done = await run_tool(
            CLIENT, "-v", "7", "-B", "5", "-m", "put", "-t", str(int(ContentFormat.OPAQUE)),
            "-b", str(block_size), "-f", file.name, uri,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr  # 0 even for an error answer: read the output
    return Pushed(answers_to_blocks(done.stdout), done.stderr.strip())


# -- a libcoap server on a free loopback port -----------------------------------------------------


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


async def _answers(context: Context, uri: str, wait: float) -> bool:
    """True if a libcoap server answers GET ``uri`` within ``wait`` seconds."""
    try:
        async with asyncio.timeout(wait):
            response = await context.request(Message(code=GET, uri=uri)).response
    except (TimeoutError, aiocoap.error.Error):
        return False
    return response.code.is_successful() and b"libcoap" in response.payload


@contextlib.asynccontextmanager
async def loopback_context() -> AsyncIterator[Context]:
    """A CoAP context on 127.0.0.1 and a free port, as a device's LwM2M client has one."""
    context = await Context.create_server_context(None, bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        yield context
    finally:
        await context.shutdown()


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it is still there after two seconds; always reap it."""
    if process.returncode is None:
        process.terminate()
        try:
            async with asyncio.timeout(2):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def libcoap_server(deadline: float = 5.0) -> AsyncIterator[str]:
    """Run ``coap-server-notls`` on 127.0.0.1 and a free port; yield its ``coap://`` base URI.

    ``-d 10`` allows PUTs to create up to ten resources. Readiness is polled: GET / until the
    server's greeting comes back (0.2 s per attempt, ``deadline`` in all). The server sets
    SO_REUSEADDR, so when another program took the port in the meantime its UDP bind still
    succeeds and only the TCP bind fails, on stderr: a clash is told by that message, and we
    start again on another port.
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
                    ready = False
                    loop = asyncio.get_running_loop()
                    give_up = loop.time() + deadline
                    while not ready and process.returncode is None and loop.time() < give_up:
                        ready = await _answers(context, base + "/", wait=0.2)
                    log.seek(0)
                    if ready and b"in use" not in log.read():
                        yield base
                        return
                finally:
                    await stop_process(process)
    pytest.fail(f"{SERVER} did not start on a free port within three attempts")


async def host_on_libcoap(base: str, name: str, data: bytes) -> str:
    """PUT ``data`` to a new resource ``name`` on a libcoap server; its URI."""
    uri = f"{base}/{name}"
    pushed = await push_with_libcoap(uri, data, 1024)
    assert (pushed.problem, pushed.codes[-1:]) == ("", ["2.01"]), pushed
    return uri


async def block2_transfer(uri: str, start: int = 0) -> list[tuple[int, bytes | None, int | None]]:
    """Fetch ``uri`` lock-step from block ``start`` with 1024-byte blocks, with plain aiocoap;
    (block number, ETag, Size2) of every response, to see what the server sends."""
    seen = []
    async with loopback_context() as context:
        number, more = start, True
        while more:
            request = Message(code=GET, uri=uri)
            request.opt.block2 = BlockOption.BlockwiseTuple(number, False, 6)
            response = await context.request(request, handle_blockwise=False).response
            assert response.code.is_successful(), response
            block = response.opt.block2
            seen.append((block.block_number, response.opt.etag, response.opt.size2))
            number, more = block.block_number + 1, block.more
    return seen


class Collect:
    """A download sink that keeps the bytes and the size of every piece."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.pieces: list[int] = []

    def __call__(self, chunk: bytes) -> None:
        self.data += chunk
        self.pieces.append(len(chunk))


# -- a registered device --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def registered_device(endpoint: str) -> AsyncIterator[tuple[Server, EmulatedDevice, str]]:
    """Our Server and an EmulatedDevice registered to it; yields (server, device, device URI)."""
    server = await Server.start(request_timeout=5.0)
    try:
        device = EmulatedDevice(endpoint)
        await device.start(server.uri)
        try:
            assert device.client is not None
            host, port = device.client.address
            yield server, device, f"coap://{host}:{port}"
        finally:
            await device.stop()
    finally:
        await server.stop()


# -- libcoap's client pushes a package into our device --------------------------------------------


@pytest.mark.parametrize("block_size", [64, 512, 1024])
async def test_libcoap_client_pushes_a_package_block_wise_into_the_device(block_size):
    built = factory_package("1.1.0", size=20 * 1024)
    package = bytes(built)
    blocks = math.ceil(len(package) / block_size)
    async with registered_device(f"libcoap-push-{block_size}") as (server, device, uri):
        pushed = await push_with_libcoap(uri + "/5/0/0", package, block_size)

        # lock-step Block1: 2.31 Continue for every block but the last, which gets 2.04 Changed
        assert pushed.problem == ""
        assert pushed.answers == [("2.31", n, block_size) for n in range(blocks - 1)] + [
            ("2.04", blocks - 1, block_size)
        ]
        assert device.firmware is not None and device.handlers is not None
        assert device.firmware.state is State.DOWNLOADED
        assert await server.read(device.endpoint, "/5/0/3") == State.DOWNLOADED
        state, _ = await coap_get(uri + "/5/0/3", "-A", "0")
        assert state == b"2"

        # streamed block by block into the staging slot, never assembled first
        assert [chunk.length for chunk in device.handlers.timeline] == [block_size] * (
            blocks - 1
        ) + [len(package) - (blocks - 1) * block_size]
        staged = device.handlers.staged
        assert staged is not None
        assert (staged.version, staged.size) == ("1.1.0", len(package))
        assert staged.sha256 == built.sha256  # the image hash from the package header
        slot = device.bootloader.staging_slot
        assert device.flash.dump(slot.start, len(package)) == package


async def test_a_libcoap_push_of_a_broken_package_is_refused_with_the_update_result():
    package = bytearray(bytes(factory_package("1.1.0", size=4096)))
    package[-1] ^= 0xFF  # the image no longer matches the SHA-256 in the header
    async with registered_device("libcoap-broken") as (server, device, uri):
        pushed = await push_with_libcoap(uri + "/5/0/0", bytes(package), 1024)
        # the hash is checked when the last block is in: 5.00 with the reason, then Idle + 5
        assert pushed.codes == ["2.31"] * 4 + ["5.00"]
        assert pushed.problem.startswith("5.00 ") and "INTEGRITY" in pushed.problem
        assert await server.read(device.endpoint, "/5/0/3") == State.IDLE
        assert await server.read(device.endpoint, "/5/0/5") == UpdateResult.INTEGRITY_FAILURE


# -- libcoap's client reads the device ----------------------------------------------------------


async def test_libcoap_client_reads_device_resources_in_each_content_format():
    async with registered_device("libcoap-reader") as (_server, device, uri):
        expected = {
            Path("/3/0/0"): "lwm2m_edu",
            Path("/3/0/1"): device.flash.profile.name,
            Path("/3/0/2"): "libcoap-reader",
            Path("/3/0/3"): "1.0.0",
        }
        manufacturer, _ = await coap_get(uri + "/3/0/0")  # no Accept: the device's choice
        assert decode(manufacturer, ContentFormat.TEXT, "/3/0/0") == {Path("/3/0/0"): "lwm2m_edu"}
        state, _ = await coap_get(uri + "/5/0/3", "-A", str(int(ContentFormat.TEXT)))
        assert decode(state, ContentFormat.TEXT, "/5/0/3") == {Path("/5/0/3"): State.IDLE}

        for content_format in (
            ContentFormat.TLV,
            ContentFormat.SENML_JSON,
            ContentFormat.SENML_CBOR,
        ):
            payload, problem = await coap_get(uri + "/3/0", "-A", str(int(content_format)))
            assert problem == ""
            values = decode(payload, content_format, "/3/0")
            assert {path: values[path] for path in expected} == expected, content_format.name


async def test_libcoap_client_gets_the_lwm2m_error_codes():
    async with registered_device("libcoap-errors") as (_server, _device, uri):
        for path in ("/9/9", "/3/0/99", "/unknown"):
            payload, problem = await coap_get(uri + path)
            assert (payload, problem[:5]) == (b"", "4.04 "), path
        _, problem = await coap_get(uri + "/3/0", "-A", "50")  # plain JSON: not an LwM2M format
        assert problem.startswith("4.06 ")
        _, problem = await coap_get(uri + "/5/0/2", "-m", "post")  # Update while Idle
        assert problem.startswith("4.05 ")


# -- our downloader pulls from libcoap's server ---------------------------------------------------


async def test_libcoap_server_takes_a_package_by_put_and_serves_it_back():
    async with libcoap_server() as base:
        pushed = await push_with_libcoap(base + "/fw", DATA, 1024)
        # 2.01 Created: a new dynamic resource; libcoap's final answer carries no Block1
        assert pushed.answers[-1] == ("2.01", None, None)
        assert pushed.codes == ["2.31"] * 19 + ["2.01"]
        assert pushed.problem == ""
        served, problem = await coap_get(base + "/fw")
        assert (served, problem) == (DATA, "")


async def test_pull_from_libcoap_server_with_the_server_choosing_the_block_size():
    async with libcoap_server() as base, loopback_context() as context:
        await host_on_libcoap(base, "fw", DATA)
        sink = Collect()
        outcome = await download(base + "/fw", sink, coap_context=context, timeout=2.0)
        assert bytes(sink.data) == DATA
        assert sink.pieces == [1024] * 19 + [544]  # the first GET had no Block2: libcoap chose
        assert (outcome.size, outcome.blocks, outcome.block_size) == (len(DATA), 20, 1024)
        assert (outcome.retries, outcome.restarts) == (0, 0)
        assert isinstance(outcome.etag, bytes) and 1 <= len(outcome.etag) <= 8


@pytest.mark.parametrize("block_size", [16, 256])
async def test_pull_from_libcoap_server_with_a_smaller_block_size(block_size):
    async with libcoap_server() as base, loopback_context() as context:
        await host_on_libcoap(base, "fw", DATA)
        sink = Collect()
        outcome = await download(
            base + "/fw", sink, coap_context=context, block_size=block_size, timeout=2.0
        )
        assert bytes(sink.data) == DATA
        assert set(sink.pieces[:-1]) == {block_size}
        assert (outcome.block_size, outcome.blocks) == (
            block_size,
            math.ceil(len(DATA) / block_size),
        )


async def test_libcoap_etag_names_a_transfer_not_the_content():
    async with libcoap_server() as base:
        await host_on_libcoap(base, "fw", DATA)
        first = await block2_transfer(base + "/fw")
        second = await block2_transfer(base + "/fw")
        # every block of one transfer: one ETag, and Size2 = the whole length
        assert [number for number, _, _ in first] == list(range(20))
        assert {(etag, size) for _, etag, size in first} == {(first[0][1], len(DATA))}
        assert {(etag, size) for _, etag, size in second} == {(second[0][1], len(DATA))}
        # the same bytes, fetched again: a new ETag (a counter, 1-8 bytes)
        assert first[0][1] != second[0][1]
        # a transfer that starts in the middle gets neither ETag nor Size2
        middle = await block2_transfer(base + "/fw", start=8)
        assert [(number, etag, size) for number, etag, size in middle] == [
            (n, None, None) for n in range(8, 20)
        ]


async def test_a_resumed_pull_from_libcoap_completes_without_an_etag_to_check():
    async with libcoap_server() as base:
        await host_on_libcoap(base, "fw", DATA)
        sink = Collect()

        def refuse_after_8k(chunk: bytes) -> UpdateResult | None:
            if len(sink.data) >= 8192:
                return UpdateResult.NOT_ENOUGH_FLASH
            sink(chunk)
            return None

        with pytest.raises(DownloadError) as failed:
            await download(base + "/fw", refuse_after_8k, timeout=2.0)
        resume = failed.value.resume
        assert resume is not None and resume.offset == 8192
        # A new socket asks for block 8 first: libcoap sends it without ETag, so the
        # downloader cannot tell whether the package changed; it keeps the ETag it had.
        outcome = await download(base + "/fw", sink, resume=resume, timeout=2.0)
        assert bytes(sink.data) == DATA
        assert (outcome.resumed_from, outcome.restarts, outcome.etag) == (8192, 0, resume.etag)


async def test_device_pulls_a_package_from_libcoap_server():
    built = factory_package("1.2.0", size=12 * 1024)
    package = bytes(built)
    async with libcoap_server() as base, registered_device("libcoap-pull") as (server, device, _):
        uri = await host_on_libcoap(base, "app-1.2.0.bin", package)
        await server.write(device.endpoint, "/5/0/1", uri)
        await server.wait_for(device.endpoint, state=State.DOWNLOADED, timeout=10.0)
        assert device.handlers is not None and device.handlers.staged is not None
        assert device.handlers.staged.version == "1.2.0"
        assert device.handlers.staged.sha256 == built.sha256
        slot = device.bootloader.staging_slot
        assert device.flash.dump(slot.start, len(package)) == package
