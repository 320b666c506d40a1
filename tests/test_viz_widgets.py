"""The notebook panels, driven as a participant would: click, then look at the widgets.

A real loopback ``Server`` and an ``EmulatedDevice``; a click is ``button.click()``, and instead
of sleeping the tests await the task the click started (``panel.wait_idle()``).
"""

import asyncio
import contextlib

from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.fota import Protocol, State
from lwm2m_edu.server import Server
from lwm2m_edu.viz.widgets import DevicePanel, ServerPanel

NEW = factory_package("2.0.0", size=4096)
SIZE = len(bytes(NEW))


@contextlib.asynccontextmanager
async def panel_on_device(device_options=None, **options):
    server = await Server.start()
    device = EmulatedDevice("dev-1", **(device_options or {}))
    panel = None
    try:
        await device.start(server.uri)
        panel = DevicePanel(server, device, NEW, **options)
        yield server, device, panel
    finally:
        if panel is not None:
            await panel.aclose()
        await device.stop()
        await server.stop()


async def click(panel, button):
    button.click()
    await panel.wait_idle(timeout=15)


async def test_the_panel_shows_the_device_as_it_is():
    async with panel_on_device() as (_, _, panel):
        assert panel.state_label.value == "0 IDLE"
        assert panel.result_label.value == "0 INITIAL"
        assert panel.version_label.value == "app 1.0.0"
        assert panel.staged_label.value == "none"
        assert panel.registration_label.value.startswith("/rd/")
        assert panel.progress.value == 0
        assert not panel.busy


async def test_push_then_update_ends_idle_with_result_1_on_the_new_firmware():
    async with panel_on_device() as (_, device, panel):
        await click(panel, panel.push_button)
        assert panel.errors == []
        assert panel.state_label.value == "2 DOWNLOADED"
        assert panel.result_label.value == "0 INITIAL"
        assert panel.progress.value == panel.progress.max == SIZE
        assert f"{SIZE} of {SIZE} bytes" in panel.progress_label.value
        assert panel.staged_label.value.startswith("app 2.0.0")

        await click(panel, panel.update_button)
        assert panel.errors == [], panel.messages
        assert device.running.version == "2.0.0"
        assert panel.state_label.value == "0 IDLE"
        assert panel.result_label.value == "1 SUCCESS"
        assert panel.version_label.value == "app 2.0.0"
        assert any("registered at /rd/" in line and "boot 2" in line for line in panel.messages)
        # The panel follows the FirmwareObject the reboot built, not the old one.
        assert panel._on_step in device.firmware.observers


async def test_the_panel_follows_the_new_firmware_object_after_a_reboot():
    async with panel_on_device() as (_, device, panel):
        await click(panel, panel.reboot_button)
        assert panel.errors == [], panel.messages
        assert len(device.boots) == 2
        await click(panel, panel.push_button)  # steps of the new object reach the labels
        assert panel.state_label.value == "2 DOWNLOADED"


async def test_a_refused_operation_is_shown_in_the_log_and_raises_nothing():
    async with panel_on_device() as (_, device, panel):
        await click(panel, panel.update_button)  # Update while Idle
        assert len(panel.errors) == 1
        error = panel.errors[0]
        assert "4.05 Method Not Allowed" in error
        assert "not allowed in state IDLE" in error
        assert "4.05 Method Not Allowed" in panel.log_widget.value
        assert "color:#d32f2f" in panel.log_widget.value
        assert device.firmware.state is State.IDLE
        assert panel.state_label.value == "0 IDLE"


async def test_buttons_say_what_the_device_would_refuse_and_guard_disables_them():
    async with panel_on_device() as (_, _, panel):
        assert not panel.update_button.disabled
        assert "refuses this in IDLE (4.05)" in panel.update_button.tooltip
        assert "refuses" not in panel.push_button.tooltip
    async with panel_on_device(guard=True) as (_, _, panel):
        enabled = {b.description for b in panel.buttons if not b.disabled}
        assert enabled == {"Push", "Pull via CoAP", "Pull via HTTP", "Reset", "Reboot"}
        await click(panel, panel.push_button)
        enabled = {b.description for b in panel.buttons if not b.disabled}
        assert enabled == {"Update", "Cancel", "Reset", "Reboot"}


async def test_without_a_package_push_and_pull_are_disabled():
    server = await Server.start()
    device = EmulatedDevice("dev-1")
    try:
        await device.start(server.uri)
        panel = DevicePanel(server, device)
        assert panel.push_button.disabled and panel.pull_http_button.disabled
        assert "no package" in panel.push_button.tooltip
        await panel.aclose()
    finally:
        await device.stop()
        await server.stop()


async def test_pull_via_coap_shows_the_bytes_the_device_received():
    async with panel_on_device() as (_, _, panel):
        await click(panel, panel.pull_coap_button)
        assert panel.errors == [], panel.messages
        assert panel.state_label.value == "2 DOWNLOADED"
        assert panel.progress.value == panel.progress.max == SIZE
        assert "received by the device (pull via coap)" in panel.progress_label.value
        assert f"({SIZE} bytes in 5 blocks, 0 retries)" in panel.messages[-1]


async def test_a_refused_pull_is_shown_as_an_error_and_sets_update_result_9():
    async with panel_on_device({"protocols": [Protocol.COAP]}) as (_, _, panel):
        await click(panel, panel.pull_http_button)  # this device has no HTTP downloader
        assert panel.result_label.value == "9 UNSUPPORTED_PROTOCOL"
        assert len(panel.errors) == 1
        assert "4.00 Bad Request" in panel.errors[0]
        assert "doesn't download http:// URIs" in panel.errors[0]


async def test_cancel_and_reset_go_back_to_idle():
    async with panel_on_device() as (_, _, panel):
        await click(panel, panel.push_button)
        await click(panel, panel.cancel_button)
        assert (panel.state_label.value, panel.result_label.value) == ("0 IDLE", "10 CANCELLED")
        await click(panel, panel.reset_button)
        assert (panel.state_label.value, panel.result_label.value) == ("0 IDLE", "0 INITIAL")
        assert panel.errors == []


async def test_close_cancels_the_running_task_and_unsubscribes():
    async with panel_on_device() as (server, device, panel):
        observers = len(device.firmware.observers)
        panel.pull_http_button.click()
        assert panel.busy
        tasks = set(panel._tasks)
        panel.close()
        await asyncio.wait_for(panel.wait_idle(), 5)
        assert not panel.busy
        assert all(task.done() for task in tasks)
        assert len(device.firmware.observers) == observers - 1
        assert panel._on_registration not in server.registry._listeners
        assert panel._on_boot not in device.on_boot
        panel.reboot_button.click()  # a closed panel starts nothing, and says so
        assert not panel.busy
        assert "closed" in panel.errors[-1]


async def test_the_server_panel_lists_a_device_while_it_is_registered():
    server = await Server.start()
    panel = ServerPanel(server)
    device = EmulatedDevice("dev-1")
    try:
        assert "no device registered" in panel.table.value
        await device.start(server.uri)
        assert "dev-1" in panel.table.value
        assert "300 s" in panel.table.value
        assert "not heard yet" in panel.table.value
        panel.refresh_button.click()
        await panel.wait_idle(timeout=10)
        assert "0 IDLE" in panel.table.value and "read at" in panel.table.value
        await device.stop()
        assert "dev-1" not in panel.table.value
        assert "no device registered" in panel.table.value
        assert panel.messages[-1] == "dev-1 deregistered"
    finally:
        await panel.aclose()
        await device.stop()
        await server.stop()


async def test_the_server_panel_learns_the_result_from_the_devices_send():
    async with panel_on_device() as (server, device, device_panel):
        panel = ServerPanel(server)
        try:
            await click(device_panel, device_panel.push_button)
            await click(device_panel, device_panel.update_button)
            # The device sends State and Result once it has registered again: wait for its boot.
            await asyncio.wait_for(device.rebooted.wait(), 10)
            assert "1 SUCCESS" in panel.table.value and "Send at" in panel.table.value
        finally:
            await panel.aclose()
        assert panel._on_send not in server.send_listeners


async def test_failing_refresh_reports_the_device_in_the_log():
    server = await Server.start()
    device = EmulatedDevice("dev-1")
    panel = ServerPanel(server)
    try:
        await device.start(server.uri)
        server.request_timeout = 0.2
        await device._shutdown(deregister=False)  # the power goes: registered but silent
        await panel.refresh()
        assert len(panel.errors) == 1 and panel.errors[0].startswith("dev-1: ")
        assert "?" in panel.table.value
    finally:
        await panel.aclose()
        await device.stop()
        await server.stop()


async def test_the_panels_display_as_their_widget():
    async with panel_on_device() as (server, _, device_panel):
        server_panel = ServerPanel(server)
        for panel in (device_panel, server_panel):
            bundle = panel._repr_mimebundle_()
            view = bundle["application/vnd.jupyter.widget-view+json"]
            assert view["model_id"] == panel.widget.model_id
        await server_panel.aclose()
