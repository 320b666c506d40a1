"""Write your own firmware update handlers, and check them against the real Object /5.

Notebook 07 asks the learner for the device side of a push update: a class with the eight
handlers of ``handlers.FirmwareHandlers`` that stores a pushed package in a **staging area** of
emulated NOR flash, verifies it with ``PackageVerifier``, and schedules the update. This module
holds what the exercise needs:

* ``StagingArea`` — the part of the flash the handlers may use: whole sectors that still hold
  the previous package (so they must be erased before they are written), between two sectors
  the handlers must never touch;
* ``sample_package`` — the packages the checker pushes;
* ``check_handlers(make_handlers)`` — runs the scenarios below, each on a fresh staging area
  with fresh handlers from ``make_handlers(area)``, against the real ``FirmwareObject`` and its
  state machine, in this process, with the flash's modeled clock as ``now``. No network.

====================================  =====================================================
scenario                              what must happen
====================================  =====================================================
install                               ``FirmwareObject`` accepts the handlers (push only)
push of a 10 KiB package              blocks of 256 B, DOWNLOADED, the staged bytes equal
                                      the package
PkgName and PkgVersion                /5/0/6 and /5/0/7 read the package's name and version
Execute Update                        ``update_start()`` is called, State 3 UPDATING
reset                                 an empty Package URI calls ``reset()``: IDLE, result 0
second push after a reset             the sectors are erased again, the new package staged
reset half-way through a push         a NUL Package write, then a whole new push works
corrupted package                     IDLE, Update Result 5
package for another device type       IDLE, Update Result 6
package bigger than the staging area  Update Result 2 (4.13) at the first block
====================================  =====================================================

Every scenario also fails if the flash outside the staging area changed. A handler that
raises is reported with its exception (and a hint), not propagated: the
checker always returns a ``Verdict``. Its text has no timings and no memory addresses, so a
notebook can keep it as a checked output.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from .flash import EmulatedFlash, FlashError, KiB
from .fota import State, UpdateResult
from .handlers import HandlerResultError, MissingHandlerError
from .objects.firmware import FirmwareObject
from .objects.outcome import Code, Outcome
from .package import MAX_OVERHEAD, Package, PackageError

__all__ = [
    "BLOCK_SIZE",
    "DEVICE_TYPE",
    "ScenarioResult",
    "StagingArea",
    "Verdict",
    "check_handlers",
    "sample_package",
]

#: The device type of the exercise's device (and of the packages the checker pushes).
DEVICE_TYPE = "lwm2m-edu-demo"
#: The checker pushes packages in Block1 blocks of this size.
BLOCK_SIZE = 256
#: The handler names the checker watches (and reports exceptions from).
HANDLER_NAMES = (
    "package_write_start",
    "package_write",
    "package_write_finish",
    "uri_write",
    "update_start",
    "get_name",
    "get_version",
    "reset",
)

_OLD_CONTENTS = b"the previous package, still in the staging area. "
_GUARD = b"NOT YOURS: the running firmware lives here. "


def sample_package(
    version: str = "2.0.0", *, size: int = 10 * KiB, device_type: str = DEVICE_TYPE
) -> Package:
    """A deterministic package named "app" with a ``size``-byte image (what the checker pushes)."""
    seed = f"lwm2m_edu firmware {version} ".encode()
    image = (seed * (size // len(seed) + 1))[:size]
    return Package.build(image, name="app", version=version, device_type=device_type)


def _fill(pattern: bytes, length: int) -> bytes:
    return (pattern * (length // len(pattern) + 1))[:length]


def _size(n: int) -> str:
    return f"{n // KiB} KiB" if n % KiB == 0 else f"{n} bytes"


@dataclass(frozen=True, repr=False)
class StagingArea:
    """Where the handlers store a package: ``size`` bytes of ``flash`` from address ``start``.

    It covers whole erase sectors. Like a real staging slot it still holds the previous package,
    so every sector must be erased before anything is written into it. The sector just before
    and the one just after belong to the running firmware: leave them alone.
    """

    flash: EmulatedFlash
    start: int
    size: int
    device_type: str = DEVICE_TYPE

    @classmethod
    def create(
        cls,
        flash: str = "w25q64-spi-nor",
        *,
        size: int = 128 * KiB,
        start: int = 64 * KiB,
        device_type: str = DEVICE_TYPE,
    ) -> StagingArea:
        """A new flash part (a ``FLASH_PROFILES`` name) with a staging area of whole sectors
        covering at least ``size`` bytes from the sector holding ``start``."""
        part = EmulatedFlash(flash)
        first = part.sector_index(start)
        last = part.sector_index(min(part.sector(first)[0] + size, part.capacity) - 1)
        begin = part.sector(first)[0]
        end = sum(part.sector(last))
        if first == 0 or end >= part.capacity:
            raise ValueError("the staging area needs a sector before and after it on the part")
        area = cls(part, begin, end - begin, device_type)
        part.write(begin, _fill(_OLD_CONTENTS, end - begin))
        for guard_start, guard_size in area.guard_sectors():
            part.write(guard_start, _fill(_GUARD, guard_size))
        part.operations.clear()  # the factory's work is not the handlers'
        return area

    @property
    def end(self) -> int:
        """The first address after the area."""
        return self.start + self.size

    @property
    def max_image_size(self) -> int:
        """The largest image whose package surely fits (for ``PackageVerifier``)."""
        return self.size - MAX_OVERHEAD

    def sector_ranges(self, offset: int = 0, length: int | None = None) -> list[tuple[int, int]]:
        """``(start address, size)`` of each sector that bytes ``offset .. offset + length`` of
        the area fall in (``offset`` counts from the area's start). Default: the whole area.

        Erase them with ``area.flash.erase(start, size)`` before writing there.
        """
        length = self.size - offset if length is None else length
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(
                f"bytes {offset}..{offset + length - 1} of the staging area don't exist: it holds "
                f"{self.size} bytes (a package that big can't be staged here)"
            )
        if length == 0:
            return []
        first = self.flash.sector_index(self.start + offset)
        last = self.flash.sector_index(self.start + offset + length - 1)
        return [self.flash.sector(index) for index in range(first, last + 1)]

    def read_back(self, length: int) -> bytes:
        """The first ``length`` bytes of the area, as a chip programmer would read them."""
        return self.flash.dump(self.start, length)

    def guard_sectors(self) -> list[tuple[int, int]]:
        """The sectors just before and just after the area, which the handlers must not touch."""
        before = self.flash.sector(self.flash.sector_index(self.start - 1))
        after = self.flash.sector(self.flash.sector_index(self.end))
        return [before, after]

    def guard_damage(self) -> int | None:
        """The first address outside the area the handlers changed, or None."""
        for start, size in self.guard_sectors():
            now, then = self.flash.dump(start, size), _fill(_GUARD, size)
            if now != then:
                return start + next(i for i in range(size) if now[i] != then[i])
        return None

    def describe(self) -> str:
        """Size, place and geometry in one line."""
        ranges = self.sector_ranges()
        sizes = {size for _, size in ranges}
        sectors = f"of {_size(sizes.pop())}" if len(sizes) == 1 else "of mixed sizes"
        return (
            f"{_size(self.size)} at 0x{self.start:X} on {self.flash.profile.name}, "
            f"{len(ranges)} sectors {sectors}, write unit {self.flash.profile.write_granularity} B"
        )

    def __repr__(self) -> str:
        return f"<StagingArea {self.describe()}>"


# -- the verdict ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario: its name, whether it passed, what happened, and what to try if it failed."""

    name: str
    passed: bool
    detail: str
    hint: str = ""


_WIDTH = 100
_ADDRESS = re.compile(r"(<[^<>]*?) at 0x[0-9a-fA-F]+>")


def _clean(text: str) -> str:
    """Drop memory addresses (``<object at 0x7f...>`` in a learner's exception) so the text
    is the same on every run. Flash addresses stay."""
    return _ADDRESS.sub(r"\1>", text)


@dataclass(frozen=True)
class Verdict:
    """What ``check_handlers`` found: one ``ScenarioResult`` per scenario, in order."""

    subject: str  #: what was checked, e.g. "MyHandlers"
    setup: str  #: the staging area it ran on (``StagingArea.describe()``)
    scenarios: tuple[ScenarioResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(s.passed for s in self.scenarios)

    @property
    def passed(self) -> int:
        return sum(s.passed for s in self.scenarios)

    def failed(self) -> list[ScenarioResult]:
        return [s for s in self.scenarios if not s.passed]

    def summary(self) -> str:
        total = len(self.scenarios)
        if self.ok:
            return f"{total} of {total} scenarios pass: these handlers are ready for a real push."
        return f"{self.passed} of {total} scenarios pass. Fix the first ✘ and run the check again."

    def __str__(self) -> str:
        lines = [f"check_handlers({self.subject})", f"staging area: {self.setup}"]
        for s in self.scenarios:
            mark = "✔" if s.passed else "✘"
            lines += textwrap.wrap(
                _clean(f"{mark} {s.name}: {s.detail}"), _WIDTH, subsequent_indent="    "
            )
            if s.hint:
                lines += textwrap.wrap(
                    _clean(f"hint: {s.hint}"),
                    _WIDTH,
                    initial_indent="    ",
                    subsequent_indent="          ",
                )
        lines.append(self.summary())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Verdict {self.subject}: {self.passed} of {len(self.scenarios)} scenarios pass>"

    def _repr_html_(self) -> str:
        rows = []
        for s in self.scenarios:
            color, mark = ("#1a7f37", "✔") if s.passed else ("#cf222e", "✘")
            hint = f"<br><i>hint: {html.escape(_clean(s.hint))}</i>" if s.hint else ""
            rows.append(
                f"<tr><td style='color:{color};font-weight:bold'>{mark}</td>"
                f"<th style='text-align:left'>{html.escape(s.name)}</th>"
                f"<td style='text-align:left'>{html.escape(_clean(s.detail))}{hint}</td></tr>"
            )
        caption = html.escape(f"check_handlers({self.subject}), staging area: {self.setup}")
        return (
            f"<table><caption>{caption}</caption>{''.join(rows)}</table>"
            f"<p>{html.escape(self.summary())}</p>"
        )


# -- running the handlers ------------------------------------------------------------------------


class _Fail(Exception):
    """A scenario's expectation was not met."""

    def __init__(self, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.detail, self.hint = detail, hint


class _HandlerRaised(Exception):
    """A learner's handler raised ``error``."""

    def __init__(self, handler: str, error: Exception) -> None:
        super().__init__(f"{handler}() raised {type(error).__name__}: {error}")
        self.handler, self.error = handler, error


class _Recorder:
    """Stands between the object and the learner's handlers: records calls, labels exceptions."""

    def __init__(self, handlers: object) -> None:
        self._handlers = handlers
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._handlers, name)
        if name not in HANDLER_NAMES or not callable(attribute):
            return attribute

        def call(*args: object) -> object:
            self.calls.append(name)
            try:
                return attribute(*args)
            except Exception as error:
                raise _HandlerRaised(name, error) from error

        return call


def _describe(firmware: FirmwareObject) -> str:
    return (
        f"State {firmware.state.value} {firmware.state.name}, "
        f"Update Result {firmware.result.value} {firmware.result.name}"
    )


@dataclass
class _Push:
    blocks: int  #: blocks sent
    total: int  #: blocks the package has
    outcome: Outcome  #: the answer to the last block sent


class _Device:
    """A fresh staging area, fresh handlers, and a push-only Object /5 on them."""

    def __init__(self, make_handlers: Callable[[StagingArea], object], flash: str) -> None:
        self.area = StagingArea.create(flash)
        self.handlers = _Recorder(make_handlers(self.area))
        self.firmware = FirmwareObject(self.handlers, push=True, protocols=())

    @property
    def now(self) -> float:
        return self.area.flash.clock.now

    def push(self, package: bytes, *, blocks: int | None = None) -> _Push:
        """Push ``package`` block by block, as a server does; stop at an answer that isn't 2.31."""
        offsets = range(0, len(package), BLOCK_SIZE)
        outcome = Outcome(Code.CONTINUE)
        sent = 0
        for offset in offsets[:blocks]:
            chunk = package[offset : offset + BLOCK_SIZE]
            last = offset + BLOCK_SIZE >= len(package)
            outcome = self.firmware.write_package(chunk, offset=offset, last=last, now=self.now)
            sent += 1
            if outcome.code is not Code.CONTINUE:
                break
        return _Push(sent, len(offsets), outcome)

    def expect_downloaded(self, package: bytes, push: _Push) -> None:
        firmware = self.firmware
        if firmware.state is not State.DOWNLOADED:
            raise _Fail(
                f"expected State 2 DOWNLOADED after the last block, got {_describe(firmware)} "
                f"(block {push.blocks} of {push.total} answered {push.outcome.code})",
                _result_hint(firmware.result, "a good package"),
            )
        staged = self.area.read_back(len(package))
        if staged != package:
            i = next(i for i in range(len(package)) if staged[i] != package[i])
            if staged == _fill(_OLD_CONTENTS, len(package)):
                what = "nothing was written: the area still holds the previous package"
            elif staged == b"\xff" * len(package):
                what = "the area is erased, and nothing was written into it"
            else:
                what = f"byte {i} is 0x{staged[i]:02X}, the package has 0x{package[i]:02X} there"
            raise _Fail(
                f"DOWNLOADED, but the staging area doesn't hold the package: {what}",
                "in package_write, write each chunk to area.flash at area.start + the number "
                "of bytes received so far (area.flash.write(address, chunk))",
            )

    def push_good(self) -> None:
        """Bring the object to DOWNLOADED with PACKAGE, as the first step of a scenario."""
        try:
            self.expect_downloaded(PACKAGE, self.push(PACKAGE))
        except (_Fail, _HandlerRaised, HandlerResultError):
            raise _Fail("not checked: it needs a good push first, and that fails above") from None

    def expect_refused(self, push: _Push, result: UpdateResult, hint: str) -> None:
        firmware = self.firmware
        if firmware.state is not State.IDLE or firmware.result is not result:
            raise _Fail(
                f"expected State 0 IDLE with Update Result {result.value} {result.name}, "
                f"got {_describe(firmware)}",
                hint,
            )


def _result_hint(result: UpdateResult, what: str) -> str:
    if result is UpdateResult.INITIAL:
        return ""
    return (
        f"a handler returned {result.name} for {what}; return UpdateResult.SUCCESS when a step "
        "went well (look at that handler's error paths)"
    )


# -- the scenarios -------------------------------------------------------------------------------

PACKAGE = bytes(sample_package("2.0.0"))
NEXT_PACKAGE = bytes(sample_package("2.1.0", size=9 * KiB))

_VERIFY_HINT = (
    "in package_write_start make a PackageVerifier(device_type=area.device_type, "
    "max_image_size=area.max_image_size); in package_write feed() it each chunk and return "
    "error.result when it raises PackageError"
)


def _push_good(device: _Device) -> str:
    push = device.push(PACKAGE)
    device.expect_downloaded(PACKAGE, push)
    return f"DOWNLOADED after {push.blocks} blocks, all {len(PACKAGE)} bytes staged"


def _names(device: _Device) -> str:
    device.push_good()
    name, version = device.firmware.read(6).value, device.firmware.read(7).value
    if (name, version) != ("app", "2.0.0"):
        raise _Fail(
            f"/5/0/6 PkgName read {name!r} and /5/0/7 PkgVersion {version!r}, "
            "expected 'app' and '2.0.0'",
            "keep the PackageInfo that PackageVerifier.finish() returns; get_name returns "
            "info.name and get_version info.version (None before a package is staged)",
        )
    return f"/5/0/6 = {name!r}, /5/0/7 = {version!r}"


def _update(device: _Device) -> str:
    device.push_good()
    outcome = device.firmware.execute(2, device.now)
    if "update_start" not in device.handlers.calls:
        raise _Fail(f"Execute /5/0/2 answered {outcome.code} without calling update_start()")
    if device.firmware.state is not State.UPDATING:
        raise _Fail(
            f"expected State 3 UPDATING, got {_describe(device.firmware)}",
            "update_start() only schedules the reboot (set a flag) and returns "
            "UpdateResult.SUCCESS; the device reboots after the server has its answer",
        )
    return f"update_start() called, Execute answered {outcome.code.dotted}, State 3 UPDATING"


def _reset(device: _Device) -> str:
    device.push_good()
    device.handlers.calls.clear()
    device.firmware.write_package_uri("", device.now)
    if "reset" not in device.handlers.calls:
        raise _Fail("writing an empty Package URI did not call reset()")
    firmware = device.firmware
    if firmware.state is not State.IDLE or firmware.result is not UpdateResult.INITIAL:
        raise _Fail(f"expected State 0 IDLE, Update Result 0, got {_describe(firmware)}")
    name = device.handlers.get_name()
    if name:
        raise _Fail(
            f"after reset(), get_name() still returns {name!r}",
            "reset() must forget the staged package (and anything a push in progress holds)",
        )
    return "reset() called, State 0 IDLE, Update Result 0, the staged package forgotten"


_ERASE_AGAIN = (
    "after a reset the sectors hold the old package: forget which sectors you erased (in "
    "package_write_start or reset), so the next push erases them again"
)


def _second_push(device: _Device) -> str:
    device.push_good()
    device.firmware.write_package_uri("", device.now)
    try:
        push = device.push(NEXT_PACKAGE)
    except _HandlerRaised as raised:
        raise _Fail(str(raised), _exception_hint(raised, erase_hint=_ERASE_AGAIN)) from raised
    device.expect_downloaded(NEXT_PACKAGE, push)
    return "DOWNLOADED, the new package staged over the old one"


def _reset_mid_push(device: _Device) -> str:
    half = device.push(PACKAGE, blocks=len(PACKAGE) // BLOCK_SIZE // 2)
    if half.outcome.code is not Code.CONTINUE:
        raise _Fail(f"block {half.blocks} of a good package answered {half.outcome.code}")
    device.firmware.write_package(b"\0", offset=0, last=True, now=device.now)
    if device.firmware.state is not State.IDLE:
        raise _Fail(f"expected State 0 IDLE after a NUL Package, got {_describe(device.firmware)}")
    try:
        push = device.push(NEXT_PACKAGE)
    except _HandlerRaised as raised:
        raise _Fail(
            f"the new push after the reset: {raised}",
            _exception_hint(raised, erase_hint=_ERASE_AGAIN),
        ) from raised
    device.expect_downloaded(NEXT_PACKAGE, push)
    return (
        f"IDLE after {half.blocks} blocks and a NUL Package; then the new package DOWNLOADED "
        "and staged"
    )


def _corrupted(device: _Device) -> str:
    damaged = bytearray(PACKAGE)
    damaged[len(damaged) // 2] ^= 0x01
    push = device.push(bytes(damaged))
    device.expect_refused(
        push,
        UpdateResult.INTEGRITY_FAILURE,
        "call PackageVerifier.finish() in package_write_finish; when it raises PackageError, "
        "return error.result",
    )
    return "IDLE, Update Result 5 INTEGRITY_FAILURE (found after the last block)"


def _foreign(device: _Device) -> str:
    foreign = bytes(sample_package("2.0.0", device_type="someone-elses-board"))
    push = device.push(foreign)
    device.expect_refused(push, UpdateResult.UNSUPPORTED_PACKAGE_TYPE, _VERIFY_HINT)
    return (
        f"IDLE, Update Result 6 UNSUPPORTED_PACKAGE_TYPE (refused at block {push.blocks} "
        f"of {push.total})"
    )


def _too_big(device: _Device) -> str:
    big = bytes(sample_package("2.0.0", size=device.area.size + 64 * KiB))
    push = device.push(big)
    device.expect_refused(push, UpdateResult.NOT_ENOUGH_FLASH, _VERIFY_HINT)
    if push.blocks != 1:
        raise _Fail(
            f"Update Result 2, but only at block {push.blocks} of {push.total}: refuse at the "
            "first block, as soon as the header says the image won't fit",
            _VERIFY_HINT,
        )
    return (
        f"a {len(big)}-byte package refused at the first block with "
        f"{push.outcome.code.dotted}, Update Result 2 NOT_ENOUGH_FLASH"
    )


_SCENARIOS: tuple[tuple[str, Callable[[_Device], str]], ...] = (
    ("push of a 10 KiB package", _push_good),
    ("PkgName and PkgVersion", _names),
    ("Execute Update", _update),
    ("reset (empty Package URI)", _reset),
    ("second push after a reset", _second_push),
    ("reset half-way through a push", _reset_mid_push),
    ("corrupted package", _corrupted),
    ("package for another device type", _foreign),
    ("package bigger than the staging area", _too_big),
)


def _exception_hint(raised: _HandlerRaised, *, erase_hint: str = "") -> str:
    """What to try, given what a handler raised."""
    error, handler = raised.error, raised.handler
    message = str(error)
    if isinstance(error, FlashError) and "from 0 to 1" in message:
        return erase_hint or (
            "NOR flash: erase each sector before writing into it: for start, size in "
            "area.sector_ranges(offset, len(chunk)): area.flash.erase(start, size) (once per "
            "sector and push)"
        )
    if isinstance(error, FlashError) and "units" in message:
        return (
            "this part writes whole units of area.flash.profile.write_granularity bytes: pad "
            "the last chunk with b'\\xff' to a multiple of it"
        )
    if isinstance(error, FlashError):
        return "write only inside the staging area: area.start .. area.end - 1"
    if isinstance(error, PackageError):
        return f"catch PackageError in {handler}() and return error.result"
    if isinstance(error, RuntimeError) and "PackageVerifier" in message:
        return "make a new PackageVerifier in package_write_start, for every push"
    if isinstance(error, ValueError) and "staging area" in message:
        return _VERIFY_HINT
    if isinstance(error, AttributeError | TypeError) and "NoneType" in message:
        return (
            f"{handler}() used something that is None: set it up in package_write_start "
            "(or __init__), and check that reset() leaves the object usable"
        )
    return f"a handler must not raise: fix {handler}() (the LwM2M client would crash)"


def _run(scenario: Callable[[_Device], str], device: _Device) -> tuple[bool, str, str]:
    try:
        return True, scenario(device), ""
    except _Fail as failure:
        return False, failure.detail, failure.hint
    except _HandlerRaised as raised:
        return False, str(raised), _exception_hint(raised)
    except HandlerResultError as error:
        return False, str(error), "return UpdateResult.SUCCESS (or the failure) from it"
    except Exception as error:
        return False, f"{type(error).__name__}: {error}", ""


def check_handlers(
    make_handlers: Callable[[StagingArea], object], *, flash: str = "w25q64-spi-nor"
) -> Verdict:
    """Run every scenario against handlers made by ``make_handlers(area)`` (e.g. your class).

    ``flash`` names the part the staging area is on (a ``FLASH_PROFILES`` name).
    """
    subject = getattr(make_handlers, "__qualname__", type(make_handlers).__name__)
    probe = StagingArea.create(flash)
    setup = probe.describe()
    results = [_install(make_handlers, probe, subject)]
    if not results[0].passed:
        results += [
            ScenarioResult(name, False, "not run: the handlers could not be installed")
            for name, _ in _SCENARIOS
        ]
        return Verdict(subject, setup, tuple(results))
    for name, scenario in _SCENARIOS:
        try:
            device = _Device(make_handlers, flash)
        except Exception as error:
            results.append(ScenarioResult(name, False, f"{subject}(area) raised {error!r}"))
            continue
        passed, detail, hint = _run(scenario, device)
        damage = device.area.guard_damage()
        if damage is not None and passed:
            passed, detail, hint = (
                False,
                f"{detail}, but the flash at 0x{damage:X}, outside the staging area, changed",
                "erase and write only inside the staging area: area.start .. area.end - 1",
            )
        earlier = next((r.name for r in results if hint and r.hint == hint), None)
        if earlier is not None:
            hint = f"the same fix as for '{earlier}'"
        results.append(ScenarioResult(name, passed, detail, hint))
    return Verdict(subject, setup, tuple(results))


def _install(
    make_handlers: Callable[[StagingArea], object], area: StagingArea, subject: str
) -> ScenarioResult:
    name = "install"
    try:
        handlers = make_handlers(area)
    except Exception as error:
        return ScenarioResult(
            name,
            False,
            f"{subject}(area) raised {type(error).__name__}: {error}",
            "__init__ takes the StagingArea and should only remember it (and set up fields)",
        )
    try:
        FirmwareObject(handlers, push=True, protocols=())
    except MissingHandlerError as error:
        return ScenarioResult(
            name,
            False,
            str(error),
            "a push device needs package_write_start, package_write, package_write_finish, "
            "update_start and reset",
        )
    return ScenarioResult(name, True, f"FirmwareObject accepts {subject} (push delivery)")
