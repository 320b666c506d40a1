"""LwM2M CBOR (11544): nested maps keyed by ids, with absolute paths and typed leaves.

Vectors L1-L7 come from Anjay Lite's tests (docs reference §2.6). L1-L4 use object 13 and L5/L6
object 3 with integer resources; in our DEFAULT_MODEL /3/x/3 is Firmware Version, a String, so
those vectors are decoded with a small model of their own (or with no model at all).
"""

from datetime import UTC, datetime

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwm2m_edu.codecs import CodecError, ContentFormat, decode, encode
from lwm2m_edu.model import Model, ObjectDef, ObjectLink, Operations, ResourceDef, ResourceType
from lwm2m_edu.paths import Path

from .strategies import TEST_MODEL, VALUE_TYPES, instance_values, mutate, resource_id, values_of

LWM2M_CBOR = ContentFormat.LWM2M_CBOR
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def integer_object(object_id: int, *resource_ids: int) -> ObjectDef:
    return ObjectDef.of(
        object_id,
        f"Test object {object_id}",
        "1.0",
        multiple=True,
        mandatory=False,
        resources=[
            ResourceDef(r, f"Integer {r}", Operations.RW, ResourceType.INTEGER)
            for r in resource_ids
        ],
    )


#: Objects 13 and 3 as the Anjay Lite vectors use them: integer resources only.
VECTOR_MODEL = Model([integer_object(13, 1, 2), integer_object(3, 1, 3)])

L1 = "A1 83 0D 18 1A 01 18 2A"
L2 = "A1 0D A1 18 1A A1 01 18 2A"
L3 = "A1 82 0D 18 1A A2 01 18 2A 02 15"
L4 = "A1 81 0D A1 81 18 1A A1 81 01 18 2A"
L5 = "BF 03 BF 03 BF 03 18 19 FF FF FF"
L6 = "BF 03 BF 03 BF 03 18 19 FF 01 BF 01 0B FF FF FF"
L7 = "BF FF"


def dec(hex_payload: str, base: str = "/", model: Model = VECTOR_MODEL) -> dict[Path, object]:
    return decode(bytes.fromhex(hex_payload), LWM2M_CBOR, base, model=model)


def enc(values: dict, base: str = "/", model: Model = VECTOR_MODEL) -> str:
    return encode(values, LWM2M_CBOR, base, model=model).hex(" ").upper()


def fails(hex_payload: str, match: str, base: str = "/", model: Model = TEST_MODEL) -> CodecError:
    with pytest.raises(CodecError, match=match) as caught:
        dec(hex_payload, base, model)
    assert caught.value.format is LWM2M_CBOR
    return caught.value


# -- the Anjay Lite vectors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector", [L1, L2, L4], ids=["L1-array-key", "L2-nested", "L4-arrays-of-1"]
)
@pytest.mark.parametrize("base", ["/", "/13", "/13/26", "/13/26/1"])
def test_l1_l2_l4_all_mean_13_26_1_is_42(vector, base):
    assert dec(vector, base) == {Path("/13/26/1"): 42}


@pytest.mark.parametrize("base", ["/", "/13", "/13/26"])
def test_l3_array_key_for_two_levels_holds_two_resources(base):
    assert dec(L3, base) == {Path("/13/26/1"): 42, Path("/13/26/2"): 21}


def test_l5_decodes_to_3_3_3_is_25():
    assert dec(L5, "/3/3/3") == {Path("/3/3/3"): 25}


def test_l5_decodes_without_a_model_to_a_plain_integer():
    assert dec(L5, "/3", Model()) == {Path("/3/3/3"): 25}


def test_l5_does_not_fit_the_default_model_where_3_x_3_is_a_string():
    with pytest.raises(CodecError, match="where a String was expected"):
        decode(bytes.fromhex(L5), LWM2M_CBOR, "/3")


@pytest.mark.parametrize("base", ["/", "/3", "/3/3", "/3/3/3"])
def test_l5_is_what_we_encode_for_3_3_3_whatever_the_base(base):
    assert enc({"/3/3/3": 25}, base) == L5


def test_l6_decodes_to_two_instances_of_object_3():
    assert dec(L6, "/3") == {Path("/3/3/3"): 25, Path("/3/1/1"): 11}


def test_l6_is_re_encoded_in_sorted_path_order():
    # Anjay wrote instance 3 before instance 1; we always sort, so equal values give equal bytes.
    values = dec(L6, "/3")
    assert enc(values, "/3") == "BF 03 BF 01 BF 01 0B FF 03 BF 03 18 19 FF FF FF"
    assert dec(enc(values, "/3"), "/3") == values


def test_l7_empty_map_is_an_empty_read():
    assert dec(L7, "/3") == {}


def test_l7_is_what_we_encode_for_no_values():
    assert enc({}, "/3") == L7


def test_definite_and_indefinite_maps_may_be_mixed():
    assert dec("BF 0D A1 18 1A BF 01 18 2A FF FF") == {Path("/13/26/1"): 42}


def test_array_keys_and_nested_maps_may_be_mixed_in_one_payload():
    payload = "A2 0D A1 18 1A A1 01 01 82 03 00 A1 01 02"
    assert dec(payload) == {Path("/13/26/1"): 1, Path("/3/0/1"): 2}


# -- leaves of every type ------------------------------------------------------------------------


def test_multiple_resource_instances_are_the_fourth_level():
    path = Path(3442, 0, resource_id(ResourceType.INTEGER, multiple=True))
    values = {path / 0: 1, path / 7: -5}
    payload = enc(values, str(path), TEST_MODEL)
    assert payload == "BF 19 0D 72 BF 00 BF 0B BF 00 01 07 24 FF FF FF FF"
    assert dec(payload, str(path), TEST_MODEL) == values


def test_time_objlnk_and_opaque_leaves_use_the_cbor_60_items():
    values = {
        Path("/3/0/13"): datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC),
        Path("/3/0/22/0"): ObjectLink(66, 0),
        Path("/5/0/0"): b"\xab",
    }
    payload = encode(values, LWM2M_CBOR, "/")
    assert cbor2.loads(payload) == {
        3: {0: {13: datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC), 22: {0: "66:0"}}},
        5: {0: {0: b"\xab"}},
    }
    assert decode(payload, LWM2M_CBOR, "/") == values


def test_half_float_and_decimal_fraction_leaves_are_read():
    float_path = Path(3442, 0, resource_id(ResourceType.FLOAT))
    key = b"\x83" + b"".join(cbor2.dumps(i) for i in float_path.ids)  # [3442, 0, 30]
    for leaf, value in [("f95cb0", 300.0), ("c48221196ab3", 273.15)]:
        payload = b"\xa1" + key + bytes.fromhex(leaf)
        assert decode(payload, LWM2M_CBOR, "/3442", model=TEST_MODEL) == {float_path: value}


# -- errors --------------------------------------------------------------------------------------


def test_a_path_outside_the_request_path_is_an_error_naming_both():
    error = fails(L1, r"/13/26/1.*not at or below the request path /13/27", "/13/27", VECTOR_MODEL)
    assert error.path == Path("/13/26/1")


def test_a_value_at_instance_level_is_an_error():
    error = fails("A1 82 03 00 01", "is a whole object instance")
    assert error.path == Path("/3/0")


def test_a_value_at_object_level_is_an_error():
    fails("A1 03 01", "is a whole object")


def test_more_than_four_levels_by_array_key_is_an_error():
    fails("A1 85 03 00 06 00 00 01", "5 levels")


def test_more_than_four_levels_by_nested_maps_is_an_error():
    fails("A1 03 A1 00 A1 06 A1 00 A1 00 01", "holds a value, not a map")


def test_very_deep_nesting_fails_fast_with_a_codec_error():
    assert fails("BF" * 100_000, "nested more than").offset == 9
    fails("81" * 100_000, "nested more than")


def test_the_same_path_twice_is_an_error():
    error = fails("A2 82 03 00 A1 01 18 2A 03 A1 00 A1 01 18 2B", "given twice", model=VECTOR_MODEL)
    assert error.path == Path("/3/0/1")


def test_the_same_key_twice_in_one_map_is_an_error():
    fails("A2 83 03 00 01 01 83 03 00 01 02", "same key twice", model=VECTOR_MODEL)


def test_a_resource_with_both_a_value_and_instances_is_an_error():
    fails("A2 83 04 00 06 01 84 04 00 06 00 02", "both a value and resource instances")


@pytest.mark.parametrize(
    ("key_hex", "match"),
    [
        ("61 33", "holds a text string"),  # "3"
        ("F9 42 00", "holds a float"),  # 3.0
        ("F5", "holds a boolean"),
        ("20", "outside 0..65534"),  # -1
        ("19 FF FF", "outside 0..65534"),  # 65535, reserved
        ("80", "empty array"),
        ("82 03 61 30", "holds a text string"),
        ("A0", "holds a map"),
    ],
)
def test_a_key_that_is_not_an_id_or_array_of_ids_is_an_error(key_hex, match):
    fails(f"A1 {key_hex} 01", match)


def test_bytes_after_the_map_are_an_error():
    error = fails(L7 + " 00", "follow the CBOR item")
    assert error.offset == 2


def test_a_payload_that_is_not_a_map_is_an_error():
    fails("83 03 00 01", "must be one CBOR map, not an array")


def test_a_multiple_resource_given_as_a_single_value_is_an_error():
    fails("A1 83 03 00 06 01", "is a multiple resource", model=TEST_MODEL)


def test_a_single_resource_given_instances_is_an_error():
    fails("A1 84 03 00 09 00 01", "is a single resource")


def test_a_leaf_of_the_wrong_type_is_an_error_at_its_path():
    error = fails("A1 83 03 00 09 61 30", "text string where an Integer was expected")
    assert error.path == Path("/3/0/9")


def test_encode_refuses_a_value_at_instance_level():
    with pytest.raises(CodecError, match="whole object instance"):
        encode({"/3/0": 1}, LWM2M_CBOR, "/", model=Model())


def test_encode_refuses_a_resource_with_both_a_value_and_instances():
    with pytest.raises(CodecError, match="either single or multiple"):
        encode({"/4242/0/1": 1, "/4242/0/1/0": 2}, LWM2M_CBOR, "/", model=Model())


def test_encode_refuses_a_single_resource_with_instances():
    with pytest.raises(CodecError, match="single resource"):
        encode({"/3/0/9/0": 1}, LWM2M_CBOR, "/3")


# -- properties -----------------------------------------------------------------------------------


@st.composite
def payload_case(draw) -> tuple[Path, dict[Path, object]]:
    """Values below one instance of /3442, and a base at root, object, instance or resource."""
    instance, values = draw(instance_values())
    level = draw(st.sampled_from(["root", "object", "instance", "resource"]))
    if level == "resource" and values:
        resource = draw(st.sampled_from(sorted({Path.from_ids(p.ids[:3]) for p in values})))
        return resource, {p: v for p, v in values.items() if p.startswith(resource)}
    base = {"root": Path(), "object": instance.parent}.get(level, instance)
    return base, values


@FAST
@given(payload_case())
def test_values_of_every_type_round_trip_for_any_base(case):
    base, values = case
    payload = encode(values, LWM2M_CBOR, base, model=TEST_MODEL)
    assert decode(payload, LWM2M_CBOR, base, model=TEST_MODEL) == values


@FAST
@given(st.lists(instance_values(), max_size=2))
def test_several_instances_round_trip_from_the_root(cases):
    values = {p: v for _, vs in cases for p, v in vs.items()}
    payload = encode(values, LWM2M_CBOR, "/", model=TEST_MODEL)
    assert decode(payload, LWM2M_CBOR, "/", model=TEST_MODEL) == values


@FAST
@given(st.sampled_from(VALUE_TYPES).flatmap(lambda k: st.tuples(st.just(k), values_of(k))))
def test_a_single_resource_round_trips_with_its_own_path_as_base(kind_value):
    kind, value = kind_value
    path = Path(3442, 1, resource_id(kind))
    payload = encode({path: value}, LWM2M_CBOR, path, model=TEST_MODEL)
    assert decode(payload, LWM2M_CBOR, path, model=TEST_MODEL) == {path: value}


def check_decodes_or_fails(payload: bytes) -> None:
    try:
        result = decode(payload, LWM2M_CBOR, "/", model=TEST_MODEL)
    except CodecError:
        return
    assert isinstance(result, dict)
    assert all(p.level >= 3 for p in result)


@FAST
@given(st.binary(max_size=40))
def test_arbitrary_bytes_give_values_or_a_codec_error(payload):
    check_decodes_or_fails(payload)


IDS_ISH = st.integers(-1, 6) | st.sampled_from([3, 3442, 65534, 65535])
KEYS = IDS_ISH | st.lists(IDS_ISH, max_size=5).map(tuple) | st.text(max_size=2) | st.booleans()
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.binary(max_size=6)
    | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 4, 28, 29, 32, 258]), st.integers())
)
MAPS = st.recursive(
    LEAVES,
    lambda children: (
        st.dictionaries(KEYS, children, max_size=3)
        | st.lists(children, max_size=2)
        | st.builds(cbor2.CBORTag, st.sampled_from([1, 4, 28, 29, 258]), children)
    ),
    max_leaves=10,
)


@FAST
@given(st.dictionaries(KEYS, MAPS, max_size=3), st.booleans())
def test_structured_random_cbor_gives_values_or_a_codec_error(data, indefinite):
    check_decodes_or_fails(cbor2.dumps(data, indefinite_containers=indefinite))


@FAST
@given(payload_case(), st.data())
def test_mutated_valid_payloads_give_values_or_a_codec_error(case, data):
    base, values = case
    payload = mutate(data, encode(values, LWM2M_CBOR, base, model=TEST_MODEL))
    check_decodes_or_fails(payload)
