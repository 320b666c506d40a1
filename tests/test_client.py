"""The LwM2M client (lwm2m_edu.client) on real UDP: an EmulatedDevice registered to our Server.

Each test starts a server and a device on free loopback ports (``bench``) and stops both. The
Server API drives the operations it has; raw aiocoap requests (from a context bound to
127.0.0.1) take over where a test needs control of the options: Accept, Content-Format,
Observe, FETCH/iPATCH payloads, non-confirmable messages, bad paths, Block1 out of order.
Nothing here sleeps to wait: tests await registration events, notifications and responses,
each with a timeout. Async tests run through tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import aiocoap.resource
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code as CoapCode
from aiocoap.numbers.types import Type

from lwm2m_edu.client import CONFIRMABLE_AT_LEAST_EVERY, Client, RetryPolicy
from lwm2m_edu.codecs import ContentFormat, decode, encode, senml
from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.dm import DataModel
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.objects.device import DeviceObject
from lwm2m_edu.objects.outcome import Code
from lwm2m_edu.objects.server import ServerObject
from lwm2m_edu.package import Package
from lwm2m_edu.paths import Path
from lwm2m_edu.registry import EventKind, RegistrationEvent
from lwm2m_edu.server import LwM2MError, Server

from .notifications import notifications

EP = "dev-1"
TIMEOUT = 5.0
NEW = factory_package("2.0.0", size=8 * 1024)
CF = ContentFormat
#: Formats that carry several values (an object, an instance, a multiple resource).
MULTI_FORMATS = (CF.SENML_JSON, CF.SENML_CBOR, CF.TLV, CF.LWM2M_CBOR)
#: Formats that carry the value of one resource (or resource instance).
SINGLE_FORMATS = (CF.TEXT, CF.CBOR, *MULTI_FORMATS)
CURRENT_TIME = Path("/3/0/13")  # moves with the clock: left out where reads are compared


# -- the bench: a server, a registered device, a raw CoAP context ---------------------------------


class Events:
    """The server's registration events, in order, for tests to await."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[RegistrationEvent] = asyncio.Queue()

    def __call__(self, event: RegistrationEvent) -> None:
        self.queue.put_nowait(event)

    async def next(self, kind: EventKind, timeout: float = TIMEOUT) -> RegistrationEvent:
        """The next event of ``kind`` (earlier events of other kinds are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.queue.get()
                if event.kind is kind:
                    return event


@dataclass
class Bench:
    server: Server
    device: EmulatedDevice
    raw_context: Any
    events: Events
    #: every (request, response) the server's /rd (and /dp, /bs) handler saw
    seen: list[tuple[Message, Message]] = field(default_factory=list)

    @property
    def client(self) -> Client:
        assert self.device.client is not None
        return self.device.client

    async def raw(
        self,
        code: CoapCode,
        path: str,
        *,
        payload: bytes = b"",
        handle_blockwise: bool = True,
        **options: Any,
    ) -> Message:
        """Send one request straight to the device from a plain aiocoap context."""
        host, port = self.client.address
        message = Message(code=code, uri=f"coap://{host}:{port}{path}", payload=payload, **options)
        request = self.raw_context.request(message, handle_blockwise=handle_blockwise)
        return await asyncio.wait_for(request.response, TIMEOUT)


def _record(server: Server, seen: list[tuple[Message, Message]]) -> None:
    handle = server._handle

    def recording(request: Message) -> Message:
        response = handle(request)
        seen.append((request, response))
        return response

    server._handle = recording  # type: ignore[method-assign]


async def open_raw_context() -> Any:
    return await aiocoap.Context.create_server_context(
        aiocoap.resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"]
    )


@contextlib.asynccontextmanager
async def bench(**device_options: Any) -> AsyncIterator[Bench]:
    server = await Server.start(request_timeout=TIMEOUT)
    device = EmulatedDevice(EP, **device_options)
    raw_context = None
    try:
        events = Events()
        server.add_listener(events)
        seen: list[tuple[Message, Message]] = []
        _record(server, seen)
        raw_context = await open_raw_context()
        await asyncio.wait_for(device.start(server.uri), TIMEOUT)
        while not events.queue.empty():  # the Register of the start: tests await what follows
            events.queue.get_nowait()
        yield Bench(server, device, raw_context, events, seen)
    finally:
        await device.stop()
        if raw_context is not None:
            await raw_context.shutdown()
        await server.stop()


def without_time(values: dict[Path, Any]) -> dict[Path, Any]:
    return {path: value for path, value in values.items() if path != CURRENT_TIME}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def sync(b: Bench) -> None:
    """One request/response round trip: whatever the device had to send before has gone."""
    await b.server.read(EP, "/3/0/0")


# -- registration ---------------------------------------------------------------------------------


async def test_register_carries_ep_lt_lwm2m_1_1_and_b_u():
    async with bench(lifetime=120) as b:
        (register, response), *_ = b.seen
        assert register.code == CoapCode.POST
        assert register.opt.uri_path == ("rd",)
        assert set(register.opt.uri_query) == {f"ep={EP}", "lt=120", "lwm2m=1.1", "b=U"}
        assert response.code == CoapCode.CREATED
        registration = b.server.registration(EP)
        assert (registration.lifetime, registration.lwm2m_version) == (120, "1.1")
        assert (registration.binding, registration.queue_mode) == ("U", False)


async def test_register_payload_has_the_root_link_and_object_5_version_but_never_object_0():
    async with bench() as b:
        (register, _), *_ = b.seen
        assert register.opt.content_format == CF.LINK_FORMAT
        links = register.payload.decode().split(",")
        assert links[0].startswith('</>;rt="oma.lwm2m"')
        assert "</5>;ver=1.1" in links
        assert not [link for link in links if link.startswith("</0")]
        registration = b.server.registration(EP)
        assert 0 not in registration.objects
        assert registration.objects[5].version == "1.1"
        assert registration.objects[3].instances == (0,)


async def test_update_is_scheduled_before_the_lifetime_runs_out():
    async with bench(lifetime=20) as b:
        assert 0 < b.client.next_update_in() < 20


async def test_update_keeps_the_registration_at_its_location():
    async with bench() as b:
        location = b.server.registration(EP).location
        await b.client.update()
        event = await b.events.next(EventKind.UPDATED)
        assert event.registration.location == location == b.client.location.lstrip("/")


async def test_a_short_lifetime_is_renewed_by_an_update_in_time():
    async with bench(lifetime=2) as b:
        started = time.monotonic()
        await b.events.next(EventKind.UPDATED, timeout=2)
        assert time.monotonic() - started < 2


async def test_an_update_the_server_answers_4_04_makes_the_client_register_again():
    async with bench() as b:
        old = b.server.registration(EP)
        b.server.registry.deregister(old.location)  # the server forgets it (e.g. a restart)
        await b.client.update()
        event = await b.events.next(EventKind.REGISTERED)
        assert event.registration.location != old.location
        assert b.client.registered
        assert await b.server.read(EP, "/3/0/0") == "lwm2m_edu"


async def test_a_new_register_drops_the_observations_of_the_old_registration():
    async with bench() as b:
        observation = await b.server.observe(EP, "/3/0/14")
        assert len(b.client.observations) == len(b.client._observers) == 1
        b.server.registry.deregister(b.server.registration(EP).location)
        await b.client.update()  # 4.04: registers again
        await b.events.next(EventKind.REGISTERED)
        assert len(b.client.observations) == len(b.client._observers) == 0
        await observation.cancel()


async def test_stop_deregisters():
    async with bench() as b:
        location = b.server.registration(EP).location
        await b.device.stop()
        event = await b.events.next(EventKind.DEREGISTERED)
        assert event.registration.location == location
        assert EP not in b.server.endpoints
        assert (b.seen[-1][0].code, b.seen[-1][1].code) == (CoapCode.DELETE, CoapCode.DELETED)


async def test_register_is_retried_with_back_off_until_the_server_appears():
    port = free_udp_port()
    retries: asyncio.Queue[str] = asyncio.Queue()
    server_object = ServerObject()
    server_object.add(1, 300)
    client = Client(
        EP,
        DataModel([server_object, DeviceObject(serial=EP)]),
        retry=RetryPolicy(first=0.05, longest=0.2),
        log=lambda line: retries.put_nowait(line) if "retrying in" in line else None,
    )
    server = None
    starting = asyncio.create_task(client.start(f"coap://127.0.0.1:{port}"))
    try:
        delays = []
        for _ in range(4):
            line = await asyncio.wait_for(retries.get(), TIMEOUT)
            delays.append(line.rsplit("retrying in ", 1)[1])
        assert delays == ["0.05 s", "0.1 s", "0.2 s", "0.2 s"]  # doubling, up to longest
        assert not client.registered
        server = await Server.start(port=port)
        await asyncio.wait_for(starting, TIMEOUT)
        assert client.registered
        assert server.registration(EP).location == client.location.lstrip("/")
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await client.stop()
        if server is not None:
            await server.stop()


async def test_executing_registration_update_trigger_sends_an_update():
    async with bench() as b:
        await b.server.execute(EP, "/1/0/8")
        event = await b.events.next(EventKind.UPDATED)
        assert event.registration.location == b.server.registration(EP).location


async def test_writing_the_lifetime_sends_an_update_with_the_new_lt():
    async with bench() as b:
        await b.server.write(EP, "/1/0/1", 600)
        event = await b.events.next(EventKind.UPDATED)
        assert event.registration.lifetime == 600
        assert b.client.lifetime == 600


async def test_creating_an_instance_sends_an_update_with_the_new_links():
    async with bench() as b:
        created = await b.server.create(EP, "/1", {"/1/1/0": 2, "/1/1/1": 600})
        event = await b.events.next(EventKind.UPDATED)
        assert event.registration.objects[1].instances == (0, created.instance_id)
        await b.server.delete(EP, created)
        event = await b.events.next(EventKind.UPDATED)
        assert event.registration.objects[1].instances == (0,)


# -- device management: Read ----------------------------------------------------------------------

READ_CASES = [
    ("/3", MULTI_FORMATS),
    ("/3/0", MULTI_FORMATS),
    ("/3/0/0", SINGLE_FORMATS),
    ("/3/0/11", MULTI_FORMATS),
    ("/3/0/11/0", SINGLE_FORMATS),
]


@pytest.mark.parametrize(("path", "formats"), READ_CASES, ids=[p for p, _ in READ_CASES])
async def test_read_answers_the_same_values_in_every_format_that_applies(path, formats):
    async with bench() as b:
        expected = without_time(b.device.data_model.read_values(Path(path)))
        for fmt in formats:
            response = await b.raw(CoapCode.GET, path, accept=fmt)
            assert response.code == CoapCode.CONTENT, (fmt, response.payload)
            assert response.opt.content_format == fmt
            values = decode(response.payload, fmt, path, model=b.server.model)
            assert without_time(values) == expected, fmt


async def test_read_without_accept_answers_a_single_value_as_text():
    async with bench() as b:
        response = await b.raw(CoapCode.GET, "/3/0/0")
        assert (response.code, response.opt.content_format) == (CoapCode.CONTENT, CF.TEXT)
        assert response.payload == b"lwm2m_edu"


async def test_read_of_the_write_only_package_is_answered_4_05():
    async with bench() as b:
        response = await b.raw(CoapCode.GET, "/5/0/0")
        assert response.code == CoapCode.METHOD_NOT_ALLOWED


@pytest.mark.parametrize(
    ("path", "accept"),
    [("/3/0", CF.TEXT), ("/3/0", CF.CBOR), ("/3/0/0", CF.OPAQUE), ("/3/0/0", CF.OMA_JSON)],
)
async def test_read_with_an_accept_the_client_cannot_produce_is_answered_4_06(path, accept):
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.read(EP, path, accept=accept)
        assert error.value.code is Code.NOT_ACCEPTABLE


@pytest.mark.parametrize("path", ["/4", "/3/1", "/3/0/99", "/3/0/11/7", "/0", "/0/0/0"])
async def test_read_of_a_path_that_does_not_exist_is_answered_4_04(path):
    async with bench() as b:
        response = await b.raw(CoapCode.GET, path)
        assert response.code == CoapCode.NOT_FOUND


@pytest.mark.parametrize("path", ["/abc", "/3/x", "/3/0/0/0/0", "/70000"])
async def test_a_uri_that_is_no_lwm2m_path_is_answered_4_04(path):
    async with bench() as b:
        response = await b.raw(CoapCode.GET, path)
        assert response.code == CoapCode.NOT_FOUND


# -- Discover and Write-Attributes ----------------------------------------------------------------


async def test_discover_lists_the_instance_and_the_attributes_written_to_it():
    async with bench() as b:
        await b.server.write_attributes(EP, "/3/0", pmin=2, pmax=30)
        await b.server.write_attributes(EP, "/3/0/11", pmax=60)
        response = await b.raw(CoapCode.GET, "/3/0", accept=CF.LINK_FORMAT)
        assert response.opt.content_format == CF.LINK_FORMAT
        links = {str(link).split(";")[0]: link for link in await b.server.discover(EP, "/3/0")}
        assert links["</3/0>"].attributes == {"pmin": 2, "pmax": 30}
        assert links["</3/0/11>"].attributes == {"dim": 1, "pmax": 60}
        assert "</3/0/0>" in links and "</3/0/4>" in links  # values and executables alike
        assert not any(key.startswith("</5") for key in links)


async def test_write_attributes_with_a_payload_is_answered_4_00():
    async with bench() as b:
        response = await b.raw(CoapCode.PUT, "/3/0?pmin=1", payload=b"1")
        assert response.code == CoapCode.BAD_REQUEST


async def test_write_attributes_lt_not_below_gt_is_answered_4_00():
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.write_attributes(EP, "/1/0/1", gt=10, lt=20)
        assert error.value.code is Code.BAD_REQUEST


# -- Write ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", SINGLE_FORMATS, ids=[f.name for f in SINGLE_FORMATS])
async def test_write_replace_of_a_resource_works_in_every_format(fmt):
    async with bench() as b:
        await b.server.write(EP, "/3/0/14", "+02:00", format=fmt)
        assert await b.server.read(EP, "/3/0/14") == "+02:00"


@pytest.mark.parametrize("fmt", MULTI_FORMATS, ids=[f.name for f in MULTI_FORMATS])
async def test_write_partial_update_of_an_instance_changes_only_what_it_names(fmt):
    async with bench() as b:
        await b.server.write(EP, "/3/0", {"/3/0/14": "-05:00"}, format=fmt, replace=False)
        assert await b.server.read(EP, "/3/0/14") == "-05:00"
        assert await b.server.read(EP, "/3/0/15") == "Etc/UTC"


@pytest.mark.parametrize("fmt", MULTI_FORMATS, ids=[f.name for f in MULTI_FORMATS])
async def test_write_replace_of_an_instance_writes_every_resource_it_names(fmt):
    async with bench() as b:
        values = {"/1/0/2": 5, "/1/0/3": 50}
        await b.server.write(EP, "/1/0", values, format=fmt)
        assert await b.server.read(EP, "/1/0/2") == 5
        assert await b.server.read(EP, "/1/0/3") == 50
        assert await b.server.read(EP, "/1/0/0") == 1


async def test_write_in_tlv_under_its_legacy_number_1542_is_accepted():
    async with bench() as b:
        payload = encode({Path("/3/0/14"): "+05:00"}, CF.TLV, "/3/0/14", model=b.server.model)
        response = await b.raw(
            CoapCode.PUT, "/3/0/14", payload=payload, content_format=CF.LEGACY_TLV
        )
        assert response.code == CoapCode.CHANGED
        assert await b.server.read(EP, "/3/0/14") == "+05:00"


@pytest.mark.parametrize("content_format", [CF.OMA_JSON, 50, 9999])
async def test_write_in_a_content_format_the_client_does_not_read_is_answered_4_15(
    content_format,
):
    async with bench() as b:
        response = await b.raw(
            CoapCode.PUT, "/3/0/14", payload=b'"+02:00"', content_format=content_format
        )
        assert response.code == CoapCode.UNSUPPORTED_CONTENT_FORMAT


@pytest.mark.parametrize(
    ("fmt", "payload"),
    [(CF.CBOR, b"\xff\xff"), (CF.SENML_JSON, b"[{not json"), (CF.TLV, b"\xc8\x0e")],
)
async def test_write_of_a_malformed_payload_is_answered_4_00(fmt, payload):
    async with bench() as b:
        response = await b.raw(CoapCode.PUT, "/3/0/14", payload=payload, content_format=fmt)
        assert response.code == CoapCode.BAD_REQUEST


async def test_write_of_a_value_of_the_wrong_type_is_answered_4_00():
    async with bench() as b:
        response = await b.raw(CoapCode.PUT, "/1/0/1", payload=b"soon", content_format=CF.TEXT)
        assert response.code == CoapCode.BAD_REQUEST


@pytest.mark.parametrize("path", ["/3/0/0", "/3/0/3", "/1/0/0", "/5/0/3"])
async def test_write_to_a_read_only_resource_is_answered_4_05(path):
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.write(EP, path, "x" if path.startswith("/3") else 7)
        assert error.value.code is Code.METHOD_NOT_ALLOWED


async def test_write_to_a_resource_that_does_not_exist_is_answered_4_04():
    async with bench() as b:
        response = await b.raw(CoapCode.PUT, "/3/1/14", payload=b"+01:00", content_format=CF.TEXT)
        assert response.code == CoapCode.NOT_FOUND


async def test_a_non_confirmable_write_is_refused_with_4_00():
    async with bench() as b:
        response = await b.raw(
            CoapCode.PUT,
            "/3/0/14",
            payload=b"+03:00",
            content_format=CF.TEXT,
            transport_tuning=aiocoap.Unreliable,
        )
        assert response.code == CoapCode.BAD_REQUEST
        assert await b.server.read(EP, "/3/0/14") == "+00:00"


async def test_a_non_confirmable_execute_is_carried_out():
    async with bench() as b:
        b.device.data_model[3].add_error(1)
        response = await b.raw(CoapCode.POST, "/3/0/12", transport_tuning=aiocoap.Unreliable)
        assert response.code == CoapCode.CHANGED
        assert await b.server.read(EP, "/3/0/11") == {Path("/3/0/11/0"): 0}


# -- Execute --------------------------------------------------------------------------------------


async def test_execute_reset_error_code_clears_the_error_codes():
    async with bench() as b:
        b.device.data_model[3].add_error(1)
        b.device.data_model[3].add_error(5)
        assert await b.server.read(EP, "/3/0/11") == {Path("/3/0/11/0"): 1, Path("/3/0/11/1"): 5}
        await b.server.execute(EP, "/3/0/12")
        assert await b.server.read(EP, "/3/0/11") == {Path("/3/0/11/0"): 0}


async def test_execute_with_well_formed_arguments_is_answered_2_04():
    async with bench() as b:
        await b.server.execute(EP, "/3/0/12", "0='abc',1")


@pytest.mark.parametrize("arguments", [b"x", b"0=abc", b"10", b"0,0"])
async def test_execute_with_malformed_arguments_is_answered_4_00(arguments):
    async with bench() as b:
        response = await b.raw(CoapCode.POST, "/3/0/12", payload=arguments)
        assert response.code == CoapCode.BAD_REQUEST


async def test_execute_of_a_value_is_answered_4_05():
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.execute(EP, "/3/0/0")
        assert error.value.code is Code.METHOD_NOT_ALLOWED


async def test_execute_update_while_idle_is_answered_4_05():
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.execute(EP, "/5/0/2")
        assert error.value.code is Code.METHOD_NOT_ALLOWED
        assert b.device.firmware.state is State.IDLE


async def test_execute_reboot_answers_then_the_device_registers_again():
    async with bench() as b:
        old = b.server.registration(EP).location
        await b.server.execute(EP, "/3/0/4")
        event = await b.events.next(EventKind.REGISTERED)
        assert event.registration.location != old
        await asyncio.wait_for(b.device.rebooted.wait(), TIMEOUT)
        assert len(b.device.boots) == 2
        assert await b.server.read(EP, "/3/0/0") == "lwm2m_edu"


# -- Create and Delete ----------------------------------------------------------------------------


async def test_create_makes_a_server_instance_and_delete_removes_it():
    async with bench() as b:
        created = await b.server.create(EP, "/1", {"/1/1/0": 2, "/1/1/1": 600})
        assert created == Path("/1/1")
        assert await b.server.read(EP, "/1/1/1") == 600
        await b.server.delete(EP, "/1/1")
        response = await b.raw(CoapCode.GET, "/1/1")
        assert response.code == CoapCode.NOT_FOUND


async def test_create_answers_2_01_with_the_new_instance_as_location():
    async with bench() as b:
        payload = encode({Path("/1/4/0"): 9, Path("/1/4/1"): 60}, CF.SENML_CBOR, "/1")
        response = await b.raw(CoapCode.POST, "/1", payload=payload, content_format=CF.SENML_CBOR)
        assert response.code == CoapCode.CREATED
        assert response.opt.location_path == ("1", "4")


async def test_create_on_the_single_instance_device_object_is_answered_4_05():
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.create(EP, "/3", {"/3/1/14": "+01:00"})
        assert error.value.code is Code.METHOD_NOT_ALLOWED


@pytest.mark.parametrize("path", ["/3/0", "/5/0"])
async def test_delete_of_an_instance_that_must_stay_is_answered_4_05(path):
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.delete(EP, path)
        assert error.value.code is Code.METHOD_NOT_ALLOWED


# -- composite ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [CF.SENML_JSON, CF.SENML_CBOR], ids=["json", "cbor"])
async def test_read_composite_fetches_several_paths_in_one_request(fmt):
    async with bench() as b:
        values = await b.server.read_composite(EP, ["/3/0/0", "/5/0/3", "/1/0/1"], format=fmt)
        assert values == {Path("/3/0/0"): "lwm2m_edu", Path("/5/0/3"): 0, Path("/1/0/1"): 300}


async def test_read_composite_answers_in_the_accept_format_not_that_of_the_path_list():
    async with bench() as b:
        response = await b.raw(
            CoapCode.FETCH, "/", payload=senml.encode_paths([Path("/3/0/0")], CF.SENML_JSON),
            content_format=CF.SENML_JSON, accept=CF.SENML_CBOR,
        )  # fmt: skip
        assert (response.code, response.opt.content_format) == (CoapCode.CONTENT, CF.SENML_CBOR)
        assert decode(response.payload, CF.SENML_CBOR, "/") == {Path("/3/0/0"): "lwm2m_edu"}


async def test_read_composite_leaves_out_paths_that_do_not_exist():
    async with bench() as b:
        values = await b.server.read_composite(EP, ["/3/0/0", "/4/0/0", "/3/0/99"])
        assert values == {Path("/3/0/0"): "lwm2m_edu"}


async def test_read_composite_with_a_path_list_not_in_senml_is_answered_4_15():
    async with bench() as b:
        response = await b.raw(
            CoapCode.FETCH, "/", payload=b"/3/0/0", content_format=CF.TEXT, accept=CF.SENML_CBOR
        )
        assert response.code == CoapCode.UNSUPPORTED_CONTENT_FORMAT


@pytest.mark.parametrize("fmt", [CF.SENML_JSON, CF.SENML_CBOR], ids=["json", "cbor"])
async def test_write_composite_writes_several_resources_in_one_request(fmt):
    async with bench() as b:
        await b.server.write_composite(EP, {"/3/0/14": "+01:00", "/1/0/3": 77}, format=fmt)
        values = await b.server.read_composite(EP, ["/3/0/14", "/1/0/3"])
        assert values == {Path("/3/0/14"): "+01:00", Path("/1/0/3"): 77}


async def test_write_composite_with_a_read_only_resource_writes_nothing_and_answers_4_05():
    async with bench() as b:
        with pytest.raises(LwM2MError) as error:
            await b.server.write_composite(EP, {"/3/0/14": "+01:00", "/3/0/0": "x"})
        assert error.value.code is Code.METHOD_NOT_ALLOWED
        assert await b.server.read(EP, "/3/0/14") == "+00:00"


# -- observe and notify ---------------------------------------------------------------------------


async def test_the_first_answer_to_an_observe_carries_the_observe_option():
    async with bench() as b:
        request = b.raw_context.request(
            Message(code=CoapCode.GET, uri=_uri(b, "/3/0/0"), observe=0)
        )
        try:
            response = await asyncio.wait_for(request.response, TIMEOUT)
            assert response.code == CoapCode.CONTENT
            assert response.opt.observe is not None
        finally:
            request.observation.cancel()


async def test_observe_state_and_result_notifies_each_state_change_of_a_push_and_update():
    async with bench() as b:
        state = await b.server.observe(EP, "/5/0/3")
        result = await b.server.observe(EP, "/5/0/5")
        assert (state.accepted, result.accepted) == (True, True)
        assert (state.value, result.value) == (State.IDLE, UpdateResult.INITIAL)
        async with notifications(state) as states, notifications(result) as results:
            await b.server.push_firmware(EP, NEW, block_size=1024)
            assert await states.next() == State.DOWNLOADING
            assert await states.next() == State.DOWNLOADED
            await b.server.execute(EP, "/5/0/2")
            assert await states.next() == State.UPDATING
            assert results.empty()  # the result stays 0 until the device has rebooted
        await b.events.next(EventKind.REGISTERED)  # it rebooted into the new firmware
        await asyncio.wait_for(b.device.rebooted.wait(), TIMEOUT)


async def test_the_server_observation_yields_every_notification_the_device_sent():
    async with bench() as b:
        state = await b.server.observe(EP, "/5/0/3")
        try:
            await b.server.push_firmware(EP, NEW, block_size=1024)
            await sync(b)  # both notifications have arrived by now
            assert await asyncio.wait_for(anext(state), 1) == State.DOWNLOADING
        finally:
            await state.cancel()


async def test_observe_of_an_instance_notifies_its_new_values():
    async with bench() as b:
        observation = await b.server.observe(EP, "/3/0")
        assert observation.value[Path("/3/0/14")] == "+00:00"
        async with notifications(observation) as values:
            await b.server.write(EP, "/3/0/14", "+04:00")
            assert (await values.next())[Path("/3/0/14")] == "+04:00"


async def test_pmax_sends_a_notification_every_pmax_seconds_without_a_change():
    async with bench() as b:
        await b.server.write_attributes(EP, "/3/0/0", pmax=1)
        observation = await b.server.observe(EP, "/3/0/0")
        started = time.monotonic()
        async with notifications(observation) as values:
            assert await values.next() == "lwm2m_edu"
            assert await values.next() == "lwm2m_edu"
            elapsed = time.monotonic() - started
        assert 1.8 <= elapsed < 2.8  # one at 1 s, one at 2 s


async def test_pmin_holds_back_a_change_until_pmin_has_passed():
    async with bench() as b:
        await b.server.write_attributes(EP, "/3/0/14", pmin=1)
        observation = await b.server.observe(EP, "/3/0/14")
        started = time.monotonic()
        async with notifications(observation) as values:
            await b.server.write(EP, "/3/0/14", "+01:00")
            assert await values.next() == "+01:00"
            assert time.monotonic() - started >= 0.9


async def test_gt_and_lt_notify_only_when_the_value_crosses_them():
    async with bench() as b:
        device_object = b.device.data_model[3]
        device_object.set(0, 9, 80)  # Battery Level
        await b.server.write_attributes(EP, "/3/0/9", gt=50, lt=20)
        observation = await b.server.observe(EP, "/3/0/9")
        assert observation.value == 80
        async with notifications(observation) as values:
            for level in (70, 60, 40):  # 40 crosses gt=50 (downwards: two-way thresholds)
                device_object.set(0, 9, level)
                await sync(b)
            assert await values.next() == 40  # the first one: 70 and 60 sent nothing
            for level in (30, 25, 10):  # 10 crosses lt=20
                device_object.set(0, 9, level)
                await sync(b)
            assert await values.next() == 10


async def test_st_notifies_when_the_value_moved_st_from_the_last_one_sent():
    async with bench() as b:
        device_object = b.device.data_model[3]
        device_object.set(0, 9, 50)
        await b.server.write_attributes(EP, "/3/0/9", st=10)
        observation = await b.server.observe(EP, "/3/0/9")
        async with notifications(observation) as values:
            for level in (55, 45, 58, 60):  # 60 is the first 10 away from 50
                device_object.set(0, 9, level)
                await sync(b)
            assert await values.next() == 60
            for level in (65, 51, 50):  # 50 is 10 away from 60, the last one sent
                device_object.set(0, 9, level)
                await sync(b)
            assert await values.next() == 50


async def test_observe_composite_notifies_the_listed_paths_in_senml():
    async with bench() as b:
        paths = [Path("/3/0/14"), Path("/5/0/3")]
        request = b.raw_context.request(
            Message(
                code=CoapCode.FETCH,
                uri=_uri(b, "/"),
                observe=0,
                payload=senml.encode_paths(paths, CF.SENML_CBOR),
                content_format=CF.SENML_CBOR,
                accept=CF.SENML_CBOR,
            ),
            handle_blockwise=False,
        )
        try:
            first = await asyncio.wait_for(request.response, TIMEOUT)
            assert first.code == CoapCode.CONTENT
            assert first.opt.observe is not None
            assert decode(first.payload, CF.SENML_CBOR, "/") == {
                Path("/3/0/14"): "+00:00",
                Path("/5/0/3"): 0,
            }
            await b.server.write(EP, "/3/0/14", "+06:00")
            notification = await asyncio.wait_for(anext(aiter(request.observation)), TIMEOUT)
            assert notification.opt.content_format == CF.SENML_CBOR
            assert decode(notification.payload, CF.SENML_CBOR, "/") == {
                Path("/3/0/14"): "+06:00",
                Path("/5/0/3"): 0,
            }
        finally:
            request.observation.cancel()


async def test_a_notification_answered_with_rst_ends_the_observation_on_the_client():
    async with bench() as b:
        emptied = asyncio.Event()
        b.client._observers = _WatchedObservers(b.client._observers, emptied.set)
        observation = await b.server.observe(EP, "/3/0/14")
        assert len(b.client._observers) == 1
        await observation.cancel()  # passive: the server will RST a later notification
        for offset in ("+01:00", "+02:00", "+03:00"):
            await b.server.write(EP, "/3/0/14", offset)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(emptied.wait(), 1.0)
            if emptied.is_set():
                break
        assert not b.client._observers
        assert len(b.client.observations) == 0


async def test_observations_of_other_paths_keep_notifying_after_an_observed_instance_is_deleted():
    async with bench() as b:
        await b.server.create(EP, "/1", {"/1/1/0": 2, "/1/1/1": 600})
        gone = await b.server.observe(EP, "/1/1")
        kept = await b.server.observe(EP, "/3/0/14")
        async with notifications(gone), notifications(kept) as values:
            await b.server.delete(EP, "/1/1")
            await b.server.write(EP, "/3/0/14", "+07:00")
            assert await values.next() == "+07:00"


async def test_deleting_an_observed_instance_ends_its_observation_with_4_04():
    async with bench() as b:
        await b.server.create(EP, "/1", {"/1/1/0": 2, "/1/1/1": 600})
        observation = await b.server.observe(EP, "/1/1")
        async with notifications(observation) as values:
            await b.server.delete(EP, "/1/1")
            with pytest.raises(LwM2MError) as error:
                await values.next()
            assert error.value.code is Code.NOT_FOUND
            assert not b.client._observers


# -- the con attribute (LwM2M 1.2): notifications CON or NON ----------------------------------


async def observe_raw(
    b: Bench, path: str, change: Callable[[], Awaitable[object]], *, query: tuple[str, ...] = ()
) -> tuple[Message, list[Message]]:
    """Observe ``path`` from the plain aiocoap context (a CON request, as LwM2M wants), run
    ``change`` twice, and return the first answer and the two messages that followed."""
    request = b.raw_context.request(
        Message(code=CoapCode.GET, uri=_uri(b, path), observe=0, uri_query=query),
        handle_blockwise=False,
    )
    try:
        first = await asyncio.wait_for(request.response, TIMEOUT)
        assert first.code == CoapCode.CONTENT
        observation = aiter(request.observation)
        received = []
        for _ in range(2):
            # Waiting before the change: aiocoap's iterator keeps only the newest message, and
            # a final one is followed at once by the end of the observation.
            waiting = asyncio.ensure_future(anext(observation))
            await change()
            received.append(await asyncio.wait_for(waiting, TIMEOUT))
            if not received[-1].code.is_successful():
                break
        return first, received
    finally:
        if not request.observation.cancelled:  # (a final notification cancelled it)
            request.observation.cancel()


def time_zone_change(b: Bench) -> Callable[[], Awaitable[object]]:
    """A change of /3/0/14 UTC Offset to a new value each time."""
    offsets = iter(["+01:00", "+02:00", "+03:00"])
    return lambda: b.server.write(EP, "/3/0/14", next(offsets))


@pytest.mark.parametrize(
    "attributes",
    [
        {"/3": {"con": 1}},  # written on the object, inherited by /3/0/14
        {"/3": {"con": 0}, "/3/0/14": {"con": 1}},  # the resource's own overrides it
    ],
)
async def test_notifications_are_confirmable_when_con_is_1(attributes):
    async with bench() as b:
        for path, values in attributes.items():
            await b.server.write_attributes(EP, path, **values)
        first, received = await observe_raw(b, "/3/0/14", time_zone_change(b))
        assert first.mtype is Type.ACK  # the response to the Observe, piggy-backed
        assert [m.mtype for m in received] == [Type.CON, Type.CON]
        assert [m.payload for m in received] == [b"+01:00", b"+02:00"]


@pytest.mark.parametrize("how", ["write-attributes on the object", "observe query"])
async def test_notifications_are_non_confirmable_when_con_is_0(how):
    async with bench() as b:
        query: tuple[str, ...] = ()
        if how == "observe query":
            query = ("con=0",)
        else:
            await b.server.write_attributes(EP, "/3", con=0)
        first, received = await observe_raw(b, "/3/0/14", time_zone_change(b), query=query)
        assert first.mtype is Type.ACK  # the response to the Observe, piggy-backed
        assert [m.mtype for m in received] == [Type.NON, Type.NON]
        assert [m.payload for m in received] == [b"+01:00", b"+02:00"]


async def test_with_con_0_a_notification_still_goes_confirmable_once_a_day():
    now = [time.time()]
    async with bench(clock=lambda: now[0]) as b:
        await b.server.write_attributes(EP, "/3", con=0)
        offsets = time_zone_change(b)
        changes = 0

        async def change_then_a_day_later() -> object:
            nonlocal changes
            changes += 1
            if changes == 2:
                now[0] += CONFIRMABLE_AT_LEAST_EVERY  # a day without a confirmable one
            return await offsets()

        _, received = await observe_raw(b, "/3/0/14", change_then_a_day_later)
        assert [m.mtype for m in received] == [Type.NON, Type.CON]


async def test_notifications_without_con_go_as_the_observe_came_confirmable():
    async with bench() as b:
        first, received = await observe_raw(b, "/3/0/14", time_zone_change(b))
        assert first.mtype is Type.ACK
        assert [m.mtype for m in received] == [Type.CON, Type.CON]


async def test_the_final_error_notification_of_a_vanished_instance_follows_con_too():
    async with bench() as b:
        await b.server.create(EP, "/1", {"/1/1/0": 2, "/1/1/1": 600})
        _, received = await observe_raw(
            b, "/1/1", lambda: b.server.delete(EP, "/1/1"), query=("con=0",)
        )
        assert [(m.code, m.mtype) for m in received] == [(CoapCode.NOT_FOUND, Type.NON)]


class _WatchedObservers(dict):
    """The client's observer table, calling ``on_empty`` when its last entry goes."""

    def __init__(self, initial: dict, on_empty: Callable[[], None]) -> None:
        super().__init__(initial)
        self.on_empty = on_empty

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        if not self:
            self.on_empty()
        return value


def _uri(b: Bench, path: str) -> str:
    host, port = b.client.address
    return f"coap://{host}:{port}{path}"


# -- firmware push over the wire ------------------------------------------------------------------


async def test_reads_are_answered_while_a_block1_push_goes_on():
    async with bench() as b:
        push = asyncio.create_task(b.server.push_firmware(EP, NEW, block_size=64))
        answered_during_push = 0
        try:
            while not push.done():
                assert await b.server.read(EP, "/3/0/0") == "lwm2m_edu"
                answered_during_push += not push.done()
            assert await push == -(-len(bytes(NEW)) // 64)
        finally:
            push.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await push
        assert answered_during_push >= 3
        assert b.device.firmware.state is State.DOWNLOADED


async def test_a_block1_block_out_of_sequence_is_answered_4_08():
    async with bench() as b:
        package = bytes(NEW)
        first = await b.raw(
            CoapCode.PUT, "/5/0/0", payload=package[:256], content_format=CF.OPAQUE,
            block1=(0, True, 4), handle_blockwise=False,
        )  # fmt: skip
        assert first.code == CoapCode.CONTINUE
        assert (first.opt.block1.block_number, first.opt.block1.more) == (0, True)
        skipped = await b.raw(
            CoapCode.PUT, "/5/0/0", payload=package[512:768], content_format=CF.OPAQUE,
            block1=(2, True, 4), handle_blockwise=False,
        )  # fmt: skip
        assert skipped.code == CoapCode.REQUEST_ENTITY_INCOMPLETE


async def test_a_package_bigger_than_the_staging_slot_is_answered_4_13_with_result_2():
    too_big = Package.build(b"\x5a" * (600 * 1024), name="app", version="9.0.0",
                            device_type="lwm2m-edu-demo")  # fmt: skip
    async with bench() as b:
        observation = await b.server.observe(EP, "/5/0/5")
        async with notifications(observation) as results:
            with pytest.raises(LwM2MError) as error:
                await b.server.push_firmware(EP, too_big, block_size=1024)
            assert error.value.code is Code.REQUEST_ENTITY_TOO_LARGE
            assert await results.next() == UpdateResult.NOT_ENOUGH_FLASH
        assert await b.server.read(EP, "/5/0/3") == State.IDLE


async def test_a_whole_package_in_one_put_is_stored_too():
    async with bench() as b:
        response = await b.raw(
            CoapCode.PUT, "/5/0/0", payload=bytes(NEW), content_format=CF.OPAQUE
        )  # aiocoap splits it into Block1 blocks of 1024
        assert response.code == CoapCode.CHANGED
        assert await b.server.read(EP, "/5/0/3") == State.DOWNLOADED


# -- Send -----------------------------------------------------------------------------------------


async def _update_and_reboot(b: Bench) -> None:
    outcome = await b.server.update(EP, NEW, block_size=1024, timeout=10, poll_interval=1)
    assert outcome.ok, str(outcome)
    await asyncio.wait_for(b.device.rebooted.wait(), TIMEOUT)  # its start() has sent


async def test_after_an_update_the_device_sends_state_result_and_version_to_dp():
    async with bench() as b:
        await _update_and_reboot(b)
        sends = [request for request, _ in b.seen if request.opt.uri_path == ("dp",)]
        assert len(sends) == 1
        (send,) = sends
        assert (send.code, send.opt.content_format) == (CoapCode.POST, CF.SENML_CBOR)
        assert decode(send.payload, CF.SENML_CBOR, "/") == {
            Path("/5/0/3"): State.IDLE,
            Path("/5/0/5"): UpdateResult.SUCCESS,
            Path("/3/0/3"): "2.0.0",
        }


async def test_the_server_records_the_send_after_an_update():
    async with bench() as b:
        await _update_and_reboot(b)
        (report,) = b.server.sent
        assert report.endpoint == EP
        assert report.values == {
            Path("/5/0/3"): State.IDLE,
            Path("/5/0/5"): UpdateResult.SUCCESS,
            Path("/3/0/3"): "2.0.0",
        }
        answers = [response.code for request, response in b.seen if request.opt.uri_path == ("dp",)]
        assert answers == [CoapCode.CHANGED]


async def test_send_posts_the_values_of_the_paths_given():
    async with bench() as b:
        received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        b.server.send_listeners.append(received.set_result)
        await b.client.send(["/3/0/0", "/5/0/3"])
        report = await asyncio.wait_for(received, TIMEOUT)
        assert (report.endpoint, report.values) == (
            EP,
            {Path("/3/0/0"): "lwm2m_edu", Path("/5/0/3"): State.IDLE},
        )


async def test_a_push_that_does_not_fit_is_told_the_largest_size_in_size1():
    too_big = Package.build(b"\x5a" * (600 * 1024), name="app", version="9.0.0",
                            device_type="lwm2m-edu-demo")  # fmt: skip
    async with bench() as b:
        slot = b.device.bootloader.staging_slot.size
        response = await b.raw(
            CoapCode.PUT, "/5/0/0", payload=bytes(too_big)[:1024], content_format=CF.OPAQUE,
            block1=(0, True, 6), handle_blockwise=False,
        )  # fmt: skip
        assert response.code == CoapCode.REQUEST_ENTITY_TOO_LARGE
        assert response.opt.size1 == slot
