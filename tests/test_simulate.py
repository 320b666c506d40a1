"""The modeled update: real Object /5, handlers and bootloader on emulated flash, a modeled link.

Everything here is modeled time: no test waits, and every number is the same on every run.
"""

import random

import pytest

from lwm2m_edu.flash import FLASH_PROFILES
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.package import Package
from lwm2m_edu.simulate import (
    LINK_PRESETS,
    PHASES,
    PULL_URI,
    LinkModel,
    SimulatedUpdate,
    SimulationError,
    block_size_sweep,
    simulate_update,
)

W25Q = "w25q64-spi-nor"
MX25R = "mx25r6435f-spi-nor"
NRF = "nrf52840-internal"
STM = "stm32f4-internal"
# Round numbers, so the arithmetic below can be checked by hand.
LINK = LinkModel(rtt=0.1, bandwidth=10_000, overhead=50, name="test")


def package(size: int = 6000, version: str = "2.0.0") -> Package:
    image = random.Random(size).randbytes(size)
    return Package.build(image, name="app", version=version, device_type="demo")


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("mode", ["push", "pull"])
@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("profile", sorted(FLASH_PROFILES))
def test_update_ends_idle_with_result_1_running_the_new_version(profile, mode, overlap):
    update = simulate_update(
        profile, package(), block_size=512, link=LINK, mode=mode, overlap=overlap
    )
    assert update.final_state is State.IDLE
    assert update.final_result is UpdateResult.SUCCESS
    assert update.running_version == "2.0.0"
    assert any("installed app 2.0.0" in event for event in update.boot_events)
    assert update.total == update.spans[-1].end  # the update ends when the reboot does


@pytest.mark.parametrize("mode", ["push", "pull"])
def test_blocks_cover_every_byte_in_order(mode):
    pkg = package(10_000)
    update = simulate_update(W25Q, pkg, block_size=256, link=LINK, mode=mode)
    size = len(bytes(pkg))
    assert update.package_size == size
    assert [b.index for b in update.blocks] == list(range(len(update.blocks)))
    assert [b.offset for b in update.blocks] == list(range(0, size, 256))
    assert [b.length for b in update.blocks[:-1]] == [256] * (len(update.blocks) - 1)
    assert sum(b.length for b in update.blocks) == size
    # the staircase of bytes in flash: rises block by block, ends with the whole package
    times = [t for t, _ in update.bytes_over_time]
    stored = [n for _, n in update.bytes_over_time]
    assert times == sorted(times) and stored == sorted(stored)
    assert update.bytes_over_time[0] == (0.0, 0)
    assert update.bytes_over_time[-1] == (update.total, size)


@pytest.mark.parametrize("mode", ["push", "pull"])
@pytest.mark.parametrize("profile", [W25Q, STM])
def test_lock_step_network_never_overlaps_the_previous_blocks_flash(profile, mode):
    update = simulate_update(profile, package(), block_size=256, link=LINK, mode=mode)
    for previous, block in zip(update.blocks, update.blocks[1:], strict=False):
        assert block.network_start >= previous.flash_end
        for leg in block.legs:
            for op in previous.flash:
                assert not overlaps(leg, (op.start, op.end))
    # and the flash works on one block at a time, after it arrived
    for block in update.blocks:
        assert block.flash_start >= block.received_at


@pytest.mark.parametrize("mode", ["push", "pull"])
@pytest.mark.parametrize("profile", sorted(FLASH_PROFILES))
def test_overlap_runs_network_under_flash_and_is_never_slower(profile, mode):
    pkg = package(20_000)
    lock_step = simulate_update(profile, pkg, block_size=512, link="wifi", mode=mode)
    overlapped = simulate_update(profile, pkg, block_size=512, link="wifi", mode=mode, overlap=True)
    assert overlapped.total <= lock_step.total
    # the same work, only arranged differently
    for phase in ("erase", "program", "record", "verify", "install"):
        assert overlapped.phases[phase] == pytest.approx(lock_step.phases[phase])
    assert any(
        overlaps(leg, (op.start, op.end))
        for previous, block in zip(overlapped.blocks, overlapped.blocks[1:], strict=False)
        for leg in block.legs
        for op in previous.flash
    )
    # a block is still flashed only after it arrived, and one block at a time
    for previous, block in zip(overlapped.blocks, overlapped.blocks[1:], strict=False):
        assert block.flash_start >= max(block.received_at, previous.flash_end)


def test_overlap_hides_the_smaller_of_network_and_flash():
    # w25q64 over wifi: flash and network per block are comparable, so overlap saves a lot
    pkg = package(64 * 1024)
    lock_step = simulate_update(W25Q, pkg, block_size=1024, link="wifi")
    overlapped = simulate_update(W25Q, pkg, block_size=1024, link="wifi", overlap=True)
    assert overlapped.total < 0.9 * lock_step.total


@pytest.mark.parametrize("mode", ["push", "pull"])
def test_a_longer_round_trip_makes_a_longer_update(mode):
    totals = [
        simulate_update(
            NRF, package(), block_size=512, mode=mode, link=LinkModel(rtt=rtt, bandwidth=1e5)
        ).total
        for rtt in (0.001, 0.01, 0.1, 1.0)
    ]
    assert totals == sorted(totals) and len(set(totals)) == 4
    # the presets, from the fastest link to the slowest
    by_preset = [
        simulate_update(NRF, package(), block_size=512, link=name, mode=mode).total
        for name in ("loopback", "wifi", "lte-m", "nb-iot")
    ]
    assert by_preset == sorted(by_preset)


def test_smaller_blocks_pay_the_round_trip_more_often():
    results = block_size_sweep([NRF, W25Q], package(16 * 1024), (64, 256, 1024), link="nb-iot")
    for runs in results.values():
        assert runs[64].total > runs[256].total > runs[1024].total
        assert runs[64].phases["network"] > runs[1024].phases["network"]


@pytest.mark.parametrize("slow", [MX25R, NRF])
def test_a_slower_flash_spends_more_time_in_flash(slow):
    pkg = package(32 * 1024)
    fast = simulate_update(W25Q, pkg, block_size=1024, link=LINK)
    slower = simulate_update(slow, pkg, block_size=1024, link=LINK)
    assert slower.flash_time > fast.flash_time
    assert slower.phases["program"] > fast.phases["program"]
    assert slower.phases["network"] == pytest.approx(fast.phases["network"])
    assert slower.total > fast.total


def test_exact_arithmetic_of_a_small_push():
    """Five blocks on the W25Q64 over a 100 ms, 10 kB/s link, checked against the formulas.

    (Five, not two: the bootloader reads a slot in 4 KiB pieces, so the package must be at
    least 4 KiB to verify; see the report on ``Bootloader.verify``.)
    """
    pkg = package(4196 - 63)  # an unsigned header of 63 bytes + the image = 4196 bytes
    data = bytes(pkg)
    assert len(data) == 4196
    update = simulate_update(W25Q, pkg, block_size=1024, link=LINK)
    profile = FLASH_PROFILES[W25Q]
    assert [b.length for b in update.blocks] == [1024, 1024, 1024, 1024, 100]

    def leg(payload: int) -> float:
        return 0.1 / 2 + (payload + 50) / 10_000

    # each block: one round trip with the block and two headers, then (lock-step) its flash
    for block in update.blocks:
        assert block.network_time == pytest.approx(0.1 + (block.length + 2 * 50) / 10_000)
        assert block.received_at == pytest.approx(block.network_start + leg(block.length))
        assert block.network_end == pytest.approx(block.flash_end + leg(0))
    for previous, block in zip(update.blocks, update.blocks[1:], strict=False):
        assert block.network_start == pytest.approx(previous.flash_end + leg(0))

    # the flash work, from the datasheet numbers
    staging_erases = [op for b in update.blocks for op in b.flash if op.offset >= 8192]
    erases = [op for op in staging_erases if op.kind == "erase"]
    assert len(erases) == 2  # 4196 bytes span two 4 KiB sectors, erased just in time
    assert all(op.duration == pytest.approx(45e-3) for op in erases)
    assert update.blocks[4].erase_time == pytest.approx(45e-3)  # the block that crosses 4096
    assert update.phases["erase"] == pytest.approx(2 * 45e-3)
    assert update.phases["program"] == pytest.approx(0.4e-3 * 4196 / 256)
    # DOWNLOADING, DOWNLOADED, UPDATING: three FOTA record writes, each one sector erase
    record_erases = [op for op in update.operations if op.kind == "erase" and op.offset < 8192]
    assert len(record_erases) == 4  # and the fourth at boot: IDLE, Update Result 1
    # at the reboot: the staged package is read back twice (verify, then boot it)
    reads = [op for op in update.operations if op.kind == "read" and op.offset >= 8192]
    assert update.phases["verify"] == pytest.approx(sum(op.duration for op in reads))
    assert update.phases["verify"] == pytest.approx(2 * 4196 / profile.read_rate)

    # the total: the blocks' round trips, the Execute request, and every flash operation
    # (the 2.04 to Execute travels while the device reboots)
    network = sum(0.1 + (b.length + 2 * 50) / 10_000 for b in update.blocks)
    flash = sum(op.duration for op in update.operations)
    assert update.total == pytest.approx(network + leg(0) + flash)
    assert update.phases["network"] == pytest.approx(network + 2 * leg(0))
    assert sum(update.phases.values()) == pytest.approx(update.total + leg(0))
    assert set(update.phases) == set(PHASES)


def test_pull_costs_what_push_does_plus_the_uri_write_and_the_notification():
    pkg = package(10_000)
    push = simulate_update(W25Q, pkg, block_size=512, link=LINK, mode="push")
    pull = simulate_update(W25Q, pkg, block_size=512, link=LINK, mode="pull")
    for a, b in zip(push.blocks, pull.blocks, strict=True):
        assert a.network_time == pytest.approx(b.network_time)
        assert [op.duration for op in a.flash if op.offset >= 8192] == pytest.approx(
            [op.duration for op in b.flash if op.offset >= 8192]
        )
    extra = LINK.leg(len(PULL_URI)) + LINK.leg(1)  # Write /5/0/1, then Notify State 2
    # and the Package URI is kept in the FOTA record (DOWNLOADING, DOWNLOADED, UPDATING), so
    # each of those three record writes programs its bytes too
    longer_records = 3 * len(PULL_URI) * FLASH_PROFILES[W25Q].page_program_time / 256
    assert pull.phases["record"] - push.phases["record"] == pytest.approx(longer_records)
    assert pull.total == pytest.approx(push.total + extra + longer_records)
    assert [s.label for s in pull.spans][:2] == ["write Package URI", "notify Downloaded"]


def test_the_model_is_deterministic():
    a = simulate_update(STM, package(), block_size=128, link="lte-m", overlap=True)
    b = simulate_update(STM, package(), block_size=128, link="lte-m", overlap=True)
    assert a.total == b.total and a.phases == b.phases and a.blocks == b.blocks


def test_summary_and_html_name_every_phase():
    update = simulate_update(NRF, package(), link="nb-iot", mode="pull")
    page = update._repr_html_()
    text = update.summary()
    for phase in PHASES:
        assert phase in page and phase in text
    assert "IDLE" in page and "nb-iot" in page and "pull" in page
    assert isinstance(update, SimulatedUpdate) and "Update Result 1" in repr(update)


def test_link_presets_are_sane():
    assert set(LINK_PRESETS) >= {"loopback", "wifi", "nb-iot"}
    rtts = [LINK_PRESETS[n].rtt for n in ("loopback", "wifi", "lte-m", "nb-iot")]
    assert rtts == sorted(rtts)
    assert LinkModel.preset("wifi") is LINK_PRESETS["wifi"]
    with pytest.raises(ValueError, match="choose one of"):
        LinkModel.preset("carrier pigeon")
    with pytest.raises(ValueError, match="bandwidth"):
        LinkModel(rtt=0.1, bandwidth=0)
    with pytest.raises(ValueError, match="rtt"):
        LinkModel(rtt=-1, bandwidth=1)


def test_misuse_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="power of two"):
        simulate_update(NRF, package(), block_size=1000)
    with pytest.raises(ValueError, match="'push'"):
        simulate_update(NRF, package(), mode="carrier-pigeon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid firmware package"):
        simulate_update(NRF, b"not a package")
    # a package bigger than the nRF52840's staging slot: the first block is refused (4.13)
    with pytest.raises(SimulationError, match=r"4\.13"):
        simulate_update(NRF, package(600 * 1024))
