"""Pull downloaders: fetch a Package URI over CoAP (Block2) or HTTP (Range), with resume.

In a *pull* update the server writes a link into /5/0/1 *Package URI* and the device fetches
the package itself, feeding it piece by piece to its flash (``FlashFirmwareHandlers
.write_chunk``) and reporting how it went in /5/0/5 *Update Result*. ``download()`` does the
fetching::

    outcome = await download(pkg_uri, handlers.write_chunk, coap_context=client_context,
                             on_restart=lambda: handlers.begin(pkg_uri))
    handlers.finish()            # the caller closes the sink; the downloader only feeds it

It never holds the whole package: each piece goes to ``sink(chunk)`` as it arrives. A sink may
refuse a piece by returning an ``UpdateResult`` other than SUCCESS (NOT_ENOUGH_FLASH, say); the
download then stops with that result. Failures raise ``DownloadError`` whose ``.result`` is the
Update Result to report and whose ``.resume`` says where a later attempt may continue.

CoAP: Block2, lock-step
=======================
A CoAP message travels in one UDP datagram, so a package of many kilobytes comes as a series of
GETs of the same URI, each answered with one *block* (RFC 7959). The Block2 option in the
request says which block the client wants, ``(NUM, M, SZX)`` with size ``2**(SZX+4)`` bytes
(16..1024); in the response it says which block this is and whether more follow (M=1)::

    device                                      package host
      │ GET /fw.bin                                   │   (no Block2: "you choose the size")
      │◄──────── 2.05 Block2 (0, M=1, 1024) ETag=e1 Size2=5000
      │ GET /fw.bin Block2 (1, 1024)                  │
      │◄──────── 2.05 Block2 (1, M=1, 1024) ETag=e1   │
      │   …                                           │
      │◄──────── 2.05 Block2 (4, M=0, 1024) ETag=e1   │   M=0: that was the last block

* **Lock-step.** One request is outstanding at a time; the next block is asked for only when
  the previous one arrived. That is RFC 7252's NSTART = 1 (one outstanding interaction per
  server), gentle on constrained links and on the server, and it keeps the order trivial.
  The price is one round trip per block; a window of parallel requests for high-latency links
  is a later option.
* **The server chooses the size.** The first GET carries no Block2, so the server answers with
  the size it prefers (Anjay Lite does the same); later GETs ask for that size. With
  ``block_size=`` the first GET asks for a size, and the server may still answer with a smaller
  one — the downloader always places a block by the NUM and SZX *in the response*.
* **ETag on every block.** The first response's ETag is remembered and every later block must
  carry the same one. A different ETag means the package changed on the server mid-way: the
  bytes we have belong to the old one.
* **Two layers of retry.** The CoAP message layer retransmits an unanswered confirmable request
  (same message ID) after ACK_TIMEOUT, doubling the wait each time, MAX_RETRANSMIT = 4 times;
  ``timeout`` is the time that takes in all (RFC 7252 MAX_TRANSMIT_WAIT, 93 s by default —
  ``transport_tuning(timeout)`` scales ACK_TIMEOUT to it). When the message layer gives up, the
  downloader retries *the block* with a new request, up to ``retries`` times in a row, pausing
  ``retry_delay`` in between (Anjay Lite's retry_count / retry_delay). Every block that arrives
  resets that count, so a long download on a lossy link is not doomed by its length.

HTTP: Range and If-Match
========================
One GET streams the whole package; the downloader hands it to the sink in ``block_size``
pieces (1024 B unless told). When the connection breaks mid-body the next attempt asks only
for the rest, and only if it is still the same file::

    GET /fw.bin  Range: bytes=3000-  If-Match: "9f2c…"
    → 206 Partial Content  Content-Range: bytes 3000-4999/5000      same file: continue
    → 412 Precondition Failed                                       it changed: start over
    → 200 OK                                                        server ignores Range

ETags must be *strong* to resume (``W/"…"`` only promises equivalent content, not the same
bytes; Anjay does not resume with them either). A 200 answer to a Range request with the
ETag we know carries the whole file again: the downloader skips the bytes it already has.

Decisions (where implementations differ, we say which we follow)
================================================================
* **The package changed** (a different ETag on a CoAP block, 412, a 200 with another ETag, a
  server that cannot serve the block we resume from): start over from byte 0, **once**. This
  is Anjay's "expired → retry from the beginning"; Anjay Lite instead fails with
  ETAG_MISMATCH. Starting over needs ``on_restart()`` to empty the sink (e.g.
  ``FlashFirmwareHandlers.begin``); without it, or on a second change, the download fails with
  CONNECTION_LOST (4), Anjay's result for an expired download it cannot retry.
* **Results** (``DownloadError.result``), after Anjay's mapping:

  ===============================================================  ===========================
  the URI is malformed, 4.04 / 404, any other 4.xx / 4xx             INVALID_URI (7), no retry
  the host name does not resolve, the address cannot be reached      INVALID_URI (7), no retry
  from this socket (EADDRNOTAVAIL, EHOSTUNREACH, ENETUNREACH, …)
  a scheme other than coap:// and http://                            UNSUPPORTED_PROTOCOL (9)
  no answer, connection refused (nothing listening on the port),     retried, then
  connection cut, 5.xx / 5xx                                         CONNECTION_LOST (4)
  the sink refuses a chunk                                           the sink's result
  ===============================================================  ===========================

  A refused connection is retried: the host is there, the service may be restarting.
* ``progress(received, total)`` is called after every chunk with the bytes the sink holds and
  the package size when the server said it (Size2, Content-Length). It only grows, except
  after a start-over, when it begins again from 0.

The network parts are asyncio at the edge (aiocoap, aiohttp); the downloader uses the caller's
aiocoap Context — the LwM2M client's own, so the download leaves from the client's socket —
or aiohttp ClientSession, and makes (and closes) its own only when given none. A download
awaits only its own requests, so the context keeps serving everything else meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import ClassVar, NoReturn, TypedDict, Unpack
from urllib.parse import urlsplit

import aiohttp
from aiocoap import (
    BAD_OPTION,
    BAD_REQUEST,
    GET,
    NOT_FOUND,
    REQUEST_ENTITY_INCOMPLETE,
    Context,
    Message,
    error,
)
from aiocoap.numbers import TransportTuning
from aiocoap.numbers.constants import Unreliable
from aiocoap.optiontypes import BlockOption

from .coap import TRANSPORTS, open_context
from .fota import Protocol, UpdateResult

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_DELAY",
    "DEFAULT_TIMEOUT",
    "MAX_RESTARTS",
    "PROTOCOLS",
    "CoapDownloader",
    "DownloadError",
    "DownloadOutcome",
    "Downloader",
    "HttpDownloader",
    "Resume",
    "download",
    "transport_tuning",
]

#: A sink takes the next piece of the package; None or SUCCESS accepts it, any other
#: UpdateResult refuses it and ends the download with that result.
Sink = Callable[[bytes], UpdateResult | None]
#: ``progress(received, total)``: bytes the sink holds, and the package size if known.
Progress = Callable[[int, int | None], object]

DEFAULT_TIMEOUT = 93.0  #: RFC 7252 MAX_TRANSMIT_WAIT: ACK_TIMEOUT 2 s, 4 retransmissions
DEFAULT_RETRIES = 4  #: retries of one block (CoAP) or one stalled transfer (HTTP)
DEFAULT_RETRY_DELAY = 2.0  #: seconds between retries
MAX_RESTARTS = 1  #: how often a download starts over because the package changed
DEFAULT_HTTP_CHUNK = 1024

#: errno values that say "this address cannot be reached from here": Invalid URI, not a retry.
_UNREACHABLE = {
    errno.EADDRNOTAVAIL,
    errno.EAFNOSUPPORT,
    errno.EHOSTUNREACH,
    errno.EINVAL,
    errno.ENETUNREACH,
}
#: Answers to a Block2 request with NUM > 0 that mean "I can't serve that block": start over.
_BLOCK_UNAVAILABLE = {BAD_REQUEST, BAD_OPTION, REQUEST_ENTITY_INCOMPLETE}


class DownloadError(Exception):
    """A download failed; ``result`` is the Update Result to report in /5/0/5.

    ``resume`` is where a later attempt may continue (``download(..., resume=error.resume)``),
    or None when it cannot: nothing arrived, or the server gave no strong ETag to check
    against.
    """

    def __init__(self, result: UpdateResult, message: str, *, resume: Resume | None = None):
        super().__init__(message)
        self.result = result
        self.resume = resume

    def __str__(self) -> str:
        return f"{self.args[0]} → Update Result {int(self.result)} ({self.result.name})"


@dataclass(frozen=True)
class Resume:
    """Where to continue an earlier download of the same URI.

    ``offset`` bytes are already in the sink; ``etag`` is the validator they came with (bytes
    for CoAP, the quoted entity-tag for HTTP) — the download continues only if the server
    still has that very package. ``block_size`` is the CoAP block size the server chose.
    """

    offset: int
    etag: bytes | str
    block_size: int | None = None

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise ValueError(f"Resume offset must be 0 or more, not {self.offset}")


@dataclass(frozen=True)
class DownloadOutcome:
    """How a finished download went."""

    uri: str
    size: int  #: bytes of the package (all of them are in the sink now)
    etag: bytes | str | None  #: the package's validator, None if the server sent none
    bytes_received: int  #: payload bytes that reached the sink in this call
    blocks: int  #: CoAP blocks / HTTP chunks handed to the sink
    retries: int  #: requests repeated after a timeout or a broken connection
    restarts: int  #: times the download started over from 0 because the package changed
    resumed_from: int  #: the offset this call continued from (0: from the start)
    block_size: int | None = None  #: CoAP: the block size the server chose (HTTP: as asked)


class _Options(TypedDict, total=False):
    resume: Resume | None
    on_restart: Callable[[], UpdateResult | None] | None
    block_size: int | None
    retries: int
    retry_delay: float
    timeout: float
    progress: Progress | None
    window: int


class _Retry(Exception):
    """Transient trouble (no answer, connection cut, 5.xx): ask again from where we are."""


class _Changed(Exception):
    """The package is not the one whose bytes the sink holds: start over from 0."""


def transport_tuning(timeout: float) -> TransportTuning:
    """CoAP transmission parameters whose retransmissions give up after ``timeout`` seconds.

    RFC 7252 waits MAX_TRANSMIT_WAIT = ACK_TIMEOUT * (2**(MAX_RETRANSMIT+1) - 1) *
    ACK_RANDOM_FACTOR = 93 s for an answer; this keeps MAX_RETRANSMIT = 4 and the random
    factor, and scales ACK_TIMEOUT (2 s for 93 s).
    """
    tuning = TransportTuning()
    spread = (2 ** (tuning.MAX_RETRANSMIT + 1) - 1) * tuning.ACK_RANDOM_FACTOR
    tuning.ACK_TIMEOUT = timeout / spread
    return tuning


class Downloader(ABC):
    """What every downloader shares: the sink, the bookkeeping, retries and starting over.

    A subclass implements ``_connection()`` (borrow or make the client object) and
    ``_attempt()`` (transfer from ``self.offset`` to the end, raising ``_Retry`` or
    ``_Changed`` when it cannot).
    """

    scheme: ClassVar[str]
    protocol: ClassVar[Protocol]

    def __init__(
        self,
        uri: str,
        sink: Sink,
        *,
        resume: Resume | None = None,
        on_restart: Callable[[], UpdateResult | None] | None = None,
        block_size: int | None = None,
        retries: int = DEFAULT_RETRIES,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
    ) -> None:
        self.uri = uri
        self.sink = sink
        self.on_restart = on_restart
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.progress = progress
        self.offset = resume.offset if resume else 0  #: bytes the sink holds
        self.etag: bytes | str | None = resume.etag if resume else None
        self.total: int | None = None  #: package size, once the server said it
        self.resumed_from = self.offset
        #: CoAP: the block size in use (asked for, remembered, or chosen by the server);
        #: HTTP: the size of the chunks handed to the sink, if one was asked for
        self.block_in_use = block_size or (resume.block_size if resume else None)
        self.bytes_received = self.blocks = self.retries_used = self.restarts = 0
        self._failures = 0  # retries in a row without a byte of progress

    async def run(self) -> DownloadOutcome:
        """Download to the end, or raise ``DownloadError``."""
        async with self._connection():
            while True:
                try:
                    await self._attempt()
                    return self._outcome()
                except _Retry as trouble:
                    await self._retry(str(trouble))
                except _Changed as change:
                    self._restart(str(change))

    @abstractmethod
    def _connection(self) -> AbstractAsyncContextManager[None]:
        """Borrow the caller's client object for the download, or make one and close it."""

    @abstractmethod
    async def _attempt(self) -> None:
        """Transfer from ``self.offset`` to the end; raise ``_Retry`` or ``_Changed``."""

    def _outcome(self) -> DownloadOutcome:
        return DownloadOutcome(
            uri=self.uri,
            size=self.offset,
            etag=self.etag,
            bytes_received=self.bytes_received,
            blocks=self.blocks,
            retries=self.retries_used,
            restarts=self.restarts,
            resumed_from=self.resumed_from,
            block_size=self.block_in_use,
        )

    # -- the sink ---------------------------------------------------------------------------------

    def _deliver(self, chunk: bytes) -> None:
        """Hand the next ``chunk`` to the sink; it continues the package at ``self.offset``."""
        self._check(self.sink(chunk), f"the sink refused the chunk at offset {self.offset}")
        self.offset += len(chunk)
        self.bytes_received += len(chunk)
        self.blocks += 1
        self._failures = 0
        if self.progress is not None:
            self.progress(self.offset, self.total)

    def _check(self, result: UpdateResult | None, what: str) -> None:
        if result is not None and result != UpdateResult.SUCCESS:
            self._fail(UpdateResult(result), f"{what}: {UpdateResult(result).name}")

    # -- when things go wrong ---------------------------------------------------------------------

    def _fail(self, result: UpdateResult, message: str) -> NoReturn:
        resume = None
        if self.offset and isinstance(self.etag, bytes | str):
            resume = Resume(self.offset, self.etag, self.block_in_use)
        raise DownloadError(result, f"{message} ({self.uri})", resume=resume)

    async def _retry(self, reason: str) -> None:
        if self._failures >= self.retries:
            self._fail(
                UpdateResult.CONNECTION_LOST,
                f"{reason}; gave up after {self.retries} retries at offset {self.offset}",
            )
        self._failures += 1
        self.retries_used += 1
        if self.retry_delay:
            await asyncio.sleep(self.retry_delay)

    def _restart(self, reason: str) -> None:
        if self.restarts >= MAX_RESTARTS:
            self._fail(UpdateResult.CONNECTION_LOST, f"{reason}, after starting over already")
        if self.offset:
            if self.on_restart is None:
                self._fail(
                    UpdateResult.CONNECTION_LOST,
                    f"{reason}; starting over needs on_restart= to empty the sink",
                )
            self._check(self.on_restart(), "on_restart() failed")
        self.restarts += 1
        self.offset = self.resumed_from = 0
        self.etag = self.total = None
        self._failures = 0


class CoapDownloader(Downloader):
    """Lock-step Block2 download of a ``coap://`` URI (see the module docstring)."""

    scheme = "coap"
    protocol = Protocol.COAP

    def __init__(
        self,
        uri: str,
        sink: Sink,
        *,
        context: Context | None = None,
        window: int = 1,
        **options: Unpack[_Options],
    ) -> None:
        super().__init__(uri, sink, **options)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(
                f"window is the number of Block2 requests in flight (>= 1): {window!r}"
            )
        self.context = context
        #: Block2 requests in flight at once. 1 (the default) is lock-step, RFC 7252's NSTART = 1.
        self.window = window
        self._tuning = transport_tuning(self.timeout)
        self._uri_options: dict[str, object] | None = None  # what the URI puts in a request
        if self.block_in_use is not None:
            _szx(self.block_in_use)  # a bad block size is a programming error: say so now

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[None]:
        if self.context is not None:
            yield
            return
        self.context = await _client_context(urlsplit(self.uri).hostname or "")
        try:
            yield
        finally:
            await self.context.shutdown()
            self.context = None

    async def _attempt(self) -> None:
        # The first request of an attempt goes to the URI's host, which aiocoap resolves (in a
        # thread pool); the later ones go to the address the previous answer came from, as
        # aiocoap's own block-wise GET does, so a pull resolves the name once, not per block.
        # A retry or a start-over is a new attempt: it resolves the name again.
        remote = None
        while True:
            number = None
            if self.offset or self.block_in_use:  # else: let the server choose the size
                number = self.offset // (self.block_in_use or 1024)
            response = await self._exchange(self._request(number, remote))
            remote = response.remote
            if not self._take(response, number):
                return
            if self.window > 1:  # the first answer told the block size: open the window
                await self._windowed(remote)
                return

    def _request(self, number: int | None, remote: object, *, confirmable: bool = True) -> Message:
        """A GET of the package, for block ``number`` (None: let the server choose the size)."""
        tuning = self._tuning if confirmable else Unreliable()
        if remote is not None and self._uri_options is not None:
            # Only the destination changes: the Uri-Host / Uri-Path / Uri-Query options the
            # URI gave stay, so the request on the wire is the same (and the URI is parsed once).
            request = Message(code=GET, transport_tuning=tuning, **self._uri_options)
            request.remote = remote
        else:
            try:
                request = Message(code=GET, uri=self.uri, transport_tuning=tuning)
            except ValueError as problem:  # aiocoap.error.MalformedUrlError
                self._fail(UpdateResult.INVALID_URI, f"not a usable CoAP URI: {problem}")
            self._uri_options = {
                name: value
                for name in ("uri_host", "uri_path", "uri_query")
                if (value := getattr(request.opt, name))
            }
            if remote is not None:
                request.remote = remote
        if number is not None:
            size = self.block_in_use or 1024
            request.opt.block2 = BlockOption.BlockwiseTuple(number, False, _szx(size))
        return request

    async def _windowed(self, remote: object) -> None:
        """Keep ``window`` Block2 requests in flight; take the answers in block order.

        aiocoap holds back a second *confirmable* request to a server until the first is
        answered (NSTART = 1), so the window's requests are non-confirmable: a lost one is
        noticed by its own timer (``timeout / 8``) and the attempt resumes from the first
        block not yet delivered — the same resume a lock-step retry does.
        """
        size = self.block_in_use or 1024
        last = None if self.total is None else max(self.total - 1, 0) // size
        next_number = self.offset // size
        in_flight: dict[int, asyncio.Task[Message]] = {}
        try:
            while True:
                while len(in_flight) < self.window and (last is None or next_number <= last):
                    request = self._request(next_number, remote, confirmable=False)
                    in_flight[next_number] = asyncio.ensure_future(
                        self._exchange(request, deadline=self.timeout / 8)
                    )
                    next_number += 1
                number = min(in_flight)
                response = await in_flight.pop(number)
                if not self._take(response, number):
                    return
        finally:
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)

    async def _exchange(self, request: Message, *, deadline: float | None = None) -> Message:
        """Send one request; turn aiocoap's errors into retry / Invalid URI.

        aiocoap gives up on a confirmable request after its retransmissions
        (ConRetransmitsExceeded); the ``deadline`` (default twice ``timeout``) catches a server
        that sent an empty ACK and never the response, and a lost non-confirmable request.
        """
        assert self.context is not None
        deadline = 2 * self.timeout if deadline is None else deadline
        try:
            async with asyncio.timeout(deadline):
                return await self.context.request(request, handle_blockwise=False).response
        except TimeoutError:
            raise _Retry(f"no response within {deadline:g} s") from None
        except error.ResolutionError as problem:
            self._fail(UpdateResult.INVALID_URI, f"the host does not resolve: {problem}")
        except error.TimeoutError:
            raise _Retry(f"no answer to block request after {self.timeout:g} s") from None
        except error.NetworkError as problem:
            cause = problem.__cause__
            if isinstance(cause, OSError) and cause.errno in _UNREACHABLE:
                self._fail(UpdateResult.INVALID_URI, f"cannot reach the address: {cause}")
            raise _Retry(f"network error: {cause or problem}") from None
        except error.LibraryShutdown:
            self._fail(UpdateResult.CONNECTION_LOST, "the CoAP context was shut down")

    def _take(self, response: Message, number: int | None) -> bool:
        """Use one response; True if more blocks follow."""
        code = response.code
        if not code.is_successful():
            detail = f"{code.dotted} {code.name_printable}"
            if number and code in _BLOCK_UNAVAILABLE:
                raise _Changed(f"the server cannot serve block {number} ({detail})")
            if code.class_ == 5:
                raise _Retry(f"the server answered {detail}")
            if code == NOT_FOUND:
                self._fail(UpdateResult.INVALID_URI, "no package at this URI (4.04 Not Found)")
            self._fail(UpdateResult.INVALID_URI, f"the server refused the request ({detail})")
        etag = response.opt.etag
        if etag is not None and self.etag is not None and etag != self.etag:
            raise _Changed(f"the ETag changed from {self.etag!r} to {etag!r}: a new package")
        if self.etag is None:
            self.etag = etag
        if response.opt.size2 is not None:
            self.total = response.opt.size2
        block2 = response.opt.block2
        start, more = (block2.start, block2.more) if block2 else (0, False)
        payload = response.payload
        if block2 is not None:
            self.block_in_use = block2.size
            if more and len(payload) != block2.size:
                self._fail(UpdateResult.CONNECTION_LOST, f"block {block2.block_number} is short")
        if start > self.offset:
            self._fail(UpdateResult.CONNECTION_LOST, f"asked for byte {self.offset}, got {start}")
        new = payload[self.offset - start :]  # a resume may start inside the block
        if new:
            self._deliver(new)
        elif more:
            self._fail(UpdateResult.CONNECTION_LOST, f"block at {start} brought nothing new")
        return more


class HttpDownloader(Downloader):
    """Streaming GET of an ``http://`` URI, resumed with Range + If-Match (module docstring)."""

    scheme = "http"
    protocol = Protocol.HTTP

    def __init__(
        self,
        uri: str,
        sink: Sink,
        *,
        session: aiohttp.ClientSession | None = None,
        **options: Unpack[_Options],
    ) -> None:
        super().__init__(uri, sink, **options)
        self.session = session
        self.chunk_size = self.block_in_use or DEFAULT_HTTP_CHUNK
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeout, sock_read=self.timeout
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[None]:
        if self.session is not None:
            yield
            return
        self.session = aiohttp.ClientSession()
        try:
            yield
        finally:
            await self.session.close()
            self.session = None

    async def _attempt(self) -> None:
        assert self.session is not None
        headers = {}
        if self.offset:
            if not isinstance(self.etag, str):
                raise _Changed("no strong ETag to resume with")
            headers = {"Range": f"bytes={self.offset}-", "If-Match": self.etag}
        try:
            async with self.session.get(self.uri, headers=headers, timeout=self._timeout) as got:
                await self._receive(got)
        except aiohttp.InvalidURL as problem:
            self._fail(UpdateResult.INVALID_URI, f"not a usable URL: {problem}")
        except aiohttp.ClientConnectorDNSError as problem:
            self._fail(UpdateResult.INVALID_URI, f"the host does not resolve: {problem}")
        except aiohttp.ClientConnectorError as problem:
            if (
                isinstance(problem.os_error, socket.gaierror)
                or problem.os_error.errno in _UNREACHABLE
            ):
                self._fail(UpdateResult.INVALID_URI, f"cannot reach the address: {problem}")
            raise _Retry(f"cannot connect: {problem}") from None
        except (aiohttp.ClientError, TimeoutError) as problem:
            raise _Retry(f"the transfer broke off: {problem!r}") from None

    async def _receive(self, got: aiohttp.ClientResponse) -> None:
        status = got.status
        if status == 412:
            raise _Changed(f"412 Precondition Failed: the package is no longer {self.etag}")
        if status == 416:
            if _content_range(got.headers.get("Content-Range", ""))[2] == self.offset:
                return  # we had it all already
            raise _Changed("416 Range Not Satisfiable: the package is shorter now")
        if status >= 500:
            raise _Retry(f"the server answered {status} {got.reason}")
        if status not in (200, 206):
            what = "no package at this URI" if status == 404 else "the server refused"
            self._fail(UpdateResult.INVALID_URI, f"{what} ({status} {got.reason})")
        etag = got.headers.get("ETag")
        strong = etag if etag and not etag.startswith("W/") else None
        if status == 206:
            start, _, total = _content_range(got.headers.get("Content-Range", ""))
            if strong is not None and strong != self.etag:
                raise _Changed(f"206 with ETag {strong}, not {self.etag}")
            if start is None or start > self.offset:
                self._fail(
                    UpdateResult.CONNECTION_LOST, f"asked for byte {self.offset}, got {start}"
                )
        else:
            start, total = 0, got.content_length
            if self.offset and strong != self.etag:
                self._restart(f"200 with ETag {strong}, not {self.etag}")
        self.etag = strong
        self.total = total
        skip = self.offset - start  # bytes of this body the sink already holds
        async for piece in got.content.iter_chunked(self.chunk_size):
            if skip >= len(piece):
                skip -= len(piece)
                continue
            self._deliver(piece[skip:])
            skip = 0


#: The download protocols this module offers, by URI scheme (for /5/0/8).
_DOWNLOADERS: dict[str, type[CoapDownloader] | type[HttpDownloader]] = {
    "coap": CoapDownloader,
    "http": HttpDownloader,
}
PROTOCOLS: tuple[Protocol, ...] = tuple(d.protocol for d in _DOWNLOADERS.values())


async def download(
    uri: str,
    sink: Sink,
    *,
    coap_context: Context | None = None,
    http_session: aiohttp.ClientSession | None = None,
    **options: Unpack[_Options],
) -> DownloadOutcome:
    """Fetch ``uri`` into ``sink``, choosing the downloader by the URI's scheme.

    Options: ``window`` (CoAP: Block2 requests in flight; 1, the default, is lock-step — see
    ``CoapDownloader._windowed``), ``resume`` (a ``Resume`` from an earlier
    ``DownloadError``), ``on_restart`` (empties the sink when the package changed and the
    download starts over),
    ``block_size`` (CoAP: ask for this block size on the first GET; HTTP: chunk size for the
    sink), ``retries``, ``retry_delay``, ``timeout`` (seconds for one request with its
    retransmissions / for one connect or read), ``progress(received, total)``.

    Raises ``DownloadError`` with the Update Result to report (see the module docstring).
    """
    try:
        parts = urlsplit(uri)
        well_formed = bool(parts.scheme and parts.hostname) and parts.port != 0
    except ValueError:  # a bad port number or IPv6 literal
        well_formed = False
    if not well_formed or parts.fragment or any(c.isspace() for c in uri):
        raise DownloadError(
            UpdateResult.INVALID_URI, f"{uri[:60]!r} is not a URI like coap://host:port/path"
        )
    scheme = parts.scheme.lower()
    if scheme not in _DOWNLOADERS:
        offered = " and ".join(f"{s}://" for s in _DOWNLOADERS)
        raise DownloadError(
            UpdateResult.UNSUPPORTED_PROTOCOL,
            f"cannot download {scheme}:// URIs, only {offered} ({uri[:60]})",
        )
    window = options.pop("window", 1)  # CoAP only: HTTP streams the package in one response
    if scheme == "coap":
        downloader: Downloader = CoapDownloader(
            uri, sink, context=coap_context, window=window, **options
        )
    else:
        downloader = HttpDownloader(uri, sink, session=http_session, **options)
    return await downloader.run()


# -- helpers -------------------------------------------------------------------------------------


def _szx(size: int) -> int:
    """The Block2 SZX of a block size: 16 → 0 … 1024 → 6."""
    if size not in (16, 32, 64, 128, 256, 512, 1024):
        raise ValueError(f"a CoAP block size is a power of two from 16 to 1024, not {size}")
    return size.bit_length() - 5


def _content_range(header: str) -> tuple[int | None, int | None, int | None]:
    """``bytes 3000-4999/5000`` → (3000, 4999, 5000); ``bytes */5000`` → (None, None, 5000)."""
    try:
        unit, _, spec = header.partition(" ")
        span, _, total = spec.partition("/")
        if unit != "bytes":
            raise ValueError(header)
        size = None if total == "*" else int(total)
        if span == "*":
            return None, None, size
        first, _, last = span.partition("-")
        return int(first), int(last), size
    except ValueError:
        return None, None, None


async def _client_context(host: str) -> Context:
    """A context of our own for a download: bound to loopback when the host is loopback."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return (await open_context(None, host))[0]
    return await Context.create_client_context(transports=TRANSPORTS)
