"""What a device developer writes: the firmware update handlers (after Anjay Lite's API).

The state machine (``fota``) and the object (``objects.firmware``) do the protocol. A device
only has to do the I/O — store the package, fetch it, verify it, apply it — and it does so in
eight handlers, the same eight that Anjay Lite's Firmware Update module asks of a C developer:

=========================  =====================================================================
handler                    called when
=========================  =====================================================================
``package_write_start()``  a push begins (the first block of a Write to /5/0/0)
``package_write(chunk)``   each block of a push, in order
``package_write_finish()`` after the last block: verify the package here
``uri_write(uri)``         the server wrote a Package URI: start downloading it (pull)
``update_start()``         the server executed Update: schedule the installation and reboot
``get_name()``             /5/0/6 PkgName is read while DOWNLOADED (optional)
``get_version()``          /5/0/7 PkgVersion is read while DOWNLOADED (optional)
``reset()``                abort a download and throw the staged package away
=========================  =====================================================================

Each handler that can fail returns an ``UpdateResult``: ``SUCCESS`` means "go on" (Anjay Lite
reuses the value the same way); anything else stops the procedure and becomes the Update Result
the server reads — ``NOT_ENOUGH_FLASH`` when the package won't fit, ``INTEGRITY_FAILURE`` when
its hash is wrong, and so on. ``objects.firmware`` maps each outcome to the state machine.

A pull handler only *starts* the download. When it ends, the device calls
``FirmwareObject.download_finished()`` or ``download_failed(result)`` — as an Anjay Lite
application calls ``anj_dm_fw_update_object_set_download_result``.

Which handlers are mandatory depends on the delivery methods the device offers:

* pull (Package URI): ``uri_write``;
* push (Package): ``package_write_start``, ``package_write``, ``package_write_finish``;
* always: ``update_start`` and ``reset``.

``check_handlers`` enforces that when the object is installed, naming what is missing.

Two optional handlers go beyond Anjay Lite: ``defer_update(severity) -> bool``, for Object /5
version 1.1 deferral, is asked when Update is executed (True: the user chose to install later,
Update Result 11 — see ``fota.UpdateDeferred``); ``max_package_size() -> int`` says how big a
package may be, so a push that doesn't fit is answered 4.13 with that size (Size1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .fota import DeliveryMethod, Severity, UpdateResult
from .fota import Protocol as DownloadProtocol

__all__ = [
    "ALWAYS",
    "PULL_HANDLERS",
    "PUSH_HANDLERS",
    "FirmwareHandlers",
    "HandlerResultError",
    "MissingHandlerError",
    "check_handlers",
    "delivery_method",
]

#: Handlers every device needs, whatever its delivery methods.
ALWAYS = ("update_start", "reset")
#: Handlers a device that accepts pushed packages needs.
PUSH_HANDLERS = ("package_write_start", "package_write", "package_write_finish")
#: Handlers a device that downloads packages itself needs.
PULL_HANDLERS = ("uri_write",)
#: Handlers that may be left out.
OPTIONAL = ("get_name", "get_version", "defer_update", "max_package_size")


@runtime_checkable
class FirmwareHandlers(Protocol):
    """The handler set. Implement the ones your delivery methods need (see the module doc)."""

    def package_write_start(self) -> UpdateResult:
        """A push begins. Prepare the staging area (e.g. erase the slot)."""
        ...

    def package_write(self, chunk: bytes) -> UpdateResult:
        """Store the next chunk of a pushed package (chunks arrive in order)."""
        ...

    def package_write_finish(self) -> UpdateResult:
        """The push is complete: verify the package. INTEGRITY_FAILURE if it is corrupt."""
        ...

    def uri_write(self, uri: str) -> UpdateResult:
        """Start downloading ``uri`` in the background; report the end to the object."""
        ...

    def update_start(self) -> UpdateResult:
        """Schedule installing the downloaded package (and the reboot). Don't block."""
        ...

    def get_name(self) -> str | None:
        """The name of the downloaded package, for /5/0/6 (optional)."""
        ...

    def get_version(self) -> str | None:
        """The version of the downloaded package, for /5/0/7 (optional)."""
        ...

    def reset(self) -> None:
        """Abort any download and discard the staged package. May be called at any time."""
        ...


class MissingHandlerError(TypeError):
    """The handler set lacks a handler that the configured delivery method needs."""


class HandlerResultError(TypeError):
    """A handler returned something that is not an UpdateResult."""


@dataclass(frozen=True)
class _Need:
    name: str
    why: str


def _needed(push: bool, pull: bool) -> list[_Need]:
    needs = [_Need(name, "every device") for name in ALWAYS]
    if push:
        needs += [_Need(name, "push delivery (writes to /5/0/0 Package)") for name in PUSH_HANDLERS]
    if pull:
        needs += [
            _Need(name, "pull delivery (writes to /5/0/1 Package URI)") for name in PULL_HANDLERS
        ]
    return needs


def check_handlers(handlers: object, *, push: bool, pull: bool) -> None:
    """Raise ``MissingHandlerError`` naming each missing handler and the mode that needs it."""
    if not push and not pull:
        raise ValueError("a firmware update object needs push, pull or both")
    missing = [
        need for need in _needed(push, pull) if not callable(getattr(handlers, need.name, None))
    ]
    if missing:
        lines = "; ".join(f"{need.name}() (needed by {need.why})" for need in missing)
        kind = type(handlers).__name__
        raise MissingHandlerError(f"{kind} is missing {lines}. Add the method(s) to {kind}.")


def delivery_method(*, push: bool, pull: bool) -> DeliveryMethod:
    """/5/0/9 as derived from what the device offers."""
    if push and pull:
        return DeliveryMethod.BOTH
    return DeliveryMethod.PUSH if push else DeliveryMethod.PULL


def checked_result(value: object, handler: str) -> UpdateResult:
    """A handler's return value as an UpdateResult, or a clear error naming the handler."""
    if isinstance(value, UpdateResult):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return UpdateResult(value)
        except ValueError:
            pass
    raise HandlerResultError(
        f"{handler}() returned {value!r}; it must return an UpdateResult "
        "(UpdateResult.SUCCESS to go on, or the failure to report)"
    )


def protocols_in_order(protocols: Iterable[DownloadProtocol]) -> tuple[DownloadProtocol, ...]:
    """/5/0/8 Protocol Support: each protocol once, in numeric order."""
    return tuple(sorted(set(protocols)))


def wants_to_defer(handlers: object, severity: Severity) -> bool:
    """Ask the optional ``defer_update`` handler whether the user defers this update."""
    ask = getattr(handlers, "defer_update", None)
    return bool(ask(severity)) if callable(ask) else False
