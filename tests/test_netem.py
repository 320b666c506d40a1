"""The impairment proxy ``netem.Link``, with real UDP on 127.0.0.1 and free ports.

The link's random decisions are seeded; the event loop's timing and aiocoap's randomized
retransmission timeouts are not. So these tests assert on outcomes (the exact bytes arrived,
the Update Result, counters that must be positive or equal), never on exact timings. CoAP
timeouts are shortened with ``transport_tuning`` / ``timeout=`` so each test takes a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiocoap import CONTENT, GET, Context, Message, error
from aiocoap.numbers.constants import TransportTuning

from lwm2m_edu.coap import open_context
from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.download import DownloadError, download, transport_tuning
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.hosting import PackageHost
from lwm2m_edu.netem import Link
from lwm2m_edu.server import FirmwareStatus, Server
from lwm2m_edu.trace import Trace

IMAGE = random.Random(7).randbytes(8 * 1024 + 100)  # 33 blocks of 256 B, the last one short
#: a block gives up after 0.5 s of retransmissions (first one after ~11 ms), retried quickly
FAST = {"timeout": 0.5, "retries": 8, "retry_delay": 0.02, "block_size": 256}


@asynccontextmanager
async def coap_client() -> AsyncIterator[Context]:
    context, _ = await open_context(None, "127.0.0.1")
    try:
        yield context
    finally:
        await context.shutdown()


@asynccontextmanager
async def hosted(**conditions: object) -> AsyncIterator[tuple[Link, str]]:
    """A PackageHost serving IMAGE, a Link in front of it, and the package's URI via the link."""
    async with await PackageHost.start(http=False) as host:
        package = host.add("fw.bin", IMAGE)
        async with await Link.start(("127.0.0.1", host.coap_port), **conditions) as link:
            yield link, link.uri_for(package.coap_uri)


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, chunk: bytes) -> None:
        self.data += chunk

    def restart(self) -> None:
        self.data.clear()


async def pull(uri: str, context: Context, **options: object) -> tuple[Sink, object]:
    sink = Sink()
    outcome = await download(
        uri, sink, coap_context=context, on_restart=sink.restart, **{**FAST, **options}
    )
    return sink, outcome


# -- plain CoAP through the link -------------------------------------------------------------


async def test_a_get_through_a_lossless_link_counts_both_directions() -> None:
    async with hosted() as (link, uri), coap_client() as client:
        assert uri.startswith(link.uri + "/")
        response = await client.request(Message(code=GET, uri=uri)).response
        assert response.code == CONTENT
        assert response.payload == IMAGE[: len(response.payload)]
        for direction in (link.stats.up, link.stats.down):
            assert direction.received == direction.sent >= 1
            assert direction.dropped == direction.duplicated == direction.reordered == 0
            assert direction.bytes > 0
        assert link.stats.down.bytes >= len(response.payload)
        assert len(link.clients) == 1


async def test_with_total_loss_a_request_times_out() -> None:
    async with hosted(loss=1.0) as (link, uri), coap_client() as client:
        request = Message(code=GET, uri=uri, transport_tuning=transport_tuning(0.5))
        with pytest.raises(error.TimeoutError):
            await client.request(request).response
        assert link.stats.up.dropped == link.stats.up.received == 5  # 1 + MAX_RETRANSMIT
        assert link.stats.up.sent == link.stats.down.received == 0


# -- Block2 pulls under impairment -----------------------------------------------------------


@pytest.mark.parametrize(
    "conditions",
    [
        {"loss": 0.2, "seed": 1},
        {"duplicate": 0.3, "seed": 2},
        {"reorder": 0.3, "reorder_timeout": 0.05, "seed": 3},
        {"delay": 0.01, "jitter": 0.005, "seed": 4},
        {"loss": 0.1, "duplicate": 0.2, "reorder": 0.2, "reorder_timeout": 0.05, "seed": 5},
    ],
    ids=["loss", "duplicate", "reorder", "delay+jitter", "all"],
)
async def test_a_block2_pull_completes_with_the_exact_bytes(conditions: dict) -> None:
    async with hosted(**conditions) as (link, uri), coap_client() as client:
        sink, outcome = await pull(uri, client, timeout=1.0)
    assert bytes(sink.data) == IMAGE
    assert outcome.size == len(IMAGE)
    stats = link.stats
    if "loss" in conditions:
        assert stats.up.dropped + stats.down.dropped > 0
    if "duplicate" in conditions:
        assert stats.up.duplicated + stats.down.duplicated > 0
    if "reorder" in conditions:
        assert stats.up.reordered + stats.down.reordered > 0


async def test_a_pull_resumes_after_a_blackout_shorter_than_the_retry_budget() -> None:
    # Budget: 8 retries of (0.5 s of retransmissions + 0.02 s) ≈ 4 s; the blackout is 0.8 s.
    trace = Trace()
    async with hosted(trace=trace) as (link, uri), coap_client() as client:
        blackouts = []

        def progress(received: int, total: int | None) -> None:
            if received >= 2048 and not blackouts:
                blackouts.append(link.blackout(0, 0.8))

        sink, outcome = await pull(uri, client, progress=progress)
    assert bytes(sink.data) == IMAGE
    assert outcome.retries >= 1 and outcome.restarts == 0
    assert blackouts[0].ended
    texts = [event.text for event in trace.events]
    assert "link down (blackout for 0.8 s)" in texts
    assert "link up (blackout over)" in texts
    assert link.stats.up.dropped >= 1


async def test_a_blackout_longer_than_the_retry_budget_is_connection_lost_then_resumes() -> None:
    async with hosted() as (link, uri), coap_client() as client:
        blackouts = []

        def progress(received: int, total: int | None) -> None:
            if received >= 2048 and not blackouts:
                blackouts.append(link.blackout(0, 10.0))

        sink = Sink()
        with pytest.raises(DownloadError) as failed:
            await download(
                uri, sink, coap_context=client, progress=progress,
                **{**FAST, "timeout": 0.3, "retries": 2},
            )  # fmt: skip
        assert failed.value.result is UpdateResult.CONNECTION_LOST
        assert link.is_down
        resume = failed.value.resume
        assert resume is not None and resume.offset == len(sink.data) >= 2048

        blackouts[0].cancel()  # the device is back in coverage: continue where it stopped
        assert not link.is_down
        outcome = await download(uri, sink, coap_context=client, resume=resume, **FAST)
    assert bytes(sink.data) == IMAGE
    assert outcome.resumed_from == resume.offset


async def test_down_blocks_everything_inside_it() -> None:
    async with hosted() as (link, uri), coap_client() as client:
        async with link.down():
            assert link.is_down
            with pytest.raises(DownloadError) as failed:
                await pull(uri, client, timeout=0.2, retries=0)
            assert failed.value.result is UpdateResult.CONNECTION_LOST
        assert not link.is_down
        sink, _ = await pull(uri, client)
    assert bytes(sink.data) == IMAGE


# -- seeded decisions ------------------------------------------------------------------------


async def test_the_same_seed_gives_the_same_decisions() -> None:
    async def decisions(seed: int) -> list:
        async with await Link.start(("127.0.0.1", 9), loss=0.3, jitter=0.1, seed=seed) as link:
            return [link.decide(d, 100) for d in ("up", "down", "up") * 50]

    first, again, other = await decisions(1), await decisions(1), await decisions(2)
    assert first == again
    assert first != other
    assert 0 < sum(d.drop for d in first) < len(first)
    assert all(0 <= d.delay <= 0.1 for d in first)


async def test_the_same_seed_drops_the_same_datagrams_of_a_sequential_exchange() -> None:
    async def survivors(seed: int) -> list[int]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
            target.bind(("127.0.0.1", 0))
            target.setblocking(False)
            async with await Link.start(target.getsockname(), loss=0.3, seed=seed) as link:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                    sender.bind(("127.0.0.1", 0))
                    for number in range(40):
                        sender.sendto(number.to_bytes(2, "big"), link.address)
                        while link.stats.up.received <= number:  # strictly one after the other
                            await asyncio.sleep(0.001)
                    while link.stats.up.sent + link.stats.up.dropped < 40:
                        await asyncio.sleep(0.001)
                    await asyncio.sleep(0.02)  # the upstream socket opens asynchronously
                    arrived = []
                    with contextlib.suppress(BlockingIOError):
                        while True:
                            arrived.append(int.from_bytes(target.recv(16), "big"))
                    assert len(arrived) == link.stats.up.sent
                    return arrived

    first, again, other = await survivors(3), await survivors(3), await survivors(4)
    assert first == again
    assert first != other
    assert 0 < len(first) < 40


async def test_conditions_are_checked_and_can_change_while_running() -> None:
    with pytest.raises(ValueError, match="probability"):
        await Link.start(("127.0.0.1", 9), loss=1.5)
    with pytest.raises(ValueError, match="loopback"):
        await Link.start(("127.0.0.1", 9), host="0.0.0.0")
    trace = Trace()
    async with await Link.start(("127.0.0.1", 9), trace=trace, name="nb-iot") as link:
        with pytest.raises(TypeError, match="unknown link condition"):
            link.set(los=0.1)
        link.set(loss=0.5, rate=2000)
        assert (link.loss, link.rate) == (0.5, 2000.0)
        assert trace.events[-1].node == "nb-iot"
        assert "loss 50%" in repr(link) and "rate 2000 B/s" in repr(link)
        assert "<table>" in link._repr_html_()
        with pytest.raises(ValueError, match="target"):
            link.uri_for("coap://127.0.0.1:10/fw.bin")
        assert link.uri_for("/fw.bin") == link.uri + "/fw.bin"
        assert link.uri_for("coap://127.0.0.1:9/a/b?x=1") == link.uri + "/a/b?x=1"
        planned = link.blackout(5, 1)
    assert "stopped" in repr(link)
    assert not planned.started  # stop() cancelled its timer


async def test_rate_and_delay_hold_datagrams_back() -> None:
    # Lower bounds only: a link may be slower than asked (a busy machine), never faster.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        async with await Link.start(target.getsockname(), rate=10_000, delay=0.05) as link:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                started = loop.time()
                for _ in range(4):
                    sender.sendto(bytes(500), link.address)  # 4 x 50 ms of serialization
                target.setblocking(False)
                got = 0
                while got < 4:
                    try:
                        got += len(target.recv(1000)) // 500
                    except BlockingIOError:
                        await asyncio.sleep(0.005)
                elapsed = loop.time() - started
    assert elapsed >= 0.2 + 0.05 - 0.01
    assert link.stats.up.bytes == 2000


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.mark.skipif(sys.platform != "linux", reason="reads ICMP errors with IP_RECVERR (Linux)")
async def test_a_client_whose_socket_closed_loses_its_upstream_socket() -> None:
    trace = Trace()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        target.settimeout(2)
        async with await Link.start(target.getsockname(), trace=trace) as link:
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.bind(("127.0.0.1", 0))
            client.sendto(b"hello", link.address)
            _, upstream = await asyncio.to_thread(target.recvfrom, 16)
            assert link.clients == [client.getsockname()]
            client.close()  # the device reboots
            target.sendto(b"are you there?", upstream)  # the link's send to it meets ICMP
            await eventually(lambda: not link.clients)
    assert any("port is unreachable" in event.text for event in trace.events)


async def test_an_idle_timeout_forgets_quiet_clients_like_a_nat() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        async with await Link.start(target.getsockname(), idle_timeout=0.1) as link:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.sendto(b"hello", link.address)
                await eventually(lambda: len(link.clients) == 1)
                await eventually(lambda: not link.clients)


# -- a whole device update through the link --------------------------------------------------
#
# The LwM2M server and client use aiocoap's default transmission parameters (ACK_TIMEOUT 2 s,
# doubling): each lost datagram costs 2-3 s, a second loss of the same message 4-6 s more.
# ``Server`` has no knob for them (``request_timeout`` only caps the whole wait), so these
# tests shorten aiocoap's class default for their duration; ``request_timeout=3`` still
# leaves room for three retransmissions.


@pytest.fixture
def quick_coap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TransportTuning, "ACK_TIMEOUT", 0.2)


async def test_a_push_update_through_a_lossy_link_ends_idle_with_success(quick_coap: None) -> None:
    trace = Trace()
    async with await Server.start(request_timeout=3.0) as server:
        link = await Link.start(("127.0.0.1", server.port), loss=0.1, seed=11, trace=trace)
        device = EmulatedDevice("dev-netem")
        try:
            await device.start(link.uri)
            registered_from = server.registration("dev-netem").address
            outcome = await server.update(
                "dev-netem", factory_package("2.0.0", size=8 * 1024), mode="push", timeout=15
            )
            assert outcome.ok, outcome.steps
            assert outcome.status == FirmwareStatus(State.IDLE, UpdateResult.SUCCESS)
            assert device.running.version == "2.0.0"
            # The server saw the link's upstream sockets, one per client socket: the device
            # rebooted into a new socket, so it came back from a new address.
            assert outcome.reregistered
            assert server.registration("dev-netem").address != registered_from
            assert device.client is not None
            assert link.clients[-1] == device.client.address  # the old one may be closed already
        finally:
            await device.stop()
            await link.stop()
    assert link.stats.up.dropped + link.stats.down.dropped > 0  # the link really was lossy
    assert any(event.text.startswith("dropped") for event in trace.events)


async def test_a_lost_ack_of_execute_update_is_not_a_failed_update(quick_coap: None) -> None:
    async with await Server.start(request_timeout=2.0) as server:
        link = await Link.start(("127.0.0.1", server.port))
        device = EmulatedDevice("dev-ack")
        try:
            await device.start(link.uri)
            assert device.firmware is not None
            # Lose everything from the moment the device starts updating (its 2.04 to the
            # Execute included) until it has rebooted.
            device.firmware.observers.append(
                lambda step: link.set(loss=1.0) if step.state is State.UPDATING else None
            )
            device.on_boot.append(lambda device: link.set(loss=0.0))
            outcome = await server.update(
                "dev-ack", factory_package("2.0.0", size=2 * 1024), mode="push", timeout=10
            )
            assert device.running.version == "2.0.0"  # the update did happen
            assert outcome.ok, outcome.steps
        finally:
            await device.stop()
            await link.stop()
