"""Hostile input: malformed CoAP, garbage datagrams, bad registrations and Package URIs.

Every test runs on real UDP on loopback: our ``Server``, an ``EmulatedDevice`` registered to it,
and a raw aiocoap context (or a plain UDP socket) that sends what no well-behaved peer would.
The promise under test (DESIGN.md, principle 6): bad input from a peer gets a 4.xx (or an
honest 5.xx) answer or a clean drop — never a hang, never a traceback — and loses nothing: the
process keeps serving, other clients and their observations carry on.

``Watch`` records what would otherwise slip by: exceptions that reach the event loop's
exception handler, and errors aiocoap logs when a resource raised while rendering (it then
answers 5.00 itself). Each test asserts that nothing was recorded.

The fuzzed inputs are drawn by hypothesis, derandomized (the same examples on every run), in a
first synchronous pass; the async test then sends them all through one bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import aiocoap.resource
import cbor2
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code as CoapCode
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.optiontypes import BlockOption, OpaqueOption, StringOption, UintOption
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lwm2m_edu.codecs import CodecError, ContentFormat
from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.dm import Method, Request
from lwm2m_edu.fota import Protocol, State, UpdateResult
from lwm2m_edu.hosting import PackageHost
from lwm2m_edu.objects.outcome import Code
from lwm2m_edu.paths import Path
from lwm2m_edu.server import FirmwareStatus, Server

from .notifications import notifications

EP, OTHER = "dev-1", "dev-2"
PACKAGE = "/5/0/0"
IMAGE = bytes(factory_package("2.0.0", size=8 * 1024))
TIMEOUT = 5.0
CF = ContentFormat
#: Every content format LwM2M knows, the legacy numbers, and some it doesn't.
FORMATS = (0, 40, 42, 60, 110, 112, 11542, 1542, 11543, 11544, 1541, 1543, 50, 65000, 65535)
METHODS = (
    CoapCode.GET, CoapCode.POST, CoapCode.PUT, CoapCode.DELETE,
    CoapCode.FETCH, CoapCode.PATCH, CoapCode.iPATCH,
)  # fmt: skip
#: Every path the device has, and a few around them.
PATHS = (
    "/", "/1", "/1/0", "/1/0/1", "/1/0/8", "/3", "/3/0", "/3/0/0", "/3/0/11",
    "/3/0/11/0", "/3/0/13", "/5", "/5/0", "/5/0/0", "/5/0/1", "/5/0/2", "/5/0/3", "/5/0/8",
    "/5/0/10", "/5/0/13", "/5/0/0/99", "/0", "/0/0/0", "/65535", "/65534", "/-1", "/3/-0",
    "/abc", "/3/0/x", "/3/0/0/0/0", "/70000", "/3//0", "/bs", "/rd", "/dp",
)  # fmt: skip


# -- the watch: what must never happen ------------------------------------------------------------


class Watch(logging.Handler):
    """Exceptions the event loop was told about, and errors aiocoap logged while rendering."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[str] = []
        #: datagrams aiocoap dropped with a UnicodeDecodeError (see test_garbage_datagrams_...)
        self.undecodable_options = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(f"{record.name}: {record.getMessage()}")

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), UnicodeDecodeError):
            self.undecodable_options += 1
            return
        self.errors.append(f"event loop: {context.get('message')} {context.get('exception')!r}")

    @contextlib.contextmanager
    def installed(self) -> Any:
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        loop.set_exception_handler(self.loop_exception)
        logging.getLogger().addHandler(self)
        try:
            yield self
        finally:
            logging.getLogger().removeHandler(self)
            loop.set_exception_handler(previous)


def examples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` examples of ``strategy``, the same ones on every run (derandomized)."""
    drawn: list[Any] = []

    @settings(
        max_examples=count, derandomize=True, database=None, deadline=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


# -- the bench -------------------------------------------------------------------------------------


@dataclass
class Bench:
    server: Server
    device: EmulatedDevice
    other: EmulatedDevice
    raw_context: Any
    site: Any
    watch: Watch
    answers: dict[str, int] = field(default_factory=dict)

    async def to_server(
        self,
        code: CoapCode,
        path: str,
        query: tuple[str, ...] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> Message:
        """Send a request to the LwM2M server from the raw context."""
        message = request(code, path, payload, uri_query=query)
        if content_format is not None:
            message.opt.content_format = content_format
        message.unresolved_remote = f"127.0.0.1:{self.server.port}"
        return await self.send(message)

    @property
    def device_address(self) -> tuple[str, int]:
        assert self.device.client is not None
        return self.device.client.address

    async def send(self, message: Message, *, handle_blockwise: bool = False) -> Message:
        """Send ``message`` (remote = the device unless set) and return the answer."""
        if message.remote is None:
            host, port = self.device_address
            message.unresolved_remote = f"{host}:{port}"
        request = self.raw_context.request(message, handle_blockwise=handle_blockwise)
        response = await asyncio.wait_for(request.response, TIMEOUT)
        name = f"{response.code.dotted}"
        self.answers[name] = self.answers.get(name, 0) + 1
        return response

    async def healthy(self) -> None:
        """Both devices still answer the server, and nothing went wrong behind the scenes."""
        assert await self.server.read(EP, "/3/0/0") == "lwm2m_edu"
        assert await self.server.read(OTHER, "/3/0/0") == "lwm2m_edu"
        assert not self.watch.errors, self.watch.errors


@contextlib.asynccontextmanager
async def bench(**device_options: Any) -> AsyncIterator[Bench]:
    watch = Watch()
    with watch.installed():
        server = await Server.start(request_timeout=TIMEOUT)
        device = EmulatedDevice(EP, **device_options)
        other = EmulatedDevice(OTHER)
        raw_context = None
        site = aiocoap.resource.Site()
        try:
            raw_context = await aiocoap.Context.create_server_context(
                site, bind=("127.0.0.1", 0), transports=["udp6"]
            )
            await asyncio.wait_for(device.start(server.uri), 2 * TIMEOUT)
            await asyncio.wait_for(other.start(server.uri), 2 * TIMEOUT)
            yield Bench(server, device, other, raw_context, site, watch)
        finally:
            await device.stop()
            await other.stop()
            if raw_context is not None:
                await raw_context.shutdown()
            await server.stop()


def request(code: CoapCode, path: str, payload: bytes = b"", **options: Any) -> Message:
    """A request to ``path`` on the device (the bench fills in the address)."""
    segments = tuple(s for s in path.split("/")[1:]) if path != "/" else ()
    return Message(code=code, uri_path=segments, payload=payload, **options)


def code_class(response: Message) -> int:
    """2 for a success, 4 for a client error, 5 for a server error."""
    return int(response.code) >> 5


def is_error(response: Message) -> bool:
    return code_class(response) in (4, 5)


def block(path: str, number: int, more: bool, szx: int, payload: bytes, fmt: int) -> Message:
    """One Block1 block of a PUT to ``path``."""
    return request(CoapCode.PUT, path, payload, content_format=fmt, block1=(number, more, szx))


# -- fuzzing the client's resources ---------------------------------------------------------------

_segments = st.lists(
    st.one_of(
        st.sampled_from(["3", "0", "5", "65535", "-1", "+3", "03", "3/0", "", " 3", "٣", "1e3"]),
        st.text(max_size=20),
        st.text(alphabet="0123456789", min_size=250, max_size=255),
    ),
    max_size=5,
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
_senml_record = st.dictionaries(
    st.sampled_from(["bn", "n", "v", "vs", "vb", "vd", "vlo", "bt", "t", "bv", "u"]), _json
)
_cbor = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.integers(-3, 30), inner),
    max_leaves=8,
)
_tlv = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=6)), max_size=4).map(
    lambda items: b"".join(bytes([t, len(v)]) + v for t, v in items)
)
_payloads = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"\0", b"0", b"-1", b"1e999", b"nan", b"[]", b"{}", b'[{"n":1}]',
                     b"\xa0", b"\x9f", b"\xff" * 4, b"</3/0>", b"0='x',1", b"coap://x"]),
    st.text(max_size=100).map(str.encode),
    st.integers(250, 5000).map(lambda n: b"9" * n),
    st.lists(_senml_record, max_size=3).map(lambda r: json.dumps(r).encode()),
    st.lists(_senml_record, max_size=3).map(lambda r: cbor2.dumps(r)),
    _cbor.map(cbor2.dumps),
    _tlv,
)  # fmt: skip
_block = st.tuples(st.sampled_from([0, 1, 2, 1000, 2**20 - 1]), st.booleans(), st.integers(0, 7))


@dataclass(frozen=True)
class Malformed:
    """One hostile request: every field a fuzzer may twist."""

    method: int
    path: tuple[str, ...]
    payload: bytes
    content_format: int | None
    accept: int | None
    observe: int | None
    query: tuple[str, ...]
    confirmable: bool
    block1: tuple[int, bool, int] | None
    block2: tuple[int, bool, int] | None
    second_content_format: int | None
    extra_option: tuple[int, bytes] | None

    def message(self) -> Message:
        message = Message(
            code=CoapCode(self.method),
            transport_tuning=aiocoap.Reliable if self.confirmable else aiocoap.Unreliable,
            uri_path=self.path,
            payload=self.payload,
        )
        opt = message.opt
        for number, value in (
            (OptionNumber.CONTENT_FORMAT, self.content_format),
            (OptionNumber.CONTENT_FORMAT, self.second_content_format),
            (OptionNumber.ACCEPT, self.accept),
            (OptionNumber.OBSERVE, self.observe),
        ):
            if value is not None:
                opt.add_option(UintOption(number, value))
        for item in self.query:
            opt.add_option(StringOption(OptionNumber.URI_QUERY, item))
        for number, block in (
            (OptionNumber.BLOCK1, self.block1),
            (OptionNumber.BLOCK2, self.block2),
        ):
            if block is not None:
                opt.add_option(BlockOption(number, block))
        if self.extra_option is not None:
            opt.add_option(OpaqueOption(OptionNumber(self.extra_option[0]), self.extra_option[1]))
        return message


def _sometimes(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy`` one time in four, else None: most requests keep most options sane."""
    return st.integers(0, 3).flatmap(lambda n: strategy if n == 0 else st.none())


_formats = st.one_of(st.none(), st.sampled_from(FORMATS), st.integers(0, 2**16 - 1))
MALFORMED = st.builds(
    Malformed,
    method=st.sampled_from([int(m) for m in METHODS]),
    path=st.one_of(
        st.sampled_from(PATHS).map(lambda p: tuple(p.split("/")[1:]) if p != "/" else ()),
        _segments.map(tuple),
    ),
    payload=_payloads,
    content_format=_formats,
    accept=_formats,
    observe=_sometimes(st.sampled_from([0, 1, 2, 2**24 - 1])),
    query=st.lists(
        st.one_of(
            st.sampled_from(["pmin=1", "pmax=-1", "gt=abc", "depth=9", "lt=", "=", "pmin=1e400"]),
            st.text(max_size=40),
        ),
        max_size=3,
    ).map(tuple),
    confirmable=st.integers(0, 4).map(bool),
    block1=_sometimes(_block),
    block2=_sometimes(_block),
    second_content_format=_sometimes(st.sampled_from(FORMATS)),
    extra_option=_sometimes(
        st.tuples(st.sampled_from([9, 13, 65000, 2049]), st.binary(max_size=8))
    ),
)

#: How many fuzzed requests the client gets (the counts go into docs/reliability.md).
FUZZED_REQUESTS = 600


async def test_fuzzed_requests_to_every_client_resource_get_a_4xx_or_a_success_and_no_traceback():
    cases = examples(MALFORMED, FUZZED_REQUESTS)
    async with bench() as b:
        for case in cases:
            try:
                response = await b.send(case.message())
            except Exception as error:
                raise AssertionError(f"{case}: no answer ({error!r})") from error
            assert not b.watch.errors, (case, b.watch.errors)
            assert response.code != CoapCode.INTERNAL_SERVER_ERROR, (case, response.payload)
            assert response.code.is_successful() or is_error(response), (case, response)
        print(f"{len(cases)} fuzzed requests: {dict(sorted(b.answers.items()))}")
        await b.healthy()


async def test_an_assembled_block1_write_with_a_gap_is_answered_4_08_not_5_00():
    async with bench() as b:
        first = request(
            CoapCode.PUT, "/5/0/13", b"1" * 16, content_format=CF.TEXT, block1=(0, True, 0)
        )
        assert (await b.send(first)).code == CoapCode.CONTINUE
        gap = request(
            CoapCode.PUT, "/5/0/13", b"2", content_format=CF.TEXT, block1=(1000, False, 0)
        )
        response = await b.send(gap)
        assert response.code == CoapCode.REQUEST_ENTITY_INCOMPLETE
        await b.healthy()


async def test_a_push_block_far_past_the_last_one_is_answered_4_08_and_the_push_goes_on():
    async with bench() as b:
        first = block(PACKAGE, 0, True, 6, IMAGE[:1024], CF.OPAQUE)
        assert (await b.send(first)).code == CoapCode.CONTINUE
        far = block(PACKAGE, 1000, True, 6, IMAGE[1024:2048], CF.OPAQUE)
        assert (await b.send(far)).code == CoapCode.REQUEST_ENTITY_INCOMPLETE
        assert b.device.firmware.transfer.received == 1024  # nothing of block 1000 was kept
        second = block(PACKAGE, 1, True, 6, IMAGE[1024:2048], CF.OPAQUE)
        assert (await b.send(second)).code == CoapCode.CONTINUE
        await b.healthy()


async def test_a_push_block_with_the_largest_block_number_and_no_push_is_answered_4_08():
    async with bench() as b:
        message = block(PACKAGE, 2**20 - 1, True, 0, IMAGE[:16], CF.OPAQUE)
        assert (await b.send(message)).code == CoapCode.REQUEST_ENTITY_INCOMPLETE
        assert b.device.firmware.state is State.IDLE
        await b.healthy()


async def test_a_push_block_with_szx_7_bert_is_answered_4_00_and_starts_no_download():
    async with bench() as b:
        response = await b.send(block(PACKAGE, 0, True, 7, IMAGE[:1024], CF.OPAQUE))
        assert response.code == CoapCode.BAD_REQUEST, response.payload
        assert b"SZX 7" in response.payload
        assert b.device.firmware.state is State.IDLE
        await b.healthy()


async def test_a_push_block_saying_more_follow_on_a_short_payload_is_answered_4_00():
    async with bench() as b:
        response = await b.send(block(PACKAGE, 0, True, 6, IMAGE[:4], CF.OPAQUE))
        assert response.code == CoapCode.BAD_REQUEST, response.payload
        assert b"1024 bytes, not 4" in response.payload
        firmware = b.device.firmware
        assert (firmware.state, firmware.result) == (State.IDLE, UpdateResult.INITIAL)
        await b.healthy()


async def test_a_repeated_content_format_counts_only_its_first_occurrence():
    # RFC 7252 §5.4.5: a non-repeatable option beyond its first is treated as unrecognized, and
    # Content-Format is elective, so the extra one is ignored.
    async with bench() as b:
        message = request(CoapCode.PUT, "/5/0/13", b"60")
        message.opt.add_option(UintOption(OptionNumber.CONTENT_FORMAT, CF.TEXT))
        message.opt.add_option(UintOption(OptionNumber.CONTENT_FORMAT, CF.TLV))
        assert (await b.send(message)).code == CoapCode.CHANGED
        assert await b.server.read(EP, "/5/0/13") == 60
        unknown_first = request(CoapCode.PUT, "/5/0/13", b"61")
        unknown_first.opt.add_option(UintOption(OptionNumber.CONTENT_FORMAT, 65000))
        unknown_first.opt.add_option(UintOption(OptionNumber.CONTENT_FORMAT, CF.TEXT))
        assert (await b.send(unknown_first)).code == CoapCode.UNSUPPORTED_CONTENT_FORMAT
        assert await b.server.read(EP, "/5/0/13") == 60
        await b.healthy()


@pytest.mark.parametrize(
    "segments",
    [("3", "0", "0" * 1000), ("x" * 1000,), ("3", "0", "0", "0", "0", "0", "0", "0", "0")],
    ids=["1000-char-id", "1000-char-segment", "9-levels"],
)
async def test_an_oversized_uri_path_is_answered_4_04(segments):
    async with bench() as b:
        response = await b.send(Message(code=CoapCode.GET, uri_path=segments))
        assert response.code == CoapCode.NOT_FOUND
        await b.healthy()


async def test_an_oversized_uri_query_is_answered_4_00():
    async with bench() as b:
        message = request(CoapCode.PUT, "/3/0/0", uri_query=("pmin=" + "9" * 1000,))
        assert (await b.send(message)).code == CoapCode.BAD_REQUEST
        await b.healthy()


async def test_a_uri_path_segment_holding_a_slash_is_no_path():
    # One Uri-Path option is one level: ("3/0/0",) is the resource "3%2F0%2F0", not /3/0/0.
    async with bench() as b:
        response = await b.send(Message(code=CoapCode.GET, uri_path=("3/0/0",)))
        assert response.code == CoapCode.NOT_FOUND
        await b.healthy()


@pytest.mark.parametrize("path", ["/5/0/0/99", "/65535", "/-1", "/3/0/abc", "/3/0/0/0/0", "/0/0"])
async def test_every_method_on_a_path_that_is_no_resource_is_answered_4_xx(path):
    async with bench() as b:
        for method in METHODS:
            message = request(method, path, b"junk", content_format=CF.TEXT)
            response = await b.send(message)
            assert code_class(response) == 4, (method, response)
        await b.healthy()


@pytest.mark.parametrize("method", [CoapCode.FETCH, CoapCode.iPATCH, CoapCode.PATCH])
async def test_fetch_ipatch_and_patch_with_junk_in_every_format_are_answered_4_xx(method):
    async with bench() as b:
        for fmt in FORMATS:
            for payload in (b"junk", b"\xff\x00", b"[{}]", b"\x81\xa0"):
                message = request(method, "/", payload, content_format=fmt, accept=fmt)
                response = await b.send(message)
                assert code_class(response) == 4, (fmt, payload, response)
        await b.healthy()


def test_a_text_value_of_5000_digits_is_answered_4_00_by_the_data_model():
    # Python refuses int() of more than 4300 digits with a ValueError the text codec let
    # through. (Over UDP aiocoap reads at most 4096 bytes a datagram, so only the sans-I/O
    # DataModel meets such a payload whole.)
    device = EmulatedDevice(EP)
    device.bootloader.boot()
    device.server_uri = "coap://127.0.0.1:9"
    device._build()
    assert device.data_model is not None
    payload = b"9" * 5000
    response = device.data_model.handle(Request(Method.PUT, Path("/5/0/13"), payload, 0), 0.0)
    assert response.code is Code.BAD_REQUEST
    assert "5000 digits" in response.diagnostic


async def test_a_uri_path_id_of_4000_digits_is_answered_4_04():
    async with bench() as b:
        response = await b.send(Message(code=CoapCode.GET, uri_path=("3", "9" * 4000)))
        assert response.code == CoapCode.NOT_FOUND
        await b.healthy()


async def test_an_observe_with_a_4000_digit_pmin_in_its_query_is_answered_4_00_not_5_00():
    async with bench() as b:
        message = request(CoapCode.GET, "/3/0/0", observe=0, uri_query=("pmin=" + "9" * 4000,))
        assert (await b.send(message)).code == CoapCode.BAD_REQUEST
        await b.healthy()


async def test_a_period_too_big_for_the_timers_is_refused_and_observations_keep_notifying():
    # pmax=10**400 used to reach the observe engine, whose float arithmetic overflowed: the
    # client's notification task died and every observation on the device went quiet.
    async with bench() as b:
        pmax = request(CoapCode.PUT, "/5/0/13", uri_query=("pmax=1" + "0" * 400,))
        assert (await b.send(pmax)).code == CoapCode.BAD_REQUEST
        async with notifications(await b.server.observe(EP, "/5/0/13")) as values:
            await b.server.write(EP, "/5/0/13", 77)
            assert await values.next() == 77
        await b.healthy()


# -- garbage datagrams -----------------------------------------------------------------------------

#: Datagrams no CoAP endpoint could make sense of: empty, truncated headers, wrong versions,
#: token lengths 9-15, truncated options, a payload marker with no payload, invalid UTF-8 in a
#: Uri-Path, codes of the wrong class for the type.
GARBAGE = [
    b"", b"\x40", b"\x40\x01", b"\x40\x01\x00", b"\x00" * 4, b"\x80\x01\x00\x01",
    b"\xc0\x01\x00\x01", b"\x4f\x01\x00\x01", b"\x48\x01\x00\x01abc",
    b"\x40\x01\x00\x01\xb2\xff\xfe", b"\x40\x01\x00\x01\xff", b"\x40\x01\x00\x01\xdd\x00",
    b"\x40\x01\x00\x01\xee\xff\xff", b"\x50\x01\x00\x01", b"\x70\x00\x00\x01",
    b"\x60\x45\x00\x01", b"\x40\x00\x00\x01", b"\x40\xe1\x00\x01", b"\x40\x01\x00\x01\xf0",
    b"\x40\x02\x00\x01\xb2rd\x47ep=\xff\xfe\xfd",
    b"\x00" * 2000,
]  # fmt: skip
RANDOM_DATAGRAMS = 300


def garbage() -> list[bytes]:
    """The fixed garbage, then random datagrams (half of them with a CoAP version 1 header)."""
    header = st.tuples(st.integers(0, 255), st.binary(max_size=3)).map(
        lambda t: bytes([0x40 | (t[0] & 0x3F)]) + t[1]
    )
    random = st.one_of(
        st.binary(max_size=120),
        st.tuples(header, st.binary(max_size=60)).map(lambda t: t[0] + t[1]),
    )
    return GARBAGE + examples(random, RANDOM_DATAGRAMS)


async def _flood(address: tuple[str, int], datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in datagrams:
            sender.sendto(datagram, address)
            await asyncio.sleep(0)


async def test_garbage_datagrams_to_the_client_are_dropped_and_it_still_answers_a_read():
    async with bench() as b:
        await _flood(b.device_address, garbage())
        await b.healthy()
        # aiocoap 0.4.17 decodes Uri-Path/Uri-Query strictly as UTF-8 and lets the
        # UnicodeDecodeError reach the event loop (chrysn/aiocoap#417): the datagram is
        # dropped, the socket keeps reading. Counted here, not hidden.
        assert b.watch.undecodable_options >= 1


async def test_garbage_datagrams_to_the_server_are_dropped_and_it_still_serves():
    async with bench() as b:
        await _flood(("127.0.0.1", b.server.port), garbage())
        await b.healthy()
        response = await b.to_server(CoapCode.POST, "/rd", ("ep=late",), b"</3/0>", 40)
        assert response.code == CoapCode.CREATED
        assert b.server.endpoints == [EP, OTHER, "late"]


# -- the server: malformed registrations, updates, Send, notifications -----------------------------


@contextlib.asynccontextmanager
async def other_observed(b: Bench) -> AsyncIterator[Callable[[], Any]]:
    """Observe the well-behaved device; yields a check that it still notifies."""
    counter = iter(range(100, 10_000))
    async with notifications(await b.server.observe(OTHER, "/5/0/13")) as values:

        async def still_notifying() -> None:
            value = next(counter)
            await b.server.write(OTHER, "/5/0/13", value)
            assert await values.next() == value
            await b.healthy()

        yield still_notifying


TOO_BIG_LIFETIME = "1" + "0" * 30
MALFORMED_REGISTERS = [
    ("no-ep", ("lt=60",), b"</3/0>", 40, 0x80, "ep=<name>"),
    ("empty-ep", ("ep=",), b"</3/0>", 40, 0x80, "ep=<name>"),
    ("ep-of-1000-chars", ("ep=" + "e" * 1000,), b"</3/0>", 40, 0x80, "255"),
    ("ep-twice", ("ep=a", "ep=b"), b"</3/0>", 40, 0x80, "twice"),
    ("lt=-1", ("ep=x", "lt=-1"), b"</3/0>", 40, 0x80, "lt="),
    ("lt=abc", ("ep=x", "lt=abc"), b"</3/0>", 40, 0x80, "lt="),
    ("lt=10**30", ("ep=x", f"lt={TOO_BIG_LIFETIME}"), b"</3/0>", 40, 0x80, "at most"),
    ("lwm2m=9.9", ("ep=x", "lwm2m=9.9"), b"</3/0>", 40, 0x8C, "speaks LwM2M"),
    ("lwm2m=abc", ("ep=x", "lwm2m=abc"), b"</3/0>", 40, 0x80, "version"),
    ("b=XYZ", ("ep=x", "b=XYZ"), b"</3/0>", 40, 0x80, "binding letter"),
    ("Q=1", ("ep=x", "lwm2m=1.1", "Q=1"), b"</3/0>", 40, 0x80, "no value"),
    ("not-link-format", ("ep=x",), b"hello, world", 40, 0x80, "do not parse"),
    ("binary-payload", ("ep=x",), bytes(range(256)), 40, 0x80, "do not parse"),
    ("wrong-content-format", ("ep=x",), b"</3/0>", 0, 0x80, "Content-Format"),
    ("no-content-format", ("ep=x",), b"</3/0>", None, 0x80, "Content-Format"),
    ("huge-payload", ("ep=x",), b"<" * 60_000, 40, 0x80, "do not parse"),
]


@pytest.mark.parametrize(
    ("query", "payload", "fmt", "code", "reason"),
    [case[1:] for case in MALFORMED_REGISTERS],
    ids=[case[0] for case in MALFORMED_REGISTERS],
)
async def test_a_malformed_register_is_refused_with_its_reason_and_others_keep_working(
    query, payload, fmt, code, reason
):
    async with bench() as b, other_observed(b) as still_notifying:
        response = await b.to_server(CoapCode.POST, "/rd", query, payload, fmt)
        assert int(response.code) == code, response.payload
        assert reason in response.payload.decode(), response.payload
        assert b.server.endpoints == [EP, OTHER]
        await still_notifying()


async def test_a_lifetime_too_big_for_a_float_no_longer_stops_the_expiry_of_registrations():
    async with bench() as b:
        response = await b.to_server(CoapCode.POST, "/rd", ("ep=x", "lt=9" + "9" * 250), b"", 40)
        assert response.code == CoapCode.BAD_REQUEST
        expiry = [t for t in b.server._tasks if "_expire_registrations" in repr(t)]
        await asyncio.sleep(0)
        assert expiry and not any(t.done() for t in expiry)
        await b.healthy()


async def test_an_update_for_a_location_nobody_holds_is_answered_4_04():
    async with bench() as b, other_observed(b) as still_notifying:
        for code in (CoapCode.POST, CoapCode.DELETE):
            response = await b.to_server(code, "/rd/ffff", ("lt=60",))
            assert response.code == CoapCode.NOT_FOUND
            assert b"Register again" in response.payload
        await still_notifying()


@pytest.mark.parametrize(
    ("query", "payload", "fmt"),
    [
        (("ep=other",), b"", None),
        (("lwm2m=1.0",), b"", None),
        (("lt=abc",), b"", None),
        (("lt=" + "9" * 300,), b"", None),
        (("Q=yes",), b"", None),
        (("b=ZZ",), b"", None),
        (("lt=60", "lt=61"), b"", None),
        ((), b"\xff\xfe junk", 40),
        ((), b"</3/0>", 0),
    ],
    ids=["ep", "lwm2m", "lt=abc", "lt-300-digits", "Q=yes", "b=ZZ", "lt-twice", "junk-links",
         "wrong-format"],
)  # fmt: skip
async def test_a_malformed_update_is_answered_4_00_and_changes_nothing(query, payload, fmt):
    async with bench() as b, other_observed(b) as still_notifying:
        before = b.server.registration(EP)
        response = await b.to_server(CoapCode.POST, "/" + before.location, query, payload, fmt)
        assert response.code == CoapCode.BAD_REQUEST, response.payload
        after = b.server.registration(EP)
        assert (after.lifetime, after.binding, after.links) == (
            before.lifetime, before.binding, before.links
        )  # fmt: skip
        await still_notifying()


async def _register_raw(b: Bench, endpoint: str = "raw") -> str:
    response = await b.to_server(CoapCode.POST, "/rd", (f"ep={endpoint}",), b"</3/0>,</5/0>", 40)
    assert response.code == CoapCode.CREATED
    return "/".join(response.opt.location_path)


async def test_send_from_an_unregistered_address_is_answered_4_04():
    async with bench() as b:
        payload = b'[{"n":"/3/0/0","vs":"x"}]'
        response = await b.to_server(CoapCode.POST, "/dp", (), payload, CF.SENML_JSON)
        assert response.code == CoapCode.NOT_FOUND
        assert b.server.sent == []
        await b.healthy()


@pytest.mark.parametrize(
    ("code", "payload", "fmt", "expected"),
    [
        (CoapCode.POST, b"\xff\x00junk", CF.SENML_CBOR, CoapCode.BAD_REQUEST),
        (CoapCode.POST, b'[{"n":', CF.SENML_JSON, CoapCode.BAD_REQUEST),
        (CoapCode.POST, b'[{"n":"/3/0/0","v":"x","vs":1}]', CF.SENML_JSON, CoapCode.BAD_REQUEST),
        (CoapCode.POST, b"lwm2m_edu", CF.TEXT, CoapCode.UNSUPPORTED_CONTENT_FORMAT),
        (CoapCode.POST, b"\xa0", CF.LWM2M_CBOR, CoapCode.UNSUPPORTED_CONTENT_FORMAT),
        (CoapCode.POST, b"[]", None, CoapCode.UNSUPPORTED_CONTENT_FORMAT),
        (CoapCode.GET, b"", None, CoapCode.METHOD_NOT_ALLOWED),
    ],
    ids=["junk-cbor", "truncated-json", "two-values", "text", "lwm2m-cbor", "no-format", "GET"],
)
async def test_a_malformed_send_is_answered_4_xx_and_records_nothing(code, payload, fmt, expected):
    async with bench() as b, other_observed(b) as still_notifying:
        await _register_raw(b)
        response = await b.to_server(code, "/dp", (), payload, fmt)
        assert response.code == expected, response.payload
        assert b.server.sent == []
        await still_notifying()


SENDS = 150


async def test_fuzzed_sends_are_answered_2_04_or_4_00_and_never_crash_the_server():
    cases = examples(st.tuples(st.sampled_from([CF.SENML_JSON, CF.SENML_CBOR]), _payloads), SENDS)
    async with bench() as b:
        await _register_raw(b)
        for fmt, payload in cases:
            response = await b.to_server(CoapCode.POST, "/dp", (), payload, fmt)
            assert response.code in (CoapCode.CHANGED, CoapCode.BAD_REQUEST), (payload, response)
            assert not b.watch.errors, (payload, b.watch.errors)
        await b.healthy()


class JunkResource(aiocoap.resource.ObservableResource):
    """An observable resource of a misbehaving device: it notifies whatever it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.payload = b"0"

    async def render_get(self, request: Message) -> Message:
        return Message(payload=self.payload, content_format=CF.TEXT)

    def notify(self, payload: bytes) -> None:
        self.payload = payload
        self.updated_state()


async def test_junk_notifications_raise_a_codec_error_and_the_observation_goes_on():
    async with bench() as b, other_observed(b) as still_notifying:
        junk = JunkResource()
        b.site.add_resource(["5", "0", "3"], junk)
        await _register_raw(b, "junk")
        async with notifications(await b.server.observe("junk", "/5/0/3")) as values:
            for payload in (b"\xff\xfe", b"", b"1e999", b"-" * 300):
                junk.notify(payload)
                with pytest.raises(CodecError):
                    await values.next()
                await still_notifying()
            junk.notify(b"2")
            assert await values.next() == 2


async def test_an_update_of_a_device_that_answers_junk_fails_cleanly():
    async with bench() as b, other_observed(b) as still_notifying:
        junk = JunkResource()
        junk.payload = b"\xff junk"
        b.site.add_resource(["5", "0", "3"], junk)
        await _register_raw(b, "junk")
        outcome = await b.server.update("junk", IMAGE, timeout=TIMEOUT)
        assert not outcome.ok
        assert "does not decode" in (outcome.error or "")
        await still_notifying()


# -- Package URI checks through the wire -----------------------------------------------------------

PACKAGE_URIS = [
    # (id, URI, Update Result): 7 = Invalid URI (malformed), 9 = Unsupported protocol.
    ("file-no-host", "file:///etc/passwd", UpdateResult.INVALID_URI),
    ("file-localhost", "file://localhost/etc/passwd", UpdateResult.UNSUPPORTED_PROTOCOL),
    ("javascript", "javascript:alert(1)", UpdateResult.INVALID_URI),
    ("data", "data:application/octet-stream;base64,AAAA", UpdateResult.INVALID_URI),
    ("coap-300-char-path", "coap://127.0.0.1/" + "p" * 300, UpdateResult.INVALID_URI),
    ("http-user-info", "http://user:pass@127.0.0.1/fw.bin", UpdateResult.INVALID_URI),
    ("coap-user-info", "coap://evil.example@127.0.0.1/fw", UpdateResult.INVALID_URI),
    ("space", "coap://127.0.0.1/fw bin", UpdateResult.INVALID_URI),
    ("nul", "coap://127.0.0.1/fw\x00.bin", UpdateResult.INVALID_URI),
    ("bell", "coap://127.0.0.1/\x07", UpdateResult.INVALID_URI),
    ("newline", "coap://127.0.0.1/fw\n", UpdateResult.INVALID_URI),
    ("unclosed-ipv6", "coap://[::1/fw", UpdateResult.INVALID_URI),
    ("ipv6-junk", "coap://[zz]/fw", UpdateResult.INVALID_URI),
    ("no-host", "coap:///fw", UpdateResult.INVALID_URI),
    ("ftp", "ftp://127.0.0.1/fw", UpdateResult.UNSUPPORTED_PROTOCOL),
    ("coaps-not-offered", "coaps://127.0.0.1/fw", UpdateResult.UNSUPPORTED_PROTOCOL),
    ("coap-tcp-not-offered", "coap+tcp://127.0.0.1/fw", UpdateResult.UNSUPPORTED_PROTOCOL),
]


@pytest.mark.parametrize(
    ("uri", "result"), [c[1:] for c in PACKAGE_URIS], ids=[c[0] for c in PACKAGE_URIS]
)
async def test_a_hostile_package_uri_is_answered_4_00_with_its_update_result_and_nothing_is_fetched(
    uri, result
):
    async with bench() as b:
        response = await b.send(request(CoapCode.PUT, "/5/0/1", uri.encode(), content_format=0))
        assert response.code == CoapCode.BAD_REQUEST, response.payload
        assert await b.server.firmware_status(EP) == FirmwareStatus(State.IDLE, result)
        assert b.device.downloads == [] and not b.device._tasks
        await b.healthy()


async def test_a_scheme_the_device_does_not_list_in_5_0_8_is_answered_with_result_9():
    async with bench(protocols=(Protocol.COAP,)) as b:
        assert await b.server.read(EP, "/5/0/8") == {Path("/5/0/8/0"): int(Protocol.COAP)}
        response = await b.send(
            request(CoapCode.PUT, "/5/0/1", b"http://127.0.0.1/fw.bin", content_format=0)
        )
        assert response.code == CoapCode.BAD_REQUEST
        assert b"coap" in response.payload
        status = await b.server.firmware_status(EP)
        assert status == FirmwareStatus(State.IDLE, UpdateResult.UNSUPPORTED_PROTOCOL)
        assert b.device.downloads == []
        await b.healthy()


async def test_an_ipv6_literal_package_uri_is_a_valid_uri():
    # Over HTTP: the CoAP downloader shares the client's socket, bound to 127.0.0.1, which
    # can't reach ::1 (that download fails with Update Result 7, honestly).
    async with bench() as b:
        host = await PackageHost.start(host="::1", coap=False, http=True)
        try:
            hosted = host.add("fw.bin", IMAGE)
            assert hosted.http_uri.startswith("http://[::1]:")
            await b.server.write(EP, "/5/0/1", hosted.http_uri)
            await b.server.wait_for(EP, state=State.DOWNLOADED, timeout=TIMEOUT)
        finally:
            await host.stop()
        await b.healthy()
