"""SenML JSON (110) and SenML CBOR (112): records of path + typed value, as LwM2M uses them."""

import contextlib
import json
from datetime import UTC, datetime

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwm2m_edu.codecs import CodecError, ContentFormat, decode, encode, senml
from lwm2m_edu.codecs.senml import (
    Record,
    decode_paths,
    decode_records,
    encode_paths,
    encode_records,
)
from lwm2m_edu.model import (
    DEFAULT_MODEL,
    ObjectDef,
    ObjectLink,
    Operations,
    ResourceDef,
    ResourceType,
)
from lwm2m_edu.paths import Path

from .strategies import (
    TEST_MODEL,
    VALUE_TYPES,
    ids,
    instance_values,
    resource_id,
    single_resource,
    values_of,
)

SENML_JSON, SENML_CBOR = ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR
BOTH = pytest.mark.parametrize("fmt", [SENML_JSON, SENML_CBOR], ids=["json", "cbor"])


def _object(oid: int, name: str, *resources: tuple[int, ResourceType, bool]) -> ObjectDef:
    return ObjectDef.of(
        oid,
        name,
        "1.0",
        multiple=True,
        mandatory=False,
        resources=[
            ResourceDef(rid, f"res {rid}", Operations.RW, kind, multiple=multi)
            for rid, kind, multi in resources
        ],
    )


INT, FLOAT, BOOL = ResourceType.INTEGER, ResourceType.FLOAT, ResourceType.BOOLEAN

#: Just enough of the objects the vectors use (/2 ACL, Leshan's /3442, IPSO 3311/3308, /72).
VECTOR_MODEL = DEFAULT_MODEL.with_objects(
    _object(2, "Access Control", (0, INT, False), (1, INT, False), (2, INT, True), (3, INT, False)),
    _object(3442, "Leshan test object", (130, FLOAT, False)),
    _object(3311, "Light Control", (5850, BOOL, False), (5851, INT, False)),
    _object(3308, "Set Point", (5900, FLOAT, False)),
    _object(72, "Measurements", (2, FLOAT, False)),
)


def cbor(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


# -- the test vectors of lwm2m-core.md §2.6 -------------------------------------------------------

S1 = cbor("81a221662f302f302f330843abcdef")
S2 = cbor("81a221662f332f302f3003744f70656e204d6f62696c6520416c6c69616e6365")
S3 = cbor("81a202f95cb0216b2f333434322f302f313330")
S4 = cbor("81a321652f322f332f006130021904d2")
S5 = cbor("83a100662f332f302f30a100662f332f302f39a100662f312f302f31")
S6 = cbor(
    "83a200662f332f302f3003744f70656e204d6f62696c6520416c6c69616e6365a200662f332f302f3902185f"
    "a200662f312f302f31021a00015180"
)
S7 = cbor(
    "84a2006c2f333331312f302f3538353004f4a2006c2f333331312f312f3538353004f4a2006c2f333331312f"
    "322f353835310214a2006c2f333330382f302f353930300212"
)
S8 = cbor(
    "83a521642f37322f221a0184876a0063312f3202fb40366666666666660624a30063312f3202fb4036e66666"
    "66666606381da30063312f3202fb403819999999999a063831"
)
S9 = cbor(
    "90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365a200613103764c696768"
    "74776569676874204d324d20436c69656e74a20061320369333435303030313233a20061330363312e30a200"
    "63362f300201a20063362f310205a20063372f3002190ed8a20063372f3102191388a20063382f3002187da2"
    "0063382f3102190384a2006139021864a200623130020fa2006431312f300200a200623133021a5182428fa2"
    "0062313403662b30323a3030a200623136036155"
)

DEVICE_0 = {
    Path("/3/0/0"): "Open Mobile Alliance",
    Path("/3/0/1"): "Lightweight M2M Client",
    Path("/3/0/2"): "345000123",
    Path("/3/0/3"): "1.0",
    Path("/3/0/6/0"): 1,
    Path("/3/0/6/1"): 5,
    Path("/3/0/7/0"): 3800,
    Path("/3/0/7/1"): 5000,
    Path("/3/0/8/0"): 125,
    Path("/3/0/8/1"): 900,
    Path("/3/0/9"): 100,
    Path("/3/0/10"): 15,
    Path("/3/0/11/0"): 0,
    Path("/3/0/13"): datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC),
    Path("/3/0/14"): "+02:00",
    Path("/3/0/16"): "U",
}

#: The same /3/0 as SenML JSON (Leshan AbstractSenMLTest.givenSenMLJsonExample, written out).
DEVICE_0_JSON = (
    b'[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},'
    b'{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},'
    b'{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},'
    b'{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},'
    b'{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]'
)


def test_s1_opaque_resource_travels_in_vd_as_a_byte_string():
    assert decode(S1, SENML_CBOR, "/0/0/3") == {Path("/0/0/3"): b"\xab\xcd\xef"}
    assert encode({"/0/0/3": b"\xab\xcd\xef"}, SENML_CBOR, "/0/0/3") == S1


def test_s2_string_resource_travels_in_vs_named_by_bn_alone():
    assert decode(S2, SENML_CBOR, "/3/0/0") == {Path("/3/0/0"): "Open Mobile Alliance"}
    assert encode({"/3/0/0": "Open Mobile Alliance"}, SENML_CBOR, "/3/0/0") == S2


def test_s3_half_float_and_keys_in_any_order_are_accepted():
    assert decode(S3, SENML_CBOR, "/3442/0/130", model=VECTOR_MODEL) == {Path("/3442/0/130"): 300.0}
    # Not byte-identical: S3 puts v before bn. We write bn first, and the same half float.
    assert encode({"/3442/0/130": 300.0}, SENML_CBOR, "/3442/0/130", model=VECTOR_MODEL) == cbor(
        "81a2216b2f333434322f302f31333002f95cb0"
    )


def test_s4_bn_ends_with_a_slash_and_n_is_relative_for_an_instance():
    assert decode(S4, SENML_CBOR, "/2/3", model=VECTOR_MODEL) == {Path("/2/3/0"): 1234}
    assert encode({"/2/3/0": 1234}, SENML_CBOR, "/2/3", model=VECTOR_MODEL) == S4


def test_s5_read_composite_request_names_paths_only():
    paths = [Path("/3/0/0"), Path("/3/0/9"), Path("/1/0/1")]
    assert decode_paths(S5, SENML_CBOR) == paths
    assert encode_paths(paths, SENML_CBOR) == S5


def test_s6_read_composite_reply_names_full_paths_without_bn():
    values = {
        Path("/3/0/0"): "Open Mobile Alliance",
        Path("/3/0/9"): 95,
        Path("/1/0/1"): 86400,
    }
    assert decode(S6, SENML_CBOR, "/") == values
    # encode() sorts by path (/1/0/1 first); encode_records keeps the order of the request.
    assert encode_records([Record(p, v) for p, v in values.items()], SENML_CBOR, "/") == S6


def test_s7_write_composite_values_take_the_model_types():
    assert decode(S7, SENML_CBOR, "/", model=VECTOR_MODEL) == {
        Path("/3311/0/5850"): False,
        Path("/3311/1/5850"): False,
        Path("/3311/2/5851"): 20,
        Path("/3308/0/5900"): 18.0,
    }


def test_s7_unknown_resources_keep_their_senml_types_and_encode_back():
    # With a model that knows /3308/x/5900 as Float we would write 18.0 as a float, not as 18;
    # unknown to the model, it stays the integer it was and the bytes come back the same.
    records = decode_records(S7, SENML_CBOR, "/", DEFAULT_MODEL)
    assert [r.value for r in records] == [False, False, 20, 18]
    assert type(records[3].value) is int
    assert encode_records(records, SENML_CBOR, "/", DEFAULT_MODEL) == S7


def test_s8_timestamped_records_keep_every_measurement_with_bt_plus_t():
    records = decode_records(S8, SENML_CBOR, "/72", VECTOR_MODEL)
    assert records == [
        Record(Path("/72/1/2"), 22.4, 25462634 - 5),
        Record(Path("/72/1/2"), 22.9, 25462634 - 30),
        Record(Path("/72/1/2"), 24.1, 25462634 - 50),
    ]
    # Not byte-identical on encoding: we write each record's own t instead of choosing a bt.
    # 25462584 < 2**28, so these times are relative to "now"; the caller resolves them.
    assert all(r.time < senml.RELATIVE_TIME_LIMIT for r in records)


def test_s8_decode_keeps_the_last_record_per_path():
    assert decode(S8, SENML_CBOR, "/72", model=VECTOR_MODEL) == {Path("/72/1/2"): 24.1}


def test_s9_whole_device_instance_is_16_records_under_bn_3_0():
    assert decode(S9, SENML_CBOR, "/3/0") == DEVICE_0
    assert encode(DEVICE_0, SENML_CBOR, "/3/0") == S9


def test_senml_json_example_of_device_instance():
    assert decode(DEVICE_0_JSON, SENML_JSON, "/3/0") == DEVICE_0
    assert encode(DEVICE_0, SENML_JSON, "/3/0") == DEVICE_0_JSON


def test_senml_json_read_composite_request_names_paths_only():
    payload = b'[{"n":"/3/0/0"},{"n":"/3/0/9"},{"n":"/1/0/1"}]'
    assert decode_paths(payload, SENML_JSON) == [Path("/3/0/0"), Path("/3/0/9"), Path("/1/0/1")]
    assert encode_paths(["/3/0/0", "/3/0/9", "/1/0/1"], SENML_JSON) == payload


def test_read_composite_request_may_name_instances_objects_and_the_root():
    payload = b'[{"n":"/3/0"},{"n":"/1"},{"n":"/"}]'
    assert decode_paths(payload, SENML_JSON) == [Path("/3/0"), Path("/1"), Path("/")]


# -- naming, values and times ---------------------------------------------------------------------


def test_bn_carries_over_until_a_new_bn_replaces_it():
    payload = b'[{"bn":"/3/0/","n":"9","v":1},{"n":"10","v":2},{"bn":"/1/0/","n":"1","v":3}]'
    assert decode(payload, SENML_JSON, "/") == {
        Path("/3/0/9"): 1,
        Path("/3/0/10"): 2,
        Path("/1/0/1"): 3,
    }


def test_path_is_bn_and_n_glued_as_text():
    payload = b'[{"bn":"/3/0/1","n":"0","v":7}]'  # "/3/0/1" + "0" = "/3/0/10"
    assert decode(payload, SENML_JSON, "/3/0") == {Path("/3/0/10"): 7}


def test_bt_is_added_to_every_following_t():
    payload = b'[{"bt":1700000000,"n":"/3/0/9","v":1,"t":-10},{"n":"/3/0/9","v":2}]'
    records = decode_records(payload, SENML_JSON)
    assert [r.time for r in records] == [1699999990, 1700000000]


def test_records_without_a_time_have_none():
    assert decode_records(S2, SENML_CBOR)[0].time is None


@BOTH
def test_encode_records_writes_t(fmt):
    records = [Record(Path("/3/0/9"), 90, -20), Record(Path("/3/0/9"), 95, -10)]
    payload = encode_records(records, fmt, "/3/0/9")
    assert decode_records(payload, fmt, "/3/0/9") == records
    if fmt is SENML_JSON:
        assert payload == b'[{"bn":"/3/0/9","v":90,"t":-20},{"v":95,"t":-10}]'


@BOTH
def test_empty_payload_and_empty_array_mean_no_values(fmt):
    empty = b"[]" if fmt is SENML_JSON else b"\x80"
    assert decode(b"", fmt, "/3/0/11") == {}
    assert decode(empty, fmt, "/3/0/11") == {}
    assert encode({}, fmt, "/3/0/11") == empty


def test_time_may_arrive_as_cbor_tag_1():
    payload = cbor2.dumps([{-2: "/3/0/13", 2: cbor2.CBORTag(1, 1367491215)}])
    assert decode(payload, SENML_CBOR, "/3/0") == {Path("/3/0/13"): DEVICE_0[Path("/3/0/13")]}


def test_time_may_arrive_as_a_plain_number():
    payload = b'[{"bn":"/3/0/13","v":1367491215}]'
    assert decode(payload, SENML_JSON, "/3/0/13") == {Path("/3/0/13"): DEVICE_0[Path("/3/0/13")]}


def test_time_is_written_as_integer_seconds():
    assert encode({"/3/0/13": DEVICE_0[Path("/3/0/13")]}, SENML_JSON, "/3/0/13") == (
        b'[{"bn":"/3/0/13","v":1367491215}]'
    )


def test_tag_1_on_a_resource_unknown_to_the_model_is_a_time():
    payload = cbor2.dumps([{0: "/9/0/0", 2: cbor2.CBORTag(1, 0)}])
    assert decode(payload, SENML_CBOR, "/") == {Path("/9/0/0"): datetime(1970, 1, 1, tzinfo=UTC)}


@pytest.mark.parametrize(
    ("float_hex", "value"),
    [("f95cb0", 300.0), ("fa3f8ccccd", 1.100000023841858), ("fb4036666666666666", 22.4)],
    ids=["half", "single", "double"],
)
def test_floats_of_every_width_decode_and_encode_in_the_shortest_exact_width(float_hex, value):
    payload = cbor("81a2216b2f333434322f302f31333002" + float_hex)
    assert decode(payload, SENML_CBOR, "/3442/0/130", model=VECTOR_MODEL) == {
        Path("/3442/0/130"): value
    }
    assert encode({"/3442/0/130": value}, SENML_CBOR, "/3442/0/130", model=VECTOR_MODEL) == payload


def test_cbor_keeps_nan_infinity_and_negative_zero():
    path = Path(3442, 0, resource_id(FLOAT))
    for value in (float("inf"), float("-inf"), -0.0):
        payload = encode({path: value}, SENML_CBOR, path, model=TEST_MODEL)
        assert str(decode(payload, SENML_CBOR, path, model=TEST_MODEL)[path]) == str(value)
    payload = encode({path: float("nan")}, SENML_CBOR, path, model=TEST_MODEL)
    assert str(decode(payload, SENML_CBOR, path, model=TEST_MODEL)[path]) == "nan"


def test_objlnk_travels_in_vlo_which_stays_a_text_key_in_cbor():
    path = Path(3442, 0, resource_id(ResourceType.OBJLNK))
    payload = encode({path: ObjectLink(66, 0)}, SENML_CBOR, path, model=TEST_MODEL)
    assert cbor2.loads(payload) == [{-2: str(path), "vlo": "66:0"}]
    assert decode(payload, SENML_CBOR, path, model=TEST_MODEL) == {path: ObjectLink(66, 0)}


def test_vd_is_base64url_without_padding_in_json():
    path = Path(3442, 0, resource_id(ResourceType.OPAQUE))
    payload = encode({path: b"\xab\xcd\xef\xff\xfe"}, SENML_JSON, path, model=TEST_MODEL)
    assert payload == f'[{{"bn":"{path}","vd":"q83v__4"}}]'.encode()
    assert decode(payload, SENML_JSON, path, model=TEST_MODEL) == {path: b"\xab\xcd\xef\xff\xfe"}


def test_json_is_compact_utf8_without_escapes():
    payload = encode({"/3/0/0": "Größe ✓"}, SENML_JSON, "/3/0/0")
    assert payload == '[{"bn":"/3/0/0","vs":"Größe ✓"}]'.encode()


@BOTH
def test_unknown_resources_keep_the_natural_type_of_their_field(fmt):
    payload = encode_records(
        [
            Record(Path("/9/0/0"), 1),
            Record(Path("/9/0/1"), 1.5),
            Record(Path("/9/0/2"), "x"),
            Record(Path("/9/0/3"), True),
            Record(Path("/9/0/4"), b"\x01"),
            Record(Path("/9/0/5"), ObjectLink(3, 0)),
        ],
        fmt,
    )
    assert list(decode(payload, fmt, "/").values()) == [
        1,
        1.5,
        "x",
        True,
        b"\x01",
        ObjectLink(3, 0),
    ]


def test_unknown_fields_are_ignored():
    payload = b'[{"bn":"/3/0/9","v":95,"u":"%","colour":"red"}]'
    assert decode(payload, SENML_JSON, "/3/0/9") == {Path("/3/0/9"): 95}


def test_bver_10_is_accepted():
    assert decode(b'[{"bver":10,"bn":"/3/0/9","v":95}]', SENML_JSON, "/") == {Path("/3/0/9"): 95}


def test_codec_objects_are_what_the_entry_points_use():
    assert senml.JSON.decode(DEVICE_0_JSON, Path("/3/0"), DEFAULT_MODEL) == DEVICE_0
    assert senml.CBOR.encode(DEVICE_0, Path("/3/0"), DEFAULT_MODEL) == S9


# -- round trips ----------------------------------------------------------------------------------


@st.composite
def multiple_resource(draw) -> tuple[Path, dict[Path, object]]:
    """A multiple resource /3442/I/R and values for some of its instances."""
    kind = draw(st.sampled_from(VALUE_TYPES))
    resource = Path(3442, draw(ids), resource_id(kind, multiple=True))
    instances = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    return resource, {resource / ri: draw(values_of(kind)) for ri in instances}


@st.composite
def values_at_level(draw, level: str) -> tuple[Path, dict[Path, object]]:
    if level == "resource":
        path, value = draw(single_resource())
        return path, {path: value}
    if level == "multiple resource":
        return draw(multiple_resource())
    if level == "resource instance":
        _, values = draw(multiple_resource())
        path = next(iter(values))
        return path, {path: values[path]}
    instance, values = draw(instance_values())
    if level == "instance":
        return instance, values
    if level == "object":
        return instance.parent, values
    return Path("/"), values


LEVELS = ["resource", "multiple resource", "resource instance", "instance", "object", "root"]


@BOTH
@pytest.mark.parametrize("level", LEVELS)
@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encode_then_decode_is_identity(fmt, level, data):
    base, values = data.draw(values_at_level(level))
    payload = encode(values, fmt, base, model=TEST_MODEL)
    assert decode(payload, fmt, base, model=TEST_MODEL) == values


@BOTH
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_encode_records_then_decode_records_is_identity(fmt, data):
    _, values = data.draw(instance_values())
    times = st.none() | st.integers(-(2**40), 2**40) | st.floats(-1e12, 1e12)
    records = [Record(path, value, data.draw(times)) for path, value in values.items()]
    payload = encode_records(records, fmt, "/", TEST_MODEL)
    assert decode_records(payload, fmt, "/", TEST_MODEL) == records


@BOTH
@given(paths=st.lists(st.lists(ids, max_size=4).map(Path.from_ids), max_size=5))
@settings(max_examples=40)
def test_encode_paths_then_decode_paths_is_identity(fmt, paths):
    assert decode_paths(encode_paths(paths, fmt), fmt) == paths


# -- errors ---------------------------------------------------------------------------------------


def json_error(payload: bytes, base: str = "/", model=DEFAULT_MODEL) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(payload, SENML_JSON, base, model=model)
    return info.value


def cbor_error(items: object, base: str = "/", model=DEFAULT_MODEL) -> CodecError:
    payload = items if isinstance(items, bytes) else cbor2.dumps(items)
    with pytest.raises(CodecError) as info:
        decode(payload, SENML_CBOR, base, model=model)
    return info.value


def test_record_outside_the_base_path_is_an_error():
    error = cbor_error(S2, base="/3/0/1")
    assert error.path == Path("/3/0/0")
    assert "record 0" in str(error) and "/3/0/1" in str(error)


def test_error_names_the_record_index_and_path():
    error = json_error(b'[{"bn":"/3/0/","n":"9","v":95},{"n":"0","v":1}]')
    assert "record 1" in str(error)
    assert error.path == Path("/3/0/0")
    assert error.format is SENML_JSON


def test_wrong_value_field_for_the_type_is_an_error():
    assert "'v', not 'vs'" in str(json_error(b'[{"bn":"/3/0/9","vs":"95"}]'))


def test_vs_for_an_objlnk_resource_is_an_error():
    path = Path(3442, 0, resource_id(ResourceType.OBJLNK))
    payload = f'[{{"bn":"{path}","vs":"66:0"}}]'.encode()
    assert "'vlo', not 'vs'" in str(json_error(payload, model=TEST_MODEL))


def test_vlo_must_be_oid_colon_iid():
    assert "OID:IID" in str(json_error(b'[{"bn":"/9/0/0","vlo":"66-0"}]'))


@pytest.mark.parametrize("text", ["q83v+", "q8/v", "q83v!", "q", "q8 3v"])
def test_vd_that_is_not_base64url_is_an_error(text):
    payload = f'[{{"bn":"/0/0/3","vd":"{text}"}}]'.encode()
    assert "base64url" in str(json_error(payload))


def test_vd_must_be_a_byte_string_in_cbor():
    assert "byte string" in str(cbor_error([{-2: "/0/0/3", 8: "q83v"}]))


def test_two_value_fields_in_one_record_are_an_error():
    assert "v and vs" in str(json_error(b'[{"bn":"/3/0/9","v":95,"vs":"95"}]'))


def test_the_same_field_twice_is_an_error():
    assert "twice" in str(json_error(b'[{"bn":"/3/0/9","v":95,"v":96}]'))
    assert "twice" in str(cbor_error(cbor("81a321662f332f302f3902010202")))  # key 2 twice


def test_record_without_a_value_is_an_error_in_decode():
    assert "no value field" in str(json_error(b'[{"n":"/3/0/9"}]'))


def test_record_with_a_value_is_an_error_in_decode_paths():
    with pytest.raises(CodecError, match="names only"):
        decode_paths(S6, SENML_CBOR)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b'{"bn":"/3/0/9","v":95}', "array of records"),
        (b"[1]", "not a map"),
        (b'[{"n":5,"v":1}]', "'n' must be a text string"),
        (b'[{"bn":["/3/0/9"],"v":1}]', "'bn' must be a text string"),
        (b'[{"n":"/3/0/9","v":"95"}]', "'v' must be a number"),
        (b'[{"n":"/3/0/9","v":true}]', "'v' must be a number"),
        (b'[{"n":"/1/0/6","vb":1}]', "'vb' must be true or false"),
        (b'[{"n":"/3/0/9","v":1,"t":"now"}]', "'t' must be a number"),
        (b'[{"n":"/3/0/9","v":95,"bver":11}]', "version 11"),
        (b'[{"n":"/3/0/9","v":95,"bver":"10"}]', "'bver' must be an integer"),
        (b'[{"n":"/3/0/9","v":95,"new_":1}]', "must be understood"),
        (b'[{"n":"/3/0/9","v":95,"bv":1}]', "base value"),
        (b'[{"n":"/3/0/9","s":95}]', "sum"),
        (b'[{"n":"3/0/9","v":95}]', "absolute paths"),
        (b'[{"n":"/3/0/x","v":95}]', "not an LwM2M path"),
        (b'[{"n":"/3/0","v":95}]', "whole object instance"),
        (b'[{"n":"/3/0/6","v":1}]', "multiple resource"),
        (b'[{"n":"/3/0/9/0","v":1}]', "single resource"),
        (b'[{"n":"/3/0/4","v":1}]', "executable"),
        (b'[{"n":"/3/0/9","v":1.5}]', "whole number"),
        (b'[{"n":"/3/0/9","v":9223372036854775808}]', "range"),
        (b'[{"n":"/9/0/9","v":18446744073709551616}]', "range"),
        (b'[{"n":"/9/0/9","v":1,"t":1' + b"0" * 400 + b"}]", "range"),
        (b'[{"n":"/9/0/9","v":1,"bt":1e308,"t":1e308}]', "finite"),
        (b'[{"n":"/3/0/9","v":NaN}]', "NaN"),
        (b'[{"n":"/3/0/9","v":1e999}]', "too large"),
        (b'[{"n":"/3/0/0","vs":"\\ud800"}]', "surrogate"),
        (b'[{"bn":"/3/0/000000000000000000000000000","v":1}]', "too long"),
    ],
)
def test_malformed_json_records_are_errors(payload, words):
    assert words in str(json_error(payload))


def test_invalid_json_reports_the_byte_offset():
    error = json_error('[{"n":"é",}]'.encode())
    assert error.offset == len('[{"n":"é",'.encode())


def test_invalid_utf8_reports_the_byte_offset():
    assert json_error(b'[{"n":"\xff"}]').offset == 7


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ([{-2: "/3/0/9", 2: cbor2.CBORTag(1, 5)}], "tag 1"),
        ([{-2: "/3/0/13", 2: cbor2.CBORTag(0, "2013-05-02T10:40:15Z")}], "'v' must be a number"),
        ([{-2: "/3/0/9", 2: cbor2.CBORTag(2, b"\x01")}], "'v' must be a number"),
        ([{"n": "/3/0/9", 2: 95}], "integer label 0"),
        ([{-2: "/3/0/9", 2: 95, 1.5: 0}], "integer or text"),
        ([{False: "/3/0/9", 2: 95}], "integer or text"),
        ([{-2: "/3/0/13", 2: cbor2.CBORTag(1, 1.5)}], "whole number"),
        ([{-2: "/3/0/9", 2: 95, 6: float("nan")}], "finite"),
    ],
)
def test_malformed_cbor_records_are_errors(items, words):
    assert words in str(cbor_error(items))


def test_bytes_after_the_cbor_pack_are_an_error():
    error = cbor_error(S2 + b"\x00")
    assert error.offset == len(S2)


def test_truncated_cbor_is_an_error():
    cbor_error(S9[:-1])


@BOTH
def test_deep_nesting_is_an_error_not_a_recursion_error(fmt):
    deep = b"[" * 100_000 if fmt is SENML_JSON else b"\x81" * 100_000
    with pytest.raises(CodecError, match="nested"):
        decode(deep, fmt, "/")


@BOTH
def test_encoding_a_value_of_the_wrong_type_is_an_error(fmt):
    with pytest.raises(CodecError, match="/3/0/9"):
        encode({"/3/0/9": "95"}, fmt, "/3/0")


@BOTH
def test_encoding_a_whole_instance_as_one_value_is_an_error(fmt):
    with pytest.raises(CodecError, match="whole object instance"):
        encode({"/3/0": 1}, fmt, "/3")


def test_json_cannot_encode_nan_or_infinity():
    path = Path(3442, 0, resource_id(FLOAT))
    for value in (float("nan"), float("inf")):
        with pytest.raises(CodecError, match="finite"):
            encode({path: value}, SENML_JSON, path, model=TEST_MODEL)


# -- fuzzing --------------------------------------------------------------------------------------


def decodes_or_codec_error(payload: bytes, fmt: ContentFormat) -> None:
    for base in ("/", "/3442/0"):
        with contextlib.suppress(CodecError):
            decode(payload, fmt, base, model=TEST_MODEL)
    with contextlib.suppress(CodecError):
        decode_paths(payload, fmt)


@BOTH
@given(payload=st.binary(max_size=80))
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_codec_error(fmt, payload):
    decodes_or_codec_error(payload, fmt)


NAMES = st.sampled_from(["/", "/3442/", "/3442/0/", "/3442/0/1", "0", "1/0", "3442/0/2", ""])
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | NAMES
    | st.binary(max_size=8)
)
JSON_KEYS = st.sampled_from([*sorted(senml._FIELD_NAMES), "x", "x_"]) | st.text(max_size=3)
CBOR_KEYS = st.sampled_from(sorted(senml._CBOR_LABELS)) | st.sampled_from(["vlo", "n", "x_"])


def trees(keys: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        LEAVES,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=20,
    )


def as_json(item: object) -> object:
    if isinstance(item, bytes):
        return item.hex()
    if isinstance(item, list):
        return [as_json(x) for x in item]
    if isinstance(item, dict):
        return {k: as_json(v) for k, v in item.items()}
    return item


@given(item=trees(JSON_KEYS))
@settings(max_examples=150, deadline=None)
def test_arbitrary_json_raises_only_codec_error(item):
    decodes_or_codec_error(json.dumps(as_json(item)).encode(), SENML_JSON)


@given(item=trees(CBOR_KEYS))
@settings(max_examples=150, deadline=None)
def test_arbitrary_cbor_raises_only_codec_error(item):
    decodes_or_codec_error(cbor2.dumps(item), SENML_CBOR)


@BOTH
@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_mutated_valid_payloads_raise_only_codec_error(fmt, data):
    base, values = data.draw(instance_values())
    payload = bytearray(encode(values, fmt, base, model=TEST_MODEL))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or position == len(payload):
            payload[position:position] = bytes([data.draw(st.integers(0, 255))])
        elif action == "flip":
            payload[position] ^= 1 << data.draw(st.integers(0, 7))
        else:
            del payload[position]
    decodes_or_codec_error(bytes(payload), fmt)
