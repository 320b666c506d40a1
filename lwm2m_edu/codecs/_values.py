"""What every codec needs to know about LwM2M value types.

One place decides which Python value stands for which LwM2M type, what range each type has, and
how a value that arrived loosely typed (a SenML number, a TLV byte string) becomes the typed value
the model asks for. The codecs call these helpers rather than repeating the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import NoReturn

from ..model import Model, ObjectLink, ResourceType, Value
from ..paths import Level, Path

#: Raises the calling codec's ``CodecError`` with the message; the codec fills in format and path.
Fail = Callable[[str], NoReturn]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def resource_type(model: Model, path: Path) -> ResourceType | None:
    """The type the model gives the resource at ``path``, or None when the model doesn't know it."""
    resource = model.resource(path)
    return None if resource is None else resource.type


def infer_type(value: object) -> ResourceType | None:
    """The LwM2M type a Python value stands for when the model can't say (None: no type fits)."""
    if isinstance(value, bool):
        return ResourceType.BOOLEAN
    if isinstance(value, int):
        return ResourceType.INTEGER if value <= INT64_MAX else ResourceType.UNSIGNED
    if isinstance(value, float):
        return ResourceType.FLOAT
    if isinstance(value, str):
        return ResourceType.STRING
    if isinstance(value, bytes | bytearray):
        return ResourceType.OPAQUE
    if isinstance(value, datetime):
        return ResourceType.TIME
    if isinstance(value, ObjectLink):
        return ResourceType.OBJLNK
    return None


def type_for_encoding(value: object, declared: ResourceType | None, fail: Fail) -> ResourceType:
    """Check that ``value`` fits the declared type (or infer one) before encoding it.

    ``fail(message)`` raises the codec's error, so the message names the format and path.
    """
    if declared is ResourceType.NONE:
        fail("an executable resource has no value to encode")
    kind = declared or infer_type(value)
    if kind is None:
        fail(f"{type(value).__name__} is not an LwM2M value type")
    if not _FITS[kind](value):
        fail(f"{value!r} is not a valid {kind.value} value")
    if kind is ResourceType.TIME and isinstance(value, datetime) and value.tzinfo is None:
        fail(f"{value!r} has no timezone; give an aware datetime, e.g. datetime.now(UTC)")
    return kind


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Whether a Python value can be encoded as each type.
_FITS: dict[ResourceType, Callable[[object], bool]] = {
    ResourceType.STRING: lambda v: isinstance(v, str),
    ResourceType.CORELNK: lambda v: isinstance(v, str),
    ResourceType.INTEGER: lambda v: _is_int(v) and INT64_MIN <= v <= INT64_MAX,  # type: ignore[operator]
    ResourceType.UNSIGNED: lambda v: _is_int(v) and 0 <= v <= UINT64_MAX,  # type: ignore[operator]
    ResourceType.FLOAT: lambda v: _is_int(v) or isinstance(v, float),
    ResourceType.BOOLEAN: lambda v: isinstance(v, bool),
    ResourceType.OPAQUE: lambda v: isinstance(v, bytes | bytearray),
    ResourceType.TIME: lambda v: isinstance(v, datetime) or _is_int(v),
    ResourceType.OBJLNK: lambda v: isinstance(v, ObjectLink),
}


def time_to_seconds(value: datetime | int) -> int:
    """Seconds since 1970-01-01T00:00:00Z, as Time travels on the wire (fractions are dropped)."""
    if isinstance(value, int):
        return value
    return math.floor((value - _EPOCH).total_seconds())


def seconds_to_time(seconds: int | float, fail: Fail) -> datetime:
    """The UTC datetime for a Time value received as seconds since 1970."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        fail(f"time {seconds} s since 1970 is outside the years 1..9999")


def coerce_number(value: int | float, kind: ResourceType | None, fail: Fail) -> Value:
    """A number from a typed format (SenML ``v``, CBOR) as the Python value ``kind`` asks for."""
    if kind is None:
        return value
    if kind is ResourceType.FLOAT:
        return float(value)
    if kind in (ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.TIME):
        if isinstance(value, float):
            if not value.is_integer():
                fail(f"{value!r} is not a whole number, as a {kind.value} must be")
            value = int(value)
        low, high = (0, UINT64_MAX) if kind is ResourceType.UNSIGNED else (INT64_MIN, INT64_MAX)
        if not low <= value <= high:
            fail(f"{value} is outside the range of a {kind.value}")
        if kind is ResourceType.TIME:
            return seconds_to_time(value, fail)
        return value
    fail(f"got a number where a {kind.value} was expected")


def single_value_path(base: Path, model: Model, format_name: str, fail: Fail) -> Path:
    """Check that ``base`` names one value, as single-value formats (text, opaque, CBOR) need."""
    if base.level < Level.RESOURCE:
        fail(
            f"{format_name} carries a single value, but {base} is a whole "
            f"{base.level.label}; use SenML CBOR (112), SenML JSON (110) or TLV (11542)"
        )
    resource = model.resource(base)
    if base.level is Level.RESOURCE and resource is not None and resource.multiple:
        fail(
            f"{format_name} carries a single value, but {base} ({resource.name}) is a multiple "
            "resource; address one instance, e.g. "
            f"{base.child(0)}, or use SenML CBOR (112) or TLV (11542)"
        )
    return base


def the_single_value(
    values: Mapping[Path, Value], base: Path, format_name: str, fail: Fail
) -> Value:
    """The one value a single-value format encodes: the one stored at ``base`` itself."""
    if set(values) != {base}:
        listed = ", ".join(str(p) for p in sorted(values)) or "nothing"
        fail(f"{format_name} encodes exactly one value at {base}; got {listed}")
    return values[base]


def value_path(path: Path, model: Model, fail: Fail) -> None:
    """Check that a value sits where values live: on a single resource (``/O/I/R``) or on an
    instance of a multiple one (``/O/I/R/RI``), as the model says (formats that name each
    value's path: SenML, LwM2M CBOR)."""
    if path.level < Level.RESOURCE:
        fail(
            f"a value at {path}, a whole {path.level.label}; values belong to resources "
            "(/O/I/R) or resource instances (/O/I/R/RI)"
        )
    resource = model.resource(path)
    if resource is None:
        return
    if resource.multiple and path.level is Level.RESOURCE:
        fail(
            f"{path} ({resource.name}) is a multiple resource: its values are resource "
            f"instances such as {path.child(0)}"
        )
    if not resource.multiple and path.level is Level.RESOURCE_INSTANCE:
        fail(f"{path.parent} ({resource.name}) is a single resource: it has no instance {path}")
