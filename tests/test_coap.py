"""lwm2m_edu.coap: the aiocoap contexts every endpoint of the package opens, on real UDP.

The ICMP tests need no timing: on loopback the "port unreachable" comes back while the first
datagram is still being sent, so two requests started together show the error at once.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiocoap
import aiocoap.resource
import pytest
from aiocoap import CONTENT, GET, Message

from lwm2m_edu.coap import ADDRESS_CACHE_SIZE, memoize_address_parsing, open_context

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the error queue (IP_RECVERR) is Linux's"
)


class _Hello(aiocoap.resource.Resource):
    async def render_get(self, request: Message) -> Message:
        return Message(code=CONTENT, payload=b"hello")


@asynccontextmanager
async def peers() -> AsyncIterator[tuple[aiocoap.Context, str, str]]:
    """Our context, the URI of a live peer, and the URI of a port nobody listens on."""
    site = aiocoap.resource.Site()
    site.add_resource([], _Hello())
    live, live_port = await open_context(site, "127.0.0.1")
    ours, _ = await open_context(None, "127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    try:
        yield ours, f"coap://127.0.0.1:{live_port}/", f"coap://127.0.0.1:{closed_port}/"
    finally:
        await ours.shutdown()
        await live.shutdown()


async def test_a_request_to_a_closed_port_fails_with_connection_refused():
    async with peers() as (ours, _, closed):
        request = ours.request(Message(code=GET, uri=closed))
        with pytest.raises(aiocoap.error.NetworkError) as failure:
            await request.response
        assert isinstance(failure.value.__cause__, ConnectionRefusedError)


async def test_a_closed_port_does_not_fail_a_request_to_another_peer_sent_right_after():
    async with peers() as (ours, live, closed):
        to_closed = ours.request(Message(code=GET, uri=closed))
        to_live = ours.request(Message(code=GET, uri=live))
        with pytest.raises(aiocoap.error.NetworkError):
            await to_closed.response
        assert (await to_live.response).payload == b"hello"


@pytest.mark.parametrize(
    "address",
    ["::ffff:127.0.0.1", "::1", "fe80::1", "2001:db8::1", socket.inet_pton(socket.AF_INET6, "::1")],
)
def test_memoized_address_parsing_gives_the_answers_of_the_plain_one(address):
    from aiocoap.transports.udp6 import UDP6EndpointAddress

    memoized = UDP6EndpointAddress._strip_v4mapped
    assert memoized.cache_info().maxsize == ADDRESS_CACHE_SIZE  # on by importing lwm2m_edu.coap
    assert memoized(address) == memoized.__wrapped__(address) == memoized(address)


class _Interface:
    """Stands in for the transport an address belongs to (kept by weak reference)."""


_INTERFACE = _Interface()


def _udp6_address(host: str, local: str | None = None):
    from aiocoap.transports.udp6 import UDP6EndpointAddress

    pktinfo = None
    if local is not None:  # struct in6_pktinfo: the local address, then the interface index
        pktinfo = struct.pack("16sI", socket.inet_pton(socket.AF_INET6, local), 0)
    return UDP6EndpointAddress((host, 5683, 0, 0), _INTERFACE, pktinfo=pktinfo)


@pytest.mark.parametrize(
    "host", ["::ffff:127.0.0.1", "::ffff:224.0.1.187", "::1", "ff02::fd", "2001:db8::1"]
)
def test_memoized_multicast_tests_give_the_answers_of_the_plain_ones(host):
    from aiocoap.transports.udp6 import UDP6EndpointAddress

    address = _udp6_address(host, local=host)
    memoized = (address.is_multicast, address.is_multicast_locally)
    memoize_address_parsing(False)
    try:
        assert not hasattr(UDP6EndpointAddress._strip_v4mapped, "cache_info")
        assert (address.is_multicast, address.is_multicast_locally) == memoized
    finally:
        memoize_address_parsing()
    assert memoized[0] == ("224.0.1.187" in host or host.startswith("ff"))


def test_address_parsing_can_be_switched_back_to_aiocoaps_own():
    from aiocoap.transports.udp6 import UDP6EndpointAddress

    memoize_address_parsing(False)
    try:
        assert not hasattr(UDP6EndpointAddress._strip_v4mapped, "cache_info")
    finally:
        memoize_address_parsing()
    assert hasattr(UDP6EndpointAddress._strip_v4mapped, "cache_info")
