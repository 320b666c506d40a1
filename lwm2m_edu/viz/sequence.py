"""Message sequence charts of a recorded CoAP trace.

Reading a sequence chart
========================

Each participant has a vertical **lifeline**: the LwM2M server, the device(s), and the package
host a device downloads from. **Time flows downward**; the left margin gives the time since the
first message. Every **arrow** is one CoAP message, from its sender to its receiver, labelled
with

* its type and code: ``CON PUT`` is a confirmable request, ``ACK 2.31 Continue`` the
  response riding on its acknowledgement (*piggybacked*), ``NON 2.05 Content`` a
  non-confirmable notification;
* the resource path of a request: ``/5/0/0`` is Package, ``/5/0/1`` Package URI, …;
* block-wise transfer (RFC 7959) as ``Block1 3/1/512``: block number 3, more to come (1; the
  last block says 0), 512 bytes per block. Block1 carries a request body in pieces (a
  **push** writes the package into /5/0/0 that way; the device answers each piece with 2.31
  Continue), Block2 a response body (a **pull**: the device GETs the package block by block);
* ``Observe 4``: a notification (sequence number 4) for an observation the server made.

A package of a few hundred kilobytes is hundreds of exchanges that look alike, so long runs of
one block-wise transfer are **folded**: the first ``max_blocks`` exchanges and the last one are
drawn, and one dotted row says how many were left out ("… 1,022 more Block2 exchanges …").

Yellow **notes** on a lifeline are things that happened inside that node, not on the network:
State changes of Object /5, boots. Reading down the device's lifeline you can see which
message made the state change — and that a push enters DOWNLOADING on its first block.

Every message is recorded once by each traced node that saw it (sent by one, received by the
other). The chart uses one node's view, ``node_view`` (default: the server), for the messages
that node took part in, and the sender's record for the others (a device talking to a
package host); so each message is drawn once, timed by the clock of the node that recorded it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from matplotlib.figure import Figure

__all__ = ["message_label", "sequence_chart"]

Address = tuple[str, int]

ROW_HEIGHT = 0.3  # inches per row
MAX_HEIGHT = 24.0  # inches: long traces are squeezed, not endless
LANE_WIDTH = 3.4  # inches between lifelines
TOP, BOTTOM, LEFT, RIGHT = 0.75, 0.15, 0.8, 0.2  # margins, inches
NOTE_WIDTH = 44  # characters per line of a note
NOTE_COLOR = "#fff4c2"
FOLD_COLOR = "#777777"
ARROW_COLORS = {"request": "#1f4e9c", "response": "#2f7d32", "error": "#c62828", "empty": "#888"}


class BlockLike(Protocol):
    num: int
    more: bool
    size: int


class RecordLike(Protocol):
    """What the chart reads from a ``lwm2m_edu.trace.TraceRecord``."""

    time: float
    node: str
    direction: str  # "sent" or "received"
    source: Address
    destination: Address
    type: str  # "CON", "NON", "ACK", "RST"
    code: str  # "0.03 PUT", "2.31 Continue"
    mid: int
    token: bytes | str
    uri_path: str | None
    block1: Any
    block2: Any
    observe: int | None


class EventLike(Protocol):
    time: float
    node: str
    text: str


class TraceLike(Protocol):
    records: Sequence[Any]
    events: Sequence[Any]


# -- labels -------------------------------------------------------------------------------------


def _block_text(name: str, block: Any) -> str:
    if isinstance(block, tuple):
        num, more, size = block
    else:
        num, more, size = block.num, block.more, block.size
    return f"{name} {num}/{int(bool(more))}/{size}"


def _is_request(code: str) -> bool:
    return code.startswith("0.") and not _is_empty(code)


def _is_empty(code: str) -> bool:
    return not code or code.startswith("0.00")


def message_label(record: RecordLike) -> str:
    """One arrow's label: ``CON PUT /5/0/0  Block1 0/1/512`` or ``ACK 2.31 Continue  Block1 …``."""
    code = record.code or ""
    if _is_empty(code):
        words = [record.type, "(empty)"]
    elif _is_request(code):
        method = code.split(" ", 1)[1] if " " in code else code
        words = [record.type, method, record.uri_path or ""]
    else:
        words = [record.type, code]
    parts = [" ".join(w for w in words if w)]
    if record.block1 is not None:
        parts.append(_block_text("Block1", record.block1))
    if record.block2 is not None:
        parts.append(_block_text("Block2", record.block2))
    if record.observe is not None:
        parts.append(f"Observe {record.observe}")
    return "  ".join(parts)


# -- from records to rows -----------------------------------------------------------------------


@dataclass
class _Row:
    time: float
    kind: str  # "message", "fold", "event"
    source: str = ""
    destination: str = ""
    text: str = ""
    record: Any = None
    color: str = ""


@dataclass
class _Exchange:
    pair: frozenset[str]
    rows: list[int] = field(default_factory=list)
    block: str | None = None  # "Block1" / "Block2" when any of its messages carries one
    requests: int = 0


def _addresses(records: Iterable[RecordLike]) -> dict[Address, str]:
    """Each traced node's own addresses (a device has one for LwM2M and one for downloads)."""
    names: dict[Address, str] = {}
    for r in records:
        own = tuple(r.source if r.direction == "sent" else r.destination)
        names.setdefault(own, r.node)  # type: ignore[arg-type]
    return names


def _name_strangers(records: Sequence[RecordLike], known: dict[Address, str]) -> dict[Address, str]:
    """Names for addresses no traced node owns: "server" if it registers or manages, else "host"."""
    roles: dict[Address, str] = {}
    for r in records:
        for address in (tuple(r.source), tuple(r.destination)):
            if address not in known and address not in roles:
                roles[address] = "host"  # type: ignore[index]
        path = r.uri_path or ""
        if _is_request(r.code or ""):
            target = tuple(r.destination)
            sender = tuple(r.source)
            if target not in known and path.startswith(("/rd", "/bs", "/dp")):
                roles[target] = "server" if not path.startswith("/bs") else "bootstrap"  # type: ignore[index]
            if sender not in known and path[1:2].isdigit():
                roles[sender] = "server"  # type: ignore[index]
    names: dict[Address, str] = {}
    used = set(known.values())
    for address, role in roles.items():
        name, n = role, 2
        while name in used:
            name, n = f"{role} {n}", n + 1
        used.add(name)
        names[address] = name
    return names


def _choose(records: Sequence[RecordLike], view: str, traced: set[str], owner: dict) -> list:
    """Each message once: ``view``'s record if it took part, else the sender's (if traced)."""
    chosen = []
    for r in records:
        src, dst = owner[tuple(r.source)], owner[tuple(r.destination)]
        if view in (src, dst):
            keep = r.node == view
        elif src in traced:
            keep = r.direction == "sent"
        else:
            keep = r.direction == "received"
        if keep:
            chosen.append(r)
    return chosen


def _exchanges(rows: list[_Row]) -> list[_Exchange]:
    """Group message rows into exchanges: a request, its response(s), and empty ACKs."""
    exchanges: list[_Exchange] = []
    by_token: dict[tuple[frozenset[str], Any], _Exchange] = {}
    by_mid: dict[tuple[frozenset[str], int], _Exchange] = {}
    for index, row in enumerate(rows):
        if row.kind != "message":
            continue
        r = row.record
        pair = frozenset((row.source, row.destination))
        code = r.code or ""
        exchange = None
        if _is_empty(code):
            exchange = by_mid.get((pair, r.mid))
        elif not _is_request(code):
            exchange = by_token.get((pair, r.token)) or by_mid.get((pair, r.mid))
        if exchange is None:
            exchange = _Exchange(pair)
            exchanges.append(exchange)
            if r.token:
                by_token[(pair, r.token)] = exchange
        if r.type == "CON":
            by_mid[(pair, r.mid)] = exchange
        exchange.rows.append(index)
        exchange.requests += _is_request(code)
        if exchange.block is None:
            if r.block2 is not None:
                exchange.block = "Block2"
            elif r.block1 is not None:
                exchange.block = "Block1"
    return exchanges


def _fold(rows: list[_Row], max_blocks: int | None) -> list[_Row]:
    """Replace the middle of each long run of one block-wise transfer with a single row."""
    if max_blocks is None:
        return rows
    runs: list[list[_Exchange]] = []
    active: dict[frozenset[str], list[_Exchange]] = {}
    for exchange in _exchanges(rows):  # in the order they started
        run = active.get(exchange.pair)
        if run and exchange.block is not None and run[0].block == exchange.block:
            run.append(exchange)
            continue
        if exchange.block is not None:
            active[exchange.pair] = [exchange]
            runs.append(active[exchange.pair])
        else:
            active.pop(exchange.pair, None)
    hidden: set[int] = set()
    folds: dict[int, _Row] = {}
    for run in runs:
        if len(run) <= max_blocks + 1:
            continue
        middle = run[max_blocks:-1]
        indices = sorted(i for exchange in middle for i in exchange.rows)
        hidden.update(indices)
        first = rows[indices[0]]
        folds[indices[0]] = _Row(
            first.time,
            "fold",
            first.source,
            first.destination,
            f"… {len(middle):,} more {run[0].block} exchanges …",
        )
    return [folds.get(i, row) for i, row in enumerate(rows) if i not in hidden or i in folds]


def _arrow_color(record: RecordLike) -> str:
    code = record.code or ""
    if _is_empty(code):
        return ARROW_COLORS["empty"]
    if _is_request(code):
        return ARROW_COLORS["request"]
    return ARROW_COLORS["error"] if code[:1] in "45" else ARROW_COLORS["response"]


# -- the chart ----------------------------------------------------------------------------------


def sequence_chart(
    trace: TraceLike,
    *,
    nodes: Sequence[str] | None = None,
    node_view: str | None = None,
    max_blocks: int | None = 3,
    title: str | None = None,
    names: Mapping[Address, str] | None = None,
) -> Figure:
    """Draw ``trace`` (``trace.records``, ``trace.events``) as a message sequence chart.

    ``nodes`` lists the lifelines left to right (default: the server, then the other traced
    nodes in order of appearance, then addresses no traced node owns); messages between
    nodes not listed are left out. ``node_view`` is the node whose records are used for the
    messages it took part in (default: "server" if traced, else the first node). Runs of more
    than ``max_blocks + 1`` exchanges of one block-wise transfer are folded (None: never).
    ``names`` names addresses no traced node owns (default: "server" for one that handles
    registrations or manages objects, "host" for the others, e.g. a package host).

    Returns a ``matplotlib.figure.Figure`` (made without pyplot, so nothing is shown twice and
    nothing stays open); its height grows with the number of rows up to ``MAX_HEIGHT``.
    """
    records = sorted(trace.records, key=lambda r: r.time)
    events = sorted(getattr(trace, "events", ()) or (), key=lambda e: e.time)
    traced = list(dict.fromkeys([r.node for r in records] + [e.node for e in events]))
    if node_view is None:
        node_view = "server" if "server" in traced else (traced[0] if traced else "")

    owner = _addresses(records)
    owner.update(_name_strangers(records, owner))
    owner.update({tuple(a): n for a, n in (names or {}).items()})  # type: ignore[misc]
    chosen = _choose(records, node_view, set(traced), owner)

    if nodes is None:
        seen: list[str] = []
        for r in chosen:
            seen += [owner[tuple(r.source)], owner[tuple(r.destination)]]
        seen += [e.node for e in events]
        ordered = list(dict.fromkeys(seen))
        nodes = sorted(ordered, key=lambda n: (n != "server", n not in traced, ordered.index(n)))
    lanes = {name: i for i, name in enumerate(nodes)}

    rows: list[_Row] = []
    for r in chosen:
        src, dst = owner[tuple(r.source)], owner[tuple(r.destination)]
        if src in lanes and dst in lanes:
            rows.append(_Row(r.time, "message", src, dst, message_label(r), r, _arrow_color(r)))
    rows += [_Row(e.time, "event", e.node, e.node, e.text) for e in events if e.node in lanes]
    rows.sort(key=lambda row: (row.time, row.kind == "message"))  # stable: ties keep order
    rows = _fold(rows, max_blocks)

    return _draw(rows, list(nodes), title or _default_title(node_view, rows))


def _default_title(node_view: str, rows: list[_Row]) -> str:
    messages = sum(row.kind == "message" for row in rows)
    return f"CoAP messages as {node_view or 'recorded'} saw them ({messages} drawn)"


def _draw(rows: list[_Row], nodes: list[str], title: str) -> Figure:
    # Each row's vertical position, in rows: a note of several lines takes more room.
    texts = [
        textwrap.fill(row.text, NOTE_WIDTH) if row.kind == "event" else row.text for row in rows
    ]
    ys, y = [], 0.0
    for text in texts:
        lines = text.count("\n") + 1
        ys.append(y + 0.5 + 0.3 * (lines - 1))
        y += 1.0 + 0.6 * (lines - 1)
    total = max(y, 1.0)

    wanted = TOP + BOTTOM + ROW_HEIGHT * total
    height = min(wanted, MAX_HEIGHT)
    fontsize = (
        8.0
        if wanted <= MAX_HEIGHT
        else max(4.0, 8.0 * (height - TOP - BOTTOM) / (wanted - TOP - BOTTOM))
    )
    lanes = max(len(nodes) - 1, 1)
    width = LEFT + RIGHT + LANE_WIDTH * (lanes + 1)
    figure = Figure(figsize=(width, height))
    ax = figure.add_axes(
        (LEFT / width, BOTTOM / height, 1 - (LEFT + RIGHT) / width, 1 - (TOP + BOTTOM) / height)
    )
    ax.set_xlim(-0.5, lanes + 0.5)
    ax.set_ylim(total, -0.2)  # row 0 at the top: time flows downward
    ax.axis("off")
    figure.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")

    lane = {name: i for i, name in enumerate(nodes)}
    for name, x in lane.items():
        ax.plot([x, x], [0, total], color="#999", linewidth=1, zorder=0, gid="lifeline")
        ax.text(
            x, -0.2, name, ha="center", va="bottom", fontsize=9, fontweight="bold",
            bbox={"boxstyle": "round", "facecolor": "#eef2f8", "edgecolor": "#999"},
            gid="node",
        )  # fmt: skip

    margin = ax.get_yaxis_transform()  # x in axes fractions, y in rows
    start = rows[0].time if rows else 0.0
    for row, text, y in zip(rows, texts, ys, strict=True):
        ax.text(-0.01, y, f"+{row.time - start:.3f} s", transform=margin, ha="right",
                va="center", fontsize=fontsize - 1, color="#666", gid="time")  # fmt: skip
        if row.kind == "event":
            note = {"boxstyle": "round,pad=0.25", "facecolor": NOTE_COLOR, "edgecolor": "#c9a800"}
            ax.text(
                lane[row.source], y, text, ha="center", va="center", fontsize=fontsize,
                bbox=note, zorder=3, gid="event",
            )  # fmt: skip
            continue
        x0, x1 = lane[row.source], lane[row.destination]
        if row.kind == "fold":
            ax.plot([x0, x1], [y, y], linestyle=":", color=FOLD_COLOR, zorder=1)
            ax.text(
                (x0 + x1) / 2, y, text, ha="center", va="center", fontsize=fontsize,
                style="italic", color=FOLD_COLOR, gid="fold",
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            )  # fmt: skip
            continue
        if x0 == x1:  # a node talking to itself: a short stub to the right
            x1 = x0 + 0.25
        ax.annotate(
            "", xy=(x1, y), xytext=(x0, y), gid="message",
            arrowprops={"arrowstyle": "-|>", "color": row.color, "linewidth": 1.1,
                        "shrinkA": 0, "shrinkB": 0},
        )  # fmt: skip
        ax.text(
            (x0 + x1) / 2, y - 0.06, text, ha="center", va="bottom", fontsize=fontsize,
            color=row.color, gid="label",
        )  # fmt: skip
    return figure
