"""The LwM2M client on real CoAP: registration, device management, observe and firmware push.

An LwM2M client is a CoAP *client* and a CoAP *server* on one UDP socket:

* as a client it **registers** (``POST /rd?ep=NAME&lt=LIFETIME&lwm2m=1.1&b=U`` with its object
  links), **updates** the registration before the lifetime runs out, **sends** data
  (``POST /dp``) and **de-registers** (``DELETE /rd/LOCATION``) when it stops;
* as a server it answers the LwM2M server's Device Management requests — Read, Write, Execute,
  Discover, Observe, ... — which arrive at the address the registration came from. That is why
  both roles must share the socket: the server learns where to send requests from the source of
  the Register datagram.

This module is the thin async edge around the sans-I/O pieces: ``dm.DataModel`` decides what
every request means and answers it, ``observe.Observations`` decides when a notification is
due. Here we only move messages between aiocoap and those two, keep the registration alive and
run the timers. Every request is answered at once (piggy-backed): servers such as Wakaama do not
wait for separate responses, so slow work (a download, a reboot) goes on in the background.

A push of a firmware package (a Block1 Write to /5/0/0 in Content-Format 42) is streamed: each
block goes straight to ``FirmwareObject.write_package`` — the package is never held whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiocoap
from aiocoap import Code as CoapCode
from aiocoap import Message, interfaces
from aiocoap.blockwise import Block1Spool, IncompleteException
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from .coap import bound_address, open_context, udp_transport
from .codecs import ContentFormat, encode
from .codecs.linkformat import encode_links
from .dm import DataModel, Method, Refused, Request, Response
from .objects import Code
from .observe import InvalidAttributes, Observations
from .paths import Path, PathError

__all__ = ["Client", "ClientError", "RetryPolicy"]

#: RFC 7252's MAX_TRANSMIT_WAIT with default parameters: how long a CON exchange may take.
MAX_TRANSMIT_WAIT = 93.0
FIRMWARE_PACKAGE = Path(5, 0, 0)
_PACKAGE_URI_PATH = FIRMWARE_PACKAGE.uri_path
#: aiocoap's code for each of ours (a push answers a thousand blocks per MiB with them)
_COAP_CODES = {code: CoapCode(int(code)) for code in Code}
#: /1/x/1 Lifetime: a write changes ``lt`` and triggers an Update.
SERVER_OBJECT, LIFETIME = 1, 1
#: The 1.2 ``con`` attribute as aiocoap takes it: 1 sends notifications CON, 0 NON.
_CON_TUNING = {1: aiocoap.Reliable(), 0: aiocoap.Unreliable()}


def no_log(line: str) -> None:
    """The ``log`` of a client given none. The client formats the line of each push block (a
    thousand per MiB) only for another ``log``: pass this, or None, to log nothing."""


class ClientError(Exception):
    """The client could not do what was asked (e.g. the server refused the registration)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries registering with an absent server: ``first`` seconds, doubling
    up to ``longest`` (Anjay Lite doubles its Communication Retry Timer the same way)."""

    first: float = 1.0
    longest: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.first * 2 ** (attempt - 1), self.longest)


@dataclass
class _Observer:
    """One observation: the pipe its notifications go into, and how to encode them."""

    pipe: object
    paths: list[Path]
    content_format: int
    composite: bool
    confirmed_at: float  #: when the last confirmable notification went (or the observation began)


@dataclass
class _Registration:
    location: tuple[str, ...] = ()
    registered_at: float = 0.0
    links: bytes = b""
    lifetime: int | None = None  #: the ``lt`` the server has now
    registered: asyncio.Event = field(default_factory=asyncio.Event)


class Client:
    """An LwM2M client for ``endpoint`` serving ``data_model`` from one UDP socket.

    ``await client.start("coap://127.0.0.1:5683")`` binds (loopback, a free port unless
    ``port`` is given), registers and returns once registered; ``await client.stop()``
    de-registers and closes everything. ``log`` receives one line per request served and per
    registration event, so a person can follow along.

    ``queue_mode=True`` registers with the ``Q`` parameter: the client is reachable only for
    ``awake_time`` seconds after it last exchanged a message, then it stops listening (as a
    battery device turns its radio off). The server holds its requests until the client's
    next Update, which wakes it.
    """

    def __init__(
        self,
        endpoint: str,
        data_model: DataModel,
        *,
        lifetime: int = 300,
        binding: str = "U",
        queue_mode: bool = False,
        awake_time: float = MAX_TRANSMIT_WAIT,
        host: str = "127.0.0.1",
        port: int = 0,
        retry: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.data_model = data_model
        self.lifetime = lifetime
        self.binding = binding
        self.queue_mode = queue_mode
        #: queue mode: how long the client stays reachable after it last exchanged a message
        self.awake_time = awake_time
        self.asleep = False
        self._sleep_timer: asyncio.TimerHandle | None = None
        self.host, self.port = host, port
        self.retry = retry
        self.clock = clock
        self.log = log or no_log
        self.server_uri: str | None = None
        self.context: aiocoap.Context | None = None
        self.observations = Observations()
        self._observers: dict[object, _Observer] = {}
        self._registration = _Registration()
        self._tasks: list[asyncio.Task] = []
        self._wakeup = asyncio.Event()
        self.bootstrapping = False
        self._bootstrap_finished: asyncio.Future[None] | None = None
        self._instances_changed = False
        self.after_response: list[Callable[[], None]] = []
        data_model.on_change.append(self._value_changed)
        data_model.on_instances_changed.append(self._instance_set_changed)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        if self.context is None:
            raise ClientError("the client is not started")
        return bound_address(self.context)

    @property
    def registered(self) -> bool:
        return self._registration.registered.is_set()

    @property
    def location(self) -> str:
        return "/" + "/".join(self._registration.location)

    async def start(
        self, server_uri: str | None = None, *, bootstrap_uri: str | None = None
    ) -> None:
        """Bind, register with ``server_uri`` (retrying while it is absent), keep it registered.

        With ``bootstrap_uri`` instead, first ask that Bootstrap-Server for the configuration
        (client-initiated bootstrap), then register with the server it provisioned.
        """
        if self.context is not None:
            raise ClientError(f"{self.endpoint} is already started; stop() it first")
        if (server_uri is None) == (bootstrap_uri is None):
            raise ClientError("give start() either server_uri or bootstrap_uri")
        self.context, _ = await open_context(_ClientResource(self), self.host, self.port)
        self.log(f"{self.endpoint}: listening on {self.host}:{self.address[1]}")
        if bootstrap_uri is not None:
            server_uri = await self.bootstrap(bootstrap_uri)
        assert server_uri is not None
        self.server_uri = server_uri.rstrip("/")
        self._tasks = [
            asyncio.create_task(self._keep_registered(), name=f"{self.endpoint} registration"),
            asyncio.create_task(self._notify(), name=f"{self.endpoint} notifications"),
        ]
        await self._registration.registered.wait()

    async def stop(self, *, deregister: bool = True) -> None:
        """De-register (unless ``deregister=False``: a crash or reboot) and close the socket."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._sleep_timer is not None:
            self._sleep_timer.cancel()
        if deregister and self.registered and self.context is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._request(CoapCode.DELETE, self.location), 5)
                self.log(f"{self.endpoint}: de-registered")
        self._registration = _Registration()
        # Open observations simply end with the socket, as when a device loses power; after a
        # De-register the server has dropped them anyway.
        self._observers.clear()
        self.observations = Observations()
        if self.context is not None:
            await self.context.shutdown()
            self.context = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the registration interface ---------------------------------------------------------------

    def _links(self) -> bytes:
        return encode_links(self.data_model.registration_links(ContentFormat.SENML_CBOR))

    def _query(self) -> list[str]:
        query = [f"ep={self.endpoint}", f"lt={self.lifetime}", "lwm2m=1.1", f"b={self.binding}"]
        if self.queue_mode:
            query.append("Q")
        return query

    async def register(self) -> None:
        """Send Register; raises ``ClientError`` if the server refuses."""
        links = self._links()
        response = await self._request(
            CoapCode.POST, "/rd", query=self._query(), payload=links,
            content_format=ContentFormat.LINK_FORMAT,
        )  # fmt: skip
        if response.code != CoapCode.CREATED:
            raise ClientError(
                f"the server refused the registration: {response.code} "
                f"{response.payload.decode(errors='replace')}"
            )
        registration = self._registration
        registration.location = tuple(response.opt.location_path)
        registration.registered_at = self.clock()
        registration.links = links
        registration.lifetime = self.lifetime
        registration.registered.set()
        # A new registration starts without observations (the server dropped the old ones).
        self.observations = Observations()
        self._observers.clear()
        self.log(f"{self.endpoint}: registered at {self.location} (lifetime {self.lifetime} s)")

    async def update(self, *, with_links: bool = False) -> None:
        """Send a registration Update; registers again if the server forgot us (4.04).

        It carries ``lt`` when the lifetime changed (or links are sent) and the links when the
        objects or instances changed (or ``with_links``).
        """
        links = self._links()
        lifetime = self.lifetime
        with_links = with_links or links != self._registration.links
        send_lifetime = with_links or lifetime != self._registration.lifetime
        response = await self._request(
            CoapCode.POST, self.location, query=[f"lt={lifetime}"] if send_lifetime else [],
            payload=links if with_links else b"",
            content_format=ContentFormat.LINK_FORMAT if with_links else None,
        )  # fmt: skip
        if response.code == CoapCode.NOT_FOUND:
            self.log(f"{self.endpoint}: the server forgot the registration (4.04); registering")
            self._registration.registered.clear()
            await self.register()
            return
        if not response.code.is_successful():
            raise ClientError(f"the server refused the Update: {response.code}")
        self._registration.registered_at = self.clock()
        self._registration.links = links
        self._registration.lifetime = lifetime
        self.log(f"{self.endpoint}: registration updated")

    def next_update_in(self) -> float:
        """Seconds until the periodic Update, as Anjay Lite schedules it."""
        due = max(self.lifetime - MAX_TRANSMIT_WAIT, self.lifetime / 2)
        return max(0.0, self._registration.registered_at + due - self.clock())

    async def _keep_registered(self) -> None:
        attempt = 0
        while True:
            try:
                if not self.registered:
                    await self.register()
                    attempt = 0
                await asyncio.sleep(self.next_update_in())
                await self.update()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                attempt += 1
                delay = self.retry.delay(attempt)
                self.log(f"{self.endpoint}: {error}; retrying in {delay:g} s")
                self._registration.registered.clear()
                await asyncio.sleep(delay)

    def request_update(self) -> None:
        """Ask for an Update soon (/1/x/8 Registration Update Trigger, a new object instance)."""
        self._tasks.append(asyncio.create_task(self._update_now()))

    async def _update_now(self) -> None:
        with contextlib.suppress(Exception):
            await self.update()

    # -- queue mode -----------------------------------------------------------------------------

    def touch(self) -> None:
        """A message went in or out: in queue mode, stay awake ``awake_time`` seconds more."""
        if not self.queue_mode or self.context is None:
            return
        if self.asleep:
            self._listen(True)
            self.asleep = False
            self.log(f"{self.endpoint}: awake (queue mode)")
        if self._sleep_timer is not None:
            self._sleep_timer.cancel()
        self._sleep_timer = asyncio.get_running_loop().call_later(self.awake_time, self._sleep)

    def _sleep(self) -> None:
        if self.context is None:
            return
        self._listen(False)
        self.asleep = True
        self.log(f"{self.endpoint}: asleep (queue mode): unreachable until its next Update")

    def _listen(self, on: bool) -> None:
        """Turn the "radio" on or off: stop reading the socket, and on waking up throw away what
        arrived meanwhile (a sleeping device hears nothing). aiocoap's UDP transport has no
        pause_reading(), so this takes its reader off the event loop and puts it back."""
        transport = udp_transport(self.context)
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        loop = asyncio.get_running_loop()
        if not on:
            loop.remove_reader(sock.fileno())
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                sock.recv(65536)
        loop.add_reader(sock.fileno(), transport._read_ready)

    # -- the bootstrap interface --------------------------------------------------------------

    async def bootstrap(self, bootstrap_uri: str, *, timeout: float = 30.0) -> str:
        """Client-initiated bootstrap; returns the URI of the LwM2M server it was given.

        ``POST /bs?ep=NAME`` asks for the configuration; the Bootstrap-Server then writes /0
        and /1 (Bootstrap-Write), may delete and discover, and ends with Bootstrap-Finish,
        which the data model accepts only if the configuration is consistent.
        """
        self._bootstrap_finished = asyncio.get_running_loop().create_future()
        self.bootstrapping = True
        try:
            response = await self._request(
                CoapCode.POST, "/bs", base_uri=bootstrap_uri.rstrip("/"),
                query=[f"ep={self.endpoint}", f"pct={int(ContentFormat.SENML_CBOR)}"],
            )  # fmt: skip
            if not response.code.is_successful():
                raise ClientError(f"the Bootstrap-Server refused the request: {response.code}")
            self.log(f"{self.endpoint}: bootstrap requested from {bootstrap_uri}")
            async with asyncio.timeout(timeout):
                await self._bootstrap_finished
        finally:
            self.bootstrapping = False
        server_uri, lifetime = self._provisioned_server()
        self.lifetime = lifetime
        self.log(f"{self.endpoint}: bootstrapped: server {server_uri}, lifetime {lifetime} s")
        return server_uri

    def _provisioned_server(self) -> tuple[str, int]:
        security, servers = self.data_model.objects[0], self.data_model.objects[1]
        for account in security.accounts():
            if account.bootstrap or account.short_server_id is None:
                continue
            instance = servers.instance_for(account.short_server_id)
            if instance is not None:
                return account.uri, servers.lifetime(instance)
        raise ClientError("the bootstrap left no LwM2M server account in /0 and /1")

    def _bootstrap_finish(self) -> Response:
        response = self.data_model.bootstrap_finish(self.clock())
        finished = self._bootstrap_finished
        if response.code.is_success and finished is not None and not finished.done():
            # After the 2.04 has gone out: the client then registers with the new server.
            asyncio.get_running_loop().call_soon(finished.set_result, None)
        self.log(f"{self.endpoint}: POST /bs (Bootstrap-Finish) -> {response.code.dotted}")
        return response

    # -- Send -------------------------------------------------------------------------------------

    async def send(self, paths: list[Path | str]) -> None:
        """Send the values at ``paths`` to the server (``POST /dp``, SenML CBOR)."""
        values = {}
        for path in paths:
            values.update(self.data_model.read_values(Path(path)))
        payload = encode(values, ContentFormat.SENML_CBOR, "/")
        response = await self._request(
            CoapCode.POST, "/dp", payload=payload, content_format=ContentFormat.SENML_CBOR
        )
        if not response.code.is_successful():
            raise ClientError(f"the server refused Send: {response.code}")
        self.log(f"{self.endpoint}: sent {', '.join(str(p) for p in values)}")

    # -- observe ----------------------------------------------------------------------------------

    def _value_changed(self, path: Path) -> None:
        self.observations.changed([path], self.clock())
        self._wakeup.set()
        if path.object_id == SERVER_OBJECT and path.resource_id == LIFETIME:
            self._lifetime_written(path)

    @property
    def _may_update(self) -> bool:
        return self.registered and not self.bootstrapping

    def _lifetime_written(self, path: Path) -> None:
        """/1/x/1 of our server account (the first /1 instance) changed: Update with ``lt``."""
        instances = self.data_model[SERVER_OBJECT].instance_ids()
        if not instances or path.instance_id != instances[0]:
            return
        try:
            lifetime = self.data_model.read_values(path).get(path)
        except Refused:
            return
        if self.bootstrapping or not isinstance(lifetime, int) or lifetime == self.lifetime:
            return  # (after a bootstrap the client takes the lifetime it was provisioned with)
        self.lifetime = lifetime  # the next Register uses it, if not registered now
        if self._may_update:
            self.request_update()

    def _instance_set_changed(self) -> None:
        """An instance was created or deleted (DM Create/Delete): Update the links, and let
        every observation look again (an observed instance may be gone)."""
        self._instances_changed = True
        self.observations.changed([Path()], self.clock())
        self._wakeup.set()
        if self._may_update:
            self.request_update()

    async def _notify(self) -> None:
        while True:
            deadline = self.observations.next_deadline(self.clock())
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            self._wakeup.clear()
            if self._instances_changed:
                self._instances_changed = False
                self._end_vanished_observations()
            for notification in self.observations.due(self.clock(), self._read_paths):
                observer = self._observers.get(notification.key)
                if observer is None:
                    continue
                message = self._content(notification.values, observer)
                message.opt.observe = notification.sequence
                _set_con(message, self._confirmable(observer, notification.con))
                observer.pipe.add_response(message, is_last=False)

    def _confirmable(self, observer: _Observer, con: int | None) -> int | None:
        """The ``con`` a notification goes with: as asked, except that with ``con=0`` one goes
        confirmable at least every ``CONFIRMABLE_AT_LEAST_EVERY`` (RFC 7641 §4.5): its ACK, or
        its RST, tells the client whether the observer is still there."""
        now = self.clock()
        if con == 0 and now - observer.confirmed_at >= CONFIRMABLE_AT_LEAST_EVERY:
            con = 1
        if con != 0:  # 1, or unset: as the Observe came, which is CON (NON ones are refused)
            observer.confirmed_at = now
        return con

    def _end_vanished_observations(self) -> None:
        """End, with a final error notification, each observation whose path is gone (RFC 7641
        §3.2: an error response ends it). A composite observation just leaves such paths out."""
        for key, observer in list(self._observers.items()):
            if observer.composite:
                continue
            try:
                self.data_model.read_values(observer.paths[0])
            except Refused as refusal:
                self.log(f"{self.endpoint}: {observer.paths[0]} is gone; observation ended")
                self._observers.pop(key, None)
                con = self.observations[key].attributes.con if key in self.observations else None
                self.observations.cancel(key)
                message = _to_message(Response(refusal.code, diagnostic=refusal.diagnostic))
                _set_con(message, con)
                observer.pipe.add_response(message, is_last=True)

    def _read_paths(self, paths: list[Path]) -> dict[Path, object]:
        values: dict[Path, object] = {}
        for path in paths:
            try:
                values.update(self.data_model.read_values(path))
            except Refused:
                continue  # gone: left out, as Read-Composite does
        return values

    def _content(self, values: dict, observer: _Observer) -> Message:
        base = Path() if observer.composite else observer.paths[0]
        payload = encode(values, observer.content_format, base, model=self.data_model.model)
        return Message(
            code=CoapCode.CONTENT, payload=payload, content_format=observer.content_format
        )

    # -- plumbing ---------------------------------------------------------------------------------

    async def _request(
        self,
        code: CoapCode,
        path: str,
        *,
        query: list[str] | None = None,
        payload: bytes = b"",
        content_format: int | None = None,
        base_uri: str | None = None,
    ) -> Message:
        """A request to the LwM2M server (or to ``base_uri``: the Bootstrap-Server)."""
        base_uri = base_uri or self.server_uri
        if base_uri is None:
            raise ClientError("the client has no LwM2M server yet")
        if self.context is None:
            raise ClientError("the client is not started")
        self.touch()
        message = Message(code=code, uri=base_uri + path, payload=payload)
        if query:
            message.opt.uri_query = tuple(query)
        if content_format is not None:
            message.opt.content_format = content_format
        return await self.context.request(message).response

    def __repr__(self) -> str:
        state = f"registered at {self.location}" if self.registered else "not registered"
        return f"<Client {self.endpoint!r} {state}>"


class _ClientResource(interfaces.Resource):
    """Every request the LwM2M server sends us arrives here (aiocoap's root resource)."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self._block1 = _Block1Spool()

    async def needs_blockwise_assembly(self, request: Message) -> bool:
        return not _is_streamed_push(request)

    async def render(self, request: Message) -> Message:
        return _to_message(self._handle(request))

    def _handle(self, message: Message) -> Response:
        client = self.client
        if (
            client.bootstrapping
            and message.code == CoapCode.POST
            and (tuple(message.opt.uri_path) == ("bs",))
        ):
            return client._bootstrap_finish()
        request = _dm_request(message)
        if isinstance(request, Response):
            return request
        response = client.data_model.handle(request, client.clock(), bootstrap=client.bootstrapping)
        problem = "" if response.code.is_success or not response.diagnostic else response.diagnostic
        client.log(
            f"{client.endpoint}: {message.code.name} {request.path} -> {response.code.dotted}"
            + (f" ({problem})" if problem else "")
        )
        return response

    async def render_to_pipe(self, pipe) -> None:
        self.client.touch()
        request = pipe.request
        if request.opt.observe == 0 and request.code in (CoapCode.GET, CoapCode.FETCH):
            await self._observe(pipe)
        elif _is_streamed_push(request):
            pipe.add_response(self._push_block(request), is_last=True)
        else:
            if request.opt.observe == 1:
                self._cancel(pipe)
            await self._render_to_pipe(pipe)
        for callback in list(self.client.after_response):
            callback()

    async def _observe(self, pipe) -> None:
        client = self.client
        request = pipe.request
        response = self._handle(request)
        if not response.code.is_success:
            pipe.add_response(_to_message(response), is_last=True)
            return
        key = (request.remote, request.token)
        composite = request.code == CoapCode.FETCH
        dm_request = _dm_request(request)
        assert isinstance(dm_request, Request)  # _handle answered it successfully
        try:
            paths = (
                client.data_model.composite_paths(dm_request) if composite else [dm_request.path]
            )
            attributes = client.data_model.attributes_for(paths, dm_request.query)
        except (Refused, InvalidAttributes) as error:
            pipe.add_response(_to_message(_refusal(error)), is_last=True)
            return
        first = _to_message(response)
        first.opt.observe = 0
        client._observers[key] = _Observer(
            pipe, paths, response.content_format, composite, confirmed_at=client.clock()
        )
        client.observations.add(key, paths, attributes, client._read_paths(paths), client.clock())
        pipe.on_interest_end(lambda: self._forget(key))
        pipe.add_response(first, is_last=False)
        client._wakeup.set()

    def _forget(self, key: object) -> None:
        self.client._observers.pop(key, None)
        self.client.observations.cancel(key)

    def _cancel(self, pipe) -> None:
        request = pipe.request
        self._forget((request.remote, request.token))

    def _push_block(self, request: Message) -> Message:
        """One Block1 block of a firmware push, straight to the Package handlers."""
        client = self.client
        block = request.opt.block1
        problem = _block1_problem(block, request.payload)
        if problem:
            message = Message(code=CoapCode.BAD_REQUEST, payload=problem.encode())
            message.opt.block1 = block
            return message
        offset = block.start if block is not None else 0
        last = block is None or not block.more
        outcome = client.data_model.firmware.write_package(
            request.payload, offset=offset, last=last, now=client.clock()
        )
        if client.log is not no_log:
            client.log(
                f"{client.endpoint}: {request.code.name} /5/0/0 block "
                f"{block.block_number if block else 0} -> {outcome.code.dotted}"
            )
        message = Message(code=_COAP_CODES[outcome.code], payload=outcome.diagnostic.encode())
        if block is not None:
            message.opt.block1 = block
        if outcome.code is Code.REQUEST_ENTITY_TOO_LARGE and isinstance(outcome.value, int):
            message.opt.size1 = outcome.value  # how big a package may be (RFC 7959 §2.9.3)
        return message


class _Block1Spool(Block1Spool):
    """aiocoap's Block1 assembly, except that a block which does not go on where the body
    stopped (a gap, an overlap) is answered 4.08 Request Entity Incomplete: aiocoap 0.4.17
    raises a bare ValueError there, which it answers 5.00 and logs as a crash."""

    def feed_and_take(self, req: Message) -> Message:
        try:
            return super().feed_and_take(req)
        except ValueError:
            raise IncompleteException from None


def _block1_problem(block: BlockOption.BlockwiseTuple | None, payload: bytes) -> str | None:
    """Why a block of a streamed push (its Block1 option and payload) breaks RFC 7959, if it
    does (aiocoap checks the blocks it assembles itself, but a streamed one comes to us as it
    is)."""
    if block is None:
        return None
    if block.size_exponent == 7:
        return "Block1 SZX 7 is reserved over UDP (BERT is for CoAP over TCP); use 0..6"
    if block.more and len(payload) != block.size:
        return (
            f"Block1 block {block.block_number} says more follow (M=1), so it must carry "
            f"{block.size} bytes, not {len(payload)} (RFC 7959 §2.2)"
        )
    return None


def _dm_request(message: Message) -> Request | Response:
    """The sans-I/O request for an aiocoap message (or the error answer if it can't be one)."""
    for segment in message.opt.uri_path:
        if "/" in segment:  # one Uri-Path option is one path level, never two
            return Response(Code.NOT_FOUND, diagnostic=f"no LwM2M path has the level {segment!r}")
    try:
        path = Path.from_uri_path(message.opt.uri_path)
    except PathError as error:
        return Response(Code.NOT_FOUND, diagnostic=str(error))
    try:
        method = Method(int(message.code))
    except ValueError:
        return Response(Code.METHOD_NOT_ALLOWED, diagnostic=f"{message.code} is not LwM2M")
    return Request(
        method=method, path=path, payload=message.payload,
        content_format=message.opt.content_format, accept=message.opt.accept,
        query=tuple(message.opt.uri_query), observe=message.opt.observe,
        confirmable=message.mtype in (Type.CON, None),
    )  # fmt: skip


def _refusal(error: Exception) -> Response:
    if isinstance(error, Refused):
        return Response(error.code, diagnostic=error.diagnostic)
    return Response(Code.BAD_REQUEST, diagnostic=str(error))


def _is_streamed_push(request: Message) -> bool:
    return (
        request.code in (CoapCode.PUT, CoapCode.POST)
        and request.opt.uri_path == _PACKAGE_URI_PATH
        and request.opt.content_format in (None, ContentFormat.OPAQUE)
    )


#: RFC 7641 §4.5: notifications sent non-confirmable still go confirmable once in a while.
CONFIRMABLE_AT_LEAST_EVERY = 24 * 3600.0


def _set_con(notification: Message, con: int | None) -> None:
    """Send ``notification`` CON or NON as the ``con`` attribute says. Unset, aiocoap chooses:
    a notification goes as the Observe request came (CON or NON)."""
    if con is not None:
        # aiocoap would honour a set ``mtype`` too, but leaves it to its own layers and asks
        # applications for a tuning (Reliable / Unreliable), which it reads when it picks the
        # type. A response that can still go piggy-backed in an ACK goes there either way.
        notification.transport_tuning = _CON_TUNING[con]


def _to_message(response: Response) -> Message:
    payload = response.payload
    if not payload and response.diagnostic and not response.code.is_success:
        payload = response.diagnostic.encode()
    message = Message(code=CoapCode(int(response.code)), payload=payload)
    if response.content_format is not None and response.code.is_success:
        message.opt.content_format = response.content_format
    if response.location_path:
        message.opt.location_path = response.location_path
    return message


def new_endpoint_name(prefix: str = "lwm2m-edu") -> str:
    """A fresh endpoint name, e.g. ``lwm2m-edu-3f2a9c``."""
    return f"{prefix}-{secrets.token_hex(3)}"
