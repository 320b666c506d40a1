"""Every Update Result (/5/0/5, 0-11), reached for a realistic reason on an emulated device.

Each scenario drives Object /5 (``FirmwareObject``) on the reference handlers
(``FlashFirmwareHandlers``) and a ``Bootloader`` on an ``EmulatedFlash``, the way a server and
the device would, and ends in the State the object definition documents for that result. The
result is checked twice: as the object reports it, and as the FOTA record keeps it on flash.
"""

import random
import sys

from lwm2m_edu.bootloader import Bootloader
from lwm2m_edu.flash import EmulatedFlash
from lwm2m_edu.flash_handlers import FlashFirmwareHandlers
from lwm2m_edu.fota import Protocol, Severity, State, UpdateResult
from lwm2m_edu.objects import Code
from lwm2m_edu.objects.firmware import FirmwareObject
from lwm2m_edu.package import Package

R = UpdateResult
DEVICE = "nrf52840-dk"
URI = "coap://fw.example/app-2.0.bin"


def package(version: str = "2.0", *, size: int = 8000, device_type: str = DEVICE) -> bytes:
    image = random.Random(version).randbytes(size)
    return bytes(Package.build(image, name="app", version=version, device_type=device_type))


class SmallRamHandlers(FlashFirmwareHandlers):
    """A device with ``ram_budget`` bytes for its receive buffer: every block is copied there
    before it is written to flash, so a block larger than the buffer can't be received."""

    def __init__(self, bootloader: Bootloader, *, ram_budget: int, **options) -> None:
        super().__init__(bootloader, **options)
        self.ram_budget = ram_budget

    def write_chunk(self, chunk: bytes) -> UpdateResult:
        if len(chunk) > self.ram_budget:
            return R.OUT_OF_RAM
        return super().write_chunk(chunk)


class UserDefersHandlers(FlashFirmwareHandlers):
    """A device with a user who answers "later" whenever an update may be deferred."""

    def defer_update(self, severity: Severity) -> bool:
        self.asked = severity
        return True


class Device:
    """An nRF52840 booted from ``flash``: bootloader, handlers and Object /5."""

    def __init__(
        self, flash: EmulatedFlash, *, handlers=FlashFirmwareHandlers, self_test=None, **options
    ) -> None:
        self.flash = flash
        self.bootloader = Bootloader(flash, device_type=DEVICE, self_test=self_test)
        self.report = self.bootloader.boot()
        self.downloads: list[str] = []
        self.handlers = handlers(self.bootloader, start_download=self._start_download, **options)
        self.firmware = FirmwareObject(self.handlers, protocols=[Protocol.COAP])
        self.handlers.attach(self.firmware)

    @classmethod
    def from_factory(cls, **options) -> "Device":
        flash = EmulatedFlash("nrf52840-internal")
        Bootloader(flash, device_type=DEVICE).provision(Package.parse(package("1.0")))
        return cls(flash, **options)

    def _start_download(self, uri: str) -> UpdateResult:
        self.downloads.append(uri)  # the download itself goes on in the background
        return R.SUCCESS

    def reboot(self, **options) -> "Device":
        """Power up again on the same flash (after Execute Update, or a reset of any kind)."""
        return Device(self.flash, **options)

    @property
    def now(self) -> float:
        return self.flash.clock.now

    def push(self, data: bytes, block: int = 1024, *, blocks: int | None = None) -> Code:
        """Write /5/0/0 block by block (only the first ``blocks`` of them, if given); return the
        last answer."""
        offsets = list(range(0, len(data), block))[:blocks]
        for offset in offsets:
            last = offset + block >= len(data)
            chunk = data[offset : offset + block]
            outcome = self.firmware.write_package(chunk, offset=offset, last=last, now=self.now)
            if not outcome.ok:
                break
        return outcome.code

    def ends_in(self, state: State, result: UpdateResult) -> bool:
        """The object reports ``state`` and ``result``, and the FOTA record on flash agrees."""
        record = Bootloader(self.flash, device_type=DEVICE).read_record()
        reported = (self.firmware.read(3).value, self.firmware.read(5).value)
        return reported == (state, result) and (record.state, record.result) == (state, result)


# -- 0 ---------------------------------------------------------------------------------------------


def test_result_0_initial_on_a_device_fresh_from_the_factory():
    device = Device.from_factory()
    assert device.ends_in(State.IDLE, R.INITIAL)


def test_result_0_initial_after_the_server_resets_a_downloaded_package():
    device = Device.from_factory()
    device.push(package())
    assert device.firmware.write(0, b"\0", device.now).code is Code.CHANGED
    assert device.ends_in(State.IDLE, R.INITIAL)
    assert device.reboot().ends_in(State.IDLE, R.INITIAL)


# -- 1 ---------------------------------------------------------------------------------------------


def test_result_1_success_after_a_pushed_update_and_the_reboot():
    device = Device.from_factory()
    device.push(package("2.0"))
    device.firmware.execute(2, device.now)
    assert device.handlers.reboot_requested
    after = device.reboot()
    assert after.report.image.version == "2.0"
    assert after.ends_in(State.IDLE, R.SUCCESS)


# -- 2 ---------------------------------------------------------------------------------------------


def test_result_2_not_enough_flash_for_a_package_bigger_than_the_staging_slot():
    device = Device.from_factory()
    slot = device.bootloader.staging_slot.size
    assert device.push(package(size=slot)) is Code.REQUEST_ENTITY_TOO_LARGE
    assert device.ends_in(State.IDLE, R.NOT_ENOUGH_FLASH)


# -- 3 ---------------------------------------------------------------------------------------------


def test_result_3_out_of_ram_for_blocks_larger_than_the_receive_buffer():
    device = Device.from_factory(handlers=SmallRamHandlers, ram_budget=512)
    assert device.push(package(), block=1024) is Code.INTERNAL_SERVER_ERROR
    assert device.ends_in(State.IDLE, R.OUT_OF_RAM)


# -- 4 ---------------------------------------------------------------------------------------------


def test_result_4_connection_lost_when_the_server_abandons_a_push():
    device = Device.from_factory()
    device.push(package(), blocks=3)
    device.firmware.expire(device.now + device.firmware.push_timeout)
    assert device.ends_in(State.IDLE, R.CONNECTION_LOST)


def test_result_4_connection_lost_when_a_pull_loses_its_connection():
    device = Device.from_factory()
    device.firmware.write_package_uri(URI, device.now)
    data = package()
    device.handlers.write_chunk(data[:2048])  # then the link drops
    device.firmware.download_failed(R.CONNECTION_LOST, device.now)
    assert device.ends_in(State.IDLE, R.CONNECTION_LOST)


def test_result_4_connection_lost_when_a_reboot_interrupts_the_download():
    device = Device.from_factory()
    device.push(package(), blocks=3)
    assert device.reboot().ends_in(State.IDLE, R.CONNECTION_LOST)


# -- 5 ---------------------------------------------------------------------------------------------


def test_result_5_integrity_failure_for_a_tampered_image():
    device = Device.from_factory()
    tampered = bytearray(package())
    tampered[-500:-496] = b"\xde\xad\xbe\xef"
    assert device.push(bytes(tampered)) is Code.INTERNAL_SERVER_ERROR
    assert device.ends_in(State.IDLE, R.INTEGRITY_FAILURE)


# -- 6 ---------------------------------------------------------------------------------------------


def test_result_6_unsupported_package_type_for_a_package_built_for_another_device():
    device = Device.from_factory()
    assert device.push(package(device_type="esp32-devkit")) is Code.INTERNAL_SERVER_ERROR
    assert device.ends_in(State.IDLE, R.UNSUPPORTED_PACKAGE_TYPE)


# -- 7 ---------------------------------------------------------------------------------------------


def test_result_7_invalid_uri_for_a_malformed_package_uri():
    device = Device.from_factory()
    outcome = device.firmware.write_package_uri("fw.example/app-2.0.bin", device.now)
    assert outcome.code is Code.BAD_REQUEST
    assert device.downloads == []
    assert device.ends_in(State.IDLE, R.INVALID_URI)


# -- 8 ---------------------------------------------------------------------------------------------


def test_result_8_update_failed_when_the_new_image_fails_its_self_test():
    device = Device.from_factory()
    device.push(package("2.0"))
    device.firmware.execute(2, device.now)
    after = device.reboot(self_test=lambda image: image.version != "2.0")
    assert after.report.image.version == "1.0"
    assert after.ends_in(State.DOWNLOADED, R.UPDATE_FAILED)


# -- 9 ---------------------------------------------------------------------------------------------


def test_result_9_unsupported_protocol_for_an_https_uri_on_a_coap_only_device():
    device = Device.from_factory()
    outcome = device.firmware.write_package_uri("https://fw.example/app-2.0.bin", device.now)
    assert outcome.code is Code.BAD_REQUEST
    assert device.downloads == []
    assert device.ends_in(State.IDLE, R.UNSUPPORTED_PROTOCOL)


# -- 10 --------------------------------------------------------------------------------------------


def test_result_10_cancelled_when_the_server_cancels_a_download():
    device = Device.from_factory()
    device.push(package(), blocks=4)
    assert device.firmware.execute(10, device.now).code is Code.CHANGED
    assert device.ends_in(State.IDLE, R.CANCELLED)


# -- 11 --------------------------------------------------------------------------------------------


def test_result_11_deferred_when_the_user_postpones_the_update():
    device = Device.from_factory(handlers=UserDefersHandlers)
    device.firmware.write(13, 3600, device.now)  # Maximum Defer Period: one hour
    device.push(package())
    assert device.firmware.execute(2, device.now).code is Code.CHANGED
    assert device.handlers.asked is Severity.MANDATORY
    assert not device.handlers.reboot_requested
    assert device.ends_in(State.DOWNLOADED, R.DEFERRED)


# --------------------------------------------------------------------------------------------------


def test_every_update_result_has_a_scenario():
    names = [name for name in vars(sys.modules[__name__]) if name.startswith("test_result_")]
    covered = {int(name.split("_")[2]) for name in names}
    assert covered == {int(result) for result in UpdateResult}
