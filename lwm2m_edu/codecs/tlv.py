"""OMA TLV (Content-Format 11542, and 1542 before LwM2M 1.0): instances and resources, in binary.

TLV is the binary format of LwM2M 1.0. It nests ids the way paths do, but it carries **no types**:
the reader must know from the object model that ``01 51 80`` is the Integer 86400 and not three
bytes of Opaque. LwM2M 1.1 clients SHOULD prefer SenML, but servers (Leshan's demo for years) still
send TLV, so a client must at least read it.

Every element is one TLV: a Type byte, an identifier, a Length, then the Value::

     type byte                  id             length            value
    +-----+---+-----+-------+  +------------+  +--------------+  +---------------+
    | k k | i | l l | n n n |  | 1 or 2 B   |  | 0, 1, 2, 3 B |  | length bytes  |
    +-----+---+-----+-------+  +------------+  +--------------+  +---------------+
     7 6    5   4 3   2 1 0     (bit numbers)

- ``kk`` (bits 7-6) says what the id names: ``00`` an Object Instance (``0x00``), ``01`` a
  Resource Instance (``0x40``), ``10`` a Multiple Resource (``0x80``), ``11`` a Resource with
  Value (``0xC0``).
- ``i`` (bit 5): the id takes 1 byte (0) or 2 bytes (1, ``0x20``).
- ``ll`` (bits 4-3): the length field takes 0, 1, 2 or 3 bytes (``0x00``, ``0x08``, ``0x10``,
  ``0x18``). With no length field, ``nnn`` (bits 2-0) *is* the length, 0..7.
- All numbers are big-endian.

A worked example, Resource 55 holding the three bytes 01 02 03::

    C3 37 01 02 03      C3 = 11 0 00 011: Resource with Value, 1-byte id, length 3 inline
                        37 = id 55;  01 02 03 = the value

Containers hold TLVs in their value: an Object Instance holds Resource with Value and Multiple
Resource TLVs; a Multiple Resource holds Resource Instance TLVs. That is all: three levels at
most, so ``/O`` (object), the deepest thing one payload can carry, looks like::

    08 00 0F                    Object Instance 0, 15 bytes follow:
       C1 00 01                   Resource 0 = 1
       C4 01 00 01 51 80          Resource 1 = 86400 (4 bytes)
       C1 06 01                   Resource 6 = 1 (true)
       C1 07 55                   Resource 7 = "U"

Values (the type comes from the model):

===========  ==========================================================================
Integer      signed two's complement in 1, 2, 4 or 8 bytes (we write the smallest)
Time         the same, as seconds since 1970
Unsigned     1, 2, 4 or 8 bytes, read as unsigned                         [LwM2M 1.1]
Float        IEEE-754 in 4 bytes, or 8 when 4 would change the value
Boolean      1 byte, 0 or 1
String       UTF-8 (Corelnk too)
Opaque       the bytes themselves
Objlnk       4 bytes: object id (2 bytes), then instance id (2 bytes)
===========  ==========================================================================

Choices this module makes, where the format leaves room:

- **Unsigned.** We *write* an Unsigned in the smallest of 1, 2, 4, 8 bytes that holds it as a
  *signed* number (so 200 is ``00 C8``), and only values above 2**63-1 take 8 bytes read as
  unsigned. A 1.0 peer that reads it as an Integer then gets the same number. We *read* an
  Unsigned as unsigned big-endian, so ``C8`` from another peer is 200 as well. Every value in
  0..2**64-1 round-trips: a signed encoding of a non-negative number has its top bit clear, so
  reading it as unsigned gives the same number.
- **What we write.** For ``/O/I`` the bare resource TLVs; for a multiple resource ``/O/I/R`` one
  Multiple Resource TLV wrapping its instances (as Leshan does); 1-byte ids up to 255; the length
  inline up to 7, else the smallest length field; everything ordered by id.
- **What we read.** For ``/O/I`` also one Object Instance TLV around the resources; for a
  multiple ``/O/I/R`` also the bare Resource Instance TLVs; ids and lengths in their longer forms.
- **Unknown resources** (the model doesn't know the object or the resource) decode to raw
  ``bytes``: without a type the bytes can't be interpreted.
- **Rejected:** an id twice in one container (Leshan does too), an id that contradicts the
  request path, a TLV of the wrong kind for its level, a length running past its container,
  bytes after the end, non-zero bits 2-0 when a length field is present (they are the inline
  length, so a non-zero value there means a corrupt header), the reserved id 65535.
"""

from __future__ import annotations

import itertools
import math
import struct
from enum import IntEnum
from typing import NamedTuple, NoReturn

from ..model import Model, ObjectLink, ResourceType, Value
from ..paths import MAX_ID, Level, Path
from . import CodecError, ContentFormat
from ._values import (
    INT64_MAX,
    INT64_MIN,
    Fail,
    resource_type,
    seconds_to_time,
    time_to_seconds,
    type_for_encoding,
)

__all__ = ["FORMAT", "decode", "encode"]

FORMAT = ContentFormat.TLV

#: A value (or container) of 2**24 bytes or more has no length field wide enough.
MAX_LENGTH = 2**24 - 1


class Kind(IntEnum):
    """Bits 7-6 of the type byte: what the TLV's id names."""

    OBJECT_INSTANCE = 0x00
    RESOURCE_INSTANCE = 0x40
    MULTIPLE_RESOURCE = 0x80
    RESOURCE_VALUE = 0xC0

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]

    @property
    def a_tlv(self) -> str:
        """``"an Object Instance TLV"``, ``"a Resource Instance TLV"``: for messages."""
        article = "an" if self is Kind.OBJECT_INSTANCE else "a"
        return f"{article} {self.label} TLV"


_KIND_LABELS = {
    Kind.OBJECT_INSTANCE: "Object Instance",
    Kind.RESOURCE_INSTANCE: "Resource Instance",
    Kind.MULTIPLE_RESOURCE: "Multiple Resource",
    Kind.RESOURCE_VALUE: "Resource with Value",
}
_KINDS = tuple(Kind)  #: indexed by bits 7-6 of the type byte
_RESOURCE_KINDS = (Kind.RESOURCE_VALUE, Kind.MULTIPLE_RESOURCE)
_INTEGER_SIZES = (1, 2, 4, 8)


def _raise(message: str, path: Path | None, offset: int | None = None) -> NoReturn:
    raise CodecError(message, format=FORMAT, path=path, offset=offset)


def _failer(path: Path | None, offset: int | None = None) -> Fail:
    """A ``fail(message)`` for the shared value helpers, pinned to one path and offset."""

    def fail(message: str) -> NoReturn:
        _raise(message, path, offset)

    return fail


# -- encoding -------------------------------------------------------------------------------------


def encode(values: dict[Path, Value], base: Path, model: Model) -> bytes:
    """The TLV payload for ``values`` at ``base``: ``/O``, ``/O/I``, ``/O/I/R`` or ``/O/I/R/RI``."""
    if base.level is Level.ROOT:
        _raise(
            "TLV can't carry several objects, so it can't encode the root '/'; "
            "encode each object (/O) on its own, or use SenML CBOR (112)",
            base,
        )
    for path in values:
        if path.level < Level.RESOURCE:
            _raise(
                f"values belong to resources (/O/I/R) or resource instances (/O/I/R/RI); "
                f"{path} is a whole {path.level.label}",
                path,
            )
    items = sorted(values.items(), key=lambda item: item[0].ids)
    if base.level is Level.OBJECT:
        return b"".join(
            _tlv(Kind.OBJECT_INSTANCE, base.child(iid), _encode_instance(list(group), model))
            for iid, group in itertools.groupby(items, key=lambda item: item[0].ids[1])
        )
    if base.level is Level.INSTANCE:
        return _encode_instance(items, model)
    if base.level is Level.RESOURCE:
        return _encode_resource(base, items, model)
    # a resource instance: one Resource Instance TLV
    resource = model.resource(base)
    if resource is not None and not resource.multiple:
        _raise(
            f"{base.parent} ({resource.name}) is a single resource: it has no instances; "
            f"encode {base.parent} itself",
            base,
        )
    if list(values) != [base]:
        listed = ", ".join(str(path) for path, _ in items) or "nothing"
        _raise(f"a TLV for {base} encodes exactly one value at {base}; got {listed}", base)
    value = _encode_value(values[base], base, resource_type(model, base))
    return _tlv(Kind.RESOURCE_INSTANCE, base, value)


def _encode_instance(items: list[tuple[Path, Value]], model: Model) -> bytes:
    """The resource TLVs of one object instance, ``items`` sorted by path."""
    return b"".join(
        _encode_resource(Path.from_ids(ids), list(group), model)
        for ids, group in itertools.groupby(items, key=lambda item: item[0].ids[:3])
    )


def _encode_resource(path: Path, items: list[tuple[Path, Value]], model: Model) -> bytes:
    """One Resource with Value TLV, or one Multiple Resource TLV around its instances."""
    resource = model.resource(path)
    has_value = any(p.level is Level.RESOURCE for p, _ in items)
    has_instances = any(p.level is Level.RESOURCE_INSTANCE for p, _ in items)
    if has_value and has_instances:
        _raise(
            f"{path} is given both a value of its own and resource-instance values; "
            "a resource is either single or multiple",
            path,
        )
    multiple = resource.multiple if resource is not None else has_instances
    name = f" ({resource.name})" if resource is not None else ""
    if multiple:
        if has_value:
            _raise(
                f"{path}{name} is a multiple resource: give its values per instance, "
                f"e.g. {path.child(0)}",
                path,
            )
        declared = None if resource is None else resource.type
        body = b"".join(
            _tlv(Kind.RESOURCE_INSTANCE, p, _encode_value(value, p, declared)) for p, value in items
        )
        return _tlv(Kind.MULTIPLE_RESOURCE, path, body)
    if has_instances:
        _raise(f"{path}{name} is a single resource: it has no instances like {items[0][0]}", path)
    if not items:
        _raise(f"there is no value to encode for {path}", path)
    declared = None if resource is None else resource.type
    return _tlv(Kind.RESOURCE_VALUE, path, _encode_value(items[0][1], path, declared))


def _tlv(kind: Kind, path: Path, value: bytes) -> bytes:
    """One TLV: the header for ``kind``, the last id of ``path`` and ``len(value)``, then value."""
    ident = path.ids[-1]
    length = len(value)
    if length > MAX_LENGTH:
        _raise(
            f"the {kind.label} TLV would hold {length} bytes, but the widest length field "
            f"(3 bytes) only counts up to {MAX_LENGTH}",
            path,
        )
    type_byte = int(kind)
    if ident > 0xFF:
        type_byte |= 0x20
    id_bytes = ident.to_bytes(2 if ident > 0xFF else 1, "big")
    if length <= 7:
        type_byte |= length
        length_bytes = b""
    else:
        size = 1 if length <= 0xFF else 2 if length <= 0xFFFF else 3
        type_byte |= size << 3
        length_bytes = length.to_bytes(size, "big")
    return bytes([type_byte]) + id_bytes + length_bytes + value


def _encode_value(value: Value, path: Path, declared: ResourceType | None) -> bytes:
    """The value bytes, for the type the model ``declared`` (or, if None, the Python type's)."""
    fail = _failer(path)
    kind = type_for_encoding(value, declared, fail)
    if kind is ResourceType.INTEGER:
        return _signed(value)  # type: ignore[arg-type]
    if kind is ResourceType.TIME:
        seconds = time_to_seconds(value)  # type: ignore[arg-type]
        if not INT64_MIN <= seconds <= INT64_MAX:
            fail(f"time {seconds} s since 1970 does not fit in 8 bytes")
        return _signed(seconds)
    if kind is ResourceType.UNSIGNED:
        if value <= INT64_MAX:  # type: ignore[operator]
            return _signed(value)  # type: ignore[arg-type]
        return value.to_bytes(8, "big")  # type: ignore[union-attr]
    if kind is ResourceType.FLOAT:
        return _float(value, fail)  # type: ignore[arg-type]
    if kind is ResourceType.BOOLEAN:
        return b"\x01" if value else b"\x00"
    if kind in (ResourceType.STRING, ResourceType.CORELNK):
        try:
            return value.encode("utf-8")  # type: ignore[union-attr]
        except UnicodeEncodeError as exc:
            fail(f"the text can't be written as UTF-8 (character {exc.start}): {exc.reason}")
    if kind is ResourceType.OBJLNK:
        return struct.pack(">HH", value.object_id, value.instance_id)  # type: ignore[union-attr]
    return bytes(value)  # type: ignore[arg-type]  # Opaque


def _signed(number: int) -> bytes:
    """Two's complement in the smallest of 1, 2, 4, 8 bytes (the caller checked the range)."""
    for size in _INTEGER_SIZES:
        if -(1 << (8 * size - 1)) <= number < (1 << (8 * size - 1)):
            return number.to_bytes(size, "big", signed=True)
    raise AssertionError(f"{number} is outside the 64-bit range")  # pragma: no cover


def _float(value: float | int, fail: Fail) -> bytes:
    """4 bytes when float32 holds the value exactly, else 8."""
    try:
        number = float(value)
    except OverflowError:
        fail(f"{str(value)[:20]}... is too large for a Float (the largest is about 1.8e308)")
    if not math.isnan(number):
        try:
            single = struct.pack(">f", number)
        except OverflowError:  # beyond float32's range: needs 8 bytes
            pass
        else:
            if struct.unpack(">f", single)[0] == number:
                return single
    return struct.pack(">d", number)


# -- decoding -------------------------------------------------------------------------------------


class _Tlv(NamedTuple):
    """One TLV header as read from the payload: the value is ``payload[start:end]``."""

    kind: Kind
    id: int
    offset: int  #: where its type byte is
    start: int
    end: int


def decode(payload: bytes, base: Path, model: Model) -> dict[Path, Value]:
    """The values in a TLV ``payload`` for ``base``, typed by ``model``.

    A resource the model doesn't know decodes to its raw ``bytes``.
    """
    return _Decoder(payload, model).decode(base)


class _Decoder:
    """Reads one payload. Each level has its own method; the nesting is at most three deep."""

    def __init__(self, payload: bytes, model: Model) -> None:
        self.payload = payload
        self.model = model
        self.values: dict[Path, Value] = {}

    # -- the request levels ---------------------------------------------------------------

    def decode(self, base: Path) -> dict[Path, Value]:
        level = base.level
        if level is Level.ROOT:
            _raise(
                "TLV can't carry several objects, so a payload for '/' can't be TLV; "
                "read each object (/O) on its own, or use SenML CBOR (112)",
                base,
            )
        container = base if level < Level.RESOURCE_INSTANCE else base.parent
        tlvs = self.read_tlvs(0, len(self.payload), container, "in the payload")
        if level is Level.OBJECT:
            self.object_instances(tlvs, base)
        elif level is Level.INSTANCE:
            self.instance_payload(tlvs, base)
        elif level is Level.RESOURCE:
            self.resource_payload(tlvs, base)
        else:
            self.resource_instance_payload(tlvs, base)
        return self.values

    def object_instances(self, tlvs: list[_Tlv], object_path: Path) -> None:
        """``/O``: a sequence of Object Instance TLVs."""
        seen: set[int] = set()
        for tlv in tlvs:
            self.expect(tlv, (Kind.OBJECT_INSTANCE,), object_path, f"a payload for {object_path}")
            self.once(tlv, seen, object_path, "instance")
            instance = object_path.child(tlv.id)
            self.resources(self.read_inside(tlv, instance), instance)

    def instance_payload(self, tlvs: list[_Tlv], instance: Path) -> None:
        """``/O/I``: bare resource TLVs, or one Object Instance TLV around them."""
        if tlvs and tlvs[0].kind is Kind.OBJECT_INSTANCE:
            wrapper = tlvs[0]
            self.only(tlvs, instance)
            self.matches(wrapper, instance)
            self.resources(self.read_inside(wrapper, instance), instance)
        else:
            self.resources(tlvs, instance)

    def resource_payload(self, tlvs: list[_Tlv], path: Path) -> None:
        """``/O/I/R``: one resource TLV, or (multiple resources) bare Resource Instance TLVs."""
        resource = self.model.resource(path)
        if resource is not None and not resource.multiple:
            if not tlvs:
                _raise(
                    f"the payload is empty, but {path} ({resource.name}) is a single resource: "
                    "expected one Resource with Value TLV",
                    path,
                    0,
                )
            self.expect(tlvs[0], (Kind.RESOURCE_VALUE,), path, f"a payload for {path}")
        elif not tlvs:
            return  # a multiple resource with no instances
        elif tlvs[0].kind is Kind.RESOURCE_INSTANCE:
            self.resource_instances(tlvs, path)
            return
        else:
            self.expect(tlvs[0], _RESOURCE_KINDS, path, f"a payload for {path}")
        self.only(tlvs, path)
        self.matches(tlvs[0], path)
        self.resource(tlvs[0], path)

    def resource_instance_payload(self, tlvs: list[_Tlv], path: Path) -> None:
        """``/O/I/R/RI``: one Resource Instance TLV."""
        resource = self.model.resource(path)
        if resource is not None and not resource.multiple:
            _raise(
                f"{path.parent} ({resource.name}) is a single resource: it has no instances",
                path,
            )
        if not tlvs:
            _raise("the payload is empty; expected one Resource Instance TLV", path, 0)
        self.expect(tlvs[0], (Kind.RESOURCE_INSTANCE,), path, f"a payload for {path}")
        self.only(tlvs, path)
        self.matches(tlvs[0], path)
        self.values[path] = self.value(tlvs[0], path, resource_type(self.model, path))

    # -- inside containers ----------------------------------------------------------------

    def resources(self, tlvs: list[_Tlv], instance: Path) -> None:
        """The contents of an object instance: Resource with Value and Multiple Resource TLVs."""
        seen: set[int] = set()
        for tlv in tlvs:
            self.expect(tlv, _RESOURCE_KINDS, instance, f"object instance {instance}")
            self.once(tlv, seen, instance, "resource")
            self.resource(tlv, instance.child(tlv.id))

    def resource(self, tlv: _Tlv, path: Path) -> None:
        """One resource TLV, checked against what the model says (single or multiple)."""
        resource = self.model.resource(path)
        if resource is not None and resource.multiple != (tlv.kind is Kind.MULTIPLE_RESOURCE):
            expected = "Multiple Resource" if resource.multiple else "Resource with Value"
            actual = "multiple" if resource.multiple else "single"
            _raise(
                f"{path} ({resource.name}) is a {actual} resource, so it travels in a "
                f"{expected} TLV, not {tlv.kind.a_tlv}",
                path,
                tlv.offset,
            )
        declared = None if resource is None else resource.type
        if tlv.kind is Kind.RESOURCE_VALUE:
            self.values[path] = self.value(tlv, path, declared)
        else:
            self.resource_instances(self.read_inside(tlv, path), path)

    def resource_instances(self, tlvs: list[_Tlv], path: Path) -> None:
        """The instances of a multiple resource: Resource Instance TLVs."""
        declared = resource_type(self.model, path)
        seen: set[int] = set()
        for tlv in tlvs:
            self.expect(tlv, (Kind.RESOURCE_INSTANCE,), path, f"multiple resource {path}")
            self.once(tlv, seen, path, "resource instance")
            instance = path.child(tlv.id)
            self.values[instance] = self.value(tlv, instance, declared)

    # -- the checks -----------------------------------------------------------------------

    def expect(self, tlv: _Tlv, kinds: tuple[Kind, ...], path: Path, place: str) -> None:
        """Check that ``tlv`` is one of the ``kinds`` allowed in ``place`` (named by ``path``)."""
        if tlv.kind not in kinds:
            allowed = " or ".join(f"{kind.label} (0x{kind:02X})" for kind in kinds)
            _raise(
                f"found {tlv.kind.a_tlv} (type bits 0x{tlv.kind:02X}) with id {tlv.id}, "
                f"but {place} holds only {allowed} TLVs",
                path,
                tlv.offset,
            )

    def once(self, tlv: _Tlv, seen: set[int], container: Path, what: str) -> None:
        if tlv.id in seen:
            _raise(
                f"{what} {tlv.id} appears twice in {container}; each id may appear only once",
                container.child(tlv.id),
                tlv.offset,
            )
        seen.add(tlv.id)

    def only(self, tlvs: list[_Tlv], path: Path) -> None:
        if len(tlvs) > 1:
            extra = tlvs[1]
            _raise(
                f"the payload for {path} is one TLV, but {len(self.payload) - extra.offset} more "
                f"bytes follow it (starting with {extra.kind.a_tlv})",
                path,
                extra.offset,
            )

    def matches(self, tlv: _Tlv, path: Path) -> None:
        if tlv.id != path.ids[-1]:
            _raise(
                f"the {tlv.kind.label} TLV has id {tlv.id}, but the request is for {path}",
                path,
                tlv.offset,
            )

    # -- TLV headers ----------------------------------------------------------------------

    def read_inside(self, tlv: _Tlv, container: Path) -> list[_Tlv]:
        return self.read_tlvs(tlv.start, tlv.end, container, f"in the {tlv.kind.label} TLV")

    def read_tlvs(self, start: int, end: int, container: Path, where: str) -> list[_Tlv]:
        """The TLV headers one after another in ``payload[start:end]`` (values not yet read)."""
        payload = self.payload
        tlvs: list[_Tlv] = []
        pos = start
        while pos < end:
            offset = pos
            type_byte = payload[pos]
            kind = _KINDS[type_byte >> 6]
            id_size = 2 if type_byte & 0x20 else 1
            length_size = (type_byte >> 3) & 0x03
            header_size = 1 + id_size + length_size
            if end - pos < header_size:
                _raise(
                    f"the header of {kind.a_tlv} with type byte 0x{type_byte:02X} takes "
                    f"{header_size} bytes (type, {id_size}-byte id, {length_size}-byte length), "
                    "but only "
                    f"{end - pos} remain {where}",
                    container,
                    offset,
                )
            ident = int.from_bytes(payload[pos + 1 : pos + 1 + id_size], "big")
            if ident > MAX_ID:
                _raise(
                    f"{kind.a_tlv} has id {ident}, which LwM2M reserves: it names nothing",
                    container,
                    offset,
                )
            pos += 1 + id_size
            if length_size:
                if type_byte & 0x07:
                    _raise(
                        f"type byte 0x{type_byte:02X} has a {length_size}-byte length field, so "
                        "its bits 2-0 (the inline length) must be 0",
                        container,
                        offset,
                    )
                length = int.from_bytes(payload[pos : pos + length_size], "big")
                pos += length_size
            else:
                length = type_byte & 0x07
            if length > end - pos:
                _raise(
                    f"the {kind.label} TLV with id {ident}: its length says {length} bytes, "
                    f"but only {end - pos} remain {where}",
                    container,
                    offset,
                )
            tlvs.append(_Tlv(kind, ident, offset, pos, pos + length))
            pos += length
        return tlvs

    # -- values ---------------------------------------------------------------------------

    def value(self, tlv: _Tlv, path: Path, kind: ResourceType | None) -> Value:
        """The value of a Resource with Value or Resource Instance TLV, of the model's type."""
        data = self.payload[tlv.start : tlv.end]
        fail = _failer(path, tlv.start)
        if kind is None:
            return data
        if kind is ResourceType.NONE:
            fail("an executable resource has no value, so no TLV can carry one")
        if kind in (ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.TIME):
            if len(data) not in _INTEGER_SIZES:
                fail(f"a {kind.value} takes 1, 2, 4 or 8 bytes in TLV, not {len(data)}")
            number = int.from_bytes(data, "big", signed=kind is not ResourceType.UNSIGNED)
            return seconds_to_time(number, fail) if kind is ResourceType.TIME else number
        if kind is ResourceType.FLOAT:
            if len(data) == 4:
                return struct.unpack(">f", data)[0]
            if len(data) == 8:
                return struct.unpack(">d", data)[0]
            fail(f"a Float takes 4 or 8 bytes (IEEE-754 single or double), not {len(data)}")
        if kind is ResourceType.BOOLEAN:
            if data not in (b"\x00", b"\x01"):
                fail(f"a Boolean is one byte, 00 or 01, not {data[:8].hex(' ') or 'nothing'}")
            return data == b"\x01"
        if kind is ResourceType.OBJLNK:
            if len(data) != 4:
                fail(f"an Objlnk takes 4 bytes (object id, instance id), not {len(data)}")
            object_id, instance_id = struct.unpack(">HH", data)
            return ObjectLink(object_id, instance_id)
        if kind in (ResourceType.STRING, ResourceType.CORELNK):
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                _raise(
                    f"a {kind.value} must be UTF-8, but this byte can't start or continue "
                    f"a UTF-8 character: {exc.reason}",
                    path,
                    tlv.start + exc.start,
                )
        return data  # Opaque
