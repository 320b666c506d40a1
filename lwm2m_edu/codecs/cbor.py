"""application/cbor (Content-Format 60): one value, as one CBOR data item.  [LwM2M 1.1]

Like text/plain, this format carries exactly one resource or resource-instance value, the one at
the request path. Unlike text/plain, the bytes say the value's type: ``18 2a`` is the integer 42,
``f5`` is true, ``43 abcdef`` three opaque bytes. ``_cbor_items`` lists which CBOR item stands
for which LwM2M type; LwM2M CBOR (11544) uses the very same items for its leaves.

Examples, for a read of ``/3/0/13`` Current Time and ``/3/0/22/0`` ExtDevInfo::

    c1 1a 5182428f      tag 1 (epoch time) around 1367491215 -> 2013-05-02 10:40:15 UTC
    64 36363a30         the text "66:0"                      -> ObjectLink(66, 0)

The payload must be exactly one item: bytes after it are an error, and so is an empty payload.
"""

from __future__ import annotations

from typing import NoReturn

from ..model import Model, Value
from ..paths import Path
from . import CodecError, ContentFormat
from ._cbor_items import encode_value, item_to_value, load_item
from ._values import resource_type, single_value_path, the_single_value

__all__ = ["decode", "encode"]

FORMAT = ContentFormat.CBOR
_NAME = "CBOR (60)"

#: A leaf needs at most a tag around an array (tag 4 ``[exponent, mantissa]``): 2 levels.
_MAX_DEPTH = 4


def encode(values: dict[Path, Value], base: Path, model: Model) -> bytes:
    """The CBOR item of the one value at ``base``."""

    def fail(message: str) -> NoReturn:
        raise CodecError(message, format=FORMAT, path=base)

    single_value_path(base, model, _NAME, fail)
    value = the_single_value(values, base, _NAME, fail)
    return encode_value(value, resource_type(model, base), fail)


def decode(payload: bytes, base: Path, model: Model) -> dict[Path, Value]:
    """``{base: value}``, typed by the model (the item's natural type when the model can't say)."""

    def fail(message: str, offset: int | None = None) -> NoReturn:
        raise CodecError(message, format=FORMAT, path=base, offset=offset)

    single_value_path(base, model, _NAME, fail)
    item = load_item(payload, fail, max_depth=_MAX_DEPTH, format_name=_NAME)
    return {base: item_to_value(item, resource_type(model, base), fail)}
