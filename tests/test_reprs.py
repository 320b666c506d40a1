"""Rich displays: each object a notebook shows as the last expression of a cell is a small table.

Each ``_repr_html_`` must carry the facts a participant looks for, and escape what it shows.
"""

import html
import re

from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.flash import FLASH_PROFILES, EmulatedFlash
from lwm2m_edu.fota import (
    DownloadSucceeded,
    FirmwareUpdateMachine,
    PackageWriteStarted,
    UpdateExecuted,
)
from lwm2m_edu.registry import Registry
from lwm2m_edu.server import Server


def text_of(markup: str) -> str:
    """The visible text: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def test_the_machine_shows_state_result_version_and_the_last_steps():
    machine = FirmwareUpdateMachine()
    assert "none yet" in text_of(machine._repr_html_())
    machine.handle(PackageWriteStarted(), 1.0)
    machine.handle(DownloadSucceeded(), 2.0)
    shown = text_of(machine._repr_html_())
    assert "2 DOWNLOADED" in shown
    assert "0 INITIAL" in shown
    assert "1.1" in shown
    assert "UpdateExecuted" in shown  # allowed now
    assert "DownloadSucceeded: DOWNLOADING -> DOWNLOADED" in shown
    assert "&gt;" in machine._repr_html_()  # the arrow is escaped, not raw markup


def test_the_machine_lists_only_the_last_five_steps_numbered_as_in_history():
    machine = FirmwareUpdateMachine()
    for _ in range(3):
        machine.handle(PackageWriteStarted(), 1.0)
        machine.handle(DownloadSucceeded(), 2.0)
        machine.handle(UpdateExecuted(), 3.0)
        machine.state = machine.state.IDLE  # as if the device had rebooted into it
    markup = machine._repr_html_()
    assert markup.count("<li>") == 5
    assert "<ol start='5'>" in markup


def test_a_registration_shows_endpoint_address_lifetime_binding_and_objects():
    registry = Registry()
    registration = registry.register(
        ["ep=dev-<1>", "lt=300", "lwm2m=1.1", "b=U", "Q"],
        b'</1/0>,</3/0>,</5>;ver="1.1",</5/0>',
        "127.0.0.1:5683",
        0.0,
        content_format=40,
    )
    markup = registration._repr_html_()
    shown = text_of(markup)
    assert "dev-<1>" in shown and "dev-&lt;1&gt;" in markup  # escaped
    assert "127.0.0.1:5683" in shown
    assert "300 s" in shown
    assert "U (UDP, queue mode)" in shown
    assert "/5 ver 1.1 instances 0" in shown
    assert f"/{registration.location}" in shown


def test_a_flash_profile_shows_geometry_and_timings_with_units():
    shown = text_of(FLASH_PROFILES["stm32f4-internal"]._repr_html_())
    assert "1 MiB (1048576 bytes)" in shown
    assert "4 x 16 KiB, 1 x 64 KiB, 7 x 128 KiB" in shown
    assert "16 KiB: 250 ms, 64 KiB: 550 ms, 128 KiB: 1 s" in shown
    assert "MiB/s" in shown
    shown = text_of(FLASH_PROFILES["nrf52840-internal"]._repr_html_())
    assert "256 x 4 KiB" in shown
    assert "85 ms per sector" in shown
    assert "per page (4 KiB)" in shown
    assert "4 bytes" in shown
    assert "1 byte" in text_of(FLASH_PROFILES["w25q64-spi-nor"]._repr_html_())


def test_an_emulated_flash_shows_its_clock_and_what_the_operations_cost():
    flash = EmulatedFlash("nrf52840-internal")
    assert "none yet" in text_of(flash._repr_html_())
    flash.erase_sector(0)
    flash.write(0, b"abcd")
    shown = text_of(flash._repr_html_())
    assert "nrf52840-internal" in shown and "KiB" in shown
    assert "1 erase (85 ms)" in shown
    assert "1 program" in shown
    assert "t = 0.085" in shown
    assert "on" in shown


async def test_a_server_and_a_device_show_their_registrations_and_firmware():
    server = await Server.start()
    device = EmulatedDevice("dev-1", firmware=factory_package("1.2.3", size=4096))
    try:
        assert "not booted" in text_of(device._repr_html_())
        assert "no device registered yet" in text_of(server._repr_html_())
        await device.start(server.uri)
        shown = text_of(server._repr_html_())
        assert "dev-1" in shown and "300 s" in shown and "/1 /3 /5" in shown
        assert server.registration("dev-1").address.hostinfo in shown
        assert "1 registered" in shown
        shown = text_of(device._repr_html_())
        assert "dev-1" in shown
        assert "app 1.2.3" in shown
        assert "0 IDLE" in shown and "0 INITIAL" in shown
        assert "nrf52840-internal" in shown and "KiB" in shown
        await server.push_firmware("dev-1", factory_package("2.0.0", size=4096))
        shown = text_of(device._repr_html_())
        assert "2 DOWNLOADED" in shown and "app 2.0.0" in shown
        assert "2 DOWNLOADED" in text_of(device.firmware.machine._repr_html_())
    finally:
        await device.stop()
        await server.stop()
