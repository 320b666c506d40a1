"""One LwM2M value as one CBOR data item, and back: shared by CBOR (60) and LwM2M CBOR (11544).

SenML CBOR (112) uses the plumbing here too: ``load_item`` to read, ``dumps`` to write, ``describe``
for its messages.

CBOR (RFC 8949) says what kind each item is: integer, float, text, bytes, boolean, array, map, or
a *tag* (a number that gives the item after it a meaning). So, unlike TLV or text/plain, a CBOR
value carries its own type, and LwM2M only has to say which CBOR kind stands for which LwM2M type:

===========  =================================================  ==========================
LwM2M type   CBOR item (as Anjay Lite writes it)                example (hex)
===========  =================================================  ==========================
Integer      integer (major type 0 or 1)                        ``18 2a`` = 42
Unsigned     integer (major type 0)                             ``1b ffff ffff ffff ffff``
Float        float, the shortest width that keeps it exact      ``f9 5cb0`` = 300.0
Boolean      ``true`` / ``false``                               ``f5``
String       text string                                        ``63 616263`` = "abc"
Corelnk      text string                                        ``67 3c2f332f303e`` = "</3/0>"
Opaque       byte string                                        ``43 abcdef``
Time         tag 1 (epoch time) around integer seconds          ``c1 1a 5182428f``
Objlnk       text string ``"OID:IID"``                          ``64 36363a30`` = "66:0"
===========  =================================================  ==========================

A decoder must also accept what other peers send: a tag-4 *decimal fraction* ``[exponent,
mantissa]`` (``c4 82 21 196ab3`` = 273.15), half-precision floats, a Time sent as a plain integer,
and byte or text strings split into chunks (indefinite length, ``5f 41 01 42 0203 ff``).

We let the ``cbor2`` library read and write the items, with three precautions:

* cbor2 gives many tags a Python meaning (tag 1 becomes a ``datetime``, tag 4 a ``Decimal``, tag
  258 a ``set``, tags 28/29 even build shared, cyclic structures). We switch all of that off: every
  tag comes back as a plain ``CBORTag(number, item)``, and this module alone decides which tags
  LwM2M accepts (1 and 4) and what they mean.
* Whatever goes wrong inside cbor2 (bad bytes, a string that claims 2**64 bytes, nesting too deep,
  a duplicate map key) becomes a ``CodecError`` that says what was wrong and where reading stopped.
* ``dumps`` writes each float at the shortest width that keeps it exact (half, single or double),
  as Anjay Lite does. cbor2's ``canonical=True`` would do that too, but it also sorts map keys,
  and the order of a SenML record's fields is part of the bytes the specification shows.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import NoReturn

import cbor2

from ..model import ObjectLink, ResourceType, Value
from ._values import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    Fail,
    coerce_number,
    seconds_to_time,
    time_to_seconds,
    type_for_encoding,
)

__all__ = [
    "RAW_TAG_DECODERS",
    "FailAt",
    "describe",
    "dumps",
    "encode_value",
    "item_to_value",
    "load_item",
]

#: Raises the codec's ``CodecError`` with a message and, when known, the byte offset.
FailAt = Callable[[str, int | None], NoReturn]

TAG_EPOCH_TIME = 1  #: seconds since 1970-01-01T00:00Z, an integer or a float
TAG_DECIMAL_FRACTION = 4  #: ``[exponent, mantissa]`` meaning mantissa * 10**exponent

#: Every tag that cbor2 6.3 would otherwise turn into a Python object of its own (datetime, Decimal,
#: Fraction, UUID, set, IP address, shared/cyclic values, string references, ...). Tags not listed
#: here already come back as ``CBORTag``; tests/test_codec_cbor.py checks that the list is complete.
_CBOR2_BUILTIN_TAGS = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 43000,
    55799,
)  # fmt: skip


def _keep_raw(tag: int) -> Callable[[object, bool], cbor2.CBORTag]:
    def decoder(value: object, immutable: bool) -> cbor2.CBORTag:
        return cbor2.CBORTag(tag, value)

    return decoder


#: ``semantic_decoders`` for cbor2 that leave every tag as a plain ``CBORTag``.
RAW_TAG_DECODERS = {tag: _keep_raw(tag) for tag in _CBOR2_BUILTIN_TAGS}

#: Largest |exponent| accepted in a decimal fraction. With a 64-bit mantissa, any exponent beyond
#: this gives a number no LwM2M type can hold (a double overflows above ~1e308 and is 0 below
#: ~5e-324); refusing it early also stops ``10**(2**64)`` from eating the memory.
_MAX_DECIMAL_EXPONENT = 400


# -- reading ------------------------------------------------------------------------------------


def load_item(
    payload: bytes,
    fail: FailAt,
    *,
    max_depth: int,
    format_name: str,
    nesting: str | None = None,
) -> object:
    """The one CBOR data item that is the whole ``payload``, tags left raw.

    ``max_depth`` bounds how deeply arrays, maps and tags may nest (cbor2 counts each of them as
    one level); ``nesting``, if given, says in words how the format nests, for the error when the
    items nest deeper. Bytes after the item are an error: a CoAP payload is exactly one item. When
    cbor2 rejects the bytes, the error's offset is where it stopped reading: just past the culprit.
    """
    if not payload:
        fail(f"the payload is empty; {format_name} carries exactly one CBOR item", 0)
    stream = io.BytesIO(payload)
    decoder = cbor2.CBORDecoder(
        stream,
        semantic_decoders=RAW_TAG_DECODERS,
        max_depth=max_depth,
        allow_duplicate_keys=False,
        read_size=1,  # no read-ahead, so stream.tell() is where cbor2 stopped, even on an error
    )
    try:
        item = decoder.decode()
    except Exception as exc:  # cbor2 raises CBORDecodeError, but also ValueError, MemoryError...
        fail(_explain_cbor2_error(exc, max_depth, format_name, nesting), stream.tell())
    end = stream.tell()
    if end != len(payload):
        fail(
            f"{len(payload) - end} byte(s) follow the CBOR item; {format_name} is exactly one "
            f"item (the item ended at byte {end})",
            end,
        )
    return item


def _explain_cbor2_error(
    exc: Exception, max_depth: int, format_name: str, nesting: str | None
) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, cbor2.CBORDecodeEOF) or "premature end" in text:
        return f"the payload ends in the middle of a CBOR item ({text})"
    if "nesting depth" in text or isinstance(exc, RecursionError):
        why = f"; {nesting}" if nesting else f", more than {format_name} ever needs"
        return (
            f"items are nested more than {max_depth} deep (arrays, maps and tags each count){why}"
        )
    if "Duplicate map key" in text:
        return f"a map has the same key twice, which CBOR forbids ({text})"
    return f"not well-formed CBOR: {text}"


def describe(item: object) -> str:
    """A CBOR item's kind in words, for error messages: ``"a text string"``, ``"tag 32"``."""
    if isinstance(item, bool):
        return "a boolean"
    if isinstance(item, int):
        return "an integer"
    if isinstance(item, float):
        return "a float"
    if isinstance(item, str):
        return "a text string"
    if isinstance(item, bytes):
        return "a byte string"
    if isinstance(item, list | tuple):
        return "an array"
    if isinstance(item, dict | cbor2.frozendict):
        return "a map"
    if isinstance(item, cbor2.CBORTag):
        return f"tag {item.tag}"
    if item is None:
        return "null"
    if item is cbor2.undefined:
        return "undefined"
    if isinstance(item, cbor2.CBORSimpleValue):
        return f"simple value {item.value}"
    return f"a {type(item).__name__}"


def item_to_value(item: object, kind: ResourceType | None, fail: Fail) -> Value:
    """The typed LwM2M value a decoded leaf ``item`` stands for, for a resource of type ``kind``.

    ``kind`` is None when the model doesn't know the resource: the item keeps its natural type
    (an Objlnk then stays the text ``"OID:IID"``, since nothing says it is one).
    """
    expected = "a value" if kind is None else _a(kind)
    if kind is ResourceType.NONE:
        fail("an executable resource has no value")
    if isinstance(item, cbor2.CBORTag):
        if item.tag == TAG_EPOCH_TIME:
            return _epoch_time(item.value, kind, fail)
        if item.tag == TAG_DECIMAL_FRACTION:
            return _number(_decimal_fraction(item.value, fail), kind, fail)
        fail(
            f"got CBOR tag {item.tag} where {expected} was expected; LwM2M uses only tag 1 "
            "(epoch time) and tag 4 (decimal fraction)"
        )
    if isinstance(item, datetime):  # what cbor2 returns for tag 1 if its own decoders are on
        if kind not in (None, ResourceType.TIME):
            fail(f"got a time (tag 1) where {expected} was expected")
        return _epoch_time(item.timestamp(), kind, fail)
    if isinstance(item, Decimal):  # what cbor2 returns for tag 4 if its own decoders are on
        if not item.is_finite():
            fail(f"the decimal {item} is not a finite number")
        sign, digits, exponent = item.as_tuple()
        mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        return _number(_scaled(mantissa, int(exponent), fail), kind, fail)
    if isinstance(item, bool):
        if kind not in (None, ResourceType.BOOLEAN):
            fail(f"got a boolean where {expected} was expected")
        return item
    if isinstance(item, int | float):
        return _number(item, kind, fail)
    if isinstance(item, str):
        if kind is ResourceType.OBJLNK:
            try:
                return ObjectLink.parse(item)
            except ValueError as exc:
                fail(str(exc))
        if kind not in (None, ResourceType.STRING, ResourceType.CORELNK):
            fail(f"got a text string where {expected} was expected")
        return item
    if isinstance(item, bytes):
        if kind not in (None, ResourceType.OPAQUE):
            fail(f"got a byte string where {expected} was expected")
        return item
    fail(f"got {describe(item)} where {expected} was expected")


_NUMERIC = (ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.FLOAT, ResourceType.TIME)


def _a(kind: ResourceType) -> str:
    """``"an Integer"``, ``"a Float"``: the type's name with its article, for messages."""
    return f"{'an' if kind.value[0] in 'AEIOU' else 'a'} {kind.value}"


def _number(number: int | float, kind: ResourceType | None, fail: Fail) -> Value:
    if kind is None:
        if isinstance(number, int) and not INT64_MIN <= number <= UINT64_MAX:
            fail(f"{number} is outside the range of both Integer and Unsigned Integer")
        return number
    if kind not in _NUMERIC:
        fail(f"got a number where {_a(kind)} was expected")
    if kind is ResourceType.TIME and isinstance(number, float) and not number.is_integer():
        return _epoch_time(number, kind, fail)
    try:
        return coerce_number(number, kind, fail)
    except OverflowError:
        fail(f"{number} is too large for {_a(kind)}")


def _epoch_time(seconds: object, kind: ResourceType | None, fail: Fail) -> datetime:
    if kind not in (None, ResourceType.TIME):
        fail(f"got a time (tag 1) where {_a(kind)} was expected")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        fail(f"tag 1 (epoch time) must hold a number of seconds, not {describe(seconds)}")
    if isinstance(seconds, int) and not INT64_MIN <= seconds <= INT64_MAX:
        fail(f"time {seconds} s since 1970 is outside the range of a Time")
    if isinstance(seconds, float) and not math.isfinite(seconds):
        fail(f"time {seconds} is not a finite number of seconds")
    return seconds_to_time(seconds, fail)


def _decimal_fraction(content: object, fail: Fail) -> int | float:
    if not (isinstance(content, list | tuple) and len(content) == 2):
        fail(f"tag 4 (decimal fraction) must hold [exponent, mantissa], not {describe(content)}")
    exponent, mantissa = content
    for name, part in (("exponent", exponent), ("mantissa", mantissa)):
        if isinstance(part, bool) or not isinstance(part, int):
            fail(f"the {name} of a decimal fraction must be an integer, not {describe(part)}")
    return _scaled(mantissa, exponent, fail)


def _scaled(mantissa: int, exponent: int, fail: Fail) -> int | float:
    """``mantissa * 10**exponent``: an int when whole, else the nearest float."""
    if abs(exponent) > _MAX_DECIMAL_EXPONENT:
        fail(f"the decimal exponent {exponent} is outside ±{_MAX_DECIMAL_EXPONENT}")
    if exponent >= 0:
        return mantissa * 10**exponent
    exact = Fraction(mantissa, 10**-exponent)
    return int(exact) if exact.denominator == 1 else float(exact)


# -- writing ------------------------------------------------------------------------------------


def encode_value(value: object, declared: ResourceType | None, fail: Fail) -> bytes:
    """The CBOR item for ``value``, a resource of type ``declared`` (None: inferred from value)."""
    kind = type_for_encoding(value, declared, fail)
    item: object
    if kind is ResourceType.TIME:
        item = cbor2.CBORTag(TAG_EPOCH_TIME, time_to_seconds(value))  # type: ignore[arg-type]
    elif kind is ResourceType.OBJLNK:
        item = str(value)
    elif kind is ResourceType.FLOAT:
        try:
            item = float(value)  # type: ignore[arg-type]
        except OverflowError:
            fail(f"{value} is too large for a Float")
    elif kind is ResourceType.OPAQUE:
        item = bytes(value)  # type: ignore[arg-type]
    else:  # Integer, Unsigned, Boolean, String, Corelnk: the CBOR item of the same kind
        item = value
    try:
        return dumps(item)
    except Exception as exc:  # e.g. a str holding a lone surrogate, which UTF-8 can't carry
        fail(f"cbor2 could not encode {value!r}: {exc}")


def dumps(item: object) -> bytes:
    """``item`` as CBOR, each float at its shortest exact width, map keys in the order given."""
    return cbor2.dumps(item, encoders={float: _encode_float})


def _encode_float(encoder: cbor2.CBOREncoder, value: float) -> None:
    """The shortest CBOR float (half, single or double) that gives back exactly ``value``."""
    for initial, code in ((b"\xf9", ">e"), (b"\xfa", ">f")):
        try:
            packed = struct.pack(code, value)
        except OverflowError:
            continue
        back = struct.unpack(code, packed)[0]
        same = back == value and math.copysign(1, back) == math.copysign(1, value)
        if same or (math.isnan(value) and math.isnan(back)):
            encoder.write(initial + packed)
            return
    encoder.write(b"\xfb" + struct.pack(">d", value))
