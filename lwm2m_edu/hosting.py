"""Package hosting for pull updates: one CoAP and one HTTP server on loopback, free ports.

In a *pull* update the LwM2M server does not send the firmware itself: it writes a link into
/5/0/1 *Package URI* and the device downloads the package from wherever that link points.
``PackageHost`` is that "wherever" for tests and notebooks::

    async with await PackageHost.start() as host:        # 127.0.0.1, free UDP and TCP ports
        pkg = host.add("app-1.1.bin", image)
        pkg.coap_uri                                     # 'coap://127.0.0.1:50123/app-1.1.bin'
        pkg.http_uri                                     # 'http://127.0.0.1:41234/app-1.1.bin'

What the two servers do, and why it matters to a downloader:

**CoAP (RFC 7252 + RFC 7959 block-wise).** A UDP datagram carries at most about 1 KB of
payload, so a package is fetched as a sequence of GETs, each asking for one *block* with the
Block2 option ``(NUM, M, SZX)``: block NUM of size ``2**(SZX+4)`` bytes (16..1024), M=1 while
more follow. The host slices the package itself for every request (the resource declines
aiocoap's own block-wise handling), so it can answer *any* block at any time — which is what a
downloader resuming from the middle needs. aiocoap's library slicing serves blocks after the
first only from a cache filled by a GET of block 0 from the same socket and answers 4.08
Request Entity Incomplete otherwise; it would also keep serving the old content from that
cache for 93 s after a ``replace``. Every block carries:

* **ETag** — the first 8 bytes of the package's SHA-256: a *strong* validator. Same bytes, same
  ETag; any change, a different one. A downloader compares it on every block to notice that
  the package changed under it.
* **Size2** — the whole package size, so the device can report progress and check its flash.
* the block size the client asked for, or the host's ``block_size`` when that is smaller (the
  server may always choose a smaller size; the block number is then scaled so the first byte
  asked for is still in the block).

**HTTP/1.1 (aiohttp).** One GET streams the whole package. The host answers with ``ETag``
(the same hash, as a quoted hex string), ``Accept-Ranges: bytes`` and honours:

* ``Range: bytes=N-`` (one range) → **206 Partial Content** with ``Content-Range``, or
  **416 Range Not Satisfiable** when N is past the end;
* ``If-Match: "<etag>"`` → **412 Precondition Failed** when the package is no longer the one
  with that ETag (strong comparison: weak ``W/`` tags never match). Together with Range this is
  how a download resumes safely: "give me the rest, but only if it is still the same file";
* ``HEAD`` → the headers of a GET, no body.

**Fault hooks**, for teaching and tests (each affects only what comes next):

* ``drop_next(n)`` — the CoAP server ignores the next ``n`` request datagrams, as if the
  network had lost them; the client's retransmissions and retries must recover;
* ``fail_after(nbytes)`` — the next HTTP GET's connection is cut after ``nbytes`` of body;
* ``replace(name, data)`` — new content (and so a new ETag) under the same name.

Each ``HostedPackage`` counts the requests it served (``coap_requests``, ``http_requests``,
``http_statuses``), so a notebook can show what a download cost and a test can check it.

Everything binds the loopback address given (``127.0.0.1`` or ``::1``) on port 0 and reads the
real port back; ``stop()`` (or leaving ``async with``) closes both servers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Self

from aiocoap import CONTENT, Context, Message, error, resource
from aiocoap.numbers import ContentFormat
from aiocoap.optiontypes import BlockOption
from aiohttp import web

from .coap import open_context

__all__ = ["DEFAULT_BLOCK_SIZE", "HostedPackage", "PackageHost"]

#: The largest regular CoAP block (SZX 6); the host never serves bigger blocks over UDP.
DEFAULT_BLOCK_SIZE = 1024
_BLOCK_SIZES = {2 ** (szx + 4): szx for szx in range(7)}  # 16 → 0 … 1024 → 6
_NAME = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")


def _etag_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:8]


@dataclass(eq=False)
class HostedPackage:
    """A package on a ``PackageHost``: its URIs, its ETag and what was asked of it."""

    name: str
    data: bytes
    coap_uri: str | None  #: ``coap://host:port/name``, or None when the host serves no CoAP
    http_uri: str | None  #: ``http://host:port/name``, or None when the host serves no HTTP
    etag: bytes = b""  #: CoAP ETag: the first 8 bytes of the SHA-256 of ``data``
    coap_requests: int = 0  #: CoAP GETs answered (one per block)
    http_requests: int = 0  #: HTTP GET and HEAD requests answered
    http_statuses: Counter[int] = field(default_factory=Counter)  #: HTTP answers by status

    def __post_init__(self) -> None:
        self.etag = _etag_of(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def http_etag(self) -> str:
        """The same validator as an HTTP entity-tag: the hex digits in double quotes."""
        return f'"{self.etag.hex()}"'

    def __repr__(self) -> str:
        return (
            f"<HostedPackage {self.name!r} {self.size} B etag={self.etag.hex()} "
            f"coap={self.coap_requests} http={self.http_requests}>"
        )


class PackageHost:
    """CoAP and HTTP servers on one loopback address, serving packages by name.

    Make one with ``await PackageHost.start()``; see the module docstring.
    """

    def __init__(self, host: str, block_size: int) -> None:
        self.host = host
        self.block_size = block_size
        self.packages: dict[str, HostedPackage] = {}
        self.coap_port: int | None = None
        self.http_port: int | None = None
        self.dropped = 0  #: CoAP requests ignored because of ``drop_next``
        self._drop = 0
        self._cut_after: int | None = None
        self._coap: Context | None = None
        self._http: web.AppRunner | None = None

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        *,
        coap: bool = True,
        http: bool = True,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> PackageHost:
        """Start the servers on ``host`` (a loopback address), each on a free port.

        ``block_size`` is the largest CoAP block the host serves (16..1024, a power of two);
        it answers a request for bigger blocks with blocks of this size.
        """
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"PackageHost binds loopback only: use '127.0.0.1' or '::1', not {host!r}"
            )
        if block_size not in _BLOCK_SIZES:
            raise ValueError(f"block_size must be one of {sorted(_BLOCK_SIZES)}, not {block_size}")
        self = cls(host, block_size)
        try:
            if coap:
                self._coap, self.coap_port = await open_context(_CoapPackages(self), host)
                self._install_dropper(self._coap)
            if http:
                self._http = web.AppRunner(_http_app(self), access_log=None)
                await self._http.setup()
                await web.TCPSite(self._http, host, 0).start()
                self.http_port = self._http.addresses[0][1]
        except BaseException:
            await self.stop()
            raise
        return self

    # -- the packages ----------------------------------------------------------------------------

    def add(self, name: str, data: bytes) -> HostedPackage:
        """Serve ``data`` as ``name`` (path segments of letters, digits and ``._~-``)."""
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"package name {name!r}: use path segments of letters, digits and '._~-', "
                "separated by '/', e.g. 'fw/app-1.1.bin'"
            )
        if name in self.packages:
            raise ValueError(f"a package named {name!r} is already hosted; use replace()")
        package = HostedPackage(name, bytes(data), self._uri("coap", name), self._uri("http", name))
        self.packages[name] = package
        return package

    def replace(self, name: str, data: bytes) -> HostedPackage:
        """Give ``name`` new content, and so a new ETag; URIs and counters stay."""
        package = self[name]
        package.data = bytes(data)
        package.etag = _etag_of(package.data)
        return package

    def remove(self, name: str) -> None:
        """Stop serving ``name``: it answers 4.04 / 404 from now on."""
        del self.packages[self[name].name]

    def __getitem__(self, name: str) -> HostedPackage:
        try:
            return self.packages[name]
        except KeyError:
            raise KeyError(
                f"no package named {name!r} is hosted (have: {sorted(self.packages)})"
            ) from None

    def _uri(self, scheme: str, name: str) -> str | None:
        port = self.coap_port if scheme == "coap" else self.http_port
        if port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{port}/{name}"

    # -- faults -----------------------------------------------------------------------------------

    def drop_next(self, n: int = 1) -> None:
        """Ignore the next ``n`` CoAP request datagrams (retransmissions count too)."""
        self._drop = n

    def fail_after(self, nbytes: int) -> None:
        """Cut the connection of the next HTTP GET after ``nbytes`` bytes of body."""
        self._cut_after = nbytes

    def _install_dropper(self, context: Context) -> None:
        # Datagrams go from the udp6 transport to the message manager's dispatch_message; a
        # request swallowed here is never seen by the CoAP layer, exactly like one lost on the
        # wire (so the client's retransmission of it is *not* a duplicate). aiocoap internals,
        # pinned version: see coap.udp_transport.
        message_manager = context.request_interfaces[0].token_interface
        deliver = message_manager.dispatch_message

        def dispatch(message: Message) -> None:
            if self._drop > 0 and message.code.is_request():
                self._drop -= 1
                self.dropped += 1
                return
            deliver(message)

        message_manager.dispatch_message = dispatch

    # -- lifetime ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Close both servers (idempotent)."""
        coap, self._coap = self._coap, None
        http, self._http = self._http, None
        try:
            if coap is not None:
                await coap.shutdown()
        finally:
            if http is not None:
                await http.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        if self._coap is None and self._http is None:
            where = "stopped"
        else:
            where = " ".join(
                f"{scheme}://{self.host}:{port}"
                for scheme, port in (("coap", self.coap_port), ("http", self.http_port))
                if port is not None
            )
        return f"<PackageHost {where} packages={sorted(self.packages)}>"

    # -- serving ----------------------------------------------------------------------------------

    async def _http_get(self, request: web.Request) -> web.StreamResponse:
        package = self.packages.get(request.match_info["name"])
        if package is None:
            return web.Response(status=404, text="no such package\n")
        package.http_requests += 1
        response, body = _http_answer(request, package)
        package.http_statuses[response.status] += 1
        await response.prepare(request)
        if request.method == "GET":
            cut, self._cut_after = self._cut_after, None
            if cut is not None and request.transport is not None:
                await response.write(body[:cut])
                request.transport.close()  # the client sees the body end early
                return response
            await response.write(body)
        await response.write_eof()
        return response


def _coap_block(
    package: HostedPackage, block2: BlockOption.BlockwiseTuple | None, block_size: int
) -> Message:
    """One CoAP response: the block ``block2`` asks for, no bigger than ``block_size``."""
    data = package.data
    server_szx = _BLOCK_SIZES[block_size]
    if block2 is None:
        number, szx = 0, server_szx
    else:
        asked_szx = min(block2.size_exponent, 6)  # SZX 7 is BERT, for CoAP over TCP only
        szx = min(asked_szx, server_szx)
        # A smaller block than asked for: scale NUM so the block still holds its first byte.
        number = block2.block_number << (asked_szx - szx)
    size = 2 ** (szx + 4)
    start = number * size
    if start and start >= len(data):
        raise error.BadRequest(f"block {number} of {size} B starts past the end ({len(data)} B)")
    more = start + size < len(data)
    response = Message(
        code=CONTENT,
        payload=data[start : start + size],
        etag=package.etag,
        size2=len(data),
        content_format=ContentFormat.OCTETSTREAM,
    )
    if block2 is not None or more:
        response.opt.block2 = BlockOption.BlockwiseTuple(number, more, szx)
    return response


def _http_answer(request: web.Request, package: HostedPackage) -> tuple[web.StreamResponse, bytes]:
    """Status, headers and body for a GET or HEAD of ``package``, after If-Match and Range."""
    response = web.StreamResponse()
    response.headers["ETag"] = package.http_etag
    response.headers["Accept-Ranges"] = "bytes"
    response.content_type = "application/octet-stream"
    data = package.data
    if_match = request.if_match
    if if_match is not None and not any(
        tag.value == "*" or (not tag.is_weak and f'"{tag.value}"' == package.http_etag)
        for tag in if_match
    ):
        response.set_status(412)
        response.content_length = 0
        return response, b""
    try:
        wanted = request.http_range if "Range" in request.headers else None
    except ValueError:  # malformed, or several ranges: ignore the header and send it all
        wanted = None
    if wanted is None:
        response.content_length = len(data)
        return response, data
    first, end, _ = wanted.indices(len(data))
    if first >= end:
        response.set_status(416)
        response.headers["Content-Range"] = f"bytes */{len(data)}"
        response.content_length = 0
        return response, b""
    response.set_status(206)
    response.headers["Content-Range"] = f"bytes {first}-{end - 1}/{len(data)}"
    response.content_length = end - first
    return response, data[first:end]


class _CoapPackages(resource.Resource):
    """The CoAP site: every path names a package; GET serves one Block2 block of it."""

    def __init__(self, host: PackageHost) -> None:
        super().__init__()
        self._host = host

    async def needs_blockwise_assembly(self, request: Message) -> bool:
        return False  # we slice blocks ourselves (see the module docstring)

    async def render_get(self, request: Message) -> Message:
        package = self._host.packages.get("/".join(request.opt.uri_path))
        if package is None:
            raise error.NotFound()
        package.coap_requests += 1
        return _coap_block(package, request.opt.block2, self._host.block_size)


def _http_app(host: PackageHost) -> web.Application:
    app = web.Application()
    app.router.add_get("/{name:.+}", host._http_get)  # also answers HEAD
    return app
