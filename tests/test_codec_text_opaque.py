"""text/plain (0) and opaque (42): one value each, typed by the model."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2m_edu.codecs import CodecError, ContentFormat, decode, encode
from lwm2m_edu.model import ObjectLink, ResourceType
from lwm2m_edu.paths import Path

from .strategies import TEST_MODEL, VALUE_TYPES, resource_id, single_resource

TEXT, OPAQUE = ContentFormat.TEXT, ContentFormat.OPAQUE


def typed(kind: ResourceType) -> Path:
    return Path(3442, 0, resource_id(kind))


@pytest.mark.parametrize(
    ("path", "payload", "value"),
    [
        ("/3/0/9", b"95", 95),
        ("/3/0/0", b"Open Mobile Alliance", "Open Mobile Alliance"),
        ("/3/0/13", b"1367491215", datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC)),
        ("/1/0/6", b"1", True),
        ("/5/0/3", b"0", 0),
        ("/5/0/8/0", b"2", 2),
    ],
)
def test_text_decodes_values_by_the_model_type(path, payload, value):
    assert decode(payload, TEXT, path) == {Path(path): value}
    assert encode({path: value}, TEXT, path) == payload


def test_text_writes_objlnk_as_oid_colon_iid():
    path = typed(ResourceType.OBJLNK)
    assert encode({path: ObjectLink(66, 0)}, TEXT, path, model=TEST_MODEL) == b"66:0"
    assert decode(b"66:0", TEXT, path, model=TEST_MODEL) == {path: ObjectLink(66, 0)}


def test_text_writes_opaque_as_padded_base64():
    path = typed(ResourceType.OPAQUE)
    assert encode({path: b"\xab\xcd"}, TEXT, path, model=TEST_MODEL) == b"q80="
    with pytest.raises(CodecError, match="base64"):
        decode(b"q80", TEXT, path, model=TEST_MODEL)


def test_text_float_accepts_exponent_and_rejects_words():
    path = typed(ResourceType.FLOAT)
    assert decode(b"1e+20", TEXT, path, model=TEST_MODEL) == {path: 1e20}
    for word in (b"nan", b"inf", b"1.", b"0x10"):
        with pytest.raises(CodecError, match="not a decimal number"):
            decode(word, TEXT, path, model=TEST_MODEL)


def test_text_float_refuses_non_finite_values():
    path = typed(ResourceType.FLOAT)
    with pytest.raises(CodecError, match="only finite floats"):
        encode({path: float("inf")}, TEXT, path, model=TEST_MODEL)


def test_text_boolean_is_only_1_or_0():
    with pytest.raises(CodecError, match="'1' or '0'"):
        decode(b"true", TEXT, "/1/0/6")


def test_text_integer_out_of_range_is_refused():
    with pytest.raises(CodecError, match="outside the range"):
        decode(str(2**63).encode(), TEXT, "/3/0/9")


def test_text_unknown_resource_decodes_as_string():
    assert decode(b"hello", TEXT, "/9999/0/1") == {Path("/9999/0/1"): "hello"}


def test_text_invalid_utf8_names_the_byte_offset():
    with pytest.raises(CodecError) as info:
        decode(b"ab\xff", TEXT, "/3/0/0")
    assert info.value.offset == 2
    assert "byte 2" in str(info.value) and "/3/0/0" in str(info.value)


def test_text_refuses_a_whole_instance():
    with pytest.raises(CodecError, match=r"single value.*SenML"):
        decode(b"1", TEXT, "/3/0")


def test_text_refuses_a_multiple_resource_and_names_an_instance_instead():
    with pytest.raises(CodecError, match=r"multiple resource.*/3/0/6/0"):
        decode(b"1", TEXT, "/3/0/6")


def test_text_refuses_executable_resources():
    with pytest.raises(CodecError, match="executable"):
        decode(b"", TEXT, "/5/0/2")


def test_text_encode_needs_exactly_the_value_at_the_base_path():
    with pytest.raises(CodecError, match="exactly one value at /3/0/9"):
        encode({"/3/0/9": 1, "/3/0/9/1": 2}, TEXT, "/3/0/9")


def test_text_encode_checks_the_value_type():
    with pytest.raises(CodecError, match="not a valid Integer"):
        encode({"/3/0/9": "95"}, TEXT, "/3/0/9")
    with pytest.raises(CodecError, match="no timezone"):
        encode({"/3/0/13": datetime(2020, 1, 1)}, TEXT, "/3/0/13")


def test_empty_text_is_an_empty_string():
    assert decode(b"", TEXT, "/5/0/1") == {Path("/5/0/1"): ""}


def test_opaque_carries_the_bytes_themselves():
    assert decode(b"\x00\x01firmware", OPAQUE, "/5/0/0") == {Path("/5/0/0"): b"\x00\x01firmware"}
    assert encode({"/5/0/0": b"\x00"}, OPAQUE, "/5/0/0") == b"\x00"


def test_opaque_refuses_resources_that_are_not_opaque():
    with pytest.raises(CodecError, match=r"only Opaque.*String"):
        decode(b"x", OPAQUE, "/5/0/1")


TEXT_TYPES = [t for t in VALUE_TYPES]


@pytest.mark.parametrize("kind", TEXT_TYPES, ids=lambda t: t.name)
@given(data=st.data())
def test_text_round_trip_is_identity(kind, data):
    path, value = data.draw(single_resource(kind))
    payload = encode({path: value}, TEXT, path, model=TEST_MODEL)
    assert decode(payload, TEXT, path, model=TEST_MODEL) == {path: value}


@given(st.binary())
def test_opaque_round_trip_is_identity(value):
    path = typed(ResourceType.OPAQUE)
    assert decode(
        encode({path: value}, OPAQUE, path, model=TEST_MODEL), OPAQUE, path, model=TEST_MODEL
    ) == {path: value}


@pytest.mark.parametrize("kind", TEXT_TYPES, ids=lambda t: t.name)
@given(payload=st.binary(max_size=64))
def test_text_decoder_raises_only_codec_error(kind, payload):
    path = typed(kind)
    try:
        result = decode(payload, TEXT, path, model=TEST_MODEL)
    except CodecError:
        return
    assert list(result) == [path]
