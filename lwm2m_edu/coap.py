"""The few things every CoAP endpoint of the package needs from aiocoap, in one place.

Client, server, Bootstrap-Server, package host and downloaders all open an aiocoap context on
one UDP socket. Three details of aiocoap 0.4.17 matter to all of them and are handled only here:

* **Which transports.** ``udp6`` is aiocoap's full UDP transport (Linux only); elsewhere the
  simple ones. Naming them keeps aiocoap from also opening TCP, TLS and WebSocket listeners.
* **Which port.** Binding port 0 gives a free port, and aiocoap has no public way to say which;
  ``bound_port`` reads it from the socket under the context.
* **A busy port.** aiocoap sets SO_REUSEPORT on Linux, so a second context on a busy port binds
  *silently* and the two share the datagrams (a notebook cell run twice) — and even a bind to
  port 0 may be handed a port another such socket holds. This module switches that off for the
  process (aiocoap's documented ``AIOCOAP_REUSE_PORT=0``, unless the user set it) and
  ``open_context`` probes a fixed port first, so a busy port fails loudly instead.
* **An ICMP error reported twice.** A datagram to a port nobody listens on (a device that has
  just rebooted onto a new port) comes back as ICMP "port unreachable". With IP_RECVERR, which
  ``udp6`` sets, Linux reports it twice: in the socket's error queue, *with* the address it was
  for (aiocoap fails that peer's exchanges: right), and as a pending error that makes the
  socket's *next* ``sendmsg`` fail with ECONNREFUSED — whatever that send's destination. That
  datagram is not sent, and aiocoap blames its peer: one rebooting device would fail a request
  to another, healthy one (a fleet update shows it at once). ``open_context`` makes the
  transport send again past such a stale error (``STALE_ERRORS_SKIPPED`` times at most).
* **Addresses parsed again and again.** ``udp6`` turns a peer's address string into an
  ``ipaddress`` object on every datagram it sends (is it multicast?) and for every request it
  serves (a task name) — pure functions of a string that is almost always the same. In a fleet
  of 1000 devices that parsing was 13 % of all CPU time (``docs/performance.md``). This module
  memoizes those conversions (``memoize_address_parsing``); answers are unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import sys
from typing import Any

import aiocoap
import aiocoap.interfaces

__all__ = [
    "TRANSPORTS",
    "bound_address",
    "bound_port",
    "coap_uri",
    "memoize_address_parsing",
    "open_context",
    "send_past_stale_errors",
    "udp_transport",
]

# Every endpoint of the package must own its port (see the module docstring).
os.environ.setdefault("AIOCOAP_REUSE_PORT", "0")

#: The aiocoap transports every context of the package uses.
TRANSPORTS = ["udp6"] if sys.platform == "linux" else ["simple6", "simplesocketserver"]

#: Distinct peer addresses whose parsed form is kept (a fleet on loopback needs one).
ADDRESS_CACHE_SIZE = 4096


def memoize_address_parsing(enabled: bool = True) -> None:
    """Memoize (or, with ``enabled=False``, stop memoizing) udp6's address-string parsing.

    ``UDP6EndpointAddress._strip_v4mapped`` turns ``"::ffff:127.0.0.1"`` into ``"127.0.0.1"``
    through ``ipaddress.IPv6Address``, and ``is_multicast`` / ``is_multicast_locally`` parse that
    string again with ``ipaddress.ip_address``: about 11 µs and 3 µs here (0.1 µs memoized),
    several times per datagram. Done on import (see the module docstring); the switch is for
    benchmarks that compare both.
    """
    if sys.platform != "linux":
        return
    from aiocoap.transports.udp6 import UDP6EndpointAddress as Address

    if not _AS_SHIPPED:
        _AS_SHIPPED.update({name: Address.__dict__[name] for name in _MEMOIZED})
    if not enabled:
        for name, attribute in _AS_SHIPPED.items():
            setattr(Address, name, attribute)
        return
    strip = functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)(_AS_SHIPPED["_strip_v4mapped"].__func__)
    Address._strip_v4mapped = staticmethod(strip)  # type: ignore[method-assign]
    # aiocoap's own two tests, on the plain address strings (which the line above memoizes).
    Address.is_multicast = property(  # type: ignore[method-assign]
        lambda self: _is_multicast(self._plainaddress().split("%", 1)[0])
    )
    Address.is_multicast_locally = property(  # type: ignore[method-assign]
        lambda self: _is_multicast(self._plainaddress_local())
    )


#: The udp6 address attributes ``memoize_address_parsing`` replaces, and aiocoap's originals.
_MEMOIZED = ("_strip_v4mapped", "is_multicast", "is_multicast_locally")
_AS_SHIPPED: dict[str, Any] = {}


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _is_multicast(address: str) -> bool:
    return ipaddress.ip_address(address).is_multicast


memoize_address_parsing()


async def open_context(
    site: aiocoap.interfaces.Resource | None, host: str, port: int = 0
) -> tuple[aiocoap.Context, int]:
    """An aiocoap context serving ``site`` on ``(host, port)``, and the port it really got."""
    if port:
        _check_port_free(host, port)
    context = await aiocoap.Context.create_server_context(
        site, bind=(host, port), transports=TRANSPORTS
    )
    try:
        port = bound_port(context)
    except Exception:
        await context.shutdown()
        raise
    send_past_stale_errors(udp_transport(context))
    return context, port


#: How many pending errors one send skips before it lets aiocoap see the failure.
STALE_ERRORS_SKIPPED = 4


def send_past_stale_errors(transport: Any) -> None:
    """Let ``transport.sendmsg`` retry when the socket fails it with an earlier datagram's error.

    ECONNREFUSED cannot be about the datagram being sent: an unconnected UDP socket learns of
    a closed port only later, from ICMP. It is the pending error of an earlier datagram, which
    the error queue reports to the right peer as well (see the module docstring).
    """
    sendmsg = getattr(transport, "sendmsg", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sendmsg is None or sock is None:
        return

    def send(data: bytes, ancdata: list[Any], flags: int, address: Any) -> None:
        for _ in range(STALE_ERRORS_SKIPPED):
            try:
                sock.sendmsg((data,), ancdata, flags, address)
                return
            except ConnectionRefusedError:
                continue
            except OSError:
                break
        sendmsg(data, ancdata, flags, address)  # aiocoap's own send, and its error handling

    transport.sendmsg = send


def udp_transport(context: aiocoap.Context) -> asyncio.BaseTransport | None:
    """The asyncio UDP transport under an aiocoap context (aiocoap keeps it internal)."""
    for interface in context.request_interfaces:
        message_interface = getattr(
            getattr(interface, "token_interface", None), "message_interface", None
        )
        transport = getattr(message_interface, "transport", None)
        if transport is not None and transport.get_extra_info("socket") is not None:
            return transport
    return None


def bound_address(context: aiocoap.Context) -> tuple[str, int]:
    """The (host, port) the context's UDP socket is bound to."""
    transport = udp_transport(context)
    if transport is None:
        raise RuntimeError("the aiocoap context has no UDP socket")
    host, port = transport.get_extra_info("socket").getsockname()[:2]
    return host.removeprefix("::ffff:"), port


def bound_port(context: aiocoap.Context) -> int:
    """The UDP port the context really listens on (after binding port 0)."""
    return bound_address(context)[1]


def coap_uri(host: str, port: int) -> str:
    """``coap://127.0.0.1:5683``, or ``coap://[::1]:5683`` for an IPv6 address."""
    return f"coap://[{host}]:{port}" if ":" in host else f"coap://{host}:{port}"


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"UDP port {port} on {host} is in use (another server, or a notebook cell run "
                "twice?): stop that one first, or pass port=0 for a free port",
            ) from None
