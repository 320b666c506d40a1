"""Hypothesis strategies for LwM2M values, and a test object with a resource of every type.

Objects /0 /1 /3 /5 have no Float or Corelnk resource, so round-trip tests also use
``TYPED_OBJECT`` (id 3442, the id Leshan uses for its "LwM2M test object"): one single and one
multiple resource of every readable type.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from lwm2m_edu.model import (
    DEFAULT_MODEL,
    ObjectDef,
    ObjectLink,
    Operations,
    ResourceDef,
    ResourceType,
)
from lwm2m_edu.paths import MAX_ID, Path

VALUE_TYPES = [t for t in ResourceType if t is not ResourceType.NONE]

#: Resource ids in TYPED_OBJECT: single resource of type t at 10*i, multiple at 10*i + 1.
TYPED_OBJECT = ObjectDef.of(
    3442,
    "Typed test object",
    "1.0",
    multiple=True,
    mandatory=False,
    resources=[
        ResourceDef(
            10 * i + multiple,
            f"{t.value} {'multiple' if multiple else 'single'}",
            Operations.RW,
            t,
            multiple=bool(multiple),
        )
        for i, t in enumerate(VALUE_TYPES)
        for multiple in (0, 1)
    ],
)
TEST_MODEL = DEFAULT_MODEL.with_objects(TYPED_OBJECT)


def resource_id(kind: ResourceType, multiple: bool = False) -> int:
    return 10 * VALUE_TYPES.index(kind) + int(multiple)


ids = st.integers(min_value=0, max_value=MAX_ID)

times = st.integers(min_value=0, max_value=2**32).map(lambda s: datetime.fromtimestamp(s, UTC))

VALUE_STRATEGIES = {
    ResourceType.STRING: st.text(),
    ResourceType.CORELNK: st.text(),
    ResourceType.INTEGER: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    ResourceType.UNSIGNED: st.integers(min_value=0, max_value=2**64 - 1),
    ResourceType.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    ResourceType.BOOLEAN: st.booleans(),
    ResourceType.OPAQUE: st.binary(),
    ResourceType.TIME: times,
    ResourceType.OBJLNK: st.builds(ObjectLink, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
}


def values_of(kind: ResourceType) -> st.SearchStrategy:
    return VALUE_STRATEGIES[kind]


@st.composite
def single_resource(draw, kind: ResourceType | None = None) -> tuple[Path, object]:
    """A path /3442/I/R of a single resource and a value of its type."""
    kind = kind or draw(st.sampled_from(VALUE_TYPES))
    path = Path(3442, draw(ids), resource_id(kind))
    return path, draw(values_of(kind))


@st.composite
def instance_values(draw, object_id: int = 3442) -> tuple[Path, dict[Path, object]]:
    """An instance path /3442/I and some resource values below it (multiple ones as instances)."""
    instance = Path(object_id, draw(ids))
    values: dict[Path, object] = {}
    for kind in draw(st.lists(st.sampled_from(VALUE_TYPES), unique=True)):
        if draw(st.booleans()):
            resource = instance / resource_id(kind, multiple=True)
            for ri in draw(st.lists(ids, min_size=1, max_size=4, unique=True)):
                values[resource / ri] = draw(values_of(kind))
        else:
            values[instance / resource_id(kind)] = draw(values_of(kind))
    return instance, values


def mutate(data: st.DataObject, payload: bytes) -> bytes:
    """``payload`` with one to three bytes replaced, inserted or deleted, or cut short."""
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(mutated)))
        action = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        byte = data.draw(st.integers(0, 255))
        if action == "replace" and where < len(mutated):
            mutated[where] = byte
        elif action == "insert":
            mutated.insert(where, byte)
        elif action == "delete" and where < len(mutated):
            del mutated[where]
        elif action == "truncate":
            del mutated[where:]
    return bytes(mutated)
