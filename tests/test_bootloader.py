"""The bootloader: two image slots, a FOTA record that survives power cuts, and boot()."""

import random
import zlib
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2m_edu.bootloader import BootError, Bootloader, FotaRecord, StagedPackage
from lwm2m_edu.flash import FLASH_PROFILES, EmulatedFlash, PowerLoss
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.package import Package

R = UpdateResult
DEVICE = "demo"
NRF = "nrf52840-internal"
SEEDED = settings(max_examples=200, deadline=None, derandomize=True)

VENDOR_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def package(version: str, *, size: int = 6000, signing_key=None, device_type=DEVICE) -> Package:
    image = random.Random(version).randbytes(size)
    return Package.build(
        image, name="app", version=version, device_type=device_type, signing_key=signing_key
    )


def provisioned(profile: str = NRF, **options) -> Bootloader:
    """A device fresh from the factory: image 1.0 in slot A, booted once."""
    signing_key = VENDOR_KEY if "verify_key" in options else None
    boot = Bootloader(EmulatedFlash(profile), device_type=DEVICE, **options)
    boot.provision(package("1.0", signing_key=signing_key))
    boot.boot()
    return boot


def stage(
    boot: Bootloader,
    pkg: Package,
    *,
    state: State = State.UPDATING,
    damage_at: int | None = None,
    **record,
) -> None:
    """Put ``pkg`` in the staging slot (one byte flipped at ``damage_at``) and write the record
    an update in ``state`` leaves."""
    data = bytearray(bytes(pkg))
    if damage_at is not None:
        data[damage_at] ^= 0x01
    boot.write_image(boot.staging_slot, bytes(data))
    info = pkg.info
    staged = StagedPackage(info.name, info.version, info.package_size, info.sha256)
    boot.write_record(state=state, result=R.INITIAL, staged=staged, **record)


def reboot(boot: Bootloader, **options):
    """Power the same flash up again with a new bootloader; return it and its boot report."""
    again = Bootloader(boot.flash, device_type=DEVICE, **options)
    return again, again.boot()


def copy_in(boot: Bootloader, index: int) -> FotaRecord | None:
    start, size = boot.record_sectors[index]
    return FotaRecord.from_bytes(boot.flash.dump(start, size))


# -- the record ----------------------------------------------------------------------------------

short_text = st.text(max_size=40).filter(lambda t: len(t.encode()) <= 255)
records = st.builds(
    FotaRecord,
    sequence=st.integers(0, 2**32 - 1),
    active_slot=st.sampled_from([0, 1]),
    state=st.sampled_from(State),
    result=st.sampled_from(UpdateResult),
    package_uri=short_text,
    download_offset=st.integers(0, 2**64 - 1),
    etag=st.binary(max_size=255),
    staged=st.none()
    | st.builds(
        StagedPackage,
        name=short_text,
        version=short_text,
        size=st.integers(0, 2**64 - 1),
        sha256=st.binary(min_size=32, max_size=32),
    ),
    defer_deadline=st.none() | st.floats(allow_nan=False),
)


@SEEDED
@given(records)
def test_a_record_reads_back_as_written(record):
    assert FotaRecord.from_bytes(record.to_bytes()) == record


@SEEDED
@given(records, st.binary(max_size=64))
def test_what_follows_a_record_in_its_sector_is_ignored(record, tail):
    assert FotaRecord.from_bytes(record.to_bytes() + tail) == record


@SEEDED
@given(records, st.data())
def test_a_record_with_a_changed_byte_is_rejected(record, data):
    wire = bytearray(record.to_bytes())
    position = data.draw(st.integers(0, len(wire) - 1), label="position")
    wire[position] ^= data.draw(st.integers(1, 255), label="xor")
    assert FotaRecord.from_bytes(bytes(wire)) is None


@SEEDED
@given(records, st.data())
def test_a_truncated_record_is_rejected(record, data):
    wire = record.to_bytes()
    cut = data.draw(st.integers(0, len(wire) - 1), label="length")
    assert FotaRecord.from_bytes(wire[:cut] + b"\xff" * 600) is None


def format_1(record: FotaRecord) -> bytes:
    """``record`` as a firmware from before the deferral deadline wrote it: magic ``FOTA``, no
    deadline field (format 2 minus its magic and its last flag byte, with its own CRC)."""
    assert record.defer_deadline is None
    body = b"FOTA" + record.to_bytes()[4:-5]  # drop the deadline's flag byte and the CRC
    return body + zlib.crc32(body).to_bytes(4, "big")


def test_a_deferral_deadline_reads_back_and_an_old_format_record_reads_without_one():
    staged = StagedPackage("app", "2.0", 6123, bytes(range(32)))
    deferred = FotaRecord(7, 1, State.DOWNLOADED, R.DEFERRED, staged=staged)
    deferred = replace(deferred, defer_deadline=1_700_003_600.25)
    assert FotaRecord.from_bytes(deferred.to_bytes()) == deferred
    assert deferred.to_bytes()[:4] == b"FOT2"  # format 2 is what is written
    old = replace(deferred, defer_deadline=None)
    assert FotaRecord.from_bytes(format_1(old)) == old


def test_a_device_whose_record_is_in_the_old_format_still_boots_and_keeps_it():
    boot = provisioned()
    stage(boot, package("2.0"), state=State.DOWNLOADED)
    record = boot.record
    start, size = boot.record_sectors[(record.sequence + 1) % 2]
    boot.flash.erase(start, size)  # a newer copy, in format 1, as an older firmware wrote it
    wire = format_1(replace(record, sequence=record.sequence + 1))
    boot.flash.write(start, wire + b"\xff" * (-len(wire) % boot.flash.profile.write_granularity))
    again, report = reboot(boot)
    assert report.image.version == "1.0"
    assert report.record == replace(record, sequence=record.sequence + 1)
    assert report.record.defer_deadline is None
    again.write_record(result=R.DEFERRED, defer_deadline=1_700_003_600.0)  # written as format 2
    assert reboot(again)[1].record.defer_deadline == 1_700_003_600.0


def test_a_deferral_deadline_survives_a_power_cut_during_the_next_record_write():
    boot = provisioned()
    stage(boot, package("2.0"), state=State.DOWNLOADED)
    boot.write_record(result=R.DEFERRED, defer_deadline=1_700_003_600.0)
    boot.flash.cut_power(at_operation=boot.flash.operation_count + 1)  # tear the program
    with pytest.raises(PowerLoss):
        boot.write_record(state=State.UPDATING, result=R.INITIAL, defer_deadline=None)
    boot.flash.power_on()
    _, report = reboot(boot)
    assert (report.record.result, report.record.defer_deadline) == (R.DEFERRED, 1_700_003_600.0)


def test_an_erased_sector_holds_no_record():
    assert FotaRecord.from_bytes(b"\xff" * 4096) is None


def test_a_fresh_flash_reads_as_the_default_record():
    boot = Bootloader(EmulatedFlash(NRF), device_type=DEVICE)
    assert boot.read_record() == FotaRecord()


def test_records_alternate_between_the_two_sectors():
    boot = provisioned()
    for _ in range(4):
        record = boot.write_record(result=R.CONNECTION_LOST)
        assert copy_in(boot, record.sequence % 2) == record
        assert copy_in(boot, 1 - record.sequence % 2).sequence == record.sequence - 1


def test_the_copy_with_the_highest_sequence_wins():
    boot = provisioned()
    boot.write_record(result=R.CONNECTION_LOST)
    newest = boot.write_record(result=R.CANCELLED)
    assert {copy_in(boot, 0).sequence, copy_in(boot, 1).sequence} == {
        newest.sequence - 1,
        newest.sequence,
    }
    assert Bootloader(boot.flash, device_type=DEVICE).read_record() == newest


def test_a_corrupted_newest_copy_is_ignored_and_the_other_copy_wins():
    boot = provisioned()
    older = boot.write_record(result=R.CONNECTION_LOST)
    newest = boot.write_record(result=R.CANCELLED)
    start, _ = boot.record_sectors[newest.sequence % 2]
    boot.flash.program(start + 4, b"\x00\x00\x00\x00")  # clear the bits of its sequence number
    assert Bootloader(boot.flash, device_type=DEVICE).read_record() == older


@pytest.mark.parametrize("seed", range(20))
def test_a_record_write_torn_by_a_power_cut_leaves_the_previous_record_or_the_new_one(seed):
    boot = Bootloader(EmulatedFlash(NRF, seed=seed), device_type=DEVICE)
    boot.provision(package("1.0"))
    older = boot.write_record(result=R.CONNECTION_LOST)
    cut = boot.flash.operation_count + random.Random(seed).randrange(2)  # the erase or the program
    boot.flash.cut_power(at_operation=cut)
    with pytest.raises(PowerLoss):
        boot.write_record(state=State.DOWNLOADED, result=R.INITIAL)
    boot.flash.power_on()
    found = Bootloader(boot.flash, device_type=DEVICE).read_record()
    assert found == older or found == boot.record  # never anything in between


# -- the layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(FLASH_PROFILES))
def test_the_slots_are_whole_sectors_after_the_record_and_do_not_overlap(profile):
    flash = EmulatedFlash(profile)
    boot = Bootloader(flash, device_type=DEVICE)
    starts = {start for start, _ in flash.sectors}
    ends = {start + size for start, size in flash.sectors}
    a, b = boot.slots
    assert boot.record_sectors == tuple(flash.sectors[:2])
    record_end = sum(size for _, size in boot.record_sectors)
    assert a.start == record_end
    assert a.start + a.size == b.start
    assert b.start + b.size == flash.capacity
    for slot in (a, b):
        assert slot.start in starts and slot.start + slot.size in ends


@pytest.mark.parametrize("profile", sorted(FLASH_PROFILES))
def test_the_slots_are_as_equal_as_the_sectors_allow(profile):
    flash = EmulatedFlash(profile)
    a, b = Bootloader(flash, device_type=DEVICE).slots
    largest_sector = max(size for _, size in flash.sectors[2:])
    assert abs(a.size - b.size) <= largest_sector


def test_stm32f4_slots_split_its_uneven_sectors_480_and_512_kib():
    a, b = Bootloader(EmulatedFlash("stm32f4-internal"), device_type=DEVICE).slots
    assert (a.start, a.size, b.start, b.size) == (32 * 1024, 480 * 1024, 512 * 1024, 512 * 1024)


def test_a_flash_of_fewer_than_four_sectors_cannot_hold_a_bootloader():
    from lwm2m_edu.flash import FlashProfile, uniform_sectors

    tiny = FlashProfile(
        name="tiny", description="three sectors", capacity=3 * 4096, page_size=256,
        sectors=uniform_sectors(3 * 4096, 4096), page_program_time=1e-3,
        sector_erase_time=1e-2, read_rate=1e6,
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs 4"):
        Bootloader(EmulatedFlash(tiny), device_type=DEVICE)


# -- booting -------------------------------------------------------------------------------------


def test_a_provisioned_device_boots_slot_a_with_idle_and_result_0():
    boot = provisioned()
    _, report = reboot(boot)
    assert report.slot.name == "A"
    assert report.image.version == "1.0"
    assert (report.record.state, report.record.result) == (State.IDLE, R.INITIAL)
    assert report.events == ()


def test_boot_fails_with_boot_error_when_neither_slot_holds_a_valid_image():
    with pytest.raises(BootError, match="neither slot"):
        Bootloader(EmulatedFlash(NRF), device_type=DEVICE).boot()


def test_an_update_with_a_good_staged_package_switches_slots_and_reports_idle_1():
    boot = provisioned()
    stage(boot, package("2.0"))
    again, report = reboot(boot)
    assert (report.slot.name, report.image.version) == ("B", "2.0")
    assert (report.record.state, report.record.result) == (State.IDLE, R.SUCCESS)
    assert report.record.staged is None
    assert again.staging_slot.name == "A"  # the old image is now the staging slot


def test_the_installed_image_keeps_running_at_the_next_boot():
    boot = provisioned()
    stage(boot, package("2.0"))
    again, _ = reboot(boot)
    _, report = reboot(again)
    assert (report.image.version, report.record.result) == ("2.0", R.SUCCESS)
    assert report.events == ()


def test_an_update_with_a_corrupted_staged_package_keeps_the_old_image_and_reports_idle_5():
    boot = provisioned()
    stage(boot, package("2.0"), damage_at=-100)
    _, report = reboot(boot)
    assert (report.slot.name, report.image.version) == ("A", "1.0")
    assert (report.record.state, report.record.result) == (State.IDLE, R.INTEGRITY_FAILURE)
    assert report.record.staged is None
    assert "failed verification" in report.events[0]


def test_an_integrity_failure_at_boot_forgets_the_discarded_download():
    boot = provisioned()
    stage(boot, package("2.0"), damage_at=-1, package_uri="coap://fw.example/2.0", etag=b"v2")
    _, report = reboot(boot)
    assert report.record.result is R.INTEGRITY_FAILURE
    assert (report.record.package_uri, report.record.etag) == ("", b"")


def test_a_staged_package_of_another_size_than_recorded_fails_verification():
    boot = provisioned()
    stage(boot, package("2.0"))
    boot.write_record(staged=StagedPackage("app", "2.0", 1234, bytes(32)))
    _, report = reboot(boot)
    assert (report.image.version, report.record.result) == ("1.0", R.INTEGRITY_FAILURE)


def test_a_failing_self_test_keeps_the_old_image_and_reports_downloaded_8():
    boot = provisioned()
    stage(boot, package("2.0"))
    _, report = reboot(boot, self_test=lambda info: info.version != "2.0")
    assert (report.slot.name, report.image.version) == ("A", "1.0")
    assert (report.record.state, report.record.result) == (State.DOWNLOADED, R.UPDATE_FAILED)
    assert report.record.staged is not None and report.record.staged.version == "2.0"


def test_an_update_retried_after_a_failed_self_test_installs_when_the_self_test_passes():
    boot = provisioned()
    stage(boot, package("2.0"))
    failed, _ = reboot(boot, self_test=lambda info: False)
    failed.write_record(state=State.UPDATING, result=R.INITIAL)  # the server executes Update again
    _, report = reboot(failed, self_test=lambda info: True)
    assert (report.slot.name, report.image.version) == ("B", "2.0")
    assert (report.record.state, report.record.result) == (State.IDLE, R.SUCCESS)


def test_the_self_test_is_asked_about_the_new_image_only():
    seen = []
    boot = provisioned()
    stage(boot, package("2.0"))
    reboot(boot, self_test=lambda info: seen.append(info.version) or True)
    assert seen == ["2.0"]


def test_a_download_interrupted_by_a_reboot_becomes_idle_4():
    boot = provisioned()
    boot.write_record(state=State.DOWNLOADING, package_uri="coap://fw.example/2.0")
    _, report = reboot(boot)
    assert (report.record.state, report.record.result) == (State.IDLE, R.CONNECTION_LOST)
    assert report.record.package_uri == ""
    assert report.image.version == "1.0"


def test_a_pull_with_a_uri_and_an_etag_stays_downloading_to_be_resumed():
    boot = provisioned()
    boot.write_record(
        state=State.DOWNLOADING, package_uri="coap://fw.example/2.0", etag=b"\x01\x02",
        download_offset=4096,
    )  # fmt: skip
    _, report = reboot(boot)
    record = report.record
    assert (record.state, record.result) == (State.DOWNLOADING, R.INITIAL)
    assert (record.package_uri, record.etag, record.download_offset) == (
        "coap://fw.example/2.0", b"\x01\x02", 4096,
    )  # fmt: skip


def test_a_downloaded_package_waits_across_a_reboot():
    boot = provisioned()
    stage(boot, package("2.0"), state=State.DOWNLOADED)
    _, report = reboot(boot)
    assert report.image.version == "1.0"
    assert report.record.state is State.DOWNLOADED
    assert report.record.staged.version == "2.0"


@pytest.mark.parametrize(
    "signing_key", [None, OTHER_KEY], ids=["unsigned", "signed-with-another-key"]
)
def test_a_signed_device_refuses_a_staged_package_not_signed_by_its_vendor(signing_key):
    boot = provisioned(verify_key=VENDOR_KEY.public_key())
    stage(boot, package("2.0", signing_key=signing_key))
    _, report = reboot(boot, verify_key=VENDOR_KEY.public_key())
    assert (report.image.version, report.record.result) == ("1.0", R.INTEGRITY_FAILURE)


def test_a_signed_device_installs_a_package_signed_by_its_vendor():
    boot = provisioned(verify_key=VENDOR_KEY.public_key())
    stage(boot, package("2.0", signing_key=VENDOR_KEY))
    _, report = reboot(boot, verify_key=VENDOR_KEY.public_key())
    assert (report.image.version, report.record.result) == ("2.0", R.SUCCESS)


def test_a_package_for_another_device_type_is_not_installed():
    boot = provisioned()
    stage(boot, package("2.0", device_type="other"))
    _, report = reboot(boot)
    assert (report.image.version, report.record.result) == ("1.0", R.INTEGRITY_FAILURE)


def test_boot_falls_back_to_the_other_slot_when_the_active_one_is_unusable():
    boot = provisioned()
    boot.write_image(boot.staging_slot, bytes(package("2.0")))
    boot.flash.erase(boot.active_slot.start, boot.active_slot.size)
    again, report = reboot(boot)
    assert (report.slot.name, report.image.version) == ("B", "2.0")
    assert again.read_record().active_slot == 1
    assert "fell back" in report.events[0]


def test_a_boot_report_reads_as_a_sentence():
    boot = provisioned()
    stage(boot, package("2.0"))
    _, report = reboot(boot)
    text = str(report)
    assert text.startswith("booted app 2.0 from slot B (508 KiB at 0x081000): installed app 2.0")
    assert text.endswith("State 0 IDLE, Update Result 1 SUCCESS")


def test_a_boot_report_with_nothing_to_do_says_so():
    _, report = reboot(provisioned())
    assert "nothing to do" in str(report)


def test_a_package_smaller_than_one_read_chunk_boots():
    flash = EmulatedFlash("nrf52840-internal")
    bootloader = Bootloader(flash, device_type="tiny")
    bootloader.provision(Package.build(b"x" * 100, name="app", version="0.1", device_type="tiny"))
    report = bootloader.boot()
    assert (report.slot.name, report.image.version) == ("A", "0.1")
