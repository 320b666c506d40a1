"""Whole firmware updates between our server and an emulated device over real UDP (and HTTP).

Each cycle ends as the specification says it must: the device reboots into the new firmware,
registers again, and reports State 0 (Idle) with Update Result 1 — and /3/0/3 shows the new
version. The pull failures come from real causes: a URI that names nothing, a scheme the
device has no downloader for, a host that stops answering.
"""

import asyncio
import contextlib
import itertools
import socket

import pytest

from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.fota import Protocol, State, UpdateResult
from lwm2m_edu.hosting import PackageHost
from lwm2m_edu.paths import Path
from lwm2m_edu.server import Server

NEW = factory_package("2.0.0", size=24 * 1024)


@contextlib.asynccontextmanager
async def server_and_devices(*names, **device_options):
    server = await Server.start()
    devices = [EmulatedDevice(name, **device_options) for name in names]
    try:
        for device in devices:
            await device.start(server.uri)
        yield server, devices
    finally:
        for device in devices:
            await device.stop()
        await server.stop()


async def firmware_status(server, endpoint):
    return (
        State(await server.read(endpoint, "/5/0/3")),
        UpdateResult(await server.read(endpoint, "/5/0/5")),
    )


@pytest.mark.parametrize(("mode", "via"), [("push", "coap"), ("pull", "coap"), ("pull", "http")])
async def test_a_whole_update_ends_idle_with_result_1_on_the_new_firmware(mode, via):
    async with server_and_devices("dev-1") as (server, [device]):
        assert await server.read("dev-1", "/3/0/3") == "1.0.0"
        outcome = await server.update("dev-1", NEW, mode=mode, via=via, timeout=30)
        assert outcome.ok, str(outcome)
        assert outcome.reregistered
        assert await firmware_status(server, "dev-1") == (State.IDLE, UpdateResult.SUCCESS)
        assert await server.read("dev-1", "/3/0/3") == "2.0.0"
        assert device.running.version == "2.0.0"
        assert len(device.boots) == 2


async def test_a_push_streams_every_block_into_flash_as_it_arrives():
    async with server_and_devices("dev-1") as (server, [device]):
        await server.push_firmware("dev-1", NEW, block_size=256)
        await server.wait_for("dev-1", state=State.DOWNLOADED, timeout=10)
        timeline = device.timeline
        assert len(timeline) == -(-len(bytes(NEW)) // 256)
        assert [chunk.length for chunk in timeline[:-1]] == [256] * (len(timeline) - 1)
        assert all(a.done_at <= b.received_at for a, b in itertools.pairwise(timeline))


async def test_the_device_keeps_answering_while_it_downloads():
    async with server_and_devices("dev-1") as (server, [device]):
        big = factory_package("2.0.0", size=200 * 1024)
        await server.pull_firmware("dev-1", big, via="coap")
        answers = []
        while device.firmware.state is State.DOWNLOADING:
            answers.append(await server.read("dev-1", "/3/0/0"))
        assert answers and set(answers) == {"lwm2m_edu"}
        assert device.firmware.state is State.DOWNLOADED


async def test_a_package_uri_that_names_nothing_fails_with_result_7():
    async with server_and_devices("dev-1") as (server, [device]):
        async with await PackageHost.start() as host:
            hosted = host.add("real.bin", bytes(NEW))
            missing = hosted.coap_uri.replace("real.bin", "missing.bin")
            await server.write("dev-1", "/5/0/1", missing)
            status = await server.wait_for(
                "dev-1", state=State.IDLE, result=UpdateResult.INVALID_URI, timeout=10
            )
        assert status.result is UpdateResult.INVALID_URI
        assert device.firmware.read(1).value == ""


async def test_a_scheme_without_a_downloader_fails_with_result_9():
    async with server_and_devices("dev-1") as (server, _):
        with pytest.raises(Exception) as refusal:
            await server.write("dev-1", "/5/0/1", "https://127.0.0.1:1/fw.bin")
        assert getattr(refusal.value, "code", None) is not None
        assert await firmware_status(server, "dev-1") == (
            State.IDLE, UpdateResult.UNSUPPORTED_PROTOCOL,
        )  # fmt: skip


def a_port_with_nothing_behind_it() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_host_that_stops_answering_fails_with_result_4_after_the_retries():
    async with server_and_devices("dev-1") as (server, [device]):
        async with await PackageHost.start(http=False) as host:
            hosted = host.add("fw.bin", bytes(NEW))
            host.drop_next(10_000)  # the host goes silent: every request is lost
            device.download_options = {"retries": 1, "retry_delay": 0.01, "timeout": 0.3}
            await server.write("dev-1", "/5/0/1", hosted.coap_uri)
            status = await server.wait_for(
                "dev-1", state=State.IDLE, result=UpdateResult.CONNECTION_LOST, timeout=15
            )
        assert status.result is UpdateResult.CONNECTION_LOST


async def test_one_failing_device_does_not_stop_the_server_serving_the_others():
    async with server_and_devices("good-1", "bad", "good-2") as (server, devices):
        bad = devices[1]
        bad.bootloader.device_type = "another-device"  # every package is foreign to it

        report = await server.campaign(["good-1", "bad", "good-2"], NEW, mode="push")
        assert report.succeeded == ["good-1", "good-2"]
        assert report.failed == ["bad"]
        assert await firmware_status(server, "bad") == (
            State.IDLE, UpdateResult.UNSUPPORTED_PACKAGE_TYPE,
        )  # fmt: skip
        assert await server.read("good-2", "/3/0/3") == "2.0.0"


async def test_a_pull_only_device_refuses_a_push_and_says_so():
    async with server_and_devices("dev-1", push=False, protocols=[Protocol.COAP]) as (server, _):
        assert await server.read("dev-1", "/5/0/9") == 0  # pull only
        outcome = await server.update("dev-1", NEW, mode="push", timeout=10)
        assert not outcome.ok
        assert "4.05" in (outcome.error or "")


async def test_reboots_are_real_the_device_goes_silent_and_registers_anew():
    async with server_and_devices("dev-1") as (server, [device]):
        first = server.registration("dev-1").location
        next_registration = asyncio.ensure_future(
            server.wait_for_registration("dev-1", new=True, timeout=10)
        )
        await server.execute("dev-1", "/3/0/4")
        second = (await next_registration).location
        assert second != first
        assert len(device.boots) == 2


async def test_a_factory_fresh_device_bootstraps_then_registers_with_the_server_it_was_given():
    from lwm2m_edu.bootstrap import BootstrapPlan

    server = await Server.start(bootstrap={"fresh": BootstrapPlan(lifetime=120)})
    device = EmulatedDevice("fresh")
    try:
        await device.start(bootstrap_uri=server.uri)
        registration = server.registration("fresh")
        assert registration.lifetime == 120
        assert await server.read("fresh", "/1/0/1") == 120
        outcome = await server.update("fresh", NEW, mode="push", timeout=30)
        assert outcome.ok, str(outcome)  # the provisioned account survives the reboot
    finally:
        await device.stop()
        await server.stop()


async def test_after_an_update_the_device_sends_its_state_and_result_at_once():
    async with server_and_devices("dev-1") as (server, _):
        received = asyncio.get_running_loop().create_future()
        server.send_listeners.append(lambda sent: received.done() or received.set_result(sent))
        outcome = await server.update("dev-1", NEW, mode="push", timeout=30)
        assert outcome.ok
        sent = await asyncio.wait_for(received, 10)
        assert sent.endpoint == "dev-1"
        values = sent.values
        assert values[Path("/5/0/3")] == State.IDLE
        assert values[Path("/5/0/5")] == UpdateResult.SUCCESS
        assert values[Path("/3/0/3")] == "2.0.0"


async def test_a_sleeping_queue_mode_device_gets_the_servers_request_after_its_next_update():
    # The server counts on a shorter awake window than the device keeps: it must never send to
    # a device that may already be asleep.
    server = await Server.start(awake_time=0.1)
    device = EmulatedDevice("sleepy", queue_mode=True, awake_time=0.3)
    try:
        await device.start(server.uri)
        assert server.registration("sleepy").queue_mode
        asleep = asyncio.Event()
        device.client.log = lambda line: asleep.set() if "asleep" in line else None
        await asyncio.wait_for(asleep.wait(), 5)
        read = asyncio.ensure_future(server.read("sleepy", "/3/0/0"))
        while not server.registry.held("sleepy"):  # the server holds it: the device sleeps
            await asyncio.sleep(0)
        assert not read.done()
        await device.client.update()  # the device wakes up and talks to the server
        assert await asyncio.wait_for(read, 5) == "lwm2m_edu"
    finally:
        await device.stop()
        await server.stop()
