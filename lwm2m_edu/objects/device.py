"""Object /3 Device: what the device is, what it runs, and a few things it can do.

Exactly one instance, ``/3/0``, which can't be created or deleted. The server reads the identity
(0 Manufacturer, 1 Model Number, 2 Serial Number, 3 Firmware Version — which changes after an
update, so it is read from a function), executes 4 Reboot and 5 Factory Reset (the object calls
the hooks given to it; the device does the rest *after* answering 2.04), and reads 11 Error Code,
a multiple resource whose instance 0 = 0 means "no error".

Time is a parameter here as everywhere in the core: 13 Current Time reads as ``now`` plus an
offset, and a server that writes it sets the offset (the device's clock is never changed).
14 UTC Offset (``"+02:00"``) and 15 Timezone (``"Europe/Warsaw"``) are plain strings.

16 Supported Binding and Modes is ``"U"`` (UDP), or ``"UQ"`` with queue mode. Memory and
battery values are given at construction; ``set(0, 9, 80)`` changes the battery level later and
notifies observers. Resources given as ``None`` are absent (reads answer 4.04).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from ..codecs._values import time_to_seconds
from ..model import DEVICE
from .base import SimpleObject
from .outcome import Code, Outcome

__all__ = ["DeviceObject"]

_UTC_OFFSET = re.compile(r"(UTC)?[+-](0[0-9]|1[0-4]):[0-5][0-9]|Z|UTC")


class DeviceObject(SimpleObject):
    """Object /3, instance 0 (see the module docstring)."""

    definition = DEVICE
    supported = frozenset(range(0, 22))
    deletable = False

    def __init__(
        self,
        *,
        manufacturer: str | None = "lwm2m_edu",
        model: str | None = "emulated",
        serial: str | None = None,
        firmware_version: Callable[[], str] | str | None = None,
        on_reboot: Callable[[], None] | None = None,
        on_factory_reset: Callable[[], None] | None = None,
        queue_mode: bool = False,
        power_sources: dict[int, int] | None = None,
        battery_level: int | None = None,
        memory_free: int | None = None,
        memory_total: int | None = None,
        utc_offset: str | None = "+00:00",
        timezone: str | None = "Etc/UTC",
        **more: object,
    ) -> None:
        """``more`` sets other readable resources by name: ``device_type``,
        ``hardware_version``, ``software_version``, ``battery_status``."""
        self._firmware_version = firmware_version
        self.on_reboot = on_reboot
        self.on_factory_reset = on_factory_reset
        #: seconds added to ``now`` when /3/0/13 Current Time is read (set by writing it)
        self.time_offset = 0.0
        named = {"device_type": 17, "hardware_version": 18, "software_version": 19,
                 "battery_status": 20}  # fmt: skip
        values: dict[int, object] = {
            0: manufacturer,
            1: model,
            2: serial,
            6: power_sources,
            9: battery_level,
            10: memory_free,
            11: {0: 0},
            14: utc_offset,
            15: timezone,
            16: "UQ" if queue_mode else "U",
            21: memory_total,
        }
        for name, value in more.items():
            if name not in named:
                raise TypeError(f"unknown device property {name!r}; use one of {sorted(named)}")
            values[named[name]] = value
        super().__init__({0: {rid: v for rid, v in values.items() if v is not None}})

    # -- derived values ---------------------------------------------------------------------------

    def derived_ids(self, instance_id: int) -> list[int]:
        ids = [13]
        if self._firmware_version is not None:
            ids.append(3)
        return ids

    def value(self, instance_id: int, resource_id: int, now: float) -> object:
        if resource_id == 3:
            version = self._firmware_version
            return version() if callable(version) else version
        if resource_id == 13:
            return datetime.fromtimestamp(int(now + self.time_offset), UTC)
        return super().value(instance_id, resource_id, now)

    def store(self, instance_id: int, resource_id: int, value: object, now: float) -> Outcome:
        if resource_id == 13:
            self.time_offset = time_to_seconds(value) - now  # type: ignore[arg-type]
            self.notify(instance_id, resource_id)
            return Outcome(Code.CHANGED)
        if resource_id == 14 and not _UTC_OFFSET.fullmatch(value):  # type: ignore[arg-type]
            return Outcome(
                Code.BAD_REQUEST, diagnostic=f"UTC Offset {value!r} is not like '+02:00'"
            )
        if resource_id == 15 and not value:
            return Outcome(Code.BAD_REQUEST, diagnostic="Timezone is a name like 'Europe/Warsaw'")
        return super().store(instance_id, resource_id, value, now)

    # -- error codes ------------------------------------------------------------------------------

    def add_error(self, code: int) -> None:
        """Report an error (1..8, e.g. 1 low battery); 0 = "no error" is replaced by it."""
        errors = {i: c for i, c in self.get(0, 11, {}).items() if c != 0}  # type: ignore[union-attr]
        if code not in errors.values():
            errors[max(errors, default=-1) + 1] = code
            self.set(0, 11, dict(enumerate(errors.values())))

    def clear_errors(self) -> None:
        """Back to a single Error Code 0, "no error" (what Execute /3/0/12 does)."""
        self.set(0, 11, {0: 0})

    def firmware_version_changed(self) -> None:
        """Tell observers of /3/0/3 that the running firmware changed (after an update)."""
        self.notify(0, 3)

    # -- executables ------------------------------------------------------------------------------

    def resource_ids(self, instance_id: int) -> list[int]:
        ids = set(super().resource_ids(instance_id))
        if self.on_factory_reset is None:
            ids.discard(5)
        return sorted(ids)

    def run(self, instance_id: int, resource_id: int, arguments: str, now: float) -> Outcome:
        if resource_id == 4 and self.on_reboot is not None:
            self.on_reboot()
        elif resource_id == 5 and self.on_factory_reset is not None:
            self.on_factory_reset()
        elif resource_id == 12:
            self.clear_errors()
        return Outcome(Code.CHANGED)
