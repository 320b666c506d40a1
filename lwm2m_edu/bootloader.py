"""A bootloader with two image slots and a FOTA record that survives power cuts (sans-I/O).

A device that updates itself over the air must never end up unable to boot. The usual design,
and the one emulated here (it is how ESP-IDF's OTA and many MCU bootloaders work), splits the
flash into three areas::

    ┌──────────────┬──────────────┬───────────────────────────┬───────────────────────────┐
    │ record copy 0│ record copy 1│ slot A                    │ slot B                    │
    │ (one sector) │ (one sector) │ a whole firmware package  │ a whole firmware package  │
    └──────────────┴──────────────┴───────────────────────────┴───────────────────────────┘
      settings area: the FOTA      one slot holds the running image, the other is the
      record, written alternately  *staging* slot a new package is downloaded into

* The running image is never touched during an update: the new package goes into the other
  slot, so a download that fails, or a power cut in the middle of one, leaves the old firmware
  as it was.
* The **FOTA record** says which slot is active and where the update is (State, Update Result,
  Package URI, download offset and ETag for resuming, what is staged, and until when a
  deferred update may wait). It is written in turn into two sectors, each copy with a
  sequence number and a CRC-32. A power cut tears at most
  the copy being written; at boot the valid copy with the highest sequence number wins, so the
  record is always the last one completely written.
* "Swapping" to the new image is one record write: *active slot = the staging slot*. Before
  that write the old image boots; after it, the new one. There is no moment in between.
* At boot, an update that was started (State UPDATING) is finished: the staged package is
  verified again from flash (SHA-256, and the Ed25519 signature when the device holds a key);
  if it is good the record switches slots and says IDLE with Update Result 1, otherwise the old
  image keeps running and the record says IDLE with 5 (integrity failure). An optional
  ``self_test`` models a new image that verifies but fails to start: the bootloader goes back to
  the old slot and reports DOWNLOADED with 8 (update failed), so the server may try again.
* A download that a reboot interrupted can't go on by itself: unless it is a pull that can
  resume (it has a URI and an ETag), the record becomes IDLE with 4 (connection lost).
* A deferred update (DOWNLOADED with Update Result 11) keeps its **deadline** in the record:
  the instant, on the device's wall clock, at which it installs by itself. The bootloader only
  keeps it; it reads no clock, so deciding whether the deadline has passed is the device's job
  once it is up (``device.py`` restarts the timer with the time that is left, or installs at
  once).

The record's wire form is versioned by its magic: ``FOTA`` is format 1 (no deadline), ``FOT2``
is format 2 (the deadline after the staged package). Only format 2 is written; format 1 is
still read, as a device updated from a firmware that wrote it finds it in its settings area.

Every flash access goes through ``EmulatedFlash``, so reading and verifying a slot and writing
the record take modeled time, and a power cut can hit any of them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .flash import EmulatedFlash
from .fota import State, UpdateResult
from .package import MAX_OVERHEAD, Package, PackageError, PackageInfo, PackageVerifier

__all__ = ["BootError", "BootReport", "Bootloader", "FotaRecord", "Slot", "StagedPackage"]

#: The magic opening each record copy also says its format: 2 is written, 1 is still read.
_RECORD_MAGIC = b"FOT2"  # format 2: ... | staged package | deferral deadline | CRC
_RECORD_MAGIC_V1 = b"FOTA"  # format 1: ... | staged package | CRC
_READ_CHUNK = 4096
_FIXED = struct.Struct(">4sIBBBQ")  # magic, sequence, active slot, state, result, offset
_DEADLINE = struct.Struct(">d")  # seconds since 1970 on the device's clock, IEEE 754 double
#: The longest record: fixed fields, URI and ETag (255 bytes each), a staged package (flag, two
#: texts of 255 bytes, size and hash), a deferral deadline (flag and double) and the CRC.
_MAX_RECORD = _FIXED.size + 2 * 256 + 1 + 2 * 256 + 8 + 32 + 1 + _DEADLINE.size + 4


class BootError(Exception):
    """No slot holds a valid image: the device can't boot (the emulation's "brick")."""


@dataclass(frozen=True)
class Slot:
    """An image slot: a run of whole sectors."""

    name: str  #: "A" or "B"
    start: int
    size: int

    def __str__(self) -> str:
        return f"slot {self.name} ({self.size // 1024} KiB at 0x{self.start:06x})"


@dataclass(frozen=True)
class StagedPackage:
    """What the record says about the package in the staging slot."""

    name: str
    version: str
    size: int  #: the whole package in bytes (header, signature, image)
    sha256: bytes  #: the image hash the header announced


@dataclass(frozen=True)
class FotaRecord:
    """The FOTA state kept across reboots. ``sequence`` grows with every write."""

    sequence: int = 0
    active_slot: int = 0  #: 0 = A, 1 = B
    state: State = State.IDLE
    result: UpdateResult = UpdateResult.INITIAL
    package_uri: str = ""
    download_offset: int = 0  #: bytes of the package safely in the staging slot
    etag: bytes = b""  #: the ETag of the download, to resume it only if the file is unchanged
    staged: StagedPackage | None = None  #: a complete, verified package in the staging slot
    #: when a deferred update (DOWNLOADED, Update Result 11) installs by itself: seconds since
    #: 1970 on the device's clock, as ``FirmwareUpdateMachine.defer_deadline``; None otherwise
    defer_deadline: float | None = None

    # -- wire form: fixed fields | URI | ETag | staged package | deadline | CRC-32 of all before --
    # A staged package and a deadline are each a flag byte (0 = none, 1 = present) and, when
    # present, their fields. Format 1 (magic FOTA) ends with the staged package.

    def to_bytes(self) -> bytes:
        uri = self.package_uri.encode()
        body = _FIXED.pack(
            _RECORD_MAGIC, self.sequence, self.active_slot, self.state, self.result,
            self.download_offset,
        ) + _short_bytes(uri) + _short_bytes(self.etag)  # fmt: skip
        staged = self.staged
        if staged is None:
            body += b"\0"
        else:
            body += (
                b"\1" + _short_bytes(staged.name.encode()) + _short_bytes(staged.version.encode())
            )
            body += struct.pack(">Q", staged.size) + staged.sha256
        if self.defer_deadline is None:
            body += b"\0"
        else:
            body += b"\1" + _DEADLINE.pack(self.defer_deadline)
        return body + struct.pack(">I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> FotaRecord | None:
        """The record stored at the start of ``data``, or None if there is none or it is torn.

        Both formats are read: a format 1 record (magic ``FOTA``) has no deadline.
        """
        try:
            reader = _Reader(data)
            magic, sequence, slot, state, result, offset = reader.struct(_FIXED)
            if magic not in (_RECORD_MAGIC, _RECORD_MAGIC_V1):
                return None
            uri, etag = reader.short_bytes().decode(), reader.short_bytes()
            staged = None
            if reader.take(1) == b"\1":
                name, version = reader.short_bytes().decode(), reader.short_bytes().decode()
                (size,) = reader.struct(struct.Struct(">Q"))
                staged = StagedPackage(name, version, size, reader.take(32))
            deadline = None
            if magic == _RECORD_MAGIC and reader.take(1) == b"\1":
                (deadline,) = reader.struct(_DEADLINE)
            body_end = reader.position
            (crc,) = reader.struct(struct.Struct(">I"))
            if crc != zlib.crc32(data[:body_end]) or slot not in (0, 1):
                return None
            return cls(
                sequence, slot, State(state), UpdateResult(result), uri, offset, etag, staged,
                deadline,
            )  # fmt: skip
        except (ValueError, UnicodeDecodeError, struct.error):
            return None


def _short_bytes(data: bytes) -> bytes:
    if len(data) > 255:
        raise ValueError(f"a record field holds at most 255 bytes, not {len(data)}")
    return bytes([len(data)]) + data


@dataclass
class _Reader:
    data: bytes
    position: int = 0

    def take(self, n: int) -> bytes:
        if self.position + n > len(self.data):
            raise ValueError("record truncated")
        chunk = self.data[self.position : self.position + n]
        self.position += n
        return chunk

    def short_bytes(self) -> bytes:
        return self.take(self.take(1)[0])

    def struct(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size))


@dataclass(frozen=True)
class BootReport:
    """What a boot found and did."""

    slot: Slot  #: the slot the device booted from
    image: PackageInfo  #: the running firmware
    record: FotaRecord  #: the FOTA record after boot: the State and Update Result to report
    events: tuple[str, ...] = field(default=())  #: what the bootloader did, in words

    def __str__(self) -> str:
        done = "; ".join(self.events) or "nothing to do"
        deadline = self.record.defer_deadline
        deferred = "" if deadline is None else f", deferred until t = {deadline:g} s"
        return (
            f"booted {self.image.name} {self.image.version} from {self.slot}: {done}; "
            f"State {self.record.state.value} {self.record.state.name}, "
            f"Update Result {self.record.result.value} {self.record.result.name}{deferred}"
        )


class Bootloader:
    """Two slots and a journaled FOTA record on an ``EmulatedFlash``.

    ``verify_key`` (an Ed25519 public key) makes every image check its signature;
    ``device_type`` is the device type packages must be built for. ``self_test``, if given, is
    called with a new image's header at its first boot and returns False if the image would fail
    to start (a fault to inject in teaching scenarios).
    """

    def __init__(
        self,
        flash: EmulatedFlash,
        *,
        device_type: str,
        verify_key: Ed25519PublicKey | None = None,
        self_test: Callable[[PackageInfo], bool] | None = None,
    ) -> None:
        sectors = flash.sectors
        if len(sectors) < 4:
            raise ValueError(
                f"{flash.profile.name} has {len(sectors)} sectors; a bootloader needs 4"
            )
        self.flash = flash
        self.device_type = device_type
        self.verify_key = verify_key
        self.self_test = self_test
        self.record_sectors = (sectors[0], sectors[1])
        self.slots = _split_slots(sectors[2:])
        self.record = FotaRecord()

    # -- the layout -----------------------------------------------------------------------------

    @property
    def active_slot(self) -> Slot:
        return self.slots[self.record.active_slot]

    @property
    def staging_slot(self) -> Slot:
        return self.slots[1 - self.record.active_slot]

    def __repr__(self) -> str:
        r = self.record
        return (
            f"<Bootloader active={self.active_slot.name} staging={self.staging_slot.name} "
            f"record #{r.sequence}: State {r.state.name}, Result {r.result.value}>"
        )

    # -- the record ------------------------------------------------------------------------------

    def read_record(self) -> FotaRecord:
        """The newest complete record in the settings area (a fresh one if there is none)."""
        copies = []
        for start, size in self.record_sectors:
            header = self.flash.read(start, min(_MAX_RECORD, size))
            record = FotaRecord.from_bytes(header)
            if record is not None:
                copies.append(record)
        return max(copies, key=lambda r: r.sequence, default=FotaRecord())

    def write_record(self, **changes: object) -> FotaRecord:
        """Write the record with ``changes`` into the copy not holding the current one."""
        record = replace(self.record, sequence=self.record.sequence + 1, **changes)
        start, size = self.record_sectors[record.sequence % 2]
        data = record.to_bytes()
        granularity = self.flash.profile.write_granularity
        data += b"\xff" * (-len(data) % granularity)
        self.flash.erase(start, size)
        self.flash.write(start, data)
        self.record = record
        return record

    # -- provisioning and booting ----------------------------------------------------------------

    def provision(self, package: Package) -> None:
        """Factory-install ``package`` into slot A with a fresh record (costs modeled time)."""
        self.record = FotaRecord(sequence=0)
        self.write_image(self.slots[0], bytes(package))
        self.write_record(active_slot=0, state=State.IDLE, result=UpdateResult.INITIAL)

    def write_image(self, slot: Slot, data: bytes) -> None:
        if len(data) > slot.size:
            raise ValueError(f"{len(data)} bytes don't fit {slot}")
        self.flash.erase(slot.start, slot.size)
        padded = data + b"\xff" * (-len(data) % self.flash.profile.write_granularity)
        self.flash.write(slot.start, padded)

    def verify(self, slot: Slot, size: int | None = None) -> PackageInfo:
        """Read the package in ``slot`` from flash and check it; raises ``PackageError``."""
        verifier = PackageVerifier(
            verify_key=self.verify_key,
            device_type=self.device_type,
            max_image_size=slot.size - MAX_OVERHEAD,
        )
        position, end = slot.start, slot.start + slot.size
        while verifier.needed > 0:
            wanted = min(_READ_CHUNK, verifier.needed)
            if position + wanted > end:
                raise PackageError(
                    f"the package runs past the end of {slot}",
                    result=UpdateResult.INTEGRITY_FAILURE,
                )
            verifier.feed(self.flash.read(position, wanted))
            position += wanted
        info = verifier.finish()
        if size is not None and info.package_size != size:
            raise PackageError(
                f"{slot} holds a {info.package_size}-byte package, the record expects {size}",
                result=UpdateResult.INTEGRITY_FAILURE,
            )
        return info

    def boot(self) -> BootReport:
        """Start the device: finish or undo an update in progress, then run a valid image."""
        self.record = self.read_record()
        events: list[str] = []
        record = self.record
        if record.state is State.UPDATING:
            events.append(self._finish_update())
        elif record.state is State.DOWNLOADING and not (record.etag and record.package_uri):
            self.write_record(
                state=State.IDLE, result=UpdateResult.CONNECTION_LOST, download_offset=0,
                etag=b"", package_uri="", staged=None,
            )  # fmt: skip
            events.append("a reboot interrupted the download: result 4")
        slot, image = self._bootable()
        if slot is not self.active_slot:
            self.write_record(active_slot=self.slots.index(slot), staged=None)
            events.append(f"the active slot was unusable; fell back to {slot}")
        return BootReport(slot, image, self.record, tuple(events))

    def _finish_update(self) -> str:
        staging = self.staging_slot
        staged = self.record.staged
        try:
            info = self.verify(staging, staged.size if staged else None)
        except PackageError as error:
            self.write_record(
                state=State.IDLE, result=UpdateResult.INTEGRITY_FAILURE, staged=None,
                package_uri="", download_offset=0, etag=b"",
            )  # fmt: skip
            return f"the staged package failed verification ({error.reason}): result 5"
        if self.self_test is not None and not self.self_test(info):
            self.write_record(state=State.DOWNLOADED, result=UpdateResult.UPDATE_FAILED)
            return f"{info.name} {info.version} failed its self-test; kept the old image: result 8"
        self.write_record(
            active_slot=self.slots.index(staging), state=State.IDLE,
            result=UpdateResult.SUCCESS, staged=None, package_uri="", download_offset=0, etag=b"",
        )  # fmt: skip
        return f"installed {info.name} {info.version} from {staging}: result 1"

    def _bootable(self) -> tuple[Slot, PackageInfo]:
        for slot in (self.active_slot, self.staging_slot):
            try:
                return slot, self.verify(slot)
            except PackageError:
                continue
        raise BootError("neither slot holds a valid image")


def _split_slots(sectors: list[tuple[int, int]]) -> tuple[Slot, Slot]:
    """Two slots of whole sectors, as equal in size as the sector layout allows."""
    total = sum(size for _, size in sectors)
    taken, cut = 0, len(sectors)
    for index, (_, size) in enumerate(sectors):
        if taken + size / 2 > total / 2:
            cut = index
            break
        taken += size
    cut = min(max(cut, 1), len(sectors) - 1)
    a, b = sectors[:cut], sectors[cut:]
    return (
        Slot("A", a[0][0], sum(size for _, size in a)),
        Slot("B", b[0][0], sum(size for _, size in b)),
    )
