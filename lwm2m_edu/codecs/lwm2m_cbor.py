"""application/vnd.oma.lwm2m+cbor (Content-Format 11544): nested maps keyed by ids.  [LwM2M 1.2]

The most compact LwM2M format: one CBOR map whose keys are ids, one level of the path per level of
maps, with the values as leaves. Object 3, instance 3, resource 3 = 25 is::

    {3: {3: {3: 25}}}          BF 03 BF 03 BF 03 18 19 FF FF FF      (as Anjay Lite writes it)

Three rules to know:

* **Paths are absolute.** The outer keys are always object ids, whatever was requested: a read of
  ``/3``, ``/3/3`` or ``/3/3/3`` answers with the same bytes. (SenML, by contrast, can shorten
  names with a base name.)
* **A key may be an array of ids** that stands for several levels at once, so these all mean
  ``/13/26/1`` = 42::

      {[13, 26, 1]: 42}        A1 83 0D 18 1A 01 18 2A
      {13: {26: {1: 42}}}      A1 0D A1 18 1A A1 01 18 2A
      {[13, 26]: {1: 42}}      A1 82 0D 18 1A A1 01 18 2A

* **Maps may be definite** (``A1`` = a map of one pair) **or indefinite** (``BF`` ... ``FF``, the
  length not known in advance, handy for a small device writing as it goes). Decoders accept both.

A leaf is a resource (``/O/I/R``) or a resource instance (``/O/I/R/RI``) value, written as the same
CBOR item CBOR (60) uses (see ``_cbor_items``); a leaf at object or instance level means nothing.
There are no timestamps: timestamped Send data needs SenML.

Our encoder writes indefinite maps, like Anjay Lite, with the paths in sorted order so that the
same values always give the same bytes. An empty read is the empty map ``BF FF``.
"""

from __future__ import annotations

from typing import NoReturn

import cbor2

from ..model import Model, Value
from ..paths import MAX_ID, Level, Path
from . import CodecError, ContentFormat
from ._cbor_items import describe, encode_value, item_to_value, load_item
from ._values import resource_type, value_path

__all__ = ["decode", "encode"]

FORMAT = ContentFormat.LWM2M_CBOR
_NAME = "LwM2M CBOR (11544)"

_BEGIN_MAP = b"\xbf"  #: major type 5 (map), additional info 31: indefinite length
_BREAK = b"\xff"  #: ends an indefinite-length item

#: How deep cbor2 may nest items: 4 levels of maps, an array key or a tag 4 leaf below them, and
#: some slack so that "5 levels of maps" gets our own explanation rather than cbor2's.
_MAX_CBOR_DEPTH = 8


# A tree of values on its way to the wire: id -> subtree, or id -> the encoded leaf item.
_Tree = dict[int, "_Tree | bytes"]


# -- encoding -----------------------------------------------------------------------------------


def encode(values: dict[Path, Value], base: Path, model: Model) -> bytes:
    """Nested indefinite maps from the root, in path order. ``base`` doesn't change the bytes."""
    tree: _Tree = {}
    for path in sorted(values):

        def fail(message: str, path: Path = path) -> NoReturn:
            raise CodecError(message, format=FORMAT, path=path)

        value_path(path, model, fail)
        leaf = encode_value(values[path], resource_type(model, path), fail)
        node = tree
        for position, child_id in enumerate(path.ids[:-1]):
            sub = node.setdefault(child_id, {})
            if isinstance(sub, bytes):
                fail(
                    f"{path} is a resource instance, but {Path.from_ids(path.ids[: position + 1])} "
                    "has a value of its own; a resource is either single or multiple"
                )
            node = sub
        node[path.ids[-1]] = leaf
    return _write_map(tree)


def _write_map(tree: _Tree) -> bytes:
    parts = [_BEGIN_MAP]
    for child_id, sub in tree.items():
        parts.append(cbor2.dumps(child_id))
        parts.append(sub if isinstance(sub, bytes) else _write_map(sub))
    parts.append(_BREAK)
    return b"".join(parts)


# -- decoding -----------------------------------------------------------------------------------


def decode(payload: bytes, base: Path, model: Model) -> dict[Path, Value]:
    """Every leaf as ``{absolute path: typed value}``; all of them must be at or below ``base``."""

    def fail(message: str, offset: int | None = None, path: Path = base) -> NoReturn:
        raise CodecError(message, format=FORMAT, path=path, offset=offset)

    top = load_item(payload, fail, max_depth=_MAX_CBOR_DEPTH, format_name=_NAME)
    if not isinstance(top, dict):
        fail(f"the payload must be one CBOR map, not {describe(top)}")
    leaves: dict[Path, object] = {}
    _collect(top, (), leaves, fail)

    values: dict[Path, Value] = {}
    for path, item in leaves.items():

        def fail_at(message: str, path: Path = path) -> NoReturn:
            fail(message, path=path)

        if path.level is Level.RESOURCE_INSTANCE and path.parent in leaves:
            fail_at(
                f"{path.parent} is given both a value and resource instances; a resource is "
                "either single or multiple"
            )
        if not path.startswith(base):
            fail_at(
                f"the payload holds {path}, which is not at or below the request path {base}; "
                "LwM2M CBOR paths are absolute, starting from the object id"
            )
        value_path(path, model, fail_at)
        values[path] = item_to_value(item, resource_type(model, path), fail_at)
    return values


def _collect(node: dict, prefix: tuple[int, ...], leaves: dict[Path, object], fail) -> None:
    """Walk one map below ``prefix`` (the ids so far), adding its leaves to ``leaves``."""
    here = Path.from_ids(prefix)
    for key, item in node.items():
        ids = prefix + _key_ids(key, here, fail)
        if len(ids) > len(Level) - 1:
            fail(
                f"key {_show(key)} under {here} makes a path of {len(ids)} levels; LwM2M paths "
                "have at most 4 (/object/instance/resource/resource-instance)",
                path=here,
            )
        path = Path.from_ids(ids)
        if isinstance(item, dict):
            if path.level is Level.RESOURCE_INSTANCE:
                fail(
                    f"{path} is a resource instance, so it holds a value, not a map; the maps "
                    "are nested 4 levels deep at most",
                    path=path,
                )
            _collect(item, ids, leaves, fail)
            continue
        if path.level < Level.RESOURCE:
            fail(
                f"{path} is a whole {path.level.label}, so it holds a map of ids, not "
                f"{describe(item)}; values sit at resource (/O/I/R) or resource-instance level",
                path=path,
            )
        if path in leaves:
            fail(
                f"{path} is given twice (the same path written with different keys, e.g. once as "
                "[3, 0] and once as nested maps)",
                path=path,
            )
        leaves[path] = item


def _key_ids(key: object, here: Path, fail) -> tuple[int, ...]:
    """The ids a map key stands for: an id, or a non-empty array of ids."""
    parts = key if isinstance(key, tuple | list) else (key,)
    if isinstance(key, tuple | list) and not parts:
        fail(
            f"under {here}, a key is an empty array; an array key holds at least one id", path=here
        )
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int):
            fail(
                f"under {here}, the key {_show(key)} is not an id: a key is an integer id or an "
                f"array of ids, here it holds {describe(part)}",
                path=here,
            )
        if not 0 <= part <= MAX_ID:
            fail(f"under {here}, the id {part} is outside 0..{MAX_ID}", path=here)
    return tuple(parts)


def _show(key: object) -> str:
    text = repr(list(key)) if isinstance(key, tuple) else repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


# -- both ways ----------------------------------------------------------------------------------
