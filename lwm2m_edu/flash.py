"""Emulated NOR flash: erase before rewrite, modeled time, and torn writes when the power fails.

A firmware update ends in flash, and flash decides how an update has to be written. This module
emulates the NOR flash of small devices (the internal flash of a microcontroller, or an external
SPI NOR chip) closely enough to show the three facts a FOTA design is built around.

**Programming only clears bits.** An erased NOR cell reads 1. Programming can pull a bit down to
0; only an *erase* brings it back up to 1. So writing to flash really means *programming* it: the
new value of a byte is ``old & data``. Programming ``0x0F`` over ``0xF0`` does not give ``0x0F``,
it gives ``0x00``. This emulator refuses a program that would need a bit to go from 0 to 1, and
names the sector to erase first.

**Erase is coarse and slow.** An erase clears a whole *sector* (Nordic calls it a *page*, ST a
*sector*, SPI NOR datasheets a *4 KB sector*) and takes tens of milliseconds to a second, while
programming a few hundred bytes takes well under a millisecond. A device receiving an image
block by block must erase ahead of the data, and on some parts erasing the slot takes longer than
downloading the image.

**A power cut tears the operation in progress.** Programming and erasing move charge onto and off
floating gates, which takes time. Cut the power half-way and the flash holds neither the old nor
the new contents: a program leaves the first words written and the next one half-written (some of
its bits cleared, some not), an erase leaves the sector partly erased and the rest as garbage. So
a bootloader must never boot an image it has not verified, and must keep its own records in a way
that survives a torn write (two copies, sequence numbers, checksums). ``cut_power`` schedules such
a cut; the operation it hits is torn and raises ``PowerLoss``, which a device layer catches to
simulate the reset.

Time is a parameter. Every operation advances a ``ModeledClock`` by the duration the part's
datasheet gives, and appends a ``FlashOperation`` record to ``flash.operations`` (a plot draws
them as a Gantt chart). Nothing here reads the wall clock: erasing 1 MiB of STM32F4 flash takes
about 8 modeled seconds and a few real milliseconds, the same on every run.

The timing model, with the numbers taken from a ``FlashProfile``:

=========  =====================================================================
read       ``length / read_rate``
program    ``program_overhead + page_program_time * length / page_size``
           (a partial page costs its share of a full page)
erase      ``sector_erase_time`` for the sector's size (one operation per sector)
=========  =====================================================================

``FLASH_PROFILES`` holds four real parts, each number commented with the datasheet it comes
from: ``nrf52840-internal``, ``stm32f4-internal``, ``w25q64-spi-nor`` and ``mx25r6435f-spi-nor``.

**Only written sectors cost memory.** A real part is mostly erased, and an erased sector holds
no information: every byte is 0xFF. So the emulator does not keep one big ``bytearray`` of the
whole capacity (a fleet of 1000 devices with 1 MiB of flash each would hold 1 GiB of 0xFF).
It keeps a dict from sector number to a ``bytearray`` of that one sector (held through a
``memoryview``, so that slicing it copies nothing), and a sector that is not in the dict is
erased:

* reading an absent sector gives 0xFF bytes, cut from one erased sector all flashes share;
* programming gives a sector its ``bytearray`` the first time a bit of it is cleared
  (programming 0xFF changes nothing, so it allocates nothing);
* erasing a sector drops its entry, and the memory with it; a torn erase that happens to leave
  every byte at 0xFF drops it too.

A sector is in the dict exactly when it holds a 0 bit, and ``resident_bytes`` says how much
memory that is: 0 for a fresh part, 64 KiB once a 64 KiB image is written, whatever the
capacity. Everything else (the bit rules, the timing, the torn operations) comes out exactly
as it would on one big array.
"""

from __future__ import annotations

import functools
import html
import itertools
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "FLASH_PROFILES",
    "EmulatedFlash",
    "FlashError",
    "FlashOperation",
    "FlashProfile",
    "KiB",
    "MiB",
    "ModeledClock",
    "OperationKind",
    "PowerLoss",
    "uniform_sectors",
]

KiB = 1024
MiB = 1024 * KiB

#: What a ``FlashOperation`` did.
OperationKind = Literal["read", "program", "erase"]


class FlashError(Exception):
    """The flash was used in a way the real part would refuse (or a profile is inconsistent)."""


class PowerLoss(Exception):
    """The power failed: raised by the operation a scheduled cut hit, and by any operation while
    the flash has no power. Catch it where the device resets; call ``power_on()`` to boot again.

    ``time`` is the modeled instant of the cut; ``operation`` is the torn operation, or ``None``
    when the power was already off before the operation started.
    """

    def __init__(self, message: str, *, time: float, operation: FlashOperation | None) -> None:
        super().__init__(message)
        self.time = time
        self.operation = operation


class ModeledClock:
    """The modeled timeline, in seconds from 0.0. It moves only when told to.

    Flash operations (and, in other layers, the network link) advance it by their modeled
    duration, so a plot of an update is the same on every run and costs no real waiting.
    Several devices may share one clock.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = _check_time(start, "a clock's start")

    @property
    def now(self) -> float:
        """The current modeled time, in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards); return the new time."""
        seconds = _check_time(seconds, "advance()")
        if seconds < 0:
            raise ValueError(f"the clock cannot go back: advance({seconds!r}) needs seconds >= 0")
        self._now += seconds
        return self._now

    def advance_to(self, t: float) -> float:
        """Move forward to time ``t`` (which must not be in the past); return it."""
        t = _check_time(t, "advance_to()")
        if t < self._now:
            raise ValueError(
                f"the clock cannot go back: advance_to({t!r}) is before now ({self._now!r})"
            )
        self._now = t
        return self._now

    def __repr__(self) -> str:
        return f"<ModeledClock t={self._now:.6g} s>"


def _check_time(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} takes a finite number of seconds, not {value!r}")
    return float(value)


def uniform_sectors(capacity: int, sector_size: int) -> tuple[int, ...]:
    """The erase layout of a part whose sectors all have one size:
    ``uniform_sectors(8 * MiB, 4 * KiB)`` is 2048 sectors of 4 KiB."""
    if sector_size <= 0 or capacity <= 0 or capacity % sector_size:
        raise FlashError(
            f"a capacity of {capacity} bytes is not a whole number of {sector_size}-byte sectors"
        )
    return (sector_size,) * (capacity // sector_size)


@dataclass(frozen=True)
class FlashProfile:
    """The geometry and timing of one flash part, from its datasheet.

    * ``capacity``: bytes in total.
    * ``sectors``: the erase blocks in address order, as sizes (``uniform_sectors`` builds the
      common case; STM32F4 parts mix 16, 64 and 128 KiB sectors).
    * ``page_size``: the most one program operation may cover; it may not cross a page boundary.
      It divides every sector, so a page never straddles two sectors.
    * ``write_granularity``: the smallest programmable unit, and the alignment of every program
      (1 byte for SPI NOR, a 32-bit word for the nRF52840's NVMC).
    * ``page_program_time``: seconds to program one full page; a partial page costs its share.
    * ``program_overhead``: fixed seconds per program operation (0 unless the datasheet gives one).
    * ``sector_erase_time``: seconds to erase one sector, or a mapping from sector size to
      seconds when sectors differ in size.
    * ``read_rate``: bytes per second read.
    * ``erased_value``: what an erased byte reads: 0xFF, since this models NOR flash.
    * ``datasheet``: where the numbers come from.
    """

    name: str
    description: str
    capacity: int
    page_size: int
    sectors: tuple[int, ...]
    page_program_time: float
    sector_erase_time: float | Mapping[int, float]
    read_rate: float
    write_granularity: int = 1
    program_overhead: float = 0.0
    erased_value: int = 0xFF
    datasheet: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sectors", tuple(self.sectors))
        where = f"flash profile {self.name!r}"
        for attribute in ("capacity", "page_size", "write_granularity"):
            value = getattr(self, attribute)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise FlashError(f"{where}: {attribute} must be a positive int, not {value!r}")
        if not self.sectors or any(
            isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in self.sectors
        ):
            raise FlashError(f"{where}: sectors must be a non-empty tuple of positive sizes")
        if sum(self.sectors) != self.capacity:
            raise FlashError(
                f"{where}: the sectors add up to {sum(self.sectors)} bytes, "
                f"but the capacity is {self.capacity}; list every sector"
            )
        if self.page_size % self.write_granularity:
            raise FlashError(
                f"{where}: page_size {self.page_size} is not a multiple of "
                f"write_granularity {self.write_granularity}"
            )
        for size in sorted(set(self.sectors)):
            if size % self.page_size:
                raise FlashError(
                    f"{where}: a {size}-byte sector is not a whole number of "
                    f"{self.page_size}-byte pages; a page must never straddle two sectors"
                )
        if self.erased_value != 0xFF:
            raise FlashError(
                f"{where}: erased_value must be 0xFF: this models NOR flash, whose erased cells "
                "read 1 and whose programming only clears bits"
            )
        self._check_positive("page_program_time", self.page_program_time)
        self._check_positive("read_rate", self.read_rate)
        if not _is_time(self.program_overhead) or self.program_overhead < 0:
            raise FlashError(f"{where}: program_overhead must be >= 0 seconds")
        if isinstance(self.sector_erase_time, Mapping):
            times = {int(size): t for size, t in self.sector_erase_time.items()}
            missing = sorted(set(self.sectors) - set(times))
            if missing:
                raise FlashError(
                    f"{where}: sector_erase_time gives no time for sectors of {missing} bytes"
                )
            for size, t in times.items():
                self._check_positive(f"sector_erase_time[{size}]", t)
            object.__setattr__(self, "sector_erase_time", MappingProxyType(times))
        else:
            self._check_positive("sector_erase_time", self.sector_erase_time)

    def __hash__(self) -> int:  # sector_erase_time may be a mapping, which has no hash
        return hash((self.name, self.capacity, self.sectors))

    def _check_positive(self, attribute: str, value: object) -> None:
        if not _is_time(value) or value <= 0:  # type: ignore[operator]
            raise FlashError(
                f"flash profile {self.name!r}: {attribute} must be a positive number, not {value!r}"
            )

    def program_time(self, length: int) -> float:
        """Seconds to program ``length`` bytes within one page."""
        return self.program_overhead + self.page_program_time * (length / self.page_size)

    def erase_time(self, sector_size: int) -> float:
        """Seconds to erase one sector of ``sector_size`` bytes."""
        if isinstance(self.sector_erase_time, Mapping):
            return self.sector_erase_time[sector_size]
        return self.sector_erase_time

    def read_time(self, length: int) -> float:
        """Seconds to read ``length`` bytes."""
        return length / self.read_rate

    def _repr_html_(self) -> str:
        """The datasheet numbers as a small table, every one with its unit (for notebooks)."""
        if isinstance(self.sector_erase_time, Mapping):
            times = sorted(self.sector_erase_time.items())
            erase = ", ".join(f"{_size(size)}: {_seconds(t)}" for size, t in times)
        else:
            erase = f"{_seconds(self.sector_erase_time)} per sector"
        program = f"{_seconds(self.page_program_time)} per page ({_size(self.page_size)})"
        if self.program_overhead:
            program += f" + {_seconds(self.program_overhead)} per operation"
        rows = [
            ("part", self.name),
            ("description", self.description),
            ("capacity", f"{_size(self.capacity)} ({self.capacity} bytes)"),
            ("sectors", _sector_runs(self.sectors)),
            ("page size", _size(self.page_size)),
            ("write granularity", _size(self.write_granularity).replace("1 bytes", "1 byte")),
            ("page program time", program),
            ("sector erase time", erase),
            ("read rate", _rate(self.read_rate)),
            ("datasheet", self.datasheet or "-"),
        ]
        return _html_table("FlashProfile", rows)


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: Real parts, by name. "Typical" figures are what a datasheet lists as typical; where a datasheet
#: gives only a maximum, the comment says so.
FLASH_PROFILES: dict[str, FlashProfile] = {
    profile.name: profile
    for profile in (
        FlashProfile(
            name="nrf52840-internal",
            description="Nordic nRF52840 internal flash (NVMC): 256 pages of 4 KiB, word writes",
            datasheet="nRF52840 Product Specification v1.11 (Nordic Semiconductor)",
            # PS §4.2 Memory: 1 MB of flash, 256 pages of 4 kB; the page is the erase unit.
            capacity=1 * MiB,
            sectors=uniform_sectors(1 * MiB, 4 * KiB),
            # The NVMC has no program page; we let one program cover at most one 4 kB page.
            page_size=4 * KiB,
            # PS §4.3.1 (NVMC, writing to flash): only full 32-bit words, at word-aligned addresses.
            write_granularity=4,
            # PS NVMC electrical specification: tWRITE = 41 us to write one 32-bit word. The PS
            # lists it as a maximum and gives no typical value; 1024 words fill a page.
            page_program_time=(4 * KiB // 4) * 41e-6,
            # PS NVMC electrical specification: tERASEPAGE = 85 ms (a maximum; no typical value).
            sector_erase_time=85e-3,
            # Model, not a datasheet figure: one 32-bit word per cycle of the 64 MHz CPU
            # (PS §3.1 CPU). Reading internal flash is never the bottleneck of an update.
            read_rate=64e6 * 4,
        ),
        FlashProfile(
            name="stm32f4-internal",
            description="ST STM32F405/407 internal flash: 1 MiB in sectors of 16, 64 and 128 KiB",
            datasheet="ST RM0090 (reference manual) and DS8626 (STM32F405/407 datasheet)",
            # RM0090 §3.3, Table 5 "Flash module organization (STM32F40x and STM32F41x)":
            # sectors 0-3 are 16 KB, sector 4 is 64 KB, sectors 5-11 are 128 KB.
            capacity=1 * MiB,
            sectors=(16 * KiB,) * 4 + (64 * KiB,) + (128 * KiB,) * 7,
            # RM0090 §3.5.4 "Programming errors": a program may not cross a 128-bit row boundary.
            page_size=16,
            # x32 parallelism (PSIZE = 0b10, for VDD 2.7-3.6 V), RM0090 §3.5.4: 32-bit writes.
            write_granularity=4,
            # DS8626 §6.3.12, Table 40 "Flash memory programming": tprog, word programming time,
            # 16 us typical (100 us max); 4 words per 128-bit row.
            page_program_time=4 * 16e-6,
            # DS8626 §6.3.12, Table 40: tERASE16KB, tERASE64KB, tERASE128KB at x32 parallelism,
            # typical: 250 ms, 550 ms, 1 s (the 128 KB sector: 2 s max).
            sector_erase_time={16 * KiB: 250e-3, 64 * KiB: 550e-3, 128 * KiB: 1.0},
            # RM0090 §3.4.1, Table 10: 5 wait states at 168 MHz (2.7-3.6 V), so one 128-bit
            # flash line every 6 CPU cycles.
            read_rate=168e6 * 16 / 6,
        ),
        FlashProfile(
            name="w25q64-spi-nor",
            description="Winbond W25Q64JV 64 Mbit SPI NOR: 4 KiB sectors, 256-byte pages",
            datasheet="Winbond W25Q64JV datasheet, Revision I (2017)",
            # §2 Features: 64 Mbit, organised as 32,768 programmable pages of 256 bytes and
            # 2,048 erasable 4 KB sectors.
            capacity=8 * MiB,
            sectors=uniform_sectors(8 * MiB, 4 * KiB),
            # Page Program (02h) writes 1 to 256 bytes within one 256-byte page.
            page_size=256,
            write_granularity=1,
            # §9 AC Electrical Characteristics: tPP, page program time, 0.4 ms typical (3 ms max).
            page_program_time=0.4e-3,
            # §9 AC Electrical Characteristics: tSE, sector erase time (4 KB), 45 ms typical
            # (400 ms max).
            sector_erase_time=45e-3,
            # §9 AC Electrical Characteristics: Fast Read (0Bh) at up to FR = 133 MHz, on one
            # data line: 133e6 / 8 bytes per second (quad I/O would read 4 times faster).
            read_rate=133e6 / 8,
        ),
        FlashProfile(
            name="mx25r6435f-spi-nor",
            description=(
                "Macronix MX25R6435F 64 Mbit low-power SPI NOR (the nRF52840 DK's external "
                "flash), on quad SPI at 8 MHz"
            ),
            datasheet=(
                "the part's own SFDP table (JESD216 Basic Flash Parameter Table), as copied into "
                "Zephyr's nrf52840dk board devicetree (sfdp-bfp), and that devicetree's QSPI setup"
            ),
            # SFDP BFPT DWORD 2 = 0x03FFFFFF: a density of 2**26 bits, 8 MiB.
            capacity=8 * MiB,
            # SFDP BFPT DWORD 8: erase type 1 is 2**12 = 4 KB (opcode 20h).
            sectors=uniform_sectors(8 * MiB, 4 * KiB),
            # SFDP BFPT DWORD 11 bits 7:4 = 8: a 2**8 = 256-byte page.
            page_size=256,
            write_granularity=1,
            # SFDP BFPT DWORD 11 bits 13:8: page program time, typical, (13 + 1) x 64 us = 896 us.
            page_program_time=896e-6,
            # SFDP BFPT DWORD 10 bits 10:4: erase type 1 (4 KB), typical, (2 + 1) x 16 ms = 48 ms.
            sector_erase_time=48e-3,
            # Zephyr nrf52840dk devicetree: sck-frequency = 8 MHz, readoc = "read4io" (4 data
            # lines): 8e6 * 4 / 8 bytes per second. A low clock keeps the part in its low-power
            # mode and is what the DK uses.
            read_rate=8e6 * 4 / 8,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class FlashOperation:
    """One operation on the modeled timeline: what, where, and from when to when (seconds).

    ``torn`` is true for the operation a power cut interrupted; its ``end`` is the cut.
    """

    kind: OperationKind
    offset: int
    length: int
    start: float
    end: float
    torn: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


class EmulatedFlash:
    """A NOR flash part: bytes that obey erase-before-write, on a modeled timeline.

    ``EmulatedFlash("w25q64-spi-nor")`` or ``EmulatedFlash(profile, clock, seed=1)``. It starts
    erased (every byte 0xFF). ``seed`` makes the garbage of torn operations reproducible.

    ``read``, ``program``, ``write``, ``erase_sector`` and ``erase`` each advance ``clock`` by
    their modeled duration and append ``FlashOperation`` records to ``operations``.
    ``dump`` shows the contents as a chip programmer would, at no modeled cost.
    ``resident_bytes`` is the memory the contents take: only sectors holding data cost any.
    """

    def __init__(
        self, profile: FlashProfile | str, clock: ModeledClock | None = None, *, seed: int = 0
    ) -> None:
        if isinstance(profile, str):
            if profile not in FLASH_PROFILES:
                raise FlashError(
                    f"no flash profile named {profile!r}; choose one of {sorted(FLASH_PROFILES)} "
                    "or pass a FlashProfile"
                )
            profile = FLASH_PROFILES[profile]
        self.profile = profile
        self.clock = clock if clock is not None else ModeledClock()
        self.seed = seed
        #: Every operation so far, in order (a torn one included): plain data for plots.
        self.operations: list[FlashOperation] = []
        #: The contents: sector number -> that sector's bytes, for every sector holding a 0 bit.
        #: A sector not in it is erased (all 0xFF) and costs no memory. Each is a ``bytearray``
        #: held through a ``memoryview``: slicing a view copies nothing, slicing a bytearray does.
        self._stored: dict[int, memoryview] = {}
        #: The geometry never changes, so it is built once per layout and shared by every flash
        #: with that layout: the start of every sector, its ``(start, size)``, and a table to
        #: find the sector holding an address without a search: ``_granule`` divides every
        #: sector size, and ``_sector_at[offset // _granule]`` is the sector holding ``offset``.
        self._starts, self._sectors, self._granule, self._sector_at = _layout(profile.sectors)
        self._rng = random.Random(seed)
        self._count = 0
        self._powered = True
        self._off_since: float | None = None
        self._cut_time: float | None = None
        self._cut_operation: int | None = None

    # -- geometry ---------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self.profile.capacity

    @property
    def sectors(self) -> list[tuple[int, int]]:
        """The erase sectors as ``(start, size)`` pairs, in address order (a new list, yours
        to change; ``sector(index)`` gives one pair without building it)."""
        return list(self._sectors)

    def sector(self, index: int) -> tuple[int, int]:
        """``(start, size)`` of sector ``index``."""
        self._check_sector(index)
        return self._sectors[index]

    def sector_index(self, offset: int) -> int:
        """The number of the sector holding byte ``offset``."""
        self._check_range("sector_index", offset, 1)
        return self._sector_at[offset // self._granule]

    def page_range(self, offset: int) -> tuple[int, int]:
        """``(start, end)`` of the program page holding byte ``offset`` (end exclusive)."""
        self._check_range("page_range", offset, 1)
        start = offset - offset % self.profile.page_size
        return start, start + self.profile.page_size

    # -- memory -------------------------------------------------------------------------------

    @property
    def resident_bytes(self) -> int:
        """Bytes of memory the emulator holds for the contents: the size of every sector that
        holds a 0 bit. A fresh or fully erased flash holds 0, whatever its capacity; writing a
        64 KiB image into 4 KiB sectors makes it 64 KiB. Not modeled time, and free to ask."""
        return sum(map(len, self._stored.values()))

    # -- power --------------------------------------------------------------------------------

    @property
    def operation_count(self) -> int:
        """Operations started so far (the number the next one will have, counting from 0)."""
        return self._count

    @property
    def powered(self) -> bool:
        """Whether the flash has power now (a scheduled cut whose time has come counts as off)."""
        return self._powered and not (
            self._cut_time is not None and self.clock.now >= self._cut_time
        )

    def cut_power(self, at_time: float | None = None, at_operation: int | None = None) -> None:
        """Schedule a power cut, replacing any earlier schedule; with no argument, cut it now.

        ``at_time``: the modeled instant of the cut. The operation running then is torn; if the
        flash is idle then, the next operation finds the power gone.
        ``at_operation``: operation number ``at_operation`` (see ``operation_count``) is torn at
        a seeded random point. Given both, the first cut to come wins.
        """
        if at_time is None and at_operation is None:
            self._power_off(self.clock.now)
            return
        if at_time is not None:
            at_time = _check_time(at_time, "cut_power(at_time=...)")
        if at_operation is not None:
            if isinstance(at_operation, bool) or not isinstance(at_operation, int):
                raise FlashError(f"at_operation must be an operation number, not {at_operation!r}")
            if at_operation < self._count:
                raise FlashError(
                    f"operation {at_operation} has already run; the next one is number "
                    f"{self._count} (flash.operation_count)"
                )
        self._cut_time = at_time
        self._cut_operation = at_operation

    def power_on(self) -> None:
        """Restore power, and cancel any scheduled cut. The contents stay as the cut left them:
        flash is non-volatile, torn bytes included."""
        self._powered = True
        self._off_since = None
        self._cut_time = None
        self._cut_operation = None

    def _power_off(self, at: float) -> None:
        self._powered = False
        self._off_since = at
        self._cut_time = None
        self._cut_operation = None

    def _require_power(self, what: str) -> None:
        if self._powered and self._cut_time is not None and self.clock.now >= self._cut_time:
            self._power_off(self._cut_time)
        if not self._powered:
            cut = self._off_since if self._off_since is not None else self.clock.now
            raise PowerLoss(
                f"{what} failed: the flash has no power since t={cut:.6g} s; "
                "the device must reset and call power_on()",
                time=cut,
                operation=None,
            )

    # -- operations ---------------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``. Costs ``length / read_rate`` seconds."""
        self._check_range("read", offset, length)
        self._require_power("read")
        if length == 0:
            return b""
        # Reads are the hottest path: a range within one stored sector is copied out of it here,
        # one copy and no call; anything else is assembled by _contents.
        index = self._sector_at[offset // self._granule]
        start, size = self._sectors[index]
        stored = self._stored.get(index)
        if stored is not None and offset + length <= start + size:
            result = stored[offset - start : offset - start + length].tobytes()
        else:
            result = bytes(self._contents(offset, length))
        self._operate("read", offset, length, self.profile.read_time(length), _nothing, _nothing)
        return result

    def program(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Program ``data`` at ``offset``, within one page, clearing bits only.

        ``offset`` and ``len(data)`` must be multiples of the write granularity, and every bit
        that ``data`` has at 1 must still be 1 in the flash (erase the sector first otherwise).
        """
        data = bytes(data)
        self._check_program("program", offset, data)
        page_start, page_end = self.page_range(offset) if data else (offset, offset)
        if offset + len(data) > page_end:
            raise FlashError(
                f"program(0x{offset:X}, {len(data)} bytes) crosses the page boundary at "
                f"0x{page_end:X}: one program may only cover one {self.profile.page_size}-byte "
                f"page (0x{page_start:X}..0x{page_end - 1:X}); split it, or use write(), "
                "which does"
            )
        self._require_power("program")
        if data:
            self._program_page(offset, data)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Program ``data`` at ``offset`` as one program operation per page it spans.

        The whole range is checked first; a power cut may still leave it half-written.
        """
        data = bytes(data)
        self._check_program("write", offset, data)
        self._require_power("write")
        position = offset
        while position < offset + len(data):
            page_end = position - position % self.profile.page_size + self.profile.page_size
            end = min(page_end, offset + len(data))
            self._program_page(position, data[position - offset : end - offset])
            position = end

    def erase_sector(self, index: int) -> None:
        """Erase sector ``index`` (every byte back to 0xFF). Costs the sector's erase time."""
        self._check_sector(index)
        self._require_power("erase")
        start, size = self._sectors[index]
        self._operate(
            "erase",
            start,
            size,
            self.profile.erase_time(size),
            lambda: self._erase_complete(index),
            lambda fraction: self._erase_torn(index, fraction),
        )

    def erase(self, offset: int, length: int) -> None:
        """Erase the whole sectors that exactly cover ``offset .. offset + length``, one erase
        operation per sector."""
        self._check_range("erase", offset, length)
        if length == 0:
            return
        first, last = self.sector_index(offset), self.sector_index(offset + length - 1)
        start = self._starts[first]
        end = self._starts[last] + self.profile.sectors[last]
        if (offset, offset + length) != (start, end):
            raise FlashError(
                f"erase(0x{offset:X}, 0x{length:X}) does not cover whole sectors: flash erases "
                f"sector by sector. The sectors it touches span 0x{start:X}..0x{end - 1:X}: "
                f"erase(0x{start:X}, 0x{end - start:X}) erases them all (save any data to keep)"
            )
        for index in range(first, last + 1):
            self.erase_sector(index)

    def dump(self, offset: int = 0, length: int | None = None) -> bytes:
        """The contents, as a chip programmer would read them: no modeled time, not recorded,
        and available with the power off."""
        length = self.capacity - offset if length is None else length
        self._check_range("dump", offset, length)
        return bytes(self._contents(offset, length))

    # -- internals ----------------------------------------------------------------------------

    def _check_range(self, what: str, offset: int, length: int) -> None:
        for name, value in (("offset", offset), ("length", length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FlashError(f"{what}: {name} must be a non-negative int, not {value!r}")
        if offset + length > self.capacity or (length == 0 and offset > self.capacity):
            raise FlashError(
                f"{what}(0x{offset:X}, {length} bytes) runs past the end of the flash "
                f"({_size(self.capacity)}, last address 0x{self.capacity - 1:X})"
            )

    def _check_sector(self, index: int) -> None:
        count = len(self._sectors)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise FlashError(f"there is no sector {index!r}: sectors are numbered 0..{count - 1}")

    def _check_program(self, what: str, offset: int, data: bytes) -> None:
        self._check_range(what, offset, len(data))
        unit = self.profile.write_granularity
        if offset % unit:
            below = offset - offset % unit
            raise FlashError(
                f"{what}(0x{offset:X}, ...): {self.profile.name} programs {unit}-byte units, so "
                f"the offset must be a multiple of {unit}; use 0x{below:X} or 0x{below + unit:X}"
            )
        if len(data) % unit:
            raise FlashError(
                f"{what}(0x{offset:X}, {len(data)} bytes): {self.profile.name} programs "
                f"{unit}-byte units; pad the data to a multiple of {unit} bytes with 0xFF "
                "(a 1 bit leaves the flash bit as it is)"
            )
        if not data:
            return
        index = self._sector_at[offset // self._granule]
        start, size = self._sectors[index]
        if offset + len(data) <= start + size:  # within one sector: the common case
            stored = self._stored.get(index)
            if stored is None:
                return  # an erased sector: every bit is 1, so any data may be programmed
            current: bytes | memoryview = stored[offset - start : offset - start + len(data)]
        else:
            current = self._contents(offset, len(data))
        # The whole range at once, as one integer per side: a bit set in ``data`` but clear in
        # the flash would have to go from 0 to 1. Little-endian, so the lowest such bit is in
        # the first offending byte.
        rising = int.from_bytes(data, "little") & ~int.from_bytes(current, "little")
        if rising:
            i = ((rising & -rising).bit_length() - 1) // 8
            old, new = current[i], data[i]
            address = offset + i
            index = self._sector_at[address // self._granule]
            start, size = self._sectors[index]
            raise FlashError(
                f"{what} at 0x{address:X} would need bits to go from 0 to 1 "
                f"(0x{old:02X} -> 0x{new:02X}), and programming only clears bits: erase "
                f"sector {index} (0x{start:X}..0x{start + size - 1:X}) first, "
                f"with flash.erase_sector({index})"
            )

    def _contents(self, offset: int, length: int) -> bytes | memoryview:
        """The contents of ``offset .. offset + length``, sector by sector: a stored sector
        gives its bytes (a view of them, to use before the next change), an erased one 0xFF."""
        if length == 0:
            return b""
        index = self._sector_at[offset // self._granule]
        start, size = self._sectors[index]
        if offset + length <= start + size:  # within one sector: the common case
            stored = self._stored.get(index)
            if stored is None:
                return _ERASED[size][:length]
            return stored[offset - start : offset - start + length]
        pieces: list[bytes | memoryview] = []
        end = offset + length
        while offset < end:
            start, size = self._sectors[index]
            stop = min(end, start + size)
            stored = self._stored.get(index)
            if stored is None:
                pieces.append(_ERASED[size][: stop - offset])
            else:
                pieces.append(stored[offset - start : stop - start])
            offset = stop
            index += 1
        return b"".join(pieces)

    def _program_page(self, offset: int, data: bytes) -> None:
        self._operate(
            "program",
            offset,
            len(data),
            self.profile.program_time(len(data)),
            lambda: self._program_complete(offset, data),
            lambda fraction: self._program_torn(offset, data, fraction),
        )

    def _operate(
        self,
        kind: OperationKind,
        offset: int,
        length: int,
        duration: float,
        complete: Callable[[], None],
        tear: Callable[[float], None],
    ) -> None:
        """Run one operation on the timeline: whole, or torn by a scheduled power cut."""
        self._require_power(kind)
        number = self._count
        self._count += 1
        start = self.clock.now
        cut_at: float | None = None
        if self._cut_operation == number:
            cut_at = start + self._rng.random() * duration
        if self._cut_time is not None and self._cut_time < start + duration:
            cut_at = self._cut_time if cut_at is None else min(cut_at, self._cut_time)
        if cut_at is None:
            complete()
            self.clock.advance(duration)
            self.operations.append(FlashOperation(kind, offset, length, start, self.clock.now))
            return
        tear((cut_at - start) / duration)
        self.clock.advance_to(cut_at)
        operation = FlashOperation(kind, offset, length, start, cut_at, torn=True)
        self.operations.append(operation)
        self._power_off(cut_at)
        raise PowerLoss(
            f"power lost at t={cut_at:.6g} s during {kind} of {length} bytes at 0x{offset:X} "
            f"(operation {number}); that {kind} is torn",
            time=cut_at,
            operation=operation,
        )

    def _program_complete(self, offset: int, data: bytes) -> None:
        """Every byte becomes ``old & new``, computed for the whole range at once.

        ``data`` lies within one page, so within one sector. Over an erased sector (all 1 bits)
        ``old & new`` is ``new`` itself: the sector gets its memory, unless ``new`` is all 0xFF
        too and so changes nothing."""
        if not data:
            return
        index = self._sector_at[offset // self._granule]
        low = offset - self._starts[index]
        high = low + len(data)
        stored = self._stored.get(index)
        if stored is None:
            if data.count(0xFF) == len(data):  # nothing to clear
                return
            size = self.profile.sectors[index]
            stored = self._stored[index] = memoryview(bytearray(_ERASED[size]))
            stored[low:high] = data
            return
        old = int.from_bytes(stored[low:high], "little")
        programmed = old & int.from_bytes(data, "little")
        stored[low:high] = programmed.to_bytes(len(data), "little")

    def _program_torn(self, offset: int, data: bytes, fraction: float) -> None:
        """The first whole units programmed, the next one with only some of its bits cleared,
        the rest untouched."""
        unit = self.profile.write_granularity
        units = len(data) // unit
        done = min(int(fraction * units), units - 1)
        self._program_complete(offset, data[: done * unit])
        start = offset + done * unit
        old = int.from_bytes(self._contents(start, unit), "big")
        new = int.from_bytes(data[done * unit : (done + 1) * unit], "big")
        pending = [bit for bit in range(8 * unit) if (old & ~new) >> bit & 1]
        cleared = self._rng.sample(pending, self._rng.randrange(len(pending))) if pending else []
        torn = old & ~sum(1 << bit for bit in cleared)
        self._program_complete(start, torn.to_bytes(unit, "big"))  # torn & old is torn

    def _erase_complete(self, index: int) -> None:
        """Every byte back to 0xFF: the sector's memory is released."""
        self._stored.pop(index, None)

    def _erase_torn(self, index: int, fraction: float) -> None:
        """A prefix erased; in the rest each bit reads 1 with probability 1/2 (a half-erased
        cell reads either way). A teaching simplification of a real part's erase pulses."""
        start, size = self._sectors[index]
        done = min(int(fraction * size), size - 1)
        rest = size - done
        old = int.from_bytes(self._contents(start + done, rest), "big")
        # Drawn even when the sector was erased already, so that every later tear draws the
        # same numbers whether or not this one found anything to garble.
        noisy = old | self._rng.getrandbits(8 * rest)
        sector = _ERASED[size][:done] + noisy.to_bytes(rest, "big")
        if sector.count(0xFF) == size:  # the garbage happens to read erased
            self._stored.pop(index, None)
        else:
            self._stored[index] = memoryview(bytearray(sector))

    def __repr__(self) -> str:
        power = "" if self.powered else ", power off"
        return (
            f"<EmulatedFlash {self.profile.name} {_size(self.capacity)}, "
            f"{len(self._starts)} sectors, t={self.clock.now:.3f} s, {self._count} ops{power}>"
        )

    def _repr_html_(self) -> str:
        """The part, the modeled clock and what the operations so far cost (for notebooks)."""
        kinds = ("erase", "program", "read")
        counts = {kind: 0 for kind in kinds}
        busy = {kind: 0.0 for kind in kinds}
        for operation in self.operations:
            counts[operation.kind] += 1
            busy[operation.kind] += operation.duration
        done = ", ".join(f"{counts[k]} {k} ({_seconds(busy[k])})" for k in kinds if counts[k])
        rows = [
            ("part", self.profile.name),
            ("capacity", f"{_size(self.capacity)} ({self.capacity} bytes)"),
            ("sectors", _sector_runs(self.profile.sectors)),
            ("modeled clock", f"t = {self.clock.now:.6f} s"),
            ("operations", f"{self._count}: {done}" if done else "none yet"),
            ("power", "on" if self.powered else "OFF (cut)"),
            ("memory held", _memory(self.resident_bytes, len(self._stored), len(self._sectors))),
        ]
        return _html_table("EmulatedFlash", rows)


def _nothing(*_: object) -> None:
    """A read changes nothing, whole or torn."""


#: One erased sector of every size a layout uses, shared by every flash: reading an erased
#: range slices it (a whole sector costs no copy: slicing all of a ``bytes`` gives it back).
_ERASED: dict[int, bytes] = {}


@functools.cache
def _layout(
    sectors: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], int, tuple[int, ...]]:
    """The geometry of a layout, built once and shared by every flash with it (a fleet of one
    part holds one copy): the start of every sector, its ``(start, size)``, the granule (the
    largest size dividing every sector), and the sector of every granule in address order.
    It also puts an erased sector of every size in ``_ERASED``.

    An STM32F4 (16, 16, 16, 16, 64, 128, ... KiB) has a 16 KiB granule, and its table begins
    ``0, 1, 2, 3, 4, 4, 4, 4, 5, ...``: byte ``offset`` is in sector
    ``table[offset // granule]``, one division and one index instead of a binary search.
    """
    starts = tuple(itertools.accumulate(sectors[:-1], initial=0))
    granule = math.gcd(*sectors)
    for size in set(sectors):
        _ERASED.setdefault(size, b"\xff" * size)
    table = tuple(index for index, size in enumerate(sectors) for _ in range(size // granule))
    return starts, tuple(zip(starts, sectors, strict=True)), granule, table


def _memory(resident: int, stored: int, sectors: int) -> str:
    """``8 KiB (2 of 256 sectors hold data)``: what the contents cost in memory."""
    return f"{_size(resident) if resident else '0 bytes'} ({stored} of {sectors} sectors hold data)"


def _size(n: int) -> str:
    if n % MiB == 0:
        return f"{n // MiB} MiB"
    if n % KiB == 0:
        return f"{n // KiB} KiB"
    return f"{n} bytes"


def _seconds(t: float) -> str:
    """A duration with a readable unit: ``42 µs``, ``85 ms``, ``1.2 s``."""
    if t == 0:
        return "0 s"
    if t < 1e-3:
        return f"{t * 1e6:.3g} µs"
    if t < 1:
        return f"{t * 1e3:.3g} ms"
    return f"{t:.3g} s"


def _rate(bytes_per_second: float) -> str:
    if bytes_per_second >= MiB:
        return f"{bytes_per_second / MiB:.3g} MiB/s"
    return f"{bytes_per_second / KiB:.3g} KiB/s"


def _sector_runs(sectors: tuple[int, ...]) -> str:
    """Sector sizes in address order, runs collapsed: ``4 x 16 KiB, 1 x 64 KiB, 7 x 128 KiB``."""
    runs = [(size, len(list(group))) for size, group in itertools.groupby(sectors)]
    return ", ".join(f"{count} x {_size(size)}" for size, count in runs)


def _html_table(caption: str, rows: list[tuple[str, str]]) -> str:
    """A two-column table in the style of ``Package._repr_html_``; every text is escaped."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
        for k, v in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption>{body}</table>"
