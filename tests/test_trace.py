"""Trace: every CoAP message of a real update on loopback, as each node saw it, and as a pcap.

The server and the emulated device exchange real UDP datagrams on free loopback ports; the
trace hooks aiocoap's message layer, so the tests see the real Message IDs, piggybacked 2.31
answers, the device's new socket after its reboot and retransmissions of lost requests. The
pcap test decodes the capture with the real ``tshark`` (skipped only when it is missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import socket
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiocoap import GET, Context, Message

from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.download import transport_tuning
from lwm2m_edu.hosting import PackageHost
from lwm2m_edu.server import Server
from lwm2m_edu.trace import LINKTYPE_RAW, Trace, TraceRecord, code_text

NEW = factory_package("2.0.0", size=8 * 1024)
BLOCKS = -(-len(bytes(NEW)) // 256)  # Block1 PUTs of 256 bytes
TSHARK = shutil.which("tshark")


@contextlib.asynccontextmanager
async def traced(
    endpoint: str = "dev-1", host: str = "127.0.0.1"
) -> AsyncIterator[tuple[Trace, Server, EmulatedDevice]]:
    """A server and a device, both traced from before the device boots; all shut down after."""
    trace = Trace()
    server = await Server.start(host)
    device = EmulatedDevice(endpoint, host=host)
    try:
        trace.attach(server)
        trace.attach(device)
        await device.start(server.uri)
        yield trace, server, device
    finally:
        await device.stop()
        await server.stop()
        trace.detach()


def where(records: list[TraceRecord], **fields: object) -> list[TraceRecord]:
    return [r for r in records if all(getattr(r, k) == v for k, v in fields.items())]


def texts(trace: Trace, node: str) -> list[str]:
    return [event.text for event in trace.events if event.node == node]


# -- recording ----------------------------------------------------------------------------------


async def test_each_node_records_the_register_it_took_part_in():
    async with traced() as (trace, server, device):
        register = "0.02 POST"
        [sent] = where(trace.view("dev-1"), direction="sent", code=register, uri_path="/rd")
        [received] = where(trace.view("server"), direction="received", code=register)
        # One message, two views: same Message ID, token and bytes; the ends swapped round.
        assert (sent.mid, sent.token, sent.raw) == (received.mid, received.token, received.raw)
        assert sent.source == received.source == device.client.address
        assert sent.destination == received.destination == ("127.0.0.1", server.port)
        assert (sent.type, sent.content_format, sent.payload_length > 0) == ("CON", 40, True)
        [created] = where(trace.view("server"), direction="sent", mid=sent.mid)
        assert (created.type, created.code, created.token) == ("ACK", "2.01 Created", sent.token)
        assert texts(trace, "dev-1")[0].startswith("boot: booted app 1.0.0")
        assert trace.nodes == ["dev-1", "server"]


async def test_a_push_shows_every_block1_put_answered_2_31_and_the_state_changes():
    async with traced() as (trace, server, _device):
        trace.clear()
        assert await server.push_firmware("dev-1", NEW, block_size=256) == BLOCKS
        view = trace.view("server")  # the default view, too
        assert view == trace.view()
        puts = where(view, direction="sent", code="0.03 PUT", uri_path="/5/0/0")
        assert [put.block1 for put in puts] == [
            (number, number < BLOCKS - 1, 256) for number in range(BLOCKS)
        ]
        assert puts[0].size1 == len(bytes(NEW)) and puts[1].size1 is None
        assert {(put.type, put.content_format) for put in puts} == {("CON", 42)}
        answers = {r.mid: r for r in view if r.direction == "received"}
        codes = [(answers[put.mid].type, answers[put.mid].code) for put in puts]
        assert codes == [("ACK", "2.31 Continue")] * (BLOCKS - 1) + [("ACK", "2.04 Changed")]
        assert [answers[put.mid].block1 for put in puts] == [put.block1 for put in puts]
        # The device saw the same blocks arrive; its /5 went Downloading, then Downloaded.
        device_puts = where(trace.view("dev-1"), direction="received", code="0.03 PUT")
        assert [put.mid for put in device_puts] == [put.mid for put in puts]
        assert texts(trace, "dev-1") == [
            "State 1 DOWNLOADING, Update Result 0 INITIAL",
            "State 2 DOWNLOADED, Update Result 0 INITIAL",
        ]
        state_times = [event.time for event in trace.events]
        assert puts[0].time < state_times[0] < state_times[1] <= answers[puts[-1].mid].time


async def test_the_trace_follows_the_device_through_its_reboot():
    async with traced() as (trace, server, device):
        first_port = device.client.address[1]
        sent = asyncio.get_running_loop().create_future()
        server.send_listeners.append(lambda report: sent.done() or sent.set_result(report))
        outcome = await server.update("dev-1", NEW, mode="push", block_size=256, timeout=15)
        assert outcome.ok, str(outcome)
        await asyncio.wait_for(sent, 10)  # the device Sends its result right after registering
        second_port = device.client.address[1]
        assert second_port != first_port  # a reboot rebuilds the client and its socket
        registers = where(trace.view("dev-1"), direction="sent", code="0.02 POST", uri_path="/rd")
        assert [r.source[1] for r in registers] == [first_port, second_port]
        seen = where(trace.view("server"), direction="received", code="0.02 POST", uri_path="/rd")
        assert [r.source[1] for r in seen] == [first_port, second_port]
        # After the reboot the new client's traffic is recorded: the Send of the result ...
        sends = where(trace.view("dev-1"), direction="sent", uri_path="/dp")
        assert sends and sends[0].source[1] == second_port
        # ... and the events tell the story: Updating, then the boot that installed 2.0.0.
        events = texts(trace, "dev-1")
        updating = events.index("State 3 UPDATING, Update Result 0 INITIAL")
        boots = [text for text in events if text.startswith("boot: ")]
        assert len(boots) == 2 and "app 2.0.0" in boots[1] and "Update Result 1" in boots[1]
        assert events.index(boots[1]) > updating


async def test_detach_stops_recording_and_removes_every_hook():
    async with traced() as (trace, server, device):
        trace.detach()
        before = (len(trace), len(trace.events))
        await server.read("dev-1", "/3/0/3")
        await device.reboot()  # a new client: the trace must not come back
        await server.read("dev-1", "/3/0/3")
        assert (len(trace), len(trace.events)) == before
        assert device.on_boot == [] and "touch" not in vars(device.client)
        for context in (server.context, device.client.context):
            manager = context.request_interfaces[0].token_interface
            assert "dispatch_message" not in vars(manager)
            assert "_send_via_transport" not in vars(manager)


async def test_a_host_records_a_dropped_request_and_the_client_its_retransmission():
    async with await PackageHost.start(http=False) as host:
        package = host.add("app.bin", bytes(range(256)) * 8)
        context = await Context.create_server_context(None, bind=("127.0.0.1", 0))
        trace = Trace()
        try:
            trace.attach(host)
            trace.attach(context, node="fetcher")
            host.drop_next(1)
            request = Message(code=GET, uri=package.coap_uri, transport_tuning=transport_tuning(1))
            response = await context.request(request, handle_blockwise=False).response
            assert response.payload == package.data[:1024]
        finally:
            trace.detach()
            await context.shutdown()
        sent = where(trace.view("fetcher"), direction="sent")
        assert [(r.type, r.code) for r in sent] == [("CON", "0.01 GET")] * 2
        assert sent[0].mid == sent[1].mid and sent[0].raw == sent[1].raw  # a retransmission
        got = where(trace.view("host"), direction="received")
        assert [r.mid for r in got] == [sent[0].mid] * 2
        dropped = f"dropped request MID {sent[0].mid} (PackageHost.drop_next)"
        assert texts(trace, "host") == [dropped]
        [answer] = where(trace.view("host"), direction="sent")
        assert (answer.type, answer.code, answer.mid) == ("ACK", "2.05 Content", sent[0].mid)
        assert answer.block2 == (0, True, 1024) and answer.size2 == 2048
        assert answer.etag == package.etag and answer.payload_length == 1024


async def test_attach_says_what_it_can_trace():
    trace = Trace()
    context = await Context.create_server_context(None, bind=("127.0.0.1", 0))
    try:
        with pytest.raises(TypeError, match="node='name'"):
            trace.attach(context)
    finally:
        await context.shutdown()
    with pytest.raises(TypeError, match="attach a Server, an EmulatedDevice"):
        trace.attach(object())
    with pytest.raises(ValueError, match="no records yet"):
        trace.view()


def test_codes_are_written_dotted_with_their_names():
    assert [code_text(c) for c in (1, 3, 0, 65, 95, 132, 141)] == [
        "0.01 GET", "0.03 PUT", "0.00 Empty", "2.01 Created", "2.31 Continue",
        "4.04 Not Found", "4.13 Request Entity Too Large",
    ]  # fmt: skip


# -- showing ------------------------------------------------------------------------------------


async def test_the_text_table_and_the_html_table_show_codes_paths_and_events():
    async with traced() as (trace, server, _device):
        trace.mark("notebook", "pushing now")
        await server.push_firmware("dev-1", NEW, block_size=256)
    table = trace.table()
    assert len(table.splitlines()) == 2 + len(trace) + len(trace.events)
    for text in ("0.02 POST", "/rd", "2.01 Created", "0.03 PUT", "/5/0/0", "2.31 Continue"):
        assert text in table
    assert "Block1 0/1/256 Size1" in table and "* pushing now" in table
    assert "* State 2 DOWNLOADED" in table
    short = trace.table(limit=10)
    assert len(short.splitlines()) == 2 + 10 + 1 and "more …" in short
    page = trace._repr_html_()
    assert page.startswith("<table>") and page.count("<tr>") == 1 + 40 + 1  # head, rows, gap
    assert "0.02 POST" in page and "/rd" in page and "2.04 Changed" in page
    assert f"{len(trace)} messages" in page and "more …" in page
    assert repr(trace).startswith(f"<Trace {len(trace)} messages")


# -- pcap ---------------------------------------------------------------------------------------


def tshark(path: Path, *options: str) -> list[list[str]]:
    if TSHARK is None:
        pytest.skip("tshark is not installed (Debian: apt-get install tshark)")
    run = subprocess.run(
        [TSHARK, "-n", "-r", str(path), *options], capture_output=True, text=True, check=True
    )
    return [line.split("\t") for line in run.stdout.splitlines()]


async def test_the_pcap_of_an_update_decodes_in_tshark_with_valid_headers(tmp_path):
    async with traced() as (trace, server, _device):
        outcome = await server.update("dev-1", NEW, mode="push", block_size=256, timeout=15)
        assert outcome.ok, str(outcome)
    path = tmp_path / "trace.pcap"
    trace.to_pcap(path)  # the server's view: every message once
    view = trace.view("server")
    assert trace.decode_as() == ["-d", f"udp.port=={server.port},coap"]
    fields = ["coap.code", "coap.opt.block_number", "udp.srcport", "coap.mid", "coap.type"]
    rows = tshark(path, *trace.decode_as(), "-T", "fields", *(f"-e{f}" for f in fields))

    def expected(record: TraceRecord) -> list[str]:
        code = int(record.code[0]) * 32 + int(record.code[2:4])
        block = record.block1 or record.block2
        kind = ["CON", "NON", "ACK", "RST"].index(record.type)
        number = "" if block is None else str(block[0])
        return [str(code), number, str(record.source[1]), str(record.mid), str(kind)]

    assert rows == [expected(record) for record in view]
    codes = [row[0] for row in rows]
    assert codes.count("3") == BLOCKS and codes.count("95") == BLOCKS - 1  # PUT, 2.31
    blocks = [int(row[1]) for row in rows if row[0] == "3"]
    assert blocks == list(range(BLOCKS))
    # Valid IP and UDP headers: nothing malformed, both checksums verified good.
    broken = "_ws.malformed || _ws.expert.severity >= error"
    assert tshark(path, *trace.decode_as(), "-Y", broken) == []
    checks = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
    status = tshark(path, *checks, "-T", "fields", "-e", "ip.checksum.status",
                    "-e", "udp.checksum.status", "-e", "ip.src", "-e", "ip.dst")  # fmt: skip
    assert status == [["1", "1", "127.0.0.1", "127.0.0.1"]] * len(view)


async def test_the_pcap_file_format_and_one_node_per_capture():
    async with traced() as (trace, _server, _device):
        pass
    buffer = io.BytesIO()
    trace.to_pcap(buffer, node="dev-1")
    data = buffer.getvalue()
    magic, major, minor, _zone, _sigfigs, _snaplen, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, LINKTYPE_RAW)
    offset, packets = 24, []
    while offset < len(data):
        seconds, micros, length, original = struct.unpack_from("<IIII", data, offset)
        packets.append((seconds + micros / 1e6, data[offset + 16 : offset + 16 + length]))
        assert length == original
        offset += 16 + length
    view = trace.view("dev-1")
    assert len(packets) == len(view)
    for (stamp, packet), record in zip(packets, view, strict=True):
        assert stamp == pytest.approx(trace.started + record.time, abs=2e-6)
        assert packet[0] == 0x45 and struct.unpack_from("!H", packet, 2)[0] == len(packet)
        assert packet[28:] == record.raw  # IPv4 (20) + UDP (8) + the CoAP message


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this Python")
async def test_ipv6_loopback_is_exported_with_an_ipv6_header(tmp_path):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    async with traced(host="::1") as (trace, _server, device):
        assert trace.view()[0].source == ("::1", device.client.address[1])
    path = tmp_path / "trace6.pcap"
    trace.to_pcap(path)
    rows = tshark(path, *trace.decode_as(), "-o", "udp.check_checksum:TRUE", "-T", "fields",
                  "-e", "ipv6.src", "-e", "udp.checksum.status", "-e", "coap.code")  # fmt: skip
    assert rows[:2] == [["::1", "1", "2"], ["::1", "1", "65"]]  # POST /rd, 2.01 Created
    assert tshark(path, *trace.decode_as(), "-Y", "_ws.malformed") == []
