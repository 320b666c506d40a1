"""Content formats: how LwM2M values travel inside CoAP payloads.

Every LwM2M payload is tagged with a CoAP Content-Format number, and a server asks for the one it
wants with the Accept option. The formats differ in what they can carry:

==============  =====  ======================================================================
format          CF     carries
==============  =====  ======================================================================
text/plain      0      one value, as text (opaque as base64)
link-format     40     a list of links with attributes: Register, Discover (see ``linkformat``)
opaque          42     one opaque value, the raw bytes (``/5/0/0`` Package)
CBOR            60     one value, as one CBOR data item                          [LwM2M 1.1]
SenML JSON      110    any set of values, each with its full path and type       [LwM2M 1.1]
SenML CBOR      112    the same as SenML JSON, in CBOR                           [LwM2M 1.1]
OMA TLV         11542  instances and resources, binary, **without** types        [LwM2M 1.0]
LwM2M CBOR      11544  nested maps keyed by ids, typed                           [LwM2M 1.2]
==============  =====  ======================================================================

The two entry points treat every format alike::

    encode({Path("/3/0/9"): 95}, ContentFormat.TEXT, base="/3/0/9")  == b"95"
    decode(b"95", ContentFormat.TEXT, base="/3/0/9")                  == {Path("/3/0/9"): 95}

``values`` maps each resource path (``/O/I/R``), or resource-instance path (``/O/I/R/RI``) for
multiple resources, to its typed Python value; ``base`` is the path of the request (what was
read or written). Formats that don't say a value's type (TLV, text) use the ``model`` to learn it.

Anything malformed raises ``CodecError``, which names the format, the path and the byte offset
where it can; a CoAP endpoint answers it with 4.00 Bad Request. A format we don't implement raises
``UnsupportedContentFormat`` (answered with 4.15 Unsupported Content-Format).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from functools import cache
from typing import Protocol

from ..model import DEFAULT_MODEL, Model, Value
from ..paths import Path, PathError

__all__ = [
    "CodecError",
    "ContentFormat",
    "UnsupportedContentFormat",
    "decode",
    "encode",
]


class ContentFormat(IntEnum):
    """CoAP Content-Format numbers used by LwM2M (the values are the numbers on the wire)."""

    TEXT = 0  #: text/plain;charset=utf-8 — a single value as text
    LINK_FORMAT = 40  #: application/link-format — Register payloads, Discover answers
    OPAQUE = 42  #: application/octet-stream — a single opaque value
    CBOR = 60  #: application/cbor — a single value as one CBOR item [1.1]
    SENML_JSON = 110  #: application/senml+json [1.1]
    SENML_CBOR = 112  #: application/senml+cbor [1.1]
    LEGACY_TLV = 1542  #: TLV under its pre-1.0 number, still sent by some peers
    LEGACY_JSON = 1543  #: OMA JSON under its pre-1.0 number (not implemented)
    TLV = 11542  #: application/vnd.oma.lwm2m+tlv [1.0]
    OMA_JSON = 11543  #: application/vnd.oma.lwm2m+json [1.0] (legacy, not implemented)
    LWM2M_CBOR = 11544  #: application/vnd.oma.lwm2m+cbor [1.2]

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]

    @property
    def label(self) -> str:
        """A short human name with the number, e.g. ``"SenML CBOR (112)"``."""
        return f"{_LABELS.get(self, self.name)} ({self.value})"


_MEDIA_TYPES = {
    ContentFormat.TEXT: "text/plain;charset=utf-8",
    ContentFormat.LINK_FORMAT: "application/link-format",
    ContentFormat.OPAQUE: "application/octet-stream",
    ContentFormat.CBOR: "application/cbor",
    ContentFormat.SENML_JSON: "application/senml+json",
    ContentFormat.SENML_CBOR: "application/senml+cbor",
    ContentFormat.LEGACY_TLV: "application/vnd.oma.lwm2m+tlv",
    ContentFormat.LEGACY_JSON: "application/vnd.oma.lwm2m+json",
    ContentFormat.TLV: "application/vnd.oma.lwm2m+tlv",
    ContentFormat.OMA_JSON: "application/vnd.oma.lwm2m+json",
    ContentFormat.LWM2M_CBOR: "application/vnd.oma.lwm2m+cbor",
}


_LABELS = {
    ContentFormat.TEXT: "text/plain",
    ContentFormat.LINK_FORMAT: "link-format",
    ContentFormat.OPAQUE: "opaque",
    ContentFormat.SENML_JSON: "SenML JSON",
    ContentFormat.SENML_CBOR: "SenML CBOR",
    ContentFormat.LEGACY_TLV: "TLV",
    ContentFormat.TLV: "TLV",
    ContentFormat.OMA_JSON: "OMA JSON",
    ContentFormat.LEGACY_JSON: "OMA JSON",
    ContentFormat.LWM2M_CBOR: "LwM2M CBOR",
}


class CodecError(ValueError):
    """A payload (or a set of values) can't be decoded (or encoded) in a content format.

    ``format``, ``path`` and ``offset`` say where, when known; ``str()`` says it in words.
    """

    def __init__(
        self,
        message: str,
        *,
        format: ContentFormat | None = None,
        path: Path | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = message
        self.format = format
        self.path = path
        self.offset = offset
        where = []
        if format is not None:
            where.append(format.label)
        if path is not None:
            where.append(f"at {path}")
        if offset is not None:
            where.append(f"byte {offset}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class UnsupportedContentFormat(CodecError):
    """The content format is unknown or not implemented here (CoAP 4.15 / 4.06)."""


class _Codec(Protocol):
    """What each format module (or object) offers the two entry points."""

    def encode(self, values: dict[Path, Value], base: Path, model: Model) -> bytes: ...

    def decode(self, payload: bytes, base: Path, model: Model) -> dict[Path, Value]: ...


def _as_path(path: Path | str, role: str) -> Path:
    try:
        return Path(path)
    except PathError as exc:
        raise CodecError(f"the {role} is not a valid path: {exc}") from None


@cache
def _codecs() -> dict[ContentFormat, _Codec]:
    # Imported here, not at the top: the format modules import ContentFormat and CodecError.
    from . import cbor, lwm2m_cbor, opaque, senml, text, tlv

    return {
        ContentFormat.TEXT: text,
        ContentFormat.OPAQUE: opaque,
        ContentFormat.CBOR: cbor,
        ContentFormat.SENML_JSON: senml.JSON,
        ContentFormat.SENML_CBOR: senml.CBOR,
        ContentFormat.TLV: tlv,
        ContentFormat.LEGACY_TLV: tlv,
        ContentFormat.LWM2M_CBOR: lwm2m_cbor,
    }


def _codec(content_format: int) -> tuple[ContentFormat, _Codec]:
    try:
        fmt = ContentFormat(content_format)
    except ValueError:
        raise UnsupportedContentFormat(f"unknown content format {content_format}") from None
    table = _codecs()
    if fmt is ContentFormat.LINK_FORMAT:
        raise UnsupportedContentFormat(
            "link-format (40) carries links, not values: use lwm2m_edu.codecs.linkformat",
            format=fmt,
        )
    if fmt not in table:
        raise UnsupportedContentFormat(
            f"{fmt.media_type} ({fmt.value}) is a legacy format this package does not implement; "
            "use SenML JSON (110) or SenML CBOR (112)",
            format=fmt,
        )
    return fmt, table[fmt]


def encode(
    values: Mapping[Path | str, Value],
    content_format: int,
    base: Path | str,
    *,
    model: Model = DEFAULT_MODEL,
) -> bytes:
    """Encode ``values`` (path → value) as the payload for a request or response on ``base``."""
    fmt, codec = _codec(content_format)
    base_path = _as_path(base, "base path")
    typed = {}
    for key, value in values.items():
        path = _as_path(key, "value's path")
        if not path.startswith(base_path):
            raise CodecError(f"value for {path} is not below the base path {base_path}", format=fmt)
        typed[path] = value
    return codec.encode(typed, base_path, model)


def decode(
    payload: bytes,
    content_format: int,
    base: Path | str,
    *,
    model: Model = DEFAULT_MODEL,
) -> dict[Path, Value]:
    """Decode ``payload`` sent to or from ``base`` into a dict of path → typed value."""
    fmt, codec = _codec(content_format)
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    base_path = _as_path(base, "base path")
    values = codec.decode(bytes(payload), base_path, model)
    for path in values:
        if not path.startswith(base_path):
            raise CodecError(f"the payload names {path}, outside {base_path}", format=fmt)
    return values
