"""A deferred update keeps its deadline across reboots and power cuts.

A user who defers an update (Object /5 1.1: Update Result 11) has until the Maximum Defer Period
(/5/0/13) runs out; then the device installs by itself. The deadline lives in the FOTA record,
written in the same record write as State 2 / Result 11, so a device that reboots or loses power
while deferred finds it again at boot and waits only for the time that is left.

Time is the device's wall clock, injected here as a ``Clock`` the test moves by hand: an hour
of deferral passes in no time. Two kinds of test:

* on the handlers alone (sans-I/O, no network): the record holds the deadline, ``attach`` gives
  it back, and a power cut at every flash operation of the deferring record write leaves a
  consistent record and a good image;
* an ``EmulatedDevice`` with our ``Server`` on loopback: the timer is rebuilt after a reboot with
  the time left, and a deadline that passed while the device was off installs at boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from lwm2m_edu.bootloader import Bootloader, BootReport
from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.flash import EmulatedFlash, ModeledClock, PowerLoss
from lwm2m_edu.flash_handlers import FlashFirmwareHandlers
from lwm2m_edu.fota import Severity, State, UpdateResult
from lwm2m_edu.objects import Code
from lwm2m_edu.objects.firmware import FirmwareObject
from lwm2m_edu.package import Package
from lwm2m_edu.server import Server

R = UpdateResult
HOUR = 3600
T0 = 1_700_000_000.0  # the wall clock when each test starts: seconds since 1970


class Clock:
    """A wall clock that moves only when the test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the handlers alone --------------------------------------------------------------------------

DEVICE = "demo"
PROFILE = "nrf52840-internal"
OLD = Package.build(random.Random(1).randbytes(6000), name="app", version="1.0", device_type=DEVICE)
NEW = bytes(
    Package.build(random.Random(2).randbytes(6000), name="app", version="2.0", device_type=DEVICE)
)


class DeferringHandlers(FlashFirmwareHandlers):
    """The reference handlers with a user who answers "later" whenever asked."""

    def defer_update(self, severity: Severity) -> bool:
        return True


class Booted:
    """A device as it comes up: bootloader, handlers, Object /5 (Maximum Defer Period 1 h)."""

    def __init__(self, flash: EmulatedFlash) -> None:
        self.flash = flash
        self.bootloader = Bootloader(flash, device_type=DEVICE)
        self.report: BootReport = self.bootloader.boot()
        self.handlers = DeferringHandlers(self.bootloader)
        self.firmware = FirmwareObject(self.handlers, protocols=[])
        self.handlers.attach(self.firmware)
        # /5/0/13 is the server's to write after each registration; it is not in the record.
        assert self.firmware.write(13, HOUR, now=T0).code is Code.CHANGED

    @classmethod
    def factory(cls, seed: int = 0) -> Booted:
        flash = EmulatedFlash(PROFILE, ModeledClock(), seed=seed)
        Bootloader(flash, device_type=DEVICE).provision(OLD)
        return cls(flash)

    def push(self) -> None:
        for offset in range(0, len(NEW), 1024):
            last = offset + 1024 >= len(NEW)
            chunk = NEW[offset : offset + 1024]
            assert self.firmware.write_package(chunk, offset=offset, last=last, now=T0).ok
        assert self.firmware.state is State.DOWNLOADED

    def reboot(self) -> Booted:
        """Power on (if a cut left it off) and boot again with new RAM."""
        self.flash.power_on()
        return Booted(self.flash)


def test_the_deferring_record_write_holds_the_deadline_and_attach_gives_it_back():
    device = Booted.factory()
    device.push()
    assert device.firmware.execute(2, T0).code is Code.CHANGED
    assert (device.firmware.state, device.firmware.result) == (State.DOWNLOADED, R.DEFERRED)
    assert device.bootloader.record.defer_deadline == T0 + HOUR
    after = device.reboot()
    assert (after.firmware.state, after.firmware.result) == (State.DOWNLOADED, R.DEFERRED)
    assert after.firmware.machine.defer_deadline == T0 + HOUR
    assert "deferred until" in str(after.report)
    # The restored deadline works as the original did: when it comes, the update starts.
    assert after.firmware.expire(T0 + HOUR - 1) == []
    [step] = after.firmware.expire(T0 + HOUR)
    assert step.state is State.UPDATING
    assert after.bootloader.record.defer_deadline is None  # the UPDATING record clears it
    assert after.reboot().report.image.version == "2.0"


def test_any_step_after_the_deferral_clears_the_deadline_in_the_record():
    device = Booted.factory()
    device.push()
    device.firmware.execute(2, T0)
    assert device.firmware.execute(10, T0).code is Code.CHANGED  # Cancel
    assert device.bootloader.record.defer_deadline is None
    after = device.reboot()
    assert (after.firmware.state, after.firmware.result) == (State.IDLE, R.CANCELLED)
    assert after.firmware.machine.defer_deadline is None


def deferring_write_operations() -> range:
    """The flash operations of the record write that defers (an uncut dry run counts them)."""
    device = Booted.factory()
    device.push()
    first = device.flash.operation_count
    device.firmware.execute(2, T0)
    return range(device.flash.operation_count - first)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nth", deferring_write_operations())
def test_a_power_cut_while_writing_the_deadline_boots_a_good_image_with_a_consistent_record(
    nth, seed
):
    device = Booted.factory(seed)
    device.push()
    before = device.bootloader.record
    device.flash.cut_power(at_operation=device.flash.operation_count + nth)
    with pytest.raises(PowerLoss):
        device.firmware.execute(2, T0)  # the device dies: the Execute is never answered
    after = device.reboot()
    assert after.report.image.version == "1.0"  # the running image was never touched
    record = after.bootloader.record
    # The torn copy is ignored: the record is the DOWNLOADED one written before, whole.
    assert record == before
    assert (record.state, record.result, record.defer_deadline) == (
        State.DOWNLOADED,
        R.INITIAL,
        None,
    )
    # The server, which got no answer, executes again: deferred, and the deadline holds.
    assert after.firmware.execute(2, T0 + 60).code is Code.CHANGED
    again = after.reboot()
    assert (again.firmware.result, again.firmware.machine.defer_deadline) == (
        R.DEFERRED,
        T0 + 60 + HOUR,
    )
    again.firmware.expire(T0 + 60 + HOUR)
    assert again.reboot().report.image.version == "2.0"


# -- an EmulatedDevice and a server --------------------------------------------------------------

EP = "dev-1"
UPDATE = factory_package("2.0.0", size=8 * 1024)


@contextlib.asynccontextmanager
async def deferring_device(clock: Clock, lines: list[str], **options):
    """A server and a device whose user defers every update, with Maximum Defer Period 1 h,
    the update pushed, executed and deferred at ``clock.now``."""
    server = await Server.start()
    device = EmulatedDevice(EP, defer_update=True, clock=clock, log=lines.append, **options)
    try:
        await device.start(server.uri)
        await server.write(EP, "/5/0/13", HOUR)
        await server.push_firmware(EP, UPDATE, block_size=512)
        await server.wait_for(EP, state=State.DOWNLOADED, timeout=10)
        await server.execute(EP, "/5/0/2")
        yield server, device
    finally:
        await device.stop()
        await server.stop()


async def status(server: Server) -> tuple[State, UpdateResult, str]:
    """State, Update Result and running version, as the server reads them."""
    return (
        State(await server.read(EP, "/5/0/3")),
        UpdateResult(await server.read(EP, "/5/0/5")),
        await server.read(EP, "/3/0/3"),
    )


def timer_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "installs by itself in" in line]


async def test_a_deferred_update_keeps_its_deadline_across_a_reboot():
    clock, lines = Clock(), []
    async with deferring_device(clock, lines) as (server, device):
        deadline = T0 + HOUR
        assert await status(server) == (State.DOWNLOADED, R.DEFERRED, "1.0.0")
        assert device.bootloader.record.defer_deadline == deadline
        assert timer_lines(lines)[-1].endswith("in 3600 s (at t = 1.7e+09 s)")

        clock.now += 3000  # 50 minutes later the device reboots
        await device.reboot()
        assert len(device.boots) == 2
        assert device.firmware.machine.defer_deadline == deadline
        assert await status(server) == (State.DOWNLOADED, R.DEFERRED, "1.0.0")
        assert "in 600 s" in timer_lines(lines)[-1]  # the 10 minutes left, not a new hour

        # Once more, 50 ms before the deadline: the timer waits those 50 ms, then installs.
        clock.now = deadline - 0.05
        await device.reboot()
        await server.wait_for(EP, state=State.IDLE, result=R.SUCCESS, timeout=10)
        assert await status(server) == (State.IDLE, R.SUCCESS, "2.0.0")
        assert len(device.boots) == 4  # three above, and the one that installed
        assert device.bootloader.record.defer_deadline is None


async def test_a_deferred_update_whose_deadline_passed_while_off_installs_at_boot():
    clock, lines = Clock(), []
    async with deferring_device(clock, lines, restart_after_power_loss=False) as (server, device):
        device.cut_power()  # the plug is pulled while the update is deferred
        await device.powered_off.wait()
        clock.now += 8 * HOUR  # the night passes; the deadline with it
        await device.start(server.uri)
        assert "in 0 s" in timer_lines(lines)[-1]
        await server.wait_for(EP, state=State.IDLE, result=R.SUCCESS, timeout=10)
        assert await status(server) == (State.IDLE, R.SUCCESS, "2.0.0")
        assert len(device.boots) == 3  # the factory boot, the power-up, the install
        assert device.power_losses  # the cut was a real one


async def test_a_power_cut_while_the_device_writes_the_deadline_leaves_it_downloaded():
    clock, lines = Clock(), []
    server = await Server.start()
    device = EmulatedDevice(EP, defer_update=True, clock=clock, log=lines.append)
    try:
        await device.start(server.uri)
        await server.write(EP, "/5/0/13", HOUR)
        await server.push_firmware(EP, UPDATE, block_size=512)
        await server.wait_for(EP, state=State.DOWNLOADED, timeout=10)
        # The Execute's one record write (erase, then program): tear the program.
        device.cut_power(at_operation=device.flash.operation_count + 1)
        again = asyncio.ensure_future(server.wait_for_registration(EP, new=True, timeout=10))
        execute = asyncio.ensure_future(server.execute(EP, "/5/0/2"))
        await again  # the device died unanswering, powered up and registered again
        assert not execute.done()  # the Execute is never answered (the server would time out)
        execute.cancel()
        await asyncio.gather(execute, return_exceptions=True)
        [loss] = device.power_losses
        assert loss.operation is not None and loss.operation.kind == "program"
        assert device.boots[-1].image.version == "1.0.0"
        assert device.bootloader.record.defer_deadline is None
        assert await status(server) == (State.DOWNLOADED, R.INITIAL, "1.0.0")
        # /5/0/13 is kept in RAM only (not in the record): the server writes it again.
        await server.write(EP, "/5/0/13", HOUR)
        await server.execute(EP, "/5/0/2")  # again: deferred, with the deadline in the record
        assert device.bootloader.record.defer_deadline == clock.now + HOUR
    finally:
        await device.stop()
        await server.stop()
