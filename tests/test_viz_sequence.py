"""Sequence charts: one arrow per message, long block-wise runs folded, events as notes.

Traces are built by hand from stand-ins with the fields of ``lwm2m_edu.trace.TraceRecord``;
every message is recorded by each traced node that saw it, as the real recorder does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import matplotlib
import pytest
from matplotlib.figure import Figure

from lwm2m_edu.viz import sequence_chart
from lwm2m_edu.viz.sequence import MAX_HEIGHT, message_label

matplotlib.use("Agg")  # sequence_chart never touches pyplot; this keeps any other use headless

SERVER = ("127.0.0.1", 5683)
DEVICE = ("127.0.0.1", 40001)
DOWNLOADER = ("127.0.0.1", 40002)  # the device's second socket, for pulls
HOST = ("127.0.0.1", 5690)  # the package host: not traced
OWNER = {SERVER: "server", DEVICE: "dev-1", DOWNLOADER: "dev-1"}


@dataclass(frozen=True)
class Block:
    num: int
    more: bool
    size: int


@dataclass(frozen=True)
class Record:
    time: float
    node: str
    direction: str
    source: tuple[str, int]
    destination: tuple[str, int]
    type: str
    code: str
    mid: int
    token: bytes
    uri_path: str | None = None
    content_format: int | None = None
    block1: Block | None = None
    block2: Block | None = None
    size1: int | None = None
    size2: int | None = None
    observe: int | None = None
    etag: bytes | None = None
    payload_length: int = 0
    raw: bytes = b""


@dataclass(frozen=True)
class Event:
    time: float
    node: str
    text: str


@dataclass
class Trace:
    records: list[Record] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    clock: count = field(default_factory=lambda: count(1))
    mids: count = field(default_factory=lambda: count(100))

    def message(self, source, destination, type_, code, token=b"", mid=None, **options):
        """One message, recorded by its sender and its receiver (if they are traced)."""
        time = next(self.clock) / 1000
        mid = next(self.mids) if mid is None else mid
        for direction, address in (("sent", source), ("received", destination)):
            if address in OWNER:
                self.records.append(
                    Record(time, OWNER[address], direction, source, destination, type_, code,
                           mid, token, **options)
                )  # fmt: skip
        return mid

    def exchange(self, client, server, method, response, token, request_options, response_opts):
        mid = self.message(client, server, "CON", method, token, **request_options)
        self.message(server, client, "ACK", response, token, mid=mid, **response_opts)

    def event(self, node, text):
        self.events.append(Event(next(self.clock) / 1000, node, text))


def push(trace, blocks, size=512):
    for num in range(blocks):
        more = num < blocks - 1
        trace.exchange(
            SERVER, DEVICE, "0.03 PUT", "2.31 Continue" if more else "2.04 Changed",
            f"p{num}".encode(),
            {"uri_path": "/5/0/0", "block1": Block(num, more, size)},
            {"block1": Block(num, more, size)},
        )  # fmt: skip
        if num == 0:
            trace.event("dev-1", "State 1 DOWNLOADING")


def pull(trace, blocks, size=512):
    for num in range(blocks):
        more = num < blocks - 1
        trace.exchange(
            DOWNLOADER, HOST, "0.01 GET", "2.05 Content", f"g{num}".encode(),
            {"uri_path": "/fw/app.bin", "block2": Block(num, False, size)},
            {"block2": Block(num, more, size)},
        )  # fmt: skip


def small_trace():
    trace = Trace()
    trace.event("dev-1", "boot: firmware 1.0.0")
    trace.exchange(DEVICE, SERVER, "0.02 POST", "2.01 Created", b"r", {"uri_path": "/rd"}, {})
    trace.exchange(SERVER, DEVICE, "0.03 PUT", "2.04 Changed", b"w", {"uri_path": "/5/0/1"}, {})
    trace.event("dev-1", "State 1 DOWNLOADING")
    pull(trace, 1)
    return trace


def artists(figure, gid):
    return [a for a in figure.axes[0].get_children() if a.get_gid() == gid]


def texts(figure, gid):
    return [a.get_text() for a in artists(figure, gid)]


# -- labels -------------------------------------------------------------------------------------


def test_labels_give_type_code_path_blocks_and_observe():
    trace = Trace()
    push(trace, 2)
    request, response = [r for r in trace.records if r.node == "server"][:2]
    assert message_label(request) == "CON PUT /5/0/0  Block1 0/1/512"
    assert message_label(response) == "ACK 2.31 Continue  Block1 0/1/512"
    note = Record(0, "server", "received", DEVICE, SERVER, "NON", "2.05 Content", 7, b"o",
                  observe=4)  # fmt: skip
    assert message_label(note) == "NON 2.05 Content  Observe 4"
    empty = Record(0, "server", "received", DEVICE, SERVER, "ACK", "0.00 Empty", 7, b"")
    assert message_label(empty) == "ACK (empty)"


# -- the chart ----------------------------------------------------------------------------------


def test_a_small_trace_draws_one_arrow_per_message():
    figure = sequence_chart(small_trace())
    assert isinstance(figure, Figure)
    # 2 exchanges server <-> device (recorded twice each, drawn once) + 1 exchange with the host
    assert len(artists(figure, "message")) == 6
    labels = texts(figure, "label")
    assert labels[:4] == [
        "CON POST /rd",
        "ACK 2.01 Created",
        "CON PUT /5/0/1",
        "ACK 2.04 Changed",
    ]
    assert labels[4:] == ["CON GET /fw/app.bin  Block2 0/0/512", "ACK 2.05 Content  Block2 0/0/512"]
    names = texts(figure, "node")
    assert names == ["server", "dev-1", "host"]
    assert figure.get_suptitle().startswith("CoAP messages as server saw them")


def test_events_are_notes_on_their_node_s_lifeline():
    figure = sequence_chart(small_trace(), title="Registration and a pull")
    notes = artists(figure, "event")
    assert [note.get_text() for note in notes] == ["boot: firmware 1.0.0", "State 1 DOWNLOADING"]
    assert {note.get_position()[0] for note in notes} == {1}  # dev-1 is the second lifeline
    assert figure.get_suptitle() == "Registration and a pull"
    # time flows downward: the boot note is above the first arrow, the state change below PUT
    ys = [note.get_position()[1] for note in notes]
    arrows = [a.xy[1] for a in artists(figure, "message")]
    assert ys[0] < arrows[0] and arrows[3] < ys[1] < arrows[4]


def test_the_device_s_view_draws_the_same_messages():
    from_device = sequence_chart(small_trace(), node_view="dev-1")
    assert len(artists(from_device, "message")) == 6
    assert from_device.get_suptitle().startswith("CoAP messages as dev-1 saw them")


def test_lifelines_can_be_chosen_and_unlisted_nodes_are_left_out():
    figure = sequence_chart(small_trace(), nodes=["dev-1", "server"])
    assert len(artists(figure, "message")) == 4
    assert "host" not in [t.get_text() for t in figure.axes[0].texts]


def test_long_block_runs_are_folded_keeping_the_first_and_the_last():
    trace = Trace()
    push(trace, 20)
    trace.message(DEVICE, SERVER, "NON", "2.05 Content", b"p0", observe=5)  # during the push
    pull(trace, 1030)
    figure = sequence_chart(trace, max_blocks=3)
    folds = texts(figure, "fold")
    assert folds == ["… 16 more Block1 exchanges …", "… 1,026 more Block2 exchanges …"]
    labels = texts(figure, "label")
    for num in (0, 1, 2, 19):
        assert any(f"Block1 {num}/" in label for label in labels)
    assert not any("Block1 3/" in label or "Block1 18/" in label for label in labels)
    for num in (0, 1, 2, 1029):
        assert sum(f"Block2 {num}/" in label for label in labels) == 2  # request and response
    assert not any("Block2 3/" in label for label in labels)
    assert "ACK 2.05 Content  Block2 1029/0/512" in labels
    assert len(artists(figure, "message")) == 2 * (4 + 4) + 1  # the notification stays


def test_short_runs_and_max_blocks_none_are_not_folded():
    trace = Trace()
    push(trace, 4)
    assert texts(sequence_chart(trace, max_blocks=3), "fold") == []
    trace = Trace()
    push(trace, 40)
    figure = sequence_chart(trace, max_blocks=None)
    assert texts(figure, "fold") == [] and len(artists(figure, "message")) == 80


@pytest.mark.parametrize(("blocks", "capped"), [(2, False), (60, True)])
def test_the_height_grows_with_the_rows_but_is_capped(blocks, capped):
    trace = Trace()
    push(trace, blocks)
    height = sequence_chart(trace, max_blocks=None).get_figheight()
    assert bool(height == MAX_HEIGHT) is capped


def test_the_figure_renders():
    figure = sequence_chart(small_trace())
    figure.canvas.draw()  # Agg: lays out every text without error


async def test_a_real_push_traced_at_both_ends():
    trace_module = pytest.importorskip("lwm2m_edu.trace")
    from lwm2m_edu.device import EmulatedDevice, factory_package
    from lwm2m_edu.fota import State
    from lwm2m_edu.server import Server

    server = await Server.start()
    device = EmulatedDevice("dev-1")
    trace = trace_module.Trace()
    try:
        await device.start(server.uri)
        trace.attach(server)
        trace.attach(device)
        package = factory_package("2.0.0", size=8 * 1024)
        await server.push_firmware("dev-1", package, block_size=512)
        await server.wait_for("dev-1", state=State.DOWNLOADED, timeout=10)
    finally:
        await device.stop()
        await server.stop()
    figure = sequence_chart(trace, max_blocks=2)
    labels = texts(figure, "label")
    assert any(label.startswith("CON PUT /5/0/0  Block1 0/1/512") for label in labels)
    assert any("more Block1 exchanges" in fold for fold in texts(figure, "fold"))
    assert {"server", "dev-1"} <= {t.get_text() for t in figure.axes[0].texts}
