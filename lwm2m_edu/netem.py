"""A bad network on demand: a UDP proxy that loses, delays, limits, duplicates and reorders.

On loopback every datagram arrives, at once, in order. Real links are not like that, and a
firmware update is exactly the long transfer that meets every flaw of a link. ``Link`` puts
such a link between two CoAP endpoints on this machine (named after Linux ``tc netem``)::

    server = await Server.start()
    async with await Link.start((server.host, server.port), loss=0.1, seed=1) as link:
        await device.start(link.uri)            # the device talks to the server *through* it

    link = await Link.start(("127.0.0.1", host.coap_port), loss=0.2, delay=0.05, jitter=0.02)
    await download(link.uri_for(pkg.coap_uri), sink)    # coap://127.0.0.1:<link port>/fw.bin

``Link.start(target)`` listens on a free loopback port (``link.address``, ``link.uri``); every
datagram sent there goes on to ``target``, and the answers come back the same way.

Clients
=======
Each client that sends to the link gets its **own upstream socket**, so the target sees one
address per client and its replies reach the right one (one link may serve a whole fleet).
The target sees the link's upstream address, not the client's, just as a server sees a
device behind a carrier's NAT: the LwM2M server sends its requests to the address a Register
came from, so they too go through the link. A device that reboots opens a new socket and so
comes back from a **new address** — which is why it registers again.

When a client's socket is gone, the kernel answers the link's next datagram to it with ICMP
"port unreachable"; the link (on Linux) then closes that client's upstream socket, so the
target's next datagram there fails at once, as it would without the link. With
``idle_timeout`` an upstream socket is closed after that long without a datagram from its
client, as a NAT forgets a binding: the server's requests then go nowhere until the client
sends again — from a new address (the reason for LwM2M queue mode and short lifetimes behind
NATs). At most ``max_clients`` upstream sockets are kept (the quietest is closed first).

What each impairment models
===========================
Every datagram, in each **direction** (``"up"``: from the clients to the target, ``"down"``:
back), passes these steps:

* **loss** (probability): radio links lose frames to fading, interference and collisions,
  and a congested router drops what does not fit its queue. CoAP has no TCP underneath: a lost
  request or answer is noticed only by a timeout, and repaired only by a retransmission.
* **delay ± jitter** (seconds, uniform): propagation and queueing. Cellular IoT links have
  round trips of 100 ms (LTE-M) to several seconds (NB-IoT in deep coverage, with power saving).
  Jitter — the variation — is what breaks fixed timeouts; a large jitter also reorders
  datagrams, as it does on real links.
* **rate** (bytes/s): a link carries a datagram in ``size / rate`` seconds, one after the other;
  datagrams wait in a queue per direction. NB-IoT gives tens of kbit/s at best (a few kB/s),
  so a 200 KB image takes minutes, and a window of parallel requests only fills the queue.
* **duplicate** (probability): a datagram delivered twice, as by a link layer or middlebox that
  retransmits a frame whose acknowledgement was lost. CoAP's Message ID deduplication must
  make sure a duplicated request is not executed twice.
* **reorder** (probability): the datagram is held back and sent after the next one in its
  direction (or after ``reorder_timeout`` if none comes), as on multi-path and load-balanced
  routes. A block that arrives late must not be written in the wrong place.
* **blackout** (the link is down): a device moves out of coverage, into a lift, or its modem
  re-attaches to another cell. Everything sent meanwhile is lost, also what was on the way.
  ``blackout(start_in, duration)`` plans one; ``async with link.down():`` is one for a block of
  code; ``link.set(loss=..., ...)`` changes the other conditions while the link runs.

``link.stats.up`` / ``.down`` count what happened (``received``, ``sent``, ``dropped``,
``duplicated``, ``reordered``, ``bytes``); with a ``trace`` every drop, duplicate, reordering
and blackout is marked there as an event of the node ``name``, between the messages.

Why seeded, and what is (not) repeatable
========================================
A failure you cannot repeat you cannot debug, and a lesson that shows a different story on
each run confuses. So every random decision comes from ``random.Random`` seeded with ``seed``
(one stream per direction), drawn **in the order the datagrams arrive**, a fixed number of
draws per datagram: the n-th datagram going up meets the same fate in every run with the
same seed (``link.decide(direction, size)`` is that decision, callable without a network).
*Timing* still comes from the real event loop: the delays are real ``loop.call_later``
timers, aiocoap picks its retransmission timeouts at random, and a machine under load is
slower. When a retransmission races a late answer the order of datagrams, and so the
decisions, can change. Tests should therefore assert on **outcomes** — the bytes arrived
intact, the Update Result, the counters' bounds — not on exact timings or exact counts of
an exchange that has such races.

The link is an I/O edge (asyncio datagram transports, timers); it never blocks. ``stop()``
(or leaving ``async with``) cancels every pending timer, drops the datagrams still held and
closes every socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ipaddress
import random
import socket
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, fields
from typing import Any, Literal, Self, cast
from urllib.parse import urlsplit, urlunsplit

from .coap import coap_uri

__all__ = ["DIRECTIONS", "Blackout", "Decision", "DirectionStats", "Link", "LinkStats"]

Direction = Literal["up", "down"]
#: ``"up"``: from the clients to the target; ``"down"``: from the target back to a client.
DIRECTIONS: tuple[Direction, Direction] = ("up", "down")
Address = tuple[Any, ...]  # (host, port) or IPv6 (host, port, flowinfo, scope_id)

_CONDITIONS = ("loss", "delay", "jitter", "rate", "duplicate", "reorder", "reorder_timeout")
_TYPES = ("CON", "NON", "ACK", "RST")


@dataclass(frozen=True)
class Decision:
    """What the link does with one datagram (the random part; blackouts and rate aside)."""

    drop: bool  #: lost
    delay: float  #: seconds of delay (``delay ± jitter``, never negative)
    duplicate: bool  #: delivered twice
    reorder: bool  #: held back behind the next datagram


@dataclass
class DirectionStats:
    """Counters of one direction of a link."""

    received: int = 0  #: datagrams that entered the link
    sent: int = 0  #: datagrams delivered (duplicates included)
    dropped: int = 0  #: lost: by ``loss`` or in a blackout
    duplicated: int = 0  #: extra copies delivered
    reordered: int = 0  #: held back behind a later datagram
    bytes: int = 0  #: bytes delivered (duplicates included)

    def __str__(self) -> str:
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))


@dataclass
class LinkStats:
    """``up``: clients → target; ``down``: target → clients."""

    up: DirectionStats
    down: DirectionStats

    def __getitem__(self, direction: Direction) -> DirectionStats:
        return self.up if direction == "up" else self.down


class Blackout:
    """A planned outage of a link; ``cancel()`` calls it off, or ends it now if it has begun."""

    def __init__(self, link: Link, start_in: float, duration: float) -> None:
        self._link = link
        self.duration = duration
        self.started = self.ended = False
        self._start = link._later(start_in, self._begin)
        self._end: asyncio.TimerHandle | None = None

    def _begin(self) -> None:
        self.started = True
        self._link._go_down(f"blackout for {self.duration:g} s")
        self._end = self._link._later(self.duration, self._finish)

    def _finish(self) -> None:
        if not self.ended:
            self.ended = True
            self._link._go_up("blackout over")

    def cancel(self) -> None:
        """Do not start it; or, when it is on, end it now."""
        if not self.started:
            self._start.cancel()
            self._link._timers.discard(self._start)
            self.ended = True
        elif not self.ended:
            if self._end is not None:
                self._end.cancel()
                self._link._timers.discard(self._end)
            self._finish()

    def __repr__(self) -> str:
        state = "over" if self.ended else "on" if self.started else "planned"
        return f"<Blackout {self.duration:g} s, {state}>"


class _Listener(asyncio.DatagramProtocol):
    """The link's own port: datagrams from clients, going up."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.link._arrived("up", data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" for a datagram sent to a client: its socket is gone
        self.link._unreachable_clients()


class _Session(asyncio.DatagramProtocol):
    """One client's upstream socket, connected to the target: datagrams coming down."""

    def __init__(self, link: Link, client: Address) -> None:
        self.link = link
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []  # due to go up before the socket was open
        self.last_heard = 0.0  # loop time of the client's last datagram
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        if self.closed:
            return
        pending, self.pending = self.pending, []
        for data in pending:
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.link._arrived("down", data, self.client)

    def error_received(self, exc: Exception) -> None:  # nothing listens at the target (yet)
        pass

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.sendto(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Link:
    """An impairing UDP proxy in front of ``target``; make one with ``await Link.start(...)``.

    See the module docstring for what each condition models and what the seed repeats.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        host: str,
        seed: int,
        trace: Any,
        name: str,
        max_clients: int,
        idle_timeout: float | None,
        conditions: dict[str, Any],
    ) -> None:
        # Use ``await Link.start(...)``; the constructor only sets up the bookkeeping.
        self.target = (target[0], int(target[1]))
        self.host = host
        self.seed = seed
        self.trace = trace
        self.name = name
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.loss = self.delay = self.jitter = self.duplicate = self.reorder = 0.0
        self.rate: float | None = None
        self.reorder_timeout = 0.5
        self._check_and_set(conditions)
        self.stats = LinkStats(DirectionStats(), DirectionStats())
        self._random = {d: random.Random(f"lwm2m_edu.netem {seed} {d}") for d in DIRECTIONS}
        self._down = 0  # how many outages are on (blackouts and ``down()`` may overlap)
        self._busy_until = dict.fromkeys(DIRECTIONS, 0.0)  # the rate limit's queue, per direction
        self._held: dict[Direction, tuple[bytes, Address, asyncio.TimerHandle] | None] = (
            dict.fromkeys(DIRECTIONS)
        )
        self._timers: set[asyncio.TimerHandle] = set()
        self._sessions: OrderedDict[tuple[str, int], _Session] = OrderedDict()
        self._socket: socket.socket | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.address: tuple[str, int] = (host, 0)

    @classmethod
    async def start(
        cls,
        target: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        loss: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        rate: float | None = None,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        reorder_timeout: float = 0.5,
        seed: int = 0,
        trace: Any = None,
        name: str = "link",
        max_clients: int = 64,
        idle_timeout: float | None = None,
    ) -> Link:
        """Listen on a free port of ``host`` (loopback) and forward to ``target`` (host, port).

        ``loss``, ``duplicate``, ``reorder``: probabilities 0..1 per datagram; ``delay`` and
        ``jitter``: seconds; ``rate``: bytes per second, None for no limit; a held-back
        datagram goes out after ``reorder_timeout`` s at the latest. ``seed`` fixes the random
        decisions; ``trace`` (a ``trace.Trace``) receives events as node ``name``. At most
        ``max_clients`` upstream sockets are kept: the one quiet the longest is closed first.
        With ``idle_timeout``, a client's upstream socket is closed after that many seconds
        without a datagram from the client, like a NAT binding (see "Clients" above).
        """
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"Link binds loopback only: use '127.0.0.1' or '::1', not {host!r}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be 1 or more, not {max_clients}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout is seconds (> 0), or None, not {idle_timeout!r}")
        conditions = {
            "loss": loss, "delay": delay, "jitter": jitter, "rate": rate,
            "duplicate": duplicate, "reorder": reorder, "reorder_timeout": reorder_timeout,
        }  # fmt: skip
        self = cls(
            target, host=host, seed=seed, trace=trace, name=name, max_clients=max_clients,
            idle_timeout=idle_timeout,
            conditions=conditions,
        )  # fmt: skip
        self._loop = asyncio.get_running_loop()
        self._socket = _listening_socket(host)
        try:
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _Listener(self), sock=self._socket
            )
        except BaseException:
            self._socket.close()
            raise
        self._listener = transport
        if idle_timeout is not None:
            self._later(idle_timeout / 2, self._expire_idle)
        self.address = tuple(transport.get_extra_info("sockname")[:2])  # type: ignore[assignment]
        return self

    # -- addresses --------------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """``coap://127.0.0.1:<port>``: the link's address as a CoAP URI."""
        return coap_uri(*self.address)

    def uri_for(self, path_or_uri: str) -> str:
        """A URI that goes through the link: ``coap://target/p`` or ``/p`` → ``coap://link/p``."""
        if "://" not in path_or_uri:
            return self.uri + "/" + path_or_uri.lstrip("/")
        parts = urlsplit(path_or_uri)
        if parts.scheme.lower() not in ("coap", "coap+udp"):
            raise ValueError(f"a Link carries CoAP over UDP: {path_or_uri!r} is not a coap:// URI")
        try:
            same = (
                ipaddress.ip_address(parts.hostname or "") == ipaddress.ip_address(self.target[0])
                and (parts.port or 5683) == self.target[1]
            )
        except ValueError:
            same = False
        if not same:
            raise ValueError(
                f"{path_or_uri!r} does not point at this link's target "
                f"{coap_uri(*self.target)}: start a Link in front of that endpoint instead"
            )
        return urlunsplit(
            (parts.scheme, self.uri.split("://", 1)[1], parts.path, parts.query, parts.fragment)
        )

    # -- conditions -------------------------------------------------------------------------------

    def set(self, **conditions: Any) -> None:
        """Change conditions while the link runs, e.g. ``link.set(loss=0.5, delay=0.2)``."""
        self._check_and_set(conditions)
        self._mark("set " + ", ".join(f"{k}={v}" for k, v in conditions.items()))

    def _check_and_set(self, conditions: dict[str, Any]) -> None:
        unknown = sorted(set(conditions) - set(_CONDITIONS))
        if unknown:
            raise TypeError(f"unknown link condition {unknown}: the conditions are {_CONDITIONS}")
        for key, value in conditions.items():
            if key in ("loss", "duplicate", "reorder"):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{key} is a probability from 0.0 to 1.0, not {value!r}")
            elif key == "rate":
                if value is not None and not value > 0:
                    raise ValueError(f"rate is bytes per second (> 0), or None, not {value!r}")
            elif not value >= 0:
                raise ValueError(f"{key} is seconds, 0 or more, not {value!r}")
        for key, value in conditions.items():
            setattr(self, key, None if value is None else float(value))

    def decide(self, direction: Direction, size: int) -> Decision:
        """The random fate of the next datagram of ``size`` bytes going ``direction``.

        Draws exactly four numbers from that direction's seeded stream, whatever the
        conditions, so the n-th datagram's fate depends only on the seed and n (and on the
        conditions at that moment), never on timing. ``size`` is there for size-dependent
        models; the built-in ones do not use it.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction is 'up' or 'down', not {direction!r}")
        rng = self._random[direction]
        lose, spread, twice, late = rng.random(), rng.random(), rng.random(), rng.random()
        return Decision(
            drop=lose < self.loss,
            delay=max(0.0, self.delay + (2 * spread - 1) * self.jitter),
            duplicate=twice < self.duplicate,
            reorder=late < self.reorder,
        )

    # -- outages ----------------------------------------------------------------------------------

    @property
    def is_down(self) -> bool:
        """True while a blackout or a ``down()`` block is on."""
        return self._down > 0

    def blackout(self, start_in: float, duration: float) -> Blackout:
        """Take the link down ``start_in`` seconds from now, for ``duration`` seconds."""
        if start_in < 0 or duration < 0:
            raise ValueError(f"blackout({start_in!r}, {duration!r}): seconds, 0 or more")
        self._require_running()
        return Blackout(self, start_in, duration)

    @contextlib.asynccontextmanager
    async def down(self) -> AsyncIterator[Self]:
        """``async with link.down(): ...`` — no datagram passes inside the block."""
        self._require_running()
        self._go_down("down")
        try:
            yield self
        finally:
            self._go_up("up again")

    def _go_down(self, why: str) -> None:
        self._down += 1
        self._mark(f"link down ({why})")

    def _go_up(self, why: str) -> None:
        self._down = max(0, self._down - 1)
        self._mark(f"link up ({why})" if not self._down else f"{why}; still down")

    # -- the datagrams ----------------------------------------------------------------------------

    def _arrived(self, direction: Direction, data: bytes, client: Address) -> None:
        if self._loop is None or self._listener is None:
            return  # stopped
        stats = self.stats[direction]
        stats.received += 1
        if direction == "up" and (session := self._sessions.get(_key(client))) is not None:
            session.last_heard = self._loop.time()
        decision = self.decide(direction, len(data))
        if self._down or decision.drop:
            stats.dropped += 1
            self._mark(f"dropped {_describe(direction, data)}" + (" (down)" if self._down else ""))
            return
        now = self._loop.time()
        copies = 2 if decision.duplicate else 1
        for copy in range(copies):
            leaves = now
            if self.rate is not None:  # serialization: one datagram after the other
                leaves = max(now, self._busy_until[direction]) + len(data) / self.rate
                self._busy_until[direction] = leaves
            due = leaves + decision.delay - now
            reorder = decision.reorder and copy == 0
            if copy:
                stats.duplicated += 1
                self._mark(f"duplicated {_describe(direction, data)}")
            if due <= 0:
                self._emit(direction, data, client, reorder)
            else:
                self._later(due, self._emit, direction, data, client, reorder)

    def _emit(self, direction: Direction, data: bytes, client: Address, reorder: bool) -> None:
        """The datagram leaves the link now (or is held back behind the next one)."""
        held = self._held[direction]
        if reorder and held is None:
            timer = self._later(self.reorder_timeout, self._release, direction)
            self._held[direction] = (data, client, timer)
            self.stats[direction].reordered += 1
            self._mark(f"held back {_describe(direction, data)}")
            return
        self._deliver(direction, data, client)
        if held is not None:
            self._release(direction)

    def _release(self, direction: Direction) -> None:
        held, self._held[direction] = self._held[direction], None
        if held is not None:
            data, client, timer = held
            timer.cancel()
            self._timers.discard(timer)
            self._deliver(direction, data, client)

    def _deliver(self, direction: Direction, data: bytes, client: Address) -> None:
        stats = self.stats[direction]
        if self._down:  # lost on the way: the link went down while it travelled
            stats.dropped += 1
            self._mark(f"dropped {_describe(direction, data)} (down)")
            return
        if direction == "up":
            self._session(client).send(data)
        elif self._listener is not None:
            self._listener.sendto(data, client)
        stats.sent += 1
        stats.bytes += len(data)

    def _session(self, client: Address) -> _Session:
        key = _key(client)
        session = self._sessions.get(key)
        if session is not None:
            session.last_heard = self._now()
            self._sessions.move_to_end(key)
            return session
        while len(self._sessions) >= self.max_clients:
            _, oldest = self._sessions.popitem(last=False)
            oldest.close()
            self._mark(f"closed the upstream socket of {_text(oldest.client)}: too many clients")
        session = _Session(self, client)
        session.last_heard = self._now()
        self._sessions[key] = session
        assert self._loop is not None
        task = self._loop.create_task(self._open(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return session

    async def _open(self, session: _Session) -> None:
        assert self._loop is not None
        try:
            await self._loop.create_datagram_endpoint(
                lambda: session, local_addr=(self.host, 0), remote_addr=self.target
            )
        except OSError as problem:
            self._mark(f"cannot open an upstream socket to {self.target}: {problem}")
            self._sessions.pop(_key(session.client), None)
            return
        if session.closed and session.transport is not None:  # evicted or stopped meanwhile
            session.transport.close()

    @property
    def clients(self) -> list[tuple[str, int]]:
        """The client addresses the link has an upstream socket for, quietest first."""
        return list(self._sessions)

    def _forget(self, key: tuple[str, int], why: str) -> None:
        session = self._sessions.pop(key, None)
        if session is not None:
            session.close()
            self._mark(f"closed the upstream socket of {_text(key)}: {why}")

    def _unreachable_clients(self) -> None:
        """Read the ICMP errors queued on the listening socket (Linux ``IP_RECVERR``).

        A client whose socket is closed (a device that rebooted) answers "port unreachable".
        Its upstream socket is closed too, so the target's next datagram to that address gets
        "port unreachable" in turn and fails at once, as it would without the link.
        """
        if self._socket is None or not hasattr(socket, "MSG_ERRQUEUE"):
            return
        for _ in range(64):
            try:
                *_, destination = self._socket.recvmsg(1, 256, socket.MSG_ERRQUEUE)
            except OSError:  # BlockingIOError: nothing (more) queued
                return
            if isinstance(destination, tuple):
                self._forget(_key(destination), "its port is unreachable (socket closed)")

    def _expire_idle(self) -> None:
        assert self.idle_timeout is not None
        quiet_since = self._now() - self.idle_timeout
        for key, session in list(self._sessions.items()):
            if session.last_heard <= quiet_since:
                self._forget(key, f"no datagram from it for {self.idle_timeout:g} s")
        self._later(self.idle_timeout / 2, self._expire_idle)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # -- helpers ----------------------------------------------------------------------------------

    def _later(
        self, delay: float, callback: Callable[..., None], *args: Any
    ) -> asyncio.TimerHandle:
        """``loop.call_later``, remembered until it runs so ``stop()`` can cancel it."""
        self._require_running()
        assert self._loop is not None
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = self._loop.call_later(delay, run)
        self._timers.add(handle)
        return handle

    def _mark(self, text: str) -> None:
        if self.trace is not None:
            self.trace.mark(self.name, text)

    def _require_running(self) -> None:
        if self._listener is None:
            raise RuntimeError(f"{self.name} is not running: await Link.start(...) first")

    # -- lifetime ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Cancel every pending timer, drop held datagrams, close every socket (idempotent)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._held = dict.fromkeys(DIRECTIONS)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        listener, self._listener = self._listener, None
        self._socket = None
        if listener is not None:
            listener.close()
            await asyncio.sleep(0)  # let the transports' close callbacks run

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _conditions_text(self) -> str:
        parts = [f"loss {self.loss:.0%}"]
        if self.delay or self.jitter:
            parts.append(f"delay {self.delay * 1000:g}±{self.jitter * 1000:g} ms")
        if self.rate is not None:
            parts.append(f"rate {self.rate:g} B/s")
        if self.duplicate:
            parts.append(f"duplicate {self.duplicate:.0%}")
        if self.reorder:
            parts.append(f"reorder {self.reorder:.0%}")
        parts.append(f"seed {self.seed}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        where = (
            "stopped"
            if self._listener is None
            else f"{coap_uri(*self.address)} → {coap_uri(*self.target)}"
        )
        state = " DOWN" if self._down else ""
        return (
            f"<Link {self.name!r} {where}{state}: {self._conditions_text()}; "
            f"up sent {self.stats.up.sent} dropped {self.stats.up.dropped}, "
            f"down sent {self.stats.down.sent} dropped {self.stats.down.dropped}>"
        )

    def _repr_html_(self) -> str:
        """The conditions and the counters per direction, as a table."""
        where = (
            "stopped"
            if self._listener is None
            else f"{coap_uri(*self.address)} → {coap_uri(*self.target)}"
        )
        state = " — <b>DOWN</b>" if self._down else ""
        names = [f.name for f in fields(DirectionStats)]
        head = "".join(f"<th>{name}</th>" for name in ["", *names])
        rows = "".join(
            f"<tr><th style='text-align:left'>{label}</th>"
            + "".join(f"<td>{getattr(self.stats[d], n)}</td>" for n in names)
            + "</tr>"
            for d, label in (("up", "up ↑ (to target)"), ("down", "down ↓ (to clients)"))
        )
        return (
            f"<table><caption>Link {html.escape(self.name)}: {html.escape(where)}{state}<br>"
            f"{html.escape(self._conditions_text())}</caption><tr>{head}</tr>{rows}</table>"
        )


def _listening_socket(host: str) -> socket.socket:
    """A UDP socket on ``(host, free port)`` that reports ICMP errors with their address."""
    ipv6 = ":" in host
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, 0))
        sock.setblocking(False)
        if sys.platform == "linux":  # IP_RECVERR / IPV6_RECVERR (Python 3.11 lacks the names)
            level, option = (socket.IPPROTO_IPV6, 25) if ipv6 else (socket.IPPROTO_IP, 11)
            sock.setsockopt(level, option, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _key(address: Address) -> tuple[str, int]:
    return (address[0], address[1])


def _text(address: Address) -> str:
    return f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}"


def _describe(direction: Direction, data: bytes) -> str:
    """``↑ CON 0.01 mid 1234 (87 B)``: enough of the CoAP header to follow a trace."""
    arrow = "↑" if direction == "up" else "↓"
    if len(data) >= 4 and data[0] >> 6 == 1:
        kind, code, mid = _TYPES[(data[0] >> 4) & 3], data[1], int.from_bytes(data[2:4], "big")
        return f"{arrow} {kind} {code >> 5}.{code & 31:02d} mid {mid} ({len(data)} B)"
    return f"{arrow} datagram ({len(data)} B)"
