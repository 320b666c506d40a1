"""Observe and notification attributes (sans-I/O): when an LwM2M client sends a notification.

Theory of operation
===================

An LwM2M server that wants to follow a value does not poll it. It **observes** it: a CoAP GET
with the option ``Observe: 0`` on any path (``/3/0/9`` Battery Level, ``/5/0`` the whole
Firmware Update instance, ...), or — LwM2M 1.1 — a FETCH with ``Observe: 0`` on ``/`` whose
payload lists several paths (**Observe-Composite**). The client answers at once with 2.05
Content carrying the current values, and from then on sends more 2.05 responses on the same
token, unasked: the **notifications**. Each carries an Observe option whose value rises (a
24-bit sequence number, RFC 7641 §3.4), so the server can tell a late one from a fresh one. The
server stops it with ``Observe: 1`` on the same token, or by answering a notification with RST.

*When* the client notifies is shaped by **notification attributes**, which the server sets
per path with Write-Attributes (a PUT with only a Uri-Query: ``?pmin=10&pmax=60&st=5``) or —
LwM2M 1.2 — in the Uri-Query of the Observe request itself:

=========  =====  ============================================================================
``pmin``   1.0    at most one notification every pmin seconds (a change inside is *held*)
``pmax``   1.0    at least one notification every pmax seconds, changed or not (0: no max)
``gt``     1.0    notify when the value crosses this threshold
``lt``     1.0    notify when the value crosses this threshold
``st``     1.0    notify when the value moved at least st away from the last value *sent*
``epmin``  1.1    do not evaluate (sample) the value more often than every epmin seconds
``epmax``  1.1    evaluate (sample) the value at least every epmax seconds
``edge``   1.2    booleans: 1 notifies on false → true, 0 on true → false
``con``    1.2    1: send notifications confirmable (CON), 0: non-confirmable (NON)
``hqmax``  1.2    how many notifications to keep while offline
=========  =====  ============================================================================

A key without a value (``?pmin`` or ``?pmin=``) removes that attribute. Attributes are stored
per LwM2M server and per path, and are **inherited** downwards: Object → Object Instance →
Resource → Resource Instance, a lower level overriding what it sets itself. The defaults for
pmin and pmax come from the server's /1/x/2 Default Minimum Period and /1/x/3 Default Maximum
Period. Bad combinations (``lt`` not below ``gt``, ``epmin`` not below ``epmax``, ``gt`` on an
object instance or on a string) are refused with 4.00 Bad Request.

The rules, step by step
=======================

A notification is due when, and only when, **pmin** seconds have passed since the last one
(the first response counts) **and** either a *change condition* was met or **pmax** seconds
have passed. The change conditions are OR-ed — any one is enough:

* with no ``gt``/``lt``/``st``/``edge``: any change of the value (or of the set of instances);
* ``st``: ``|value - last sent| ≥ st``;
* ``gt`` / ``lt``: the value crossed the threshold since the last value sent. We follow Anjay
  and Anjay Lite and treat both as **two-way** thresholds: moving from ≤ th to > th, or from
  ≥ th to < th, fires either of them. (Leshan fires ``gt`` only upwards and ``lt`` only
  downwards, after draft-ietf-core-dynlink. Two-way keeps the server informed when the value
  comes back, which is what a teaching dashboard wants.)
* ``edge``: a boolean flipped the chosen way.

Value conditions need *one* value of the right kind: on an observation that yields several
values (an object, an instance, a multi-instance resource, a composite observation) or a
non-numeric value (a string; a boolean for gt/lt/st) they are ignored, as Anjay Lite does, and
any change triggers. Comparisons are always against the value last **sent**, not the last
value sampled — otherwise a slow drift of 1 per minute would never reach ``st=5``.

The value is **captured when the condition is met**: a change inside pmin is held and the
held values are sent when pmin is over, even if the sensor has moved again meanwhile (Anjay
Lite reads at sending time, so the server may receive a value that by itself would not have
triggered). If the value moved on, it is evaluated again against what was just sent.

``epmax`` makes the client sample a value it is not told about (a polled sensor) at least
that often; ``epmin`` is a debounce: a burst of changes is evaluated at most once per epmin.
Neither is ever a reason to *send*; pmax still reads and sends when it is due, epmin or not.

A small timeline
================

The server observes /3/0/9 (Battery Level) with ``pmin=10, pmax=60, st=5``::

    >>> from lwm2m_edu.observe import Attributes, Observations
    >>> from lwm2m_edu.paths import Path
    >>> battery = Path("/3/0/9")
    >>> level = {battery: 80}
    >>> read = lambda paths: dict(level)
    >>> obs = Observations()
    >>> obs.add("token-1", [battery], Attributes(pmin=10, pmax=60, st=5), dict(level), now=0)
    >>> level[battery] = 78; obs.changed([battery], now=3); obs.due(3, read)   # |78-80| < 5
    []
    >>> level[battery] = 75; obs.changed([battery], now=4); obs.due(4, read)   # held: pmin
    []
    >>> obs.next_deadline(4)                                    # pmin after the response at 0
    10
    >>> level[battery] = 77; obs.changed([battery], now=6); obs.due(6, read)   # 77: not again
    []
    >>> obs.due(10, read)                       # the value captured at t=4, not the one at 10
    [Notification('token-1', seq=1, {/3/0/9: 75}, 'st=5 reached: 80 → 75')]
    >>> obs.due(10, read)                       # 77 re-evaluated against the 75 just sent
    []
    >>> obs.next_deadline(10)                                   # nothing changes: pmax
    70
    >>> obs.due(70, read)
    [Notification('token-1', seq=2, {/3/0/9: 77}, 'pmax=60 s elapsed')]

How to drive it
===============

Everything here is sans-I/O: no network, no clock; time is a parameter ``now`` in seconds.

* ``parse_attributes(query)`` turns Uri-Query items into ``{name: value or None}``;
  ``AttributeStore`` keeps one server's Write-Attributes per path (``update``, ``at`` for
  Discover, ``effective`` with inheritance, ``for_observation`` with the 1.2 request override).
* ``Observations`` holds the active observations of one client. After answering an Observe,
  call ``add``; whenever the data model changes, ``changed``; then ``due(now, read)`` and send
  what it returns; arm a timer for ``next_deadline(now)`` and call ``due`` again then.
  ``read(paths)`` must return every value under those paths, as a Read would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Final

from .model import DEFAULT_MODEL, Model, ResourceType, Value
from .paths import Level, Path

__all__ = [
    "ATTRIBUTE_NAMES",
    "OBSERVE_SEQUENCE_MODULUS",
    "PERIODS",
    "VALUE_CONDITIONS",
    "AttributeStore",
    "Attributes",
    "InvalidAttributes",
    "Notification",
    "Observation",
    "Observations",
    "parse_attributes",
]

#: The Observe option is 24 bits wide (RFC 7641 §3.4): sequence numbers wrap to 0 after this.
OBSERVE_SEQUENCE_MODULUS: Final = 1 << 24

#: Attributes whose value is a whole number of seconds.
PERIODS: Final = ("pmin", "pmax", "epmin", "epmax")
#: Attributes that compare values: allowed only on a resource or resource instance.
VALUE_CONDITIONS: Final = ("gt", "lt", "st", "edge")
#: Every notification attribute a server may write, in the order Discover shows them.
ATTRIBUTE_NAMES: Final = (
    "pmin",
    "pmax",
    "gt",
    "lt",
    "st",
    "epmin",
    "epmax",
    "edge",
    "con",
    "hqmax",
)

_FLOATS = frozenset({"gt", "lt", "st"})
_FLAGS = frozenset({"edge", "con"})
_NUMERIC_TYPES = frozenset(
    {ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.FLOAT, ResourceType.TIME}
)
_PROPERTIES = {
    "dim": "the number of instances of a multiple resource",
    "ver": "the version of an object",
}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")

#: What an attribute may hold once parsed: seconds and flags are ints, thresholds floats.
AttributeValue = int | float


class InvalidAttributes(ValueError):
    """Notification attributes the client refuses; it answers 4.00 Bad Request.

    The message says which attribute and why, e.g. ``"lt (50) must be below gt (10)"``.
    """


# -- parsing --------------------------------------------------------------------------------------


def parse_attributes(query: Iterable[str]) -> dict[str, AttributeValue | None]:
    """Parse CoAP Uri-Query items into notification attributes.

    >>> parse_attributes(["pmin=10", "gt=20.5", "pmax"])
    {'pmin': 10, 'gt': 20.5, 'pmax': None}

    A name without a value (``"pmax"`` or ``"pmax="``) means *remove it*: its value is None.
    Periods, ``edge``, ``con`` and ``hqmax`` are ints; ``gt``, ``lt`` and ``st`` floats. An unknown
    name, a malformed or negative number, or a name given twice raises ``InvalidAttributes``.
    """
    parsed: dict[str, AttributeValue | None] = {}
    for item in query:
        name, _, text = item.partition("=")
        if name in _PROPERTIES:
            raise InvalidAttributes(
                f"{name} ({_PROPERTIES[name]}) is a property the client reports in Discover; "
                "a server can't write it"
            )
        if name not in ATTRIBUTE_NAMES:
            raise InvalidAttributes(
                f"{name!r} is not a notification attribute; "
                f"the known ones are {', '.join(ATTRIBUTE_NAMES)}"
            )
        if name in parsed:
            raise InvalidAttributes(f"{name} is given twice; each attribute may appear once")
        parsed[name] = None if text == "" else _parse_value(name, text)
    return parsed


def _parse_value(name: str, text: str) -> AttributeValue:
    if name in _FLOATS:
        if not _FLOAT.fullmatch(text):
            raise InvalidAttributes(f"{name}={text!r}: {name} is a decimal number, e.g. 20.5")
        number: AttributeValue = float(text)
    else:
        if not _INTEGER.fullmatch(text):
            unit = " of seconds" if name in PERIODS else ""
            raise InvalidAttributes(f"{name}={text!r}: {name} is a whole number{unit}, e.g. 10")
        number = int(text)
    return _checked_value(name, number)


def _checked_value(name: str, value: object) -> AttributeValue:
    """One attribute's value, checked on its own (the combinations are ``_check_set``'s)."""
    if name not in ATTRIBUTE_NAMES:
        raise InvalidAttributes(f"{name!r} is not a notification attribute")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidAttributes(f"{name} must be a number, not {value!r}")
    if name in _FLOATS:
        if not math.isfinite(value):
            raise InvalidAttributes(f"{name} must be a finite number, not {value!r}")
        value = float(value)
    elif not isinstance(value, int):
        raise InvalidAttributes(f"{name} must be a whole number, not {value!r}")
    if name in _FLAGS and value not in (0, 1):
        raise InvalidAttributes(f"{name} is 0 or 1, not {value}")
    if value < 0 and name not in ("gt", "lt"):
        raise InvalidAttributes(f"{name} ({_number(value)}) must not be negative")
    return value


# -- the attribute set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attributes:
    """One set of notification attributes; None means *not set*.

    ``Attributes(pmin=10, pmax=60)``. Used for a stored set, for the effective set an
    observation runs with, and for the /1 defaults (``Attributes(pmin=dmin, pmax=dmax)``).
    Each value is checked on its own when built; combinations are checked where they are
    written (``AttributeStore.update``), since inheritance may legally combine anything.
    """

    pmin: int | None = None
    pmax: int | None = None
    gt: float | None = None
    lt: float | None = None
    st: float | None = None
    epmin: int | None = None
    epmax: int | None = None
    edge: int | None = None
    con: int | None = None
    hqmax: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            object.__setattr__(self, name, _checked_value(name, value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, AttributeValue | None]) -> Attributes:
        """The set ``values`` describes (as ``parse_attributes`` returns); None is unset."""
        return cls(**{name: value for name, value in values.items() if value is not None})

    def as_dict(self) -> dict[str, AttributeValue]:
        """The attributes that are set, in Discover order: ``{'pmin': 10, 'pmax': 60}``."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    def overridden_by(self, other: Attributes) -> Attributes:
        """This set with every attribute ``other`` sets taken from it (a lower level wins)."""
        return replace(self, **other.as_dict())

    @property
    def has_value_conditions(self) -> bool:
        """Whether gt, lt, st or edge is set: then not every change is worth a notification."""
        return any(getattr(self, name) is not None for name in VALUE_CONDITIONS)

    def without_value_conditions(self) -> Attributes:
        """This set with gt, lt, st and edge dropped (for several values, or composite)."""
        return replace(self, **dict.fromkeys(VALUE_CONDITIONS))

    @property
    def min_period(self) -> int:
        """Seconds to wait after a notification before the next one: pmin, else 0."""
        return self.pmin or 0

    @property
    def max_period(self) -> int | None:
        """Seconds after which a notification is due anyway; None when pmax is unset or 0, or
        below pmin (then pmax is ignored, as Anjay Lite does)."""
        if not self.pmax or self.pmax < self.min_period:
            return None
        return self.pmax

    @property
    def min_evaluation_period(self) -> int:
        """Seconds between two samples at least: epmin, else 0; ignored unless below epmax."""
        if not self.epmin or (self.epmax and self.epmin >= self.epmax):
            return 0
        return self.epmin

    @property
    def max_evaluation_period(self) -> int | None:
        """Seconds after which the value is sampled even unasked: epmax; None when unset or 0."""
        return self.epmax or None

    def query(self) -> list[str]:
        """The set as Uri-Query items, ``['pmin=10', 'gt=20.5']``, as ``parse_attributes`` reads."""
        return [f"{name}={_number(value)}" for name, value in self.as_dict().items()]

    def __str__(self) -> str:
        """Link-format attribute text as Discover shows it: ``pmin=10;pmax=60``."""
        return ";".join(self.query())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={_number(value)}" for name, value in self.as_dict().items())
        return f"Attributes({inner})"


def _number(value: AttributeValue) -> str:
    """``10`` for 10 and 10.0, ``20.5`` for 20.5: the shortest text that reads back the same."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _check_set(
    values: Mapping[str, AttributeValue], path: Path, model: Model, *, composite: bool = False
) -> None:
    """The rules a set must satisfy where it is written (§4 rule 2); raise if one is broken."""
    conditions = [name for name in VALUE_CONDITIONS if name in values]
    if conditions:
        names = ", ".join(conditions)
        if composite:
            raise InvalidAttributes(
                f"{names} compare a single value; a composite observation has several"
            )
        if path.level < Level.RESOURCE:
            where = "the root" if path.is_root else f"{path}, a whole {path.level.label}"
            raise InvalidAttributes(
                f"{names} compare a single value, but the path is {where}; "
                "set them on a resource (/O/I/R) or a resource instance (/O/I/R/RI)"
            )
        resource = model.resource(path)
        if resource is not None:
            numeric = [name for name in conditions if name != "edge"]
            if numeric and resource.type not in _NUMERIC_TYPES:
                raise InvalidAttributes(
                    f"{', '.join(numeric)} need a numeric resource; {path} ({resource.name}) "
                    f"is {resource.type.value}"
                )
            if "edge" in values and resource.type is not ResourceType.BOOLEAN:
                raise InvalidAttributes(
                    f"edge needs a Boolean resource; {path} ({resource.name}) "
                    f"is {resource.type.value}"
                )
    epmin, epmax = values.get("epmin"), values.get("epmax")
    if epmin is not None and epmax is not None and epmin >= epmax:
        raise InvalidAttributes(f"epmin ({epmin}) must be below epmax ({epmax})")
    gt, lt, st = values.get("gt"), values.get("lt"), values.get("st")
    if gt is not None and lt is not None:
        if lt >= gt:
            raise InvalidAttributes(f"lt ({_number(lt)}) must be below gt ({_number(gt)})")
        if st is not None and lt + 2 * st >= gt:
            raise InvalidAttributes(
                f"lt + 2·st ({_number(lt)} + 2·{_number(st)}) must be below gt ({_number(gt)}), "
                "so that a step can fit between the thresholds"
            )


class AttributeStore:
    """The notification attributes one LwM2M server wrote, per path (Write-Attributes).

    Attributes are stored per server: keep one store per Short Server ID.

    >>> store = AttributeStore()
    >>> store.update(Path("/3"), {"pmin": 10, "pmax": 60})
    >>> store.update(Path("/3/0/9"), parse_attributes(["pmax=30", "lt=20"]))
    >>> store.effective(Path("/3/0/9"))
    Attributes(pmin=10, pmax=30, lt=20)
    """

    def __init__(self) -> None:
        self._sets: dict[Path, dict[str, AttributeValue]] = {}

    def update(
        self,
        path: Path,
        changes: Mapping[str, AttributeValue | None],
        model: Model = DEFAULT_MODEL,
    ) -> None:
        """Apply a Write-Attributes to ``path``: set each value, remove each None.

        The resulting set at ``path`` is checked (§4 rule 2): epmin < epmax, lt < gt,
        lt + 2·st < gt, gt/lt/st/edge only on a resource or resource instance, gt/lt/st only on
        numeric resources and edge only on Boolean ones (where ``model`` knows the type). When a
        rule is broken this raises ``InvalidAttributes`` and the store is left as it was.
        """
        if path.is_root:
            raise InvalidAttributes(
                "attributes belong to an object, instance, resource or resource instance, not '/'"
            )
        updated = dict(self._sets.get(path, {}))
        for name, value in changes.items():
            if value is None:
                if name not in ATTRIBUTE_NAMES:
                    raise InvalidAttributes(f"{name!r} is not a notification attribute")
                updated.pop(name, None)
            else:
                updated[name] = _checked_value(name, value)
        _check_set(updated, path, model)
        if updated:
            self._sets[path] = {name: updated[name] for name in ATTRIBUTE_NAMES if name in updated}
        else:
            self._sets.pop(path, None)

    def at(self, path: Path) -> dict[str, AttributeValue]:
        """The attributes set exactly at ``path`` (what Discover shows on its link)."""
        return dict(self._sets.get(path, {}))

    def effective(self, path: Path, defaults: Attributes | None = None) -> Attributes:
        """The attributes in force at ``path``: ``defaults`` (pmin/pmax from /1/x/2 and /1/x/3),
        then the object's set, the instance's, the resource's, the resource instance's, each
        lower level overriding what it sets."""
        result = defaults or Attributes()
        for depth in range(1, len(path) + 1):
            stored = self._sets.get(Path.from_ids(path.ids[:depth]))
            if stored:
                result = result.overridden_by(Attributes(**stored))
        return result

    def for_observation(
        self,
        paths: Sequence[Path],
        defaults: Attributes | None = None,
        request: Mapping[str, AttributeValue | None] | None = None,
        model: Model = DEFAULT_MODEL,
    ) -> Attributes:
        """The attributes a new observation of ``paths`` runs with.

        ``request`` is what the Observe request's own Uri-Query carried (LwM2M 1.2). When it sets
        anything, it **replaces** the stored sets for this observation — only ``defaults``
        still fill in pmin/pmax — as Anjay Lite does; it is checked like a Write-Attributes at
        that path, and value conditions are refused for a composite observation.

        Without it, a single path gets ``effective(path, defaults)``. A composite observation
        gets one set combined from its paths' effective sets (our simplification; Anjay Lite
        tracks each path separately): the smallest pmin, pmax, epmin and epmax, con=1 if any
        path asks for CON, the largest hqmax, and no value conditions.
        """
        if not paths:
            raise InvalidAttributes("an observation needs at least one path")
        composite = len(paths) > 1
        asked = {name: value for name, value in (request or {}).items() if value is not None}
        if asked:
            checked = {name: _checked_value(name, value) for name, value in asked.items()}
            for path in paths:
                _check_set(checked, path, model, composite=composite)
            return (defaults or Attributes()).overridden_by(Attributes(**checked))
        sets = [self.effective(path, defaults) for path in paths]
        if not composite:
            return sets[0]
        return _combined(sets)

    def forget(self, path: Path) -> None:
        """Drop the attributes at ``path`` and below (its instance was deleted)."""
        for stored in [p for p in self._sets if p.startswith(path)]:
            del self._sets[stored]

    def __iter__(self) -> Iterator[Path]:
        """The paths that carry attributes, in path order."""
        return iter(sorted(self._sets))

    def __len__(self) -> int:
        return len(self._sets)

    def __repr__(self) -> str:
        inner = ", ".join(f"{path} {Attributes(**self._sets[path])}" for path in self)
        return f"<AttributeStore {inner or 'empty'}>"


def _combined(sets: Sequence[Attributes]) -> Attributes:
    def present(name: str) -> list[AttributeValue]:
        return [getattr(s, name) for s in sets if getattr(s, name) is not None]

    max_periods = [s.max_period for s in sets if s.max_period is not None]
    return Attributes(
        pmin=min(present("pmin"), default=None),
        pmax=min(max_periods, default=None),
        epmin=min(present("epmin"), default=None),
        epmax=min(present("epmax"), default=None),
        con=max(present("con"), default=None),
        hqmax=max(present("hqmax"), default=None),
    )


# -- observations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One notification to send now: the values, on the observation ``key`` (the client's
    ``(remote, token)``), with ``sequence`` as its Observe option value (24 bits: after
    2**24 - 1 comes 0; RFC 7641 §3.4 has the server compare modulo 2**24).

    ``reason`` says in words what triggered it; ``con`` is the effective ``con`` attribute
    (None: not set; /1/x/26 Default Notification Mode is not modelled, so the client sends it
    as the Observe request came: CON).
    """

    key: Hashable
    values: Mapping[Path, Value]
    sequence: int
    reason: str = ""
    con: int | None = None

    def __repr__(self) -> str:
        values = ", ".join(f"{path}: {value!r}" for path, value in sorted(self.values.items()))
        return f"Notification({self.key!r}, seq={self.sequence}, {{{values}}}, {self.reason!r})"


@dataclass(eq=False)
class Observation:
    """One active observation and the state its notifications depend on.

    ``last_sent`` is what the server saw last (the comparisons are against it),
    ``last_notified`` when (the first response counts), ``last_evaluated`` when the values were
    last read. ``dirty`` says a change was reported and not evaluated yet; ``captured`` holds
    values that met a condition while pmin held them back. Read it; don't change it.
    """

    key: Hashable
    paths: tuple[Path, ...]
    attributes: Attributes
    last_sent: dict[Path, Value]
    last_notified: float
    last_evaluated: float
    sequence: int
    dirty: bool = False
    changed_at: float | None = None
    captured: dict[Path, Value] | None = None
    captured_reason: str = ""
    latest: dict[Path, Value] = field(default_factory=dict)

    def concerns(self, changed: Path) -> bool:
        """Whether a change at ``changed`` may change what this observation reports: the path
        is at or below an observed one (/5/0/3 concerns /5, /5/0 and /5/0/3), or above one (a
        write of /3/0, or an instance set changing at /5, may touch /5/0/3)."""
        return any(changed.startswith(p) or p.startswith(changed) for p in self.paths)

    # -- timing ----------------------------------------------------------------------------------

    def _evaluation_due_at(self) -> float | None:
        times = []
        if self.dirty:
            times.append(self.last_evaluated + self.attributes.min_evaluation_period)
        epmax = self.attributes.max_evaluation_period
        if epmax is not None:
            times.append(self.last_evaluated + epmax)
        return min(times, default=None)

    def _send_due_at(self) -> float | None:
        times = []
        if self.captured is not None:
            times.append(self.last_notified + self.attributes.min_period)
        pmax = self.attributes.max_period
        if pmax is not None:
            times.append(self.last_notified + pmax)
        return min(times, default=None)

    def deadline(self) -> float | None:
        """When something is next due for this observation (maybe in the past), or None."""
        times = [t for t in (self._evaluation_due_at(), self._send_due_at()) if t is not None]
        return min(times, default=None)

    # -- evaluation ------------------------------------------------------------------------------

    def _trigger(self, values: Mapping[Path, Value]) -> str | None:
        """Why ``values`` deserve a notification compared with ``last_sent``, or None."""
        if values == self.last_sent:
            return None
        single = self._single_value(values)
        if single is not None:
            reasons = _value_conditions(self.attributes, *single)
            if reasons is not None:
                return reasons[0] if reasons else None
        return "value changed"

    def _single_value(self, values: Mapping[Path, Value]) -> tuple[Value, Value] | None:
        """(last sent, current) when the observation is one path yielding one value there."""
        if len(self.paths) != 1:
            return None
        (path,) = self.paths
        if set(values) != {path} or set(self.last_sent) != {path}:
            return None
        return self.last_sent[path], values[path]

    def _emit(self, values: dict[Path, Value], reason: str, now: float) -> Notification:
        self.sequence = (self.sequence + 1) % OBSERVE_SEQUENCE_MODULUS
        self.last_sent = values
        self.last_notified = now
        self.captured = None
        self.captured_reason = ""
        # The last values read moved on from those just sent (they were held): look again.
        self.dirty = self.dirty or self.latest != values
        return Notification(self.key, dict(values), self.sequence, reason, self.attributes.con)

    def _sample(
        self, now: float, read: Callable[[list[Path]], Mapping[Path, Value]]
    ) -> dict[Path, Value]:
        self.latest = dict(read(list(self.paths)))
        self.last_evaluated = now
        self.dirty = False
        self.changed_at = None
        return self.latest

    def _step(
        self, now: float, read: Callable[[list[Path]], Mapping[Path, Value]]
    ) -> Notification | None:
        """Evaluate if due, then send if due: the held values at pmin, fresh ones at pmax."""
        evaluation_at = self._evaluation_due_at()
        sampled = None
        if evaluation_at is not None and now >= evaluation_at:
            sampled = self._sample(now, read)
            reason = self._trigger(sampled)
            if reason is not None:
                self.captured, self.captured_reason = sampled, reason
        if self.captured is not None and now >= self.last_notified + self.attributes.min_period:
            return self._emit(self.captured, self.captured_reason, now)
        pmax = self.attributes.max_period
        if pmax is not None and now >= self.last_notified + pmax:
            values = sampled if sampled is not None else self._sample(now, read)
            return self._emit(values, f"pmax={pmax} s elapsed", now)
        return None

    def __repr__(self) -> str:
        paths = " ".join(str(p) for p in self.paths)
        state = []
        if self.dirty:
            when = "" if self.changed_at is None else f" at {self.changed_at:g}"
            state.append(f"changed{when}")
        if self.captured is not None:
            state.append(f"held ({self.captured_reason})")
        return (
            f"<Observation {self.key!r} {paths} {self.attributes} seq={self.sequence} "
            f"last sent at {self.last_notified:g}{', ' if state else ''}{', '.join(state)}>"
        )


def _as_number(value: Value) -> float | None:
    """A value gt/lt/st can compare, as a float: ints, floats and Time; not booleans."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    return None


def _crossed(before: float, after: float, threshold: float) -> bool:
    """Two-way crossing, as Anjay: from ≤ th to > th, or from ≥ th to < th."""
    return (before <= threshold < after) or (after < threshold <= before)


def _value_conditions(attrs: Attributes, last: Value, value: Value) -> list[str] | None:
    """The conditions ``last → value`` meets (maybe none), or None when no condition applies to
    values of this kind — then any change counts."""
    applicable = False
    met: list[str] = []
    before, after = _as_number(last), _as_number(value)
    if before is not None and after is not None:
        for name in ("gt", "lt"):
            threshold = getattr(attrs, name)
            if threshold is not None:
                applicable = True
                if _crossed(before, after, threshold):
                    met.append(
                        f"{name}={_number(threshold)} crossed: {_number(before)} → {_number(after)}"
                    )
        if attrs.st is not None:
            applicable = True
            if abs(after - before) >= attrs.st:
                met.append(f"st={_number(attrs.st)} reached: {_number(before)} → {_number(after)}")
    if attrs.edge is not None and isinstance(last, bool) and isinstance(value, bool):
        applicable = True
        if value is bool(attrs.edge) and last is not value:
            met.append(f"edge={attrs.edge}: {str(last).lower()} → {str(value).lower()}")
    return met if applicable else None


class Observations:
    """The active observations of one LwM2M client, and when each must notify.

    Keys are opaque and hashable; the client uses ``(remote, token)``. The engine never reads
    the clock and never sends anything: it is told what happened (``add``, ``changed``,
    ``cancel``) and asked what to send (``due``) and when to ask again (``next_deadline``).
    """

    def __init__(self) -> None:
        self._observations: dict[Hashable, Observation] = {}

    def add(
        self,
        key: Hashable,
        paths: Iterable[Path],
        attributes: Attributes,
        values: Mapping[Path, Value],
        now: float,
        *,
        sequence: int = 0,
    ) -> None:
        """Start following ``paths`` (one for Observe, several for Observe-Composite) after the
        first response was sent with ``values`` at ``now`` with Observe option ``sequence``.

        That response is the baseline: pmin and pmax count from ``now``, and conditions compare
        with ``values``. An existing ``key`` (the server observing again on the same token) is
        replaced.
        """
        paths = tuple(paths)
        if not paths:
            raise ValueError("an observation needs at least one path")
        snapshot = dict(values)
        self._observations[key] = Observation(
            key,
            paths,
            attributes,
            last_sent=snapshot,
            last_notified=now,
            last_evaluated=now,
            sequence=sequence % OBSERVE_SEQUENCE_MODULUS,
            latest=dict(snapshot),
        )

    def cancel(self, key: Hashable) -> bool:
        """Stop the observation ``key`` (Observe: 1, or RST to a notification). True if it was
        active."""
        return self._observations.pop(key, None) is not None

    def clear(self) -> None:
        """Drop every observation (a new Register starts afresh)."""
        self._observations.clear()

    def changed(self, paths: Iterable[Path], now: float) -> None:
        """Report that the values at ``paths`` changed at ``now`` (a write, a sensor, an instance
        created or deleted at its object's path). Observations they concern are evaluated on
        the next ``due``: ``next_deadline`` says when."""
        changed = list(paths)
        for observation in self._observations.values():
            if any(observation.concerns(path) for path in changed):
                observation.dirty = True
                if observation.changed_at is None:
                    observation.changed_at = now

    def due(
        self, now: float, read: Callable[[list[Path]], Mapping[Path, Value]]
    ) -> list[Notification]:
        """The notifications to send at ``now``, in the order the observations were added.

        Reads (``read(paths)`` → every value under them) the observations that are due for an
        evaluation (a change reported, epmin permitting; or epmax elapsed) or for pmax, and
        records what it returns as sent. An exception from ``read`` propagates.
        """
        notifications = []
        for observation in self._observations.values():
            notification = observation._step(now, read)
            if notification is not None:
                notifications.append(notification)
        return notifications

    def next_deadline(self, now: float) -> float | None:
        """When ``due`` should next be called if nothing else changes: the earliest time (never
        before ``now``) an observation must be evaluated or may send; None when none has any."""
        deadlines = [d for o in self._observations.values() if (d := o.deadline()) is not None]
        if not deadlines:
            return None
        return max(now, min(deadlines))

    def __getitem__(self, key: Hashable) -> Observation:
        return self._observations[key]

    def __contains__(self, key: object) -> bool:
        return key in self._observations

    def __iter__(self) -> Iterator[Observation]:
        return iter(list(self._observations.values()))

    def __len__(self) -> int:
        return len(self._observations)

    def __repr__(self) -> str:
        if not self._observations:
            return "<Observations: none>"
        inner = "\n  ".join(repr(o) for o in self._observations.values())
        return f"<Observations: {len(self)}\n  {inner}>"
