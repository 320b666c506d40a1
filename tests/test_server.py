"""The LwM2M server against a stand-in device (tests/peer.py), over real UDP on 127.0.0.1.

Every test starts its own server and peers on free ports and shuts them down; async tests run
through tests/conftest.py (a fresh event loop each, a deadline, no task left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiocoap import GET, Message
from aiocoap.numbers.codes import Code as CoapCode

from lwm2m_edu.bootstrap import BootstrapPlan, BootstrapServer
from lwm2m_edu.coap import open_context
from lwm2m_edu.codecs import ContentFormat
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.objects.outcome import Code
from lwm2m_edu.paths import Path
from lwm2m_edu.registry import EventKind
from lwm2m_edu.server import (
    DeviceUnreachable,
    FirmwareStatus,
    LwM2MError,
    Server,
    UnknownEndpoint,
)

from .peer import Peer

PACKAGE = bytes(range(256)) * 11  # 2816 bytes: not a whole number of blocks


@contextlib.asynccontextmanager
async def running(**server_options: Any) -> AsyncIterator[tuple[Server, list[Peer]]]:
    """A server, and a list that the test appends its peers to; all are stopped at the end."""
    server = await Server.start(**{"request_timeout": 3.0, **server_options})
    peers: list[Peer] = []
    try:
        yield server, peers
    finally:
        for peer in peers:
            await peer.stop()
        await server.stop()


@contextlib.asynccontextmanager
async def with_peer(endpoint: str = "dev-1", **options: Any) -> AsyncIterator[tuple[Server, Peer]]:
    async with running() as (server, peers):
        peer = await Peer.start(endpoint, server.uri, **options)
        peers.append(peer)
        yield server, peer


# -- the registration interface over UDP ----------------------------------------------------------


async def test_server_binds_loopback_on_a_free_port_and_reports_its_uri():
    async with running() as (server, _):
        assert server.port > 0
        assert server.uri == f"coap://127.0.0.1:{server.port}"


async def test_a_busy_fixed_port_is_refused_instead_of_shared_silently():
    async with running() as (server, _):
        with pytest.raises(OSError, match="in use"):
            await Server.start(port=server.port)


async def test_register_is_answered_2_01_with_a_location():
    async with running() as (server, peers):
        peer = Peer("dev-1")
        peers.append(peer)
        await peer.open()
        response = await peer.register(server.uri)
        assert response.code == CoapCode.CREATED
        registration = server.registration("dev-1")
        assert "/".join(response.opt.location_path) == registration.location
        assert registration.address.sockaddr[1] == peer.port


async def test_malformed_register_is_answered_4_00_with_the_reason():
    async with running() as (server, peers):
        peer = Peer("dev-1")
        peers.append(peer)
        await peer.open()
        response = await peer.send(
            CoapCode.POST, server.uri + "/rd", query=["lt=60"], payload=b"</3/0>",
            content_format=ContentFormat.LINK_FORMAT,
        )  # fmt: skip
        assert response.code == CoapCode.BAD_REQUEST
        assert b"ep=<name>" in response.payload
        assert server.endpoints == []


async def test_update_is_answered_2_04_and_deregister_2_02():
    async with with_peer() as (server, peer):
        assert (await peer.update(["lt=600"])).code == CoapCode.CHANGED
        assert server.registration("dev-1").lifetime == 600
        assert (await peer.deregister()).code == CoapCode.DELETED
        assert server.endpoints == []


async def test_update_of_an_unknown_location_is_answered_4_04():
    async with with_peer() as (_, peer):
        await peer.deregister()
        response = await peer.update()
        assert response.code == CoapCode.NOT_FOUND
        assert b"Register again" in response.payload


async def test_other_methods_and_paths_are_answered_4_05_and_4_04():
    async with with_peer() as (server, peer):
        assert (
            await peer.send(CoapCode.GET, server.uri + "/rd")
        ).code == CoapCode.METHOD_NOT_ALLOWED
        assert (await peer.send(CoapCode.GET, server.uri + "/x")).code == CoapCode.NOT_FOUND


async def test_wait_for_registration_returns_when_the_device_registers():
    async with running() as (server, peers):
        waiting = asyncio.ensure_future(server.wait_for_registration("late", timeout=5))
        peers.append(await Peer.start("late", server.uri))
        assert (await waiting).endpoint == "late"


async def test_register_again_replaces_the_registration_at_the_new_address():
    async with with_peer() as (server, peer):
        first = server.registration("dev-1")
        await peer.reboot()
        second = server.registration("dev-1")
        assert second.location != first.location
        assert second.address.sockaddr[1] == peer.port != first.address.sockaddr[1]
        assert await server.read("dev-1", "/3/0/9") == 95


async def test_a_registration_expires_after_its_lifetime():
    async with running(grace=0.0) as (server, peers):
        expired = asyncio.get_running_loop().create_future()
        server.add_listener(
            lambda e: e.kind is EventKind.EXPIRED and not expired.done() and expired.set_result(e)
        )
        peers.append(await Peer.start("brief", server.uri, lifetime=1))
        assert (await expired).registration.endpoint == "brief"
        assert server.endpoints == []


# -- device management ----------------------------------------------------------------------


async def test_read_of_a_single_resource_returns_its_value():
    async with with_peer() as (server, _):
        assert await server.read("dev-1", "/3/0/0") == "lwm2m_edu"
        assert await server.read("dev-1", Path("/5/0/3")) == State.IDLE


async def test_read_of_an_instance_returns_a_dict_in_senml_cbor_when_advertised():
    async with with_peer() as (server, _):
        assert server.preferred_format("dev-1") is ContentFormat.SENML_CBOR
        values = await server.read("dev-1", "/3/0")
        assert values[Path("/3/0/9")] == 95
        assert values[Path("/3/0/6/1")] == 5


async def test_read_falls_back_to_tlv_for_a_client_without_ct():
    async with with_peer(content_formats=()) as (server, _):
        assert server.preferred_format("dev-1") is ContentFormat.TLV
        assert await server.read("dev-1", "/3/0/6") == {Path("/3/0/6/0"): 1, Path("/3/0/6/1"): 5}


async def test_read_with_an_explicit_accept_format():
    async with with_peer() as (server, _):
        values = await server.read("dev-1", "/3/0", accept=ContentFormat.SENML_JSON)
        assert values[Path("/3/0/1")] == "peer"


async def test_discover_returns_the_links_under_the_path():
    async with with_peer() as (server, _):
        links = await server.discover("dev-1", "/3/0")
        assert [link.target for link in links][:2] == ["/3/0", "/3/0/0"]


async def test_write_replaces_a_single_value_as_text():
    async with with_peer() as (server, peer):
        await server.write("dev-1", "/1/0/1", 600)
        assert peer.values[Path("/1/0/1")] == 600


async def test_write_partial_update_changes_only_what_it_sends():
    async with with_peer() as (server, peer):
        await server.write("dev-1", "/1/0", {"/1/0/1": 120}, replace=False)
        assert peer.values[Path("/1/0/1")] == 120
        assert peer.values[Path("/1/0/7")] == "U"
        assert ("POST", "/1/0") in peer.requests


async def test_write_attributes_goes_in_the_uri_query():
    async with with_peer() as (server, peer):
        await server.write_attributes("dev-1", "/5/0/3", pmin=1, pmax=60, gt=2.5)
        assert peer.attributes[Path("/5/0/3")] == {"pmin": "1", "pmax": "60", "gt": "2.5"}


async def test_execute_sends_its_arguments():
    async with with_peer() as (server, peer):
        await server.execute("dev-1", "/1/0/8", "0='x'")
        assert peer.executed == [(Path("/1/0/8"), "0='x'")]


async def test_execute_update_in_idle_raises_lwm2m_error_4_05():
    async with with_peer() as (server, _):
        with pytest.raises(LwM2MError) as caught:
            await server.execute("dev-1", "/5/0/2")
        error = caught.value
        assert error.code == Code.METHOD_NOT_ALLOWED
        assert (error.endpoint, error.path) == ("dev-1", Path("/5/0/2"))
        assert "Downloaded" in error.diagnostic
        assert "4.05" in str(error)


async def test_read_of_a_missing_path_raises_lwm2m_error_4_04():
    async with with_peer() as (server, _):
        with pytest.raises(LwM2MError) as caught:
            await server.read("dev-1", "/3/0/20")
        assert caught.value.code == Code.NOT_FOUND


async def test_create_returns_the_new_instance_and_delete_removes_it():
    async with with_peer() as (server, peer):
        created = await server.create(
            "dev-1", "/1", {"/1/1/0": 2, "/1/1/1": 60, "/1/1/6": True, "/1/1/7": "U"}
        )
        assert created == Path("/1/1")
        assert peer.values[Path("/1/1/1")] == 60
        await server.delete("dev-1", created)
        assert Path("/1/1/0") not in peer.values


async def test_read_composite_and_write_composite_cover_several_paths():
    async with with_peer() as (server, peer):
        await server.write_composite("dev-1", {"/1/0/1": 90, "/3/0/1": "renamed"})
        assert await server.read_composite("dev-1", ["/1/0/1", "/3/0/1"]) == {
            Path("/1/0/1"): 90,
            Path("/3/0/1"): "renamed",
        }
        assert peer.requests[-1] == ("FETCH", "/")


async def test_unknown_endpoint_names_who_is_registered():
    async with with_peer() as (server, _):
        with pytest.raises(UnknownEndpoint, match="'dev-1'") as caught:
            await server.read("dev-2", "/3/0/0")
        assert caught.value.registered == ("dev-1",)


async def test_a_silent_device_raises_device_unreachable():
    async with running(request_timeout=0.3) as (server, _):
        peer = await Peer.start("gone", server.uri)
        await peer.stop()
        with pytest.raises(DeviceUnreachable):
            await server.read("gone", "/3/0/9")


async def test_observe_yields_each_notification_decoded():
    async with with_peer() as (server, peer):
        observation = await server.observe("dev-1", "/5/0/3")
        assert observation.value == State.IDLE and observation.accepted
        peer.set("/5/0/3", State.DOWNLOADING)
        assert await anext(observation) == State.DOWNLOADING
        await observation.cancel()


async def test_cancel_is_passive_the_next_notification_is_reset():
    async with with_peer() as (server, peer):
        observation = await server.observe("dev-1", "/5/0/5")
        assert peer.observers("/5/0/5") == 1
        await observation.cancel()
        assert peer.observers("/5/0/5") == 1  # nothing was sent: the device still observes
        peer.set("/5/0/5", UpdateResult.SUCCESS)  # acknowledged; aiocoap lets go of the token
        await server.read("dev-1", "/3/0/9")  # a round trip: that notification has arrived
        peer.set("/5/0/5", UpdateResult.INITIAL)  # answered with RST: the device stops
        await peer.wait_observers("/5/0/5", 0)


# -- queue mode -------------------------------------------------------------------------------


async def held(server: Server, endpoint: str, count: int) -> None:
    while len(server.registry.held(endpoint)) < count:
        await asyncio.sleep(0)  # a yield to the loop, not a wait for time


async def test_queue_mode_requests_wait_for_the_next_update():
    async with running(awake_time=0.0) as (server, peers):
        peer = await Peer.start("sleepy", server.uri, queue=True)
        peers.append(peer)
        assert server.registration("sleepy").queue_mode
        reading = asyncio.ensure_future(server.read("sleepy", "/3/0/9"))
        await held(server, "sleepy", 1)
        assert not reading.done() and ("GET", "/3/0/9") not in peer.requests
        await peer.update()
        assert await reading == 95


async def test_queue_mode_request_gives_up_with_a_clear_error():
    async with running(awake_time=0.0, queue_timeout=0.2) as (server, peers):
        peers.append(await Peer.start("sleepy", server.uri, queue=True, lwm2m="1.0"))
        with pytest.raises(DeviceUnreachable, match="queue mode"):
            await server.read("sleepy", "/3/0/9")
        assert server.registry.held("sleepy") == ()


# -- firmware update ----------------------------------------------------------------------------


async def test_push_firmware_streams_blocks_in_order_and_reports_progress():
    async with with_peer() as (server, peer):
        progress: list[tuple[int, int]] = []
        blocks = await server.push_firmware(
            "dev-1", PACKAGE, block_size=256, progress=lambda s, t: progress.append((s, t))
        )
        assert blocks == 11
        assert [b[0] for b in peer.blocks] == list(range(11))
        assert {b[2] for b in peer.blocks} == {4}  # SZX 4 = 256 bytes
        assert bytes(peer.package) == PACKAGE
        assert progress[0] == (256, len(PACKAGE)) and progress[-1] == (len(PACKAGE), len(PACKAGE))
        assert peer.values[Path("/5/0/3")] == State.DOWNLOADED


async def test_push_firmware_moves_to_smaller_blocks_when_the_device_answers_4_13():
    async with with_peer(max_block_size=128) as (server, peer):
        await server.push_firmware("dev-1", PACKAGE, block_size=1024)
        assert peer.blocks[0][2] == 6  # refused
        assert {b[2] for b in peer.blocks[1:]} == {3}  # then 128-byte blocks from the start
        assert bytes(peer.package) == PACKAGE


async def test_push_firmware_fails_clearly_when_the_package_does_not_fit():
    async with with_peer(max_package=1000) as (server, _):
        with pytest.raises(LwM2MError) as caught:
            await server.push_firmware("dev-1", PACKAGE)
        assert caught.value.code == Code.REQUEST_ENTITY_TOO_LARGE


async def test_push_firmware_rejects_a_block_size_rfc_7959_does_not_have():
    async with with_peer() as (server, _):
        with pytest.raises(ValueError, match="block_size"):
            await server.push_firmware("dev-1", PACKAGE, block_size=500)


async def test_wait_for_follows_the_observed_state():
    async with with_peer() as (server, peer):
        waiting = asyncio.ensure_future(server.wait_for("dev-1", state=State.DOWNLOADED))
        await peer.wait_observers("/5/0/3", 1)
        peer.set("/5/0/3", State.DOWNLOADING)
        peer.set("/5/0/3", State.DOWNLOADED)
        assert await waiting == FirmwareStatus(State.DOWNLOADED, UpdateResult.INITIAL)
        peer.set("/5/0/3", State.IDLE)  # wait_for cancelled passively: the device learns it
        await server.read("dev-1", "/3/0/9")
        peer.set("/5/0/3", State.DOWNLOADING)  # from the RST to a later notification
        await peer.wait_observers("/5/0/3", 0)


async def test_wait_for_reads_the_status_when_a_notification_is_missed():
    async with with_peer() as (server, peer):
        waiting = asyncio.ensure_future(
            server.wait_for("dev-1", state=State.DOWNLOADED, poll_interval=0.05)
        )
        await peer.wait_observers("/5/0/3", 1)
        peer.values[Path("/5/0/3")] = State.DOWNLOADED  # changed without notifying anyone
        assert (await waiting).state is State.DOWNLOADED
        assert peer.requests.count(("GET", "/5/0/3")) >= 2  # the Observe, then a plain read


async def test_wait_for_observes_again_after_the_device_re_registers():
    async with with_peer() as (server, peer):
        waiting = asyncio.ensure_future(
            server.wait_for("dev-1", state=State.IDLE, result=UpdateResult.SUCCESS)
        )
        await peer.wait_observers("/5/0/5", 1)
        reregistered = asyncio.ensure_future(server.wait_for_registration("dev-1", new=True))
        await peer.reboot()  # the old observations die with the old socket
        await reregistered
        await peer.wait_observers("/5/0/5", 1)  # observed again on the new registration
        peer.set("/5/0/5", UpdateResult.SUCCESS)
        assert await waiting == FirmwareStatus(State.IDLE, UpdateResult.SUCCESS)


async def test_update_by_push_runs_the_whole_procedure_across_the_reboot():
    async with with_peer() as (server, peer):
        outcome = await server.update("dev-1", PACKAGE, mode="push", block_size=512)
        assert outcome.ok, str(outcome)
        assert outcome.status == FirmwareStatus(State.IDLE, UpdateResult.SUCCESS)
        assert outcome.reregistered and peer.reboots == 1
        texts = [step.text for step in outcome.steps]
        assert any("pushed the package" in t for t in texts)
        assert "executed Update /5/0/2" in texts


async def test_update_by_pull_hosts_the_package_and_writes_its_uri():
    async with with_peer() as (server, peer):
        outcome = await server.update("dev-1", PACKAGE, mode="pull", via="coap")
        assert outcome.ok, str(outcome)
        assert bytes(peer.package) == PACKAGE
        assert peer.values[Path("/5/0/1")].startswith("coap://127.0.0.1:")


async def answer_code(uri: str) -> CoapCode:
    """What a plain CoAP GET of ``uri`` is answered (one block is enough to tell)."""
    context, _ = await open_context(None, "127.0.0.1")
    try:
        return (await context.request(Message(code=GET, uri=uri)).response).code
    finally:
        await context.shutdown()


async def test_update_by_pull_stops_hosting_the_package_when_it_ends():
    async with with_peer() as (server, peer):
        outcome = await server.update("dev-1", PACKAGE, mode="pull", via="coap")
        assert outcome.ok, str(outcome)
        assert await answer_code(peer.values[Path("/5/0/1")]) == CoapCode.NOT_FOUND


async def test_campaign_by_pull_hosts_the_package_once_until_the_last_device_is_done():
    async with running() as (server, peers):
        for name in ("a", "b"):
            peers.append(await Peer.start(name, server.uri))
        report = await server.campaign(["a", "b"], PACKAGE, mode="pull", concurrency=1)
        assert report.succeeded == ["a", "b"], str(report)
        uris = {peer.values[Path("/5/0/1")] for peer in peers}
        assert len(uris) == 1  # one hosted package for everyone
        assert await answer_code(uris.pop()) == CoapCode.NOT_FOUND


async def test_pull_firmware_keeps_hosting_the_package_until_the_server_stops():
    async with with_peer() as (server, _):
        uri = await server.pull_firmware("dev-1", PACKAGE)
        await server.wait_for("dev-1", state=State.DOWNLOADED)
        assert await answer_code(uri) == CoapCode.CONTENT


async def test_pull_firmware_over_http():
    async with with_peer() as (server, peer):
        uri = await server.pull_firmware("dev-1", PACKAGE, via="http")
        assert uri.startswith("http://127.0.0.1:")
        await server.wait_for("dev-1", state=State.DOWNLOADED)
        assert bytes(peer.package) == PACKAGE


async def test_update_reports_a_failed_update_result():
    async with with_peer(update_result=UpdateResult.UPDATE_FAILED) as (server, _):
        outcome = await server.update("dev-1", PACKAGE)
        assert not outcome.ok
        assert outcome.status == FirmwareStatus(State.DOWNLOADED, UpdateResult.UPDATE_FAILED)
        assert "UPDATE_FAILED" in outcome.error


async def test_campaign_one_failing_device_does_not_stop_the_others():
    async with running() as (server, peers):
        for name in ("a", "b", "c"):
            peers.append(await Peer.start(name, server.uri))
        peers.append(
            await Peer.start("bad", server.uri, download_result=UpdateResult.INTEGRITY_FAILURE)
        )
        seen: list[str] = []
        report = await server.campaign(
            ["a", "bad", "b", "c", "missing"],
            PACKAGE,
            mode="push",
            concurrency=2,
            progress=lambda done, total, outcome: seen.append(outcome.endpoint),
        )
        assert report.succeeded == ["a", "b", "c"], str(report)
        assert report.failed == ["bad", "missing"]
        assert "INTEGRITY_FAILURE" in report["bad"].error
        assert "no client is registered" in report["missing"].error
        assert sorted(seen) == ["a", "b", "bad", "c", "missing"]


# -- bootstrap --------------------------------------------------------------------------------


async def test_bootstrap_server_configures_the_device_for_the_lwm2m_server():
    async with running() as (server, peers):
        plan = BootstrapPlan(server_uri=server.uri, short_server_id=7, lifetime=120)
        async with await BootstrapServer.start(plans={"fresh": plan}) as bootstrap:
            peer = Peer("fresh")
            peers.append(peer)
            await peer.open()
            assert (await peer.bootstrap(bootstrap.uri)).code == CoapCode.CHANGED
            report = await bootstrap.wait_for_bootstrap("fresh")
            assert report.ok, str(report)
            assert [s.operation for s in report.steps] == [
                "Bootstrap-Delete",
                "Bootstrap-Discover",
                "Bootstrap-Write",
                "Bootstrap-Write",
                "Bootstrap-Finish",
            ]
            assert peer.bootstrap_finished.is_set()
            assert peer.values[Path("/0/0/0")] == server.uri
            assert peer.values[Path("/0/0/2")] == 3  # NoSec
            assert peer.values[Path("/1/0/1")] == 120
            await peer.register(peer.values[Path("/0/0/0")])
            assert server.registration("fresh").endpoint == "fresh"


async def test_server_with_a_bootstrap_plan_points_clients_at_itself():
    server = await Server.start(bootstrap={"fresh": BootstrapPlan()})
    peer = Peer("fresh")
    try:
        await peer.open()
        await peer.bootstrap(server.uri)
        report = await server.bootstrap.wait_for_bootstrap("fresh")
        assert report.ok, str(report)
        assert peer.values[Path("/0/0/0")] == server.uri
    finally:
        await peer.stop()
        await server.stop()


async def test_bootstrap_request_without_a_plan_is_answered_4_00():
    async with await BootstrapServer.start(plans={}) as bootstrap:
        peer = Peer("stranger")
        try:
            await peer.open()
            response = await peer.bootstrap(bootstrap.uri)
            assert response.code == CoapCode.BAD_REQUEST
            assert b"no bootstrap plan" in response.payload
        finally:
            await peer.stop()
