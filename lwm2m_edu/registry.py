"""The Registration interface, from the server's side, as bookkeeping (sans-I/O).

An LwM2M client announces itself to a server with three CoAP requests, and this module is the
server's memory of them. Nothing here touches the network or reads the clock: the server passes
the request's parts in (query items, payload, the sender's address) and the time as ``now``, and
gets a ``Registration`` back or a ``RegistrationError`` that says which CoAP code to answer::

    Register     POST /rd?ep=dev-1&lt=300&lwm2m=1.1&b=U     payload </1/0>,</3/0>,</5>  (CF 40)
                 → 2.01 Created, Location-Path rd/3f2a       the client's handle from now on
    Update       POST /rd/3f2a?lt=600                       only what changed (lt, b, sms, Q),
                 → 2.04 Changed                              a payload only if objects changed
    De-register  DELETE /rd/3f2a
                 → 2.02 Deleted

The query parameters of Register (LwM2M 1.1 core, §6.2; defaults as the specification gives them):

=========  =========  ==================================================================
``ep``     required   the Endpoint Client Name, unique per server
``lt``     86400      lifetime in seconds; the client must Update before it runs out
                      (0 = no expiry)
``lwm2m``  ``1.0``    the LwM2M version the client speaks: ``1.0``, ``1.1`` or ``1.2``
``b``      ``U``      binding: ``U`` UDP, ``S`` SMS, ``T`` TCP and ``N`` Non-IP (1.1+);
                      in LwM2M 1.0 queue mode is the letter ``Q`` inside it (``UQ``)
``Q``      absent     queue mode, as its own valueless item (LwM2M 1.1+)
``sms``    absent     the client's MSISDN, for the SMS binding
=========  =========  ==================================================================

What goes wrong, and what the server answers (Leshan's response classes list the same codes):

* no ``ep``, a malformed ``lt``/``b``/``lwm2m`` (or an ``lt`` past the largest LwM2M Integer),
  a parameter given twice or longer than a Uri-Query option may be (255 bytes), a payload that
  is not link-format (Content-Format 40) or does not parse → **4.00 Bad Request**, with the
  reason;
* a well-formed LwM2M version this server does not speak (``lwm2m=2.0``) → **4.12 Precondition
  Failed** (Wakaama answers ``lwm2m=1.2`` the same way; a client may retry with an older one);
* an Update or De-register for a location nobody holds → **4.04 Not Found**: the client must
  Register again (this is how it learns that the server forgot it, e.g. after a restart).

A Register for an endpoint that is already registered replaces the old registration: the client
rebooted (after a firmware update, for instance) and starts over, with a new location.

**Lifetime.** A registration is dropped by ``expire(now)`` once ``now`` passes
``updated_at + lifetime + grace``. The grace (default: CoAP MAX_TRANSMIT_WAIT, 93 s) covers an
Update that is still being retransmitted when the lifetime runs out.

**Queue mode** (``b=UQ`` in 1.0, ``Q`` in 1.1+). A queue-mode client sleeps with its radio off and
is reachable only for a short while (``awake_time``, default 93 s) after it last sent something.
The server must *hold* its requests until then: ``hold(endpoint, item)`` files a request here,
and ``take_held(endpoint)`` hands them back when the client is heard from again (an Update or a
new Register). The items are whatever the caller needs (the I/O server keeps futures in it).

**Events.** ``add_listener(callback)`` calls ``callback(RegistrationEvent)`` on every
registered / updated / deregistered / expired event, after the bookkeeping is done.
"""

from __future__ import annotations

import heapq
import html
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .codecs import CodecError, ContentFormat, linkformat
from .objects.outcome import Code

__all__ = [
    "DEFAULT_AWAKE_TIME",
    "DEFAULT_GRACE",
    "DEFAULT_LIFETIME",
    "PRECONDITION_FAILED",
    "SUPPORTED_VERSIONS",
    "EventKind",
    "Registration",
    "RegistrationError",
    "RegistrationEvent",
    "Registry",
]

#: The lifetime the specification assumes when Register has no ``lt``.
DEFAULT_LIFETIME = 86400
#: Extra seconds past the lifetime before a registration is dropped (CoAP MAX_TRANSMIT_WAIT).
DEFAULT_GRACE = 93.0
#: How long a queue-mode client stays reachable after it last talked (CoAP MAX_TRANSMIT_WAIT).
DEFAULT_AWAKE_TIME = 93.0
#: The LwM2M versions this server speaks.
SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2")
#: CoAP 4.12 Precondition Failed (``Code`` lists only what objects answer; this is a server's).
PRECONDITION_FAILED = 0x8C

#: The longest query item a Register or Update may carry: a Uri-Query option holds at most 255
#: bytes (RFC 7252 §5.10), so ``ep=`` leaves 252 for the endpoint name.
MAX_QUERY_ITEM = 255
#: The longest lifetime: /1/x/1 Lifetime is an LwM2M Integer (signed 64-bit).
MAX_LIFETIME = 2**63 - 1

_VERSION = re.compile(r"[0-9]+\.[0-9]+")
_BINDING_LETTERS = {"U": "UDP", "S": "SMS", "T": "TCP", "N": "Non-IP", "Q": "queue mode"}
_UPDATE_PARAMETERS = ("lt", "b", "sms", "Q")
_CODE_NAMES = {PRECONDITION_FAILED: "4.12 Precondition Failed"}


class RegistrationError(Exception):
    """A Register, Update or De-register the server refuses: ``code`` is the CoAP answer.

    ``code`` is the number on the wire (``Code.BAD_REQUEST``, ``Code.NOT_FOUND`` or
    ``PRECONDITION_FAILED``); ``reason`` is sent back as the diagnostic payload.
    """

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{_code_text(code)}: {reason}")


def _code_text(code: int) -> str:
    if code in _CODE_NAMES:
        return _CODE_NAMES[code]
    try:
        return str(Code(code))
    except ValueError:
        return f"{code >> 5}.{code & 0x1F:02d}"


def _bad(reason: str) -> RegistrationError:
    return RegistrationError(Code.BAD_REQUEST, reason)


@dataclass(frozen=True)
class Registration:
    """One registered client, as the server knows it.

    ``links`` is the parsed Register payload (objects, versions, instances, the ``ct=`` list);
    ``address`` is where its requests came from (opaque here: the I/O layer's remote);
    times are whatever clock the caller uses for ``now``. ``expires_at`` is ``math.inf`` for
    lifetime 0.
    """

    endpoint: str
    location: str
    lifetime: int
    binding: str
    queue_mode: bool
    lwm2m_version: str
    sms: str | None
    links: linkformat.Registration
    address: Any
    registered_at: float
    updated_at: float

    @property
    def expires_at(self) -> float:
        return math.inf if self.lifetime == 0 else self.updated_at + self.lifetime

    @property
    def location_path(self) -> tuple[str, ...]:
        """The Location-Path options of the 2.01 answer: ``("rd", "3f2a")``."""
        return tuple(self.location.split("/"))

    @property
    def objects(self) -> Mapping[int, linkformat.RegisteredObject]:
        return self.links.objects

    @property
    def content_formats(self) -> tuple[int, ...]:
        """The optional formats the client advertised with ``ct=`` on its root link."""
        return self.links.content_formats

    @property
    def root_path(self) -> str:
        """Where the client's objects sit: ``"/"``, or an alternate path such as ``"/lwm2m"``."""
        return self.links.root_path

    def has_object(self, object_id: int) -> bool:
        return object_id in self.links.objects

    def __str__(self) -> str:
        objects = " ".join(f"/{oid}" for oid in self.links.objects)
        mode = ", queue mode" if self.queue_mode else ""
        return (
            f"{self.endpoint} at {self.location} (LwM2M {self.lwm2m_version}, b={self.binding}"
            f"{mode}, lt={self.lifetime}) objects {objects or 'none'}"
        )

    def _repr_html_(self) -> str:
        """Who registered, from where, for how long, and with which objects, as a table."""
        letters = ", ".join(_BINDING_LETTERS.get(letter, letter) for letter in self.binding)
        if self.queue_mode and "Q" not in self.binding:  # LwM2M 1.1: Q is its own query item
            letters += ", queue mode"
        objects = [
            f"/{oid}" + (f" ver {obj.version}" if obj.version else "")
            + (f" instances {', '.join(map(str, obj.instances))}" if obj.instances else "")
            for oid, obj in self.links.objects.items()
        ]  # fmt: skip
        rows = [
            ("endpoint", self.endpoint),
            ("location", f"/{self.location}"),
            ("address", str(getattr(self.address, "hostinfo", None) or self.address)),
            ("LwM2M version", self.lwm2m_version),
            ("binding", f"{self.binding} ({letters})"),
            ("lifetime", f"{self.lifetime} s" if self.lifetime else "0 (never expires)"),
            ("objects", "; ".join(objects) or "none"),
            ("content formats", ", ".join(map(str, self.content_formats)) or "default only"),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
            for k, v in rows
        )
        return f"<table><caption>Registration</caption>{body}</table>"


class EventKind(Enum):
    REGISTERED = "registered"  #: a new Register (``previous`` is set when it replaced one)
    UPDATED = "updated"  #: an Update
    DEREGISTERED = "deregistered"  #: a De-register
    EXPIRED = "expired"  #: the lifetime (plus grace) ran out


@dataclass(frozen=True)
class RegistrationEvent:
    kind: EventKind
    registration: Registration
    previous: Registration | None = None  #: the registration a Register or Update replaced


Listener = Callable[[RegistrationEvent], None]


@dataclass
class _Params:
    """The query items of one request, checked for duplicates: name → value (None = no '=')."""

    items: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, query_items: Iterable[str] | Mapping[str, str | None]) -> _Params:
        params = cls()
        pairs = (
            query_items.items()
            if isinstance(query_items, Mapping)
            else ((n, v if eq else None) for n, eq, v in (q.partition("=") for q in query_items))
        )
        for name, value in pairs:
            size = len(name.encode()) + (0 if value is None else len(value.encode()) + 1)
            if size > MAX_QUERY_ITEM:
                raise _bad(
                    f"the query item {name[:20]!r} is {size} bytes long; a Uri-Query option holds "
                    f"at most {MAX_QUERY_ITEM} (RFC 7252 §5.10)"
                )
            if name in params.items:
                raise _bad(f"the query parameter {name!r} is given twice")
            params.items[name] = value
        return params

    def text(self, name: str) -> str | None:
        if name not in self.items:
            return None
        value = self.items[name]
        if value is None:
            raise _bad(f"the query parameter {name!r} needs a value, as in {name}=...")
        return value


class Registry:
    """Who is registered: register / update / deregister / expire, plus queue-mode holding.

    ``location_ids`` yields the ids of new locations (``"rd/<id>"``); the default counts in hex.
    Pass your own to make them unguessable (a client could otherwise guess another's location).
    """

    def __init__(
        self,
        *,
        grace: float = DEFAULT_GRACE,
        awake_time: float = DEFAULT_AWAKE_TIME,
        location_prefix: str = "rd",
        location_ids: Iterable[str] | None = None,
    ) -> None:
        self.grace = grace
        self.awake_time = awake_time
        self.location_prefix = location_prefix
        self._ids = iter(location_ids) if location_ids is not None else _hex_counter()
        self._by_endpoint: dict[str, Registration] = {}
        self._by_location: dict[str, str] = {}
        self._by_address: dict[Any, str] = {}
        # When each registration runs out, soonest first: (expires_at, tie-breaker, registration).
        # Entries of registrations since replaced or dropped stay until they surface (``_due``).
        self._deadlines: list[tuple[float, int, Registration]] = []
        self._tie_breaker = itertools.count()
        self._last_heard: dict[str, float] = {}
        self._held: dict[str, list[Any]] = {}
        self._listeners: list[Listener] = []

    # -- looking things up ----------------------------------------------------------------------

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._by_endpoint

    def __len__(self) -> int:
        return len(self._by_endpoint)

    def get(self, endpoint: str) -> Registration | None:
        return self._by_endpoint.get(endpoint)

    def by_location(self, location: str) -> Registration | None:
        endpoint = self._by_location.get(location.strip("/"))
        return None if endpoint is None else self._by_endpoint[endpoint]

    def by_address(self, address: Any) -> Registration | None:
        """The registration whose client speaks from ``address`` (the last to register or update
        from there), e.g. to tell who sent a Send."""
        endpoint = self._by_address.get(address)
        return None if endpoint is None else self._by_endpoint[endpoint]

    @property
    def endpoints(self) -> list[str]:
        return sorted(self._by_endpoint)

    @property
    def registrations(self) -> list[Registration]:
        return [self._by_endpoint[ep] for ep in self.endpoints]

    # -- the three operations -------------------------------------------------------------------

    def register(
        self,
        query_items: Iterable[str] | Mapping[str, str | None],
        payload: bytes,
        address: Any,
        now: float,
        *,
        content_format: int | None = ContentFormat.LINK_FORMAT,
    ) -> Registration:
        """Check a Register request and record it; raises ``RegistrationError`` if malformed."""
        params = _Params.parse(query_items)
        endpoint = params.text("ep")
        if not endpoint:
            raise _bad("Register needs the endpoint name: add the query parameter ep=<name>")
        version = _version(params.text("lwm2m"))
        lifetime = _lifetime(params.text("lt"), DEFAULT_LIFETIME)
        binding, queue_in_b = _binding(params.text("b"), version, "U")
        queue_mode = queue_in_b or _queue_item(params, version)
        links = _links(payload, content_format)
        location = self._new_location()
        registration = Registration(
            endpoint=endpoint,
            location=location,
            lifetime=lifetime,
            binding=binding,
            queue_mode=queue_mode,
            lwm2m_version=version,
            sms=params.text("sms"),
            links=links,
            address=address,
            registered_at=now,
            updated_at=now,
        )
        previous = self._by_endpoint.get(endpoint)
        if previous is not None:
            del self._by_location[previous.location]
        self._store(registration)
        self._by_location[location] = endpoint
        self._last_heard[endpoint] = now
        self._emit(RegistrationEvent(EventKind.REGISTERED, registration, previous))
        return registration

    def update(
        self,
        location: str,
        query_items: Iterable[str] | Mapping[str, str | None],
        payload: bytes,
        address: Any,
        now: float,
        *,
        content_format: int | None = None,
    ) -> Registration:
        """Apply an Update to the registration at ``location``; 4.04 if there is none."""
        previous = self._existing(location, "Update")
        params = _Params.parse(query_items)
        for name in params.items:
            if name in ("ep", "lwm2m"):
                raise _bad(
                    f"an Update may carry only {', '.join(_UPDATE_PARAMETERS)}; {name!r} can "
                    "change only with a new Register"
                )
        version = previous.lwm2m_version
        changes: dict[str, Any] = {"address": address, "updated_at": now}
        if "lt" in params.items:
            changes["lifetime"] = _lifetime(params.text("lt"), previous.lifetime)
        if "b" in params.items:
            changes["binding"], queue_in_b = _binding(params.text("b"), version, previous.binding)
            if version == "1.0":  # in 1.0 the letters say it all: b=U leaves queue mode
                changes["queue_mode"] = queue_in_b
        if _queue_item(params, version):  # 1.1+: Q enters queue mode; its absence changes nothing
            changes["queue_mode"] = True
        if "sms" in params.items:
            changes["sms"] = params.text("sms")
        if payload:
            changes["links"] = _links(payload, content_format)
        registration = replace(previous, **changes)
        self._store(registration)
        self._last_heard[previous.endpoint] = now
        self._emit(RegistrationEvent(EventKind.UPDATED, registration, previous))
        return registration

    def deregister(self, location: str) -> Registration:
        """Drop the registration at ``location``; 4.04 if there is none."""
        registration = self._existing(location, "De-register")
        self._drop(registration)
        self._emit(RegistrationEvent(EventKind.DEREGISTERED, registration))
        return registration

    def expire(self, now: float) -> list[Registration]:
        """Drop every registration whose lifetime (plus ``grace``) has run out at ``now``."""
        expired = []
        while (due := self._due()) is not None and now > due.expires_at + self.grace:
            heapq.heappop(self._deadlines)
            expired.append(due)
        for registration in expired:
            self._drop(registration)
            self._emit(RegistrationEvent(EventKind.EXPIRED, registration))
        return expired

    def next_expiry(self) -> float:
        """When ``expire`` will next have something to do (``math.inf`` if never)."""
        registration = self._due()
        return math.inf if registration is None else registration.expires_at + self.grace

    # -- queue mode -----------------------------------------------------------------------------

    def heard_from(self, endpoint: str, now: float) -> None:
        """Note that ``endpoint`` sent something other than Register/Update (e.g. a Send)."""
        if endpoint in self._by_endpoint:
            self._last_heard[endpoint] = now

    def is_reachable(self, endpoint: str, now: float) -> bool:
        """May the server send to ``endpoint`` now? Always, unless it is in queue mode and has
        been quiet for longer than ``awake_time``."""
        registration = self._by_endpoint.get(endpoint)
        if registration is None:
            return False
        if not registration.queue_mode:
            return True
        return now <= self._last_heard[endpoint] + self.awake_time

    def hold(self, endpoint: str, item: Any) -> None:
        """File a request for a sleeping queue-mode client; ``take_held`` gives it back."""
        self._held.setdefault(endpoint, []).append(item)

    def unhold(self, endpoint: str, item: Any) -> None:
        """Withdraw a held item (its requester gave up waiting)."""
        items = self._held.get(endpoint, [])
        if item in items:
            items.remove(item)

    def take_held(self, endpoint: str) -> list[Any]:
        """The items held for ``endpoint``, oldest first, and forget them."""
        return self._held.pop(endpoint, [])

    def held(self, endpoint: str) -> tuple[Any, ...]:
        return tuple(self._held.get(endpoint, ()))

    # -- listeners ------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` after every change; returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _emit(self, event: RegistrationEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    # -- internals ------------------------------------------------------------------------------

    def _new_location(self) -> str:
        for location_id in self._ids:
            location = f"{self.location_prefix}/{location_id}"
            if location not in self._by_location:
                return location
        raise RuntimeError("the registry ran out of location ids")

    def _existing(self, location: str, operation: str) -> Registration:
        registration = self.by_location(location)
        if registration is None:
            raise RegistrationError(
                Code.NOT_FOUND,
                f"{operation} for {location!r}, but no client is registered there (the server "
                "may have restarted or the registration expired): Register again",
            )
        return registration

    def _store(self, registration: Registration) -> None:
        previous = self._by_endpoint.get(registration.endpoint)
        if previous is not None:
            self._forget_address(previous)
        self._by_endpoint[registration.endpoint] = registration
        self._by_address[registration.address] = registration.endpoint
        if registration.expires_at != math.inf:
            entry = (registration.expires_at, next(self._tie_breaker), registration)
            heapq.heappush(self._deadlines, entry)
        if len(self._deadlines) > 2 * len(self._by_endpoint) + 64:  # mostly outdated: compact
            self._deadlines = [e for e in self._deadlines if self._is_current(e[2])]
            heapq.heapify(self._deadlines)

    def _is_current(self, registration: Registration) -> bool:
        return self._by_endpoint.get(registration.endpoint) is registration

    def _due(self) -> Registration | None:
        """The current registration that expires first (outdated entries are discarded)."""
        while self._deadlines and not self._is_current(self._deadlines[0][2]):
            heapq.heappop(self._deadlines)
        return self._deadlines[0][2] if self._deadlines else None

    def _drop(self, registration: Registration) -> None:
        self._forget_address(registration)
        del self._by_endpoint[registration.endpoint]
        del self._by_location[registration.location]
        self._last_heard.pop(registration.endpoint, None)

    def _forget_address(self, registration: Registration) -> None:
        if self._by_address.get(registration.address) == registration.endpoint:
            del self._by_address[registration.address]


def _hex_counter() -> Iterable[str]:
    return (f"{n:04x}" for n in itertools.count(1))


def _version(text: str | None) -> str:
    if text is None:
        return "1.0"
    if not _VERSION.fullmatch(text):
        raise _bad(f"lwm2m={text!r} is not a version number such as 1.1")
    if text not in SUPPORTED_VERSIONS:
        raise RegistrationError(
            PRECONDITION_FAILED,
            f"this server speaks LwM2M {', '.join(SUPPORTED_VERSIONS)}, not {text}; "
            "register with one of those",
        )
    return text


def _lifetime(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit():
        raise _bad(f"lt={text!r}: the lifetime is a whole number of seconds (0 = no expiry)")
    lifetime = int(text)
    if lifetime > MAX_LIFETIME:
        raise _bad(f"lt={text[:30]}...: the lifetime is at most {MAX_LIFETIME} s (LwM2M Integer)")
    return lifetime


def _binding(text: str | None, version: str, default: str) -> tuple[str, bool]:
    """The binding letters without ``Q``, and whether ``Q`` was among them (1.0 queue mode)."""
    if text is None:
        return default, False
    if not text:
        raise _bad("b= is empty; the binding is letters such as U (UDP)")
    for letter in text:
        if letter not in _BINDING_LETTERS:
            known = ", ".join(f"{k} {v}" for k, v in _BINDING_LETTERS.items())
            raise _bad(f"b={text!r}: {letter!r} is not a binding letter ({known})")
        if text.count(letter) > 1:
            raise _bad(f"b={text!r} repeats the letter {letter!r}")
    if version == "1.0" and set(text) & {"T", "N"}:
        raise _bad(f"b={text!r}: the TCP (T) and Non-IP (N) bindings need LwM2M 1.1 or later")
    if "Q" in text and version != "1.0":
        raise _bad(
            f"b={text!r}: since LwM2M 1.1 queue mode is its own query item: "
            f"b={text.replace('Q', '')}&Q"
        )
    if text == "Q":
        raise _bad("b=Q names queue mode but no transport; write b=UQ")
    return text.replace("Q", ""), "Q" in text


def _queue_item(params: _Params, version: str) -> bool:
    if "Q" not in params.items:
        return False
    if params.items["Q"] is not None:
        raise _bad(f"Q={params.items['Q']!r}: the queue-mode item Q takes no value")
    if version == "1.0":
        raise _bad("in LwM2M 1.0 queue mode is the letter Q inside b (b=UQ), not a Q item")
    return True


def _links(payload: bytes, content_format: int | None) -> linkformat.Registration:
    if payload and content_format != ContentFormat.LINK_FORMAT:
        named = f"Content-Format {content_format}" if content_format is not None else "none"
        raise _bad(
            f"the Register payload lists objects in link-format (Content-Format 40), "
            f"but it came with {named}"
        )
    try:
        return linkformat.parse_registration(payload)
    except CodecError as exc:
        raise _bad(f"the object links do not parse: {exc}") from None
