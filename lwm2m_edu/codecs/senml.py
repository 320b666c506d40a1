"""SenML JSON (Content-Format 110) and SenML CBOR (112): any set of values, each with its path.

SenML (Sensor Measurement Lists, RFC 8428) is the format LwM2M 1.1 recommends for everything
bigger than one value: a Read of an instance, a Write-Composite, an Observe notification, a Send
of timestamped measurements. A payload (a *pack*) is an array of *records*; each record names one
resource (or resource instance) and carries its value in a field that says the value's type::

    [{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
     {"n":"9","v":95},
     {"n":"6/0","v":1}]

The record's path is the base name ``bn`` glued to the name ``n``, as plain text. A ``bn`` stays
in force for the following records until another ``bn`` replaces it, so the pack above names
``/3/0/0``, ``/3/0/9`` and ``/3/0/6/0``. Base time ``bt`` and time ``t`` add up the same way.

==========  ===========  =========================================================  ===========
field       CBOR label   meaning                                                    LwM2M types
==========  ===========  =========================================================  ===========
``bn``      -2           base name, text put in front of every following ``n``
``bt``      -3           base time, added to every following ``t``
``n``       0            name
``v``       2            a number                                 Integer, Unsigned, Float, Time
``vs``      3            a text string                                         String, Corelnk
``vb``      4            a boolean                                                     Boolean
``vd``      8            bytes: base64url without padding in JSON                       Opaque
``vlo``     ``"vlo"``    an object link ``"OID:IID"`` (an LwM2M extension)              Objlnk
``t``       6            time in seconds since 1970; below 2**28 it is relative to "now"
``bver``    -1           SenML version (10 if absent)
==========  ===========  =========================================================  ===========

SenML JSON and SenML CBOR are the same records written two ways: JSON uses the field names, CBOR
the integer labels (except ``vlo``, which stays text), and JSON writes ``vd`` bytes as base64url
text where CBOR has a byte string. This module holds the record logic once; only the last step,
turning records into bytes and back, differs.

**How this encoder names records** (so that the examples of the specification come out byte for
byte; a decoder accepts any split of the path between ``bn`` and ``n``):

* base ``/`` (Read-Composite, Write-Composite, Send): no ``bn``; ``n`` is the full path, e.g.
  ``{"n":"/3/0/9","v":95}``;
* every value sits at the base itself (a Read of ``/3/0/9``): the first record has
  ``bn`` = that path and no record has an ``n``: ``[{"bn":"/3/0/9","v":95}]``;
* otherwise (a Read of ``/3/0``, ``/3`` or ``/3/0/6``): the first record has ``bn`` = the base
  with a trailing ``/`` and each ``n`` is the rest of the path: ``{"bn":"/3/0/","n":"6/0",...}``.

``encode`` writes one record per value in path order; ``encode_records`` keeps the order it is
given (a Read-Composite reply follows the order of the request; a Send lists its records in time
order). ``decode`` returns a dict, so when several records name the same path (measurements at
different times) the last one wins; ``decode_records`` keeps them all, with their times.

Times: the core never reads the clock, so a ``Record.time`` is the number on the wire (``bt`` +
``t``). A time below ``RELATIVE_TIME_LIMIT`` (2**28 s, about 8.5 years) means "that many seconds
from now" (usually negative: in the past); the caller, who knows "now", resolves it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import cbor2

from ..model import DEFAULT_MODEL, Model, ModelError, ObjectLink, ResourceType, Value
from ..paths import Level, Path, PathError
from . import CodecError, ContentFormat, UnsupportedContentFormat
from ._cbor_items import TAG_EPOCH_TIME, FailAt, describe, dumps, load_item
from ._values import (
    INT64_MIN,
    UINT64_MAX,
    Fail,
    _is_int,
    coerce_number,
    resource_type,
    time_to_seconds,
    type_for_encoding,
    value_path,
)

__all__ = [
    "CBOR",
    "JSON",
    "RELATIVE_TIME_LIMIT",
    "Record",
    "decode_paths",
    "decode_records",
    "encode_paths",
    "encode_records",
]

#: Times below this many seconds are relative to "now" (RFC 8428 §4.5.3); the caller resolves them.
RELATIVE_TIME_LIMIT = 2**28

#: SenML version this codec implements (RFC 8428). A pack announcing a newer one is refused.
SENML_VERSION = 10

#: The longest path text there is, "/65534/65534/65534/65534". A longer bn or n can't be part of
#: a valid path, so it is refused at once; that also keeps bn + n cheap for every record.
_MAX_NAME = len("/65534/65534/65534/65534")

#: A pack nests array > record map > tag 1 > number. cbor2 counts arrays, maps and tags.
#: Reading and writing the CBOR itself (raw tags, exact offsets, shortest floats) is _cbor_items'.
_MAX_CBOR_DEPTH = 4

#: The CBOR integer labels of RFC 8428 §6. ``vlo`` has none: it travels as the text key "vlo".
_CBOR_LABELS: dict[int, str] = {
    -1: "bver",
    -2: "bn",
    -3: "bt",
    -4: "bu",
    -5: "bv",
    -6: "bs",
    0: "n",
    1: "u",
    2: "v",
    3: "vs",
    4: "vb",
    5: "s",
    6: "t",
    7: "ut",
    8: "vd",
}
_CBOR_KEYS: dict[str, int | str] = {name: label for label, name in _CBOR_LABELS.items()}
_CBOR_KEYS["vlo"] = "vlo"
_FIELD_NAMES = frozenset(_CBOR_KEYS)

_VALUE_FIELDS = ("v", "vs", "vb", "vd", "vlo")

#: Which value field carries which LwM2M type.
_FIELD_FOR_TYPE = {
    ResourceType.INTEGER: "v",
    ResourceType.UNSIGNED: "v",
    ResourceType.FLOAT: "v",
    ResourceType.TIME: "v",
    ResourceType.STRING: "vs",
    ResourceType.CORELNK: "vs",
    ResourceType.BOOLEAN: "vb",
    ResourceType.OPAQUE: "vd",
    ResourceType.OBJLNK: "vlo",
}

#: Fields RFC 8428 defines that LwM2M never uses and that change what a value means (a base value
#: or sum to add). Refused rather than silently mis-read.
_UNSUPPORTED_FIELDS = {"bv": "base value", "bs": "base sum", "s": "sum"}

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Record:
    """One SenML record, resolved: the full path, the typed value and the time (``bt`` + ``t``).

    ``value`` is None only in a name-only record (a Read-Composite request). ``time`` is None when
    the record has no time; below ``RELATIVE_TIME_LIMIT`` it is relative to "now".
    """

    path: Path
    value: Value | None = None
    time: float | None = None


# -- the public functions -----------------------------------------------------------------------


def encode_records(
    records: Iterable[Record],
    fmt: ContentFormat,
    base: Path | str = "/",
    model: Model = DEFAULT_MODEL,
) -> bytes:
    """A SenML pack of ``records``, in the order given, named relative to ``base`` (see above)."""
    fmt = _senml_format(fmt)
    base = _base_path(base, fmt)
    records = list(records)
    names = _names([r.path for r in records], base)
    pack = []
    for index, (record, (bn, n)) in enumerate(zip(records, names, strict=True)):

        def fail(message: str, path: Path = record.path, index: int = index) -> NoReturn:
            raise CodecError(f"record {index}: {message}", format=fmt, path=path)

        if not record.path.startswith(base):
            fail(f"{record.path} is not at or below the base path {base}")
        value_path(record.path, model, fail)
        if record.value is None:
            fail("a record to encode needs a value (use encode_paths for names only)")
        fields: dict[str, object] = {}
        if bn is not None:
            fields["bn"] = bn
        if n is not None:
            fields["n"] = n
        field, wire = _wire_value(record.value, resource_type(model, record.path), fail)
        if fmt is ContentFormat.SENML_JSON:
            if field == "vd":
                wire = base64.urlsafe_b64encode(wire).rstrip(b"=").decode("ascii")  # type: ignore[arg-type]
            if isinstance(wire, float) and not math.isfinite(wire):
                fail(f"SenML JSON has no way to write {wire!r}; only finite floats")
        fields[field] = wire
        if record.time is not None:
            if not _is_number(record.time) or not math.isfinite(record.time):
                fail(f"time {record.time!r} is not a finite number of seconds")
            fields["t"] = record.time
        pack.append(fields)
    return _dump(pack, fmt)


def decode_records(
    payload: bytes,
    fmt: ContentFormat,
    base: Path | str = "/",
    model: Model = DEFAULT_MODEL,
) -> list[Record]:
    """Every record of the pack, in order, each with its full path, typed value and time.

    Paths must be resource or resource-instance paths at or below ``base``; values are converted
    to the type the model gives the resource (or keep their SenML type when the model doesn't
    know it). An empty payload and ``[]`` both mean no records.
    """
    fmt = _senml_format(fmt)
    base = _base_path(base, fmt)
    records = []
    for index, path, fields, time in _resolve(_load(payload, fmt), fmt):

        def fail(message: str, path: Path = path, index: int = index) -> NoReturn:
            raise CodecError(f"record {index}: {message}", format=fmt, path=path)

        if not path.startswith(base):
            fail(f"{path} is not at or below {base}, the path of the request")
        present = [f for f in _VALUE_FIELDS if f in fields]
        if not present:
            fail("the record has no value field (v, vs, vb, vd or vlo)")
        value_path(path, model, fail)
        field = present[0]
        value = _typed_value(field, fields[field], resource_type(model, path), fail)
        records.append(Record(path, value, time))
    return records


def encode_paths(paths: Iterable[Path | str], fmt: ContentFormat) -> bytes:
    """A pack of name-only records, as a Read-Composite or Observe-Composite request carries."""
    fmt = _senml_format(fmt)
    pack = []
    for path in paths:
        try:
            pack.append({"n": str(Path(path))})
        except PathError as exc:
            raise CodecError(f"not a valid path: {exc}", format=fmt) from None
    return _dump(pack, fmt)


def decode_paths(payload: bytes, fmt: ContentFormat) -> list[Path]:
    """The paths a Read-Composite or Observe-Composite request names, in order (any level)."""
    fmt = _senml_format(fmt)
    paths = []
    for index, path, fields, time in _resolve(_load(payload, fmt), fmt, any_level=True):
        present = [f for f in _VALUE_FIELDS if f in fields]
        if present or time is not None:
            what = f"a value ({present[0]})" if present else "a time"
            raise CodecError(
                f"record {index}: a request naming paths has records with names only, not {what}",
                format=fmt,
                path=path,
            )
        paths.append(path)
    return paths


class _SenMLCodec:
    """The codec object the generic ``encode``/``decode`` entry points call."""

    def __init__(self, fmt: ContentFormat) -> None:
        self.format = fmt

    def encode(self, values: dict[Path, Value], base: Path, model: Model) -> bytes:
        """One record per value, in path order."""
        records = [Record(path, values[path]) for path in sorted(values)]
        return encode_records(records, self.format, base, model)

    def decode(self, payload: bytes, base: Path, model: Model) -> dict[Path, Value]:
        """Path → value; when several records name one path, the last one wins."""
        return {
            r.path: r.value  # type: ignore[misc]
            for r in decode_records(payload, self.format, base, model)
        }

    def __repr__(self) -> str:
        return f"<SenML codec {self.format.label}>"


JSON = _SenMLCodec(ContentFormat.SENML_JSON)
CBOR = _SenMLCodec(ContentFormat.SENML_CBOR)


# -- records ----------------------------------------------------------------------------------


def _senml_format(fmt: int) -> ContentFormat:
    if fmt not in (ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR):
        raise UnsupportedContentFormat(
            f"the SenML codec handles SenML JSON (110) and SenML CBOR (112), not {fmt}"
        )
    return ContentFormat(fmt)


def _base_path(base: Path | str, fmt: ContentFormat) -> Path:
    try:
        return Path(base)
    except PathError as exc:
        raise CodecError(f"the base path is not valid: {exc}", format=fmt) from None


def _names(paths: Sequence[Path], base: Path) -> list[tuple[str | None, str | None]]:
    """(bn, n) for each record, by the rule in the module docstring."""
    if base.is_root:
        return [(None, str(path)) for path in paths]
    at_base = [path == base for path in paths]
    if all(at_base):
        return [(str(base) if i == 0 else None, None) for i in range(len(paths))]
    if any(at_base):
        # Only for resources the model doesn't know (a value at /9/0/1 and at /9/0/1/0).
        base_name, prefix = str(base), "/"
    else:
        base_name, prefix = str(base) + "/", ""
    names: list[tuple[str | None, str | None]] = []
    for i, path in enumerate(paths):
        relative = (
            "/".join(str(part) for part in path.ids[len(base) :]) if path.startswith(base) else ""
        )
        names.append((base_name if i == 0 else None, prefix + relative if relative else None))
    return names


def _wire_value(value: object, declared: ResourceType | None, fail: Fail) -> tuple[str, object]:
    """The value field and the value as SenML writes it (vd still as bytes)."""
    kind = type_for_encoding(value, declared, fail)
    field = _FIELD_FOR_TYPE[kind]
    if kind is ResourceType.TIME:
        return field, time_to_seconds(value)  # type: ignore[arg-type]
    if kind is ResourceType.FLOAT:
        try:
            return field, float(value)  # type: ignore[arg-type]
        except OverflowError:
            fail(f"{value!r} is too large for a Float")
    if kind is ResourceType.OBJLNK:
        return field, str(value)
    if kind is ResourceType.OPAQUE:
        return field, bytes(value)  # type: ignore[arg-type]
    return field, value


def _typed_value(field: str, raw: Any, kind: ResourceType | None, fail: Fail) -> Value:
    """The Python value of a record's value field, as the model's type (if it knows one)."""
    if kind is ResourceType.NONE:
        fail("an executable resource has no value")
    if kind is not None and field != _FIELD_FOR_TYPE[kind]:
        fail(
            f"a {kind.value} resource carries its value in '{_FIELD_FOR_TYPE[kind]}', not '{field}'"
        )
    if field == "v":
        if isinstance(raw, cbor2.CBORTag):  # tag 1: epoch time
            if kind not in (None, ResourceType.TIME):
                fail(f"tag 1 (epoch time) marks a Time value, but this is a {kind.value} resource")
            return coerce_number(raw.value, ResourceType.TIME, fail)
        return coerce_number(raw, kind, fail)
    if field == "vlo":
        try:
            return ObjectLink.parse(raw)
        except (ModelError, ValueError) as exc:
            fail(str(exc))
    return raw  # vs (str), vb (bool), vd (bytes): already checked by _field_value


def _resolve(
    pack: list[dict[str, Any]], fmt: ContentFormat, any_level: bool = False
) -> Iterator[tuple[int, Path, dict[str, Any], float | None]]:
    """(index, path, fields, time) of each record: bn + n and bt + t, as RFC 8428 says."""
    base_name = ""
    base_time: float | None = None
    for index, fields in enumerate(pack):

        def fail(message: str, index: int = index) -> NoReturn:
            raise CodecError(f"record {index}: {message}", format=fmt)

        version = fields.get("bver", SENML_VERSION)
        if version > SENML_VERSION or version < 1:
            fail(
                f"SenML version {version} is not one this codec reads "
                f"(it implements {SENML_VERSION})"
            )
        base_name = fields.get("bn", base_name)
        base_time = fields.get("bt", base_time)
        name = base_name + fields.get("n", "")
        if not name.startswith("/"):
            fail(
                f"the name {name!r} (bn + n) is not an LwM2M path; LwM2M names records with "
                "absolute paths such as '/3/0/9'"
            )
        try:
            path = Path(name)
        except PathError as exc:
            fail(f"the name (bn + n) is not an LwM2M path: {exc}")
        if not any_level and path.level < Level.RESOURCE:
            # Reported here, with the path, rather than as a missing value below.
            raise CodecError(
                f"record {index}: a SenML record carries one value, so its name must be a "
                f"resource path; {path} is a whole {path.level.label}",
                format=fmt,
                path=path,
            )
        time = fields.get("t")
        if base_time is not None:
            time = base_time + (time or 0)
        if time is not None and not math.isfinite(time):
            fail(f"the time bt + t = {time} is not a finite number")
        yield index, path, fields, time


# -- bytes to records ---------------------------------------------------------------------------


def _load(payload: bytes, fmt: ContentFormat) -> list[dict[str, Any]]:
    """The records of the pack, each as field name → checked SenML value (vd as bytes)."""

    def fail(message: str, offset: int | None = None) -> NoReturn:
        raise CodecError(message, format=fmt, offset=offset)

    if not payload:
        return []
    pack = (
        _load_json(payload, fail)
        if fmt is ContentFormat.SENML_JSON
        else load_item(
            payload,
            fail,
            max_depth=_MAX_CBOR_DEPTH,
            format_name="SenML CBOR",
            nesting="a SenML pack nests two levels (an array of records, each a map)",
        )
    )
    if not isinstance(pack, list):
        fail(f"a SenML pack is an array of records, not {describe(pack)}")
    records = []
    for index, item in enumerate(pack):
        if not isinstance(item, dict):
            fail(f"record {index} is {describe(item)}, not a map of fields")
        records.append(_fields(item, index, fmt))
    return records


def _fields(item: dict[Any, Any], index: int, fmt: ContentFormat) -> dict[str, Any]:
    def fail(message: str) -> NoReturn:
        raise CodecError(f"record {index}: {message}", format=fmt)

    is_cbor = fmt is ContentFormat.SENML_CBOR
    fields: dict[str, Any] = {}
    for key, raw in item.items():
        name = _field_name(key, is_cbor, fail)
        if name is None:
            continue
        if name in _UNSUPPORTED_FIELDS:
            fail(f"'{name}' ({_UNSUPPORTED_FIELDS[name]}) is not used by LwM2M and not supported")
        fields[name] = _field_value(name, raw, is_cbor, fail)
    present = [f for f in _VALUE_FIELDS if f in fields]
    if len(present) > 1:
        fail(f"a record has one value field, but this one has {' and '.join(present)}")
    return fields


def _field_name(key: object, is_cbor: bool, fail: Fail) -> str | None:
    """The field a map key stands for; None for an unknown field that may be ignored."""
    if is_cbor and type(key) is int:
        return _CBOR_LABELS.get(key)
    if type(key) is not str:
        fail(f"a field label must be an integer or text, not {describe(key)}")
    if is_cbor and key in _FIELD_NAMES and key != "vlo":
        fail(f"SenML CBOR writes '{key}' as the integer label {_CBOR_KEYS[key]}, not as text")
    if key in _FIELD_NAMES:
        return key
    if key.endswith("_"):
        fail(f"unknown field {key[:40]!r} ends in '_', so it must be understood (RFC 8428 §4.4)")
    return None


def _field_value(name: str, raw: object, is_cbor: bool, fail: Fail) -> object:
    """``raw`` checked to be what field ``name`` holds (vd decoded from base64url in JSON)."""
    if name in ("bn", "n", "bu", "u", "vs", "vlo"):
        if not isinstance(raw, str):
            fail(f"'{name}' must be a text string, not {describe(raw)}")
        if name in ("bn", "n") and len(raw) > _MAX_NAME:
            fail(f"'{name}' is {len(raw)} characters, too long to be part of an LwM2M path")
        if not is_cbor:
            _check_utf8(raw, name, fail)
        return raw
    if name == "vb":
        if not isinstance(raw, bool):
            fail(f"'vb' must be true or false, not {describe(raw)}")
        return raw
    if name == "vd":
        return _opaque(raw, is_cbor, fail)
    if name == "bver":
        if not _is_int(raw):
            fail(f"'bver' must be an integer, not {describe(raw)}")
        return raw
    # v, t, bt, ut: numbers; in CBOR also tag 1 (epoch time) around a number.
    number = raw.value if isinstance(raw, cbor2.CBORTag) and raw.tag == TAG_EPOCH_TIME else raw
    if not _is_number(number):
        fail(f"'{name}' must be a number, not {describe(raw)}")
    if _is_int(number) and not INT64_MIN <= number <= UINT64_MAX:  # type: ignore[operator]
        fail(f"'{name}' is {number}, outside the range of every LwM2M number type")
    if not is_cbor and not math.isfinite(number):  # type: ignore[arg-type]
        fail(f"'{name}' is too large a number for a double")
    if name != "v" and isinstance(raw, cbor2.CBORTag):
        return number
    return raw


def _opaque(raw: object, is_cbor: bool, fail: Fail) -> bytes:
    if is_cbor:
        if not isinstance(raw, bytes):
            fail(f"'vd' must be a byte string in SenML CBOR, not {describe(raw)}")
        return raw
    if not isinstance(raw, str):
        fail(f"'vd' must be base64url text in SenML JSON, not {describe(raw)}")
    text = raw.rstrip("=") if len(raw) % 4 == 0 else raw  # tolerate correct padding
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        fail("'vd' is not base64url (alphabet A-Z a-z 0-9 - _, no padding), as SenML JSON needs")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        fail("'vd' is not base64url")


def _check_utf8(text: str, name: str, fail: Fail) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        fail(f"'{name}' holds an unpaired surrogate (\\ud800-\\udfff), which is not valid text")


def _load_json(payload: bytes, fail: FailAt) -> object:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail("the payload is not valid UTF-8", exc.start)
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)
    except CodecError:
        raise
    except json.JSONDecodeError as exc:
        fail(f"not valid JSON: {exc.msg}", len(text[: exc.pos].encode("utf-8")))
    except RecursionError:
        fail("arrays or objects are nested too deeply; a SenML pack nests two levels")
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        fail(f"not valid JSON: {exc}")


def _json_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for key, value in pairs:
        if key in fields:
            raise CodecError(
                f"a JSON object has the field {key[:40]!r} twice", format=ContentFormat.SENML_JSON
            )
        fields[key] = value
    return fields


def _json_constant(name: str) -> NoReturn:
    raise CodecError(f"{name} is not JSON (nor a SenML number)", format=ContentFormat.SENML_JSON)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


# -- records to bytes ---------------------------------------------------------------------------


def _dump(pack: list[dict[str, object]], fmt: ContentFormat) -> bytes:
    if fmt is ContentFormat.SENML_JSON:
        try:
            text = json.dumps(pack, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode("utf-8")
        except (ValueError, UnicodeEncodeError) as exc:
            raise CodecError(f"can't write SenML JSON: {exc}", format=fmt) from None
    labelled = [{_CBOR_KEYS[name]: value for name, value in fields.items()} for fields in pack]
    try:
        return dumps(labelled)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"can't write SenML CBOR: {exc}", format=fmt) from None
