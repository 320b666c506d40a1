"""A teaching LwM2M server on aiocoap: registrations, device management, observe, FOTA.

In LwM2M the roles of CoAP flip after registration. A client *registers* (it is the CoAP client:
``POST /rd?ep=dev-1``); from then on the **server** sends the requests — Read, Write, Execute,
Observe — to the address the Register came from, and the device answers as a CoAP server::

    device                                            Server (this module)
      │ POST /rd?ep=dev-1&lt=300&lwm2m=1.1 </3/0>,</5>  │
      │ ───────────────────────────────────────────────►│ registry.register(...)
      │ ◄────────────── 2.01 Created  Location rd/0001 ──│ (answered at once: piggy-backed)
      │                     GET /5/0/3  Accept: 0         │ await server.read("dev-1", "/5/0/3")
      │ ◄─────────────────────────────────────────────── │
      │ ── 2.05 Content "0" ────────────────────────────►│ → 0 (Idle)

One aiocoap context does both jobs on one UDP socket: it serves ``/rd`` (and ``/bs`` when a
bootstrap plan is given) and sends the device-management requests.

**Device management from the server's side.** Every operation takes the endpoint name first and
a path (``"/5/0/3"`` or a ``Path``):

==========================  =========  ====================================================
``read(ep, path)``          GET        a resource's value, or ``{Path: value}`` for more
``discover(ep, path)``      GET 40     ``[Link]``: what exists there, with attributes
``write(ep, path, v)``      PUT/POST   replace (PUT) or partial update (POST, ``replace=False``)
``write_attributes``        PUT        ``pmin``/``pmax``/``gt``... in Uri-Query, no payload
``execute(ep, path)``       POST       a resource such as ``/5/0/2`` Update
``create`` / ``delete``     POST/DEL   object instances
``read_composite``          FETCH      several paths in one request (SenML)
``write_composite``         iPATCH     several values in one request (SenML)
``observe(ep, path)``       GET+Obs    an async iterator of notifications
``observe_composite``       FETCH+Obs  several paths, every notification carrying all (SenML)
==========================  =========  ====================================================

Formats: a single value travels as text/plain (opaque resources as raw bytes); anything bigger
as SenML CBOR when the client advertised ``ct=112`` on its root link (SenML JSON for ``110``),
else as TLV — the one format every LwM2M 1.0 client must accept, and what Wakaama and Leshan
ask for by default. Pass ``accept=`` / ``format=`` to choose.

A refusal from the device raises ``LwM2MError`` with the CoAP ``code`` (e.g. 4.05 for Execute
Update outside Downloaded), the path, the endpoint and the device's diagnostic text. A name that
is not registered raises ``UnknownEndpoint`` listing who is.

**Queue mode.** A client registered with ``b=UQ`` (1.0) or ``Q`` (1.1) sleeps; requests to it
wait until it next sends an Update (up to ``queue_timeout``), then go out at once.

**Observe, and its one limit.** ``observe()`` returns an ``Observation``: iterate it for decoded
notifications. ``observe_composite(ep, ["/3/0/14", "/5/0/3"])`` (LwM2M 1.1) observes several
paths with one FETCH to ``/`` carrying Observe=0 and the path list in SenML; the same
``Observation`` class serves it, its ``value`` always ``{Path: value}`` for every path, because
each notification carries them all. ``await observation.cancel()`` is a *passive* cancel:
nothing is sent. aiocoap (0.4.17) lets go of the token when the next notification arrives (that
one is acknowledged and dropped); the device's notification after it is answered with RST, and
the device drops the observation. The active cancel of RFC 7641 (GET with Observe=1 and the
*same* token; for a composite, Cancel Observe-Composite: FETCH with Observe=1) cannot be sent
with aiocoap, whose token manager gives every request a fresh token.

**Why FOTA needs observe.** An update takes minutes, spans a reboot, and the device — not the
server — decides when a download ends or fails. The server learns it from ``/5/0/3`` State and
``/5/0/5`` Update Result. ``wait_for`` observes both (and reads them when a notification may have
been missed), and when the device re-registers after its reboot it observes again on the new
registration: a new Register ends the observations of the old one. ``update`` runs the whole
procedure (package or URI → Downloaded → Execute Update → reboot → Idle with result 1) and returns
an ``UpdateOutcome`` with a log of its steps; ``campaign`` does that for many devices at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import aiocoap
import aiocoap.error
import aiocoap.resource
from aiocoap import Message
from aiocoap.numbers.codes import Code as CoapCode

from .coap import coap_uri, open_context
from .codecs import CodecError, ContentFormat, decode, encode, linkformat, senml
from .codecs.linkformat import Link
from .fota import State, UpdateResult
from .hosting import HostedPackage, PackageHost
from .model import DEFAULT_MODEL, Model, ResourceType, Value
from .objects.outcome import Code
from .package import Package
from .paths import Level, Path
from .registry import (
    DEFAULT_AWAKE_TIME,
    DEFAULT_GRACE,
    EventKind,
    Registration,
    RegistrationError,
    RegistrationEvent,
    Registry,
)

if TYPE_CHECKING:
    from .bootstrap import BootstrapPlan, _BootstrapService

__all__ = [
    "CampaignReport",
    "DeviceUnreachable",
    "FirmwareStatus",
    "LwM2MError",
    "Observation",
    "Server",
    "UnknownEndpoint",
    "UpdateOutcome",
    "UpdateStep",
]

PathLike = Path | str

STATE_PATH = Path("/5/0/3")
RESULT_PATH = Path("/5/0/5")
PACKAGE_PATH = Path("/5/0/0")
PACKAGE_URI_PATH = Path("/5/0/1")
UPDATE_PATH = Path("/5/0/2")

#: Block sizes RFC 7959 allows (SZX 0..6).
BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)

_HINTS = {
    Code.BAD_REQUEST: "the device found the request malformed (payload, arguments or path level)",
    Code.UNAUTHORIZED: "this server has no access right to that object",
    Code.NOT_FOUND: "the device has no such object, instance or resource",
    Code.METHOD_NOT_ALLOWED: (
        "the operation is not allowed on that resource, or not in its current state "
        "(Execute Update /5/0/2 is allowed only in Downloaded)"
    ),
    Code.NOT_ACCEPTABLE: "the device cannot answer in the format asked for: pass accept=...",
    Code.REQUEST_ENTITY_INCOMPLETE: "a Block1 block was missing or out of sequence",
    Code.REQUEST_ENTITY_TOO_LARGE: "the payload is too large for the device",
    Code.UNSUPPORTED_CONTENT_FORMAT: "the device does not read that format: pass format=...",
    Code.INTERNAL_SERVER_ERROR: "the device failed while doing it",
}


# -- errors -------------------------------------------------------------------------------------


class LwM2MError(Exception):
    """A device answered an operation with an error code.

    ``code`` is the CoAP code (a ``Code`` member when it is one; compare with
    ``Code.METHOD_NOT_ALLOWED``), ``path`` and ``endpoint`` say where, ``diagnostic`` is the text
    the device sent with it, and ``operation`` names what the server tried.
    """

    def __init__(
        self,
        code: int,
        *,
        endpoint: str,
        path: Path | None,
        operation: str,
        diagnostic: str = "",
    ) -> None:
        try:
            self.code: Code | int = Code(code)
        except ValueError:
            self.code = code
        self.endpoint = endpoint
        self.path = path
        self.operation = operation
        self.diagnostic = diagnostic
        where = f" {path}" if path is not None else ""
        text = f"{operation}{where} on {endpoint!r}: {CoapCode(code)}"
        if diagnostic:
            text += f" — the device says: {diagnostic}"
        hint = _HINTS.get(self.code)  # type: ignore[call-overload]
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class UnknownEndpoint(LookupError):
    """No client is registered under that endpoint name."""

    def __init__(self, endpoint: str, registered: Sequence[str]) -> None:
        self.endpoint = endpoint
        self.registered = tuple(registered)
        who = ", ".join(repr(e) for e in registered) if registered else "nobody yet"
        super().__init__(
            f"no client is registered as {endpoint!r}; registered: {who}. "
            "Start the device with this server's uri, or await server.wait_for_registration(ep)"
        )


class DeviceUnreachable(TimeoutError):
    """A request got no answer: timed out, the device is gone, or a queue-mode client slept on."""

    def __init__(self, message: str, *, endpoint: str, path: Path | None = None) -> None:
        self.endpoint = endpoint
        self.path = path
        super().__init__(message)


# -- the CoAP context ---------------------------------------------------------------------------


def error_response(code: int, reason: str) -> Message:
    """An error answer with a diagnostic payload (CoAP allows text on any 4.xx/5.xx)."""
    return Message(code=CoapCode(code), payload=reason.encode("utf-8"))


def diagnostic_of(response: Message) -> str:
    return response.payload.decode("utf-8", "replace") if response.payload else ""


async def exchange(
    context: Any,
    message: Message,
    *,
    timeout: float,
    endpoint: str,
    path: Path | None,
    operation: str,
    handle_blockwise: bool = True,
    check: bool = True,
) -> Message:
    """Send ``message`` and return the response; raise on silence or (with ``check``) errors."""
    request = context.request(message, handle_blockwise=handle_blockwise)
    return await response_of(
        request, timeout=timeout, endpoint=endpoint, path=path, operation=operation, check=check
    )


async def response_of(
    request: Any,
    *,
    timeout: float,
    endpoint: str,
    path: Path | None,
    operation: str,
    check: bool = True,
) -> Message:
    """Await the response of an aiocoap request, turning silence and errors into ours."""
    try:
        async with asyncio.timeout(timeout):
            response = await request.response
    except TimeoutError:
        raise DeviceUnreachable(
            f"{operation} {path or ''} on {endpoint!r}: no answer within {timeout:g} s "
            "(is the device still running? did it move to a new address without an Update?)",
            endpoint=endpoint,
            path=path,
        ) from None
    except aiocoap.error.Error as exc:
        raise DeviceUnreachable(
            f"{operation} {path or ''} on {endpoint!r} failed in transport: {exc!r}",
            endpoint=endpoint,
            path=path,
        ) from exc
    if check and not response.code.is_successful():
        raise LwM2MError(
            response.code,
            endpoint=endpoint,
            path=path,
            operation=operation,
            diagnostic=diagnostic_of(response),
        )
    return response


def content_format_of(response: Message, default: int) -> int:
    fmt = response.opt.content_format
    return default if fmt is None else int(fmt)


# -- value types the API hands out -------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareStatus:
    """What ``/5/0/3`` and ``/5/0/5`` say."""

    state: State
    result: UpdateResult

    def __str__(self) -> str:
        return f"{self.state.name}/{self.result.name}"


@dataclass(frozen=True)
class UpdateStep:
    at: float  #: seconds since the procedure started
    text: str


@dataclass(frozen=True)
class SentValues:
    """What a device reported with LwM2M Send (``POST /dp``): who, when, and the values."""

    endpoint: str
    at: float
    values: dict[Path, Any]


@dataclass
class UpdateOutcome:
    """How one firmware update went: ``ok``, the final status, and the log of steps."""

    endpoint: str
    mode: str
    ok: bool = False
    status: FirmwareStatus | None = None
    error: str | None = None
    reregistered: bool = False
    steps: list[UpdateStep] = field(default_factory=list)
    duration: float = 0.0

    def __str__(self) -> str:
        head = f"{self.endpoint}: {'updated' if self.ok else 'FAILED'} ({self.mode})"
        if self.error:
            head += f" — {self.error}"
        lines = [head] + [f"  {s.at:7.3f} s  {s.text}" for s in self.steps]
        return "\n".join(lines)


@dataclass
class CampaignReport:
    """The outcome of every device in a campaign, in the order given."""

    outcomes: list[UpdateOutcome]

    @property
    def succeeded(self) -> list[str]:
        return [o.endpoint for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[str]:
        return [o.endpoint for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def __getitem__(self, endpoint: str) -> UpdateOutcome:
        for outcome in self.outcomes:
            if outcome.endpoint == endpoint:
                return outcome
        raise KeyError(endpoint)

    def __str__(self) -> str:
        lines = [f"{len(self.succeeded)} of {len(self.outcomes)} devices updated"]
        for o in self.outcomes:
            lines.append(f"  {o.endpoint:<20} {'ok' if o.ok else 'FAILED':<7}{o.error or o.status}")
        return "\n".join(lines)


class Observation:
    """A running observation: ``value`` is the latest value; iterate for new ones.

    One class serves both kinds. ``observe`` watches one ``path`` (``value`` is that resource's
    value, or ``{Path: value}`` for an instance or object). ``observe_composite`` watches the
    ``paths`` it lists with one FETCH to ``/``: ``composite`` is true, ``path`` is ``/`` (what the
    FETCH targets) and ``value`` is always ``{Path: value}`` for every observed path — each
    notification carries all of them, so ``value`` is replaced as a whole.

    ``async for value in observation`` yields each notification, decoded; it ends when the device
    ends the observation. A notification that does not decode raises ``CodecError`` and the
    observation goes on (a misbehaving device must not end the server's listening, nor crash
    it). ``await cancel()`` cancels passively (see the module docstring).
    """

    def __init__(
        self,
        server: Server,
        endpoint: str,
        path: Path,
        request: Any,
        first: Message,
        fmt: int,
        *,
        composite: Sequence[Path] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.path = path
        #: the observed paths: ``(path,)``, or the list an Observe-Composite named
        self.paths: tuple[Path, ...] = (path,) if composite is None else tuple(composite)
        self.composite = composite is not None
        self._operation = "Observe-Composite" if self.composite else "Observe"
        self._server = server
        self._request = request
        self._format = fmt
        #: False when the device answered without an Observe option (it will not notify).
        self.accepted = first.opt.observe is not None
        try:
            self.value: Any = server._decode(first, path, fmt, endpoint)
        except CodecError:
            # Nobody will iterate an observation that was never handed out: let go of it now,
            # or aiocoap would go on acknowledging the device's notifications for ever.
            if self.accepted and not request.observation.cancelled:
                request.observation.cancel()
            raise
        self._ended = not self.accepted
        # Every notification is queued: aiocoap's own iterator keeps only the latest, and a
        # teaching server must not hide a State the device went through (1 before 2).
        self._queue: asyncio.Queue[Message | Exception] = asyncio.Queue()
        if self.accepted:
            observation = request.observation
            observation.register_callback(self._queue.put_nowait, _suppress_deprecation=True)
            observation.register_errback(self._queue.put_nowait, _suppress_deprecation=True)

    def _what(self) -> str:
        """What is observed, for messages: ``/5/0/3`` or ``[/3/0/14, /5/0/3]``."""
        if self.composite:
            return "[" + ", ".join(str(p) for p in self.paths) + "]"
        return str(self.path)

    def __aiter__(self) -> Observation:
        return self

    async def __anext__(self) -> Any:
        if self._ended:
            raise StopAsyncIteration
        message = await self._queue.get()
        if isinstance(message, Exception):
            self._ended = True
            if isinstance(
                message, aiocoap.error.NotObservable | aiocoap.error.ObservationCancelled
            ):
                raise StopAsyncIteration
            raise DeviceUnreachable(
                f"the {self._operation} of {self._what()} on {self.endpoint!r} ended: {message!r}",
                endpoint=self.endpoint,
                path=self.path,
            ) from message
        if not message.code.is_successful():
            self._ended = True
            raise LwM2MError(
                message.code,
                endpoint=self.endpoint,
                path=self.path,
                operation=self._operation,
                diagnostic=diagnostic_of(message),
            )
        self.value = self._server._decode(message, self.path, self._format, self.endpoint)
        return self.value

    async def cancel(self) -> None:
        """Stop listening. Passive: the device learns it from an RST to a later notification."""
        self._ended = True
        if not self._request.observation.cancelled:
            self._request.observation.cancel()

    def __repr__(self) -> str:
        kind = " composite" if self.composite else ""
        return f"<Observation{kind} {self.endpoint} {self._what()} value={self.value!r}>"


# -- the server ---------------------------------------------------------------------------------


class _Root(aiocoap.resource.Resource, aiocoap.resource.PathCapable):
    """The server's one resource: it routes ``/rd...`` and ``/bs`` by their Uri-Path."""

    def __init__(self, server: Server) -> None:
        super().__init__()
        self._server = server

    async def render(self, request: Message) -> Message:
        return self._server._handle(request)


ProgressCallback = Callable[[int, int], Any]


class Server:
    """An LwM2M server. Create it with ``await Server.start()`` (see the module docstring)."""

    def __init__(
        self,
        *,
        model: Model = DEFAULT_MODEL,
        request_timeout: float = 10.0,
        queue_timeout: float = 60.0,
        grace: float = DEFAULT_GRACE,
        awake_time: float = DEFAULT_AWAKE_TIME,
    ) -> None:
        # Use ``await Server.start()``; the constructor only sets up the bookkeeping.
        self.model = model
        self.request_timeout = request_timeout
        self.queue_timeout = queue_timeout
        self.registry = Registry(grace=grace, awake_time=awake_time)
        self.registry.add_listener(self._on_registry_event)
        self.context: Any = None
        self.host = ""
        self.port = 0
        self._bootstrap: _BootstrapService | None = None
        self._waiters: dict[str, list[asyncio.Future[Registration]]] = {}
        self._registry_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._package_host: PackageHost | None = None
        #: every LwM2M Send received, oldest first; ``send_listeners`` are called with each
        self.sent: list[SentValues] = []
        self.send_listeners: list[Callable[[SentValues], None]] = []
        self._hosted_count = 0
        self._stopped = False

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bootstrap: Mapping[str, BootstrapPlan] | None = None,
        model: Model = DEFAULT_MODEL,
        request_timeout: float = 10.0,
        queue_timeout: float = 60.0,
        grace: float = DEFAULT_GRACE,
        awake_time: float = DEFAULT_AWAKE_TIME,
    ) -> Server:
        """Bind ``host:port`` (port 0 = a free one) and serve ``/rd``.

        ``bootstrap`` maps endpoint names to a ``BootstrapPlan``: the server then also serves
        ``/bs`` and bootstraps those clients toward itself (a plan without ``server_uri`` points
        at this server). ``request_timeout`` bounds each request to a device; ``queue_timeout``
        how long a request waits for a sleeping queue-mode client. ``grace`` and ``awake_time``
        go to the ``Registry``.
        """
        server = cls(
            model=model,
            request_timeout=request_timeout,
            queue_timeout=queue_timeout,
            grace=grace,
            awake_time=awake_time,
        )
        server.context, server.port = await open_context(_Root(server), host, port)
        server.host = host
        if bootstrap is not None:
            from .bootstrap import _BootstrapService

            server._bootstrap = _BootstrapService(
                server.context, model=model, request_timeout=request_timeout, default_uri=server.uri
            )
            for endpoint, plan in bootstrap.items():
                server._bootstrap.add_plan(endpoint, plan)
        server._spawn(server._expire_registrations())
        return server

    @property
    def uri(self) -> str:
        """Where clients register: ``coap://127.0.0.1:PORT``."""
        return coap_uri(self.host, self.port)

    @property
    def bootstrap(self) -> _BootstrapService | None:
        """The ``/bs`` service when started with ``bootstrap=``: ``wait_for_bootstrap``, plans."""
        return self._bootstrap

    async def stop(self) -> None:
        """Stop serving: cancel background work, shut the context and any package host."""
        if self._stopped:
            return
        self._stopped = True
        for waiters in self._waiters.values():
            for future in waiters:
                future.cancel()
        for endpoint in self.registry.endpoints:
            for future in self.registry.take_held(endpoint):
                future.cancel()
        if self._bootstrap is not None:
            await self._bootstrap.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._package_host is not None:
            await self._package_host.stop()
        if self.context is not None:
            await self.context.shutdown()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<Server {self.uri} registered: {', '.join(self.registry.endpoints) or 'none'}>"

    def _repr_html_(self) -> str:
        """The registrations as a table: endpoint, address, lifetime, binding, objects."""
        head = "".join(
            f"<th style='text-align:left'>{h}</th>"
            for h in ("endpoint", "address", "lifetime", "binding", "objects", "location")
        )
        rows = []
        for r in self.registry.registrations:
            cells = (
                r.endpoint,
                str(getattr(r.address, "hostinfo", None) or r.address),
                f"{r.lifetime} s" if r.lifetime else "never expires",
                r.binding + (" (queue mode)" if r.queue_mode and "Q" not in r.binding else ""),
                " ".join(f"/{oid}" for oid in r.objects) or "none",
                f"/{r.location}",
            )
            tds = (f"<td style='text-align:left'><code>{html.escape(c)}</code></td>" for c in cells)
            rows.append(f"<tr>{''.join(tds)}</tr>")
        if not rows:
            rows.append("<tr><td colspan='6'>no device registered yet</td></tr>")
        caption = f"Server {html.escape(self.uri)}: {len(self.registry)} registered"
        return f"<table><caption>{caption}</caption><tr>{head}</tr>{''.join(rows)}</table>"

    # -- registrations ----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return self.registry.endpoints

    def registration(self, endpoint: str) -> Registration:
        """The current registration of ``endpoint``, or ``UnknownEndpoint``."""
        registration = self.registry.get(endpoint)
        if registration is None:
            raise UnknownEndpoint(endpoint, self.registry.endpoints)
        return registration

    def add_listener(self, listener: Callable[[RegistrationEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` on every registered/updated/deregistered/expired event."""
        return self.registry.add_listener(listener)

    async def wait_for_registration(
        self, endpoint: str, *, timeout: float | None = 10.0, new: bool = False
    ) -> Registration:
        """The registration of ``endpoint``, waiting for it to Register if it has not yet.

        ``new=True`` waits for the *next* Register even if the endpoint is registered now
        (e.g. after asking a device to reboot).
        """
        current = self.registry.get(endpoint)
        if current is not None and not new:
            return current
        future: asyncio.Future[Registration] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(endpoint, []).append(future)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise DeviceUnreachable(
                f"{endpoint!r} did not register within {timeout:g} s; registered: "
                f"{', '.join(self.registry.endpoints) or 'nobody'} (server at {self.uri})",
                endpoint=endpoint,
            ) from None
        finally:
            waiters = self._waiters.get(endpoint, [])
            if future in waiters:
                waiters.remove(future)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _on_registry_event(self, event: RegistrationEvent) -> None:
        self._registry_changed.set()
        endpoint = event.registration.endpoint
        if event.kind in (EventKind.REGISTERED, EventKind.UPDATED):
            # The client just talked: whatever waited for a sleeping queue-mode client goes now.
            for future in self.registry.take_held(endpoint):
                if not future.done():
                    future.set_result(None)
        if event.kind is EventKind.REGISTERED:
            for future in self._waiters.pop(endpoint, []):
                if not future.done():
                    future.set_result(event.registration)

    async def _expire_registrations(self) -> None:
        while True:
            self._registry_changed.clear()
            delay = self.registry.next_expiry() - self._now()
            if delay <= 0:
                self.registry.expire(self._now())
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._registry_changed.wait(), min(delay + 0.01, 3600))

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- incoming: /rd and /bs ----------------------------------------------------------------

    def _handle(self, request: Message) -> Message:
        # Synchronous on purpose: every answer goes out piggy-backed on the ACK (Wakaama
        # matches responses by message ID and never sees a separate response).
        path = request.opt.uri_path
        if path == ("bs",) and self._bootstrap is not None:
            return self._bootstrap.handle_request(request)
        if path == ("dp",):
            return self._send_request(request)
        if not path or path[0] != self.registry.location_prefix:
            return error_response(
                Code.NOT_FOUND,
                f"nothing at /{'/'.join(path)}: clients register with POST /rd?ep=<name>"
                + (", bootstrap with POST /bs?ep=<name>" if self._bootstrap else ""),
            )
        try:
            return self._registration_request(request, path)
        except RegistrationError as exc:
            return error_response(exc.code, exc.reason)

    def _send_request(self, request: Message) -> Message:
        """LwM2M Send (``POST /dp``, SenML): a registered device reports values unasked."""
        if request.code != aiocoap.POST:
            return error_response(Code.METHOD_NOT_ALLOWED, "Send is POST /dp")
        sender = self.registry.by_address(request.remote)
        if sender is None:
            return error_response(Code.NOT_FOUND, "Send from an address that is not registered")
        fmt = request.opt.content_format
        if fmt not in (ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON):
            return error_response(
                Code.UNSUPPORTED_CONTENT_FORMAT, "Send carries SenML CBOR (112) or JSON (110)"
            )
        try:
            values = decode(request.payload, fmt, "/", model=self.model)
        except CodecError as error:
            return error_response(Code.BAD_REQUEST, str(error))
        report = SentValues(sender.endpoint, self._now(), values)
        self.sent.append(report)
        for listener in list(self.send_listeners):
            listener(report)
        return Message(code=aiocoap.CHANGED)

    def _registration_request(self, request: Message, path: tuple[str, ...]) -> Message:
        query = request.opt.uri_query
        fmt = request.opt.content_format
        fmt = None if fmt is None else int(fmt)
        now = self._now()
        if len(path) == 1:
            if request.code != CoapCode.POST:
                return error_response(
                    Code.METHOD_NOT_ALLOWED, "Register is POST /rd?ep=<name>&lt=...&lwm2m=1.1"
                )
            registration = self.registry.register(
                query, request.payload, request.remote, now, content_format=fmt
            )
            return Message(code=CoapCode.CREATED, location_path=registration.location_path)
        if len(path) == 2:
            location = "/".join(path)
            if request.code == CoapCode.POST:
                self.registry.update(
                    location, query, request.payload, request.remote, now, content_format=fmt
                )
                return Message(code=CoapCode.CHANGED)
            if request.code == CoapCode.DELETE:
                self.registry.deregister(location)
                return Message(code=CoapCode.DELETED)
            return error_response(
                Code.METHOD_NOT_ALLOWED,
                f"at /{location} a client may POST (Update) or DELETE (De-register)",
            )
        return error_response(Code.NOT_FOUND, f"no registration at /{'/'.join(path)}")

    # -- outgoing: device management ----------------------------------------------------------

    async def _reachable(self, endpoint: str) -> Registration:
        """The registration to send to, after waiting for a sleeping queue-mode client."""
        self.registration(endpoint)
        if self.registry.is_reachable(endpoint, self._now()):
            return self.registration(endpoint)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.registry.hold(endpoint, future)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await future
        except TimeoutError:
            self.registry.unhold(endpoint, future)
            raise DeviceUnreachable(
                f"{endpoint!r} is in queue mode and sent no Update within "
                f"{self.queue_timeout:g} s; the request was held for it and dropped",
                endpoint=endpoint,
            ) from None
        return self.registration(endpoint)

    def _message(
        self,
        registration: Registration,
        code: CoapCode,
        path: Path,
        *,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        query: Iterable[str] = (),
        **options: Any,
    ) -> Message:
        root = tuple(s for s in registration.root_path.split("/") if s)
        message = Message(code=code, uri_path=root + path.uri_path, payload=payload, **options)
        if content_format is not None:
            message.opt.content_format = content_format
        if accept is not None:
            message.opt.accept = accept
        if query:
            message.opt.uri_query = tuple(query)
        message.remote = registration.address
        return message

    async def request(
        self,
        endpoint: str,
        code: CoapCode,
        path: PathLike,
        *,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        query: Iterable[str] = (),
        operation: str | None = None,
        check: bool = True,
        handle_blockwise: bool = True,
        **options: Any,
    ) -> Message:
        """Send any CoAP request to a registered device and return the aiocoap response.

        The building block of every operation here: waits for a queue-mode client, puts the
        client's root path in front, bounds the wait by ``request_timeout`` and (with ``check``)
        raises ``LwM2MError`` on an error code. ``options`` are aiocoap message options.
        """
        target = Path(path)
        registration = await self._reachable(endpoint)
        message = self._message(
            registration,
            code,
            target,
            payload=payload,
            content_format=content_format,
            accept=accept,
            query=query,
            **options,
        )
        return await exchange(
            self.context,
            message,
            timeout=self.request_timeout,
            endpoint=endpoint,
            path=target,
            operation=operation or str(code),
            handle_blockwise=handle_blockwise,
            check=check,
        )

    def _single_valued(self, path: Path) -> bool:
        if path.level is Level.RESOURCE_INSTANCE:
            return True
        resource = self.model.resource(path)
        return path.level is Level.RESOURCE and resource is not None and not resource.multiple

    def _single_format(self, path: Path) -> ContentFormat:
        resource = self.model.resource(path)
        opaque = resource is not None and resource.type is ResourceType.OPAQUE
        return ContentFormat.OPAQUE if opaque else ContentFormat.TEXT

    def preferred_format(self, endpoint: str) -> ContentFormat:
        """The format for several values: SenML CBOR or JSON if the client listed it, else TLV."""
        formats = self.registration(endpoint).content_formats
        for fmt in (ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON):
            if fmt in formats:
                return fmt
        return ContentFormat.TLV

    def _format_for(self, endpoint: str, path: Path) -> ContentFormat:
        if self._single_valued(path):
            return self._single_format(path)
        return self.preferred_format(endpoint)

    def _decode(self, response: Message, path: Path, asked: int, endpoint: str) -> Any:
        fmt = content_format_of(response, asked)
        values = decode(response.payload, fmt, path, model=self.model)
        if path.level >= Level.RESOURCE and set(values) == {path}:
            return values[path]
        return values

    async def read(self, endpoint: str, path: PathLike, *, accept: int | None = None) -> Any:
        """Read ``path``: a single resource's value, or ``{Path: value}`` for anything more."""
        target = Path(path)
        fmt = self._format_for(endpoint, target) if accept is None else accept
        response = await self.request(endpoint, CoapCode.GET, target, accept=fmt, operation="Read")
        return self._decode(response, target, fmt, endpoint)

    async def discover(self, endpoint: str, path: PathLike) -> list[Link]:
        """Discover what exists under ``path``, with the attributes in force (Accept 40)."""
        response = await self.request(
            endpoint, CoapCode.GET, path, accept=ContentFormat.LINK_FORMAT, operation="Discover"
        )
        return linkformat.parse_links(response.payload)

    async def write(
        self,
        endpoint: str,
        path: PathLike,
        value: Value | Mapping[PathLike, Value],
        *,
        format: int | None = None,
        replace: bool = True,
    ) -> None:
        """Write one value to a resource, or ``{path: value}`` under ``path``.

        ``replace=True`` is Write-Replace (PUT): the target ends up holding exactly what was
        sent. ``replace=False`` is Partial Update (POST): only the resources sent change.
        """
        target = Path(path)
        values = (
            {Path(p): v for p, v in value.items()}
            if isinstance(value, Mapping)
            else {target: value}
        )
        if not isinstance(value, Mapping) and target.level < Level.RESOURCE:
            raise ValueError(
                f"write of one value needs a resource path such as /1/0/1, not {target}; "
                "for an instance pass a dict {path: value}"
            )
        if format is not None:
            fmt = format
        elif set(values) == {target} and self._single_valued(target):
            fmt = self._single_format(target)
        else:
            fmt = self.preferred_format(endpoint)
        payload = encode(values, fmt, target, model=self.model)
        await self.request(
            endpoint,
            CoapCode.PUT if replace else CoapCode.POST,
            target,
            payload=payload,
            content_format=fmt,
            operation="Write" if replace else "Write (partial update)",
        )

    async def write_attributes(
        self, endpoint: str, path: PathLike, **attributes: int | float | None
    ) -> None:
        """Write-Attributes: e.g. ``pmin=10, pmax=60``; ``None`` removes an attribute."""
        # Link checks each attribute's type and writes the values as link-format does.
        query = str(Link("/", attributes)).split(";")[1:]
        await self.request(endpoint, CoapCode.PUT, path, query=query, operation="Write-Attributes")

    async def execute(self, endpoint: str, path: PathLike, arguments: str = "") -> None:
        """Execute a resource (``/5/0/2`` Update), with optional arguments such as ``0='abc'``."""
        target = Path(path)
        if target.level is not Level.RESOURCE:
            raise ValueError(f"Execute targets a resource such as /5/0/2, not {target}")
        await self.request(
            endpoint,
            CoapCode.POST,
            target,
            payload=arguments.encode("utf-8"),
            content_format=ContentFormat.TEXT if arguments else None,
            operation="Execute",
        )

    async def create(
        self,
        endpoint: str,
        object_path: PathLike,
        values: Mapping[PathLike, Value],
        *,
        format: int | None = None,
    ) -> Path:
        """Create an object instance from ``{"/O/I/R": value}``; returns the new ``/O/I``."""
        target = Path(object_path)
        if target.level is not Level.OBJECT:
            raise ValueError(f"Create targets an object such as /1, not {target}")
        typed = {Path(p): v for p, v in values.items()}
        fmt = format if format is not None else self.preferred_format(endpoint)
        response = await self.request(
            endpoint,
            CoapCode.POST,
            target,
            payload=encode(typed, fmt, target, model=self.model),
            content_format=fmt,
            operation="Create",
        )
        location = response.opt.location_path
        if location:
            return Path.from_uri_path(location[-2:])
        instance_ids = {p.instance_id for p in typed}
        if len(instance_ids) == 1:
            return target / instance_ids.pop()  # type: ignore[operator]
        raise LwM2MError(
            response.code,
            endpoint=endpoint,
            path=target,
            operation="Create",
            diagnostic="the device sent no Location-Path, so the new instance is unknown",
        )

    async def delete(self, endpoint: str, path: PathLike) -> None:
        """Delete an object instance."""
        await self.request(endpoint, CoapCode.DELETE, path, operation="Delete")

    async def read_composite(
        self,
        endpoint: str,
        paths: Iterable[PathLike],
        *,
        format: int | None = None,
    ) -> dict[Path, Value]:
        """Read several paths in one FETCH; returns ``{Path: value}`` for all of them."""
        fmt = format if format is not None else self._senml_format(endpoint)
        response = await self.request(
            endpoint,
            CoapCode.FETCH,
            "/",
            payload=senml.encode_paths([Path(p) for p in paths], fmt),
            content_format=fmt,
            accept=fmt,
            operation="Read-Composite",
        )
        return decode(response.payload, content_format_of(response, fmt), "/", model=self.model)

    async def write_composite(
        self, endpoint: str, values: Mapping[PathLike, Value], *, format: int | None = None
    ) -> None:
        """Write values at several paths in one iPATCH."""
        fmt = format if format is not None else self._senml_format(endpoint)
        typed = {Path(p): v for p, v in values.items()}
        await self.request(
            endpoint,
            CoapCode.iPATCH,
            "/",
            payload=encode(typed, fmt, "/", model=self.model),
            content_format=fmt,
            operation="Write-Composite",
        )

    def _senml_format(self, endpoint: str) -> ContentFormat:
        fmt = self.preferred_format(endpoint)
        return ContentFormat.SENML_CBOR if fmt is ContentFormat.TLV else fmt

    async def observe(
        self,
        endpoint: str,
        path: PathLike,
        *,
        accept: int | None = None,
        **attributes: int | float | None,
    ) -> Observation:
        """Observe ``path``; ``attributes`` (``pmin=1``...) go in the Uri-Query (LwM2M 1.2)."""
        target = Path(path)
        fmt = self._format_for(endpoint, target) if accept is None else accept
        return await self._observe(
            endpoint, CoapCode.GET, target, fmt, operation="Observe", query=_query(attributes)
        )

    async def observe_composite(
        self,
        endpoint: str,
        paths: Iterable[PathLike],
        *,
        content_format: int | None = None,
        accept: int | None = None,
        **attributes: int | float | None,
    ) -> Observation:
        """Observe several paths in one request (Observe-Composite, LwM2M 1.1).

        A FETCH to ``/`` with Observe=0 whose payload lists the paths as SenML records that have
        names only (``[{"n": "/3/0/14"}, {"n": "/5/0/3"}]``), in ``content_format``: SenML CBOR
        (112) by default, SenML JSON (110) when the client listed only that. Every notification
        carries the values of *all* the paths, so ``value`` is always ``{Path: value}`` for all
        of them. ``accept`` asks for another answer format (default: that of the list). The
        device leaves out a path that does not exist, as Read-Composite does. ``attributes``
        (``pmin=1``...) go in the Uri-Query, for every path (LwM2M 1.2).
        """
        listed = [Path(p) for p in paths]
        if not listed:
            raise ValueError("Observe-Composite needs at least one path to observe")
        fmt = content_format if content_format is not None else self._senml_format(endpoint)
        return await self._observe(
            endpoint,
            CoapCode.FETCH,
            Path(),
            fmt if accept is None else accept,
            operation="Observe-Composite",
            composite=listed,
            payload=senml.encode_paths(listed, fmt),
            content_format=fmt,
            query=_query(attributes),
        )

    async def _observe(
        self,
        endpoint: str,
        code: CoapCode,
        target: Path,
        accept: int,
        *,
        operation: str,
        composite: Sequence[Path] | None = None,
        **message_options: Any,
    ) -> Observation:
        """Send one Observe=0 request (GET, or FETCH for a composite); the answer starts it."""
        registration = await self._reachable(endpoint)
        message = self._message(
            registration, code, target, accept=accept, observe=0, **message_options
        )
        # Without aiocoap's blockwise layer: its wrapper never lets go of the token, so a cancel
        # would never reach the device; notifications are small (aiocoap never splits them).
        request = self.context.request(message, handle_blockwise=False)
        first = await response_of(
            request,
            timeout=self.request_timeout,
            endpoint=endpoint,
            path=target,
            operation=operation,
        )
        return Observation(self, endpoint, target, request, first, accept, composite=composite)

    # -- firmware update --------------------------------------------------------------------------

    async def push_firmware(
        self,
        endpoint: str,
        data: bytes | Package,
        *,
        block_size: int = 512,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Write the package into ``/5/0/0`` block by block (Block1, Content-Format 42).

        Each block but the last must be answered 2.31 Continue; the device may ask for smaller
        blocks (a smaller SZX in its answer, or 4.13 with one) and the rest is sent at that size.
        ``progress(sent, total)`` is called after each acknowledged block. Returns the number of
        blocks sent.
        """
        payload = bytes(data)
        if block_size not in BLOCK_SIZES:
            raise ValueError(
                f"block_size must be one of {BLOCK_SIZES} (RFC 7959), not {block_size}"
            )
        szx = BLOCK_SIZES.index(block_size)
        total = len(payload)
        offset = 0
        blocks = 0
        while True:
            size = BLOCK_SIZES[szx]
            number = offset // size
            chunk = payload[offset : offset + size]
            more = offset + size < total
            options: dict[str, Any] = {"block1": (number, more, szx)}
            if number == 0:
                options["size1"] = total
            response = await self.request(
                endpoint,
                CoapCode.PUT,
                PACKAGE_PATH,
                payload=chunk,
                content_format=ContentFormat.OPAQUE,
                operation=f"Write (push, block {number})",
                check=False,
                handle_blockwise=False,
                **options,
            )
            answered = response.opt.block1
            if response.code == CoapCode.REQUEST_ENTITY_TOO_LARGE:
                if answered is not None and answered.size_exponent < szx:
                    szx = answered.size_exponent  # the device asks for smaller blocks: resend
                    continue
                limit = response.opt.size1
                raise LwM2MError(
                    response.code,
                    endpoint=endpoint,
                    path=PACKAGE_PATH,
                    operation="Write (push)",
                    diagnostic=diagnostic_of(response)
                    or (
                        f"the package is {total} bytes, the device takes at most {limit}"
                        if limit is not None
                        else "no smaller block size was offered"
                    ),
                )
            expected = CoapCode.CONTINUE if more else CoapCode.CHANGED
            if response.code != expected:
                if response.code.is_successful():
                    diagnostic = f"answered {response.code} where {expected} was due"
                else:
                    diagnostic = diagnostic_of(response)
                raise LwM2MError(
                    response.code if not response.code.is_successful() else Code.BAD_REQUEST,
                    endpoint=endpoint,
                    path=PACKAGE_PATH,
                    operation=f"Write (push, block {number})",
                    diagnostic=diagnostic,
                )
            blocks += 1
            offset += len(chunk)
            if progress is not None:
                progress(offset, total)
            if not more:
                return blocks
            if answered is not None and answered.size_exponent < szx:
                szx = answered.size_exponent  # renegotiated down; offset stays a multiple

    async def pull_firmware(
        self,
        endpoint: str,
        data_or_hosted: bytes | Package | Any,
        *,
        via: Literal["coap", "http"] = "coap",
        host: Any = None,
        name: str | None = None,
    ) -> str:
        """Host the package and write its URI to ``/5/0/1``; the device downloads it.

        ``data_or_hosted`` is the package (bytes or ``Package``) or something a ``PackageHost``
        already serves (with ``.coap_uri``/``.http_uri``). Without ``host``, the server starts
        its own ``PackageHost`` on its address the first time and stops it in ``stop()``; a
        package hosted here stays until then (``update`` and ``campaign`` stop hosting theirs
        when they end). Returns the URI written.
        """
        if via not in ("coap", "http"):
            raise ValueError(f"via must be 'coap' or 'http', not {via!r}")
        hosted = data_or_hosted
        if isinstance(data_or_hosted, bytes | bytearray | Package):
            hosted = await self._host(data_or_hosted, host=host, name=name)
        uri = hosted.coap_uri if via == "coap" else hosted.http_uri
        if uri is None:
            raise ValueError(f"the package host does not serve {via}; start it with {via}=True")
        await self.write(endpoint, PACKAGE_URI_PATH, uri)
        return uri

    def _package_name(self, data: bytes | Package) -> str:
        """A fresh name to host a package under: ``app-3.bin`` (a host refuses a name twice)."""
        self._hosted_count += 1
        stem = data.name if isinstance(data, Package) and data.name else "firmware"
        return f"{stem}-{self._hosted_count}.bin"

    async def _host(
        self, data: bytes | Package, *, host: PackageHost | None = None, name: str | None = None
    ) -> HostedPackage:
        """Serve ``data`` from ``host`` (default: the server's own package host)."""
        package_host = host or await self._own_package_host()
        return package_host.add(name or self._package_name(data), bytes(data))

    def _unhost(self, hosted: HostedPackage) -> None:
        """Stop serving a package the server hosted itself (after ``stop()``: already gone)."""
        if self._package_host is not None and hosted.name in self._package_host.packages:
            self._package_host.remove(hosted.name)

    async def _own_package_host(self) -> PackageHost:
        if self._package_host is None:
            self._package_host = await PackageHost.start(host=self.host, coap=True, http=True)
        return self._package_host

    async def firmware_status(self, endpoint: str) -> FirmwareStatus:
        """Read ``/5/0/3`` and ``/5/0/5`` now."""
        state = await self.read(endpoint, STATE_PATH)
        result = await self.read(endpoint, RESULT_PATH)
        return FirmwareStatus(State(state), UpdateResult(result))

    async def wait_for(
        self,
        endpoint: str,
        *,
        state: State | None = None,
        result: UpdateResult | None = None,
        timeout: float = 60.0,
        poll_interval: float = 5.0,
    ) -> FirmwareStatus:
        """Wait until ``/5/0/3`` is ``state`` and ``/5/0/5`` is ``result`` (``None`` = any).

        Driven by observing both resources; reads them when ``poll_interval`` passes with no
        notification, and observes again when the device re-registers (after its reboot).
        Raises ``DeviceUnreachable`` (a ``TimeoutError``) when ``timeout`` runs out.
        """

        def matches(status: FirmwareStatus) -> bool:
            return (state is None or status.state == state) and (
                result is None or status.result == result
            )

        return await self.watch_firmware(
            endpoint, matches, timeout=timeout, poll_interval=poll_interval
        )

    async def watch_firmware(
        self,
        endpoint: str,
        until: Callable[[FirmwareStatus], bool],
        *,
        timeout: float | None = 60.0,
        poll_interval: float = 5.0,
        on_status: Callable[[FirmwareStatus], Any] | None = None,
    ) -> FirmwareStatus:
        """Follow State and Update Result until ``until(status)`` is true; return that status."""
        last: list[FirmwareStatus] = []
        try:
            async with asyncio.timeout(timeout):
                statuses = self._firmware_statuses(endpoint, poll_interval)
                async with contextlib.aclosing(statuses):
                    async for status in statuses:
                        if not last or status != last[-1]:
                            last.append(status)
                            if on_status is not None:
                                on_status(status)
                        if until(status):
                            return status
        except TimeoutError:
            seen = " → ".join(str(s) for s in last) or "nothing"
            raise DeviceUnreachable(
                f"{endpoint!r}: the firmware status did not get there within {timeout} s "
                f"(seen: {seen})",
                endpoint=endpoint,
                path=STATE_PATH,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _firmware_statuses(
        self, endpoint: str, poll_interval: float
    ) -> AsyncIterator[FirmwareStatus]:
        """Every status seen, forever: observations per registration, reads as a fallback."""
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def on_event(event: RegistrationEvent) -> None:
            if event.registration.endpoint == endpoint and event.kind is EventKind.REGISTERED:
                events.put_nowait(("registered", None))

        remove = self.registry.add_listener(on_event)
        try:
            while True:
                await self.wait_for_registration(endpoint, timeout=None)
                values: dict[Path, int] = {}
                observations: list[Observation] = []
                feeders: list[asyncio.Task[None]] = []
                while not events.empty():  # what is left over belongs to the last round
                    events.get_nowait()
                try:
                    for path in (STATE_PATH, RESULT_PATH):
                        observation = await self.observe(endpoint, path)
                        observations.append(observation)
                        values[path] = observation.value
                        feeders.append(asyncio.ensure_future(_feed(observation, events)))
                    yield _status(values)
                    while True:
                        try:
                            kind, item = await asyncio.wait_for(events.get(), poll_interval)
                        except TimeoutError:
                            kind, item = "poll", None
                        if kind == "registered":
                            break  # a new Register ended our observations: observe again
                        if kind == "value":
                            values[item[0]] = item[1]
                        else:  # an observation ended, or it has been quiet: look for ourselves
                            status = await self.firmware_status(endpoint)
                            values = {STATE_PATH: status.state, RESULT_PATH: status.result}
                        yield _status(values)
                except (DeviceUnreachable, UnknownEndpoint):
                    # Rebooting, most likely: wait for it to register again.
                    while (await events.get())[0] != "registered":
                        pass
                finally:
                    for task in feeders:
                        task.cancel()
                    for observation in observations:
                        await observation.cancel()
                    await asyncio.gather(*feeders, return_exceptions=True)
        finally:
            remove()

    async def update(
        self,
        endpoint: str,
        data: bytes | Package | Any,
        *,
        mode: Literal["push", "pull"] = "push",
        via: Literal["coap", "http"] = "coap",
        timeout: float = 120.0,
        block_size: int = 512,
        progress: ProgressCallback | None = None,
        poll_interval: float = 5.0,
    ) -> UpdateOutcome:
        """Run a whole firmware update and return how it went (never raises for device trouble).

        1. the device must be Idle; 2. push the package (``mode="push"``) or write its URI
        (``"pull"``); 3. wait for Downloaded, or stop at a failure result; 4. Execute Update;
        5. wait (across the reboot and re-registration) for Idle with result 1 (success) or a
        failure result. Every step is logged in ``UpdateOutcome.steps``. A pull of bytes or a
        ``Package`` hosts it for this update only.
        """
        if mode not in ("push", "pull"):
            raise ValueError(f"mode must be 'push' or 'pull', not {mode!r}")
        outcome = UpdateOutcome(endpoint=endpoint, mode=mode if mode == "push" else f"pull/{via}")
        started = time.monotonic()

        def step(text: str) -> None:
            outcome.steps.append(UpdateStep(round(time.monotonic() - started, 3), text))

        def seen(status: FirmwareStatus) -> None:
            step(f"status {status}")

        hosted_here = None  # a package this update hosts, and stops hosting when it ends
        if mode == "pull" and isinstance(data, bytes | bytearray | Package):
            hosted_here = data = await self._host(data)
        try:
            async with asyncio.timeout(timeout):
                status = await self.firmware_status(endpoint)
                step(f"device is {status}")
                if status.state is not State.IDLE:
                    raise _Abort(
                        f"the device is {status.state.name}, not IDLE: finish or reset the "
                        "current update first (write an empty Package URI)"
                    )
                if mode == "push":
                    blocks = await self.push_firmware(
                        endpoint, data, block_size=block_size, progress=progress
                    )
                    step(f"pushed the package to /5/0/0 in {blocks} blocks of {block_size} B")
                else:
                    uri = await self.pull_firmware(endpoint, data, via=via)
                    step(f"wrote Package URI {uri}")
                status = await self.watch_firmware(
                    endpoint,
                    lambda s: s.state is State.DOWNLOADED or _failed(s),
                    timeout=None,
                    poll_interval=poll_interval,
                    on_status=seen,
                )
                if status.state is not State.DOWNLOADED:
                    raise _Abort(f"the download failed: {status.result.name}", status)
                before = self.registration(endpoint)
                try:
                    await self.execute(endpoint, UPDATE_PATH)
                    step("executed Update /5/0/2")
                except DeviceUnreachable:
                    # The answer may have been lost while the device went into its reboot: the
                    # Execute may well have worked. What the device reports next decides.
                    step("no answer to Execute Update: waiting to see whether the device updates")
                status = await self.watch_firmware(
                    endpoint,
                    lambda s: s.result is not UpdateResult.INITIAL,
                    timeout=None,
                    poll_interval=poll_interval,
                    on_status=seen,
                )
                after = self.registry.get(endpoint)
                outcome.reregistered = after is not None and after.location != before.location
                if outcome.reregistered:
                    step("the device re-registered (rebooted into the new firmware)")
                outcome.status = status
                if status.state is State.IDLE and status.result is UpdateResult.SUCCESS:
                    outcome.ok = True
                    step("update succeeded")
                else:
                    raise _Abort(f"the update failed: {status}", status)
        except _Abort as exc:
            outcome.error = str(exc)
            outcome.status = exc.status or outcome.status
        except (LwM2MError, DeviceUnreachable, UnknownEndpoint) as exc:
            outcome.error = str(exc)
        except CodecError as exc:  # the device answered something that does not decode
            outcome.error = f"the device's answer does not decode: {exc}"
        except TimeoutError:
            outcome.error = f"timed out after {timeout:g} s"
        finally:
            if hosted_here is not None:
                self._unhost(hosted_here)
        if outcome.error:
            step(f"failed: {outcome.error}")
        outcome.duration = round(time.monotonic() - started, 3)
        return outcome

    async def campaign(
        self,
        endpoints: Iterable[str],
        data: bytes | Package,
        *,
        mode: Literal["push", "pull"] = "push",
        via: Literal["coap", "http"] = "coap",
        concurrency: int = 4,
        progress: Callable[[int, int, UpdateOutcome], Any] | None = None,
        **update_options: Any,
    ) -> CampaignReport:
        """Update many devices, at most ``concurrency`` at a time; one failure stops no other.

        A pull campaign hosts the package once for everyone, until the last device is done.
        ``progress(done, total, outcome)`` is called as each device finishes.
        """
        names = list(endpoints)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        package: Any = data
        hosted_here = None  # hosted once for every device, until the campaign ends
        if mode == "pull" and isinstance(data, bytes | bytearray | Package):
            hosted_here = package = await self._host(data)
        limit = asyncio.Semaphore(concurrency)
        done = 0

        async def one(endpoint: str) -> UpdateOutcome:
            nonlocal done
            async with limit:
                outcome = await self.update(endpoint, package, mode=mode, via=via, **update_options)
            done += 1
            if progress is not None:
                progress(done, len(names), outcome)
            return outcome

        try:
            outcomes = await asyncio.gather(*(one(ep) for ep in names))
        finally:
            if hosted_here is not None:
                self._unhost(hosted_here)
        return CampaignReport(list(outcomes))


def _query(attributes: dict[str, int | float | None]) -> tuple[str, ...]:
    """Notification attributes as Uri-Query items: ``pmin=1``, ``gt=20.5``."""
    return tuple(str(Link("/", attributes)).split(";")[1:]) if attributes else ()


class _Abort(Exception):
    def __init__(self, message: str, status: FirmwareStatus | None = None) -> None:
        super().__init__(message)
        self.status = status


def _failed(status: FirmwareStatus) -> bool:
    # State and Update Result arrive in two notifications: a failure result seen while the
    # State still says Downloading is half the news. A failed download ends in Idle (T3-T11).
    return status.result not in (UpdateResult.INITIAL, UpdateResult.SUCCESS) and (
        status.state is not State.DOWNLOADING
    )


def _status(values: Mapping[Path, int]) -> FirmwareStatus:
    return FirmwareStatus(State(values[STATE_PATH]), UpdateResult(values[RESULT_PATH]))


async def _feed(observation: Observation, events: asyncio.Queue[tuple[str, Any]]) -> None:
    try:
        async for value in observation:
            events.put_nowait(("value", (observation.path, value)))
    except (LwM2MError, DeviceUnreachable):
        pass
    events.put_nowait(("ended", observation.path))
