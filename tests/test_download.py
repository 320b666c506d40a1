"""Pull downloads over real CoAP and HTTP on loopback, from a PackageHost, into a sink.

Timeouts are shortened through the ``timeout`` parameter (the CoAP retransmission schedule is
scaled to it) and ``retry_delay=0``, so failure paths take a fraction of a second; nothing
sleeps to wait for anything. ``async def`` tests run through ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from aiocoap import GET, Context, Message
from aiocoap.message import UndecidedRemote

from lwm2m_edu.bootloader import Bootloader
from lwm2m_edu.download import PROTOCOLS, CoapDownloader, DownloadError, Resume, download
from lwm2m_edu.flash import EmulatedFlash
from lwm2m_edu.flash_handlers import FlashFirmwareHandlers
from lwm2m_edu.fota import Protocol, UpdateResult
from lwm2m_edu.hosting import PackageHost
from lwm2m_edu.package import Package

DATA = random.Random(5).randbytes(5000)  # five 1024-byte blocks, the last one short
NEW = random.Random(6).randbytes(4500)
FAST = {"timeout": 0.5, "retry_delay": 0}  # a block gives up after 0.5 s of retransmissions


@asynccontextmanager
async def coap_client() -> AsyncIterator[Context]:
    """The device's own CoAP context, as an LwM2M client has one: loopback, a free port."""
    context = await Context.create_server_context(None, bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        yield context
    finally:
        await context.shutdown()


class Sink:
    """Collects what the downloader delivers; ``restart`` empties it."""

    def __init__(self, initial: bytes = b"") -> None:
        self.data = bytearray(initial)
        self.chunks: list[int] = []

    def __call__(self, chunk: bytes) -> None:
        self.data += chunk
        self.chunks.append(len(chunk))

    def restart(self) -> None:
        self.data.clear()


def closed_port(kind: socket.SocketKind) -> int:
    """A port that was free a moment ago and has nothing listening now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- CoAP ------------------------------------------------------------------------------------------


async def test_coap_download_of_a_multi_block_package_equals_the_bytes():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        sink = Sink()
        outcome = await download(package.coap_uri, sink, coap_context=client, **FAST)
        assert bytes(sink.data) == DATA
        assert sink.chunks == [1024, 1024, 1024, 1024, 904]
        assert (outcome.size, outcome.blocks, outcome.retries) == (5000, 5, 0)
        assert outcome.etag == package.etag
        assert package.coap_requests == 5  # lock-step: one GET per block, nothing more


async def test_coap_download_without_a_context_makes_and_closes_its_own():
    async with await PackageHost.start(http=False) as host:
        sink = Sink()
        await download(host.add("app.bin", DATA).coap_uri, sink, **FAST)
        assert bytes(sink.data) == DATA  # and conftest finds no task left running


async def test_coap_first_get_lets_the_server_choose_the_block_size():
    async with await PackageHost.start(http=False, block_size=512) as host, coap_client() as c:
        sink = Sink()
        outcome = await download(host.add("app.bin", DATA).coap_uri, sink, coap_context=c, **FAST)
        assert outcome.block_size == 512
        assert sink.chunks == [512] * 9 + [392]


async def test_coap_requested_block_size_is_used_when_the_server_allows_it():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        sink = Sink()
        uri = host.add("app.bin", DATA).coap_uri
        outcome = await download(uri, sink, coap_context=client, block_size=256, **FAST)
        assert (outcome.block_size, outcome.blocks) == (256, 20)
        assert bytes(sink.data) == DATA


async def test_coap_server_answering_with_smaller_blocks_than_requested_wins():
    async with await PackageHost.start(http=False, block_size=128) as host, coap_client() as c:
        sink = Sink()
        uri = host.add("app.bin", DATA).coap_uri
        outcome = await download(uri, sink, coap_context=c, block_size=1024, **FAST)
        assert outcome.block_size == 128
        assert bytes(sink.data) == DATA


async def test_coap_etag_change_mid_download_starts_over_once_with_the_new_package():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        sink = Sink()

        def sink_that_sees_a_new_release(chunk: bytes) -> None:
            sink(chunk)
            if len(sink.chunks) == 2:
                host.replace("app.bin", NEW)  # block 2 will carry another ETag

        outcome = await download(
            package.coap_uri,
            sink_that_sees_a_new_release,
            coap_context=client,
            on_restart=sink.restart,
            **FAST,
        )
        assert bytes(sink.data) == NEW
        assert (outcome.restarts, outcome.etag) == (1, package.etag)


async def test_coap_etag_change_without_on_restart_is_connection_lost():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)

        def sink(chunk: bytes) -> None:
            host.replace("app.bin", NEW)

        with pytest.raises(DownloadError, match="on_restart") as caught:
            await download(package.coap_uri, sink, coap_context=client, **FAST)
        assert caught.value.result is UpdateResult.CONNECTION_LOST


async def test_coap_package_that_keeps_changing_is_connection_lost():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        releases = iter(range(100))

        def sink(chunk: bytes) -> None:
            host.replace("app.bin", bytes([next(releases)]) * 3000)

        with pytest.raises(DownloadError, match="starting over already") as caught:
            await download(
                package.coap_uri, sink, coap_context=client, on_restart=lambda: None, **FAST
            )
        assert caught.value.result is UpdateResult.CONNECTION_LOST


async def test_coap_lost_datagrams_are_retransmitted_by_the_message_layer():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        host.drop_next(2)  # the request and its first retransmission
        sink = Sink()
        outcome = await download(package.coap_uri, sink, coap_context=client, **FAST)
        assert bytes(sink.data) == DATA
        assert (outcome.retries, host.dropped, package.coap_requests) == (0, 2, 5)


async def test_coap_block_is_retried_when_the_retransmissions_give_up():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        host.drop_next(5)  # the request and all MAX_RETRANSMIT = 4 retransmissions
        sink = Sink()
        outcome = await download(package.coap_uri, sink, coap_context=client, **FAST)
        assert bytes(sink.data) == DATA
        assert (outcome.retries, host.dropped, package.coap_requests) == (1, 5, 5)


@dataclass(frozen=True)
class Sent:
    """A request as it left for ``context.request`` (aiocoap fills in ``remote`` later)."""

    by_name: bool  #: the remote is the URI's host, to be resolved; else a resolved address
    hostinfo: str
    uri_path: tuple[str, ...]
    uri_query: tuple[str, ...]
    uri_host: str | None


def record_requests(context: Context) -> list[Sent]:
    """The requests the downloader sends through ``context``, in order."""
    sent: list[Sent] = []
    request = context.request

    def recording(message: Message, **options: object):
        remote = message.remote
        by_name = isinstance(remote, UndecidedRemote)
        opt = message.opt
        sent.append(Sent(by_name, remote.hostinfo, opt.uri_path, opt.uri_query, opt.uri_host))
        return request(message, **options)

    context.request = recording  # type: ignore[method-assign]
    return sent


async def test_coap_blocks_after_the_first_go_to_the_address_it_came_from():
    # Only the first GET names the host (aiocoap resolves it); the later blocks reuse the
    # address of the answer, as aiocoap's own block-wise GET does: no name lookup per block.
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        sent = record_requests(client)
        package = host.add("app.bin", DATA)
        await download(package.coap_uri, Sink(), coap_context=client, **FAST)
        assert [r.by_name for r in sent] == [True, False, False, False, False]
        assert {r.hostinfo for r in sent} == {package.coap_uri.split("/")[2]}
        on_the_wire = {(r.uri_host, r.uri_path, r.uri_query) for r in sent}
        assert on_the_wire == {(None, ("app.bin",), ())}  # the same request every time


async def test_coap_retried_block_resolves_the_host_again():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        sent = record_requests(client)
        package = host.add("app.bin", DATA)
        sink = Sink()

        def sink_that_loses_the_next_block(chunk: bytes) -> None:
            sink(chunk)
            if len(sink.chunks) == 1:
                host.drop_next(5)  # the second block's request and all its retransmissions

        outcome = await download(
            package.coap_uri, sink_that_loses_the_next_block, coap_context=client, **FAST
        )
        assert bytes(sink.data) == DATA
        assert outcome.retries == 1
        assert [r.by_name for r in sent] == [True, False, True, False, False, False]


async def test_coap_download_leaves_the_context_free_for_other_requests():
    async with (
        await PackageHost.start(http=False) as host,
        await PackageHost.start(http=False) as other,
        coap_client() as client,
    ):
        host.drop_next(3)  # the download waits for retransmissions of its first block
        sink = Sink()
        pulling = asyncio.create_task(
            download(host.add("app.bin", DATA).coap_uri, sink, coap_context=client, **FAST)
        )
        request = Message(code=GET, uri=other.add("status", b"ok").coap_uri)
        response = await client.request(request, handle_blockwise=False).response
        assert response.payload == b"ok"
        assert not pulling.done()
        await pulling
        assert bytes(sink.data) == DATA


async def test_coap_failed_download_can_be_resumed_from_its_error():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        sink = Sink()

        def sink_then_network_down(chunk: bytes) -> None:
            sink(chunk)
            if len(sink.chunks) == 3:
                host.drop_next(1000)

        with pytest.raises(DownloadError) as caught:
            await download(
                package.coap_uri, sink_then_network_down, coap_context=client, retries=1, **FAST
            )
        assert caught.value.result is UpdateResult.CONNECTION_LOST
        assert caught.value.resume == Resume(3072, package.etag, 1024)

        host.drop_next(0)
        outcome = await download(
            package.coap_uri, sink, coap_context=client, resume=caught.value.resume, **FAST
        )
        assert bytes(sink.data) == DATA
        assert (outcome.resumed_from, outcome.bytes_received) == (3072, 5000 - 3072)


async def test_coap_resume_from_inside_a_block_skips_the_bytes_already_there():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        sink = Sink(DATA[:3000])
        outcome = await download(
            package.coap_uri,
            sink,
            coap_context=client,
            resume=Resume(3000, package.etag),
            **FAST,
        )
        assert bytes(sink.data) == DATA
        assert sink.chunks == [3072 - 3000, 1024, 904]
        assert (outcome.resumed_from, package.coap_requests) == (3000, 3)  # blocks 2, 3, 4


async def test_coap_resume_with_a_stale_etag_starts_over():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", NEW)
        sink = Sink(DATA[:3000])
        outcome = await download(
            package.coap_uri,
            sink,
            coap_context=client,
            resume=Resume(3000, b"old-etag"),
            on_restart=sink.restart,
            **FAST,
        )
        assert bytes(sink.data) == NEW
        assert (outcome.restarts, outcome.resumed_from) == (1, 0)


async def test_coap_not_found_is_invalid_uri():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        uri = f"coap://127.0.0.1:{host.coap_port}/missing.bin"
        with pytest.raises(DownloadError, match=r"4\.04") as caught:
            await download(uri, Sink(), coap_context=client, **FAST)
        assert caught.value.result is UpdateResult.INVALID_URI


async def test_coap_nothing_listening_is_connection_lost_after_the_retries():
    # ICMP port unreachable comes back at once (udp6 reads the socket's error queue); a
    # refused port is retried like a timeout: the service may be restarting.
    uri = f"coap://127.0.0.1:{closed_port(socket.SOCK_DGRAM)}/app.bin"
    async with coap_client() as client:
        with pytest.raises(DownloadError, match="gave up after 2 retries") as caught:
            await download(uri, Sink(), coap_context=client, retries=2, **FAST)
    assert caught.value.result is UpdateResult.CONNECTION_LOST
    assert caught.value.resume is None  # nothing arrived: nothing to resume


async def test_coap_address_the_socket_cannot_reach_is_invalid_uri():
    # The device's socket is bound to loopback; 192.0.2.1 (TEST-NET-1) is not reachable from it.
    async with coap_client() as client:
        with pytest.raises(DownloadError, match="cannot reach") as caught:
            await download("coap://192.0.2.1/app.bin", Sink(), coap_context=client, **FAST)
    assert caught.value.result is UpdateResult.INVALID_URI


# -- URIs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["coaps://[::1]/fw", "https://127.0.0.1/fw", "ftp://h/fw"])
async def test_unsupported_scheme_is_unsupported_protocol(uri):
    with pytest.raises(DownloadError, match="only coap:// and http://") as caught:
        await download(uri, Sink())
    assert caught.value.result is UpdateResult.UNSUPPORTED_PROTOCOL


@pytest.mark.parametrize(
    "uri", ["not a uri", "coap:/no-host", "coap://", "http://h:99999/fw", "coap://h/a b"]
)
async def test_malformed_uri_is_invalid_uri(uri):
    with pytest.raises(DownloadError, match="is not a URI") as caught:
        await download(uri, Sink())
    assert caught.value.result is UpdateResult.INVALID_URI


def test_protocols_offered_are_coap_and_http():
    assert PROTOCOLS == (Protocol.COAP, Protocol.HTTP)


# -- HTTP ------------------------------------------------------------------------------------------


async def test_http_download_equals_the_bytes():
    async with await PackageHost.start(coap=False) as host:
        package = host.add("app.bin", DATA)
        sink = Sink()
        outcome = await download(package.http_uri, sink, **FAST)
        assert bytes(sink.data) == DATA
        assert (outcome.size, outcome.etag, outcome.retries) == (5000, package.http_etag, 0)
        assert package.http_statuses == {200: 1}


async def test_http_download_uses_the_callers_session_and_leaves_it_open():
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        package = host.add("app.bin", DATA)
        for _ in range(2):
            sink = Sink()
            await download(package.http_uri, sink, http_session=session, **FAST)
            assert bytes(sink.data) == DATA
        assert not session.closed


async def test_http_resume_sends_range_and_if_match_and_gets_206():
    async with await PackageHost.start(coap=False) as host:
        package = host.add("app.bin", DATA)
        sink = Sink(DATA[:3000])
        resume = Resume(3000, package.http_etag)
        outcome = await download(package.http_uri, sink, resume=resume, **FAST)
        assert bytes(sink.data) == DATA
        assert (outcome.resumed_from, outcome.bytes_received) == (3000, 2000)
        assert package.http_statuses == {206: 1}


async def test_http_content_replaced_between_attempts_gets_412_and_starts_over():
    async with await PackageHost.start(coap=False) as host:
        package = host.add("app.bin", DATA)
        resume = Resume(3000, package.http_etag)
        host.replace("app.bin", NEW)
        sink = Sink(DATA[:3000])
        outcome = await download(
            package.http_uri, sink, resume=resume, on_restart=sink.restart, **FAST
        )
        assert bytes(sink.data) == NEW
        assert (outcome.restarts, outcome.etag) == (1, package.http_etag)
        assert package.http_statuses == {412: 1, 200: 1}


async def test_http_connection_cut_mid_body_is_resumed_with_a_range():
    async with await PackageHost.start(coap=False) as host:
        package = host.add("app.bin", DATA)
        host.fail_after(2500)
        sink = Sink()
        outcome = await download(package.http_uri, sink, **FAST)
        assert bytes(sink.data) == DATA
        assert (outcome.retries, outcome.resumed_from) == (1, 0)
        assert package.http_statuses == {200: 1, 206: 1}


async def test_http_not_found_is_invalid_uri():
    async with await PackageHost.start(coap=False) as host:
        uri = f"http://127.0.0.1:{host.http_port}/missing.bin"
        with pytest.raises(DownloadError, match="404") as caught:
            await download(uri, Sink(), **FAST)
    assert caught.value.result is UpdateResult.INVALID_URI


async def test_http_nothing_listening_is_connection_lost_after_the_retries():
    uri = f"http://127.0.0.1:{closed_port(socket.SOCK_STREAM)}/app.bin"
    with pytest.raises(DownloadError, match="gave up after 1 retries") as caught:
        await download(uri, Sink(), retries=1, **FAST)
    assert caught.value.result is UpdateResult.CONNECTION_LOST


# -- the sink and progress -------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["coap", "http"])
async def test_flash_without_room_for_the_package_aborts_with_not_enough_flash(scheme):
    bootloader = Bootloader(EmulatedFlash("nrf52840-internal"), device_type="demo")
    handlers = FlashFirmwareHandlers(bootloader)
    image = bytes(bootloader.staging_slot.size)  # the header says: more than the slot holds
    too_big = bytes(Package.build(image, name="app", version="2.0", device_type="demo"))
    async with await PackageHost.start() as host:
        package = host.add("big.bin", too_big)
        uri = package.coap_uri if scheme == "coap" else package.http_uri
        handlers.begin(uri)
        with pytest.raises(DownloadError) as caught:
            await download(uri, handlers.write_chunk, **FAST)
    assert caught.value.result is UpdateResult.NOT_ENOUGH_FLASH


async def test_flash_handlers_are_the_usual_sink_of_a_pull():
    bootloader = Bootloader(EmulatedFlash("nrf52840-internal"), device_type="demo")
    handlers = FlashFirmwareHandlers(bootloader)
    image = random.Random(7).randbytes(20_000)
    built = bytes(Package.build(image, name="app", version="2.0", device_type="demo"))
    async with await PackageHost.start(http=False) as host:
        uri = host.add("app.bin", built).coap_uri
        handlers.begin(uri)
        await download(uri, handlers.write_chunk, on_restart=lambda: handlers.begin(uri), **FAST)
    assert handlers.finish() is UpdateResult.SUCCESS
    assert (handlers.staged.version, handlers.staged.size) == ("2.0", len(built))


@pytest.mark.parametrize("scheme", ["coap", "http"])
async def test_progress_grows_with_every_chunk_up_to_the_size(scheme):
    async with await PackageHost.start() as host:
        package = host.add("app.bin", DATA)
        reports: list[tuple[int, int | None]] = []
        uri = package.coap_uri if scheme == "coap" else package.http_uri
        await download(uri, Sink(), progress=lambda got, total: reports.append((got, total)))
    received = [got for got, _ in reports]
    assert received == sorted(set(received))
    assert reports[-1] == (5000, 5000)
    assert {total for _, total in reports} == {5000}


# -- the windowed option --------------------------------------------------------------------------

BIG = random.Random(7).randbytes(20_000)  # twenty blocks of 1024 B (the last one short)


async def test_a_window_of_block2_requests_delivers_the_bytes_in_order():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", BIG)
        sink = Sink()
        outcome = await download(package.coap_uri, sink, coap_context=client, window=4, **FAST)
        assert bytes(sink.data) == BIG
        assert sink.chunks == [1024] * 19 + [544]
        assert (outcome.blocks, outcome.etag) == (20, package.etag)
        assert package.coap_requests == 20  # Size2 told where the package ends: no extra GETs


async def test_a_lost_request_in_the_window_is_asked_for_again():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", BIG)
        sink = Sink()
        host.drop_next(1)  # the first GET is lost and retransmitted (it is confirmable)
        outcome = await download(package.coap_uri, sink, coap_context=client, window=4, **FAST)
        assert bytes(sink.data) == BIG
        assert outcome.blocks == 20


async def test_a_lost_non_confirmable_block_resumes_from_the_first_block_missing():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", BIG)
        sink = Sink()

        def sink_that_loses_the_next_request(chunk: bytes) -> None:
            sink(chunk)
            if len(sink.chunks) == 1:
                host.drop_next(1)  # one of the window's non-confirmable GETs vanishes

        outcome = await download(
            package.coap_uri, sink_that_loses_the_next_request, coap_context=client, window=4,
            **FAST,
        )  # fmt: skip
        assert bytes(sink.data) == BIG
        assert outcome.retries == 1


async def test_a_package_changing_under_a_window_starts_over_once():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", BIG)
        sink = Sink()

        def sink_that_sees_a_new_release(chunk: bytes) -> None:
            sink(chunk)
            if len(sink.chunks) == 3:
                host.replace("app.bin", NEW)

        outcome = await download(
            package.coap_uri, sink_that_sees_a_new_release, coap_context=client, window=4,
            on_restart=sink.restart, **FAST,
        )  # fmt: skip
        assert bytes(sink.data) == NEW
        assert outcome.restarts == 1


@pytest.mark.parametrize("window", [0, -1, 1.5, True])
def test_a_window_must_be_a_positive_number_of_requests(window):
    with pytest.raises(ValueError, match="Block2 requests in flight"):
        CoapDownloader("coap://127.0.0.1/x", lambda chunk: None, window=window)
