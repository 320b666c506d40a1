"""When updates fail, over the network: power cuts, every Update Result 2-11, a bad link, a soak.

Every scenario runs our ``Server`` and an ``EmulatedDevice`` on loopback (free ports) and ends
with what the *server* reads once the device is back: State /5/0/3, Update Result /5/0/5 and the
running version /3/0/3 must tell the truth about what happened.

**Power cuts.** An uncut update is run first (a *dry run*, once per delivery method) and its
flash operations are numbered; the device logs a line after every request and State change, so
each operation falls in a phase: the download, the flush of the last block and the DOWNLOADED
record (``package_write_finish``), the UPDATING record (the swap, on Execute Update), and the
reboot (the bootloader verifies the staged package, writes the record that switches slots,
verifies the image it boots). A cut is then scheduled at one chosen operation of the same update
on a fresh device. Operation numbers depend only on the package, the block size and the flash
layout, never on the speed of the machine, so every cut lands in the same place on every run.

After a cut the device dies without answering the request in hand and without a De-register,
powers up again, boots, and registers anew; the server then reads the outcome, and the update is
retried where the cut left it unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import tracemalloc
from dataclasses import dataclass

import pytest

from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.flash import FlashOperation
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.hosting import PackageHost
from lwm2m_edu.objects import Code
from lwm2m_edu.package import Package
from lwm2m_edu.registry import EventKind
from lwm2m_edu.server import DeviceUnreachable, LwM2MError, Server

try:
    from lwm2m_edu import netem
except ImportError:  # pragma: no cover - the network emulator comes in a parallel change
    netem = None

R = UpdateResult
EP = "dev-1"
OLD_VERSION = "1.0.0"  # the factory image of every EmulatedDevice
NEW = factory_package("2.0.0", size=8 * 1024)
BLOCK = 512  # push block size: 17 blocks for NEW
#: a pull gives up after a block went unanswered for 0.5 s, twice in a row
FAST_PULL = {"timeout": 0.5, "retries": 1, "retry_delay": 0.01}


# -- running a server and a device ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def server_and_device(**device_options):
    server = await Server.start()
    device = EmulatedDevice(EP, **device_options)
    try:
        await device.start(server.uri)
        yield server, device
    finally:
        await device.stop()
        await server.stop()


@dataclass(frozen=True)
class Status:
    """What the server reads from the device."""

    state: State
    result: UpdateResult
    version: str
    package_uri: str


async def status(server: Server) -> Status:
    return Status(
        State(await server.read(EP, "/5/0/3")),
        UpdateResult(await server.read(EP, "/5/0/5")),
        await server.read(EP, "/3/0/3"),
        await server.read(EP, "/5/0/1"),
    )


@dataclass
class Comeback:
    """What the server saw of a device that lost power during ``operation``."""

    answered: bool  #: the operation got an answer (the dead device must give none)
    deregistered: bool  #: the device sent a De-register (a dead device can't)


async def until_it_registers_again(server: Server, operation) -> Comeback:
    """Start ``operation`` (a coroutine of server requests) and return once the device, whose
    power is cut meanwhile, has registered again. An operation still waiting for its answer
    then is unanswered; it is cancelled (the server would give up after its timeout)."""
    events: list[EventKind] = []
    remove = server.add_listener(
        lambda event: events.append(event.kind) if event.registration.endpoint == EP else None
    )
    again = asyncio.ensure_future(server.wait_for_registration(EP, new=True, timeout=10))
    task = asyncio.ensure_future(operation)
    try:
        await again
    finally:
        remove()
        answered = task.done() and not task.cancelled() and task.exception() is None
        if not answered and task.done() and not task.cancelled():
            assert isinstance(task.exception(), DeviceUnreachable), task.exception()
        task.cancel()
        await asyncio.gather(task, again, return_exceptions=True)
    return Comeback(answered, EventKind.DEREGISTERED in events)


async def push_and_downloaded(server: Server, package=NEW) -> None:
    await server.push_firmware(EP, package, block_size=BLOCK)
    await server.wait_for(EP, state=State.DOWNLOADED, timeout=10)


async def execute_update_and_reregister(server: Server) -> None:
    again = asyncio.ensure_future(server.wait_for_registration(EP, new=True, timeout=10))
    await server.execute(EP, "/5/0/2")
    await again


async def assert_a_retry_installs_new(server: Server, *, mode: str = "push") -> None:
    outcome = await server.update(EP, NEW, mode=mode, timeout=15)
    assert outcome.ok, str(outcome)
    assert await status(server) == Status(State.IDLE, R.SUCCESS, "2.0.0", "")


# -- the dry runs --------------------------------------------------------------------------------


@dataclass
class DryRun:
    """An uncut update: every flash operation, and the device's log lines, each with the number
    of flash operations started when it was logged."""

    marks: list[tuple[int, str]]
    operations: list[FlashOperation]
    record_area: int  #: the FOTA record sectors end here
    staging: tuple[int, int]  #: start and end of the staging slot

    def at(self, text: str, nth: int = 0) -> int:
        """Operations started when the ``nth`` log line containing ``text`` was written."""
        return [count for count, line in self.marks if text in line][nth]

    def pick(self, start: int, end: int, kind: str, where: str, nth: int = 0) -> int:
        """The number of the ``nth`` ``kind`` operation in ``start..end`` on the FOTA record
        (``where="record"``), in the staging slot (``"staging"``) or elsewhere (``"other"``)."""
        found = [
            number
            for number in range(start, end)
            if self.operations[number].kind == kind and self._where(number) == where
        ]
        return found[nth]

    def _where(self, number: int) -> str:
        offset = self.operations[number].offset
        if offset < self.record_area:
            return "record"
        return "staging" if self.staging[0] <= offset < self.staging[1] else "other"


async def _dry_run(mode: str) -> DryRun:
    server = await Server.start()
    marks: list[tuple[int, str]] = []
    device = EmulatedDevice(EP)
    device.log = lambda line: marks.append((device.flash.operation_count, line))
    try:
        await device.start(server.uri)
        outcome = await server.update(EP, NEW, mode=mode, timeout=15)
        assert outcome.ok, str(outcome)
        staging = device.bootloader.slots[1]  # B: the staging slot of the first update
        return DryRun(
            marks,
            list(device.flash.operations),
            sum(size for _, size in device.flash.sectors[:2]),
            (staging.start, staging.start + staging.size),
        )
    finally:
        await device.stop()
        await server.stop()


@pytest.fixture(scope="module")
def push_run() -> DryRun:
    return asyncio.run(_dry_run("push"))


@pytest.fixture(scope="module")
def pull_run() -> DryRun:
    return asyncio.run(_dry_run("pull"))


def test_the_dry_runs_pass_through_every_phase_in_order(push_run, pull_run):
    for run in (push_run, pull_run):
        boots = run.at("boot:", 1)
        assert run.at("State 1 DOWNLOADING") < run.at("State 2 DOWNLOADED")
        assert run.at("State 2 DOWNLOADED") < run.at("State 3 UPDATING") < boots
        assert "installed app 2.0.0" in [line for _, line in run.marks if "boot:" in line][1]
    assert push_run.at("block 16 -> 2.04") == push_run.at("State 2 DOWNLOADED")


# -- power cuts during a push --------------------------------------------------------------------


def push_download_cut(run: DryRun) -> int:
    """A program of block 5 of 17, mid-download."""
    return run.pick(run.at("block 4 -> 2.31"), run.at("block 5 -> 2.31"), "program", "staging")


async def test_a_device_that_loses_power_answers_nothing_and_does_not_deregister(push_run):
    async with server_and_device(restart_after_power_loss=False) as (server, device):
        registration = server.registration(EP)
        device.cut_power(at_operation=push_download_cut(push_run))
        push = asyncio.ensure_future(server.push_firmware(EP, NEW, block_size=BLOCK))
        await device.powered_off.wait()
        assert not push.done()  # block 5 is never answered
        push.cancel()
        await asyncio.gather(push, return_exceptions=True)
        assert device.client is None
        assert server.registration(EP) is registration  # no De-register
        assert len(device.power_losses) == 1
        assert device.power_losses[0].operation.kind == "program"


async def test_a_device_left_without_power_comes_back_when_rebooted_with_result_4(push_run):
    async with server_and_device(restart_after_power_loss=False) as (server, device):
        device.cut_power(at_operation=push_download_cut(push_run))
        push = asyncio.ensure_future(server.push_firmware(EP, NEW, block_size=BLOCK))
        await device.powered_off.wait()
        push.cancel()
        await asyncio.gather(push, return_exceptions=True)
        again = asyncio.ensure_future(server.wait_for_registration(EP, new=True, timeout=10))
        await device.reboot()
        await again
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")


async def test_a_cut_during_a_push_download_ends_idle_with_result_4_then_a_retry_succeeds(
    push_run,
):
    async with server_and_device() as (server, device):
        device.cut_power(at_operation=push_download_cut(push_run))
        comeback = await until_it_registers_again(
            server, server.push_firmware(EP, NEW, block_size=BLOCK)
        )
        assert comeback == Comeback(answered=False, deregistered=False)
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")
        assert len(device.power_losses) == 1 and len(device.boots) == 2
        await assert_a_retry_installs_new(server)


async def test_a_cut_at_a_modeled_instant_of_a_push_download_ends_idle_with_result_4(push_run):
    start = push_run.operations[push_run.at("block 4 -> 2.31")].start
    end = push_run.operations[push_run.at("block 9 -> 2.31")].start
    async with server_and_device() as (server, device):
        device.cut_power(at_time=(start + end) / 2)
        await until_it_registers_again(server, server.push_firmware(EP, NEW, block_size=BLOCK))
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")
        assert device.power_losses[0].operation is not None  # it tore an operation
        await assert_a_retry_installs_new(server)


async def test_a_cut_while_package_write_finish_flushes_the_last_block_ends_idle_with_result_4(
    push_run,
):
    # The last block: the program of its whole words, then the flush of its tail (in
    # package_write_finish, which then checks the hash), then the DOWNLOADED record.
    last = push_run.at("block 15 -> 2.31"), push_run.at("State 2 DOWNLOADED")
    flush = push_run.pick(*last, "program", "staging", nth=1)
    async with server_and_device() as (server, device):
        device.cut_power(at_operation=flush)
        comeback = await until_it_registers_again(
            server, server.push_firmware(EP, NEW, block_size=BLOCK)
        )
        assert not comeback.answered
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")
        await assert_a_retry_installs_new(server)


async def test_a_cut_during_the_downloaded_record_write_ends_idle_with_result_4(push_run):
    last = push_run.at("block 15 -> 2.31"), push_run.at("State 2 DOWNLOADED")
    record = push_run.pick(*last, "program", "record")
    async with server_and_device() as (server, device):
        device.cut_power(at_operation=record)
        await until_it_registers_again(server, server.push_firmware(EP, NEW, block_size=BLOCK))
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")
        await assert_a_retry_installs_new(server)


async def test_a_cut_during_the_updating_record_write_leaves_it_downloaded_to_execute_again(
    push_run,
):
    swap = push_run.pick(
        push_run.at("State 2 DOWNLOADED"), push_run.at("State 3 UPDATING"), "program", "record"
    )
    async with server_and_device() as (server, device):
        await push_and_downloaded(server)
        device.cut_power(at_operation=swap)
        comeback = await until_it_registers_again(server, server.execute(EP, "/5/0/2"))
        assert not comeback.answered  # Execute Update was never answered
        assert await status(server) == Status(State.DOWNLOADED, R.INITIAL, OLD_VERSION, "")
        assert await server.read(EP, "/5/0/7") == "2.0.0"  # the staged package survived
        await execute_update_and_reregister(server)
        assert await status(server) == Status(State.IDLE, R.SUCCESS, "2.0.0", "")


def boot_phase(run: DryRun) -> tuple[int, int]:
    """The operations of the boot that installs the update."""
    return run.at("POST /5/0/2 -> 2.04"), run.at("boot:", 1)


@pytest.mark.parametrize(
    ("kind", "where", "nth", "what"),
    [
        ("read", "staging", 1, "verifies the staged package"),
        ("erase", "record", 0, "erases the older record copy"),
        ("program", "record", 0, "writes the record that switches slots"),
        ("read", "staging", 5, "verifies the new image it boots"),
    ],
)
async def test_a_cut_in_the_boot_that_installs_still_ends_on_the_new_image_with_result_1(
    push_run, kind, where, nth, what
):
    cut = push_run.pick(*boot_phase(push_run), kind, where, nth)
    async with server_and_device() as (server, device):
        await push_and_downloaded(server)
        device.cut_power(at_operation=cut)
        await execute_update_and_reregister(server)
        assert await status(server) == Status(State.IDLE, R.SUCCESS, "2.0.0", "")
        assert device.power_losses[0].operation.kind == kind, what
        assert len(device.boots) == 2  # the cut boot never finished; the next one did


async def test_a_cut_before_the_boot_switches_slots_is_found_and_finished_at_the_next_boot(
    push_run,
):
    # The record write that switches slots is torn: the next boot still finds UPDATING.
    cut = push_run.pick(*boot_phase(push_run), "program", "record")
    async with server_and_device() as (server, device):
        await push_and_downloaded(server)
        device.cut_power(at_operation=cut)
        await execute_update_and_reregister(server)
        assert "installed app 2.0.0" in " ".join(device.boots[-1].events)


# -- power cuts during a pull --------------------------------------------------------------------


async def test_a_cut_during_a_pull_download_ends_idle_with_result_4_then_a_retry_succeeds(
    pull_run,
):
    start, end = pull_run.at("State 1 DOWNLOADING"), pull_run.at("State 2 DOWNLOADED")
    cut = pull_run.pick(start, end, "program", "staging", nth=3)
    async with server_and_device() as (server, device):
        device.cut_power(at_operation=cut)
        comeback = await until_it_registers_again(server, server.pull_firmware(EP, NEW))
        assert comeback == Comeback(answered=True, deregistered=False)  # the URI was taken
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")
        assert device.downloads == []  # the download died with the device
        await assert_a_retry_installs_new(server, mode="pull")


async def test_a_cut_while_a_pulled_package_is_finished_and_recorded_ends_idle_with_result_4(
    pull_run,
):
    start, end = pull_run.at("State 1 DOWNLOADING"), pull_run.at("State 2 DOWNLOADED")
    cut = pull_run.pick(start, end, "program", "record")  # the DOWNLOADED record
    async with server_and_device() as (server, device):
        device.cut_power(at_operation=cut)
        await until_it_registers_again(server, server.pull_firmware(EP, NEW))
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")
        assert len(device.downloads) == 1  # every byte had arrived
        await assert_a_retry_installs_new(server, mode="pull")


# -- every Update Result 2-11, for a realistic cause ---------------------------------------------


async def test_result_2_a_push_bigger_than_the_staging_slot_is_refused_4_13():
    async with server_and_device() as (server, device):
        slot = device.bootloader.staging_slot.size
        with pytest.raises(LwM2MError) as refusal:
            await server.push_firmware(EP, factory_package("2.0.0", size=slot), block_size=1024)
        assert refusal.value.code == Code.REQUEST_ENTITY_TOO_LARGE
        assert await status(server) == Status(State.IDLE, R.NOT_ENOUGH_FLASH, OLD_VERSION, "")


async def test_result_3_blocks_bigger_than_the_ram_budget_are_refused_5_00():
    async with server_and_device(ram_budget=512) as (server, _):
        with pytest.raises(LwM2MError) as refusal:
            await server.push_firmware(EP, NEW, block_size=1024)
        assert refusal.value.code == Code.INTERNAL_SERVER_ERROR
        assert await status(server) == Status(State.IDLE, R.OUT_OF_RAM, OLD_VERSION, "")
        await assert_a_retry_installs_new(server)  # 512-byte blocks fit


async def test_result_4_a_pull_whose_host_goes_silent_past_the_retry_budget():
    async with server_and_device() as (server, device):
        async with await PackageHost.start(http=False) as host:
            hosted = host.add("fw.bin", bytes(NEW))
            host.drop_next(10_000)  # the host goes silent: every request is lost
            device.download_options = dict(FAST_PULL)
            await server.pull_firmware(EP, hosted)
            await server.wait_for(EP, state=State.IDLE, result=R.CONNECTION_LOST, timeout=10)
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")
        assert device.downloads[-1].result is R.CONNECTION_LOST


def tampered(package: Package) -> bytes:
    data = bytearray(bytes(package))
    data[-100] ^= 0x01  # one bit of the image
    return bytes(data)


async def test_result_5_a_tampered_package_pulled_over_coap_fails_its_integrity_check():
    async with server_and_device() as (server, _):
        await server.pull_firmware(EP, tampered(NEW), via="coap")
        await server.wait_for(EP, state=State.IDLE, result=R.INTEGRITY_FAILURE, timeout=10)
        assert await status(server) == Status(State.IDLE, R.INTEGRITY_FAILURE, OLD_VERSION, "")


async def test_result_6_a_package_built_for_another_device_type_is_refused():
    foreign = factory_package("2.0.0", size=8 * 1024, device_type="esp32-devkit")
    async with server_and_device() as (server, _):
        with pytest.raises(LwM2MError):
            await server.push_firmware(EP, foreign, block_size=BLOCK)
        assert await status(server) == Status(
            State.IDLE, R.UNSUPPORTED_PACKAGE_TYPE, OLD_VERSION, ""
        )


async def test_result_7_a_package_uri_the_host_answers_4_04():
    async with server_and_device() as (server, _):
        async with await PackageHost.start(http=False) as host:
            hosted = host.add("real.bin", bytes(NEW))
            await server.write(EP, "/5/0/1", hosted.coap_uri.replace("real.bin", "gone.bin"))
            await server.wait_for(EP, state=State.IDLE, result=R.INVALID_URI, timeout=10)
        assert await status(server) == Status(State.IDLE, R.INVALID_URI, OLD_VERSION, "")


async def test_result_8_a_new_image_failing_its_self_test_keeps_the_old_one():
    def self_test(image) -> bool:
        return image.version != "2.0.0"

    async with server_and_device(self_test=self_test) as (server, device):
        await push_and_downloaded(server)
        await execute_update_and_reregister(server)
        assert await status(server) == Status(State.DOWNLOADED, R.UPDATE_FAILED, OLD_VERSION, "")
        assert device.running.version == OLD_VERSION


async def test_result_9_a_scheme_the_device_has_no_downloader_for_is_refused():
    async with server_and_device() as (server, device):
        with pytest.raises(LwM2MError) as refusal:
            await server.write(EP, "/5/0/1", "coaps+tcp://127.0.0.1:1/fw.bin")
        assert refusal.value.code == Code.BAD_REQUEST
        found = await status(server)
        assert (found.state, found.result, found.version) == (
            State.IDLE, R.UNSUPPORTED_PROTOCOL, OLD_VERSION,
        )  # fmt: skip
        assert device.downloads == []


async def test_result_10_cancel_while_a_big_pull_downloads_stops_the_download():
    big = factory_package("2.0.0", size=256 * 1024)
    async with server_and_device() as (server, device):
        await server.pull_firmware(EP, big)
        await server.wait_for(EP, state=State.DOWNLOADING, timeout=10)
        await server.execute(EP, "/5/0/10")
        assert await status(server) == Status(State.IDLE, R.CANCELLED, OLD_VERSION, "")
        [stopped] = device.downloads  # the download stopped there, and no piece followed
        assert stopped.result is R.CANCELLED
        await assert_a_retry_installs_new(server, mode="pull")


async def test_result_11_a_deferred_update_installs_itself_when_the_defer_period_ends():
    async with server_and_device(defer_update=True) as (server, device):
        await server.write(EP, "/5/0/13", 1)  # Maximum Defer Period: 1 s
        await push_and_downloaded(server)
        await server.execute(EP, "/5/0/2")
        assert await status(server) == Status(State.DOWNLOADED, R.DEFERRED, OLD_VERSION, "")
        await server.wait_for(EP, state=State.IDLE, result=R.SUCCESS, timeout=10)
        assert await status(server) == Status(State.IDLE, R.SUCCESS, "2.0.0", "")
        assert len(device.boots) == 2


def test_every_update_result_from_2_to_11_has_a_networked_scenario():
    names = [name for name in globals() if name.startswith("test_result_")]
    assert {int(name.split("_")[2]) for name in names} == set(range(2, 12))


# -- a bad link (lwm2m_edu.netem) ----------------------------------------------------------------

needs_netem = pytest.mark.skipif(netem is None, reason="lwm2m_edu.netem is not there yet")


def staged_image_sha256(device: EmulatedDevice) -> bytes:
    """The SHA-256 of the image as it is on flash in the staging slot (read back and checked
    by the bootloader, not taken from what the handlers remember)."""
    bootloader = device.bootloader
    return bootloader.verify(bootloader.staging_slot).sha256


@dataclass(frozen=True)
class Hosted:
    """A hosted package as the server's ``pull_firmware`` takes it: its URI through a link."""

    coap_uri: str
    http_uri: str | None = None


@contextlib.asynccontextmanager
async def hosted_behind_a_link(package: Package, **conditions):
    """``package`` on a PackageHost (CoAP), reached through a ``netem.Link``."""
    async with await PackageHost.start(http=False) as host:
        hosted = host.add("fw.bin", bytes(package))
        async with await netem.Link.start(("127.0.0.1", host.coap_port), **conditions) as link:
            yield Hosted(link.uri_for(hosted.coap_uri)), link


def after_chunks(device: EmulatedDevice, count: int, then) -> None:
    """Call ``then()`` once the device has stored ``count`` pieces of the package it pulls."""
    handlers = device.handlers
    store = handlers.write_chunk
    stored = 0

    def write_chunk(chunk: bytes) -> UpdateResult:
        nonlocal stored
        result = store(chunk)
        stored += 1
        if stored == count:
            then()
        return result

    handlers.write_chunk = write_chunk  # the downloader takes the sink when the pull starts


BIG = factory_package("2.0.0", size=32 * 1024)  # 33 CoAP blocks of 1 KiB


@needs_netem
async def test_a_pull_through_a_blackout_shorter_than_the_retry_budget_gets_the_right_image():
    async with server_and_device() as (server, device):
        # A block gives up after 0.3 s, and is asked for 6 more times: about 2 s in all.
        device.download_options = {"timeout": 0.3, "retries": 6, "retry_delay": 0.0}
        async with hosted_behind_a_link(BIG, seed=1) as (hosted, link):
            after_chunks(device, 10, lambda: link.blackout(0.0, 0.5))  # down for 0.5 s
            await server.pull_firmware(EP, hosted)
            await server.wait_for(EP, state=State.DOWNLOADED, timeout=10)
            assert link.stats.up.dropped >= 1
        [outcome] = device.downloads
        assert outcome.retries >= 1 and outcome.restarts == 0
        assert staged_image_sha256(device) == BIG.sha256
        await execute_update_and_reregister(server)
        assert await status(server) == Status(State.IDLE, R.SUCCESS, "2.0.0", "")


@needs_netem
async def test_a_blackout_longer_than_the_retry_budget_ends_idle_with_result_4():
    async with server_and_device() as (server, device):
        device.download_options = {"timeout": 0.3, "retries": 1, "retry_delay": 0.0}
        async with hosted_behind_a_link(BIG, seed=1) as (hosted, link):
            after_chunks(device, 10, lambda: link.blackout(0.0, 5.0))
            await server.pull_firmware(EP, hosted)
            await server.wait_for(EP, state=State.IDLE, result=R.CONNECTION_LOST, timeout=10)
        assert await status(server) == Status(State.IDLE, R.CONNECTION_LOST, OLD_VERSION, "")


@needs_netem
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_duplicated_and_reordered_datagrams_never_corrupt_a_pulled_image(seed):
    async with server_and_device() as (server, device):
        device.download_options = {"timeout": 2.0, "retries": 4, "retry_delay": 0.0}
        conditions = {"duplicate": 0.3, "reorder": 0.3, "reorder_timeout": 0.05, "seed": seed}
        async with hosted_behind_a_link(BIG, **conditions) as (hosted, link):
            await server.pull_firmware(EP, hosted)
            await server.wait_for(EP, state=State.DOWNLOADED, timeout=15)
            stats = link.stats
        assert stats.up.duplicated + stats.down.duplicated >= 1
        assert stats.up.reordered + stats.down.reordered >= 1
        assert staged_image_sha256(device) == BIG.sha256


@needs_netem
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_duplicated_and_reordered_datagrams_never_corrupt_a_pushed_image(seed):
    server = await Server.start()
    device = EmulatedDevice(EP)
    conditions = {"duplicate": 0.3, "reorder": 0.3, "reorder_timeout": 0.05, "seed": seed}
    try:
        async with await netem.Link.start((server.host, server.port), **conditions) as link:
            await device.start(link.uri)  # the device and the server talk through the link
            await push_and_downloaded(server, BIG)
            assert link.stats.down.duplicated + link.stats.up.duplicated >= 1
            assert link.stats.down.reordered + link.stats.up.reordered >= 1
            assert staged_image_sha256(device) == BIG.sha256
            await device.stop()
    finally:
        await device.stop()
        await server.stop()


# -- soak ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    tasks: int  #: asyncio tasks alive (-1 when measured outside an event loop)
    descriptors: int  #: open file descriptors (sockets among them)
    traced: int  #: bytes allocated by Python and still held (tracemalloc)
    link_sockets: int = 0  #: of the descriptors: a ``netem.Link``'s upstream socket per client

    @property
    def own_descriptors(self) -> int:
        """The descriptors of the server, the device and the host (a link opens one socket per
        client address it has seen, like a NAT binding, and the device has a new address after
        each reboot: ``max_clients`` bounds those)."""
        return self.descriptors - self.link_sockets


def usage(links=()) -> Usage:
    gc.collect()
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:  # no running event loop
        tasks = -1
    descriptors = len(os.listdir("/proc/self/fd"))
    sockets = sum(len(link.clients) for link in links)
    return Usage(tasks, descriptors, tracemalloc.get_traced_memory()[0], sockets)


@contextlib.asynccontextmanager
async def soak_bench(*, loss: float = 0.0, seed: int = 0):
    """A server, a device registered with it and a package host; with ``loss``, the device
    reaches both through ``netem.Link``s that lose that share of the datagrams each way."""
    async with contextlib.AsyncExitStack() as stack:
        server = await Server.start()
        stack.push_async_callback(server.stop)
        host = await stack.enter_async_context(await PackageHost.start(http=False))
        server_uri, links = server.uri, []
        device = EmulatedDevice(EP)
        if loss:
            up = await netem.Link.start((server.host, server.port), loss=loss, seed=seed)
            await stack.enter_async_context(up)
            down = await netem.Link.start(("127.0.0.1", host.coap_port), loss=loss, seed=seed + 1)
            await stack.enter_async_context(down)
            server_uri, links = up.uri, [up, down]
            device.download_options = {"timeout": 1.0, "retries": 8, "retry_delay": 0.0}
        stack.push_async_callback(device.stop)
        await device.start(server_uri)
        yield server, device, host, links


async def soak(
    updates: int, *, first: int = 1, loss: float = 0.0, seed: int = 0, on_update=None
) -> list[Usage]:
    """``updates`` updates in a row on one device, odd ones pushed, even ones pulled from a host
    that stops serving each package once it is installed; the usage after each.
    ``on_update(number, outcome, usage, links)`` is called after each (``benchmarks/soak.py``)."""
    seen = []
    async with soak_bench(loss=loss, seed=seed) as (server, device, host, links):
        for number in range(first, first + updates):
            package = factory_package(f"2.0.{number}", size=8 * 1024)
            mode = "push" if number % 2 else "pull"
            name = f"app-2.0.{number}.bin"
            if mode == "pull":
                hosted = host.add(name, bytes(package))
                if links:
                    hosted = Hosted(links[1].uri_for(hosted.coap_uri))
            outcome = await server.update(
                EP, hosted if mode == "pull" else package, mode=mode, timeout=30,
                poll_interval=0.5,
            )  # fmt: skip
            assert outcome.ok, f"update {number} ({mode}): {outcome}"
            if mode == "pull":
                host.remove(name)
            assert await status(server) == Status(State.IDLE, R.SUCCESS, f"2.0.{number}", "")
            assert device.running.sha256 == package.sha256
            await device.rebooted.wait()  # its report (Send) after the reboot is done too
            seen.append(usage(links))
            if on_update is not None:
                on_update(number, outcome, seen[-1], links)
        assert len(device.boots) == updates + 1 and device.power_losses == []
    assert asyncio.all_tasks() == {asyncio.current_task()}
    return seen


SOAK_UPDATES = 16
#: The most memory one update may add while server and device run. Measured: 83-105 KiB, most
#: of it aiocoap's duplicate detection: every message received, and the answer to it, is kept
#: for EXCHANGE_LIFETIME (247 s) by a timer that outlives the context's shutdown and goes only
#: when it fires or the event loop closes. The rest is the device's history for the plots
#: (``flash.operations``, ``boots``, ``downloads``).
PER_UPDATE = 160 * 1024
#: What may stay allocated once the event loop of a soak has closed, compared with that of a
#: first, short soak (which warmed up lazy imports and caches). Measured: about 20 KiB.
LEFT_BEHIND = 64 * 1024


def test_a_soak_of_updates_alternating_push_and_pull_all_end_idle_with_result_1():
    tracemalloc.start()
    try:
        asyncio.run(soak(2, first=100))  # first use: lazy imports, codec and model caches
        before = usage()
        during = asyncio.run(soak(SOAK_UPDATES))
        after = usage()
    finally:
        tracemalloc.stop()
    assert {u.tasks for u in during} == {during[0].tasks}
    assert {u.descriptors for u in during} == {during[0].descriptors}
    growth = [b.traced - a.traced for a, b in itertools.pairwise(during)]
    assert max(growth) < PER_UPDATE, growth
    assert after.descriptors == before.descriptors
    assert after.traced - before.traced < LEFT_BEHIND, (before, after)


LOSSY_UPDATES = 10


@pytest.fixture
def fast_retransmissions(monkeypatch):
    """CoAP retransmits after 0.1-0.15 s instead of 2-3 s (RFC 7252 ACK_TIMEOUT, which assumes
    a slow radio link, not loopback), and up to 8 times instead of 4, for every message."""
    from aiocoap.numbers.constants import TransportTuning

    monkeypatch.setattr(TransportTuning, "ACK_TIMEOUT", 0.1)
    monkeypatch.setattr(TransportTuning, "MAX_RETRANSMIT", 8)


@needs_netem
def test_a_soak_through_links_losing_10_percent_each_way_ends_every_update_idle_with_result_1(
    fast_retransmissions,
):
    during = asyncio.run(soak(LOSSY_UPDATES, loss=0.1, seed=7))
    assert len(during) == LOSSY_UPDATES
    assert {u.tasks for u in during} == {during[0].tasks}
    assert {u.own_descriptors for u in during} == {during[0].own_descriptors}
