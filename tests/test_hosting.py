"""PackageHost: packages served over real CoAP (Block2) and HTTP (Range) on loopback.

Each test starts a host on free ports and checks what a downloader sees on the wire, with
plain aiocoap and aiohttp clients. ``async def`` tests run through ``tests/conftest.py``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiocoap import BAD_REQUEST, CONTENT, GET, NOT_FOUND, Context, Message
from aiocoap.optiontypes import BlockOption

from lwm2m_edu.coap import bound_port
from lwm2m_edu.download import transport_tuning
from lwm2m_edu.hosting import PackageHost

DATA = bytes(range(256)) * 20  # 5120 bytes: five 1024-byte blocks


@asynccontextmanager
async def coap_client(host: str = "127.0.0.1") -> AsyncIterator[Context]:
    context = await Context.create_server_context(None, bind=(host, 0), transports=["udp6"])
    try:
        yield context
    finally:
        await context.shutdown()


async def coap_get(context: Context, uri: str, block2: tuple[int, int] | None = None) -> Message:
    """One GET, no library block-wise handling; ``block2`` is (NUM, SZX)."""
    request = Message(code=GET, uri=uri, transport_tuning=transport_tuning(2.0))
    if block2 is not None:
        request.opt.block2 = BlockOption.BlockwiseTuple(block2[0], False, block2[1])
    return await context.request(request, handle_blockwise=False).response


async def test_uris_name_the_loopback_address_and_the_bound_ports():
    async with await PackageHost.start() as host:
        package = host.add("fw/app-1.1.bin", DATA)
        assert host.coap_port and host.http_port
        assert package.coap_uri == f"coap://127.0.0.1:{host.coap_port}/fw/app-1.1.bin"
        assert package.http_uri == f"http://127.0.0.1:{host.http_port}/fw/app-1.1.bin"


async def test_ipv6_loopback_host_puts_the_address_in_brackets():
    async with await PackageHost.start("::1") as host, coap_client("::1") as client:
        package = host.add("app.bin", DATA)
        assert package.coap_uri == f"coap://[::1]:{host.coap_port}/app.bin"
        response = await coap_get(client, package.coap_uri)
        assert response.payload == DATA[:1024]


async def test_host_refuses_to_bind_a_non_loopback_address():
    with pytest.raises(ValueError, match="loopback"):
        await PackageHost.start("0.0.0.0")


async def test_coap_every_block_carries_the_etag_and_size2():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        blocks = [await coap_get(client, package.coap_uri, (n, 6)) for n in range(5)]
        assert [b.code for b in blocks] == [CONTENT] * 5
        assert {b.opt.etag for b in blocks} == {package.etag}
        assert {b.opt.size2 for b in blocks} == {len(DATA)}
        assert [b.opt.block2.more for b in blocks] == [True, True, True, True, False]
        assert b"".join(b.payload for b in blocks) == DATA
        assert package.coap_requests == 5


async def test_coap_first_get_without_block2_gets_the_hosts_block_size():
    async with await PackageHost.start(http=False, block_size=256) as host, coap_client() as c:
        response = await coap_get(c, host.add("app.bin", DATA).coap_uri)
        assert response.opt.block2 == (0, True, 4)
        assert response.payload == DATA[:256]


async def test_coap_request_for_bigger_blocks_gets_smaller_ones_holding_the_asked_byte():
    async with await PackageHost.start(http=False, block_size=256) as host, coap_client() as c:
        response = await coap_get(c, host.add("app.bin", DATA).coap_uri, (2, 6))  # byte 2048
        assert response.opt.block2 == (8, True, 4)  # 8 * 256 = 2048
        assert response.payload == DATA[2048:2304]


async def test_coap_any_block_can_be_asked_for_first():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        response = await coap_get(client, host.add("app.bin", DATA).coap_uri, (3, 6))
        assert response.payload == DATA[3072:4096]


async def test_coap_block_past_the_end_is_a_bad_request():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        response = await coap_get(client, host.add("app.bin", DATA).coap_uri, (5, 6))
        assert response.code == BAD_REQUEST


async def test_coap_small_package_comes_without_block2():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        response = await coap_get(client, host.add("tiny.bin", b"tiny").coap_uri)
        assert response.payload == b"tiny"
        assert response.opt.block2 is None


async def test_coap_unknown_and_removed_packages_are_not_found():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        host.remove("app.bin")
        assert (await coap_get(client, package.coap_uri)).code == NOT_FOUND
        assert (await coap_get(client, package.coap_uri + "x")).code == NOT_FOUND


async def test_replace_changes_content_and_etag_under_the_same_uri():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        old_etag = package.etag
        host.replace("app.bin", b"new")
        response = await coap_get(client, package.coap_uri)
        assert response.payload == b"new"
        assert response.opt.etag == package.etag != old_etag


async def test_drop_next_loses_requests_that_coap_retransmission_recovers():
    async with await PackageHost.start(http=False) as host, coap_client() as client:
        package = host.add("app.bin", DATA)
        host.drop_next(2)
        request = Message(code=GET, uri=package.coap_uri, transport_tuning=transport_tuning(1.0))
        response = await client.request(request, handle_blockwise=False).response
        assert response.payload == DATA[:1024]
        assert host.dropped == 2
        assert package.coap_requests == 1  # the third transmission got through


async def test_http_get_carries_a_strong_etag_and_accepts_ranges():
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        package = host.add("app.bin", DATA)
        async with session.get(package.http_uri) as response:
            assert response.status == 200
            assert response.headers["ETag"] == package.http_etag == f'"{package.etag.hex()}"'
            assert response.headers["Accept-Ranges"] == "bytes"
            assert await response.read() == DATA


async def test_http_range_gives_206_with_content_range():
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        package = host.add("app.bin", DATA)
        async with session.get(package.http_uri, headers={"Range": "bytes=5000-"}) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == "bytes 5000-5119/5120"
            assert await response.read() == DATA[5000:]
        assert package.http_statuses == {206: 1}


async def test_http_range_past_the_end_is_416():
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        package = host.add("app.bin", DATA)
        async with session.get(package.http_uri, headers={"Range": "bytes=5120-"}) as response:
            assert response.status == 416
            assert response.headers["Content-Range"] == "bytes */5120"


@pytest.mark.parametrize(
    ("if_match", "status"),
    [("{etag}", 206), ("*", 206), ('"0000"', 412), ("W/{etag}", 412)],
    ids=["same", "any", "other", "weak"],
)
async def test_http_if_match_with_range_continues_only_for_the_same_strong_etag(if_match, status):
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        package = host.add("app.bin", DATA)
        headers = {"Range": "bytes=100-", "If-Match": if_match.format(etag=package.http_etag)}
        async with session.get(package.http_uri, headers=headers) as response:
            assert response.status == status


async def test_http_head_has_the_headers_and_no_body():
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        package = host.add("app.bin", DATA)
        async with session.head(package.http_uri) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(DATA))
            assert response.headers["ETag"] == package.http_etag
            assert await response.read() == b""


async def test_http_unknown_package_is_404():
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{host.http_port}/nothing")
        response.release()
        assert response.status == 404


async def test_fail_after_cuts_the_next_http_body_only():
    async with await PackageHost.start(coap=False) as host, aiohttp.ClientSession() as session:
        package = host.add("app.bin", DATA)
        host.fail_after(3000)
        received = bytearray()
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(package.http_uri) as response:
                async for piece in response.content.iter_chunked(1024):
                    received += piece
        assert bytes(received) == DATA[:3000]
        async with session.get(package.http_uri) as response:
            assert await response.read() == DATA


async def test_stop_closes_both_ports():
    host = await PackageHost.start()
    coap_port, http_port = host.coap_port, host.http_port
    await host.stop()
    assert "stopped" in repr(host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", coap_port))  # no SO_REUSEPORT: fails while anyone holds it
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        assert tcp.connect_ex(("127.0.0.1", http_port)) != 0


async def test_repr_shows_addresses_and_packages():
    async with await PackageHost.start(http=False) as host:
        host.add("app.bin", b"x")
        assert repr(host) == f"<PackageHost coap://127.0.0.1:{host.coap_port} packages=['app.bin']>"


async def test_bound_port_reads_the_port_the_kernel_chose():
    async with coap_client() as client:
        port = bound_port(client)
        assert port != 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(OSError):
            udp.bind(("127.0.0.1", port))


def test_package_names_must_be_uri_path_segments():
    host = PackageHost("127.0.0.1", 1024)  # nothing started: names are checked before serving
    with pytest.raises(ValueError, match="path segments"):
        host.add("../etc/passwd x", b"")
