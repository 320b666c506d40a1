"""The reference handlers: Object /5's eight handlers on emulated flash and a bootloader.

This is the worked example of ``handlers.FirmwareHandlers`` — what a device developer writes
for a real part, kept short enough to read in one sitting:

* **push** — ``package_write_start`` opens the staging slot, ``package_write`` streams each
  block into it, ``package_write_finish`` checks the package;
* **pull** — ``uri_write`` opens the staging slot and asks the device's downloader to fetch the
  URI; the downloader feeds the same ``write_chunk`` / ``finish`` steps a push uses;
* ``update_start`` only asks for a reboot: the bootloader installs the package at the next boot;
* ``reset`` forgets the staged package;
* ``get_name`` / ``get_version`` read the staged package's header.

A package is checked while it streams in (``PackageVerifier``: device type and size as soon as
the header is in, the hash at the end) and written to flash as it arrives, erasing each sector
just before the data reaches it. Nothing holds the whole image in RAM.

Every state change is persisted in the bootloader's FOTA record (``on_step``), so after a reboot
or a power cut the device comes back where it was — a deferred update with its deadline too:
the machine's ``defer_deadline`` goes into the same record write as State 2 and Result 11, so a
power cut leaves either the whole deferral or none of it (the device then still reports
DOWNLOADED with the Execute unanswered, and the server may execute again).

Every chunk leaves a ``ChunkTiming`` in ``timeline``: when it arrived and the flash operations
it caused, for the timing plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .bootloader import Bootloader, StagedPackage
from .flash import FlashOperation
from .fota import State, Step, UpdateResult
from .objects.firmware import FirmwareObject
from .package import MAX_OVERHEAD, PackageError, PackageVerifier

__all__ = ["ChunkTiming", "FlashFirmwareHandlers"]

SUCCESS = UpdateResult.SUCCESS


@dataclass(frozen=True)
class ChunkTiming:
    """One chunk of a package: when it arrived and what writing it cost on the flash."""

    index: int
    offset: int  #: where the chunk starts in the package
    length: int
    received_at: float  #: modeled time the chunk reached the handlers
    flash: tuple[FlashOperation, ...]  #: the erase and program operations it caused

    @property
    def done_at(self) -> float:
        return self.flash[-1].end if self.flash else self.received_at


class FlashFirmwareHandlers:
    """The eight handlers on a ``Bootloader``'s staging slot.

    ``start_download(uri)`` is the device's downloader: it starts fetching ``uri`` in the
    background, feeds each piece to ``write_chunk`` and ends with ``finish`` and the object's
    ``download_finished()`` / ``download_failed(result)``. Without one, the device offers no
    pull and ``uri_write`` answers Unsupported protocol.
    """

    def __init__(
        self,
        bootloader: Bootloader,
        *,
        start_download: Callable[[str], UpdateResult] | None = None,
    ) -> None:
        self.bootloader = bootloader
        self.flash = bootloader.flash
        self.start_download = start_download
        self.timeline: list[ChunkTiming] = []
        self.reboot_requested = False
        self.package_uri = bootloader.record.package_uri
        self.staged = bootloader.record.staged
        self.firmware: FirmwareObject | None = None  #: the object ``attach`` installed us on
        self._verifier: PackageVerifier | None = None
        self._received = 0  # package bytes accepted so far
        self._written = 0  # package bytes programmed so far
        self._pending = b""  # accepted bytes waiting for a whole write unit
        self._erased_to = 0  # the staging slot is erased up to this offset

    # -- installing on an object -----------------------------------------------------------------

    def attach(self, firmware: FirmwareObject) -> None:
        """Give ``firmware`` the state the FOTA record holds, and persist every change from now on.

        Call it once after boot, with the object built on these handlers. A deferred update
        (DOWNLOADED with Update Result 11) gets its deadline back in
        ``firmware.machine.defer_deadline``; the device restarts its timer from there.
        """
        record = self.bootloader.record
        # The record is the truth after boot, also for handlers made before it was read.
        self.staged, self.package_uri = record.staged, record.package_uri
        firmware.restore(record.state, record.result, record.package_uri)
        deferred = record.state is State.DOWNLOADED and record.result is UpdateResult.DEFERRED
        firmware.machine.defer_deadline = record.defer_deadline if deferred else None
        self.firmware = firmware
        firmware.observers.append(self.on_step)

    def on_step(self, step: Step) -> None:
        """Persist a State / Update Result change (and a deferral's deadline) in the FOTA record.

        The machine has set ``defer_deadline`` before it tells its observers, so the deadline
        of a deferral (and its clearing by any other step) is written with the step itself.
        """
        if step.state is State.DOWNLOADING:  # a pull starts: its URI is in the event
            self.package_uri = getattr(step.event, "uri", "")
        staged = self.staged if step.state in (State.DOWNLOADED, State.UPDATING) else None
        uri = self.package_uri if step.state is not State.IDLE else ""
        # Only the start of a download enters DOWNLOADING: none of the new package is on flash
        # yet (this runs before package_write_start / uri_write, so ``_written`` would still
        # count the previous package).
        deadline = self.firmware.machine.defer_deadline if self.firmware is not None else None
        self.bootloader.write_record(
            state=step.state, result=step.result, package_uri=uri, staged=staged,
            download_offset=0, defer_deadline=deadline,
        )  # fmt: skip

    # -- staging a package: shared by push and pull ----------------------------------------------

    def begin(self, uri: str = "") -> UpdateResult:
        """Open the staging slot for a new package."""
        slot = self.bootloader.staging_slot
        self.package_uri = uri
        self.staged = None
        self._verifier = PackageVerifier(
            verify_key=self.bootloader.verify_key,
            device_type=self.bootloader.device_type,
            max_image_size=slot.size - MAX_OVERHEAD,
        )
        self._received = self._written = self._erased_to = 0
        self._pending = b""
        self.timeline.clear()
        return SUCCESS

    def write_chunk(self, chunk: bytes) -> UpdateResult:
        """Check and store the next piece of the package."""
        if self._verifier is None:
            raise RuntimeError("write_chunk() before begin(): no package is being received")
        arrived = self.flash.clock.now
        # An index into the list of records (which its owner may clear between updates), not
        # the flash's lifetime count of operations.
        first_operation = len(self.flash.operations)
        try:
            self._verifier.feed(chunk)
        except PackageError as error:
            return error.result
        self._program(self._pending + chunk)
        self.timeline.append(
            ChunkTiming(
                len(self.timeline),
                self._received,
                len(chunk),
                arrived,
                tuple(self.flash.operations[first_operation:]),
            )
        )
        self._received += len(chunk)
        return SUCCESS

    def finish(self) -> UpdateResult:
        """The last piece arrived: flush it to flash and check the whole package."""
        if self._verifier is None:
            raise RuntimeError("finish() before begin(): no package is being received")
        granularity = self.flash.profile.write_granularity
        if self._pending:
            first_operation = len(self.flash.operations)
            self._program(self._pending + b"\xff" * (-len(self._pending) % granularity))
            if self.timeline:  # the flush of the last chunk's tail belongs to that chunk
                last = self.timeline[-1]
                flushed = tuple(self.flash.operations[first_operation:])
                self.timeline[-1] = replace(last, flash=last.flash + flushed)
        try:
            info = self._verifier.finish()
        except PackageError as error:
            return error.result
        finally:
            self._verifier = None
        self.staged = StagedPackage(info.name, info.version, info.package_size, info.sha256)
        return SUCCESS

    def _program(self, data: bytes) -> None:
        """Program the whole write units of ``data``; keep the rest for the next chunk."""
        granularity = self.flash.profile.write_granularity
        whole = len(data) - len(data) % granularity
        slot = self.bootloader.staging_slot
        if whole:
            end = self._written + whole
            while self._erased_to < end:  # erase each sector just before the data reaches it
                index = self.flash.sector_index(slot.start + self._erased_to)
                start, size = self.flash.sector(index)
                self.flash.erase_sector(index)
                self._erased_to = start + size - slot.start
            self.flash.write(slot.start + self._written, data[:whole])
            self._written = end
        self._pending = data[whole:]

    # -- the eight handlers ------------------------------------------------------------------------

    def package_write_start(self) -> UpdateResult:
        return self.begin()

    def package_write(self, chunk: bytes) -> UpdateResult:
        return self.write_chunk(chunk)

    def package_write_finish(self) -> UpdateResult:
        return self.finish()

    def uri_write(self, uri: str) -> UpdateResult:
        if self.start_download is None:
            return UpdateResult.UNSUPPORTED_PROTOCOL
        self.begin(uri)
        return self.start_download(uri)

    def update_start(self) -> UpdateResult:
        # The record already says UPDATING (on_step); the bootloader installs at the next boot.
        # Reboot only after the server has its answer: the device layer does it.
        self.reboot_requested = True
        return SUCCESS

    def get_name(self) -> str | None:
        return self.staged.name if self.staged else None

    def get_version(self) -> str | None:
        return self.staged.version if self.staged else None

    def max_package_size(self) -> int:
        """The largest package the staging slot holds (for Size1 in a 4.13 answer)."""
        return self.bootloader.staging_slot.size

    def reset(self) -> None:
        # Forget the staged package; the next download erases the sectors it needs.
        self._verifier = None
        self._pending = b""
        self.staged = None
        self.package_uri = ""
