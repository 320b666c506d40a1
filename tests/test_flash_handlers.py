"""The reference handlers: Object /5 on emulated flash, a staging slot and a FOTA record."""

import itertools
import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2m_edu.bootloader import Bootloader
from lwm2m_edu.flash import EmulatedFlash
from lwm2m_edu.flash_handlers import FlashFirmwareHandlers
from lwm2m_edu.fota import Protocol, State, UpdateResult
from lwm2m_edu.objects import Code
from lwm2m_edu.objects.firmware import FirmwareObject
from lwm2m_edu.package import Package

R = UpdateResult
DEVICE = "demo"
NRF = "nrf52840-internal"
SECTOR = 4096  # the nRF52840's page, its erase unit
URI = "coap://fw.example/app-2.0"


def package(version: str = "2.0", *, size: int = 10_000, **options) -> bytes:
    options.setdefault("device_type", DEVICE)
    image = random.Random(version).randbytes(size)
    return bytes(Package.build(image, name="app", version=version, **options))


class Device:
    """A device as it comes up after a boot: bootloader, handlers and Object /5 on ``flash``."""

    def __init__(self, flash: EmulatedFlash, *, start_download=None, **options) -> None:
        self.flash = flash
        self.bootloader = Bootloader(flash, device_type=DEVICE, **options)
        self.report = self.bootloader.boot()
        self.handlers = FlashFirmwareHandlers(self.bootloader, start_download=start_download)
        protocols = (Protocol.COAP,) if start_download is not None else ()
        self.firmware = FirmwareObject(self.handlers, protocols=protocols)
        self.handlers.attach(self.firmware)

    @classmethod
    def provisioned(
        cls, profile: str = NRF, *, signing_key=None, start_download=None, **options
    ) -> "Device":
        """A device fresh from the factory: app 1.0 in slot A."""
        flash = EmulatedFlash(profile)
        factory = Bootloader(flash, device_type=DEVICE, **options)
        factory.provision(Package.parse(package("1.0", size=6000, signing_key=signing_key)))
        return cls(flash, start_download=start_download, **options)

    def reboot(self, **options) -> "Device":
        return Device(self.flash, **options)

    @property
    def now(self) -> float:
        return self.flash.clock.now

    def push(self, data: bytes, block: int = 1024) -> list[Code]:
        """Write ``data`` to /5/0/0 block by block; stop at the first error, as a server does."""
        codes = []
        for offset in range(0, len(data), block):
            last = offset + block >= len(data)
            chunk = data[offset : offset + block]
            outcome = self.firmware.write_package(chunk, offset=offset, last=last, now=self.now)
            codes.append(outcome.code)
            if not outcome.ok:
                break
        return codes

    def staging(self, length: int) -> bytes:
        return self.flash.dump(self.bootloader.staging_slot.start, length)

    def state(self) -> tuple[State, UpdateResult]:
        return self.firmware.state, self.firmware.result


class Downloader:
    """The device's downloader, played by the test: it serves ``files`` when told to run."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.started: list[str] = []

    def __call__(self, uri: str) -> UpdateResult:
        self.started.append(uri)
        return R.SUCCESS

    def run(self, device: Device, block: int = 512) -> None:
        data, handlers = self.files[self.started[-1]], device.handlers
        for offset in range(0, len(data), block):
            result = handlers.write_chunk(data[offset : offset + block])
            if result is not R.SUCCESS:
                device.firmware.download_failed(result, device.now)
                return
        result = handlers.finish()
        if result is R.SUCCESS:
            device.firmware.download_finished(device.now)
        else:
            device.firmware.download_failed(result, device.now)


def pull_device(files: dict[str, bytes]) -> tuple[Device, Downloader]:
    downloader = Downloader(files)
    device = Device.provisioned(start_download=downloader)
    return device, downloader


# -- push: streaming to the staging slot ---------------------------------------------------------


def test_a_pushed_package_is_stored_in_the_staging_slot_byte_for_byte():
    device, data = Device.provisioned(), package()
    assert device.push(data)[-1] is Code.CHANGED
    assert device.state() == (State.DOWNLOADED, R.INITIAL)
    assert device.staging(len(data)) == data


def test_each_block_is_on_flash_before_the_next_one_arrives():
    device, data = Device.provisioned(), package()
    block = 1000  # not a multiple of the 4-byte write unit
    for offset in range(0, len(data) - block, block):
        device.firmware.write_package(
            data[offset : offset + block], offset=offset, last=False, now=device.now
        )
        received = offset + block
        on_flash = received - received % 4
        assert device.staging(on_flash) == data[:on_flash]


def test_the_handlers_keep_less_than_a_write_unit_of_the_package_in_ram():
    device, data = Device.provisioned(), package()
    block = 1000
    for offset in range(0, len(data) - block, block):
        device.firmware.write_package(
            data[offset : offset + block], offset=offset, last=False, now=device.now
        )
        held = [v for v in vars(device.handlers).values() if isinstance(v, bytes | bytearray)]
        assert all(len(value) < 4 for value in held)


def test_the_running_image_is_not_touched_by_a_push():
    device = Device.provisioned()
    active = device.bootloader.active_slot
    before = device.flash.dump(active.start, active.size)
    device.push(package())
    assert device.flash.dump(active.start, active.size) == before


def test_only_the_sectors_the_package_reaches_are_erased():
    device, data = Device.provisioned(), package(size=10_000)
    device.push(data)
    erased = [op for t in device.handlers.timeline for op in t.flash if op.kind == "erase"]
    slot = device.bootloader.staging_slot
    assert [op.offset for op in erased] == [slot.start + i * SECTOR for i in range(3)]


def test_a_sector_is_erased_by_the_chunk_whose_data_first_reaches_it():
    device = Device.provisioned()
    device.push(package(size=10_000), block=1024)
    erasing = [
        t.index for t in device.handlers.timeline if any(op.kind == "erase" for op in t.flash)
    ]
    assert erasing == [0, 4, 8]  # 4 blocks of 1 KiB per 4 KiB sector


def test_a_sector_is_erased_just_before_the_program_that_needs_it():
    device = Device.provisioned()
    device.push(package(size=10_000), block=1024)
    first = device.handlers.timeline[0]
    erase, program = first.flash
    assert (erase.kind, program.kind) == ("erase", "program")
    assert erase.offset <= program.offset < erase.offset + erase.length
    assert erase.end == program.start


def test_the_timeline_has_one_chunk_timing_per_block_in_package_order():
    device, data = Device.provisioned(), package(size=10_000)
    device.push(data, block=1024)
    timeline = device.handlers.timeline
    blocks = range(0, len(data), 1024)
    assert [t.index for t in timeline] == list(range(len(blocks)))
    assert [t.offset for t in timeline] == list(blocks)
    assert sum(t.length for t in timeline) == len(data)


def test_the_timeline_is_complete_after_the_flash_records_were_cleared():
    device = Device.provisioned()
    device.push(package(size=10_000), block=1024)
    assert device.firmware.write_package(b"\0", offset=0, last=True, now=device.now).ok  # Idle
    device.flash.operations.clear()  # what a long-running emulation may do between updates
    assert set(device.push(package(size=10_000), block=1024)) <= {Code.CONTINUE, Code.CHANGED}
    assert all(timing.flash for timing in device.handlers.timeline)  # each block was programmed
    programmed = [op for t in device.handlers.timeline for op in t.flash]
    assert all(op in device.flash.operations for op in programmed)  # the records of this push


def test_the_timeline_flash_operations_follow_their_arrival_in_order_without_overlap():
    device = Device.provisioned()
    device.push(package(size=10_000), block=1024)
    timeline = device.handlers.timeline
    operations = [op for t in timeline for op in t.flash]
    for timing in timeline:
        assert all(op.start >= timing.received_at for op in timing.flash)
    for earlier, later in itertools.pairwise(operations):
        assert earlier.end <= later.start
    for earlier, later in itertools.pairwise(timeline):
        assert earlier.received_at <= later.received_at
        assert earlier.done_at <= later.received_at


def test_the_timeline_accounts_for_every_flash_operation_of_the_download():
    device, data = Device.provisioned(), package(size=10_001)  # an unaligned tail to flush
    slot = device.bootloader.staging_slot
    first = device.flash.operation_count
    device.push(data, block=1000)
    in_slot = [
        op
        for op in device.flash.operations[first:]
        if slot.start <= op.offset < slot.start + slot.size
    ]
    assert [op for t in device.handlers.timeline for op in t.flash] == in_slot


def test_a_new_push_starts_a_new_timeline():
    device = Device.provisioned()
    device.push(package("2.0", size=3000))
    device.firmware.execute(10, device.now)  # Cancel
    device.push(package("2.1", size=2000), block=1000)
    assert [t.offset for t in device.handlers.timeline] == [0, 1000, 2000]


# -- push: what the handlers refuse --------------------------------------------------------------


def test_a_package_for_another_device_type_is_refused_at_its_header_before_the_image_arrives():
    device, data = Device.provisioned(), package(device_type="other-board")
    codes = device.push(data, block=256)
    assert codes == [Code.INTERNAL_SERVER_ERROR]  # the first block: the header
    assert device.state() == (State.IDLE, R.UNSUPPORTED_PACKAGE_TYPE)
    assert device.handlers.timeline == []  # nothing written to flash


def test_a_package_bigger_than_the_staging_slot_is_refused_with_not_enough_flash():
    device = Device.provisioned()
    too_big = device.bootloader.staging_slot.size  # image alone fills the slot
    codes = device.push(package(size=too_big), block=1024)
    assert codes == [Code.REQUEST_ENTITY_TOO_LARGE]
    assert device.state() == (State.IDLE, R.NOT_ENOUGH_FLASH)


def test_a_corrupted_image_fails_with_integrity_failure_at_the_last_block():
    device, data = Device.provisioned(), bytearray(package(size=5000))
    data[3000] ^= 0x10
    codes = device.push(bytes(data), block=1024)
    assert codes == [Code.CONTINUE] * 4 + [Code.INTERNAL_SERVER_ERROR]
    assert device.state() == (State.IDLE, R.INTEGRITY_FAILURE)


def test_a_signed_device_refuses_an_unsigned_push_as_an_integrity_failure():
    vendor = Ed25519PrivateKey.from_private_bytes(bytes(32))
    device = Device.provisioned(signing_key=vendor, verify_key=vendor.public_key())
    assert device.push(package(), block=512) == [Code.INTERNAL_SERVER_ERROR]
    assert device.state() == (State.IDLE, R.INTEGRITY_FAILURE)


def test_a_push_after_a_failed_one_succeeds():
    device = Device.provisioned()
    device.push(package(device_type="other-board"))
    data = package()
    assert device.push(data)[-1] is Code.CHANGED
    assert device.staging(len(data)) == data


# -- the staged package --------------------------------------------------------------------------


def test_pkg_name_and_version_come_from_the_staged_header_in_downloaded():
    device = Device.provisioned()
    device.push(package("2.0.7"))
    assert (device.firmware.read(6).value, device.firmware.read(7).value) == ("app", "2.0.7")


def test_pkg_name_and_version_are_empty_after_a_cancel():
    device = Device.provisioned()
    device.push(package("2.0.7"))
    device.firmware.execute(10, device.now)
    assert (device.firmware.read(6).value, device.firmware.read(7).value) == ("", "")


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=40))
def test_unaligned_chunks_on_a_word_written_flash_store_the_exact_bytes(sizes):
    device, data = Device.provisioned(), package(size=3001)
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        chunk, index = data[offset : offset + size], index + 1
        last = offset + size >= len(data)
        assert device.firmware.write_package(chunk, offset=offset, last=last, now=0).ok
        offset += len(chunk)
    assert device.state() == (State.DOWNLOADED, R.INITIAL)
    assert device.staging(len(data)) == data


# -- pull ----------------------------------------------------------------------------------------


def test_a_package_uri_starts_the_downloader_and_opens_the_staging_slot():
    device, downloader = pull_device({URI: package()})
    assert device.firmware.write_package_uri(URI, device.now).code is Code.CHANGED
    assert downloader.started == [URI]
    assert device.state() == (State.DOWNLOADING, R.INITIAL)
    assert device.bootloader.read_record().package_uri == URI


def test_a_pull_stages_the_package_and_ends_downloaded():
    data = package()
    device, downloader = pull_device({URI: data})
    device.firmware.write_package_uri(URI, device.now)
    downloader.run(device)
    assert device.state() == (State.DOWNLOADED, R.INITIAL)
    assert device.staging(len(data)) == data
    assert device.firmware.read(7).value == "2.0"


def test_a_pulled_package_that_fails_its_check_ends_idle_with_the_handlers_result():
    device, downloader = pull_device({URI: package(device_type="other-board")})
    device.firmware.write_package_uri(URI, device.now)
    downloader.run(device)
    assert device.state() == (State.IDLE, R.UNSUPPORTED_PACKAGE_TYPE)
    assert device.bootloader.read_record().package_uri == ""


def test_without_a_downloader_a_package_uri_is_an_unsupported_protocol():
    device = Device.provisioned()
    firmware = FirmwareObject(device.handlers, protocols=[Protocol.COAP])
    device.handlers.attach(firmware)
    firmware.write_package_uri(URI, device.now)
    assert (firmware.state, firmware.result) == (State.IDLE, R.UNSUPPORTED_PROTOCOL)


# -- the FOTA record -----------------------------------------------------------------------------


def test_every_state_and_result_change_is_in_the_fota_record():
    device = Device.provisioned()
    persisted = []

    def check(step):  # runs after the handlers' own observer
        record = Bootloader(device.flash, device_type=DEVICE).read_record()
        persisted.append((record.state, record.result) == (step.state, step.result))

    device.firmware.observers.append(check)
    device.push(package("2.0"))
    device.firmware.execute(10, device.now)  # Cancel: IDLE/10
    device.push(package(device_type="other-board"))  # IDLE/6
    device.push(package("2.1"))
    device.firmware.execute(2, device.now)  # UPDATING
    assert len(persisted) == 8
    assert all(persisted)


def test_a_downloaded_record_names_the_staged_package():
    device, data = Device.provisioned(), package("2.0")
    device.push(data)
    staged = device.bootloader.read_record().staged
    info = Package.parse(data).info
    assert (staged.name, staged.version, staged.size, staged.sha256) == (
        "app", "2.0", len(data), info.sha256,
    )  # fmt: skip


def test_a_new_download_records_that_nothing_of_it_is_on_flash_yet():
    device = Device.provisioned()
    device.push(package("2.0"))
    device.firmware.execute(10, device.now)  # Cancel
    device.firmware.write_package(package("2.1")[:512], offset=0, last=False, now=device.now)
    record = device.bootloader.read_record()
    assert (record.state, record.download_offset) == (State.DOWNLOADING, 0)


def test_execute_update_requests_a_reboot_and_records_updating():
    device = Device.provisioned()
    device.push(package("2.0"))
    assert device.firmware.execute(2, device.now).code is Code.CHANGED
    assert device.handlers.reboot_requested
    assert device.bootloader.read_record().state is State.UPDATING


def test_the_boot_after_execute_update_installs_the_new_image_and_reports_idle_1():
    device = Device.provisioned()
    device.push(package("2.0"))
    device.firmware.execute(2, device.now)
    after = device.reboot()
    assert after.report.image.version == "2.0"
    assert after.state() == (State.IDLE, R.SUCCESS)
    assert (after.firmware.read(3).value, after.firmware.read(5).value) == (0, 1)


def test_downloaded_survives_a_reboot_and_can_still_be_installed():
    device = Device.provisioned()
    device.push(package("2.0"))
    after = device.reboot()
    assert after.state() == (State.DOWNLOADED, R.INITIAL)
    assert after.firmware.read(6).value == "app"
    assert after.firmware.execute(2, after.now).code is Code.CHANGED
    assert after.reboot().report.image.version == "2.0"


def test_handlers_made_before_the_boot_take_the_staged_package_from_the_record_on_attach():
    device = Device.provisioned()
    device.push(package("2.0"))
    bootloader = Bootloader(device.flash, device_type=DEVICE)
    handlers = FlashFirmwareHandlers(bootloader)  # before boot(): the record is not read yet
    bootloader.boot()
    firmware = FirmwareObject(handlers, protocols=[])
    handlers.attach(firmware)
    assert (firmware.state, firmware.read(7).value) == (State.DOWNLOADED, "2.0")


def test_an_interrupted_push_is_connection_lost_after_the_reboot():
    device, data = Device.provisioned(), package()
    for offset in range(0, 4096, 1024):  # the server never sends the last block
        chunk = data[offset : offset + 1024]
        device.firmware.write_package(chunk, offset=offset, last=False, now=device.now)
    after = device.reboot()
    assert after.state() == (State.IDLE, R.CONNECTION_LOST)
    assert after.report.image.version == "1.0"
