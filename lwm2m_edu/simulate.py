"""A whole firmware update on a modeled link, in milliseconds: where does the time go?

``simulate_update`` runs a complete update — download, Execute Update, reboot, install — through
the *real* parts of this library: ``FirmwareObject`` (Object /5 and its state machine),
``FlashFirmwareHandlers`` (streaming into the staging slot), and ``Bootloader`` (verify and
switch slots at boot), on an ``EmulatedFlash``. Only the network is a model: a ``LinkModel``
with a round-trip time, a bandwidth and a per-message header cost. Nothing waits and nothing
reads the wall clock, so a notebook can compare flash parts, block sizes and links in a
fraction of a second, and get the same numbers on every run.

Where the time of an update goes
--------------------------------
* **The link.** Each block costs one CoAP exchange: a request and a response, so one round
  trip, plus the bytes (the block and two message headers) at the link's bandwidth::

      network time of one block = rtt + (block + 2 * overhead) / bandwidth

  The round trip does not depend on the block size; the bytes do. Small blocks pay the round
  trip (and the headers) many more times: a 64 KiB image is 1024 exchanges in 64-byte blocks
  but 64 in 1024-byte blocks. On a link with a long round trip (NB-IoT: about a second) that
  is the whole story.
* **Erasing.** NOR flash must be erased before it is programmed, a whole sector at a time, and
  an erase takes tens of milliseconds to a second. The handlers erase each sector of the
  staging slot just before the data reaches it, so the block that crosses into a new sector
  pays for erasing all of it. Erase granularity matters: a 4 KiB sector (nRF52840, SPI NOR)
  costs one short erase every 4 KiB; the STM32F4's 128 KiB sectors cost one erase of a whole
  second, paid in one block.
* **Programming.** A few hundred microseconds to a few milliseconds per page. Steady, and on
  most parts small next to the link.
* **The FOTA record.** Every State change (Downloading, Downloaded, Updating, and at boot Idle
  with Update Result 1) is persisted in the bootloader's record so it survives a power cut: each
  write is an erase of a record sector plus a small program. On a part with big sectors that is
  not free.
* **Verifying and installing at the reboot.** The bootloader reads the staged package back from
  flash and checks its hash before it switches slots, then checks the image it is about to run.
  Reading is fast on internal flash and slower on a low-clocked SPI bus.

CPU time (hashing, a signature check) is not modeled: the flash and the link dominate, and
this model only counts what a datasheet or a link budget can tell.

Lock-step, and what ``overlap=True`` changes
--------------------------------------------
CoAP block-wise transfer is lock-step by default (RFC 7252 NSTART = 1): one exchange at a time.
With one receive buffer, the device can't take the next block until the previous one is in
flash, so network and flash time simply add up::

    lock-step  net 0 ─ flash 0 ─ net 1 ─ flash 1 ─ net 2 ─ flash 2 ...

* **push** (Block1 PUT to /5/0/0, answered 2.31 Continue): the device writes the block, *then*
  answers 2.31; the server waits out the flash work inside the exchange. (A real device whose
  erase takes longer than ACK_TIMEOUT, 2 s, must send an empty ACK first and the 2.31
  separately, or the server retransmits.)
* **pull** (Block2 GET of the package, answered 2.05 Content): the device asks for the next
  block only when it has written the last one; the server never knows about flash. Pull also
  costs one exchange at the start (Write /5/0/1 Package URI) and a notification at the end
  (State 2 Downloaded, which tells the server to execute Update); push learns that from the
  answer to its last block. The FOTA record of a pull also keeps the Package URI (to resume
  after a reboot), so each of its record writes programs a few more bytes.

Per block the two cost the same: one round trip, the same bytes, the same flash work.

``overlap=True`` models **double buffering**: two block buffers in RAM, one being written to
flash while the other receives. The device takes (push: answers, pull: asks for) the next block
as soon as a buffer is free, so the network of block n+1 runs while block n is flashed::

    overlap    net 0 ─ net 1 ─ net 2 ─ net 3 ...
                       flash 0 flash 1 flash 2 ...

The update is then paced by the slower of the two — never slower than lock-step, and faster by
up to the smaller of the two. The last block is the exception in a push: its answer (2.04) says
the whole package checked out, so the device can only give it after the last write.

The update ends when the bootloader has finished: the device runs the new image and its record
says State 0 Idle, Update Result 1. (The server hears it one registration later.)
Phase totals add up work of one kind; the total is the critical path. In lock-step they differ
only where the link and the device really work at the same time: the 2.04 to Execute Update
travels while the device reboots (and, in a pull, the 2.04 to the Package URI write while the
device sends its first GET).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .bootloader import Bootloader
from .flash import EmulatedFlash, FlashOperation, FlashProfile, ModeledClock
from .flash_handlers import FlashFirmwareHandlers
from .fota import Protocol, State, UpdateResult
from .objects.firmware import FirmwareObject
from .objects.outcome import Code, Outcome
from .package import Package, PackageError

__all__ = [
    "BLOCK_SIZES",
    "LINK_PRESETS",
    "PHASES",
    "BlockRecord",
    "LinkModel",
    "Mode",
    "SimulatedUpdate",
    "SimulationError",
    "Span",
    "block_size_sweep",
    "simulate_update",
]

#: The block sizes CoAP block-wise transfer allows (RFC 7959 §2.2: SZX 0..6, 16 to 1024 bytes).
BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)
#: The phases an update's time is accounted in, in the order they happen.
PHASES = ("network", "erase", "program", "record", "verify", "install")
#: The URI a simulated pull "downloads" from (only its length matters: it is one Write).
PULL_URI = "coap://[2001:db8::1]/fw/app.bin"

Mode = Literal["push", "pull"]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class SimulationError(Exception):
    """The simulated update did not end with the new firmware running (State 0, Result 1)."""


@dataclass(frozen=True)
class LinkModel:
    """A network link, reduced to the three numbers that decide a block-wise transfer.

    * ``rtt``: round-trip time in seconds — what one request + response costs at zero size.
    * ``bandwidth``: bytes per second, the same in each direction (a simplification: cellular
      uplinks and downlinks differ).
    * ``overhead``: header bytes per message — IP, UDP and CoAP headers, token and options.

    One message of ``payload`` bytes takes ``rtt / 2 + (payload + overhead) / bandwidth``
    seconds from sender to receiver (``leg``). There is no loss and no jitter here.
    """

    rtt: float
    bandwidth: float
    overhead: int = 48
    name: str = ""

    def __post_init__(self) -> None:
        if not _finite(self.rtt) or self.rtt < 0:
            raise ValueError(f"rtt is a round-trip time in seconds >= 0, not {self.rtt!r}")
        if not _finite(self.bandwidth) or self.bandwidth <= 0:
            raise ValueError(f"bandwidth is in bytes per second, > 0, not {self.bandwidth!r}")
        if isinstance(self.overhead, bool) or not isinstance(self.overhead, int):
            raise ValueError(f"overhead is a whole number of header bytes, not {self.overhead!r}")
        if self.overhead < 0:
            raise ValueError(f"overhead is a number of header bytes >= 0, not {self.overhead!r}")

    def leg(self, payload: int) -> float:
        """Seconds for one message carrying ``payload`` bytes to reach the other side."""
        return self.rtt / 2 + (payload + self.overhead) / self.bandwidth

    def exchange(self, request_payload: int, response_payload: int = 0) -> float:
        """Seconds for a request and its response, back to back."""
        return self.leg(request_payload) + self.leg(response_payload)

    @classmethod
    def preset(cls, name: str) -> LinkModel:
        """One of ``LINK_PRESETS`` by name."""
        try:
            return LINK_PRESETS[name]
        except KeyError:
            raise ValueError(
                f"no link preset named {name!r}; choose one of {sorted(LINK_PRESETS)} "
                "or make a LinkModel(rtt=..., bandwidth=...)"
            ) from None

    def __str__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return (
            f"{label}RTT {_seconds(self.rtt)}, {_rate(self.bandwidth)}, "
            f"{self.overhead} header bytes per message"
        )


#: Typical links, by name. The header overhead is the same everywhere: IPv4 (20) + UDP (8) +
#: CoAP (4-byte header, a 4-byte token, Uri-Path "5" "0" "0" or the package path, a Block
#: option and Content-Format, the payload marker: about 20) = 48 bytes per message.
LINK_PRESETS: dict[str, LinkModel] = {
    link.name: link
    for link in (
        # 127.0.0.1 through the kernel: a UDP round trip is tens of microseconds (ping -c 10
        # 127.0.0.1 on a laptop: 0.03-0.1 ms); copying is memory-speed, call it 1 GB/s.
        # The flash is all there is to see.
        LinkModel(rtt=100e-6, bandwidth=1e9, name="loopback"),
        # A device on home/office Wi-Fi talking to a server in the same region: 802.11n to the
        # access point, then broadband; 20 ms is a common ping to a nearby cloud region. An
        # ESP32-class device sustains a few Mbit/s of UDP; we take 8 Mbit/s = 1 MB/s.
        LinkModel(rtt=20e-3, bandwidth=1e6, name="wifi"),
        # LTE-M (Cat-M1): peak 1 Mbit/s (3GPP TS 36.306, Rel-13); deployed networks report
        # 100-200 ms round trips and a few hundred kbit/s. We take 150 ms and 300 kbit/s.
        LinkModel(rtt=150e-3, bandwidth=300e3 / 8, name="lte-m"),
        # NB-IoT (Cat-NB1): peak about 26 kbit/s down, 62 kbit/s up (3GPP TS 36.306, Rel-13),
        # and field measurements report round trips of 0.3-2 s in normal coverage (worse in
        # deep coverage, where repetitions multiply it). We take 1 s and 20 kbit/s.
        LinkModel(rtt=1.0, bandwidth=20e3 / 8, name="nb-iot"),
    )
}


@dataclass(frozen=True)
class BlockRecord:
    """One block of the package: its exchange on the link and its flash work.

    ``network_start``: the exchange begins (push: the server sends the PUT; pull: the device
    sends the GET). ``received_at``: the whole block is at the device. ``network_end``: the
    exchange is over (push: the 2.31/2.04 reached the server; pull: the 2.05 arrived, so
    ``network_end == received_at``). ``legs``: the intervals the block's messages are on the
    link. ``flash``: the flash operations writing the block caused (erases ahead of the data,
    programs, and the FOTA record writes of State changes that happened at this block).
    """

    index: int
    offset: int  #: where the block starts in the package
    length: int
    network_start: float
    received_at: float
    network_end: float
    legs: tuple[tuple[float, float], ...]
    flash: tuple[FlashOperation, ...]
    record_range: tuple[int, int] = (0, 0)  #: flash addresses of the FOTA record (to tell apart)

    @property
    def network_time(self) -> float:
        """Seconds this block's messages spend on the link."""
        return sum(end - start for start, end in self.legs)

    @property
    def flash_start(self) -> float:
        return self.flash[0].start if self.flash else self.received_at

    @property
    def flash_end(self) -> float:
        return self.flash[-1].end if self.flash else self.received_at

    def _time(self, kind: str, record: bool) -> float:
        low, high = self.record_range
        return sum(
            op.duration
            for op in self.flash
            if op.kind == kind and (low <= op.offset < high) == record
        )

    @property
    def erase_time(self) -> float:
        """Seconds erasing the staging slot for this block."""
        return self._time("erase", record=False)

    @property
    def program_time(self) -> float:
        """Seconds programming this block into the staging slot."""
        return self._time("program", record=False)

    @property
    def record_time(self) -> float:
        """Seconds writing the FOTA record (a State change) during this block."""
        return self._time("erase", record=True) + self._time("program", record=True)


@dataclass(frozen=True)
class Span:
    """A named interval on the modeled timeline: an exchange that carries no block (with its
    ``legs`` on the link and the ``flash`` work it caused), or the reboot."""

    label: str
    start: float
    end: float
    legs: tuple[tuple[float, float], ...] = ()
    flash: tuple[FlashOperation, ...] = ()

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SimulatedUpdate:
    """The modeled timeline of one whole update, from the first message to the new firmware.

    Times are seconds from the start of the update (0.0). ``phases`` holds the work of each
    kind (``PHASES``); ``total`` is when the bootloader finished and the device runs the new
    firmware. ``bytes_over_time`` is ``(time, bytes of the package safely in flash)``: a step
    after each block's flash work, ending at ``(total, package_size)``.
    """

    profile: FlashProfile
    link: LinkModel
    mode: Mode
    overlap: bool
    block_size: int
    package_size: int
    version: str  #: the version of the package, which the device runs at the end
    blocks: tuple[BlockRecord, ...]
    spans: tuple[Span, ...]  #: the other exchanges (URI write, notify, Execute) and the reboot
    operations: tuple[FlashOperation, ...]  #: every flash operation of the update, in order
    phases: Mapping[str, float]
    total: float
    downloaded_at: float  #: the last block is in flash and checked (State 2 Downloaded)
    reboot_start: float
    bytes_over_time: tuple[tuple[float, int], ...]
    final_state: State
    final_result: UpdateResult
    running_version: str
    boot_events: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """``"w25q64-spi-nor, 1024 B push over wifi"``: what a plot legend needs."""
        link = self.link.name or "link"
        lap = ", overlapped" if self.overlap else ""
        return f"{self.profile.name}, {self.block_size} B {self.mode}{lap} over {link}"

    @property
    def flash_time(self) -> float:
        """Seconds of flash work of every kind (erase, program, record, verify, install)."""
        return sum(self.phases[p] for p in PHASES if p != "network")

    def __repr__(self) -> str:
        return (
            f"<SimulatedUpdate {self.label}: {len(self.blocks)} blocks, "
            f"total {self.total:.3f} s, State {self.final_state.value} {self.final_state.name}, "
            f"Update Result {self.final_result.value}>"
        )

    def summary(self) -> str:
        """The phases as lines of text (what ``_repr_html_`` shows as a table)."""
        lines = [repr(self)]
        for phase, seconds, share in self._rows():
            lines.append(f"  {phase:<8} {seconds:10.3f} s  {share:6.1%}")
        return "\n".join(lines)

    def _rows(self) -> list[tuple[str, float, float]]:
        total = self.total or 1.0
        return [(phase, self.phases[phase], self.phases[phase] / total) for phase in PHASES]

    def _repr_html_(self) -> str:
        head = [
            ("flash", self.profile.name),
            ("link", str(self.link)),
            (
                "transfer",
                f"{self.mode}, {self.block_size}-byte blocks"
                + (", double-buffered (overlap)" if self.overlap else ", lock-step"),
            ),
            ("package", f"{self.package_size} bytes in {len(self.blocks)} blocks"),
            (
                "ends",
                f"State {self.final_state.value} {self.final_state.name}, Update Result "
                f"{self.final_result.value} {self.final_result.name}, running "
                f"{self.running_version}",
            ),
        ]
        cell = "style='text-align:left'"
        rows = "".join(
            f"<tr><th {cell}>{html.escape(k)}</th><td {cell} colspan='2'>{html.escape(v)}</td></tr>"
            for k, v in head
        )
        rows += "<tr><th>phase</th><th>seconds</th><th>share of total</th></tr>"
        rows += "".join(
            f"<tr><td {cell}>{html.escape(phase)}</td><td>{seconds:.3f}</td>"
            f"<td>{share:.1%}</td></tr>"
            for phase, seconds, share in self._rows()
        )
        rows += f"<tr><th {cell}>total</th><th>{self.total:.3f}</th><td></td></tr>"
        note = (
            "<p><small>Phases add up work of one kind; the total is the critical path, shorter "
            "where the link and the device work at the same time.</small></p>"
        )
        return f"<table><caption>SimulatedUpdate</caption>{rows}</table>{note}"


def simulate_update(
    profile: str | FlashProfile,
    package: bytes | Package,
    *,
    block_size: int = 1024,
    link: LinkModel | str = "wifi",
    mode: Mode = "push",
    overlap: bool = False,
) -> SimulatedUpdate:
    """Model a whole update of ``package`` on a device with flash ``profile`` over ``link``.

    The device is factory-fresh (a small image in slot A, State 0 Idle); the package is pushed
    (Block1 to /5/0/0) or pulled (Block2 from a Package URI) in ``block_size`` blocks, executed,
    and installed by the bootloader at the reboot. Raises ``SimulationError`` unless the device
    ends running the package's version with State 0 Idle and Update Result 1.
    """
    if mode not in ("push", "pull"):
        raise ValueError(f"mode is 'push' (Block1 to /5/0/0) or 'pull' (Block2 GET), not {mode!r}")
    if block_size not in BLOCK_SIZES:
        raise ValueError(
            f"CoAP blocks are 16 to 1024 bytes, a power of two (RFC 7959 SZX 0-6), "
            f"not {block_size!r}; choose one of {BLOCK_SIZES}"
        )
    link = LinkModel.preset(link) if isinstance(link, str) else link
    if not isinstance(package, Package):
        try:
            package = Package.parse(bytes(package))
        except PackageError as error:
            raise ValueError(f"package is not a valid firmware package: {error}") from error
    data = bytes(package)

    run = _Run(EmulatedFlash(profile), package, link, overlap)
    if mode == "push":
        run.push(data, block_size)
    else:
        run.pull(data, block_size)
    return run.execute_and_reboot(mode, block_size)


def block_size_sweep(
    profiles: Iterable[str | FlashProfile],
    package: bytes | Package,
    block_sizes: Sequence[int] = (64, 128, 256, 512, 1024),
    *,
    link: LinkModel | str = "wifi",
    mode: Mode = "push",
    overlap: bool = False,
) -> dict[str, dict[int, SimulatedUpdate]]:
    """``simulate_update`` for every profile and block size: ``{profile name: {size: update}}``."""
    if not isinstance(package, Package):
        package = Package.parse(bytes(package))
    results: dict[str, dict[int, SimulatedUpdate]] = {}
    for profile in profiles:
        runs = {
            size: simulate_update(
                profile, package, block_size=size, link=link, mode=mode, overlap=overlap
            )
            for size in block_sizes
        }
        name = profile if isinstance(profile, str) else profile.name
        results[name] = runs
    return results


class _Run:
    """One simulated device and the modeled timeline of its update."""

    def __init__(
        self, flash: EmulatedFlash, package: Package, link: LinkModel, overlap: bool
    ) -> None:
        self.flash = flash
        self.package = package
        self.link = link
        self.overlap = overlap
        self.bootloader = Bootloader(flash, device_type=package.device_type)
        factory = Package.build(
            b"factory image " * 300,  # 4200 bytes: see the note in the report
            name=package.name,
            version="factory",
            device_type=package.device_type,
        )
        self.bootloader.provision(factory)
        self.bootloader.boot()
        # The factory's work is not part of the update: its timeline starts at 0.
        flash.clock = ModeledClock()
        flash.operations.clear()
        self.clock = flash.clock
        (a_start, a_size), (b_start, b_size) = self.bootloader.record_sectors
        self.record_range = (min(a_start, b_start), max(a_start + a_size, b_start + b_size))
        self.handlers = FlashFirmwareHandlers(self.bootloader, start_download=_download_started)
        self.firmware = FirmwareObject(self.handlers, push=True, protocols=(Protocol.COAP,))
        self.handlers.attach(self.firmware)
        self.blocks: list[BlockRecord] = []
        self.spans: list[Span] = []
        self.legs: list[tuple[float, float]] = []  # every message on the link
        self.server_free_at = 0.0  # when the server may send its next request (push, Execute)
        self.downloaded_at = 0.0
        self.uri_operations: tuple[FlashOperation, ...] = ()  # pull: writing the Package URI

    def _leg(self, start: float, payload: int) -> float:
        end = start + self.link.leg(payload)
        self.legs.append((start, end))
        return end

    def _device_work(self, at: float) -> tuple[int, float]:
        """Let the device start working at ``at``; return (first operation, start time)."""
        self.clock.advance_to(max(at, self.clock.now))
        return len(self.flash.operations), self.clock.now

    def _record(
        self,
        chunk: tuple[int, int, int],
        times: tuple[float, float, float],
        legs: list[tuple[float, float]],
        first_op: int,
    ) -> None:
        """Keep block ``(index, offset, length)`` with ``(start, received, end)`` times."""
        (index, offset, length), (start, received, end) = chunk, times
        self.blocks.append(
            BlockRecord(
                index=index,
                offset=offset,
                length=length,
                network_start=start,
                received_at=received,
                network_end=end,
                legs=tuple(legs),
                flash=tuple(self.flash.operations[first_op:]),
                record_range=self.record_range,
            )
        )

    def push(self, data: bytes, block_size: int) -> None:
        """Block1 PUTs to /5/0/0; each answered 2.31 (the last 2.04) by the device."""
        send = 0.0
        flash_free = 0.0  # the device's flash is busy until then (overlap)
        for index, offset in enumerate(range(0, len(data), block_size)):
            chunk = data[offset : offset + block_size]
            last = offset + len(chunk) == len(data)
            arrived = self._leg(send, len(chunk))
            first_op, began = self._device_work(max(arrived, flash_free))
            outcome = self.firmware.write_package(chunk, offset=offset, last=last, now=began)
            _expect(outcome, Code.CHANGED if last else Code.CONTINUE, f"block {index}")
            flash_free = self.clock.now
            # Lock-step (or the last block, whose 2.04 reports the whole package): answer after
            # the flash work. Double-buffered: answer once the block moved to the flash buffer.
            answer = began if self.overlap and not last else flash_free
            answered = self._leg(answer, 0)
            legs = [(send, arrived), (answer, answered)]
            self._record((index, offset, len(chunk)), (send, arrived, answered), legs, first_op)
            send = answered
        self.downloaded_at = flash_free
        self.server_free_at = send

    def pull(self, data: bytes, block_size: int) -> None:
        """Write /5/0/1, then the device GETs every block (Block2) and notifies Downloaded."""
        arrived = self._leg(0.0, len(PULL_URI))
        first_op, began = self._device_work(arrived)
        _expect(self.firmware.write_package_uri(PULL_URI, now=began), Code.CHANGED, "the URI")
        answered = self._leg(self.clock.now, 0)
        self.uri_operations = tuple(self.flash.operations[first_op:])
        legs = ((0.0, arrived), (self.clock.now, answered))
        self.spans.append(Span("write Package URI", 0.0, answered, legs, self.uri_operations))
        ask = self.clock.now  # the download starts as soon as the URI is accepted
        for index, offset in enumerate(range(0, len(data), block_size)):
            chunk = data[offset : offset + block_size]
            last = offset + len(chunk) == len(data)
            at_server = self._leg(ask, 0)
            arrived = self._leg(at_server, len(chunk))
            first_op, began = self._device_work(arrived)
            result = self.handlers.write_chunk(chunk)
            if result is UpdateResult.SUCCESS and last:
                result = self.handlers.finish()
            if result is not UpdateResult.SUCCESS:
                raise SimulationError(
                    f"the device refused block {index} of the pull: Update Result "
                    f"{result.value} {result.name}"
                )
            if last:
                self.firmware.download_finished(now=self.clock.now)
            legs = [(ask, at_server), (at_server, arrived)]
            self._record((index, offset, len(chunk)), (ask, arrived, arrived), legs, first_op)
            ask = began if self.overlap else self.clock.now
        self.downloaded_at = self.clock.now
        if self.firmware.state is not State.DOWNLOADED:
            raise SimulationError(f"the pull ended in State {self.firmware.state.name}")
        notified = self._leg(self.downloaded_at, 1)  # Notify /5/0/3 = 2 (Downloaded)
        self.spans.append(
            Span(
                "notify Downloaded", self.downloaded_at, notified, ((self.downloaded_at, notified),)
            )
        )
        self.server_free_at = notified

    def execute_and_reboot(self, mode: Mode, block_size: int) -> SimulatedUpdate:
        """Execute /5/0/2, reboot, let the bootloader install; account every phase."""
        send = self.server_free_at
        arrived = self._leg(send, 0)
        first_op, began = self._device_work(arrived)
        _expect(self.firmware.execute(2, now=began), Code.CHANGED, "Execute Update")
        if not self.handlers.reboot_requested:
            raise SimulationError("Execute Update was accepted but the device asked no reboot")
        answer = self.clock.now
        answered = self._leg(answer, 0)  # travels while the device reboots
        execute_operations = tuple(self.flash.operations[first_op:])
        self.spans.append(
            Span(
                "Execute Update",
                send,
                answered,
                ((send, arrived), (answer, answered)),
                execute_operations,
            )
        )

        reboot_start = self.clock.now
        first_boot_op = len(self.flash.operations)
        report = self.bootloader.boot()
        total = self.clock.now
        boot_operations = self.flash.operations[first_boot_op:]
        self.spans.append(
            Span("reboot: verify + install", reboot_start, total, (), tuple(boot_operations))
        )
        # The device comes up again: Object /5 takes its state from the record, as after a
        # real reboot.
        handlers = FlashFirmwareHandlers(self.bootloader)
        firmware = FirmwareObject(handlers, push=True, protocols=())
        handlers.attach(firmware)
        if (firmware.state, firmware.result) != (State.IDLE, UpdateResult.SUCCESS) or (
            report.image.version != self.package.version
        ):
            raise SimulationError(
                f"the update did not succeed: {report}; expected State 0 IDLE, Update Result 1 "
                f"and version {self.package.version}"
            )

        low, high = self.record_range
        download_ops = [op for block in self.blocks for op in block.flash]
        download_ops += [*self.uri_operations, *execute_operations]
        phases = dict.fromkeys(PHASES, 0.0)
        phases["network"] = sum(end - start for start, end in self.legs)
        for op in download_ops:
            on_record = low <= op.offset < high
            phases["record" if on_record else op.kind] += op.duration
        for op in boot_operations:
            verifying = op.kind == "read" and not low <= op.offset < high
            phases["verify" if verifying else "install"] += op.duration

        stored = [(0.0, 0)]
        done = 0
        for block in self.blocks:
            done += block.length
            stored.append((block.flash_end, done))
        stored.append((total, done))
        return SimulatedUpdate(
            profile=self.flash.profile,
            link=self.link,
            mode=mode,
            overlap=self.overlap,
            block_size=block_size,
            package_size=done,
            version=self.package.version,
            blocks=tuple(self.blocks),
            spans=tuple(self.spans),
            operations=tuple(self.flash.operations),
            phases=phases,
            total=total,
            downloaded_at=self.downloaded_at,
            reboot_start=reboot_start,
            bytes_over_time=tuple(stored),
            final_state=firmware.state,
            final_result=firmware.result,
            running_version=report.image.version,
            boot_events=report.events,
        )


def _download_started(uri: str) -> UpdateResult:
    """The device's downloader, as far as Object /5 sees it: the simulation feeds the blocks."""
    return UpdateResult.SUCCESS


def _expect(outcome: Outcome, code: Code, what: str) -> None:
    if outcome.code is not code:
        raise SimulationError(f"{what}: the device answered {outcome}, not {code}")


def _seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} µs"


def _rate(bytes_per_second: float) -> str:
    bits = bytes_per_second * 8
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= scale:
            return f"{bits / scale:.3g} {unit}"
    return f"{bits:.3g} bit/s"
