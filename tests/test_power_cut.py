"""Power cuts anywhere in an update never brick the device, and the update can always finish.

One update is run end to end on an nRF52840: push an 8 KiB image in 512-byte blocks, Execute
Update, reboot. Counting its flash operations splits it into four phases:

* ``download``: the blocks before the last (the DOWNLOADING record, erases, programs);
* ``verify``: the last block (its program, the flush of the tail, the hash check in
  ``package_write_finish`` and the DOWNLOADED record);
* ``record``: Execute Update, which writes the UPDATING record;
* ``boot``: the reboot (reading the record, verifying the staged package, switching slots,
  verifying the image it boots).

Then the same update runs again on a fresh device many times, each time with the power cut at
one point: 500 cuts at a random operation (each torn at a random point, the flash's seed
varying), and 100 at a random modeled instant. After each cut the device powers up again with a
new bootloader, and we check what it finds, then finish the update from wherever it is.

Every cut point is drawn from a seeded ``random.Random``: the runs are the same every time.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from lwm2m_edu.bootloader import Bootloader, BootReport, FotaRecord
from lwm2m_edu.flash import EmulatedFlash, ModeledClock, PowerLoss
from lwm2m_edu.flash_handlers import FlashFirmwareHandlers
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.objects.firmware import FirmwareObject
from lwm2m_edu.package import Package, PackageError

R = UpdateResult
DEVICE = "demo"
PROFILE = "nrf52840-internal"
BLOCK = 512
OLD = Package.build(
    random.Random(1).randbytes(8 * 1024), name="app", version="1.0", device_type=DEVICE
)
NEW = Package.build(
    random.Random(2).randbytes(8 * 1024), name="app", version="2.0", device_type=DEVICE
)
NEW_BYTES = bytes(NEW)
PHASES = ("download", "verify", "record", "boot")
OPERATION_CUTS = 500
TIME_CUTS = 100


# -- the device ----------------------------------------------------------------------------------


def factory_device(seed: int) -> EmulatedFlash:
    """A new nRF52840 with app 1.0 in slot A; ``seed`` decides how cut operations tear."""
    flash = EmulatedFlash(PROFILE, ModeledClock(), seed=seed)
    Bootloader(flash, device_type=DEVICE).provision(OLD)
    return flash


@dataclass
class Running:
    """A device after boot: the bootloader, its report, and Object /5 on the reference handlers."""

    bootloader: Bootloader
    report: BootReport
    firmware: FirmwareObject


def power_up(flash: EmulatedFlash) -> Running:
    bootloader = Bootloader(flash, device_type=DEVICE)
    report = bootloader.boot()
    handlers = FlashFirmwareHandlers(bootloader)
    firmware = FirmwareObject(handlers, protocols=[])
    handlers.attach(firmware)
    return Running(bootloader, report, firmware)


def push(device: Running, flash: EmulatedFlash, marks: Marks | None = None) -> None:
    for offset in range(0, len(NEW_BYTES), BLOCK):
        last = offset + BLOCK >= len(NEW_BYTES)
        if last and marks is not None:
            marks.reach("verify", flash)
        chunk = NEW_BYTES[offset : offset + BLOCK]
        outcome = device.firmware.write_package(chunk, offset=offset, last=last, now=0.0)
        assert outcome.ok, outcome


def execute_update(device: Running) -> None:
    outcome = device.firmware.execute(2, 0.0)
    assert outcome.ok, outcome


class Marks:
    """Where each phase of an update starts: its first operation number and its modeled time."""

    def __init__(self) -> None:
        self.operations: dict[str, int] = {}
        self.times: dict[str, float] = {}
        #: the numbers of the operations that completed a FOTA record, in order
        self.record_writes: list[int] = []

    def reach(self, phase: str, flash: EmulatedFlash) -> None:
        self.operations[phase] = flash.operation_count
        self.times[phase] = flash.clock.now

    def phase(self, operation: int) -> str:
        """The phase operation number ``operation`` belongs to."""
        if operation >= self.operations["end"]:
            return "after"
        name = "before"
        for phase in PHASES:
            if operation >= self.operations[phase]:
                name = phase
        return name


def update(flash: EmulatedFlash, marks: Marks | None = None) -> None:
    """The whole update: boot, push, Execute Update, reboot. A power cut raises PowerLoss."""
    marks = Marks() if marks is None else marks
    device = power_up(flash)
    marks.reach("download", flash)
    push(device, flash, marks)
    marks.reach("record", flash)
    execute_update(device)
    marks.reach("boot", flash)
    Bootloader(flash, device_type=DEVICE).boot()
    marks.reach("end", flash)
    record_area = sum(size for _, size in flash.sectors[:2])
    marks.record_writes = [
        number
        for number, op in enumerate(flash.operations)
        if number >= marks.operations["download"]
        and op.kind == "program"
        and op.offset < record_area
    ]


# -- one cut -------------------------------------------------------------------------------------


@dataclass
class Trial:
    """What happened to one device whose power was cut during the update."""

    family: str  #: "operation" or "time"
    cut: float  #: the operation number or the modeled instant
    phase: str  #: the phase the torn operation belonged to
    torn: int | None = None  #: the number of the operation the cut hit
    boot_error: str | None = None  #: the boot after the cut failed (must never happen)
    version: str | None = None  #: the version running after the cut
    image_is_genuine: bool = False  #: the running image is byte for byte OLD or NEW
    record: FotaRecord | None = None  #: the FOTA record after that boot
    staged_verifies: bool | None = None  #: for DOWNLOADED: the staging slot holds the package
    finished: tuple[str, State, UpdateResult] | None = None  #: after finishing the update
    finish_error: str | None = None


def cut_and_recover(flash: EmulatedFlash, trial: Trial, reference: Marks) -> Trial:
    try:
        update(flash)
        trial.phase = "none"
    except PowerLoss as loss:
        torn = flash.operation_count - 1 if loss.operation is not None else flash.operation_count
        trial.phase, trial.torn = reference.phase(torn), torn
    flash.power_on()
    try:
        device = power_up(flash)
    except Exception as error:  # the device is bricked: report it, don't stop the other trials
        trial.boot_error = f"{type(error).__name__}: {error}"
        return trial
    report, record = device.report, device.bootloader.record
    trial.version, trial.record = report.image.version, record
    trial.image_is_genuine = (report.image.sha256, report.image.version) in {
        (OLD.sha256, "1.0"),
        (NEW.sha256, "2.0"),
    }
    if record.state is State.DOWNLOADED:
        trial.staged_verifies = _staged_verifies(device.bootloader)
    try:
        trial.finished = finish(flash, device)
    except Exception as error:
        trial.finish_error = f"{type(error).__name__}: {error}"
    return trial


def _staged_verifies(bootloader: Bootloader) -> bool:
    staged = bootloader.record.staged
    if staged is None:
        return False
    try:
        info = bootloader.verify(bootloader.staging_slot, staged.size)
    except PackageError:
        return False
    return (info.version, info.sha256) == (staged.version, staged.sha256)


def finish(flash: EmulatedFlash, device: Running) -> tuple[str, State, UpdateResult]:
    """Take the update to its end from wherever the cut left it, as the server would."""
    if device.report.image.version != "2.0":
        if device.firmware.state is State.IDLE:
            push(device, flash)
        execute_update(device)
        device = power_up(flash)  # the reboot Execute Update asks for installs it
    return device.report.image.version, device.firmware.state, device.firmware.result


@pytest.fixture(scope="module")
def reference() -> Marks:
    """The phases of the update when nothing cuts it."""
    marks = Marks()
    update(factory_device(seed=0), marks)
    return marks


def run_trials(reference: Marks) -> list[Trial]:
    """Cut the update OPERATION_CUTS times at an operation, TIME_CUTS times at an instant."""
    choose = random.Random(20240607)
    first, end = reference.operations["download"], reference.operations["end"]
    done = []
    for seed in range(OPERATION_CUTS):
        flash = factory_device(seed)
        operation = choose.randrange(first, end)
        flash.cut_power(at_operation=operation)
        trial = Trial("operation", operation, "")
        done.append(cut_and_recover(flash, trial, reference))
    for seed in range(OPERATION_CUTS, OPERATION_CUTS + TIME_CUTS):
        flash = factory_device(seed)
        instant = choose.uniform(reference.times["download"], reference.times["end"])
        flash.cut_power(at_time=instant)
        done.append(cut_and_recover(flash, Trial("time", instant, ""), reference))
    return done


@pytest.fixture(scope="module")
def trials(reference: Marks) -> list[Trial]:
    return run_trials(reference)


def failing(trials: list[Trial], check) -> list[Trial]:
    return [trial for trial in trials if not check(trial)]


# -- the reference run ---------------------------------------------------------------------------


def test_the_uncut_update_goes_through_every_phase_in_order(reference):
    marks = reference.operations
    assert marks["download"] < marks["verify"] < marks["record"] < marks["boot"] < marks["end"]


def test_the_uncut_update_installs_the_new_image_with_result_1():
    flash = factory_device(seed=0)
    update(flash)
    after = power_up(flash)
    assert (after.report.image.version, after.firmware.state, after.firmware.result) == (
        "2.0", State.IDLE, R.SUCCESS,
    )  # fmt: skip


# -- after every cut -----------------------------------------------------------------------------


def test_there_are_500_cuts_by_operation_and_100_by_time(trials):
    assert Counter(t.family for t in trials) == {"operation": 500, "time": 100}


def test_every_cut_hits_the_update(trials):
    assert failing(trials, lambda t: t.phase in PHASES) == []


@pytest.mark.parametrize("family", ["operation", "time"])
def test_every_phase_gets_cuts(trials, family):
    phases = Counter(t.phase for t in trials if t.family == family)
    assert set(phases) == set(PHASES)


def test_the_device_always_boots_after_a_cut(trials):
    assert failing(trials, lambda t: t.boot_error is None) == []


def test_the_running_image_is_the_old_or_the_new_one_intact(trials):
    assert failing(trials, lambda t: t.image_is_genuine) == []


def test_the_record_is_never_updating_after_the_boot(trials):
    assert (
        failing(trials, lambda t: t.record is not None and t.record.state is not State.UPDATING)
        == []
    )


def test_the_record_is_never_downloading_after_a_push_was_cut(trials):
    assert (
        failing(trials, lambda t: t.record is not None and t.record.state is not State.DOWNLOADING)
        == []
    )


def test_result_1_is_reported_exactly_when_the_new_image_runs(trials):
    def consistent(trial: Trial) -> bool:
        if trial.record is None:
            return False
        return (trial.record.result is R.SUCCESS) == (trial.version == "2.0")

    assert failing(trials, consistent) == []


#: What the device finds after the boot, by the number of FOTA records the update had written
#: completely before the cut: none (the factory record), DOWNLOADING, DOWNLOADED, UPDATING, and
#: the boot's own IDLE / 1.
AFTER_RECORDS = [
    ("1.0", State.IDLE, R.INITIAL),
    ("1.0", State.IDLE, R.CONNECTION_LOST),
    ("1.0", State.DOWNLOADED, R.INITIAL),
    ("2.0", State.IDLE, R.SUCCESS),
    ("2.0", State.IDLE, R.SUCCESS),
]


def test_the_device_goes_on_from_the_last_record_written_completely(trials, reference):
    assert len(reference.record_writes) == len(AFTER_RECORDS) - 1

    def goes_on(trial: Trial) -> bool:
        if trial.torn is None:
            return False
        complete = sum(number < trial.torn for number in reference.record_writes)
        found = (trial.version, trial.record.state, trial.record.result) if trial.record else None
        return found == AFTER_RECORDS[complete]

    assert failing(trials, goes_on) == []


def test_a_cut_never_reports_a_failure_the_update_did_not_have(trials):
    expected = {R.INITIAL, R.SUCCESS, R.CONNECTION_LOST}
    assert failing(trials, lambda t: t.record is not None and t.record.result in expected) == []


def test_downloaded_means_the_staging_slot_holds_the_staged_package(trials):
    downloaded = [t for t in trials if t.record and t.record.state is State.DOWNLOADED]
    assert downloaded
    assert failing(downloaded, lambda t: t.staged_verifies) == []


def test_the_update_can_always_be_finished_and_then_reports_result_1(trials):
    def finished(trial: Trial) -> bool:
        return trial.finish_error is None and trial.finished == ("2.0", State.IDLE, R.SUCCESS)

    assert failing(trials, finished) == []
