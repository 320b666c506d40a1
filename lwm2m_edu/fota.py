"""The Firmware Update Object /5 as a state machine (sans-I/O).

Theory of operation
===================

A firmware update over LwM2M is driven by the server and carried out by the device. The server
only ever does four things to Object /5: it gives the device a package (writes the image itself
into /5/0/0 *Package* — "push" — or writes a link to it into /5/0/1 *Package URI* — "pull"), it
executes /5/0/2 *Update*, it executes /5/0/10 *Cancel*, or it resets everything by writing an
empty Package URI or a single NUL byte as Package. Everything else happens on the device: the
download finishes or fails, the installation succeeds or fails, a user defers or accepts.

The device reports where it is in /5/0/3 *State* and how the last attempt ended in /5/0/5
*Update Result*; a server observes both to follow the update::

             write Package / Package URI (0)         download finished (0)
    ┌──────┐ ──────────────────────────────► ┌─────────────┐ ──────────────► ┌────────────┐
    │ IDLE │                                 │ DOWNLOADING │                 │ DOWNLOADED │ ◄──┐
    │  0   │ ◄────────────────────────────── │      1      │                 │     2      │ ───┘
    └──────┘  download failed (2..7, 9),     └─────────────┘                 └────────────┘ user
     ▲    ▲   cancel (10), reset (0)                                          │   │   ▲     defers
     │    │                                                                   │   │   │     (11)
     │    └────────────────────── cancel (10), reset (0) ─────────────────────┘   │   │
     │                                                          execute Update (0) │   │ update
     │                                                                             ▼   │ failed (8)
     │    update succeeded (1), integrity failure at install (5)              ┌──────────┐
     └─────────────────────────────────────────────────────────────────────── │ UPDATING │
                                                                              │    3     │
                                                                              └──────────┘

Numbers in brackets are the Update Result the transition leaves behind. Two rules cut across
the picture: Update Result goes back to 0 whenever a download or an update *starts*, and any
operation the picture does not show is refused with CoAP 4.05 Method Not Allowed, changing
nothing (Execute Update while Idle, Cancel while Updating, a second package while one is
downloading, ...).

This module holds the whole picture as one table, ``TRANSITIONS``, keyed by
``(State, event type)``. Each entry gives the next state, what happens to Update Result, and the
side effect the device must carry out (``Effect``: start writing the package, start the
download, discard the image, start the update, ...). ``FirmwareUpdateMachine`` runs the table;
the state diagram is drawn from it and the tests enumerate it: nothing restates it by hand.

The machine does no I/O and reads no clock. Events come in with the time as a parameter (for
/5/0/12 *Last State Change Time* and the deferral deadline); effects go out as values that the
object layer (``objects/firmware.py``) turns into calls of the device's handlers.

Where the spec and implementations differ we follow the spec, and say so (see
``reference/object5.md``; rows carry their number T1..T22 from that table):

* a push enters DOWNLOADING on its first block (Anjay and Anjay Lite stay IDLE until the last);
* Update Result becomes 0 when a download or an update starts (Anjay Lite leaves the old value);
* a failed update returns to DOWNLOADED with result 8 (LwM2M 1.0 text, OMA test 779) so the
  server may try again; an integrity failure found at install time goes to IDLE with result 5.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, IntEnum
from typing import ClassVar, Final

__all__ = [
    "FROM_EVENT",
    "KEEP",
    "TRANSITIONS",
    "AutomaticUpgrade",
    "CancelExecuted",
    "DeferPeriodExpired",
    "DeliveryMethod",
    "DownloadFailed",
    "DownloadSucceeded",
    "Effect",
    "Event",
    "FirmwareUpdateMachine",
    "PackageNullWritten",
    "PackageUriEmptied",
    "PackageUriRejected",
    "PackageUriWritten",
    "PackageWriteStarted",
    "Protocol",
    "Severity",
    "State",
    "Step",
    "Transition",
    "TransitionNotAllowed",
    "UpdateDeferred",
    "UpdateExecuted",
    "UpdateFailed",
    "UpdateIntegrityFailed",
    "UpdateResult",
    "UpdateSucceeded",
    "UserAccepted",
]


# -- the values on the wire ---------------------------------------------------------------------


class State(IntEnum):
    """/5/0/3 State: where the firmware update procedure is."""

    IDLE = 0  #: before downloading, or after a successful update
    DOWNLOADING = 1  #: the package is arriving (pushed by the server or pulled by the device)
    DOWNLOADED = 2  #: the whole package is here and verified; Update may be executed
    UPDATING = 3  #: installing the new firmware (usually across a reboot)


class UpdateResult(IntEnum):
    """/5/0/5 Update Result: how the last download or update ended."""

    INITIAL = 0  #: nothing to report; reset to 0 whenever a download or an update starts
    SUCCESS = 1  #: firmware updated successfully
    NOT_ENOUGH_FLASH = 2  #: not enough flash memory for the new package
    OUT_OF_RAM = 3  #: out of RAM during download
    CONNECTION_LOST = 4  #: connection lost during download
    INTEGRITY_FAILURE = 5  #: integrity check failure for the new package
    UNSUPPORTED_PACKAGE_TYPE = 6  #: the package is not for this device, or in an unknown format
    INVALID_URI = 7  #: the Package URI could not be fetched (bad URI, 404, host unreachable)
    UPDATE_FAILED = 8  #: firmware update failed
    UNSUPPORTED_PROTOCOL = 9  #: the Package URI's scheme is not one the device supports
    CANCELLED = 10  #: the server executed Cancel (/5/0/10)                     [object 1.1]
    DEFERRED = 11  #: the user deferred the update                             [object 1.1]


class Protocol(IntEnum):
    """/5/0/8 Firmware Update Protocol Support: the download protocols a device offers."""

    COAP = 0  #: CoAP (RFC 7252) with block-wise transfer (RFC 7959)
    COAPS = 1  #: CoAP over DTLS with block-wise transfer
    HTTP = 2  #: HTTP/1.1 (RFC 7230)
    HTTPS = 3  #: HTTP/1.1 over TLS
    COAP_TCP = 4  #: CoAP over TCP (RFC 8323)
    COAP_TLS = 5  #: CoAP over TLS (RFC 8323)


class DeliveryMethod(IntEnum):
    """/5/0/9 Firmware Update Delivery Method: how a package may reach the device."""

    PULL = 0  #: pull only: the server writes a Package URI and the device downloads it
    PUSH = 1  #: push only: the server writes the package itself into /5/0/0
    BOTH = 2  #: both; the server chooses


class Severity(IntEnum):
    """/5/0/11 Severity: how urgent the update is; it matters when a user may defer."""

    CRITICAL = 0  #: must be installed; a user may not defer it
    MANDATORY = 1  #: the default
    OPTIONAL = 2  #: may be deferred


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something that happened to Object /5. Subclasses say what; ``by`` says who did it."""

    by: ClassVar[str] = "server"


@dataclass(frozen=True)
class PackageWriteStarted(Event):
    """The server began writing a package into /5/0/0 (its first block, or all of it at once)."""


@dataclass(frozen=True)
class PackageUriWritten(Event):
    """The server wrote a non-empty Package URI with a scheme the device supports (/5/0/1)."""

    uri: str = ""


@dataclass(frozen=True)
class PackageUriRejected(Event):
    """The server wrote a Package URI the device can't use: unsupported scheme (9), bad URI (7)."""

    uri: str = ""
    result: UpdateResult = UpdateResult.UNSUPPORTED_PROTOCOL


@dataclass(frozen=True)
class PackageUriEmptied(Event):
    """The server wrote an empty Package URI: reset."""


@dataclass(frozen=True)
class PackageNullWritten(Event):
    """The server wrote a single NUL byte (or nothing) as Package: reset."""


@dataclass(frozen=True)
class UpdateExecuted(Event):
    """The server executed /5/0/2 Update, and the device starts installing at once."""


@dataclass(frozen=True)
class UpdateDeferred(Event):
    """The server executed /5/0/2 Update, and the device's user chose to install later."""


@dataclass(frozen=True)
class CancelExecuted(Event):
    """The server executed /5/0/10 Cancel."""


@dataclass(frozen=True)
class DownloadSucceeded(Event):
    """The device has the whole package, and it passed the checks made while downloading."""

    by: ClassVar[str] = "device"


@dataclass(frozen=True)
class DownloadFailed(Event):
    """The download (push or pull) failed; ``result`` says why (2, 3, 4, 5, 6, 7 or 9)."""

    by: ClassVar[str] = "device"
    result: UpdateResult = UpdateResult.CONNECTION_LOST


@dataclass(frozen=True)
class AutomaticUpgrade(Event):
    """/5/0/14 Automatic Upgrade at Download is true, so the device starts the update itself."""

    by: ClassVar[str] = "device"


@dataclass(frozen=True)
class UserAccepted(Event):
    """The user accepted a deferred update."""

    by: ClassVar[str] = "device"


@dataclass(frozen=True)
class DeferPeriodExpired(Event):
    """The Maximum Defer Period (/5/0/13) of a deferred update ran out."""

    by: ClassVar[str] = "device"


@dataclass(frozen=True)
class UpdateSucceeded(Event):
    """The new firmware is installed and running (usually reported after the reboot)."""

    by: ClassVar[str] = "device"


@dataclass(frozen=True)
class UpdateFailed(Event):
    """Installing failed; the downloaded package is still there and may be tried again."""

    by: ClassVar[str] = "device"


@dataclass(frozen=True)
class UpdateIntegrityFailed(Event):
    """Installing found the package corrupt; it is discarded."""

    by: ClassVar[str] = "device"


# -- the table ----------------------------------------------------------------------------------


class Effect(Enum):
    """What the device must do when a transition is taken (the handler it calls, if any)."""

    NONE = "nothing"
    START_PUSH = "package_write_start: prepare to receive the pushed package"
    START_PULL = "uri_write: start downloading the package from the URI"
    DISCARD_PACKAGE = "reset: abort any download and erase the staged package"
    START_UPDATE = "update_start: schedule the installation (and reboot)"
    START_DEFER_TIMER = "start the Maximum Defer Period timer"


class _ResultRule(Enum):
    KEEP = "unchanged"
    FROM_EVENT = "the event's result"


#: Update Result stays as it is.
KEEP: Final = _ResultRule.KEEP
#: Update Result becomes the ``result`` the event carries.
FROM_EVENT: Final = _ResultRule.FROM_EVENT

ResultRule = UpdateResult | _ResultRule


@dataclass(frozen=True)
class Transition:
    """One row of the table: where an event leads from a state."""

    next_state: State
    result: ResultRule  #: the Update Result afterwards: a value, KEEP or FROM_EVENT
    effect: Effect
    ref: str  #: the row in reference/object5.md §2.2, e.g. "T1"
    #: the row applies only while Update Result has this value (a deferred update is DOWNLOADED
    #: with result 11; accepting it makes sense only then)
    requires: UpdateResult | None = None
    since: str = "1.0"  #: the Object /5 version that introduced the row


S, R, E = State, UpdateResult, Effect
_FAILED = "T5-T11"  # one row: the event's result says which failure

#: The Object /5 state machine. A (state, event type) pair that is not here is refused (4.05).
TRANSITIONS: Final[dict[tuple[State, type[Event]], Transition]] = {
    # A download starts: result back to 0.
    (S.IDLE, PackageUriWritten): Transition(S.DOWNLOADING, R.INITIAL, E.START_PULL, "T1"),
    (S.IDLE, PackageWriteStarted): Transition(S.DOWNLOADING, R.INITIAL, E.START_PUSH, "T2"),
    (S.IDLE, PackageUriRejected): Transition(S.IDLE, FROM_EVENT, E.NONE, "T3"),
    # The download ends.
    (S.DOWNLOADING, DownloadSucceeded): Transition(S.DOWNLOADED, R.INITIAL, E.NONE, "T4"),
    (S.DOWNLOADING, DownloadFailed): Transition(S.IDLE, FROM_EVENT, E.DISCARD_PACKAGE, _FAILED),
    # Resets: an empty Package URI or a NUL Package, in any state but UPDATING.
    (S.IDLE, PackageUriEmptied): Transition(S.IDLE, R.INITIAL, E.DISCARD_PACKAGE, "T13"),
    (S.IDLE, PackageNullWritten): Transition(S.IDLE, R.INITIAL, E.DISCARD_PACKAGE, "T13"),
    (S.DOWNLOADING, PackageUriEmptied): Transition(S.IDLE, R.INITIAL, E.DISCARD_PACKAGE, "T12"),
    (S.DOWNLOADING, PackageNullWritten): Transition(S.IDLE, R.INITIAL, E.DISCARD_PACKAGE, "T12"),
    (S.DOWNLOADED, PackageUriEmptied): Transition(S.IDLE, R.INITIAL, E.DISCARD_PACKAGE, "T12"),
    (S.DOWNLOADED, PackageNullWritten): Transition(S.IDLE, R.INITIAL, E.DISCARD_PACKAGE, "T12"),
    # Cancel, before the update has started.                                        [object 1.1]
    (S.DOWNLOADING, CancelExecuted): Transition(
        S.IDLE, R.CANCELLED, E.DISCARD_PACKAGE, "T14", since="1.1"),
    (S.DOWNLOADED, CancelExecuted): Transition(
        S.IDLE, R.CANCELLED, E.DISCARD_PACKAGE, "T14", since="1.1"),
    # The update starts: result back to 0.
    (S.DOWNLOADED, UpdateExecuted): Transition(S.UPDATING, R.INITIAL, E.START_UPDATE, "T15"),
    (S.DOWNLOADED, UpdateDeferred): Transition(
        S.DOWNLOADED, R.DEFERRED, E.START_DEFER_TIMER, "T16", since="1.1"),
    (S.DOWNLOADED, UserAccepted): Transition(
        S.UPDATING, R.INITIAL, E.START_UPDATE, "T17", requires=R.DEFERRED, since="1.1"),
    (S.DOWNLOADED, DeferPeriodExpired): Transition(
        S.UPDATING, R.INITIAL, E.START_UPDATE, "T17", requires=R.DEFERRED, since="1.1"),
    (S.DOWNLOADED, AutomaticUpgrade): Transition(
        S.UPDATING, R.INITIAL, E.START_UPDATE, "T18", requires=R.INITIAL, since="1.2"),
    # The update ends.
    (S.UPDATING, UpdateSucceeded): Transition(S.IDLE, R.SUCCESS, E.NONE, "T19"),
    (S.UPDATING, UpdateFailed): Transition(S.DOWNLOADED, R.UPDATE_FAILED, E.NONE, "T20"),
    (S.UPDATING, UpdateIntegrityFailed): Transition(
        S.IDLE, R.INTEGRITY_FAILURE, E.DISCARD_PACKAGE, "T21"),
}  # fmt: skip

#: Every event type, in the order the diagram and the tests list them.
EVENT_TYPES: Final[tuple[type[Event], ...]] = (
    PackageWriteStarted,
    PackageUriWritten,
    PackageUriRejected,
    PackageUriEmptied,
    PackageNullWritten,
    UpdateExecuted,
    UpdateDeferred,
    CancelExecuted,
    DownloadSucceeded,
    DownloadFailed,
    AutomaticUpgrade,
    UserAccepted,
    DeferPeriodExpired,
    UpdateSucceeded,
    UpdateFailed,
    UpdateIntegrityFailed,
)

#: Results a DownloadFailed / PackageUriRejected event may carry.
DOWNLOAD_FAILURES: Final = frozenset(
    {
        R.NOT_ENOUGH_FLASH,
        R.OUT_OF_RAM,
        R.CONNECTION_LOST,
        R.INTEGRITY_FAILURE,
        R.UNSUPPORTED_PACKAGE_TYPE,
        R.INVALID_URI,
        R.UNSUPPORTED_PROTOCOL,
    }
)
URI_REJECTIONS: Final = frozenset({R.INVALID_URI, R.UNSUPPORTED_PROTOCOL})


# -- running the table --------------------------------------------------------------------------


class TransitionNotAllowed(Exception):
    """The event is not allowed in the current state; nothing changed.

    When the server caused it, the device answers ``coap_code`` (4.05 Method Not Allowed).
    """

    coap_code = "4.05"

    def __init__(self, state: State, event: Event, reason: str) -> None:
        self.state = state
        self.event = event
        super().__init__(reason)


@dataclass(frozen=True)
class Step:
    """A transition taken: from where, on what, to where, with which result and effect, when."""

    time: float
    previous_state: State
    event: Event
    state: State
    previous_result: UpdateResult
    result: UpdateResult
    effect: Effect
    ref: str

    def __str__(self) -> str:
        change = f"{self.previous_state.name} -> {self.state.name}"
        result = f"result {self.previous_result.value} -> {self.result.value}"
        effect = "" if self.effect is Effect.NONE else f", {self.effect.name}"
        return f"{type(self.event).__name__}: {change}, {result}{effect} ({self.ref})"


@functools.cache  # asked at every event and every read of /5, for "1.0", "1.1" or "1.2"
def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass
class FirmwareUpdateMachine:
    """Runs ``TRANSITIONS``: feed it events with ``handle(event, now)``; read ``state``/``result``.

    ``version`` is the Object /5 version it behaves as: "1.0" (Anjay Lite's; no Cancel, no
    deferral), "1.1" (the default) or "1.2" (adds Automatic Upgrade at Download).
    ``now`` is seconds since 1970 on whatever clock the caller uses (a modeled clock in
    notebooks); the machine never reads a clock itself.
    """

    version: str = "1.1"
    state: State = State.IDLE
    result: UpdateResult = UpdateResult.INITIAL
    severity: Severity = Severity.MANDATORY  #: /5/0/11
    max_defer_period: int = 0  #: /5/0/13, seconds; 0 means the user may not defer
    automatic_upgrade: bool = False  #: /5/0/14                            [object 1.2]
    last_state_change_time: float | None = None  #: /5/0/12, seconds since 1970
    defer_deadline: float | None = None  #: when a deferred update installs by itself
    history: list[Step] = field(default_factory=list, repr=False)
    #: called with every Step taken (the client turns State/Result changes into notifications)
    observers: list[Callable[[Step], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.version not in ("1.0", "1.1", "1.2"):
            raise ValueError(f"Object /5 version {self.version!r}: use '1.0', '1.1' or '1.2'")

    def at_least(self, version: str) -> bool:
        """Whether this object is ``version`` or newer, e.g. ``machine.at_least("1.1")``."""
        return _version_tuple(self.version) >= _version_tuple(version)

    # -- the table, as this version sees it ---------------------------------------------------

    def transition_for(self, event_type: type[Event]) -> Transition | None:
        """The row an event of this type would take now, or None if it would be refused."""
        row = TRANSITIONS.get((self.state, event_type))
        if row is None or not self.at_least(row.since):
            return None
        if row.requires is not None and self.result is not row.requires:
            return None
        return row

    def allowed_events(self) -> list[type[Event]]:
        """The event types the machine accepts in its current state."""
        return [t for t in EVENT_TYPES if self.transition_for(t) is not None]

    # -- running it ---------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Step]:
        """Take the transition for ``event`` and return the steps taken (usually one).

        Raises ``TransitionNotAllowed`` (CoAP 4.05) when the table has no row for it; then
        nothing changes. A download that completes while Automatic Upgrade at Download is on
        continues straight into UPDATING: that is a second step.
        """
        steps = [self._take(event, now)]
        if (
            isinstance(event, DownloadSucceeded)
            and self.automatic_upgrade
            and self.transition_for(AutomaticUpgrade) is not None
        ):
            steps.append(self._take(AutomaticUpgrade(), now))
        return steps

    def _take(self, event: Event, now: float) -> Step:
        row = self.transition_for(type(event))
        if row is None:
            raise TransitionNotAllowed(self.state, event, self._refusal(event))
        result = self._result_after(row, event)
        if row.next_state is not self.state:
            self.last_state_change_time = now
        self.defer_deadline = (
            now + self.max_defer_period if row.effect is Effect.START_DEFER_TIMER else None
        )
        step = Step(
            now, self.state, event, row.next_state, self.result, result, row.effect, row.ref
        )
        self.state, self.result = row.next_state, result
        self.history.append(step)
        for observer in list(self.observers):
            observer(step)
        return step

    def _result_after(self, row: Transition, event: Event) -> UpdateResult:
        if row.result is KEEP:
            return self.result
        if row.result is FROM_EVENT:
            result = getattr(event, "result", None)
            allowed = URI_REJECTIONS if isinstance(event, PackageUriRejected) else DOWNLOAD_FAILURES
            if result not in allowed:
                names = ", ".join(f"{r.value} {r.name}" for r in sorted(allowed))
                raise ValueError(
                    f"{type(event).__name__} carries result {result!r}; use one of {names}"
                )
            return UpdateResult(result)
        assert isinstance(row.result, UpdateResult)
        return row.result

    def _refusal(self, event: Event) -> str:
        name = type(event).__name__
        row = TRANSITIONS.get((self.state, type(event)))
        if row is not None and not self.at_least(row.since):
            return f"{name} needs Object /5 version {row.since}; this object is {self.version}"
        if row is not None and row.requires is not None:
            return (
                f"{name} is allowed in {self.state.name} only while Update Result is "
                f"{row.requires.value} ({row.requires.name}); it is {self.result.value}"
            )
        allowed = ", ".join(t.__name__ for t in self.allowed_events()) or "nothing"
        return f"{name} is not allowed in state {self.state.name}; allowed now: {allowed}"

    # -- deferral -----------------------------------------------------------------------------

    def expire(self, now: float) -> list[Step]:
        """Tell the machine the time is ``now``: a deferred update whose period ran out starts."""
        if self.defer_deadline is not None and now >= self.defer_deadline:
            return self.handle(DeferPeriodExpired(), now)
        return []

    def may_defer(self) -> bool:
        """Whether a user may defer the update now (object 1.1: a defer period, not critical)."""
        return (
            self.at_least("1.1")
            and self.max_defer_period > 0
            and self.severity is not Severity.CRITICAL
        )

    @property
    def last_state_change(self) -> datetime | None:
        """/5/0/12 Last State Change Time as a UTC datetime."""
        if self.last_state_change_time is None:
            return None
        return datetime.fromtimestamp(int(self.last_state_change_time), UTC)

    def __repr__(self) -> str:
        return (
            f"<FirmwareUpdateMachine v{self.version} state={self.state.value} {self.state.name} "
            f"result={self.result.value} {self.result.name}>"
        )

    def _repr_html_(self) -> str:
        """State, Update Result, what is allowed now and the last five steps, as a table."""
        allowed = ", ".join(t.__name__ for t in self.allowed_events()) or "nothing"
        rows = [
            ("Object /5 version", self.version),
            ("State (/5/0/3)", f"{self.state.value} {self.state.name}"),
            ("Update Result (/5/0/5)", f"{self.result.value} {self.result.name}"),
            ("allowed now", allowed),
        ]
        if self.defer_deadline is not None:
            rows.append(("deferred until", f"t = {self.defer_deadline:g} s"))
        cells = [(k, f"<code>{html.escape(v)}</code>") for k, v in rows]
        recent = self.history[-5:]
        first = len(self.history) - len(recent) + 1  # number the steps as in ``history``
        items = "".join(f"<li><code>{html.escape(str(step))}</code></li>" for step in recent)
        cells.append(("last steps", f"<ol start='{first}'>{items}</ol>" if recent else "none yet"))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{v}</td></tr>"
            for k, v in cells
        )
        return f"<table><caption>FirmwareUpdateMachine</caption>{body}</table>"
