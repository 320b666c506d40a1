"""Emulated NOR flash: erase-before-write rules, modeled time, torn operations on power cuts,
and the sparse storage that keeps only the sectors holding data in memory.

Times are compared exactly: every duration is computed from the profile's numbers on a modeled
clock, never measured.
"""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lwm2m_edu.flash import (
    FLASH_PROFILES,
    EmulatedFlash,
    FlashError,
    FlashOperation,
    FlashProfile,
    KiB,
    MiB,
    ModeledClock,
    PowerLoss,
    uniform_sectors,
)

#: A tiny part with uneven sectors and 2-byte program units, for the model-based test.
SMALL = FlashProfile(
    name="small-test-part",
    description="2 KiB in uneven sectors, 64-byte pages, 16-bit program units",
    capacity=2 * KiB,
    sectors=(256, 256, 512, 1024),
    page_size=64,
    write_granularity=2,
    page_program_time=0.5e-3,
    program_overhead=0.01e-3,
    sector_erase_time={256: 10e-3, 512: 20e-3, 1024: 40e-3},
    read_rate=1e6,
)


# -- profiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FLASH_PROFILES))
def test_profile_is_consistent(name):
    profile = FLASH_PROFILES[name]
    assert profile.name == name
    assert sum(profile.sectors) == profile.capacity
    assert all(size % profile.page_size == 0 for size in profile.sectors)
    assert profile.page_size % profile.write_granularity == 0
    assert profile.erased_value == 0xFF
    assert all(profile.erase_time(size) > 0 for size in set(profile.sectors))
    assert profile.program_time(profile.page_size) > 0
    assert profile.read_rate > 0
    assert profile.description
    assert profile.datasheet


def test_there_are_at_least_four_named_profiles():
    assert {"nrf52840-internal", "stm32f4-internal", "w25q64-spi-nor"} <= set(FLASH_PROFILES)
    assert len(FLASH_PROFILES) >= 4


def test_profile_whose_sectors_do_not_fill_the_capacity_is_refused():
    with pytest.raises(FlashError, match="add up to 3072 bytes, but the capacity is 4096"):
        FlashProfile("bad", "", 4096, 256, (1024,) * 3, 1e-3, 1e-2, 1e6)


def test_profile_whose_page_straddles_sectors_is_refused():
    with pytest.raises(FlashError, match="straddle"):
        FlashProfile("bad", "", 4096, 768, (1024,) * 4, 1e-3, 1e-2, 1e6)


def test_profile_missing_an_erase_time_for_a_sector_size_is_refused():
    with pytest.raises(FlashError, match="no time for sectors of \\[2048\\] bytes"):
        FlashProfile("bad", "", 4096, 256, (1024, 1024, 2048), 1e-3, {1024: 1e-2}, 1e6)


def test_uniform_sectors_builds_the_common_layout():
    assert uniform_sectors(8 * MiB, 4 * KiB) == (4096,) * 2048
    with pytest.raises(FlashError, match="not a whole number"):
        uniform_sectors(10_000, 4096)


# -- the modeled clock ---------------------------------------------------------------------------


def test_clock_starts_at_zero_and_advances():
    clock = ModeledClock()
    assert clock.now == 0.0
    assert clock.advance(1.5) == 1.5
    assert clock.advance_to(2.0) == 2.0


def test_clock_refuses_to_go_back():
    clock = ModeledClock(1.0)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-0.1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(0.5)


# -- NOR rules -----------------------------------------------------------------------------------


def test_new_flash_reads_erased():
    flash = EmulatedFlash("w25q64-spi-nor")
    assert flash.read(0, 16) == b"\xff" * 16


def test_program_only_clears_bits():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(0x10, b"\xaf")
    flash.program(0x10, b"\xa5")  # clears two more bits: allowed without an erase
    assert flash.dump(0x10, 1) == b"\xa5"


def test_rewrite_without_erase_is_refused_naming_the_sector():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(0x3004, b"\xf0")
    with pytest.raises(FlashError, match=r"erase sector 3 \(0x3000\.\.0x3FFF\).*erase_sector\(3\)"):
        flash.program(0x3004, b"\x0f")
    assert flash.dump(0x3004, 1) == b"\xf0"


def test_rewrite_names_the_first_byte_that_needs_a_bit_set_and_its_sector():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.write(0xFF0, bytes(32))  # zeros across the boundary of sectors 0 and 1
    new = bytearray(32)
    new[0x12], new[0x15] = 0x80, 0x01  # 0x1002 needs its top bit set, 0x1005 its lowest
    with pytest.raises(FlashError) as refused:
        flash.write(0xFF0, bytes(new))
    assert str(refused.value).startswith("write at 0x1002 would need bits to go from 0 to 1 ")
    assert "(0x00 -> 0x80)" in str(refused.value)
    assert "erase sector 1 (0x1000..0x1FFF) first, with flash.erase_sector(1)" in str(refused.value)
    assert flash.dump(0xFF0, 32) == bytes(32)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=700), st.binary(min_size=1, max_size=700))
def test_program_over_data_is_old_and_new_or_names_the_first_byte_it_cannot(old, new):
    new = new[: len(old)]
    offset = 0x0F80  # the range may run into sector 1
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.write(offset, old)
    rising = [i for i, (o, n) in enumerate(zip(old, new, strict=False)) if n & ~o & 0xFF]
    if not rising:
        flash.write(offset, new)
        expected = bytes(o & n for o, n in zip(old, new, strict=False)) + old[len(new) :]
        assert flash.dump(offset, len(old)) == expected
        return
    first = rising[0]
    address = offset + first
    with pytest.raises(FlashError) as refused:
        flash.write(offset, new)
    assert str(refused.value).startswith(
        f"write at 0x{address:X} would need bits to go from 0 to 1 "
        f"(0x{old[first]:02X} -> 0x{new[first]:02X})"
    )
    assert f"erase_sector({address // (4 * KiB)})" in str(refused.value)
    assert flash.dump(offset, len(old)) == old


def test_erase_sets_the_sector_to_ff():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.write(0x1000, bytes(4096))
    flash.write(0x2000, bytes(16))
    flash.erase_sector(1)
    assert flash.dump(0x1000, 4096) == b"\xff" * 4096
    assert flash.dump(0x2000, 16) == bytes(16)


def test_erase_of_a_range_must_cover_whole_sectors():
    flash = EmulatedFlash("w25q64-spi-nor")
    with pytest.raises(FlashError, match=r"0x1000\.\.0x2FFF.*erase\(0x1000, 0x2000\)"):
        flash.erase(0x1100, 0x1000)
    flash.erase(0x1000, 0x2000)
    assert [(op.kind, op.offset) for op in flash.operations] == [
        ("erase", 0x1000),
        ("erase", 0x2000),
    ]


def test_program_crossing_a_page_boundary_is_refused_with_the_page_range():
    flash = EmulatedFlash("w25q64-spi-nor")
    with pytest.raises(FlashError, match=r"boundary at 0x100.*page \(0x0\.\.0xFF\)"):
        flash.program(0xF0, bytes(32))
    assert flash.operations == []


def test_misaligned_offset_is_refused():
    flash = EmulatedFlash("nrf52840-internal")
    with pytest.raises(FlashError, match="multiple of 4; use 0x0 or 0x4"):
        flash.program(2, bytes(4))


def test_length_not_a_multiple_of_the_write_unit_is_refused():
    flash = EmulatedFlash("nrf52840-internal")
    with pytest.raises(FlashError, match="pad the data to a multiple of 4 bytes with 0xFF"):
        flash.program(0, bytes(3))


def test_access_past_the_end_is_refused():
    flash = EmulatedFlash("w25q64-spi-nor")
    with pytest.raises(FlashError, match="past the end of the flash \\(8 MiB, last address"):
        flash.read(8 * MiB - 16, 32)
    with pytest.raises(FlashError, match="no sector 2048"):
        flash.erase_sector(2048)


def test_write_splits_into_one_program_per_page():
    flash = EmulatedFlash("w25q64-spi-nor")
    data = bytes(range(200)) * 3
    flash.write(200, data)
    assert [(op.kind, op.offset, op.length) for op in flash.operations] == [
        ("program", 200, 56),
        ("program", 256, 256),
        ("program", 512, 256),
        ("program", 768, 32),
    ]
    assert flash.dump(200, 600) == data


def test_write_checks_the_whole_range_before_programming_any_of_it():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(0x300, b"\x00")
    with pytest.raises(FlashError, match="erase sector 0"):
        flash.write(0, b"\x55" * 0x400)
    assert flash.dump(0, 0x300) == b"\xff" * 0x300


# -- modeled time --------------------------------------------------------------------------------


def test_modeled_time_of_spi_nor_operations_matches_the_datasheet():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.erase_sector(0)
    assert flash.clock.now == 45e-3
    flash.program(0, bytes(256))
    program = flash.operations[-1]
    assert program.end == program.start + 0.4e-3
    flash.read(0, 1000)
    assert flash.operations[-1] == FlashOperation(
        "read", 0, 1000, 45e-3 + 0.4e-3, 45e-3 + 0.4e-3 + 1000 / (133e6 / 8)
    )


def test_modeled_time_of_a_partial_page_is_proportional():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(0, bytes(64))
    assert flash.clock.now == 0.4e-3 * (64 / 256)


def test_modeled_time_of_one_nrf52840_word_is_twrite():
    flash = EmulatedFlash("nrf52840-internal")
    flash.program(0, bytes(4))
    assert flash.clock.now == 41e-6
    flash.erase_sector(0)
    assert flash.clock.now == 41e-6 + 85e-3


def test_program_overhead_is_added_once_per_operation():
    flash = EmulatedFlash(SMALL)
    flash.program(0, bytes(32))
    assert flash.clock.now == 0.01e-3 + 0.5e-3 * (32 / 64)


def test_operations_are_recorded_in_order_without_overlap():
    flash = EmulatedFlash("stm32f4-internal")
    flash.erase(0, 32 * KiB)
    flash.write(0, bytes(100))
    flash.read(0, 100)
    kinds = [op.kind for op in flash.operations]
    assert kinds == ["erase", "erase"] + ["program"] * 7 + ["read"]
    assert flash.operation_count == len(flash.operations) == 10
    for earlier, later in zip(flash.operations, flash.operations[1:], strict=False):
        assert earlier.start < earlier.end == later.start < later.end
    assert flash.operations[-1].end == flash.clock.now


def test_flashes_sharing_a_clock_share_one_timeline():
    clock = ModeledClock()
    internal = EmulatedFlash("nrf52840-internal", clock)
    external = EmulatedFlash("w25q64-spi-nor", clock)
    internal.erase_sector(0)
    external.erase_sector(0)
    assert external.operations[0].start == internal.operations[0].end == 85e-3
    assert clock.now == 85e-3 + 45e-3


# -- uneven sectors (STM32F4) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "index"),
    [(0, 0), (0x3FFF, 0), (0x4000, 1), (0xC000, 3), (0x10000, 4), (0x1FFFF, 4), (0x20000, 5),
     (0xFFFFF, 11)],
)  # fmt: skip
def test_stm32f4_offset_maps_to_its_sector(offset, index):
    assert EmulatedFlash("stm32f4-internal").sector_index(offset) == index


def test_stm32f4_sector_layout_is_four_16k_one_64k_seven_128k():
    flash = EmulatedFlash("stm32f4-internal")
    assert flash.sectors[:6] == [
        (0, 16 * KiB),
        (0x4000, 16 * KiB),
        (0x8000, 16 * KiB),
        (0xC000, 16 * KiB),
        (0x10000, 64 * KiB),
        (0x20000, 128 * KiB),
    ]
    assert len(flash.sectors) == 12


def test_sector_gives_one_start_and_size_and_sectors_a_list_of_your_own():
    flash = EmulatedFlash("stm32f4-internal")
    assert [flash.sector(i) for i in range(12)] == flash.sectors
    assert flash.sector(4) == (0x10000, 64 * KiB)
    flash.sectors.clear()  # a copy: the flash keeps its layout
    assert len(flash.sectors) == 12
    for bad in (-1, 12, True, 1.0):
        with pytest.raises(FlashError, match=r"there is no sector .*numbered 0\.\.11"):
            flash.sector(bad)


def test_stm32f4_erase_of_the_64k_sector_erases_its_range_in_its_time():
    flash = EmulatedFlash("stm32f4-internal")
    for start in (0xFFF0, 0x10000, 0x1FFF0, 0x20000):
        flash.write(start, bytes(16))
    clock_before = flash.clock.now
    flash.erase_sector(4)
    assert flash.dump(0x10000, 64 * KiB) == b"\xff" * (64 * KiB)
    assert flash.dump(0xFFF0, 16) == bytes(16)
    assert flash.dump(0x20000, 16) == bytes(16)
    assert flash.operations[-1].offset == 0x10000
    assert flash.operations[-1].length == 64 * KiB
    assert flash.clock.now == clock_before + 550e-3


def test_stm32f4_128k_sector_erase_takes_one_second():
    flash = EmulatedFlash("stm32f4-internal")
    flash.erase_sector(5)
    assert flash.clock.now == 1.0


# -- power cuts ----------------------------------------------------------------------------------


def test_power_cut_at_an_operation_tears_exactly_that_operation():
    flash = EmulatedFlash("w25q64-spi-nor", seed=7)
    flash.erase_sector(0)
    first = flash.operation_count
    flash.cut_power(at_operation=first + 2)
    with pytest.raises(PowerLoss) as lost:
        flash.write(0, bytes(1024))  # four page programs; the third is torn
    torn = flash.operations[-1]
    assert lost.value.operation == torn
    assert (torn.kind, torn.offset, torn.length, torn.torn) == ("program", 512, 256, True)
    assert [op.torn for op in flash.operations] == [False, False, False, True]
    assert flash.operation_count == first + 3
    assert flash.clock.now == torn.end == lost.value.time
    assert flash.dump(0, 512) == bytes(512)  # the two pages before: programmed
    assert flash.dump(768, 256) == b"\xff" * 256  # the page after: never started
    page = flash.dump(512, 256)
    done = len(page) - len(page.lstrip(b"\x00"))  # a programmed prefix,
    assert done < 256
    assert page[done] != 0x00  # one byte with only some of its bits cleared,
    assert page[done + 1 :] == b"\xff" * (255 - done)  # and the rest untouched
    assert not flash.powered


def test_torn_program_of_a_word_leaves_a_partly_programmed_word():
    flash = EmulatedFlash("nrf52840-internal", seed=3)
    flash.cut_power(at_operation=0)
    with pytest.raises(PowerLoss):
        flash.program(0, bytes(4096))
    page = flash.dump(0, 4096)
    words = [page[i : i + 4] for i in range(0, 4096, 4)]
    done = next(i for i, word in enumerate(words) if word != bytes(4))  # whole words first,
    assert all(word == b"\xff" * 4 for word in words[done + 1 :])  # then one torn word, then 0xFF


def test_power_cut_at_a_time_inside_an_erase_leaves_the_sector_partly_erased():
    flash = EmulatedFlash("w25q64-spi-nor", seed=1)
    flash.write(0, bytes(4096))
    start = flash.clock.now
    flash.cut_power(at_time=start + 45e-3 / 2)
    with pytest.raises(PowerLoss) as lost:
        flash.erase_sector(0)
    assert lost.value.time == start + 45e-3 / 2 == flash.clock.now
    sector = flash.dump(0, 4096)
    assert sector[:2000] == b"\xff" * 2000  # the erased prefix
    assert sector[2100:] != b"\xff" * (4096 - 2100)  # the rest: not erased
    assert sector[2100:] != bytes(4096 - 2100)  # ... nor the old data: garbage
    assert flash.operations[-1].torn


def test_power_cut_scheduled_between_operations_stops_the_next_one_untouched():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.cut_power(at_time=1.0)
    flash.clock.advance(2.0)  # e.g. a download went on meanwhile
    assert not flash.powered
    with pytest.raises(PowerLoss) as lost:
        flash.program(0, b"\x00")
    assert lost.value.operation is None
    assert lost.value.time == 1.0
    assert flash.dump(0, 1) == b"\xff"
    assert flash.operations == []


def test_operations_while_powered_off_raise_power_loss():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.cut_power()
    for attempt in (
        lambda: flash.read(0, 1),
        lambda: flash.program(0, b"\x00"),
        lambda: flash.write(0, b"\x00"),
        lambda: flash.erase_sector(0),
        lambda: flash.erase(0, 4096),
    ):
        with pytest.raises(PowerLoss, match="no power"):
            attempt()
    assert flash.operations == []
    assert flash.clock.now == 0.0


def test_contents_persist_after_power_on():
    flash = EmulatedFlash("w25q64-spi-nor", seed=5)
    flash.write(0, b"image")
    flash.cut_power(at_operation=flash.operation_count)
    with pytest.raises(PowerLoss):
        flash.write(256, bytes(256))
    before = flash.dump()
    flash.power_on()
    assert flash.powered
    assert flash.dump() == before
    assert flash.read(0, 5) == b"image"


def test_cut_at_an_operation_already_run_is_refused():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.read(0, 1)
    with pytest.raises(FlashError, match="already run; the next one is number 1"):
        flash.cut_power(at_operation=0)


def test_same_seed_tears_the_same_way():
    def run(seed: int) -> tuple[bytes, list[FlashOperation]]:
        flash = EmulatedFlash("stm32f4-internal", seed=seed)
        flash.write(0, bytes(64))
        flash.cut_power(at_operation=flash.operation_count + 1)
        with pytest.raises(PowerLoss):
            flash.erase(0, 32 * KiB)
        flash.power_on()
        flash.cut_power(at_operation=flash.operation_count + 1)
        with pytest.raises(PowerLoss):
            flash.write(0x8000, bytes(64))
        return flash.dump(0, 48 * KiB), flash.operations

    assert run(11) == run(11)
    assert run(11)[0] != run(12)[0]


def test_repr_names_part_size_sectors_time_and_operations():
    flash = EmulatedFlash("nrf52840-internal")
    flash.erase_sector(0)
    assert repr(flash) == "<EmulatedFlash nrf52840-internal 1 MiB, 256 sectors, t=0.085 s, 1 ops>"
    flash.cut_power()
    assert repr(flash).endswith("1 ops, power off>")


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(FlashError, match=r"choose one of .*'w25q64-spi-nor'"):
        EmulatedFlash("w25q128")


# -- against a reference model ---------------------------------------------------------------------


def _aligned(draw, low: int, high: int) -> int:
    return 2 * draw(st.integers(low // 2, high // 2))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_operations_agree_with_a_reference_model(data):
    flash = EmulatedFlash(SMALL)
    reference = bytearray(b"\xff" * SMALL.capacity)
    expected_time = 0.0
    starts = [start for start, _ in flash.sectors]

    def refused(offset: int, new: bytes) -> bool:
        return any(n & ~o & 0xFF for o, n in zip(reference[offset:], new, strict=False))

    def new_bytes(offset: int, length: int) -> bytes:
        noise = data.draw(st.binary(min_size=length, max_size=length))
        if data.draw(st.booleans()):  # often something programmable over what is there
            return bytes(o & n for o, n in zip(reference[offset:], noise, strict=False))
        return noise

    for _ in range(data.draw(st.integers(1, 20))):
        kind = data.draw(st.sampled_from(["erase", "program", "write", "read"]))
        if kind == "erase":
            index = data.draw(st.integers(0, len(starts) - 1))
            size = SMALL.sectors[index]
            flash.erase_sector(index)
            reference[starts[index] : starts[index] + size] = b"\xff" * size
            expected_time += SMALL.erase_time(size)
        elif kind == "program":
            page = data.draw(st.integers(0, SMALL.capacity // 64 - 1)) * 64
            offset = page + _aligned(data.draw, 0, 62)
            length = _aligned(data.draw, 2, page + 64 - offset)
            new = new_bytes(offset, length)
            if refused(offset, new):
                with pytest.raises(FlashError, match="from 0 to 1"):
                    flash.program(offset, new)
            else:
                flash.program(offset, new)
                reference[offset : offset + length] = bytes(
                    o & n for o, n in zip(reference[offset:], new, strict=False)
                )
                expected_time += SMALL.program_time(length)
        elif kind == "write":
            offset = _aligned(data.draw, 0, SMALL.capacity - 2)
            length = _aligned(data.draw, 0, min(300, SMALL.capacity - offset))
            new = new_bytes(offset, length)
            if refused(offset, new):
                with pytest.raises(FlashError, match="from 0 to 1"):
                    flash.write(offset, new)
            else:
                flash.write(offset, new)
                reference[offset : offset + length] = bytes(
                    o & n for o, n in zip(reference[offset:], new, strict=False)
                )
                position = offset
                while position < offset + length:
                    end = min(position - position % 64 + 64, offset + length)
                    expected_time += SMALL.program_time(end - position)
                    position = end
        else:
            offset = data.draw(st.integers(0, SMALL.capacity - 1))
            length = data.draw(st.integers(1, SMALL.capacity - offset))
            assert flash.read(offset, length) == bytes(reference[offset : offset + length])
            expected_time += SMALL.read_time(length)
        assert flash.dump() == bytes(reference)
    assert flash.clock.now == expected_time


# -- memory: only sectors holding data are kept ----------------------------------------------------

#: A tiny part with four equal sectors and 1-byte program units, beside ``SMALL``'s uneven ones.
UNIFORM = FlashProfile(
    name="uniform-test-part",
    description="1 KiB in four 256-byte sectors, 32-byte pages, byte writes",
    capacity=1 * KiB,
    sectors=uniform_sectors(1 * KiB, 256),
    page_size=32,
    page_program_time=0.2e-3,
    sector_erase_time=5e-3,
    read_rate=1e6,
)

IMAGE = bytes((7 * i + 3) & 0xFF for i in range(64 * KiB))


@pytest.mark.parametrize("name", sorted(FLASH_PROFILES))
def test_a_fresh_flash_holds_no_sector_memory(name):
    flash = EmulatedFlash(name)
    assert flash.resident_bytes == 0
    assert flash.dump() == b"\xff" * flash.capacity  # and reads erased all the same


def test_a_fresh_flash_costs_kilobytes_not_its_capacity():
    EmulatedFlash("w25q64-spi-nor")  # builds the layout's shared geometry, once
    tracemalloc.start()
    try:
        flashes = [EmulatedFlash("w25q64-spi-nor") for _ in range(10)]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(flashes) == 10
    assert held < 10 * 16 * KiB  # 8 MiB each when the flash was one bytearray


def test_writing_an_image_holds_memory_for_the_sectors_it_fills_only():
    flash = EmulatedFlash("nrf52840-internal")
    flash.write(0x10000, IMAGE)
    assert flash.resident_bytes == 64 * KiB  # 16 sectors of 4 KiB, of 256
    assert flash.read(0x10000, len(IMAGE)) == IMAGE
    flash.write(0x80000, bytes(4))  # one word elsewhere costs its whole sector
    assert flash.resident_bytes == 68 * KiB


def test_erasing_a_sector_releases_its_memory():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.write(0, bytes(8 * KiB))
    assert flash.resident_bytes == 8 * KiB
    flash.erase_sector(0)
    assert flash.resident_bytes == 4 * KiB
    assert flash.dump(0, 8 * KiB) == b"\xff" * (4 * KiB) + bytes(4 * KiB)
    flash.erase(0, 8 * KiB)
    assert flash.resident_bytes == 0
    assert flash.dump(0, 8 * KiB) == b"\xff" * (8 * KiB)


def test_erasing_an_erased_sector_costs_its_time_and_no_memory():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.erase_sector(5)
    assert flash.resident_bytes == 0
    assert flash.operations == [FlashOperation("erase", 5 * 4096, 4096, 0.0, 45e-3)]


def test_reads_of_never_written_sectors_are_erased_bytes():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(0x1000, b"\x00")
    assert flash.read(0, 4096) == b"\xff" * 4096
    assert flash.read(8 * MiB - 10, 10) == b"\xff" * 10
    assert flash.read(0xF00, 0x200) == b"\xff" * 0x100 + b"\x00" + b"\xff" * 0xFF
    assert flash.dump() == b"\xff" * 0x1000 + b"\x00" + b"\xff" * (8 * MiB - 0x1001)
    assert flash.resident_bytes == 4 * KiB  # reading allocated nothing
    reads = [op for op in flash.operations if op.kind == "read"]
    assert [(op.offset, op.length) for op in reads] == [
        (0, 4096),
        (8 * MiB - 10, 10),
        (0xF00, 0x200),
    ]
    assert reads[0].duration == FLASH_PROFILES["w25q64-spi-nor"].read_time(4096)


def test_programming_only_ones_changes_nothing_and_takes_no_memory():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(0, b"\xff" * 256)
    flash.write(4096, b"\xff" * 8192)
    assert flash.resident_bytes == 0
    assert flash.dump(0, 12 * KiB) == b"\xff" * (12 * KiB)
    assert flash.operation_count == 1 + 32  # still programmed, one operation per page


@pytest.mark.parametrize(
    ("profile", "boundary"),
    [
        (FLASH_PROFILES["w25q64-spi-nor"], 0x1000),
        (FLASH_PROFILES["nrf52840-internal"], 0x1000),
        (FLASH_PROFILES["stm32f4-internal"], 0x10000),  # 16 KiB sector 3 | 64 KiB sector 4
        (FLASH_PROFILES["stm32f4-internal"], 0x20000),  # 64 KiB sector 4 | 128 KiB sector 5
        (SMALL, 0x200),  # 256-byte sector 1 | 512-byte sector 2
    ],
)
def test_programming_across_a_sector_boundary_lands_in_both_sectors(profile, boundary):
    flash = EmulatedFlash(profile)
    data = bytes(range(32))
    flash.write(boundary - 16, data)
    assert flash.read(boundary - 16, 32) == data
    assert [(op.offset, op.length) for op in flash.operations if op.kind == "program"] == [
        (boundary - 16, 16),
        (boundary, 16),
    ]
    before, after = flash.sector_index(boundary - 1), flash.sector_index(boundary)
    sizes = flash.sector(before)[1] + flash.sector(after)[1]
    assert flash.resident_bytes == sizes
    flash.erase_sector(after)
    assert flash.resident_bytes == flash.sector(before)[1]
    assert flash.read(boundary - 16, 32) == data[:16] + b"\xff" * 16


def test_a_refused_program_across_a_sector_boundary_changes_nothing():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(0x1004, b"\x0f")  # in sector 1
    with pytest.raises(FlashError, match="erase sector 1"):
        flash.write(0xFF0, b"\xf0" * 32)  # fine in sector 0, refused at 0x1004
    assert flash.dump(0xFF0, 32) == b"\xff" * 20 + b"\x0f" + b"\xff" * 11
    assert flash.resident_bytes == 4 * KiB  # sector 0 got nothing


def test_empty_operations_at_the_very_end_change_nothing():
    flash = EmulatedFlash("w25q64-spi-nor")
    flash.program(flash.capacity, b"")
    flash.write(flash.capacity, b"")
    assert flash.read(flash.capacity, 0) == b""
    assert flash.dump(flash.capacity, 0) == b""
    assert (flash.operation_count, flash.resident_bytes) == (0, 0)
    with pytest.raises(FlashError, match="past the end"):
        flash.dump(flash.capacity + 1, 0)


def test_a_torn_erase_keeps_its_garbage_until_a_whole_erase_releases_it():
    flash = EmulatedFlash("w25q64-spi-nor", seed=1)
    flash.write(0, bytes(4096))
    flash.cut_power(at_operation=flash.operation_count)
    with pytest.raises(PowerLoss):
        flash.erase_sector(0)
    assert flash.dump(0, 4096) != b"\xff" * 4096
    assert flash.resident_bytes == 4 * KiB
    flash.power_on()
    flash.erase_sector(0)
    assert flash.resident_bytes == 0


def test_a_torn_erase_of_an_erased_sector_leaves_it_erased_and_free():
    flash = EmulatedFlash("w25q64-spi-nor", seed=2)
    flash.cut_power(at_operation=0)
    with pytest.raises(PowerLoss):
        flash.erase_sector(3)
    assert flash.operations[-1].torn
    assert flash.dump(3 * 4096, 4096) == b"\xff" * 4096  # erased bits stay 1, torn or not
    assert flash.resident_bytes == 0


def test_a_torn_erase_draws_the_same_randomness_whether_or_not_the_sector_held_data():
    def torn_program_after_a_torn_erase(data_in_sector_0: bool) -> bytes:
        flash = EmulatedFlash("w25q64-spi-nor", seed=9)
        if data_in_sector_0:
            flash.write(0, bytes(4096))
        flash.cut_power(at_operation=flash.operation_count)
        with pytest.raises(PowerLoss):
            flash.erase_sector(0)
        flash.power_on()
        flash.cut_power(at_operation=flash.operation_count)
        with pytest.raises(PowerLoss):
            flash.program(0x2000, bytes(256))
        return flash.dump(0x2000, 256)

    assert torn_program_after_a_torn_erase(True) == torn_program_after_a_torn_erase(False)


def test_the_html_repr_shows_the_memory_held():
    flash = EmulatedFlash("nrf52840-internal")
    assert "0 bytes (0 of 256 sectors hold data)" in flash._repr_html_()
    flash.write(0, IMAGE)
    assert "64 KiB (16 of 256 sectors hold data)" in flash._repr_html_()


def _torn_digests() -> dict[str, str]:
    """Tear a program in erased sectors, an erase over data, an erase of an erased sector and a
    program over data, on three parts; a digest of what each part then holds."""
    digests = {}
    for name, seed in (("nrf52840-internal", 3), ("w25q64-spi-nor", 4), ("stm32f4-internal", 5)):
        flash = EmulatedFlash(name, seed=seed)
        flash.write(0, IMAGE[: 12 * KiB])
        last = flash.sector_index(flash.capacity - 1)
        for ahead, tear in (
            (1, lambda f: f.write(16 * KiB, IMAGE[: 12 * KiB])),
            (0, lambda f: f.erase_sector(0)),
            (0, lambda f: f.erase_sector(f.sector_index(f.capacity - 1))),
            (0, lambda f: f.write(4 * KiB, bytes(256))),
        ):
            flash.cut_power(at_operation=flash.operation_count + ahead)
            with pytest.raises(PowerLoss):
                tear(flash)
            flash.power_on()
        contents = flash.dump(0, 32 * KiB) + flash.dump(flash.sector(last)[0])
        digests[name] = hashlib.sha256(contents).hexdigest()[:16]
    return digests


def test_torn_operations_tear_bit_for_bit_as_when_the_flash_was_one_bytearray():
    # Taken with the flash stored as one bytearray of its whole capacity: the sparse storage
    # must not change a torn bit, nor the random numbers a tear draws.
    assert _torn_digests() == {
        "nrf52840-internal": "bc5d6c57ba3a9c49",
        "w25q64-spi-nor": "24968e95ef0df5dc",
        "stm32f4-internal": "12b4e8f30e15e4e5",
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_sparse_storage_agrees_with_a_plain_bytearray_through_power_cuts(data):
    """Random programs, writes, erases, reads and power cuts, against one plain bytearray: the
    contents always agree, a tear stays inside its operation and only moves bits the way the
    operation would, and memory is held for exactly the sectors holding a 0 bit."""
    profile = data.draw(st.sampled_from([SMALL, UNIFORM]), label="profile")
    flash = EmulatedFlash(profile, seed=data.draw(st.integers(0, 2**16), label="seed"))
    model = bytearray(b"\xff" * profile.capacity)
    unit, page = profile.write_granularity, profile.page_size
    sectors = flash.sectors

    def aligned(low: int, high: int) -> int:
        return unit * data.draw(st.integers(-(-low // unit), high // unit))

    for _ in range(data.draw(st.integers(1, 25))):
        kind = data.draw(st.sampled_from(["program", "write", "erase", "read", "cut"]))
        if kind == "cut":
            flash.cut_power(at_operation=flash.operation_count + data.draw(st.integers(0, 3)))
            continue
        before = bytes(model)
        after = bytearray(model)
        try:
            if kind == "erase":
                index = data.draw(st.integers(0, len(sectors) - 1))
                start, size = sectors[index]
                after[start : start + size] = b"\xff" * size
                flash.erase_sector(index)
            elif kind == "read":
                offset = data.draw(st.integers(0, profile.capacity - 1))
                length = data.draw(st.integers(1, profile.capacity - offset))
                assert flash.read(offset, length) == before[offset : offset + length]
            else:
                offset = aligned(0, profile.capacity - unit)
                end = offset - offset % page + page if kind == "program" else profile.capacity
                length = aligned(unit, min(end, offset + 600) - offset)
                new = data.draw(st.binary(min_size=length, max_size=length))
                if data.draw(st.booleans()):  # often something programmable over what is there
                    new = bytes(o & n for o, n in zip(before[offset:], new, strict=False))
                if any(n & ~o & 0xFF for o, n in zip(before[offset:], new, strict=False)):
                    with pytest.raises(FlashError, match="from 0 to 1"):
                        (flash.program if kind == "program" else flash.write)(offset, new)
                    assert flash.dump() == before  # refused before anything was programmed
                    continue
                after[offset : offset + length] = bytes(
                    o & n for o, n in zip(before[offset:], new, strict=False)
                )
                (flash.program if kind == "program" else flash.write)(offset, new)
            model[:] = after
        except PowerLoss as lost:
            torn = lost.operation
            event(f"torn {torn.kind}" if torn else "power already off")
            got = flash.dump()
            if torn is not None:
                low, high = torn.offset, torn.offset + torn.length
                assert got[:low] == after[:low]  # earlier pages of a write: done
                assert got[high:] == before[high:]  # the rest: untouched
                for old, new_, now in zip(
                    before[low:high], after[low:high], got[low:high], strict=True
                ):
                    if torn.kind == "erase":
                        assert old & ~now == 0  # an erase only sets bits
                    else:  # a program only clears bits, never more than it was asked to
                        assert now & ~old == 0 and new_ & ~now == 0
            else:
                assert got == before
            model[:] = got
            flash.power_on()
        assert flash.dump() == bytes(model)
        holding = [
            size for start, size in sectors if model[start : start + size].count(0xFF) < size
        ]
        assert flash.resident_bytes == sum(holding)
