"""application/octet-stream (Content-Format 42): one Opaque value, the bytes themselves.

This is how a firmware image travels in a push update: the server writes ``/5/0/0`` Package with
Content-Format 42, block by block. Only Opaque resources can be carried this way.
"""

from __future__ import annotations

from typing import NoReturn

from ..model import Model, ResourceType, Value
from ..paths import Path
from . import CodecError, ContentFormat
from ._values import resource_type, single_value_path, the_single_value, type_for_encoding

__all__ = ["decode", "encode"]

FORMAT = ContentFormat.OPAQUE


def _check_opaque(base: Path, model: Model, fail) -> None:
    single_value_path(base, model, "opaque", fail)
    kind = resource_type(model, base)
    if kind not in (None, ResourceType.OPAQUE):
        fail(f"opaque (42) carries only Opaque resources; {base} is a {kind.value}")


def encode(values: dict[Path, Value], base: Path, model: Model) -> bytes:
    def fail(message: str) -> NoReturn:
        raise CodecError(message, format=FORMAT, path=base)

    _check_opaque(base, model, fail)
    value = the_single_value(values, base, "opaque", fail)
    type_for_encoding(value, ResourceType.OPAQUE, fail)
    return bytes(value)  # type: ignore[arg-type]


def decode(payload: bytes, base: Path, model: Model) -> dict[Path, Value]:
    def fail(message: str) -> NoReturn:
        raise CodecError(message, format=FORMAT, path=base)

    _check_opaque(base, model, fail)
    return {base: payload}
