"""A test-only LwM2M client stand-in: just enough of a device to test the server for real.

It speaks real CoAP over UDP on 127.0.0.1 through one aiocoap server context (so the server's
requests come back to the socket the Register left from). Values live in a dict ``{Path: value}``
and travel through ``lwm2m_edu.codecs``. Object /5 is a tiny script, not the real state machine:

* a Block1 push to ``/5/0/0`` is taken block by block (the peer checks the order), goes to
  Downloading on the first block and Downloaded on the last (or Idle + ``download_result``);
* a Package URI write downloads it over CoAP or HTTP in the background;
* Execute ``/5/0/2`` is allowed only in Downloaded (else 4.05); it answers at once, then
  "reboots": the context is shut down, a new one is opened (a new port) and the peer registers
  again, with State Idle and Update Result ``update_result``;
* ``/5/0/3`` and ``/5/0/5`` are observable.

The real client lives in ``lwm2m_edu`` (written separately); this one exists so the server tests
don't depend on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import aiocoap
import aiocoap.resource
from aiocoap import Message
from aiocoap.numbers.codes import Code

from lwm2m_edu.coap import bound_port
from lwm2m_edu.codecs import (
    CodecError,
    ContentFormat,
    UnsupportedContentFormat,
    decode,
    encode,
    linkformat,
    senml,
)
from lwm2m_edu.codecs.linkformat import Link
from lwm2m_edu.fota import State, UpdateResult
from lwm2m_edu.model import DEFAULT_MODEL
from lwm2m_edu.paths import Level, Path, PathError

OBSERVABLE = (Path("/5/0/3"), Path("/5/0/5"))
PACKAGE, PACKAGE_URI, UPDATE = Path("/5/0/0"), Path("/5/0/1"), Path("/5/0/2")
STATE, RESULT = Path("/5/0/3"), Path("/5/0/5")


def default_values() -> dict[Path, Any]:
    return {
        Path("/1/0/0"): 1,
        Path("/1/0/1"): 300,
        Path("/1/0/6"): True,
        Path("/1/0/7"): "U",
        Path("/3/0/0"): "lwm2m_edu",
        Path("/3/0/1"): "peer",
        Path("/3/0/6/0"): 1,
        Path("/3/0/6/1"): 5,
        Path("/3/0/9"): 95,
        PACKAGE_URI: "",
        STATE: State.IDLE,
        RESULT: UpdateResult.INITIAL,
    }


def _bad(code: Code, text: str) -> Message:
    return Message(code=code, payload=text.encode())


class _Root(aiocoap.resource.ObservableResource, aiocoap.resource.PathCapable):
    def __init__(self, peer: Peer) -> None:
        super().__init__()
        self.peer = peer

    async def needs_blockwise_assembly(self, request: Message) -> bool:
        # The package arrives block by block; everything else is assembled by aiocoap.
        return not (request.code == Code.PUT and request.opt.uri_path == PACKAGE.uri_path)

    async def add_observation(self, request: Message, observation: Any) -> None:
        try:
            path = Path.from_uri_path(request.opt.uri_path)
        except PathError:
            return
        if path in OBSERVABLE:
            self.peer._observations.setdefault(path, set()).add(observation)
            observation.accept(lambda: self.peer._drop_observation(path, observation))
            self.peer._observers_changed()

    async def render(self, request: Message) -> Message:
        return self.peer._render(request)


class Peer:
    """A pretend device. ``await Peer.start("dev-1", server.uri)`` registers it."""

    def __init__(
        self,
        endpoint: str,
        *,
        values: Mapping[Path, Any] | None = None,
        lwm2m: str = "1.1",
        lifetime: int = 300,
        binding: str = "U",
        queue: bool = False,
        content_formats: Iterable[int] = (ContentFormat.SENML_CBOR,),
        max_block_size: int = 1024,
        max_package: int | None = None,
        download_result: UpdateResult = UpdateResult.INITIAL,
        update_result: UpdateResult = UpdateResult.SUCCESS,
    ) -> None:
        self.endpoint = endpoint
        self.values: dict[Path, Any] = default_values() if values is None else dict(values)
        self.lwm2m = lwm2m
        self.lifetime = lifetime
        self.binding = binding
        self.queue = queue
        self.content_formats = tuple(content_formats)
        self.max_szx = [16, 32, 64, 128, 256, 512, 1024].index(max_block_size)
        self.max_package = max_package
        self.download_result = download_result
        self.update_result = update_result
        self.context: Any = None
        self.port = 0
        self.server_uri = ""
        self.location: tuple[str, ...] = ()
        self.attributes: dict[Path, dict[str, str | None]] = {}
        self.executed: list[tuple[Path, str]] = []
        self.requests: list[tuple[str, str]] = []  #: (method, path) of every request served
        self.blocks: list[tuple[int, bool, int, int]] = []  #: (num, more, szx, length)
        self.package = bytearray()
        self.reboots = 0
        self.bootstrap_finished = asyncio.Event()
        self._observations: dict[Path, set[Any]] = {}
        self._observer_waiters: list[tuple[Path, int, asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life cycle -----------------------------------------------------------------------------

    @classmethod
    async def start(cls, endpoint: str, server_uri: str, **options: Any) -> Peer:
        peer = cls(endpoint, **options)
        await peer.open()
        await peer.register(server_uri)
        return peer

    async def open(self) -> None:
        self.context = await aiocoap.Context.create_server_context(
            _Root(self), bind=("127.0.0.1", 0), transports=["udp6"]
        )
        self.port = bound_port(self.context)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.context is not None:
            await self.context.shutdown()
            self.context = None

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- registration interface (the peer is the CoAP client here) ---------------------------

    def register_payload(self) -> bytes:
        objects: dict[int, set[int]] = {}
        for path in self.values:
            objects.setdefault(path.object_id, set()).add(path.instance_id)  # type: ignore[arg-type]
        links = linkformat.registration_links(
            [(oid, None, sorted(ids)) for oid, ids in objects.items()],
            content_formats=self.content_formats,
        )
        return linkformat.encode_links(links)

    def register_query(self) -> list[str]:
        query = [f"ep={self.endpoint}", f"lt={self.lifetime}", f"lwm2m={self.lwm2m}"]
        query.append(
            f"b={self.binding}Q" if self.queue and self.lwm2m == "1.0" else f"b={self.binding}"
        )
        if self.queue and self.lwm2m != "1.0":
            query.append("Q")
        return query

    async def send(
        self,
        code: Code,
        uri: str,
        *,
        query: Iterable[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> Message:
        message = Message(code=code, uri=uri, payload=payload)
        if query:
            message.opt.uri_query = tuple(query)
        if content_format is not None:
            message.opt.content_format = content_format
        return await self.context.request(message).response

    async def register(self, server_uri: str | None = None) -> Message:
        self.server_uri = server_uri or self.server_uri
        response = await self.send(
            Code.POST,
            self.server_uri + "/rd",
            query=self.register_query(),
            payload=self.register_payload(),
            content_format=ContentFormat.LINK_FORMAT,
        )
        if response.code == Code.CREATED:
            self.location = tuple(response.opt.location_path)
        return response

    async def update(self, query: Iterable[str] = (), payload: bytes = b"") -> Message:
        return await self.send(
            Code.POST,
            self.server_uri + "/" + "/".join(self.location),
            query=query,
            payload=payload,
            content_format=ContentFormat.LINK_FORMAT if payload else None,
        )

    async def deregister(self) -> Message:
        return await self.send(Code.DELETE, self.server_uri + "/" + "/".join(self.location))

    async def bootstrap(self, bootstrap_uri: str) -> Message:
        """Bootstrap-Request; ``bootstrap_finished`` is set when the server sends Finish."""
        self.bootstrap_finished.clear()
        return await self.send(Code.POST, bootstrap_uri + "/bs", query=[f"ep={self.endpoint}"])

    async def reboot(self) -> None:
        """Close the socket, open a new one (new port) and Register again, as after a reboot."""
        old, self.context = self.context, None
        await old.shutdown()
        self._observations.clear()
        await self.open()
        self.reboots += 1
        await self.register()

    # -- observation bookkeeping -----------------------------------------------------------------

    def observers(self, path: Path | str) -> int:
        return len(self._observations.get(Path(path), ()))

    async def wait_observers(self, path: Path | str, count: int) -> None:
        """Wait until ``path`` has exactly ``count`` observers."""
        if self.observers(path) == count:
            return
        future = asyncio.get_running_loop().create_future()
        self._observer_waiters.append((Path(path), count, future))
        await future

    def _drop_observation(self, path: Path, observation: Any) -> None:
        self._observations.get(path, set()).discard(observation)
        self._observers_changed()

    def _observers_changed(self) -> None:
        for waiter in list(self._observer_waiters):
            path, count, future = waiter
            if self.observers(path) == count and not future.done():
                future.set_result(None)
                self._observer_waiters.remove(waiter)

    def set(self, path: Path | str, value: Any) -> None:
        """Change a value as the device would, notifying observers."""
        target = Path(path)
        self.values[target] = value
        for observation in list(self._observations.get(target, ())):
            observation.trigger()

    # -- the device side (the peer is the CoAP server here) ---------------------------------

    def _render(self, request: Message) -> Message:
        try:
            path = Path.from_uri_path(request.opt.uri_path)
        except PathError as exc:
            if request.code == Code.POST and request.opt.uri_path == ("bs",):
                self.bootstrap_finished.set()
                return Message(code=Code.CHANGED)
            return _bad(Code.NOT_FOUND, str(exc))
        self.requests.append((str(request.code), str(path)))
        try:
            return self._operation(request, path)
        except UnsupportedContentFormat as exc:
            return _bad(Code.UNSUPPORTED_CONTENT_FORMAT, str(exc))
        except CodecError as exc:
            return _bad(Code.BAD_REQUEST, str(exc))

    def _operation(self, request: Message, path: Path) -> Message:
        code = request.code
        fmt = request.opt.content_format
        fmt = None if fmt is None else int(fmt)
        if code == Code.GET:
            if request.opt.accept == ContentFormat.LINK_FORMAT:
                return self._discover(path)
            return self._read(path, request.opt.accept)
        if code == Code.PUT:
            if path == PACKAGE:
                return self._package_block(request)
            if fmt is None:
                self.attributes.setdefault(path, {}).update(
                    (n, v if eq else None)
                    for n, eq, v in (q.partition("=") for q in request.opt.uri_query)
                )
                return Message(code=Code.CHANGED)
            return self._write(path, request.payload, fmt, replace=True)
        if code == Code.POST:
            if path.level is Level.OBJECT:
                return self._create(path, request.payload, fmt)
            if path.level is Level.RESOURCE and fmt in (None, ContentFormat.TEXT):
                return self._execute(path, request.payload.decode())
            return self._write(path, request.payload, fmt, replace=False)
        if code == Code.DELETE:
            return self._delete(path)
        if code == Code.FETCH:
            wanted = senml.decode_paths(request.payload, fmt)
            values = {p: v for p, v in self.values.items() if any(p.startswith(w) for w in wanted)}
            accept = request.opt.accept or fmt
            return Message(
                code=Code.CONTENT, payload=encode(values, accept, "/"), content_format=accept
            )
        if code == Code.iPATCH:
            self.values.update(decode(request.payload, fmt, "/"))
            return Message(code=Code.CHANGED)
        return _bad(Code.METHOD_NOT_ALLOWED, f"{code} is not an LwM2M operation")

    def _below(self, path: Path) -> dict[Path, Any]:
        return {p: v for p, v in self.values.items() if p.startswith(path)}

    def _read(self, path: Path, accept: int | None) -> Message:
        values = self._below(path)
        if not values:
            return _bad(Code.NOT_FOUND, f"nothing at {path}")
        resource = DEFAULT_MODEL.resource(path)
        if resource is not None and not resource.operations.readable:
            return _bad(Code.METHOD_NOT_ALLOWED, f"{path} is not readable")
        fmt = accept if accept is not None else ContentFormat.SENML_CBOR
        try:
            payload = encode(values, fmt, path)
        except CodecError as exc:
            return _bad(Code.NOT_ACCEPTABLE, str(exc))
        return Message(code=Code.CONTENT, payload=payload, content_format=fmt)

    def _discover(self, path: Path) -> Message:
        targets: set[Path] = set()
        for p in self._below(path):
            for level in range(max(path.level, 1), min(p.level, 3) + 1):
                targets.add(Path.from_ids(p.ids[:level]))
        if not targets:
            return _bad(Code.NOT_FOUND, f"nothing at {path}")
        links = [Link(str(p), self.attributes.get(p, {})) for p in sorted(targets)]
        return Message(
            code=Code.CONTENT,
            payload=linkformat.encode_links(links),
            content_format=ContentFormat.LINK_FORMAT,
        )

    def _write(self, path: Path, payload: bytes, fmt: int | None, *, replace: bool) -> Message:
        if fmt is None:
            return _bad(Code.BAD_REQUEST, "a Write needs a Content-Format")
        if path.level < Level.INSTANCE:
            return _bad(Code.METHOD_NOT_ALLOWED, "Write targets an instance or a resource")
        values = decode(payload, fmt, path)
        if path == PACKAGE_URI:
            return self._package_uri(str(values.get(path, "")))
        if replace and path.level is Level.INSTANCE:
            for old in list(self._below(path)):
                del self.values[old]
        for p, v in values.items():
            self.set(p, v)
        return Message(code=Code.CHANGED)

    def _execute(self, path: Path, arguments: str) -> Message:
        resource = DEFAULT_MODEL.resource(path)
        if resource is None or not resource.operations.executable:
            return _bad(Code.METHOD_NOT_ALLOWED, f"{path} is not executable")
        if path == UPDATE:
            if self.values[STATE] != State.DOWNLOADED:
                return _bad(
                    Code.METHOD_NOT_ALLOWED,
                    f"Update is allowed only in Downloaded; the state is "
                    f"{State(self.values[STATE]).name}",
                )
            self.set(RESULT, UpdateResult.INITIAL)
            self.set(STATE, State.UPDATING)
            self._spawn(self._install())
        self.executed.append((path, arguments))
        return Message(code=Code.CHANGED)

    async def _install(self) -> None:
        await asyncio.sleep(0)  # let the 2.04 go out first
        if self.update_result is UpdateResult.SUCCESS:
            self.values[STATE], self.values[RESULT] = State.IDLE, UpdateResult.SUCCESS
        else:
            self.values[STATE], self.values[RESULT] = State.DOWNLOADED, self.update_result
        await self.reboot()

    def _create(self, path: Path, payload: bytes, fmt: int | None) -> Message:
        values = decode(payload, fmt or ContentFormat.TEXT, path)
        ids = {p.instance_id for p in values}
        if len(ids) != 1:
            return _bad(Code.BAD_REQUEST, "create one instance at a time")
        instance = path / ids.pop()  # type: ignore[operator]
        if self._below(instance):
            return _bad(Code.BAD_REQUEST, f"{instance} exists")
        self.values.update(values)
        return Message(code=Code.CREATED, location_path=instance.uri_path)

    def _delete(self, path: Path) -> Message:
        if path.is_root:  # Bootstrap-Delete: everything but the Device object
            for p in [p for p in self.values if p.object_id not in (3,)]:
                del self.values[p]
            return Message(code=Code.DELETED)
        if path.level is not Level.INSTANCE:
            return _bad(Code.METHOD_NOT_ALLOWED, "Delete targets an object instance")
        found = self._below(path)
        if not found:
            return _bad(Code.NOT_FOUND, f"no instance {path}")
        for p in found:
            del self.values[p]
        return Message(code=Code.DELETED)

    # -- Object /5 --------------------------------------------------------------------------------

    def _package_block(self, request: Message) -> Message:
        block = request.opt.block1
        number, more, szx = block if block is not None else (0, False, 6)
        self.blocks.append((number, more, szx, len(request.payload)))
        if number == 0:
            if self.max_package is not None and (request.opt.size1 or 0) > self.max_package:
                reply = _bad(Code.REQUEST_ENTITY_TOO_LARGE, "no room for that package")
                reply.opt.size1 = self.max_package
                return reply
            if szx > self.max_szx:
                reply = _bad(Code.REQUEST_ENTITY_TOO_LARGE, "blocks too large")
                reply.opt.block1 = (0, more, self.max_szx)
                return reply
            self.package = bytearray()
            self.set(RESULT, UpdateResult.INITIAL)
            self.set(STATE, State.DOWNLOADING)
        expected_offset = number * (16 << szx)
        if expected_offset != len(self.package):
            return _bad(
                Code.REQUEST_ENTITY_INCOMPLETE,
                f"block {number} starts at {expected_offset}, have {len(self.package)} bytes",
            )
        self.package += request.payload
        if more:
            return Message(code=Code.CONTINUE, block1=(number, True, szx))
        self._downloaded()
        return Message(code=Code.CHANGED, block1=(number, False, szx))

    def _downloaded(self) -> None:
        if self.download_result is UpdateResult.INITIAL:
            self.set(STATE, State.DOWNLOADED)
        else:
            self.set(STATE, State.IDLE)
            self.set(RESULT, self.download_result)

    def _package_uri(self, uri: str) -> Message:
        self.values[PACKAGE_URI] = uri
        if not uri:
            self.set(STATE, State.IDLE)
            self.set(RESULT, UpdateResult.INITIAL)
            return Message(code=Code.CHANGED)
        if self.values[STATE] != State.IDLE:
            return _bad(Code.METHOD_NOT_ALLOWED, "a download is already under way")
        self.set(RESULT, UpdateResult.INITIAL)
        self.set(STATE, State.DOWNLOADING)
        self._spawn(self._download(uri))
        return Message(code=Code.CHANGED)

    async def _download(self, uri: str) -> None:
        try:
            if uri.startswith("coap"):
                response = await self.context.request(Message(code=Code.GET, uri=uri)).response
                ok, body = response.code.is_successful(), response.payload
            else:
                import aiohttp

                async with aiohttp.ClientSession() as session, session.get(uri) as reply:
                    ok, body = reply.status == 200, await reply.read()
        except Exception:
            ok, body = False, b""
        if not ok:
            self.set(STATE, State.IDLE)
            self.set(RESULT, UpdateResult.INVALID_URI)
            return
        self.package = bytearray(body)
        self._downloaded()
