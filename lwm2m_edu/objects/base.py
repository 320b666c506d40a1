"""The interface every LwM2M object of the client implements, and a reusable implementation.

An LwM2M server never sees Python objects: it sends operations on paths. The data model
(``lwm2m_edu.dm``) turns each request into calls on the object that owns the path, through one
small interface, ``LwM2MObject``::

    request                              call on the object /O
    ──────────────────────────────────   ─────────────────────────────────────────
    Read /O/I/R                          read(I, R, now)        -> Outcome(2.05, value)
    Write /O/I/R                         write(I, R, value, now) -> Outcome(2.04)
    Execute /O/I/R                       execute(I, R, "0='a',1", now)
    Create /O                            create(I or None, {R: value}, now) -> Outcome(2.01, I)
    Delete /O/I                          delete(I, now)          -> Outcome(2.02)
    (Discover, Register ...)             instance_ids(), resource_ids(I)

A value is a scalar for a single resource, and a ``dict`` {resource instance id: value} for a
*multiple* resource (``/3/0/6`` Available Power Sources); writing a dict replaces all the
instances. Objects call each function in ``changed`` with the path of a resource whose value
changed, so the observe engine can send notifications.

``bootstrap=True`` on ``read``/``write``/``create``/``delete`` means the Bootstrap-Server (or the
client itself) is asking: the DM access rules of the object definition (R, W, E) do not apply.
That is how Object /0 Security, whose resources no LwM2M server may touch, gets written.

``SimpleObject`` implements the interface over plain dicts, with every check the object
definition allows: the value type, the range (``"0..4"``, ``"1..65534"``, ``"0..255 bytes"``),
the operations, and the mandatory resources on Create. Objects /0, /1 and /3 are short
subclasses of it. ``SingleInstance`` serves an object written resource by resource for its one
instance, such as ``FirmwareObject`` (Object /5), through the same interface.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NoReturn, Protocol, runtime_checkable

from ..codecs._values import type_for_encoding
from ..model import ObjectDef, ResourceDef, ResourceType
from ..paths import MAX_ID, Path
from .outcome import Code, Outcome

__all__ = [
    "ChangeHook",
    "LwM2MObject",
    "ResourceLevelObject",
    "SimpleObject",
    "SingleInstance",
    "check_value",
]

#: Called with the path of a resource whose value changed.
ChangeHook = Callable[[Path], None]


@runtime_checkable
class LwM2MObject(Protocol):
    """What the data model needs from an object (see the module docstring)."""

    definition: ObjectDef
    #: change hooks: called with the path of every resource whose value changes
    changed: list[ChangeHook]

    @property
    def version(self) -> str:
        """The object version this implementation follows (``</5>;ver=1.1``)."""
        ...

    def instance_ids(self) -> list[int]: ...

    def resource_ids(self, instance_id: int) -> list[int]:
        """The resources present in the instance (readable, writable or executable)."""
        ...

    def read(self, instance_id: int, resource_id: int, now: float, *, bootstrap: bool = False
             ) -> Outcome: ...  # fmt: skip

    def write(
        self,
        instance_id: int,
        resource_id: int,
        value: object,
        now: float,
        *,
        bootstrap: bool = False,
    ) -> Outcome: ...

    def execute(self, instance_id: int, resource_id: int, arguments: str, now: float
                ) -> Outcome: ...  # fmt: skip

    def create(
        self,
        instance_id: int | None,
        values: Mapping[int, object],
        now: float,
        *,
        bootstrap: bool = False,
    ) -> Outcome: ...

    def delete(self, instance_id: int, now: float, *, bootstrap: bool = False) -> Outcome: ...


# -- checking a value against its resource definition ------------------------------------------


class _Problem(Exception):
    pass


def _raise(message: str) -> NoReturn:
    raise _Problem(message)


_RANGE = re.compile(r"\s*(-?[0-9]+)\s*\.\.\s*(-?[0-9]+)\s*(bytes)?\s*")
_LENGTHS = re.compile(r"\s*[0-9]+(\s*,\s*[0-9]+)*\s*")
_NUMBERS = (ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.FLOAT)


def check_value(resource: ResourceDef, value: object, *, ranges: bool = True) -> str | None:
    """What is wrong with ``value`` for ``resource`` (type, range, single/multiple), or None.

    A multiple resource takes a dict {resource instance id: value}; a single one a scalar.
    ``ranges=False`` checks the type only (the object checks the rest itself).
    """
    if resource.type is ResourceType.NONE:
        return f"{resource.name} is executable: it has no value"
    if resource.multiple:
        if not isinstance(value, Mapping):
            return (
                f"{resource.name} is a multiple resource: its value is a dict "
                f"{{instance id: value}}, not {type(value).__name__}"
            )
        for riid, item in value.items():
            if isinstance(riid, bool) or not isinstance(riid, int) or not 0 <= riid <= MAX_ID:
                return f"{resource.name}: resource instance id {riid!r} is not in 0..{MAX_ID}"
            problem = _check_single(resource, item, ranges)
            if problem:
                return f"{resource.name} instance {riid}: {problem}"
        return None
    if isinstance(value, Mapping):
        return f"{resource.name} is a single resource: its value is not a dict"
    problem = _check_single(resource, value, ranges)
    return f"{resource.name}: {problem}" if problem else None


def _check_single(resource: ResourceDef, value: object, ranges: bool = True) -> str | None:
    try:
        type_for_encoding(value, resource.type, _raise)
    except _Problem as problem:
        return str(problem)
    text = resource.range
    if not text or not ranges:
        return None
    match = _RANGE.fullmatch(text)
    if match:
        low, high = int(match[1]), int(match[2])
        if resource.type in _NUMBERS and not match[3]:
            if not low <= value <= high:  # type: ignore[operator]
                return f"{value!r} is outside the range {low}..{high}"
        elif isinstance(value, str | bytes | bytearray):
            size = len(value.encode()) if isinstance(value, str) else len(value)
            if not low <= size <= high:
                return f"{size} bytes is outside the allowed length {low}..{high} bytes"
    elif resource.type is ResourceType.OPAQUE and _LENGTHS.fullmatch(text):
        allowed = {int(n) for n in text.split(",")}
        if len(value) not in allowed:  # type: ignore[arg-type]
            return f"{len(value)} bytes is not one of the allowed lengths {text}"  # type: ignore[arg-type]
    return None


# -- a reusable implementation ----------------------------------------------------------------


class SimpleObject:
    """An object whose instances are dicts {resource id: value}, checked against its definition.

    A subclass declares, as class attributes:

    * ``definition`` — the ``ObjectDef`` (from ``lwm2m_edu.model``);
    * ``supported`` — the resource ids this implementation has (default: all of the definition);
      an optional resource outside it is "not implemented": reads give 4.04 and writes of a
      whole instance skip it;
    * ``defaults`` — values a newly created instance starts with;
    * ``deletable`` — whether instances may be deleted (Device /3/0 may not).

    and may override three hooks: ``value`` (derived reads, e.g. Current Time from ``now``),
    ``store`` (side effects or extra checks on write) and ``run`` (what an executable does).
    Executable resources in ``supported`` are present in every instance; other resources are
    present while they hold a value.
    """

    definition: ClassVar[ObjectDef]
    supported: ClassVar[frozenset[int] | None] = None
    defaults: ClassVar[Mapping[int, object]] = {}
    deletable: ClassVar[bool] = True

    def __init__(self, instances: Mapping[int, Mapping[int, object]] | None = None) -> None:
        self.instances: dict[int, dict[int, object]] = {}
        self.changed: list[ChangeHook] = []
        for instance_id, values in (instances or {}).items():
            outcome = self.create(instance_id, values, 0.0, bootstrap=True)
            if not outcome.ok:
                raise ValueError(f"/{self.definition.id}/{instance_id}: {outcome.diagnostic}")

    # -- what it looks like --------------------------------------------------------------------

    @property
    def version(self) -> str:
        return self.definition.version

    @property
    def supported_ids(self) -> frozenset[int]:
        return frozenset(self.definition.resources) if self.supported is None else self.supported

    def instance_ids(self) -> list[int]:
        return sorted(self.instances)

    def resource_ids(self, instance_id: int) -> list[int]:
        stored = self.instances.get(instance_id)
        if stored is None:
            return []
        present = set(stored) | set(self.derived_ids(instance_id))
        present |= {
            rid
            for rid in self.supported_ids
            if self.definition.resources[rid].operations.executable
        }
        return sorted(present & self.supported_ids)

    def derived_ids(self, instance_id: int) -> Iterable[int]:
        """Resources whose value ``value`` computes rather than stores (override with ``value``)."""
        return ()

    def get(self, instance_id: int, resource_id: int, default: object = None) -> object:
        """The stored value, without any check (for the device's own code)."""
        return self.instances.get(instance_id, {}).get(resource_id, default)

    def set(self, instance_id: int, resource_id: int, value: object) -> None:
        """Set a value from the device side (battery level, error codes): checked, notified.

        Raises ``ValueError`` naming the problem; a server's write goes through ``write``.
        """
        problem = self._problem(instance_id, resource_id, value)
        if problem:
            raise ValueError(problem)
        self._put(instance_id, resource_id, value)

    def notify(self, instance_id: int, resource_id: int) -> None:
        """Tell the change hooks that a (derived) resource changed its value."""
        path = Path(self.definition.id, instance_id, resource_id)
        for hook in list(self.changed):
            hook(path)

    # -- the operations ------------------------------------------------------------------------

    def read(
        self, instance_id: int, resource_id: int, now: float, *, bootstrap: bool = False
    ) -> Outcome:
        missing = self._missing(instance_id, resource_id)
        if missing:
            return missing
        resource = self.definition.resources[resource_id]
        if resource.operations.executable or not (bootstrap or resource.operations.readable):
            return _not_allowed(f"{self._name(instance_id, resource_id)} can't be read")
        value = self.value(instance_id, resource_id, now)
        if isinstance(value, Mapping):
            value = dict(value)
        return Outcome(Code.CONTENT, value)

    def value(self, instance_id: int, resource_id: int, now: float) -> object:
        """The value a read returns: the stored one, unless a subclass derives it."""
        return self.instances[instance_id][resource_id]

    def write(
        self,
        instance_id: int,
        resource_id: int,
        value: object,
        now: float,
        *,
        bootstrap: bool = False,
    ) -> Outcome:
        if instance_id not in self.instances:
            return _not_found(f"/{self.definition.id}/{instance_id} does not exist")
        if resource_id not in self.supported_ids:
            return _not_found(f"/{self.definition.id} has no resource {resource_id} here")
        resource = self.definition.resources[resource_id]
        if resource.operations.executable or not (bootstrap or resource.operations.writable):
            return _not_allowed(f"{self._name(instance_id, resource_id)} is not writable")
        problem = check_value(resource, value)
        if problem:
            return _bad(problem)
        return self.store(instance_id, resource_id, value, now)

    def store(self, instance_id: int, resource_id: int, value: object, now: float) -> Outcome:
        """Keep a checked value (override for side effects or extra checks; call super())."""
        self._put(instance_id, resource_id, value)
        return Outcome(Code.CHANGED)

    def execute(self, instance_id: int, resource_id: int, arguments: str, now: float) -> Outcome:
        missing = self._missing(instance_id, resource_id)
        if missing:
            return missing
        if not self.definition.resources[resource_id].operations.executable:
            return _not_allowed(f"{self._name(instance_id, resource_id)} is not executable")
        return self.run(instance_id, resource_id, arguments, now)

    def run(self, instance_id: int, resource_id: int, arguments: str, now: float) -> Outcome:
        """What an executable resource does (override); by default nothing, and 2.04."""
        return Outcome(Code.CHANGED)

    def create(
        self,
        instance_id: int | None,
        values: Mapping[int, object],
        now: float,
        *,
        bootstrap: bool = False,
    ) -> Outcome:
        """Create an instance (``instance_id=None``: the lowest free id) -> 2.01 with its id.

        Unsupported optional resources in ``values`` are ignored. Outside bootstrap, every
        mandatory resource must end up with a value (from ``values`` or ``defaults``); a
        Bootstrap-Server may fill an instance over several writes, so Bootstrap-Finish checks.
        """
        oid = self.definition.id
        if not self.definition.multiple and self.instances:
            return _not_allowed(f"/{oid} {self.definition.name} has a single instance")
        if instance_id is None:
            instance_id = next(i for i in range(MAX_ID + 1) if i not in self.instances)
        elif instance_id in self.instances:
            return _bad(f"/{oid}/{instance_id} already exists")
        if not 0 <= instance_id <= MAX_ID:
            return _bad(f"instance id {instance_id} is not in 0..{MAX_ID}")
        kept: dict[int, object] = dict(self.defaults)
        for resource_id, value in values.items():
            if resource_id not in self.supported_ids:
                resource = self.definition.resources.get(resource_id)
                if resource is not None and resource.mandatory:
                    return _bad(f"/{oid}/{instance_id}/{resource_id} is not supported")
                continue
            resource = self.definition.resources[resource_id]
            if resource.operations.executable:
                return _bad(f"{resource.name} (/{oid}/x/{resource_id}) is executable: no value")
            problem = check_value(resource, value)
            if problem:
                return _bad(problem)
            kept[resource_id] = value
        if not bootstrap:
            missing = [
                f"{r.id} {r.name}"
                for r in self.definition.mandatory_resources
                if not r.operations.executable and r.id not in kept
            ]
            if missing:
                return _bad(f"Create of /{oid} needs mandatory resource(s): {', '.join(missing)}")
        problem = self.instance_problem(instance_id, kept)
        if problem:
            return _bad(problem)
        self.instances[instance_id] = {
            rid: dict(v) if isinstance(v, Mapping) else v for rid, v in kept.items()
        }
        return Outcome(Code.CREATED, instance_id)

    def instance_problem(self, instance_id: int, values: Mapping[int, object]) -> str | None:
        """A check across the resources of a new instance (override); None = fine."""
        return None

    def delete(self, instance_id: int, now: float, *, bootstrap: bool = False) -> Outcome:
        if instance_id not in self.instances:
            return _not_found(f"/{self.definition.id}/{instance_id} does not exist")
        if not self.deletable:
            return _not_allowed(f"/{self.definition.id}/{instance_id} can't be deleted")
        del self.instances[instance_id]
        return Outcome(Code.DELETED)

    # -- helpers -------------------------------------------------------------------------------

    def _missing(self, instance_id: int, resource_id: int) -> Outcome | None:
        if instance_id not in self.instances:
            return _not_found(f"/{self.definition.id}/{instance_id} does not exist")
        if resource_id not in self.resource_ids(instance_id):
            return _not_found(f"/{self.definition.id}/{instance_id}/{resource_id} is not present")
        return None

    def _problem(self, instance_id: int, resource_id: int, value: object) -> str | None:
        if instance_id not in self.instances:
            return f"/{self.definition.id}/{instance_id} does not exist"
        resource = self.definition.resources.get(resource_id)
        if resource is None or resource_id not in self.supported_ids:
            return f"/{self.definition.id} has no resource {resource_id} here"
        return check_value(resource, value)

    def _put(self, instance_id: int, resource_id: int, value: object) -> None:
        stored = self.instances[instance_id]
        if isinstance(value, Mapping):
            value = dict(value)
        if stored.get(resource_id, _ABSENT) != value:
            stored[resource_id] = value
            self.notify(instance_id, resource_id)

    def _name(self, instance_id: int, resource_id: int) -> str:
        resource = self.definition.resources[resource_id]
        return f"/{self.definition.id}/{instance_id}/{resource_id} {resource.name}"

    def __repr__(self) -> str:
        ids = ", ".join(str(i) for i in self.instance_ids())
        return f"<{type(self).__name__} /{self.definition.id} instances [{ids}]>"


_ABSENT = object()


def _bad(message: str) -> Outcome:
    return Outcome(Code.BAD_REQUEST, diagnostic=message)


def _not_found(message: str) -> Outcome:
    return Outcome(Code.NOT_FOUND, diagnostic=message)


def _not_allowed(message: str) -> Outcome:
    return Outcome(Code.METHOD_NOT_ALLOWED, diagnostic=message)


# -- an object served resource by resource ----------------------------------------------------


class ResourceLevelObject(Protocol):
    """An object with one instance, written resource by resource (``FirmwareObject``)."""

    definition: ObjectDef

    def resource_ids(self) -> list[int]: ...

    def read(self, resource_id: int) -> Outcome: ...

    def write(self, resource_id: int, value: object, now: float) -> Outcome: ...

    def execute(self, resource_id: int, now: float, arguments: str = "") -> Outcome: ...

    def read_all(self) -> dict[Path, object]: ...


class SingleInstance:
    """Serve a resource-level object as instance ``instance_id`` of an ``LwM2MObject``.

    ``SingleInstance(firmware)`` puts ``FirmwareObject`` into the data model as /5/0. Its
    instance can be neither created nor deleted (4.05). Change hooks fire for every resource
    whose value differs after an operation, and after every state-machine step when the inner
    object has ``observers`` (so a download finishing in the background notifies /5/0/3 too).
    """

    def __init__(self, inner: Any, *, instance_id: int = 0) -> None:
        self.inner = inner
        self.definition: ObjectDef = inner.definition
        self.instance_id = instance_id
        self.changed: list[ChangeHook] = []
        self._last = self._snapshot()
        observers = getattr(inner, "observers", None)
        if isinstance(observers, list):
            observers.append(lambda _step: self._diff())

    @property
    def version(self) -> str:
        return getattr(self.inner, "version", self.definition.version)

    def instance_ids(self) -> list[int]:
        return [self.instance_id]

    def resource_ids(self, instance_id: int) -> list[int]:
        return list(self.inner.resource_ids()) if instance_id == self.instance_id else []

    def read(
        self, instance_id: int, resource_id: int, now: float, *, bootstrap: bool = False
    ) -> Outcome:
        return self._missing(instance_id) or self.inner.read(resource_id)

    def write(
        self,
        instance_id: int,
        resource_id: int,
        value: object,
        now: float,
        *,
        bootstrap: bool = False,
    ) -> Outcome:
        missing = self._missing(instance_id)
        if missing:
            return missing
        outcome = self.inner.write(resource_id, value, now)
        self._diff()
        return outcome

    def execute(self, instance_id: int, resource_id: int, arguments: str, now: float) -> Outcome:
        missing = self._missing(instance_id)
        if missing:
            return missing
        outcome = self.inner.execute(resource_id, now, arguments)
        self._diff()
        return outcome

    def create(
        self,
        instance_id: int | None,
        values: Mapping[int, object],
        now: float,
        *,
        bootstrap: bool = False,
    ) -> Outcome:
        return _not_allowed(f"/{self.definition.id} has exactly one instance, /{self._base()}")

    def delete(self, instance_id: int, now: float, *, bootstrap: bool = False) -> Outcome:
        return self._missing(instance_id) or _not_allowed(
            f"/{self._base()} {self.definition.name} can't be deleted"
        )

    def _base(self) -> str:
        return f"{self.definition.id}/{self.instance_id}"

    def _missing(self, instance_id: int) -> Outcome | None:
        if instance_id != self.instance_id:
            return _not_found(f"/{self.definition.id}/{instance_id} does not exist")
        return None

    def _snapshot(self) -> dict[Path, object]:
        return dict(self.inner.read_all())

    def _diff(self) -> None:
        now_values = self._snapshot()
        before, self._last = self._last, now_values
        changed = {
            p if p.level <= 3 else p.parent
            for p in set(before) | set(now_values)
            if before.get(p, _ABSENT) != now_values.get(p, _ABSENT)
        }
        for path in sorted(changed):
            for hook in list(self.changed):
                hook(path)

    def __repr__(self) -> str:
        return f"<SingleInstance /{self._base()} of {self.inner!r}>"
