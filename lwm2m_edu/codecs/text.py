"""text/plain (Content-Format 0): one value, written as text.

The simplest format, and the one to try first with a command-line CoAP client. It carries exactly
one resource or resource-instance value, and it does not say the value's type: the reader must
know it from the object model. The text forms (as Leshan and Anjay write them):

===========  ===============================================  ===================
type         text                                             example
===========  ===============================================  ===================
Integer      decimal                                          ``-42``
Unsigned     decimal                                          ``42``
Float        decimal, optionally with fraction and exponent   ``3.5``, ``1e+20``
Boolean      ``1`` or ``0``                                   ``1``
Time         seconds since 1970, decimal                      ``1367491215``
Objlnk       ``OID:IID``                                      ``66:0``
Opaque       base64 (standard alphabet, with padding)         ``q83v``
String       the UTF-8 text itself                            ``Open Mobile Alliance``
===========  ===============================================  ===================
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import NoReturn

from ..model import Model, ObjectLink, ResourceType, Value
from ..paths import Path
from . import CodecError, ContentFormat
from ._values import (
    resource_type,
    seconds_to_time,
    single_value_path,
    the_single_value,
    time_to_seconds,
    type_for_encoding,
)

__all__ = ["decode", "encode"]

FORMAT = ContentFormat.TEXT
_INTEGER = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def encode(values: dict[Path, Value], base: Path, model: Model) -> bytes:
    """The text of the one value at ``base``."""

    def fail(message: str) -> NoReturn:
        raise CodecError(message, format=FORMAT, path=base)

    single_value_path(base, model, "text/plain", fail)
    value = the_single_value(values, base, "text/plain", fail)
    kind = type_for_encoding(value, resource_type(model, base), fail)
    if kind is ResourceType.BOOLEAN:
        return b"1" if value else b"0"
    if kind is ResourceType.TIME:
        return str(time_to_seconds(value)).encode()  # type: ignore[arg-type]
    if kind is ResourceType.FLOAT:
        if not math.isfinite(value):  # type: ignore[arg-type]
            fail(f"{value!r} has no text form in LwM2M; only finite floats do")
        return repr(float(value)).encode()  # type: ignore[arg-type]
    if kind is ResourceType.OPAQUE:
        return base64.b64encode(value)  # type: ignore[arg-type]
    return str(value).encode()


def decode(payload: bytes, base: Path, model: Model) -> dict[Path, Value]:
    """``{base: value}``, typed by the model (a ``str`` when the model doesn't know it)."""

    def fail(message: str, offset: int | None = None) -> NoReturn:
        raise CodecError(message, format=FORMAT, path=base, offset=offset)

    single_value_path(base, model, "text/plain", fail)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail("the payload is not valid UTF-8", exc.start)
    kind = resource_type(model, base) or ResourceType.STRING
    return {base: _parse(text, kind, fail)}


def _parse(text: str, kind: ResourceType, fail) -> Value:
    if kind in (ResourceType.STRING, ResourceType.CORELNK):
        return text
    if kind is ResourceType.NONE:
        fail("an executable resource has no value")
    if kind in (ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.TIME):
        if not _INTEGER.fullmatch(text):
            fail(f"{text[:40]!r} is not a whole number, as a {kind.value} must be")
        if len(text) > 21:  # more digits than any 64-bit value has (and int() caps at 4300)
            fail(f"{text[:40]}… has {len(text)} digits: outside the range of a {kind.value}")
        number = int(text)
        if kind is ResourceType.TIME:
            return seconds_to_time(number, fail)
        low, high = (0, 2**64 - 1) if kind is ResourceType.UNSIGNED else (-(2**63), 2**63 - 1)
        if not low <= number <= high:
            fail(f"{number} is outside the range of a {kind.value}")
        return number
    if kind is ResourceType.FLOAT:
        if not _FLOAT.fullmatch(text):
            fail(f"{text[:40]!r} is not a decimal number")
        number = float(text)
        if not math.isfinite(number):
            fail(f"{text[:40]!r} is too large for a Float")
        return number
    if kind is ResourceType.BOOLEAN:
        if text not in ("0", "1"):
            fail(f"a Boolean is '1' or '0' in text/plain, not {text[:40]!r}")
        return text == "1"
    if kind is ResourceType.OBJLNK:
        try:
            return ObjectLink.parse(text)
        except ValueError as exc:
            fail(str(exc))
    # Opaque
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        fail("an Opaque value in text/plain must be base64 (standard alphabet, with padding)")
