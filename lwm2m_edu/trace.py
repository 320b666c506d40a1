"""A recorder of every CoAP message a node sends and receives, for tables, charts and Wireshark.

A firmware update is a conversation: Register, a Write of 30 blocks each answered 2.31
Continue, an Execute, a silence while the device reboots, a new Register. ``Trace`` writes
that conversation down as it happens on the real sockets::

    trace = Trace()
    trace.attach(server)                 # the LwM2M server ("server")
    trace.attach(device)                 # an EmulatedDevice ("dev-1"), across its reboots
    await server.update("dev-1", package, mode="push")
    print(trace.table(limit=20))         # or just `trace` as the last line of a notebook cell
    trace.to_pcap("trace.pcap")          # for Wireshark

**What a trace shows.** One ``TraceRecord`` per CoAP message, taken at aiocoap's *message
layer*: what really went on the wire, with the real Message ID, type and token. So it shows
what the request/response API hides: piggybacked answers (an ACK that carries 2.31 Continue),
empty ACKs, RSTs, retransmissions (the same Message ID sent again), every Block1 block of a
push and every Block2 block of a pull, Observe notifications. Between the records sit
``TraceEvent``\\ s: a device's State / Update Result changes and its reboots.

**Each node records its own view.** A node is what was attached: ``"server"``, an endpoint
name such as ``"dev-1"``, ``"host"`` for a ``PackageHost``. It records what *it* sent and
received, so a message between two traced nodes appears **twice**: once as ``"sent"`` by one
node and once as ``"received"`` by the other (a few hundred microseconds later on loopback).
To draw one sequence chart, or to export a capture, use one node's view (``trace.view(node)``);
a message lost on the way then shows up only in the sender's view, as it should.

**Where the hooks sit** (aiocoap 0.4.17 internals, pinned; see ``coap.py``). Every context has
one ``MessageManager`` per transport (``context.request_interfaces[i].token_interface``):

* *received*: the transport hands every decoded datagram to ``dispatch_message(message)``,
  before duplicate detection — so retransmitted requests are recorded as they arrive;
* *sent*: first transmissions, retransmissions, piggybacked and empty ACKs, RSTs and the
  answers re-sent to duplicates all pass ``_send_via_transport(message)``, with the final
  Message ID, type and token set, right before the transport's ``send`` encodes them.

The hooks are instance attributes on the manager, wrapping what is there (so a
``PackageHost``'s ``drop_next`` still works: a request it drops was *received* by the socket and
is recorded, followed by a ``"dropped ..."`` event). ``detach()`` undoes them all. ``raw`` is
``message.encode()`` for sent messages; for received ones the same encoding of the decoded
message (byte-identical to the datagram for every encoder this package meets).

**Opening the capture in Wireshark.** ``to_pcap`` writes a classic libpcap file (raw IP) with
real IPv4 or IPv6 and UDP headers, the real loopback addresses and ports, and the record times.
Wireshark knows CoAP only on port 5683; for the free ports used here say which port is CoAP
(``trace.decode_as()`` gives the options)::

    wireshark -d udp.port==50123,coap trace.pcap        # then filter: coap
    tshark -r trace.pcap -d udp.port==50123,coap -Y coap

(in the Wireshark window: *Analyze → Decode As… → UDP port 50123 → CoAP*).

Times are monotonic seconds since the trace started (``Trace.started`` gives the wall-clock
start, used for the pcap timestamps). This module is an I/O edge like the client and the
server; the sans-I/O core never sees it.
"""

from __future__ import annotations

import html
import ipaddress
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

import aiocoap
from aiocoap.numbers.types import Type

__all__ = ["LINKTYPE_RAW", "Trace", "TraceEvent", "TraceRecord", "code_text"]

#: pcap link type "raw IP": each packet starts with an IPv4 or IPv6 header (tcpdump.org).
LINKTYPE_RAW = 101
_PCAP_MAGIC = 0xA1B2C3D4
_IN6_PKTINFO = struct.Struct("16sI")  # struct in6_pktinfo: the local address a datagram used


@dataclass(frozen=True)
class TraceRecord:
    """One CoAP message, as one node sent or received it."""

    time: float  #: seconds since the trace started (time.monotonic based)
    node: str  #: who recorded it: "server", an endpoint name like "dev-1", "host"
    direction: str  #: "sent" or "received"
    source: tuple[str, int]  #: (ip, port)
    destination: tuple[str, int]  #: (ip, port)
    type: str  #: "CON" | "NON" | "ACK" | "RST"
    code: str  #: dotted + name: "0.01 GET", "2.31 Continue", "0.00 Empty"
    mid: int  #: the Message ID
    token: bytes
    uri_path: str  #: "/5/0/0", "/rd", "" when none
    content_format: int | None
    block1: tuple[int, bool, int] | None  #: (number, more, size in bytes)
    block2: tuple[int, bool, int] | None  #: (number, more, size in bytes)
    size1: int | None
    size2: int | None
    observe: int | None
    etag: bytes | None
    payload_length: int
    raw: bytes  #: the encoded CoAP message, for pcap

    @property
    def peer(self) -> tuple[str, int]:
        """The other end, seen from the recording node."""
        return self.destination if self.direction == "sent" else self.source

    def options_text(self) -> str:
        """The options that matter for following an exchange, short: ``Block1 3/1/256 CF 42``."""
        parts = []
        if self.block1 is not None:
            parts.append(f"Block1 {self.block1[0]}/{int(self.block1[1])}/{self.block1[2]}")
        if self.block2 is not None:
            parts.append(f"Block2 {self.block2[0]}/{int(self.block2[1])}/{self.block2[2]}")
        if self.size1 is not None:
            parts.append(f"Size1 {self.size1}")
        if self.size2 is not None:
            parts.append(f"Size2 {self.size2}")
        if self.observe is not None:
            parts.append(f"Obs {self.observe}")
        if self.etag is not None:
            parts.append(f"ETag {self.etag.hex()}")
        if self.content_format is not None:
            parts.append(f"CF {self.content_format}")
        return " ".join(parts)


@dataclass(frozen=True)
class TraceEvent:
    """Something that is not a message: a State change, a reboot, a note from ``mark``."""

    time: float  #: seconds since the trace started
    node: str
    text: str  #: e.g. "State 2 DOWNLOADED, Update Result 0 INITIAL"


class Trace:
    """Records the CoAP messages of the nodes it is attached to (see the module docstring).

    ``attach`` a ``Server``, an ``EmulatedDevice``, a ``Client``, a ``PackageHost`` or a bare
    aiocoap ``Context`` (then give ``node=``); ``records`` and ``events`` fill as messages
    flow. ``len(trace)`` and ``iter(trace)`` are about the records.
    """

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self.events: list[TraceEvent] = []
        self._t0 = time.monotonic()
        #: wall-clock time (``time.time()``) at which the trace started: the pcap time base
        self.started = time.time()
        self._undo: list[Callable[[], None]] = []
        self._hooked: dict[int, object] = {}  # id(message manager) -> manager (keeps id unique)

    # -- attaching --------------------------------------------------------------------------------

    def attach(self, thing: Any, *, node: str | None = None) -> None:
        """Start recording ``thing``'s messages under the name ``node`` (a default per kind).

        * ``Server`` → ``"server"``; ``PackageHost`` → ``"host"``;
        * ``Client`` → its endpoint name; it may be attached before ``start()``;
        * ``EmulatedDevice`` → its endpoint name; also records its reboots (``"boot: ..."``)
          and every State / Update Result change of its /5 as events, and re-attaches to
          the new client after each reboot (a reboot rebuilds the client and its socket);
        * an aiocoap ``Context`` → ``node`` is required.
        """
        if isinstance(thing, aiocoap.Context):
            if node is None:
                raise TypeError("attach(context, node='name'): a bare context needs a node name")
            self._attach_context(thing, node)
        elif hasattr(thing, "on_boot") and hasattr(thing, "bootloader"):  # EmulatedDevice
            self._attach_device(thing, node or thing.endpoint)
        elif hasattr(thing, "data_model") and hasattr(thing, "endpoint"):  # Client
            self._attach_client(thing, node or thing.endpoint)
        elif hasattr(thing, "registry") and hasattr(thing, "context"):  # Server
            if thing.context is None:
                raise ValueError("the server is not started: attach after `await Server.start()`")
            self._attach_context(thing.context, node or "server")
        elif hasattr(thing, "packages") and hasattr(thing, "drop_next"):  # PackageHost
            if thing._coap is None:
                raise ValueError("the package host serves no CoAP (or is stopped)")
            self._attach_context(thing._coap, node or "host", host=thing)
        else:
            raise TypeError(
                f"cannot trace a {type(thing).__name__}: attach a Server, an EmulatedDevice, a "
                "Client, a PackageHost or an aiocoap Context (with node='name')"
            )

    def detach(self) -> None:
        """Stop recording: undo every hook (the records and events stay)."""
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            step()
        self._hooked.clear()

    def mark(self, node: str, text: str) -> None:
        """Add an event of your own, e.g. ``trace.mark("notebook", "unplugged the network")``."""
        self.events.append(TraceEvent(self._now(), node, text))

    def clear(self) -> None:
        """Forget the records and events and restart the clock; hooks stay attached."""
        self.records.clear()
        self.events.clear()
        self._t0 = time.monotonic()
        self.started = time.time()

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _attach_device(self, device: Any, node: str) -> None:
        hooked_firmware: list[Any] = []  # the /5 object of the current boot, once hooked

        def on_state(step: Any) -> None:
            self.mark(
                node,
                f"State {step.state.value} {step.state.name}, "
                f"Update Result {step.result.value} {step.result.name}",
            )

        def on_boot(device: Any) -> None:
            if device.boots:
                self.mark(node, f"boot: {device.boots[-1]}")
            if device.firmware is not None:
                device.firmware.observers.append(on_state)
                hooked_firmware[:] = [device.firmware]
            if device.client is not None:
                self._attach_client(device.client, node)

        def undo() -> None:
            if on_boot in device.on_boot:
                device.on_boot.remove(on_boot)
            for firmware in hooked_firmware:
                if on_state in firmware.observers:
                    firmware.observers.remove(on_state)

        device.on_boot.append(on_boot)
        self._undo.append(undo)
        if device.firmware is not None:  # already booted: hook what runs now
            device.firmware.observers.append(on_state)
            hooked_firmware[:] = [device.firmware]
        if device.client is not None:
            self._attach_client(device.client, node)

    def _attach_client(self, client: Any, node: str) -> None:
        if client.context is not None:
            self._attach_context(client.context, node)
        # The client opens its socket (a new context) in start(), and every request it sends
        # passes touch() first: hook the context there, before the first message (Register).
        if "touch" in vars(client):
            return  # this client is hooked already
        touch = client.touch

        def traced_touch() -> None:
            if client.context is not None:
                self._attach_context(client.context, node)
            touch()

        client.touch = traced_touch

        def undo() -> None:
            if vars(client).get("touch") is traced_touch:
                del client.touch

        self._undo.append(undo)

    def _attach_context(self, context: aiocoap.Context, node: str, host: Any = None) -> None:
        for interface in context.request_interfaces:
            manager = getattr(interface, "token_interface", None)
            if manager is None or not hasattr(manager, "_send_via_transport"):
                continue  # not a message-layer (UDP) transport
            if id(manager) in self._hooked:
                continue
            self._hooked[id(manager)] = manager
            self._hook_manager(manager, node, host)

    def _hook_manager(self, manager: Any, node: str, host: Any) -> None:
        local = _bound_address(manager)
        live = True
        had_dispatch = "dispatch_message" in vars(manager)
        had_send = "_send_via_transport" in vars(manager)
        dispatch = manager.dispatch_message
        send = manager._send_via_transport

        def traced_dispatch(message: aiocoap.Message) -> None:
            if not live:
                return dispatch(message)
            here = _local_address(message, local)
            self._record(node, "received", message, _remote_address(message), here)
            dropped = getattr(host, "dropped", 0)
            dispatch(message)
            if host is not None and host.dropped != dropped:
                self.mark(node, f"dropped request MID {message.mid} (PackageHost.drop_next)")

        def traced_send(message: aiocoap.Message) -> None:
            if live:
                here = _local_address(message, local)
                self._record(node, "sent", message, here, _remote_address(message))
            send(message)

        manager.dispatch_message = traced_dispatch
        manager._send_via_transport = traced_send

        def undo() -> None:
            nonlocal live
            live = False  # a hook that cannot be removed (wrapped again since) passes through
            if vars(manager).get("dispatch_message") is traced_dispatch:
                if had_dispatch:
                    manager.dispatch_message = dispatch
                else:
                    del manager.dispatch_message
            if vars(manager).get("_send_via_transport") is traced_send:
                if had_send:
                    manager._send_via_transport = send
                else:
                    del manager._send_via_transport

        self._undo.append(undo)

    def _record(
        self,
        node: str,
        direction: Literal["sent", "received"],
        message: aiocoap.Message,
        source: tuple[str, int],
        destination: tuple[str, int],
    ) -> None:
        opt = message.opt
        etag = opt.etag if opt.etag is not None else (opt.etags[0] if opt.etags else None)
        self.records.append(
            TraceRecord(
                time=self._now(),
                node=node,
                direction=direction,
                source=source,
                destination=destination,
                type=Type(message.mtype).name,
                code=code_text(message.code),
                mid=message.mid,
                token=bytes(message.token),
                uri_path="/" + "/".join(opt.uri_path) if opt.uri_path else "",
                content_format=None if opt.content_format is None else int(opt.content_format),
                block1=_block(opt.block1),
                block2=_block(opt.block2),
                size1=opt.size1,
                size2=opt.size2,
                observe=opt.observe,
                etag=None if etag is None else bytes(etag),
                payload_length=len(message.payload),
                raw=_encode(message),
            )
        )

    # -- reading ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)

    @property
    def nodes(self) -> list[str]:
        """The nodes that recorded something, in order of their first record or event."""
        entries = sorted([*self.records, *self.events], key=lambda entry: entry.time)
        return list(dict.fromkeys(entry.node for entry in entries))

    def view(self, node: str | None = None) -> list[TraceRecord]:
        """One node's records (default: the server's, else the first node's): no duplicates."""
        node = self._default_node() if node is None else node
        return [record for record in self.records if record.node == node]

    def _default_node(self) -> str:
        nodes = list(dict.fromkeys(record.node for record in self.records))
        if not nodes:
            raise ValueError("the trace has no records yet: attach it and exchange messages")
        return "server" if "server" in nodes else nodes[0]

    def _rows(self, limit: int | None) -> tuple[list[TraceRecord | TraceEvent], int]:
        """Records and events by time; with ``limit``, the first and last halves and the gap."""
        rows: list[TraceRecord | TraceEvent] = sorted(
            [*self.records, *self.events], key=lambda entry: entry.time
        )
        if limit is None or len(rows) <= limit:
            return rows, 0
        head = (limit + 1) // 2
        tail = limit - head
        return rows[:head] + (rows[-tail:] if tail else []), len(rows) - limit

    def table(self, limit: int | None = None) -> str:
        """A text table, one line per message (events interleaved by time, marked ``*``).

        ``→`` is sent, ``←`` received; ``peer`` is the other end. With ``limit``, at most
        that many lines: the first and the last ones, with a note of how many were left out.
        """
        rows, skipped = self._rows(limit)
        head = (
            f"{'time s':>8}  {'node':<8} {'':1} {'peer':<21} {'type':<4} {'mid':>5} "
            f"{'token':<8} {'code':<16} {'path':<8} {'bytes':>5}  options"
        )
        lines = [head, "-" * len(head)]
        half = (limit + 1) // 2 if skipped and limit is not None else None
        for index, row in enumerate(rows):
            if half is not None and index == half:
                lines.append(f"{'':>8}  … {skipped} more …")
            if isinstance(row, TraceEvent):
                lines.append(f"{row.time:8.3f}  {row.node:<8} * {row.text}")
                continue
            arrow = "→" if row.direction == "sent" else "←"
            lines.append(
                f"{row.time:8.3f}  {row.node:<8} {arrow} {_address_text(row.peer):<21} "
                f"{row.type:<4} {row.mid:>5} {row.token.hex()[:8]:<8} {row.code:<16} "
                f"{row.uri_path or '':<8} {row.payload_length:>5}  {row.options_text()}".rstrip()
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table(limit=40)

    def __repr__(self) -> str:
        nodes = ", ".join(self.nodes) or "nothing yet"
        return f"<Trace {len(self.records)} messages, {len(self.events)} events: {nodes}>"

    def _repr_html_(self, limit: int = 40) -> str:
        """A small HTML table for notebooks: the first and last rows when there are many."""
        rows, skipped = self._rows(limit)
        half = (limit + 1) // 2 if skipped else None
        columns = ["time s", "node", "", "peer", "type", "mid", "token", "code", "path"]
        columns += ["bytes", "options"]
        out = [
            "<table>",
            f"<caption>CoAP trace: {len(self.records)} messages, {len(self.events)} events"
            "</caption>",
            "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>",
        ]
        for index, row in enumerate(rows):
            if half is not None and index == half:
                out.append(f'<tr><td colspan="{len(columns)}">… {skipped} more …</td></tr>')
            if isinstance(row, TraceEvent):
                out.append(
                    f"<tr><td>{row.time:.3f}</td><td>{html.escape(row.node)}</td><td>*</td>"
                    f'<td colspan="{len(columns) - 3}"><i>{html.escape(row.text)}</i></td></tr>'
                )
                continue
            cells = [
                f"{row.time:.3f}",
                row.node,
                "→" if row.direction == "sent" else "←",
                _address_text(row.peer),
                row.type,
                str(row.mid),
                row.token.hex(),
                row.code,
                row.uri_path,
                str(row.payload_length),
                row.options_text(),
            ]
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        out.append("</table>")
        return "\n".join(out)

    # -- Wireshark --------------------------------------------------------------------------------

    def decode_as(self, node: str | None = None) -> list[str]:
        """Wireshark/tshark options that decode ``node``'s ports as CoAP (``-d udp.port==…``)."""
        records = self.view(node)
        ports = sorted(
            {record.source[1] for record in records if record.direction == "sent"}
            | {record.destination[1] for record in records if record.direction == "received"}
        )
        return [option for port in ports for option in ("-d", f"udp.port=={port},coap")]

    def to_pcap(self, path_or_file: str | Any | IO[bytes], *, node: str | None = None) -> None:
        """Write one node's view (default: the server's, else the first node's) as a pcap.

        Classic libpcap, link type 101 (raw IP): each packet is an IPv4 header (or IPv6 for
        IPv6 addresses; ``::ffff:a.b.c.d`` is written as IPv4) and a UDP header with correct
        lengths and checksums around the CoAP message, timestamped ``started + time``.
        Open it with ``wireshark <options from decode_as()> trace.pcap`` and filter ``coap``.
        """
        records = self.view(node) if self.records else []
        data = [struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_RAW)]
        for ident, record in enumerate(records):
            packet = _ip_udp_packet(record.source, record.destination, record.raw, ident)
            stamp = self.started + record.time
            seconds = int(stamp)
            micros = min(round((stamp - seconds) * 1_000_000), 999_999)
            data.append(struct.pack("<IIII", seconds, micros, len(packet), len(packet)))
            data.append(packet)
        blob = b"".join(data)
        if hasattr(path_or_file, "write"):
            path_or_file.write(blob)
        else:
            with open(path_or_file, "wb") as file:
                file.write(blob)


# -- message details --------------------------------------------------------------------------


def code_text(code: aiocoap.Code) -> str:
    """``0.01 GET``, ``2.31 Continue``, ``0.00 Empty``: the dotted code and its name."""
    code = aiocoap.Code(code)
    if code.is_request() and code.name_printable != "(Unknown)":
        return f"{code.dotted} {code.name}"  # methods are written in capitals: GET, PUT
    return f"{code.dotted} {code.name_printable}"


def _block(option: Any) -> tuple[int, bool, int] | None:
    if option is None:
        return None
    return (option.block_number, bool(option.more), option.size)


def _encode(message: aiocoap.Message) -> bytes:
    """The message's wire form. aiocoap's ``encode`` refuses received messages, so this is the
    same RFC 7252 encoding (header, token, options, payload marker, payload) for both."""
    data = bytes([(1 << 6) | ((int(message.mtype) & 0x03) << 4) | (len(message.token) & 0x0F)])
    data += struct.pack("!BH", int(message.code), message.mid)
    data += bytes(message.token) + message.opt.encode()
    if message.payload:
        data += b"\xff" + bytes(message.payload)
    return data


# -- addresses --------------------------------------------------------------------------------


def _plain(host: str) -> str:
    """``::ffff:127.0.0.1`` → ``127.0.0.1``; a scope (``%lo``) is dropped."""
    host = host.split("%", 1)[0]
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _bound_address(manager: Any) -> tuple[str, int] | None:
    transport = getattr(getattr(manager, "message_interface", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return None  # a transport with one socket per peer (simple6): see _local_address
    host, port = sock.getsockname()[:2]
    return _plain(host), port


def _remote_address(message: aiocoap.Message) -> tuple[str, int]:
    remote = message.remote
    sockaddr = getattr(remote, "sockaddr", None)  # udp6
    if sockaddr is not None:
        return _plain(sockaddr[0]), sockaddr[1]
    try:  # other transports: "host:port" or "[v6]:port"
        host, _, port = remote.hostinfo.rpartition(":")
        return _plain(host.strip("[]")), int(port)
    except (AttributeError, ValueError):
        return ("0.0.0.0", 0)


def _local_address(message: aiocoap.Message, bound: tuple[str, int] | None) -> tuple[str, int]:
    """Our side of a message: the address it arrived at (pktinfo) or the socket's own."""
    port = bound[1] if bound else 0
    pktinfo = getattr(message.remote, "pktinfo", None)
    if pktinfo is not None and len(pktinfo) >= _IN6_PKTINFO.size:
        address, _ = _IN6_PKTINFO.unpack_from(pktinfo)
        return _plain(socket.inet_ntop(socket.AF_INET6, address)), port
    if bound is not None and not ipaddress.ip_address(bound[0]).is_unspecified:
        return bound
    peer = _remote_address(message)[0]  # bound to a wildcard: assume loopback of that family
    return ("::1" if ":" in peer else "127.0.0.1"), port


def _address_text(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- pcap packets -----------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_udp_packet(
    source: tuple[str, int], destination: tuple[str, int], payload: bytes, ident: int
) -> bytes:
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:  # one side IPv4, the other IPv6: write both as IPv6
        src, dst = (
            ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a for a in (src, dst)
        )
    udp_length = 8 + len(payload)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_length)
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", udp_length, socket.IPPROTO_UDP)
    udp = struct.pack("!HHHH", source[1], destination[1], udp_length, 0) + payload
    udp_checksum = _checksum(pseudo + udp) or 0xFFFF  # 0 would mean "no checksum"
    udp = udp[:6] + struct.pack("!H", udp_checksum) + udp[8:]
    if src.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_length, ident & 0xFFFF, 0x4000, 64,
            socket.IPPROTO_UDP, 0, src.packed, dst.packed,
        )  # fmt: skip
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return header + udp
    header = struct.pack("!IHBB16s16s", 6 << 28, udp_length, socket.IPPROTO_UDP, 64,
                         src.packed, dst.packed)  # fmt: skip
    return header + udp
