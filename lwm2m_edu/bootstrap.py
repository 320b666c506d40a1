"""A bootstrap server: it tells a factory-fresh client which LwM2M server to use.

A device leaves the factory knowing only its Bootstrap-Server. It asks for its configuration,
and the bootstrap server *writes* it into the device's objects, then says it is done::

    device                                         BootstrapServer
      │ POST /bs?ep=dev-1                             │  Bootstrap-Request
      │ ─────────────────────────────────────────────►│
      │ ◄──────────────────────────── 2.04 Changed ───│  (answered at once)
      │ ◄──── DELETE /                                │  Bootstrap-Delete: forget old accounts
      │ ◄──── GET / (Accept 40)                       │  Bootstrap-Discover: what is left?
      │ ◄──── PUT /0/1  server URI, NoSec (3), ssid   │  Bootstrap-Write: Security instance
      │ ◄──── PUT /1/0  ssid, lifetime, binding       │  Bootstrap-Write: Server instance
      │ ◄──── POST /bs                                │  Bootstrap-Finish
      │ then: POST /rd?ep=dev-1 to the server written in /0/1/0

Bootstrap-Delete of ``/`` keeps the device's own Bootstrap-Server account (a ``/0`` instance with
resource 1 true) and the Device object, so the new Security instance must not overwrite it: the
Discover answer shows which ``/0`` instance ids are taken, and the first free one is used.

Writes use the format the client asked for with ``pct=`` in its Bootstrap-Request (LwM2M 1.1),
else TLV, which every client reads. Each endpoint follows a ``BootstrapPlan``; the result is a
``BootstrapReport`` with every step and its answer (``await wait_for_bootstrap(ep)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiocoap.resource
from aiocoap import Message
from aiocoap.numbers.codes import Code as CoapCode

from .coap import coap_uri, open_context
from .codecs import ContentFormat, encode, linkformat
from .model import DEFAULT_MODEL, Model
from .objects.outcome import Code
from .paths import Level, Path
from .server import DeviceUnreachable, LwM2MError, error_response, exchange

__all__ = ["BootstrapPlan", "BootstrapReport", "BootstrapServer", "BootstrapStep"]

#: /0/x/2 Security Mode 3: NoSec (plain CoAP).
NO_SEC = 3
_WRITE_FORMATS = (
    ContentFormat.SENML_CBOR,
    ContentFormat.SENML_JSON,
    ContentFormat.TLV,
    ContentFormat.LWM2M_CBOR,
)


@dataclass(frozen=True)
class BootstrapPlan:
    """What to write into one client: the server account it should use.

    ``server_uri=None`` means "the server this bootstrap service runs in" (``Server.start(
    bootstrap=...)``). ``discover`` runs Bootstrap-Discover before writing; ``delete_first``
    starts with Bootstrap-Delete ``/``.
    """

    server_uri: str | None = None
    short_server_id: int = 1
    lifetime: int = 300
    binding: str = "U"
    security_mode: int = NO_SEC
    delete_first: bool = True
    discover: bool = True


@dataclass(frozen=True)
class BootstrapStep:
    operation: str  #: "Bootstrap-Delete", "Bootstrap-Write", ...
    path: str
    answer: str  #: the CoAP code, e.g. "2.04 Changed"


@dataclass
class BootstrapReport:
    """How one bootstrap went."""

    endpoint: str
    ok: bool = False
    steps: list[BootstrapStep] = field(default_factory=list)
    error: str | None = None
    discovered: list[linkformat.Link] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.endpoint}: bootstrap {'done' if self.ok else 'FAILED'}"
        if self.error:
            head += f" — {self.error}"
        return "\n".join(
            [head] + [f"  {s.operation:<18} {s.path:<6} {s.answer}" for s in self.steps]
        )


class _BootstrapService:
    """``/bs`` on some context: answers Bootstrap-Request, then runs the plan in the background."""

    def __init__(
        self,
        context: Any,
        *,
        model: Model = DEFAULT_MODEL,
        request_timeout: float = 10.0,
        default_uri: str | None = None,
    ) -> None:
        self.context = context
        self.model = model
        self.request_timeout = request_timeout
        self.default_uri = default_uri
        self.plans: dict[str, BootstrapPlan] = {}
        self.reports: dict[str, BootstrapReport] = {}
        self._waiters: dict[str, list[asyncio.Future[BootstrapReport]]] = {}
        self._listeners: list[Callable[[BootstrapReport], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_plan(self, endpoint: str, plan: BootstrapPlan) -> None:
        if plan.server_uri is None and self.default_uri is None:
            raise ValueError(
                f"the plan for {endpoint!r} names no server_uri; a standalone BootstrapServer "
                "needs BootstrapPlan(server_uri=server.uri)"
            )
        self.plans[endpoint] = plan

    def add_listener(self, listener: Callable[[BootstrapReport], Any]) -> None:
        self._listeners.append(listener)

    def handle_request(self, request: Message) -> Message:
        if request.code != CoapCode.POST:
            return error_response(Code.METHOD_NOT_ALLOWED, "Bootstrap-Request is POST /bs?ep=...")
        query = dict(q.partition("=")[::2] for q in request.opt.uri_query)
        endpoint = query.get("ep")
        if not endpoint:
            return error_response(Code.BAD_REQUEST, "Bootstrap-Request needs ep=<endpoint name>")
        plan = self.plans.get(endpoint)
        if plan is None:
            known = ", ".join(sorted(self.plans)) or "none"
            return error_response(
                Code.BAD_REQUEST, f"no bootstrap plan for {endpoint!r} (plans for: {known})"
            )
        fmt = ContentFormat.TLV
        if query.get("pct", "").isdigit() and int(query["pct"]) in _WRITE_FORMATS:
            fmt = ContentFormat(int(query["pct"]))
        task = asyncio.ensure_future(self._run(endpoint, plan, request.remote, fmt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Message(code=CoapCode.CHANGED)

    async def wait_for_bootstrap(self, endpoint: str, *, timeout: float = 10.0) -> BootstrapReport:
        """The report of ``endpoint``'s next bootstrap (or the last one, if it already ran)."""
        if endpoint in self.reports:
            return self.reports[endpoint]
        future: asyncio.Future[BootstrapReport] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(endpoint, []).append(future)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise DeviceUnreachable(
                f"{endpoint!r} did not complete a bootstrap within {timeout:g} s",
                endpoint=endpoint,
            ) from None

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(
        self,
        report: BootstrapReport,
        remote: Any,
        operation: str,
        code: CoapCode,
        path: Path,
        **options: Any,
    ) -> Message:
        uri_path = options.pop("uri_path", path.uri_path)
        message = Message(code=code, uri_path=uri_path, **options)
        message.remote = remote
        shown = "/bs" if operation == "Bootstrap-Finish" else str(path)
        try:
            response = await exchange(
                self.context,
                message,
                timeout=self.request_timeout,
                endpoint=report.endpoint,
                path=None if operation == "Bootstrap-Finish" else path,
                operation=operation,
                check=False,
            )
        except DeviceUnreachable:
            report.steps.append(BootstrapStep(operation, shown, "no answer"))
            raise
        report.steps.append(BootstrapStep(operation, shown, str(response.code)))
        if not response.code.is_successful():
            raise LwM2MError(
                response.code,
                endpoint=report.endpoint,
                path=path,
                operation=operation,
                diagnostic=response.payload.decode("utf-8", "replace"),
            )
        return response

    async def _run(self, endpoint: str, plan: BootstrapPlan, remote: Any, fmt: int) -> None:
        await asyncio.sleep(0)  # the 2.04 to the Bootstrap-Request goes out first
        report = BootstrapReport(endpoint)
        try:
            if plan.delete_first:
                await self._send(report, remote, "Bootstrap-Delete", CoapCode.DELETE, Path())
            taken: set[int] = set()
            if plan.discover:
                response = await self._send(
                    report,
                    remote,
                    "Bootstrap-Discover",
                    CoapCode.GET,
                    Path(),
                    accept=ContentFormat.LINK_FORMAT,
                )
                report.discovered = linkformat.parse_links(response.payload)
                taken = {
                    p.instance_id  # type: ignore[misc]
                    for p in (link.path for link in report.discovered)
                    if p is not None and p.level is Level.INSTANCE and p.object_id == 0
                }
            security = Path(0, min(set(range(len(taken) + 1)) - taken))
            server = Path(1, 0)
            await self._write(report, remote, fmt, security, self._security_values(plan))
            await self._write(report, remote, fmt, server, self._server_values(plan))
            await self._send(
                report, remote, "Bootstrap-Finish", CoapCode.POST, Path(), uri_path=("bs",)
            )
            report.ok = True
        except (LwM2MError, DeviceUnreachable) as exc:
            report.error = str(exc)
        self.reports[endpoint] = report
        for future in self._waiters.pop(endpoint, []):
            if not future.done():
                future.set_result(report)
        for listener in list(self._listeners):
            listener(report)

    async def _write(
        self,
        report: BootstrapReport,
        remote: Any,
        fmt: int,
        instance: Path,
        values: Mapping[int, Any],
    ) -> None:
        typed = {instance / rid: value for rid, value in values.items()}
        await self._send(
            report,
            remote,
            "Bootstrap-Write",
            CoapCode.PUT,
            instance,
            payload=encode(typed, fmt, instance, model=self.model),
            content_format=fmt,
        )

    def _security_values(self, plan: BootstrapPlan) -> dict[int, Any]:
        return {
            0: plan.server_uri or self.default_uri,  # LwM2M Server URI
            1: False,  # Bootstrap-Server: no, a DM server
            2: plan.security_mode,  # 3 = NoSec
            3: b"",  # Public Key or Identity (none with NoSec)
            4: b"",  # Server Public Key
            5: b"",  # Secret Key
            10: plan.short_server_id,  # Short Server ID, ties /0 to /1
        }

    def _server_values(self, plan: BootstrapPlan) -> dict[int, Any]:
        return {
            0: plan.short_server_id,  # Short Server ID
            1: plan.lifetime,  # Lifetime
            6: True,  # Notification Storing When Disabled or Offline
            7: plan.binding,  # Binding
        }


class _Root(aiocoap.resource.Resource, aiocoap.resource.PathCapable):
    def __init__(self, service: _BootstrapService) -> None:
        super().__init__()
        self.service = service

    async def render(self, request: Message) -> Message:
        if request.opt.uri_path != ("bs",):
            return error_response(Code.NOT_FOUND, "a bootstrap server serves only POST /bs?ep=")
        return self.service.handle_request(request)


class BootstrapServer:
    """A standalone bootstrap server: ``await BootstrapServer.start(plans={...})``."""

    def __init__(self, service: _BootstrapService, host: str, port: int) -> None:
        self._service = service
        self.host = host
        self.port = port

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        plans: Mapping[str, BootstrapPlan] | None = None,
        model: Model = DEFAULT_MODEL,
        request_timeout: float = 10.0,
    ) -> BootstrapServer:
        service = _BootstrapService(None, model=model, request_timeout=request_timeout)
        for endpoint, plan in (plans or {}).items():
            service.add_plan(endpoint, plan)
        service.context, bound = await open_context(_Root(service), host, port)
        return cls(service, host, bound)

    @property
    def uri(self) -> str:
        return coap_uri(self.host, self.port)

    @property
    def reports(self) -> Mapping[str, BootstrapReport]:
        return self._service.reports

    def add_plan(self, endpoint: str, plan: BootstrapPlan) -> None:
        self._service.add_plan(endpoint, plan)

    def add_listener(self, listener: Callable[[BootstrapReport], Any]) -> None:
        self._service.add_listener(listener)

    async def wait_for_bootstrap(self, endpoint: str, *, timeout: float = 10.0) -> BootstrapReport:
        return await self._service.wait_for_bootstrap(endpoint, timeout=timeout)

    async def stop(self) -> None:
        await self._service.stop()
        await self._service.context.shutdown()

    async def __aenter__(self) -> BootstrapServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
