"""LwM2M paths: ``/Object/Instance/Resource/ResourceInstance``.

Everything an LwM2M server can address on a client has a path of up to four numeric levels::

    /                 the root (Bootstrap-Delete, Read-Composite, Write-Composite)
    /5                Object 5, Firmware Update
    /5/0              its instance 0
    /5/0/3            resource 3 of that instance, State
    /3/0/11/0         instance 0 of the multi-instance resource 11 (Error Code)  [LwM2M 1.1]

On the wire each level is one CoAP Uri-Path option ("5", "0", "3"). Ids are 16-bit unsigned
integers, 0..65534; 65535 is reserved by the specification (it means "no id", e.g. an invalid
Short Server ID), so it never appears in a path.

``Path`` is immutable and hashable, sorts by its ids (so ``/3/0/2`` < ``/3/0/10``), and its
``str()`` is the canonical text: ``str(Path("/5/0/3")) == "/5/0/3"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

__all__ = ["MAX_ID", "Level", "Path", "PathError"]

#: The largest id a path may use. 65535 (0xFFFF) is reserved by the specification.
MAX_ID = 65534


class PathError(ValueError):
    """A path is malformed: the message quotes the input and says what is wrong."""


class Level(IntEnum):
    """How deep a path reaches; the value is the number of ids in it."""

    ROOT = 0  #: ``/``
    OBJECT = 1  #: ``/O``
    INSTANCE = 2  #: ``/O/I``
    RESOURCE = 3  #: ``/O/I/R``
    RESOURCE_INSTANCE = 4  #: ``/O/I/R/RI``

    @property
    def label(self) -> str:
        """The level in words: ``"object instance"``, ``"resource"``, ..."""
        return _LEVEL_LABELS[self]


_LEVEL_LABELS = {
    Level.ROOT: "root",
    Level.OBJECT: "object",
    Level.INSTANCE: "object instance",
    Level.RESOURCE: "resource",
    Level.RESOURCE_INSTANCE: "resource instance",
}


class Path:
    """An LwM2M path. Build it from text or from ids::

        Path("/5/0/3")        Path(5, 0, 3)        Path("/")        Path()

    ``path.ids`` is the tuple of ids, ``path.level`` says how deep it goes, ``path.parent`` drops
    the last id and ``path / 7`` (or ``path.child(7)``) adds one.
    """

    __slots__ = ("_ids",)

    _ids: tuple[int, ...]

    def __init__(self, *parts: str | int | Path) -> None:
        if len(parts) == 1 and isinstance(parts[0], Path):
            self._ids = parts[0]._ids
        elif len(parts) == 1 and isinstance(parts[0], str):
            self._ids = _parse(parts[0])
        else:
            self._ids = _checked_ids(parts)

    @classmethod
    def from_ids(cls, ids: Iterable[int]) -> Path:
        """The path made of ``ids``, e.g. ``Path.from_ids((5, 0, 3))``."""
        return cls(*ids)

    @classmethod
    def from_uri_path(cls, segments: Iterable[str]) -> Path:
        """The path named by CoAP Uri-Path option values, e.g. ``("5", "0", "3")``."""
        segments = tuple(segments)
        return cls("/" + "/".join(segments))

    # -- the parts ----------------------------------------------------------------------------

    @property
    def ids(self) -> tuple[int, ...]:
        return self._ids

    @property
    def level(self) -> Level:
        return Level(len(self._ids))

    @property
    def object_id(self) -> int | None:
        return self._id_at(0)

    @property
    def instance_id(self) -> int | None:
        return self._id_at(1)

    @property
    def resource_id(self) -> int | None:
        return self._id_at(2)

    @property
    def resource_instance_id(self) -> int | None:
        return self._id_at(3)

    def _id_at(self, index: int) -> int | None:
        return self._ids[index] if len(self._ids) > index else None

    @property
    def is_root(self) -> bool:
        return not self._ids

    @property
    def parent(self) -> Path:
        """The path one level up; the root has no parent."""
        if not self._ids:
            raise PathError("the root path '/' has no parent")
        return Path.from_ids(self._ids[:-1])

    def child(self, child_id: int) -> Path:
        """The path one level down, e.g. ``Path("/5/0").child(3) == Path("/5/0/3")``."""
        return Path.from_ids((*self._ids, child_id))

    def __truediv__(self, child_id: int) -> Path:
        return self.child(child_id)

    def startswith(self, prefix: Path) -> bool:
        """True when ``prefix`` is this path or one of its ancestors (``/`` is everyone's)."""
        return self._ids[: len(prefix._ids)] == prefix._ids

    def relative_to(self, base: Path) -> tuple[int, ...]:
        """The ids below ``base``: ``Path("/3/0/6/1").relative_to(Path("/3/0")) == (6, 1)``."""
        if not self.startswith(base):
            raise PathError(f"'{self}' is not below '{base}'")
        return self._ids[len(base._ids) :]

    @property
    def uri_path(self) -> tuple[str, ...]:
        """The CoAP Uri-Path option values: ``("5", "0", "3")``."""
        return tuple(str(i) for i in self._ids)

    # -- value semantics ----------------------------------------------------------------------

    def __str__(self) -> str:
        return "/" + "/".join(str(i) for i in self._ids)

    def __repr__(self) -> str:
        return f"Path('{self}')"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Path):
            return self._ids == other._ids
        return NotImplemented

    def __lt__(self, other: Path) -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._ids < other._ids

    def __le__(self, other: Path) -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._ids <= other._ids

    def __hash__(self) -> int:
        return hash(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self):
        return iter(self._ids)


def _parse(text: str) -> tuple[int, ...]:
    if not isinstance(text, str):
        raise PathError(f"a path is text such as '/5/0/3', not {type(text).__name__}")
    if not text.startswith("/"):
        raise PathError(f"path {text!r} must start with '/', as in '/5/0/3'")
    if text == "/":
        return ()
    segments = text[1:].split("/")
    if len(segments) > len(Level) - 1:
        raise PathError(
            f"path {text!r} has {len(segments)} levels; LwM2M paths have at most 4 "
            "(/Object/Instance/Resource/ResourceInstance)"
        )
    ids = []
    for position, segment in enumerate(segments):
        level_name = Level(position + 1).label
        if segment == "":
            where = "a trailing '/'" if position == len(segments) - 1 else "an empty level ('//')"
            raise PathError(f"path {text!r} has {where}; write it like '/5/0/3'")
        if not segment.isascii() or not segment.isdigit():
            raise PathError(f"path {text!r}: the {level_name} id {segment!r} is not a number")
        if len(segment) > 1 and segment.startswith("0"):
            raise PathError(
                f"path {text!r}: the {level_name} id {segment!r} has a leading zero; "
                f"the canonical form is {str(int(segment))!r}"
            )
        ids.append(_checked_id(int(segment), level_name, text))
    return tuple(ids)


def _checked_ids(parts: Iterable[object]) -> tuple[int, ...]:
    ids = tuple(parts)
    if len(ids) > len(Level) - 1:
        raise PathError(f"ids {ids!r}: LwM2M paths have at most 4 levels")
    for position, value in enumerate(ids):
        level_name = Level(position + 1).label
        if isinstance(value, bool) or not isinstance(value, int):
            raise PathError(
                f"ids {ids!r}: the {level_name} id {value!r} is not an int; "
                "pass ids as ints, Path(5, 0, 3), or one string, Path('/5/0/3')"
            )
        _checked_id(value, level_name, ids)
    return ids


def _checked_id(value: int, level_name: str, source: object) -> int:
    if value > MAX_ID:
        hint = " (65535 is reserved by the LwM2M specification)" if value == 65535 else ""
        raise PathError(f"path {source!r}: the {level_name} id {value} exceeds {MAX_ID}{hint}")
    if value < 0:
        raise PathError(f"path {source!r}: the {level_name} id {value} is negative")
    return value
