"""Object /5 Firmware Update, resource by resource, on top of the state machine and the handlers.

The server sees resources; the state machine sees events; the device sees handler calls. This
module is the translator between the three::

    server operation            event for the machine (fota)    handler the effect calls
    ─────────────────────────   ─────────────────────────────   ────────────────────────────
    Write /5/0/0, first block   PackageWriteStarted             package_write_start, then
                                                                package_write(chunk)
    Write /5/0/0, more blocks   (none: the push goes on)        package_write(chunk)
    Write /5/0/0, last block    DownloadSucceeded / ..Failed    package_write_finish
    Write /5/0/0 = "\\0" or ""  PackageNullWritten              reset
    Write /5/0/1 = URI          PackageUriWritten               uri_write(uri)
    Write /5/0/1 = bad URI      PackageUriRejected (7 or 9)     (none)
    Write /5/0/1 = ""           PackageUriEmptied               reset
    Execute /5/0/2              UpdateExecuted / UpdateDeferred update_start
    Execute /5/0/10             CancelExecuted                  reset

and the device reports back with ``download_finished()``, ``download_failed(result)``,
``update_finished()`` and ``update_failed(result)``.

Every operation returns an ``Outcome``: 2.04 Changed (2.31 Continue for a block that is not the
last), 2.05 Content with the value for a read, or an error code with a diagnostic. An operation
the state machine refuses is 4.05 Method Not Allowed, and changes nothing. Handler failures
become the Update Result they name; a failed push block is answered 5.00 (4.13 when the package
doesn't fit), so the server stops sending blocks.

Push is streamed: each block goes to ``package_write`` as it arrives and is not kept. A push the
server abandons half-way is reset after ``push_timeout`` seconds without a block (``expire``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..fota import (
    CancelExecuted,
    DeliveryMethod,
    DownloadFailed,
    DownloadSucceeded,
    Effect,
    Event,
    FirmwareUpdateMachine,
    PackageNullWritten,
    PackageUriEmptied,
    PackageUriRejected,
    PackageUriWritten,
    PackageWriteStarted,
    Protocol,
    Severity,
    State,
    Step,
    TransitionNotAllowed,
    UpdateDeferred,
    UpdateExecuted,
    UpdateFailed,
    UpdateIntegrityFailed,
    UpdateResult,
    UpdateSucceeded,
    UserAccepted,
)
from ..handlers import (
    check_handlers,
    checked_result,
    delivery_method,
    protocols_in_order,
    wants_to_defer,
)
from ..model import FIRMWARE_UPDATE
from ..paths import Path
from .outcome import Code, Outcome

__all__ = ["MAX_URI_LENGTH", "SCHEMES", "FirmwareObject", "PushTransfer"]

#: The URI scheme of each download protocol (/5/0/8 values).
SCHEMES: dict[str, Protocol] = {
    "coap": Protocol.COAP,
    "coaps": Protocol.COAPS,
    "http": Protocol.HTTP,
    "https": Protocol.HTTPS,
    "coap+tcp": Protocol.COAP_TCP,
    "coaps+tcp": Protocol.COAP_TLS,
}
#: /5/0/1 Package URI holds at most 255 bytes (the object definition's range).
MAX_URI_LENGTH = 255
#: EXCHANGE_LIFETIME of RFC 7252 (247 s): after it, a half-done push is abandoned.
DEFAULT_PUSH_TIMEOUT = 247.0
#: The answer to every push block but the last (an ``Outcome`` is immutable: one serves all).
_CONTINUE = Outcome(Code.CONTINUE)

#: ``scheme://host[:port][/path][?query]`` in visible ASCII: no spaces or control characters
#: (RFC 3986), a host name or a bracketed IPv6 literal, and no user info (below).
_URI = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::[0-9]*)?"
    r"(?:[/?#][\x21-\x7e]*)?"
)


@dataclass
class PushTransfer:
    """A push in progress: how many bytes arrived, and when the last block did."""

    received: int = 0
    last_block_at: float = 0.0


class FirmwareObject:
    """Object /5 instance 0, served from a state machine and a set of handlers.

    ``push`` says whether the device accepts packages written to /5/0/0; ``protocols`` lists
    the download protocols it has for Package URIs (empty: pull is not offered). /5/0/8 and
    /5/0/9 are derived from those two. ``version`` is the Object /5 version ("1.0" like Anjay
    Lite, "1.1" by default, "1.2" adds /5/0/14).
    """

    object_id = 5
    instance_id = 0
    #: what the data model serves it as (through ``objects.base.SingleInstance``)
    definition = FIRMWARE_UPDATE

    def __init__(
        self,
        handlers: object,
        *,
        push: bool = True,
        protocols: Iterable[Protocol] = (Protocol.COAP,),
        version: str = "1.1",
        push_timeout: float = DEFAULT_PUSH_TIMEOUT,
    ) -> None:
        self.protocols = protocols_in_order(protocols)
        check_handlers(handlers, push=push, pull=bool(self.protocols))
        self.handlers = handlers
        self.push = push
        self.machine = FirmwareUpdateMachine(version=version)
        self.package_uri = ""
        self.push_timeout = push_timeout
        self.transfer: PushTransfer | None = None
        #: called with every Step (State / Update Result change): the client notifies observers
        self.observers: list[Callable[[Step], None]] = self.machine.observers

    # -- what the object looks like -----------------------------------------------------------

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def result(self) -> UpdateResult:
        return self.machine.result

    @property
    def version(self) -> str:
        return self.machine.version

    @property
    def delivery_method(self) -> DeliveryMethod:
        return delivery_method(push=self.push, pull=bool(self.protocols))

    def resource_ids(self) -> list[int]:
        """The resources this instance has, given its version."""
        ids = [0, 1, 2, 3, 5, 6, 7, 9]
        if self.protocols:
            ids.append(8)
        if self.machine.at_least("1.1"):
            ids += [10, 11, 12, 13]
        if self.machine.at_least("1.2"):
            ids.append(14)
        return sorted(ids)

    def __repr__(self) -> str:
        return (
            f"<FirmwareObject /5/0 v{self.version} State={self.state.value} {self.state.name} "
            f"Result={self.result.value} {self.result.name} {self.delivery_method.name}>"
        )

    def restore(self, state: State, result: UpdateResult, package_uri: str) -> None:
        """Take up the state persisted before a reboot (as Anjay's ``initial_state`` does).

        This is not a transition: the device was already there before it rebooted.
        """
        self.machine.state, self.machine.result = state, result
        self.package_uri = package_uri
        self.transfer = None

    # -- Read ---------------------------------------------------------------------------------

    def read(self, resource_id: int) -> Outcome:
        """Read one resource: 2.05 with its value (multiple resources: a dict instance -> value)."""
        if resource_id not in self.resource_ids():
            return _not_found(resource_id)
        definition = FIRMWARE_UPDATE[resource_id]
        if not definition.operations.readable:
            return Outcome(
                Code.METHOD_NOT_ALLOWED,
                diagnostic=f"/5/0/{resource_id} {definition.name} can't be read",
            )
        return Outcome(Code.CONTENT, self._value(resource_id))

    def _value(self, resource_id: int) -> object:
        machine = self.machine
        downloaded = machine.state is State.DOWNLOADED
        match resource_id:
            case 1:
                return self.package_uri
            case 3:
                return int(machine.state)
            case 5:
                return int(machine.result)
            case 6:
                return (self._ask("get_name") or "") if downloaded else ""
            case 7:
                return (self._ask("get_version") or "") if downloaded else ""
            case 8:
                return {i: int(p) for i, p in enumerate(self.protocols)}
            case 9:
                return int(self.delivery_method)
            case 11:
                return int(machine.severity)
            case 12:
                return machine.last_state_change or datetime.fromtimestamp(0, UTC)
            case 13:
                return machine.max_defer_period
            case 14:
                return machine.automatic_upgrade
        raise AssertionError(f"resource {resource_id} has no value")

    def _ask(self, name: str) -> object:
        handler = getattr(self.handlers, name, None)
        return handler() if callable(handler) else None

    def read_all(self) -> dict[Path, object]:
        """Every readable resource as path -> value (multiple resources by instance)."""
        values: dict[Path, object] = {}
        base = Path(5, 0)
        for rid in self.resource_ids():
            if not FIRMWARE_UPDATE[rid].operations.readable:
                continue
            value = self._value(rid)
            if isinstance(value, dict):
                values.update({base / rid / ri: v for ri, v in value.items()})
            else:
                values[base / rid] = value
        return values

    # -- Write --------------------------------------------------------------------------------

    def write(self, resource_id: int, value: object, now: float) -> Outcome:
        """Write one resource with a whole value (Package in one piece, URI, 11, 13, 14)."""
        if resource_id not in self.resource_ids():
            return _not_found(resource_id)
        if resource_id == 0:
            if not isinstance(value, bytes | bytearray):
                return _bad(f"Package is Opaque (bytes), not {type(value).__name__}")
            return self.write_package(bytes(value), offset=0, last=True, now=now)
        if resource_id == 1:
            if not isinstance(value, str):
                return _bad(f"Package URI is a String, not {type(value).__name__}")
            return self.write_package_uri(value, now)
        definition = FIRMWARE_UPDATE[resource_id]
        if not definition.operations.writable:
            return Outcome(
                Code.METHOD_NOT_ALLOWED,
                diagnostic=f"/5/0/{resource_id} {definition.name} is read-only",
            )
        return self._write_setting(resource_id, value)

    def _write_setting(self, resource_id: int, value: object) -> Outcome:
        machine = self.machine
        if resource_id == 11:
            if not _is_int(value) or value not in tuple(Severity):
                return _bad(
                    f"Severity is 0 (critical), 1 (mandatory) or 2 (optional), not {value!r}"
                )
            machine.severity = Severity(value)
        elif resource_id == 13:
            if not _is_int(value) or not 0 <= value <= 2**32 - 1:
                return _bad(f"Maximum Defer Period is a number of seconds >= 0, not {value!r}")
            machine.max_defer_period = value
        elif resource_id == 14:
            if not isinstance(value, bool):
                return _bad(f"Automatic Upgrade at Download is a Boolean, not {value!r}")
            machine.automatic_upgrade = value
        return Outcome(Code.CHANGED)

    def write_package(self, chunk: bytes, *, offset: int, last: bool, now: float) -> Outcome:
        """Receive one block of a push to /5/0/0 (``offset`` = where it starts in the package).

        A whole package in one request is one block with ``offset=0, last=True``.
        """
        if offset == 0 and last and chunk in (b"", b"\0"):
            return self._server_event(PackageNullWritten(), now)
        if not self.push:
            return Outcome(
                Code.METHOD_NOT_ALLOWED,
                diagnostic="this device doesn't accept pushed packages (Delivery Method 0, pull "
                "only); write a Package URI to /5/0/1 instead",
            )
        if offset == 0:
            outcome = self._server_event(PackageWriteStarted(), now)
            if not outcome.ok:
                return outcome
            if self.state is not State.DOWNLOADING:  # package_write_start failed
                return self._push_failure_outcome()
            self.transfer = PushTransfer(last_block_at=now)
        elif self.transfer is None or self.state is not State.DOWNLOADING:
            return Outcome(
                Code.REQUEST_ENTITY_INCOMPLETE,
                diagnostic=f"a block at offset {offset} arrived, but no push is in progress; "
                "start again from block 0",
            )
        elif offset != self.transfer.received:
            return Outcome(
                Code.REQUEST_ENTITY_INCOMPLETE,
                diagnostic=f"expected the block at offset {self.transfer.received}, got {offset}",
            )
        return self._store_block(chunk, last, now)

    def _store_block(self, chunk: bytes, last: bool, now: float) -> Outcome:
        assert self.transfer is not None
        result = checked_result(self.handlers.package_write(chunk), "package_write")
        if result is UpdateResult.SUCCESS:
            self.transfer.received += len(chunk)
            self.transfer.last_block_at = now
            if not last:
                return _CONTINUE
            result = checked_result(self.handlers.package_write_finish(), "package_write_finish")
        self.transfer = None
        if result is UpdateResult.SUCCESS:
            self._device_event(DownloadSucceeded(), now)
            return Outcome(Code.CHANGED)
        self._device_event(DownloadFailed(result=result), now)
        return self._push_failure_outcome()

    def _push_failure_outcome(self) -> Outcome:
        result = self.result
        code = (
            Code.REQUEST_ENTITY_TOO_LARGE
            if result is UpdateResult.NOT_ENOUGH_FLASH
            else Code.INTERNAL_SERVER_ERROR
        )
        # With 4.13, RFC 7959 §2.9.3 lets the answer say how big a body may be (Size1); the value
        # carries it when the handlers know (the optional ``max_package_size`` handler).
        limit = self._ask("max_package_size") if code is Code.REQUEST_ENTITY_TOO_LARGE else None
        return Outcome(
            code, limit, diagnostic=f"the push failed: Update Result {result.value} {result.name}"
        )

    def write_package_uri(self, uri: str, now: float) -> Outcome:
        """Receive a Package URI (/5/0/1): start a pull, reject the URI, or reset on ""."""
        if uri == "":
            return self._server_event(PackageUriEmptied(), now)
        problem = self._uri_problem(uri)
        if problem is not None:
            result, why = problem
            outcome = self._server_event(PackageUriRejected(uri=uri, result=result), now)
            if not outcome.ok:
                return outcome
            return Outcome(Code.BAD_REQUEST, diagnostic=why)
        return self._server_event(PackageUriWritten(uri=uri), now)

    def _uri_problem(self, uri: str) -> tuple[UpdateResult, str] | None:
        if len(uri.encode()) > MAX_URI_LENGTH:
            return UpdateResult.INVALID_URI, f"the URI is longer than {MAX_URI_LENGTH} bytes"
        authority = re.split(r"[/?#]", uri.partition("://")[2], maxsplit=1)[0]
        if "@" in authority:
            # RFC 9110 §4.2.4: user info in a URI from an untrusted source is an error (it hides
            # the real host); CoAP URIs have none at all (RFC 7252 §6).
            return UpdateResult.INVALID_URI, "a Package URI carries no user info (user:pass@)"
        match = _URI.fullmatch(uri)
        if match is None:
            return UpdateResult.INVALID_URI, f"{uri[:60]!r} is not a URI like coap://host/path"
        scheme = match["scheme"].lower()
        protocol = SCHEMES.get(scheme)
        if protocol is None or protocol not in self.protocols:
            offered = ", ".join(s for s, p in SCHEMES.items() if p in self.protocols) or "none"
            return (
                UpdateResult.UNSUPPORTED_PROTOCOL,
                f"this device doesn't download {scheme}:// URIs (it supports: {offered})",
            )
        return None

    # -- Execute ------------------------------------------------------------------------------

    def execute(self, resource_id: int, now: float, arguments: str = "") -> Outcome:
        """Execute /5/0/2 Update or /5/0/10 Cancel."""
        if resource_id not in self.resource_ids():
            return _not_found(resource_id)
        if resource_id == 2:
            return self.execute_update(now)
        if resource_id == 10:
            return self._server_event(CancelExecuted(), now)
        return Outcome(
            Code.METHOD_NOT_ALLOWED,
            diagnostic=f"/5/0/{resource_id} {FIRMWARE_UPDATE[resource_id].name} is not executable",
        )

    def execute_update(self, now: float) -> Outcome:
        machine = self.machine
        deferrable = machine.state is State.DOWNLOADED and machine.may_defer()
        if deferrable and wants_to_defer(self.handlers, machine.severity):
            return self._server_event(UpdateDeferred(), now)
        return self._server_event(UpdateExecuted(), now)

    # -- what the device reports --------------------------------------------------------------

    def download_finished(self, now: float) -> list[Step]:
        """A pull finished and the package checked out: DOWNLOADED."""
        return self._device_event(DownloadSucceeded(), now)

    def download_failed(self, result: UpdateResult, now: float) -> list[Step]:
        """A pull failed with ``result`` (2, 3, 4, 5, 6, 7 or 9): back to IDLE."""
        return self._device_event(DownloadFailed(result=result), now)

    def update_finished(self, now: float) -> list[Step]:
        """The new firmware runs: IDLE with Update Result 1."""
        return self._device_event(UpdateSucceeded(), now)

    def update_failed(self, result: UpdateResult, now: float) -> list[Step]:
        """Installing failed: INTEGRITY_FAILURE goes to IDLE, anything else back to DOWNLOADED."""
        event = (
            UpdateIntegrityFailed() if result is UpdateResult.INTEGRITY_FAILURE else UpdateFailed()
        )
        return self._device_event(event, now)

    def user_accepted(self, now: float) -> list[Step]:
        """The user accepts a deferred update."""
        return self._device_event(UserAccepted(), now)

    def expire(self, now: float) -> list[Step]:
        """Let time pass: abandon a stale push, start a deferred update whose period ran out."""
        transfer = self.transfer
        if transfer is not None and now - transfer.last_block_at >= self.push_timeout:
            self.transfer = None
            return self._device_event(DownloadFailed(result=UpdateResult.CONNECTION_LOST), now)
        steps = self.machine.expire(now)
        self._run_effects(steps, now)
        return steps

    # -- running events and effects -----------------------------------------------------------

    def _server_event(self, event: Event, now: float) -> Outcome:
        try:
            steps = self.machine.handle(event, now)
        except TransitionNotAllowed as refusal:
            return Outcome(Code.METHOD_NOT_ALLOWED, diagnostic=str(refusal))
        if isinstance(event, PackageUriWritten | PackageUriRejected):
            self.package_uri = event.uri
        self._run_effects(steps, now)
        return Outcome(Code.CHANGED)

    def _device_event(self, event: Event, now: float) -> list[Step]:
        steps = self.machine.handle(event, now)
        self._run_effects(steps, now)
        return steps

    def _run_effects(self, steps: list[Step], now: float) -> None:
        for step in steps:
            follow_up = self._run(step.effect)
            if follow_up is not None:
                self._device_event(follow_up, now)

    def _run(self, effect: Effect) -> Event | None:
        """Call the handler an effect stands for; a failure becomes the event that reports it."""
        handlers = self.handlers
        if effect is Effect.START_PUSH:
            result = checked_result(handlers.package_write_start(), "package_write_start")
            return None if result is UpdateResult.SUCCESS else DownloadFailed(result=result)
        if effect is Effect.START_PULL:
            result = checked_result(handlers.uri_write(self.package_uri), "uri_write")
            return None if result is UpdateResult.SUCCESS else DownloadFailed(result=result)
        if effect is Effect.START_UPDATE:
            result = checked_result(handlers.update_start(), "update_start")
            return None if result is UpdateResult.SUCCESS else UpdateFailed()
        if effect is Effect.DISCARD_PACKAGE:
            self.transfer = None
            self.package_uri = ""
            handlers.reset()
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(message: str) -> Outcome:
    return Outcome(Code.BAD_REQUEST, diagnostic=message)


def _not_found(resource_id: int) -> Outcome:
    return Outcome(Code.NOT_FOUND, diagnostic=f"Object /5 has no resource {resource_id} here")
