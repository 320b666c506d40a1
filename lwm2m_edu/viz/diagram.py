"""The Object /5 state diagram, drawn from the table the state machine runs.

What the diagram shows
======================

Four boxes, one per /5/0/3 *State* (``IDLE`` 0, ``DOWNLOADING`` 1, ``DOWNLOADED`` 2,
``UPDATING`` 3), and one arrow per row of ``fota.TRANSITIONS``: nothing here restates the
table, so the picture cannot drift from what the device does. Each arrow is labelled with

* the row's number in ``reference/object5.md`` (``T1`` … ``T21``) and its **trigger**, in
  words: what the server does (blue: "Write Package URI", "Execute Update", …) or what
  happens on the device (black: "download failed", "update succeeded", …);
* a condition, when the row has one: ``[result 11]`` means the row applies only while
  Update Result is 11 (a deferred update may be accepted only after it was deferred);
* the Object /5 version that introduced the row, when it is newer than 1.0: ``(1.1)``;
* the **Update Result** the row leaves behind: ``→ result 0``, ``→ result 10``, or
  ``→ result from the event`` (a failed download says why it failed: 2..7 or 9).

Anything the diagram does not show is refused with 4.05 Method Not Allowed and changes nothing.

Given a machine (or a ``FirmwareObject``, or an ``EmulatedDevice``), the **current state** is
filled, and the **last transition** taken (the end of ``machine.history``) is drawn thick and
red. Rows newer than the object's version (Cancel and deferral are 1.1, Automatic Upgrade at
Download is 1.2) are drawn grey and dashed, so you can see what a newer object would add; pass
``newer="omit"`` to leave them out.

Three ways to look at it:

* ``state_diagram(machine)`` — a ``graphviz.Digraph`` (rendered by Jupyter as SVG);
* ``LiveStateDiagram(device)`` — an ``ipywidgets.HTML`` that redraws itself on every step,
  following the device across reboots;
* ``transitions_table()`` — the same rows as plain text (stable, so notebooks can check it).

Rendering needs the Graphviz ``dot`` program. Without it, nothing raises: the diagram shows an
HTML table of the same rows and the command that installs ``dot``. SVG from ``dot`` differs
between Graphviz versions, so notebooks never compare it (mark those cells IGNORE_OUTPUT).
"""

from __future__ import annotations

import asyncio
import html
import shutil
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import graphviz

from .. import fota
from ..fota import (
    FROM_EVENT,
    KEEP,
    TRANSITIONS,
    Event,
    FirmwareUpdateMachine,
    State,
    Step,
    Transition,
    UpdateResult,
)

if TYPE_CHECKING:
    import ipywidgets

    from ..device import EmulatedDevice
    from ..objects.firmware import FirmwareObject

__all__ = [
    "INSTALL_DOT",
    "TRIGGERS",
    "LiveStateDiagram",
    "StateDiagram",
    "dot_available",
    "state_diagram",
    "transitions_table",
]

#: Anything that has (or is) a firmware update machine.
Target: TypeAlias = "FirmwareUpdateMachine | FirmwareObject | EmulatedDevice"
#: The key of one row of ``TRANSITIONS``: where it starts and what triggers it.
RowKey: TypeAlias = tuple[State, type[Event]]
Newer: TypeAlias = Literal["grey", "omit"]

#: Each event type as a person would say it (only the words; the rows come from the table).
TRIGGERS: Final[Mapping[type[Event], str]] = {
    fota.PackageWriteStarted: "Write Package (first block)",
    fota.PackageUriWritten: "Write Package URI",
    fota.PackageUriRejected: "Write unusable Package URI",
    fota.PackageUriEmptied: "Write empty Package URI",
    fota.PackageNullWritten: "Write Package = NUL",
    fota.UpdateExecuted: "Execute Update",
    fota.UpdateDeferred: "Execute Update, user defers",
    fota.CancelExecuted: "Execute Cancel",
    fota.DownloadSucceeded: "download finished",
    fota.DownloadFailed: "download failed",
    fota.AutomaticUpgrade: "automatic upgrade",
    fota.UserAccepted: "user accepts",
    fota.DeferPeriodExpired: "defer period expired",
    fota.UpdateSucceeded: "update succeeded",
    fota.UpdateFailed: "update failed",
    fota.UpdateIntegrityFailed: "integrity failure at install",
}

#: How to get ``dot``, shown when it is missing.
INSTALL_DOT: Final[Mapping[str, str]] = {
    "Debian/Ubuntu": "sudo apt-get install graphviz",
    "macOS (Homebrew)": "brew install graphviz",
    "conda": "conda install -c conda-forge graphviz python-graphviz",
}

LATEST_VERSION = "1.2"
FONT = "Helvetica"
SERVER_COLOR = "#1f4e9c"
DEVICE_COLOR = "#222222"
NEWER_COLOR = "#b0b0b0"
CURRENT_FILL = "#ffe08a"
LAST_COLOR = "#d62728"
#: A line break inside a DOT label (the escape, not the character: one line of source per edge)
NEWLINE = "\\n"


# -- the rows, as every view lists them ---------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _is_newer(row: Transition, version: str) -> bool:
    return _version_tuple(row.since) > _version_tuple(version)


def trigger(event_type: type[Event]) -> str:
    """The words for an event type: ``TRIGGERS``, or its class name split into words."""
    if event_type in TRIGGERS:
        return TRIGGERS[event_type]
    name = event_type.__name__
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()


def result_text(row: Transition) -> str:
    """What Update Result becomes: ``→ result 0``, ``→ result from the event``, …"""
    if row.result is FROM_EVENT:
        return "→ result from the event"
    if row.result is KEEP:
        return "→ result unchanged"
    assert isinstance(row.result, UpdateResult)
    return f"→ result {row.result.value}"


def condition_text(row: Transition) -> str:
    """``[result 11]`` and ``(1.1)`` when the row has a condition or a version; else ''."""
    parts = []
    if row.requires is not None:
        parts.append(f"[result {row.requires.value}]")
    if row.since != "1.0":
        parts.append(f"({row.since})")
    return " ".join(parts)


def _rows(version: str, newer: Newer) -> Iterator[tuple[RowKey, Transition, bool]]:
    """The table in its defined order: (key, row, is the row newer than ``version``)."""
    for key, row in TRANSITIONS.items():
        is_newer = _is_newer(row, version)
        if is_newer and newer == "omit":
            continue
        yield key, row, is_newer


def _state_label(state: State) -> str:
    return f"{state.name}{NEWLINE}{state.value}"


def _edge_label(key: RowKey, row: Transition) -> str:
    first = f"{row.ref} {trigger(key[1])}"
    condition = condition_text(row)
    return f"{first} {condition}".rstrip() + NEWLINE + result_text(row)


def _edge_id(key: RowKey) -> str:
    return f"edge_{key[0].name}_{key[1].__name__}"


# -- what the caller gave us --------------------------------------------------------------------


def _machine_of(target: object) -> FirmwareUpdateMachine | None:
    """The machine behind a machine, a FirmwareObject (``.machine``), a device (``.firmware``)."""
    if target is None or isinstance(target, FirmwareUpdateMachine):
        return target
    if hasattr(target, "machine"):
        return _machine_of(target.machine)
    if hasattr(target, "firmware"):
        return _machine_of(target.firmware)
    raise TypeError(
        f"expected a FirmwareUpdateMachine, a FirmwareObject, an EmulatedDevice or a State, "
        f"not {type(target).__name__}"
    )


def _last_key(last: Step | RowKey | None) -> RowKey | None:
    if last is None:
        return None
    if isinstance(last, Step):
        return (last.previous_state, type(last.event))
    return last


def dot_available() -> bool:
    """Whether the Graphviz ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


# -- the Digraph --------------------------------------------------------------------------------


class StateDiagram(graphviz.Digraph):
    """A ``graphviz.Digraph`` that knows what it shows, so it can do without ``dot``.

    In Jupyter it renders as SVG; when ``dot`` is missing it renders as an HTML table of the
    transitions with the install command instead of failing the cell. ``to_html()`` gives
    whichever of the two is possible. Its ``repr`` holds no memory address.
    """

    current: State | None = None
    result: UpdateResult | None = None
    last: RowKey | None = None
    version: str = LATEST_VERSION
    newer: Newer = "grey"

    def svg(self) -> str | None:
        """The diagram as an ``<svg>`` element, or None when ``dot`` is missing or fails."""
        if not dot_available():
            return None
        try:
            svg = self.pipe(format="svg", encoding="utf-8")
        except (graphviz.ExecutableNotFound, graphviz.CalledProcessError):
            return None
        start = svg.find("<svg")
        return svg[start:] if start >= 0 else svg

    def fallback_html(self, reason: str = "the Graphviz program dot was not found") -> str:
        """The transitions as an HTML table, with how to install ``dot``."""
        return _fallback_html(
            self.current, self.result, self.last, self.version, self.newer, reason
        )

    def to_html(self) -> str:
        """SVG when ``dot`` can draw it, else the fallback table. Never raises."""
        svg = self.svg()
        return svg if svg is not None else self.fallback_html()

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        if dot_available():
            try:
                return super()._repr_mimebundle_(include, exclude, **kwargs)
            except (graphviz.ExecutableNotFound, graphviz.CalledProcessError):
                pass
        return {"text/html": self.fallback_html(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        current = "no current state" if self.current is None else f"{self.current.name} current"
        return f"<StateDiagram of Object /5 v{self.version}: {current}>"


def state_diagram(
    machine_or_state: Target | State | None = None,
    *,
    version: str | None = None,
    last: Step | RowKey | None = None,
    newer: Newer = "grey",
) -> StateDiagram:
    """The Object /5 state diagram, built from ``fota.TRANSITIONS``.

    ``machine_or_state`` is a ``FirmwareUpdateMachine``, a ``FirmwareObject``, an
    ``EmulatedDevice`` (its current firmware object), a ``State`` to fill, or None (the bare
    table). ``version`` is the Object /5 version whose rows are drawn normally; later rows are
    grey (``newer="grey"``) or left out (``newer="omit"``). Default: the machine's version, or
    1.2 (everything) without a machine. ``last`` is the transition to highlight: a ``Step`` or
    a ``(State, event type)`` row key; default: the machine's last step.

    The same inputs give the same DOT source, byte for byte (nodes in State order, edges in
    table order, ``ordering=out``), so the layout does not jump between redraws.
    """
    if isinstance(machine_or_state, State):
        machine, current, result = None, machine_or_state, None
    else:
        machine = _machine_of(machine_or_state)
        current = machine.state if machine else None
        result = machine.result if machine else None
    if version is None:
        version = machine.version if machine else LATEST_VERSION
    if last is None and machine is not None and machine.history:
        last = machine.history[-1]
    last_key = _last_key(last)

    dot = StateDiagram(
        name="object5",
        comment="Object /5 Firmware Update: drawn from lwm2m_edu.fota.TRANSITIONS",
        graph_attr={
            "rankdir": "LR",
            "ordering": "out",
            "fontname": FONT,
            "fontsize": "11",
            "nodesep": "0.5",
            "ranksep": "1.1",
            "labelloc": "b",
            "label": _caption(current, result, version, newer),
        },
        node_attr={
            "shape": "box",
            "style": "rounded",
            "fontname": FONT,
            "fontsize": "13",
            "margin": "0.25,0.12",
            "height": "1.1",
        },
        edge_attr={"fontname": FONT, "fontsize": "9", "arrowsize": "0.8"},
    )
    dot.current, dot.result, dot.last, dot.version, dot.newer = (
        current,
        result,
        last_key,
        version,
        newer,
    )

    for state in State:
        attrs = {"id": f"state_{state.name}"}
        if state is current:
            attrs.update(
                style="rounded,filled,bold",
                fillcolor=CURRENT_FILL,
                penwidth="2",
                **{"class": "current"},
            )
        dot.node(state.name, _state_label(state), **attrs)

    loops: dict[State, int] = {}
    for key, row, is_newer in _rows(version, newer):
        color = SERVER_COLOR if key[1].by == "server" else DEVICE_COLOR
        attrs = {"id": _edge_id(key), "color": color, "fontcolor": color}
        if row.next_state is key[0]:  # self-loops on different sides, so labels don't overlap
            side = _LOOP_SIDES[loops.setdefault(key[0], 0) % len(_LOOP_SIDES)]
            loops[key[0]] += 1
            if side:
                attrs.update(tailport=side, headport=side)
        if is_newer:
            attrs.update(color=NEWER_COLOR, fontcolor=NEWER_COLOR, style="dashed")
        if key == last_key:
            attrs.update(color=LAST_COLOR, fontcolor=LAST_COLOR, penwidth="3", **{"class": "last"})
        dot.edge(key[0].name, row.next_state.name, label=_edge_label(key, row), **attrs)
    return dot


_LOOP_SIDES = ("", "s", "w")


def _caption(current: State | None, result: UpdateResult | None, version: str, newer: Newer) -> str:
    lines = []
    if current is not None:
        now = f"State {current.value} {current.name}"
        if result is not None:
            now += f", Update Result {result.value} {result.name}"
        lines.append(now)
    legend = "Blue: the server's operations; black: the device's events"
    if version != LATEST_VERSION and newer == "grey":
        legend += f"; grey: rows newer than v{version}"
    lines.append(legend + ".")
    lines.append(
        f"Object /5 v{version}: anything not drawn is refused with 4.05 Method Not Allowed."
    )
    return NEWLINE.join(lines)


# -- text and HTML tables -----------------------------------------------------------------------

_COLUMNS = ("row", "from", "trigger", "by", "condition", "to", "Update Result")


def _table_rows(version: str, newer: Newer) -> list[tuple[RowKey, tuple[str, ...], bool]]:
    rows = []
    for key, row, is_newer in _rows(version, newer):
        condition = condition_text(row)
        if is_newer:
            condition = f"{condition} not in v{version}".strip()
        cells = (
            row.ref,
            f"{key[0].name} {key[0].value}",
            trigger(key[1]),
            key[1].by,
            condition,
            f"{row.next_state.name} {row.next_state.value}",
            result_text(row).removeprefix("→ result "),
        )
        rows.append((key, cells, is_newer))
    return rows


def transitions_table(version: str = LATEST_VERSION, *, newer: Newer = "grey") -> str:
    """The rows of ``TRANSITIONS`` as a plain-text table, one line per row, in table order.

    Rows newer than ``version`` say so in the condition column (``newer="omit"`` drops them).
    The text depends only on the table, so a notebook can check it with nbval.
    """
    rows = [cells for _, cells, _ in _table_rows(version, newer)]
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [_COLUMNS, *rows]]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fallback_html(
    current: State | None,
    result: UpdateResult | None,
    last: RowKey | None,
    version: str,
    newer: Newer,
    reason: str,
) -> str:
    esc = html.escape
    out = ['<div class="lwm2m-edu-state-table">']
    if current is not None:
        now = f"State {current.value} {current.name}"
        if result is not None:
            now += f", Update Result {result.value} {result.name}"
        out.append(f"<p><b>{esc(now)}</b></p>")
    out.append('<table style="border-collapse: collapse; font-size: 90%">')
    out.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in _COLUMNS) + "</tr>")
    for key, cells, is_newer in _table_rows(version, newer):
        styles = []
        if is_newer:
            styles.append(f"color: {NEWER_COLOR}")
        if key[0] is current:
            styles.append(f"background: {CURRENT_FILL}")
        if key == last:
            styles.append(f"color: {LAST_COLOR}; font-weight: bold")
        style = f' style="{"; ".join(styles)}"' if styles else ""
        out.append(f"<tr{style}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    commands = "".join(
        f"<li>{esc(system)}: <code>{esc(command)}</code></li>"
        for system, command in INSTALL_DOT.items()
    )
    out.append(
        f"<p>The state diagram needs Graphviz: {esc(reason)}. Install it, then restart the "
        f"kernel:</p><ul>{commands}</ul></div>"
    )
    return "\n".join(out)


# -- the live diagram ---------------------------------------------------------------------------


class LiveStateDiagram:
    """A state diagram that redraws itself on every transition.

    ``target`` is a ``FirmwareUpdateMachine``, a ``FirmwareObject``, an ``EmulatedDevice``, or
    a callable returning one of them (or None while there is none). ``widget`` is an
    ``ipywidgets.HTML`` holding the SVG (or the fallback table without ``dot``) and, under it,
    the last ``keep`` steps; display the object (or ``widget``) in a notebook cell.

    How it stays current: it adds itself to the machine's ``observers`` and redraws on every
    ``Step``. That works from background tasks too: observers run wherever the machine does
    (the event loop), and setting a widget's value is just a message to the browser.

    A device rebuilds its firmware object at every reboot, and the new one takes its State
    from the FOTA record in flash (``restore``): no step is taken, so no observer is called.
    ``refresh()`` notices the new machine, moves the subscription to it, and notes the reboot
    in the history. For an ``EmulatedDevice`` it runs from the device's ``on_boot`` hooks, so
    nothing has to poll. For a callable target it runs every ``poll`` seconds (default 0.25)
    while an asyncio event loop runs (one does in Jupyter) — with ``loop.call_later``, not a
    task; ``poll=None`` switches that off (then call ``refresh()`` yourself). When the restored
    state is the end of exactly one row from the state before the reboot (UPDATING → IDLE with
    result 1 is T19, "update succeeded"), that row is highlighted.

    Errors while redrawing never reach the machine (an observer that raises would break the
    device's transition): they are shown in the widget instead. ``close()`` unsubscribes.
    """

    def __init__(
        self,
        target: Target | Callable[[], Target | None],
        *,
        version: str | None = None,
        newer: Newer = "grey",
        keep: int = 8,
        poll: float | Literal["auto"] | None = "auto",
    ) -> None:
        import ipywidgets

        self.target = target
        self.version = version
        self.newer: Newer = newer
        self.widget: ipywidgets.HTML = ipywidgets.HTML()
        #: the last steps seen, as text, newest last (across reboots)
        self.history: deque[str] = deque(maxlen=keep)
        self.machine: FirmwareUpdateMachine | None = None
        self.last: RowKey | None = None
        self.redraws = 0
        self.error: BaseException | None = None
        self._drawn: tuple[object, ...] | None = None
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._boot_hooks: list[Callable[[Any], None]] | None = getattr(target, "on_boot", None)
        if self._boot_hooks is not None:
            self._boot_hooks.append(self._on_boot)
        if poll == "auto":
            poll = 0.25 if callable(target) else None
        self.poll = poll
        self.refresh()
        self._schedule()

    # -- following the target -----------------------------------------------------------------

    def _resolve(self) -> FirmwareUpdateMachine | None:
        target = self.target() if callable(self.target) else self.target
        return _machine_of(target)

    def refresh(self) -> None:
        """Check the target (a device may have rebooted), follow its machine, redraw if needed."""
        if self._closed:
            return
        try:
            machine = self._resolve()
            if machine is not self.machine:
                self._follow(machine)
            self._redraw()
        except Exception as error:  # show it; never raise into the machine or the event loop
            self._show_error(error)

    def _follow(self, machine: FirmwareUpdateMachine | None) -> None:
        old = self.machine
        if old is not None and self._on_step in old.observers:
            old.observers.remove(self._on_step)
        self.machine = machine
        if machine is None:
            return
        machine.observers.append(self._on_step)
        if old is None:
            self.last = _last_key(machine.history[-1]) if machine.history else None
            return
        # A new machine: the device rebooted and restored State and Update Result from flash.
        self.last = _row_across(old.state, machine)
        across = f" (as {TRANSITIONS[self.last].ref})" if self.last else ""
        self.history.append(
            f"reboot: restored State {machine.state.value} {machine.state.name}, "
            f"Update Result {machine.result.value} from the FOTA record{across}"
        )

    def _on_boot(self, device: Any) -> None:
        self.refresh()

    def _on_step(self, step: Step) -> None:
        self.last = _last_key(step)
        self.history.append(str(step))
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------

    def diagram(self) -> StateDiagram:
        """The diagram as it should look now."""
        machine = self.machine
        version = self.version or (machine.version if machine else None)
        return state_diagram(machine, version=version, last=self.last, newer=self.newer)

    def _redraw(self) -> None:
        machine = self.machine
        seen = (
            id(machine),
            machine.state if machine else None,
            machine.result if machine else None,
            self.last,
            tuple(self.history),
        )
        if seen == self._drawn:
            return
        self.widget.value = self.diagram().to_html() + self._history_html()
        self._drawn = seen
        self.redraws += 1
        self.error = None

    def _history_html(self) -> str:
        if self.machine is None:
            lines = ["(no firmware object yet: has the device booted?)"]
        else:
            lines = list(self.history) or ["(no steps yet)"]
        text = html.escape("\n".join(lines))
        return f'<pre class="lwm2m-edu-history" style="font-size: 85%">{text}</pre>'

    def _show_error(self, error: BaseException) -> None:
        self.error = error
        self._drawn = None
        message = html.escape(f"{type(error).__name__}: {error}")
        self.widget.value = f'<pre style="color: {LAST_COLOR}">redrawing failed: {message}</pre>'

    # -- polling ------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self.poll is None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here: call refresh() yourself
            return
        self._timer = loop.call_later(self.poll, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.refresh()
        self._schedule()

    # -- lifetime and display -----------------------------------------------------------------

    def close(self) -> None:
        """Stop following: unsubscribe from the machine (and the device), stop polling.

        The widget keeps its last picture.
        """
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.machine is not None and self._on_step in self.machine.observers:
            self.machine.observers.remove(self._on_step)
        if self._boot_hooks is not None and self._on_boot in self._boot_hooks:
            self._boot_hooks.remove(self._on_boot)

    def __enter__(self) -> LiveStateDiagram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        machine = self.machine
        now = f"{machine.state.name}" if machine else "no machine"
        closed = ", closed" if self._closed else ""
        return f"<LiveStateDiagram {now}, {self.redraws} redraws{closed}>"


def _row_across(before: State, machine: FirmwareUpdateMachine) -> RowKey | None:
    """The one row from ``before`` that ends where ``machine`` is now, if there is exactly one."""
    if before is machine.state:
        return None
    matches = []
    for key, row in TRANSITIONS.items():
        if key[0] is not before or row.next_state is not machine.state:
            continue
        if not machine.at_least(row.since):
            continue
        if row.result is FROM_EVENT or row.result is KEEP or row.result is machine.result:
            matches.append(key)
    return matches[0] if len(matches) == 1 else None
