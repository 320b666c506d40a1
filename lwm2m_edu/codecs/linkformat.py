"""CoRE Link Format (RFC 6690, Content-Format 40): the lists of links LwM2M sends.

Link format carries no values. It says *what exists* and *which attributes apply*, and LwM2M uses it
in three places:

* **Register** (client → server, the payload of ``POST /rd?ep=...``): the objects and instances
  the client has. ``/0`` Security and ``/21`` OSCORE are never listed (they hold keys)::

      </>;rt="oma.lwm2m";ct=110,</1>;ver=1.1,</1/0>,</3/0>,</5>

* **Discover** (server → client, ``GET`` with Accept 40): the paths below the target with the
  attributes in force there (``dim`` = number of instances of a multiple resource)::

      </3>;ver=1.0;pmin=10;pmax=60,</3/0>,</3/0/6>;dim=2,</3/0/6/0>,</3/0/6/1>,</3/0/9>;gt=50

* **Bootstrap-Discover**: what the client holds, with ``ssid`` and ``uri`` of each server::

      </>;lwm2m=1.2,</0/0>;ssid=10;uri="coaps://server_1.example.com",</1/0/>;ssid=10,</3/0>

The grammar, as far as LwM2M needs it (RFC 6690 §2)::

    payload   = [ link *( "," link ) ]
    link      = "<" target ">" *( ";" name [ "=" ( token / quoted-string ) ] )
    token     = 1*( letters, digits and  ! # $ % & ' ( ) * + - . / : < = > ? @ [ ] ^ _ ` { | } ~ )
    quoted    = DQUOTE *( any character but " and \\ and controls  /  "\\" character ) DQUOTE

So a comma separates links only *outside* ``<...>`` and outside quotes: ``</a,b>`` is one link and
``;title="x, y"`` one attribute. This parser also tolerates whitespace (space, tab, CR, LF)
around ``,`` and ``;`` — the LwM2M specification's own example writes ``</>;ct=110, </1/0>``.

**Attribute values in Python.** A link's ``attributes`` maps each name, in the order written, to:

=================================================  =========================================
attribute                                          Python value
=================================================  =========================================
``pmin pmax epmin epmax dim ssid hqmax edge con``  ``int`` (0 .. 2**64-1)
``gt lt st``                                       ``float`` (written shortest: ``50``, ``0.5``)
anything else (``ver lwm2m rt ct uri`` ...)        ``str``, as written (quotes removed)
a name with no value (``;obs``)                    ``None``
=================================================  =========================================

Numeric attributes may arrive quoted (``pmin="10"``) — peers do both — and are read as numbers all
the same. When encoding, a ``str`` value is written bare when it is a token, and quoted (with
``\\`` before ``"``, ``\\`` and control characters) when it isn't — an empty string, spaces, commas,
semicolons, non-ASCII. ``rt``, ``if``, ``uri``, ``title`` and ``anchor`` are always quoted, as
RFC 6690 and the reference clients write them. So ``ct="110"`` is written ``ct=110`` (Wakaama
refuses a quoted ``ct``) and a list ``ct="60 110 112"`` stays quoted.

Attribute names are case-sensitive here (LwM2M writes them lower-case), and a name may appear
only once per link.

**Limits.** Parsing is one pass over the text (linear time). Payloads over ``MAX_PAYLOAD`` (64 KiB)
are refused; LwM2M Register payloads are a few hundred bytes. Every error is a ``CodecError`` whose
``offset`` is the byte offset (for ``bytes`` input) or character offset (for ``str`` input) of the
problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, NoReturn

from ..paths import Level, Path, PathError
from . import CodecError, ContentFormat

__all__ = [
    "FLOAT_ATTRIBUTES",
    "FORMAT",
    "INT_ATTRIBUTES",
    "MAX_PAYLOAD",
    "AttributeValue",
    "Link",
    "RegisteredObject",
    "Registration",
    "encode_links",
    "parse_links",
    "parse_registration",
    "registration_links",
]

FORMAT = ContentFormat.LINK_FORMAT

#: The largest payload ``parse_links`` accepts, in bytes (UTF-8).
MAX_PAYLOAD = 64 * 1024

#: Attributes whose value is a whole number: read as ``int``.
INT_ATTRIBUTES = frozenset(
    {"pmin", "pmax", "epmin", "epmax", "dim", "ssid", "hqmax", "edge", "con"}
)
#: Attributes whose value is a decimal number: read as ``float``.
FLOAT_ATTRIBUTES = frozenset({"gt", "lt", "st"})
#: String attributes written quoted even when they would be a valid token.
_ALWAYS_QUOTED = frozenset({"rt", "if", "uri", "title", "anchor"})

#: The root link's resource type, marking where the LwM2M objects are (``</>;rt="oma.lwm2m"``).
LWM2M_RESOURCE_TYPE = "oma.lwm2m"
#: Objects a client never lists in Register: /0 Security and /21 OSCORE.
_NEVER_REGISTERED = frozenset({0, 21})

AttributeValue = str | int | float | None

_MAX_INT = 2**64 - 1
_MAX_INT_DIGITS = 20

# A URI-reference (RFC 3986 characters; % must start a %XX escape).
_TARGET = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")
_NAME = re.compile(r"[A-Za-z0-9!#$&+\-.^_`|~]+")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'()*+\-./:<=>?@\[\]^_`{|}~]+")
_QUOTED_RUN = re.compile(r'[^"\\\x00-\x08\x0a-\x1f\x7f]*')
_SPACE = re.compile(r"[ \t\r\n]*")
_UINT = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


# -- one link ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Link:
    """One link: a target (the text between ``<`` and ``>``) and its attributes, in order.

    ``Link("/3/0/6", {"dim": 2})`` is written ``</3/0/6>;dim=2``. Values follow the table in the
    module docstring (``int`` for ``pmin``..., ``float`` for ``gt``/``lt``/``st``, ``str`` else,
    ``None`` for a name without value); a wrong type raises ``TypeError``, a value that can't be
    written raises ``CodecError``. Two links are equal when target and attributes are equal.
    """

    target: str
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.target, str):
            raise TypeError(
                f"a link target is text such as '/3/0', not {type(self.target).__name__}"
            )
        if not _TARGET.fullmatch(self.target):
            raise CodecError(
                f"link target {self.target!r} is not a URI reference; LwM2M targets look like "
                "'/3/0' (other characters must be %-escaped)",
                format=FORMAT,
            )
        checked: dict[str, AttributeValue] = {}
        for name, value in dict(self.attributes).items():
            checked[name] = _checked_attribute(name, value)
        object.__setattr__(self, "attributes", MappingProxyType(checked))

    def lwm2m_path(self, root: str = "/") -> Path | None:
        """The LwM2M path this link names, or ``None`` when it names none.

        ``root`` is where the client's objects sit: ``"/"`` normally, or an alternate path such as
        ``"/lwm2m"`` (then ``</lwm2m/1/101>`` is ``/1/101`` and ``</lwm2m>`` is ``/``). One
        trailing ``/`` is tolerated, as in ``</1/0/>`` from Bootstrap-Discover.
        """
        root = root.rstrip("/")
        target = self.target
        if root:
            if target == root:
                return Path()
            if not target.startswith(root + "/"):
                return None
            target = target[len(root) :]
        if len(target) > 1 and target.endswith("/"):
            target = target[:-1]
        try:
            return Path(target)
        except PathError:
            return None

    @property
    def path(self) -> Path | None:
        """``lwm2m_path("/")``: the target as an LwM2M path, or ``None`` if it isn't one."""
        return self.lwm2m_path("/")

    def __str__(self) -> str:
        parts = [f"<{self.target}>"]
        for name, value in self.attributes.items():
            parts.append(name if value is None else f"{name}={_format_value(name, value)}")
        return ";".join(parts)

    def __repr__(self) -> str:
        if not self.attributes:
            return f"Link({self.target!r})"
        return f"Link({self.target!r}, {dict(self.attributes)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Link):
            return NotImplemented
        return self.target == other.target and dict(self.attributes) == dict(other.attributes)

    def __hash__(self) -> int:
        return hash((self.target, frozenset(self.attributes.items())))


def _checked_attribute(name: object, value: object) -> AttributeValue:
    if not isinstance(name, str):
        raise TypeError(f"an attribute name is text such as 'pmin', not {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise CodecError(
            f"attribute name {name!r} is not a valid name (letters, digits and !#$&+-.^_`|~)",
            format=FORMAT,
        )
    if value is None:
        return None
    if name in INT_ATTRIBUTES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"attribute {name!r} is a whole number, not {value!r}")
        if not 0 <= value <= _MAX_INT:
            raise CodecError(f"attribute {name}={value} is outside 0..2**64-1", format=FORMAT)
        return value
    if name in FLOAT_ATTRIBUTES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"attribute {name!r} is a number, not {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise CodecError(f"attribute {name}={value!r}: only finite numbers", format=FORMAT)
        return number
    if not isinstance(value, str):
        raise TypeError(
            f"attribute {name!r} takes a string value (e.g. ver='1.1', ct='110'), not {value!r}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError(
            f"attribute {name!r}: the value is not valid Unicode", format=FORMAT
        ) from None
    return value


def _format_value(name: str, value: str | int | float) -> str:
    if isinstance(value, float):
        # Shortest text that reads back as the same float: 50.0 → "50", 0.5 → "0.5".
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if name not in _ALWAYS_QUOTED and _TOKEN.fullmatch(value):
        return value
    return '"' + _NEEDS_ESCAPE.sub(lambda m: "\\" + m.group(), value) + '"'


# -- a list of links --------------------------------------------------------------------------


def encode_links(links: Iterable[Link]) -> bytes:
    """The link-format payload for ``links``, comma-separated without spaces, UTF-8."""
    texts = []
    for link in links:
        if not isinstance(link, Link):
            raise TypeError(f"encode_links takes Link objects, not {type(link).__name__}")
        texts.append(str(link))
    return ",".join(texts).encode("utf-8")


def parse_links(payload: bytes | str) -> list[Link]:
    """The links in a link-format payload (``b""`` is the empty list)."""
    return [link for _, link in _parse(payload)]


def _parse(payload: bytes | bytearray | memoryview | str) -> list[tuple[int, Link]]:
    """Each link with the offset where it starts (bytes or characters, as the input)."""
    if isinstance(payload, str):
        text = payload
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise CodecError(
                "the text contains a lone surrogate, which has no UTF-8 form",
                format=FORMAT,
                offset=exc.start,
            ) from None
        if size > MAX_PAYLOAD:
            raise CodecError(
                f"the payload is {size} bytes; this parser reads at most {MAX_PAYLOAD}",
                format=FORMAT,
                offset=MAX_PAYLOAD,
            )
        return _Parser(text, None).links()
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"a link-format payload is bytes or str, not {type(payload).__name__}")
    raw = bytes(payload)
    if len(raw) > MAX_PAYLOAD:
        raise CodecError(
            f"the payload is {len(raw)} bytes; this parser reads at most {MAX_PAYLOAD}",
            format=FORMAT,
            offset=MAX_PAYLOAD,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(
            f"the payload is not valid UTF-8 (byte {raw[exc.start]:#04x})",
            format=FORMAT,
            offset=exc.start,
        ) from None
    return _Parser(text, raw).links()


class _Parser:
    """A one-pass reader over ``text``; ``raw`` is set when offsets should be bytes."""

    def __init__(self, text: str, raw: bytes | None) -> None:
        self.text = text
        self.raw = raw
        self.pos = 0
        # Byte offsets are counted forward from the last one reported, to stay linear.
        self._counted_chars = 0
        self._counted_bytes = 0

    def offset(self, char_offset: int) -> int:
        """``char_offset`` as reported: in bytes for bytes input (never before the last one)."""
        if self.raw is None:
            return char_offset
        self._counted_bytes += len(self.text[self._counted_chars : char_offset].encode("utf-8"))
        self._counted_chars = char_offset
        return self._counted_bytes

    def fail(self, message: str, at: int | None = None) -> NoReturn:
        raise CodecError(message, format=FORMAT, offset=self.offset(self.pos if at is None else at))

    def here(self) -> str:
        """What is at the current position, quoted for an error message."""
        if self.pos >= len(self.text):
            return "the end of the payload"
        return repr(self.text[self.pos : self.pos + 12])

    def skip_space(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def links(self) -> list[tuple[int, Link]]:
        result: list[tuple[int, Link]] = []
        self.skip_space()
        if self.pos == len(self.text):
            return result
        while True:
            start = self.pos
            result.append((self.offset(start), self.link()))
            self.skip_space()
            if self.pos == len(self.text):
                return result
            if self.text[self.pos] != ",":
                self.fail(
                    f"expected ',' between links or the end of the payload, found {self.here()}"
                )
            self.pos += 1
            self.skip_space()

    def link(self) -> Link:
        text = self.text
        if self.pos >= len(text) or text[self.pos] != "<":
            hint = " (a trailing ',' ?)" if self.pos >= len(text) else ""
            self.fail(f"expected '<' to start a link such as '</3/0>', found {self.here()}{hint}")
        self.pos += 1
        match = _TARGET.match(text, self.pos)
        end = match.end() if match else self.pos
        if end >= len(text):
            self.fail("unterminated '<': the link target has no closing '>'", self.pos - 1)
        if text[end] != ">":
            self.pos = end
            self.fail(f"character {text[end]!r} is not allowed in a link target")
        if end == self.pos:
            self.fail("an empty target '<>'; LwM2M targets look like '</3/0>'")
        target = text[self.pos : end]
        self.pos = end + 1
        attributes: dict[str, AttributeValue] = {}
        while True:
            self.skip_space()
            if self.pos >= len(text) or text[self.pos] != ";":
                break
            self.pos += 1
            self.skip_space()
            name_at = self.pos
            match = _NAME.match(text, self.pos)
            if not match:
                self.fail(f"expected an attribute name after ';', found {self.here()}")
            name = match.group()
            if name in attributes:
                self.fail(f"attribute {name!r} appears twice in the link to {target!r}", name_at)
            self.pos = match.end()
            if self.pos < len(text) and text[self.pos] == "=":
                self.pos += 1
                attributes[name] = self.value(name)
            else:
                attributes[name] = None
        return Link(target, attributes)

    def value(self, name: str) -> AttributeValue:
        text = self.text
        start = self.pos
        if start < len(text) and text[start] == '"':
            raw = self.quoted()
        else:
            match = _TOKEN.match(text, start)
            if not match and start < len(text) and text[start] not in ",; \t\r\n":
                self.fail(
                    f"attribute {name!r}: {text[start]!r} is not allowed in an unquoted value; "
                    "put the value in double quotes"
                )
            if not match:
                self.fail(
                    f"attribute {name!r} has '=' but no value (found {self.here()}); "
                    f'write {name!r} alone, or {name}="" for an empty string'
                )
            raw = match.group()
            self.pos = match.end()
        if name in INT_ATTRIBUTES:
            if not _UINT.fullmatch(raw) or len(raw) > _MAX_INT_DIGITS or int(raw) > _MAX_INT:
                self.fail(f"attribute {name}={raw[:40]!r} is not a whole number 0..2**64-1", start)
            return int(raw)
        if name in FLOAT_ATTRIBUTES:
            if not _DECIMAL.fullmatch(raw):
                self.fail(f"attribute {name}={raw[:40]!r} is not a decimal number", start)
            number = float(raw)
            if not math.isfinite(number):
                self.fail(f"attribute {name}={raw[:40]!r} is too large", start)
            return number
        return raw

    def quoted(self) -> str:
        text = self.text
        opening = self.pos
        self.pos += 1
        pieces = []
        while True:
            match = _QUOTED_RUN.match(text, self.pos)
            pieces.append(match.group())  # type: ignore[union-attr]
            self.pos = match.end()  # type: ignore[union-attr]
            if self.pos >= len(text):
                self.fail("unterminated quoted string: no closing '\"'", opening)
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(pieces)
            if char == "\\":
                if self.pos + 1 >= len(text):
                    self.fail("unterminated quoted string: it ends with a lone '\\'", opening)
                pieces.append(text[self.pos + 1])
                self.pos += 2
                continue
            self.fail(f"control character {char!r} inside a quoted string; escape it with '\\'")


# -- Register payloads ------------------------------------------------------------------------


class RegisteredObject(NamedTuple):
    """What a Register payload says about one object: its ``ver`` (``None`` = default) and
    instances."""

    version: str | None
    instances: tuple[int, ...]


@dataclass(frozen=True)
class Registration:
    """The server's view of a Register (or Update) payload.

    ``root_path`` is where the objects sit (``"/"`` or e.g. ``"/lwm2m"``), ``content_formats``
    the ``ct=`` list of the root link, ``objects`` maps each object id to its version and instance
    ids, in the order listed.
    """

    root_path: str = "/"
    content_formats: tuple[int, ...] = ()
    objects: Mapping[int, RegisteredObject] = field(default_factory=dict)


def registration_links(
    objects: Iterable[tuple[int, str | None, Iterable[int]]],
    *,
    content_formats: Iterable[int] = (),
    root_path: str = "/",
) -> list[Link]:
    """The links a client puts in its Register payload.

    ``objects`` gives ``(object_id, version, instance_ids)`` for each object; ``version`` is
    ``None`` when it is the default for the client's LwM2M version (the caller knows which). The
    rules, as Anjay Lite and Leshan apply them:

    * objects 0 (Security) and 21 (OSCORE) are left out, whatever ``objects`` says;
    * an object link ``</O>`` is written only when it says something: a ``ver`` or, for an object
      with no instances, that the object exists at all. Instances follow as ``</O/I>``;
    * objects and instances are sorted by id;
    * a root link ``</>;rt="oma.lwm2m"`` comes first when ``content_formats`` is given (it carries
      ``ct``) or when ``root_path`` is an alternate path such as ``"/lwm2m"``. One format is
      written ``ct=110``; several ``ct="110 112"``. Wakaama accepts only a single ``ct``, so
      advertise one when registering with it.

    ``registration_links([(1, "1.1", [0]), (3, None, [0]), (5, None, [])], content_formats=[110])``
    is ``</>;rt="oma.lwm2m";ct=110,</1>;ver=1.1,</1/0>,</3/0>,</5>``.
    """
    root = _checked_root(root_path)
    formats = tuple(content_formats)
    for cf in formats:
        if isinstance(cf, bool) or not isinstance(cf, int) or not 0 <= cf <= 0xFFFF:
            raise ValueError(f"content format {cf!r} is not a number 0..65535")
    table: dict[int, tuple[str | None, list[int]]] = {}
    for object_id, version, instance_ids in objects:
        Path(object_id)  # checks the id
        if object_id in table:
            raise ValueError(f"object {object_id} is listed twice")
        instances = sorted(set(instance_ids))
        for instance_id in instances:
            Path(object_id, instance_id)
        table[object_id] = (version, instances)

    prefix = "" if root == "/" else root
    links: list[Link] = []
    if formats or root != "/":
        attributes: dict[str, AttributeValue] = {"rt": LWM2M_RESOURCE_TYPE}
        if formats:
            attributes["ct"] = " ".join(str(cf) for cf in formats)
        links.append(Link(root, attributes))
    for object_id in sorted(table):
        if object_id in _NEVER_REGISTERED:
            continue
        version, instances = table[object_id]
        if version is not None or not instances:
            links.append(Link(f"{prefix}/{object_id}", {} if version is None else {"ver": version}))
        links.extend(Link(f"{prefix}/{object_id}/{i}") for i in instances)
    return links


def parse_registration(payload: bytes | str) -> Registration:
    """Read a Register payload as a server does.

    The root link is the one with ``rt="oma.lwm2m"``; without one, a ``</>`` link (as in
    ``</>;ct=110,...``) plays that part and the root path is ``/``. Every other link must name an
    object or an object instance under the root path, else ``CodecError``. An object's version is
    the ``ver`` of its object link; its instances are listed in payload order. Objects 0 and 21
    are kept if a client lists them (it should not): that is for the server to judge.
    """
    entries = _parse(payload)

    def fail(message: str, offset: int) -> NoReturn:
        raise CodecError(message, format=FORMAT, offset=offset)

    root_entries = [
        (offset, link)
        for offset, link in entries
        if LWM2M_RESOURCE_TYPE in str(link.attributes.get("rt") or "").split()
    ]
    if len(root_entries) > 1:
        fail(f'more than one link has rt="{LWM2M_RESOURCE_TYPE}"', root_entries[1][0])
    if root_entries:
        root_offset, root_link = root_entries[0]
        root = root_link.target.rstrip("/") or "/"
    else:
        root = "/"
        root_offset, root_link = next(
            ((offset, link) for offset, link in entries if link.target == "/"), (-1, None)
        )

    formats: list[int] = []
    if root_link is not None:
        ct = root_link.attributes.get("ct")
        for word in (ct or "").split() if isinstance(ct, str) else ():
            if not _UINT.fullmatch(word) or len(word) > 5 or int(word) > 0xFFFF:
                fail(f"ct={ct!r}: {word!r} is not a content format number", root_offset)
            formats.append(int(word))

    objects: dict[int, tuple[str | None, list[int]]] = {}
    for offset, link in entries:
        if link is root_link:
            continue
        path = link.lwm2m_path(root)
        if path is None or path.level not in (Level.OBJECT, Level.INSTANCE):
            fail(f"link <{link.target}> is not an object or object instance under {root!r}", offset)
        object_id = path.object_id
        assert object_id is not None
        version, instances = objects.setdefault(object_id, (None, []))
        if path.level is Level.OBJECT:
            ver = link.attributes.get("ver")
            objects[object_id] = (ver if isinstance(ver, str) else version, instances)
        elif path.instance_id not in instances:
            instances.append(path.instance_id)  # type: ignore[arg-type]
    return Registration(
        root_path=root,
        content_formats=tuple(formats),
        objects={oid: RegisteredObject(ver, tuple(inst)) for oid, (ver, inst) in objects.items()},
    )


def _checked_root(root_path: str) -> str:
    if root_path == "/":
        return root_path
    if (
        not isinstance(root_path, str)
        or not re.fullmatch(r"(/[A-Za-z0-9\-._~]+)+", root_path)
        or Link(root_path + "/0").path is not None
    ):
        raise ValueError(
            f"root path {root_path!r} must be '/' or an alternate path such as '/lwm2m' "
            "(no trailing '/', not itself an LwM2M path)"
        )
    return root_path
