"""The Server's Observe-Composite (LwM2M 1.1), over real UDP on 127.0.0.1.

``Server.observe_composite(ep, paths)`` sends one FETCH to ``/`` with Observe=0 and the path list
in SenML; every notification carries the values of all the paths. Most tests run it against a
real ``EmulatedDevice``; a misbehaving device (junk payloads) is a bare aiocoap resource here.
Nothing sleeps to wait: tests await notifications and responses, each with a timeout. Async
tests run through tests/conftest.py (a fresh event loop each, no task left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiocoap.resource
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code as CoapCode

from lwm2m_edu.coap import open_context
from lwm2m_edu.codecs import CodecError, ContentFormat, encode
from lwm2m_edu.device import EmulatedDevice
from lwm2m_edu.objects.outcome import Code
from lwm2m_edu.paths import Path
from lwm2m_edu.server import LwM2MError, Observation, Server, UnknownEndpoint

from .notifications import notifications

EP = "dev-1"
TIMEOUT = 5.0
CF = ContentFormat
UTC_OFFSET, TIMEZONE, STATE = Path("/3/0/14"), Path("/3/0/15"), Path("/5/0/3")


@contextlib.asynccontextmanager
async def device_and_server() -> AsyncIterator[tuple[Server, EmulatedDevice]]:
    """A server, and a real device registered to it; both are stopped at the end."""
    server = await Server.start(request_timeout=TIMEOUT)
    device = EmulatedDevice(EP)
    try:
        await asyncio.wait_for(device.start(server.uri), TIMEOUT)
        yield server, device
    finally:
        await device.stop()
        await server.stop()


async def forgotten(server: Server, device: EmulatedDevice) -> None:
    """Change /3/0/14 until the device has dropped every observation (it got an RST)."""
    assert device.client is not None
    async with asyncio.timeout(TIMEOUT):
        for offset in ("+01:00", "+02:00", "+03:00", "+04:00"):
            await server.write(EP, UTC_OFFSET, offset)
            await server.read(EP, "/3/0/0")  # a round trip: that notification has gone
            if not device.client._observers:
                return
        while device.client._observers:  # the last RST may still be on its way
            await asyncio.sleep(0)  # a yield to the loop, not a wait for time


# -- what it gives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [CF.SENML_CBOR, CF.SENML_JSON])
async def test_observe_composite_gives_the_values_of_every_path_at_once(fmt):
    async with device_and_server() as (server, _):
        observation = await server.observe_composite(EP, ["/3/0/14", "/5/0/3"], content_format=fmt)
        try:
            assert observation.accepted and observation.composite
            assert observation.value == {UTC_OFFSET: "+00:00", STATE: 0}
        finally:
            await observation.cancel()


async def test_observe_composite_of_an_instance_gives_each_of_its_resources():
    async with device_and_server() as (server, _):
        observation = await server.observe_composite(EP, ["/1/0", "/5/0/3"])
        try:
            assert observation.value[STATE] == 0
            assert observation.value[Path("/1/0/1")] == 300  # Lifetime, one of /1/0's
        finally:
            await observation.cancel()


async def test_observe_composite_notifies_when_any_observed_path_changes():
    async with device_and_server() as (server, _):
        observation = await server.observe_composite(EP, ["/3/0/14", "/3/0/15"])
        async with notifications(observation) as values:
            await server.write(EP, UTC_OFFSET, "+05:00")
            assert (await values.next())[UTC_OFFSET] == "+05:00"
            await server.write(EP, TIMEZONE, "Asia/Tokyo")
            assert (await values.next())[TIMEZONE] == "Asia/Tokyo"


async def test_each_composite_notification_carries_every_observed_path():
    async with device_and_server() as (server, _):
        observation = await server.observe_composite(EP, ["/3/0/14", "/5/0/3"])
        async with notifications(observation) as values:
            await server.write(EP, UTC_OFFSET, "+05:00")
            assert await values.next() == {UTC_OFFSET: "+05:00", STATE: 0}
            assert observation.value == {UTC_OFFSET: "+05:00", STATE: 0}


async def test_an_observe_composite_names_its_paths_in_its_repr():
    async with device_and_server() as (server, _):
        observation = await server.observe_composite(EP, ["/3/0/14", "/5/0/3"])
        try:
            assert repr(observation) == (
                "<Observation composite dev-1 [/3/0/14, /5/0/3] "
                f"value={ {UTC_OFFSET: '+00:00', STATE: 0}!r}>"
            )
            assert observation.paths == (UTC_OFFSET, STATE)
        finally:
            await observation.cancel()


async def test_observe_and_observe_composite_hand_out_the_same_observation_class():
    async with device_and_server() as (server, _):
        single = await server.observe(EP, UTC_OFFSET)
        composite = await server.observe_composite(EP, [UTC_OFFSET])
        try:
            assert type(single) is type(composite) is Observation
            assert (single.composite, single.paths) == (False, (UTC_OFFSET,))
            assert (single.value, composite.value) == ("+00:00", {UTC_OFFSET: "+00:00"})
        finally:
            await single.cancel()
            await composite.cancel()


# -- cancel ----------------------------------------------------------------------------------------


async def test_cancelling_an_observe_composite_stops_its_notifications():
    async with device_and_server() as (server, _):
        observation = await server.observe_composite(EP, ["/3/0/14", "/5/0/3"])
        await observation.cancel()
        await server.write(EP, UTC_OFFSET, "+05:00")
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(observation), TIMEOUT)


async def test_a_cancelled_observe_composite_is_dropped_by_the_device_at_a_later_notification():
    async with device_and_server() as (server, device):
        observation = await server.observe_composite(EP, ["/3/0/14", "/5/0/3"])
        assert device.client is not None and len(device.client._observers) == 1
        await observation.cancel()  # passive: the server will RST a later notification
        await forgotten(server, device)
        assert len(device.client.observations) == 0


# -- errors ----------------------------------------------------------------------------------------


async def test_observe_composite_of_an_unknown_endpoint_raises_UnknownEndpoint():
    async with device_and_server() as (server, _):
        with pytest.raises(UnknownEndpoint) as caught:
            await server.observe_composite("dev-2", ["/3/0/14"])
        assert caught.value.registered == (EP,)


async def test_observe_composite_of_no_path_raises_ValueError():
    async with device_and_server() as (server, _):
        with pytest.raises(ValueError, match="at least one path"):
            await server.observe_composite(EP, [])


async def test_observe_composite_sends_its_notification_attributes_for_every_path():
    async with device_and_server() as (server, device):
        observation = await server.observe_composite(EP, ["/3/0/14", "/5/0/3"], pmin=2, pmax=60)
        try:
            assert device.client is not None
            (observed,) = device.client.observations
            assert (observed.attributes.pmin, observed.attributes.pmax) == (2, 60)
            assert sorted(map(str, observed.paths)) == ["/3/0/14", "/5/0/3"]
        finally:
            await observation.cancel()


async def test_observe_composite_with_attributes_the_device_refuses_raises_LwM2MError():
    async with device_and_server() as (server, _):
        with pytest.raises(LwM2MError) as caught:
            await server.observe_composite(EP, ["/3/0/14"], epmin=60, epmax=2)  # epmax < epmin
        assert caught.value.code is Code.BAD_REQUEST


async def test_observe_composite_refused_by_the_device_raises_LwM2MError():
    async with device_and_server() as (server, device):
        with pytest.raises(LwM2MError) as caught:
            await server.observe_composite(EP, ["/3/0/14"], accept=CF.TEXT)
        assert caught.value.code is Code.NOT_ACCEPTABLE
        assert caught.value.operation == "Observe-Composite"
        assert device.client is not None and not device.client._observers


@contextlib.asynccontextmanager
async def running_server() -> AsyncIterator[Server]:
    """A server with no device: the test registers its own."""
    server = await Server.start(request_timeout=TIMEOUT)
    try:
        yield server
    finally:
        await server.stop()


async def round_trip(server: Server) -> None:
    """A request to the junk device and its answer: what it sent before has arrived."""
    with contextlib.suppress(LwM2MError, CodecError):
        await server.read("junk", "/3/0/0")


class JunkDevice(aiocoap.resource.ObservableResource):
    """A misbehaving device: it answers an Observe-Composite with whatever it is told to."""

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload
        self.observers = 0

    async def render_fetch(self, request: Message) -> Message:
        return Message(payload=self.payload, content_format=CF.SENML_CBOR)

    def update_observation_count(self, count: int) -> None:
        self.observers = count

    def notify(self, payload: bytes) -> None:
        self.payload = payload
        self.updated_state()


@contextlib.asynccontextmanager
async def junk_device(server: Server, payload: bytes) -> AsyncIterator[JunkDevice]:
    """A ``JunkDevice`` registered to ``server`` as ``"junk"``."""
    junk = JunkDevice(payload)
    context, _ = await open_context(junk, "127.0.0.1")
    try:
        register = Message(
            code=CoapCode.POST,
            uri=f"{server.uri}/rd?ep=junk&lwm2m=1.1",
            payload=b"</>;ct=112,</3/0>,</5/0>",
            content_format=CF.LINK_FORMAT,
        )
        response = await asyncio.wait_for(context.request(register).response, TIMEOUT)
        assert response.code == CoapCode.CREATED
        yield junk
    finally:
        await context.shutdown()


GOOD = encode({UTC_OFFSET: "+00:00"}, CF.SENML_CBOR, "/")


async def test_a_junk_composite_notification_raises_a_codec_error_and_the_observation_goes_on():
    async with running_server() as server, junk_device(server, GOOD) as junk:
        observation = await server.observe_composite("junk", [UTC_OFFSET])
        assert observation.value == {UTC_OFFSET: "+00:00"}
        async with notifications(observation) as values:
            for payload in (b"\xff\xfe", b"\x81\x01", b"\x81\xa1\x00\x01"):
                junk.notify(payload)
                with pytest.raises(CodecError):
                    await values.next()
            junk.notify(encode({UTC_OFFSET: "+09:00"}, CF.SENML_CBOR, "/"))
            assert await values.next() == {UTC_OFFSET: "+09:00"}


async def test_a_junk_first_answer_raises_a_codec_error_and_lets_go_of_the_observation():
    async with running_server() as server, junk_device(server, b"\xff junk") as junk:
        with pytest.raises(CodecError):
            await server.observe_composite("junk", [UTC_OFFSET])
        assert junk.observers == 1
        junk.notify(GOOD)  # acknowledged and dropped: aiocoap lets go of the token
        await round_trip(server)
        junk.notify(GOOD)  # answered with RST: the device stops
        async with asyncio.timeout(TIMEOUT):
            while junk.observers:
                await asyncio.sleep(0)  # a yield to the loop, not a wait for time
