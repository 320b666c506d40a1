"""CBOR (60): one value as one CBOR data item, and the item rules LwM2M CBOR (11544) shares."""

import contextlib
from datetime import UTC, datetime
from decimal import Decimal

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwm2m_edu.codecs import CodecError, ContentFormat, decode, encode
from lwm2m_edu.codecs._cbor_items import RAW_TAG_DECODERS, item_to_value
from lwm2m_edu.model import Model, ObjectLink, ResourceType
from lwm2m_edu.paths import Path

from .strategies import TEST_MODEL, VALUE_TYPES, mutate, resource_id, single_resource, values_of

CBOR = ContentFormat.CBOR
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UNKNOWN = Path("/4242/0/1")  # a resource TEST_MODEL knows nothing about


def typed(kind: ResourceType, multiple: bool = False) -> Path:
    path = Path(3442, 0, resource_id(kind, multiple))
    return path / 0 if multiple else path


def dec(hex_payload: str, path: Path | str, model: Model = TEST_MODEL) -> object:
    return decode(bytes.fromhex(hex_payload), CBOR, path, model=model)[Path(path)]


def enc(value: object, path: Path | str, model: Model = TEST_MODEL) -> str:
    return encode({path: value}, CBOR, path, model=model).hex()


def raise_codec_error(message: str) -> None:
    raise CodecError(message)


# -- what each LwM2M type looks like ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "hex_item"),
    [
        (ResourceType.INTEGER, 42, "182a"),
        (ResourceType.INTEGER, -1, "20"),
        (ResourceType.UNSIGNED, 2**64 - 1, "1bffffffffffffffff"),
        (ResourceType.FLOAT, 1.5, "f93e00"),
        (ResourceType.BOOLEAN, True, "f5"),
        (ResourceType.STRING, "abc", "63616263"),
        (ResourceType.CORELNK, "</3/0>", "663c2f332f303e"),
        (ResourceType.OPAQUE, b"\xab\xcd\xef", "43abcdef"),
        (ResourceType.TIME, datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC), "c11a5182428f"),
        (ResourceType.OBJLNK, ObjectLink(66, 0), "6436363a30"),
    ],
)
def test_each_type_is_written_as_its_cbor_item_and_read_back(kind, value, hex_item):
    assert enc(value, typed(kind)) == hex_item
    assert dec(hex_item, typed(kind)) == value


def test_time_is_tag_1_around_integer_seconds():
    value = datetime(2013, 5, 2, 10, 40, 15, 999999, tzinfo=UTC)  # the fraction is dropped
    assert enc(value, "/3/0/13", Model()) == "c11a5182428f"
    assert cbor2.loads(bytes.fromhex("c11a5182428f")) == datetime(
        2013, 5, 2, 10, 40, 15, tzinfo=UTC
    )


def test_time_also_reads_a_plain_integer():
    assert dec("1a5182428f", "/3/0/13", TEST_MODEL) == datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC)


def test_time_reads_tag_1_around_a_float():
    value = dec("c1fb41d4609090a00000", "/3/0/13")
    assert value == datetime(2013, 5, 2, 10, 38, 58, 500000, tzinfo=UTC)


def test_objlnk_is_the_text_oid_colon_iid():
    assert enc(ObjectLink(66, 0), "/3/0/22/0") == "6436363a30"
    assert dec("6436363a30", "/3/0/22/0") == ObjectLink(66, 0)


def test_half_float_300_is_read_as_a_float():
    value = dec("f95cb0", typed(ResourceType.FLOAT))
    assert value == 300.0
    assert isinstance(value, float)


def test_half_float_300_into_an_integer_resource_is_the_integer_300():
    assert dec("f95cb0", "/3/0/9") == 300


@pytest.mark.parametrize(
    ("value", "hex_item"),
    [(300.0, "f95cb0"), (3.4028234663852886e38, "fa7f7fffff"), (0.1, "fb3fb999999999999a")],
)
def test_floats_are_written_in_the_shortest_width_that_keeps_them_exact(value, hex_item):
    assert enc(value, typed(ResourceType.FLOAT)) == hex_item


def test_an_integer_given_for_a_float_resource_is_written_as_a_float():
    assert enc(300, typed(ResourceType.FLOAT)) == "f95cb0"


def test_decimal_fraction_tag_4_is_read_as_a_float():
    # 4([-2, 27315]) = 27315 * 10**-2, RFC 8949's own example
    assert dec("c48221196ab3", typed(ResourceType.FLOAT)) == 273.15


def test_whole_decimal_fraction_fits_an_integer_resource():
    assert dec("c4820102", typed(ResourceType.INTEGER)) == 20  # 2 * 10**1


def test_fractional_decimal_fraction_does_not_fit_an_integer_resource():
    with pytest.raises(CodecError, match="not a whole number"):
        dec("c48221196ab3", typed(ResourceType.INTEGER))


def test_indefinite_byte_string_is_read_as_one_opaque_value():
    assert dec("5f4101420203ff", typed(ResourceType.OPAQUE)) == b"\x01\x02\x03"


def test_indefinite_text_string_is_read_as_one_string():
    assert dec("7f61416142ff", "/3/0/0") == "AB"


def test_unknown_resource_keeps_the_natural_cbor_type():
    assert dec("f5", UNKNOWN) is True
    assert dec("6436363a30", UNKNOWN) == "66:0"  # nothing says it is an Objlnk
    assert dec("c11a5182428f", UNKNOWN) == datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC)
    assert dec("c48221196ab3", UNKNOWN) == 273.15


def test_item_to_value_also_takes_cbor2s_own_datetime_and_decimal():
    # If a caller decoded with cbor2's default tag decoders, tag 1 and tag 4 arrive as these.
    when = datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC)
    assert item_to_value(when, ResourceType.TIME, raise_codec_error) == when
    assert item_to_value(Decimal("273.15"), ResourceType.FLOAT, raise_codec_error) == 273.15
    assert item_to_value(Decimal("2E+1"), ResourceType.INTEGER, raise_codec_error) == 20


# -- errors ---------------------------------------------------------------------------------------


def test_bytes_after_the_item_are_an_error_with_their_offset():
    with pytest.raises(CodecError, match="follow the CBOR item") as caught:
        dec("182a00", "/3/0/9")
    assert caught.value.offset == 2
    assert caught.value.format is CBOR
    assert caught.value.path == Path("/3/0/9")


def test_empty_payload_is_an_error():
    with pytest.raises(CodecError, match="empty"):
        dec("", "/3/0/9")


def test_truncated_item_is_an_error():
    with pytest.raises(CodecError, match="ends in the middle"):
        dec("1a5182", "/3/0/9")


def test_malformed_cbor_is_an_error_at_the_byte_where_reading_stopped():
    with pytest.raises(CodecError, match="not well-formed CBOR") as caught:
        dec("62ffff", "/3/0/0")  # a text string that is not UTF-8
    assert caught.value.offset == 3


def test_a_string_claiming_2_to_the_64_bytes_fails_fast():
    with pytest.raises(CodecError, match="ends in the middle"):
        dec("5bffffffffffffffff", typed(ResourceType.OPAQUE))


def test_wrong_item_type_for_the_model_type_is_an_error():
    with pytest.raises(CodecError, match="got a text string where an Integer was expected"):
        dec("63616263", "/3/0/9")


@pytest.mark.parametrize(
    ("hex_item", "message"),
    [
        ("f6", "got null"),
        ("f7", "got undefined"),
        ("f0", "simple value 16"),
        ("820102", "got an array"),
        ("a10102", "got a map"),
        ("d8206161", "tag 32"),
        ("c249010000000000000000", "tag 2"),  # a bignum: LwM2M integers fit 64 bits
        ("d9d9f701", "tag 55799"),
    ],
)
def test_items_with_no_lwm2m_meaning_are_errors(hex_item, message):
    with pytest.raises(CodecError, match=message):
        dec(hex_item, UNKNOWN)


@pytest.mark.parametrize("tag", [28, 29, 258, 256, 25, 30, 37])
def test_cbor2s_own_tag_decoders_are_switched_off(tag):
    payload = cbor2.dumps(cbor2.CBORTag(tag, [0, 1]))
    with pytest.raises(CodecError, match=f"tag {tag}"):
        decode(payload, CBOR, UNKNOWN, model=TEST_MODEL)


def test_raw_tag_list_covers_every_tag_cbor2_decodes_itself():
    """A new cbor2 that decodes another tag natively must make us add it to the raw list.

    The one list serves CBOR (60), LwM2M CBOR (11544) and SenML CBOR (112).
    """
    for tag in range(0, 65536 + 10):
        for content in (0, "a", b"a", [0, 1]):
            try:
                item = cbor2.loads(
                    cbor2.dumps(cbor2.CBORTag(tag, content)), semantic_decoders=RAW_TAG_DECODERS
                )
            except cbor2.CBORDecodeError:
                pytest.fail(f"cbor2 interprets tag {tag}")
            assert isinstance(item, cbor2.CBORTag) and item.tag == tag, tag


@pytest.mark.parametrize(
    ("hex_item", "message"),
    [
        ("c163616263", "must hold a number of seconds"),
        ("c11bffffffffffffffff", "outside"),
        ("c483010203", r"\[exponent, mantissa\]"),
        ("c482f50a", "exponent of a decimal fraction must be an integer"),
        ("c4821a0098968001", "outside"),  # 1 * 10**10000000
    ],
)
def test_malformed_tag_1_and_tag_4_are_errors(hex_item, message):
    with pytest.raises(CodecError, match=message):
        dec(hex_item, typed(ResourceType.TIME) if hex_item.startswith("c1") else UNKNOWN)


def test_integer_out_of_range_is_an_error():
    with pytest.raises(CodecError, match="outside the range"):
        dec("1b8000000000000000", typed(ResourceType.INTEGER))  # 2**63


def test_negative_value_for_an_unsigned_resource_is_an_error():
    with pytest.raises(CodecError, match="outside the range"):
        dec("20", typed(ResourceType.UNSIGNED))


def test_bad_objlnk_text_is_an_error():
    with pytest.raises(CodecError, match="OID:IID"):
        dec("6130", typed(ResourceType.OBJLNK))


def test_a_whole_instance_is_not_a_single_value():
    with pytest.raises(CodecError, match="single value"):
        decode(b"\x01", CBOR, "/3/0")


def test_a_multiple_resource_is_not_a_single_value():
    with pytest.raises(CodecError, match="multiple resource"):
        encode({"/3/0/6": 1}, CBOR, "/3/0/6")


def test_encode_refuses_a_value_of_the_wrong_type():
    with pytest.raises(CodecError, match="not a valid Integer"):
        enc("95", "/3/0/9")


def test_executable_resource_has_no_value():
    with pytest.raises(CodecError, match="executable"):
        dec("01", "/3/0/4")


# -- properties -----------------------------------------------------------------------------------


@FAST
@given(single_resource())
def test_every_single_value_round_trips(path_value):
    path, value = path_value
    payload = encode({path: value}, CBOR, path, model=TEST_MODEL)
    assert decode(payload, CBOR, path, model=TEST_MODEL) == {path: value}


@FAST
@given(st.sampled_from(VALUE_TYPES).flatmap(lambda k: st.tuples(st.just(k), values_of(k))))
def test_every_resource_instance_value_round_trips(kind_value):
    kind, value = kind_value
    path = typed(kind, multiple=True)
    payload = encode({path: value}, CBOR, path, model=TEST_MODEL)
    assert decode(payload, CBOR, path, model=TEST_MODEL) == {path: value}


DECODE_PATHS = [typed(kind) for kind in VALUE_TYPES] + [UNKNOWN, Path("/3/0/13")]


@FAST
@given(st.binary(max_size=40), st.sampled_from(DECODE_PATHS))
def test_arbitrary_bytes_give_a_value_or_a_codec_error(payload, path):
    try:
        result = decode(payload, CBOR, path, model=TEST_MODEL)
    except CodecError:
        return
    assert list(result) == [path]


CBOR_TAGS = st.sampled_from([0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 32, 37, 258, 256, 1004, 55799])
CBOR_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.binary(max_size=6)
    | st.sampled_from(["66:0", "65535:65535", "1:", "x:1"])
)
CBOR_DATA = st.recursive(
    CBOR_LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.integers(-1, 70000) | st.text(max_size=2), children, max_size=3)
        | st.builds(cbor2.CBORTag, CBOR_TAGS, children)
    ),
    max_leaves=8,
)


@FAST
@given(CBOR_DATA, st.sampled_from(DECODE_PATHS))
def test_structured_random_cbor_gives_a_value_or_a_codec_error(data, path):
    with contextlib.suppress(CodecError):
        decode(cbor2.dumps(data), CBOR, path, model=TEST_MODEL)


@FAST
@given(single_resource(), st.data())
def test_mutated_valid_payloads_give_a_value_or_a_codec_error(path_value, data):
    path, value = path_value
    payload = mutate(data, encode({path: value}, CBOR, path, model=TEST_MODEL))
    with contextlib.suppress(CodecError):
        decode(payload, CBOR, path, model=TEST_MODEL)
