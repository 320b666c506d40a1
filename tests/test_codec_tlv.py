"""OMA TLV (11542): the reference test vectors, the encoding rules, what the decoder rejects.

The vectors T1-T9 are those of the core reference §2.6 (from Wakaama and Leshan test suites).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2m_edu.codecs import CodecError, ContentFormat, decode, encode, tlv
from lwm2m_edu.model import (
    DEFAULT_MODEL,
    Model,
    ObjectDef,
    ObjectLink,
    Operations,
    ResourceDef,
    ResourceType,
)
from lwm2m_edu.paths import MAX_ID, Path

from .strategies import (
    TEST_MODEL,
    VALUE_TYPES,
    ids,
    instance_values,
    resource_id,
    single_resource,
    values_of,
)

TLV = ContentFormat.TLV
INT, STR, OBJLNK = ResourceType.INTEGER, ResourceType.STRING, ResourceType.OBJLNK
UNKNOWN = 4242  # an object id no model here knows: its values decode as raw bytes


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def resource_tlv(rid: int, value: bytes) -> bytes:
    """A Resource with Value TLV with an 8-bit id, for values of up to 255 bytes."""
    if len(value) <= 7:
        return bytes([0xC0 | len(value), rid]) + value
    return bytes([0xC8, rid, len(value)]) + value


def typed(kind: ResourceType, multiple: bool = False) -> Path:
    """/3442/0/R: the TEST_MODEL resource of type ``kind``."""
    return Path(3442, 0, resource_id(kind, multiple))


def decode_error(payload: bytes, base: str, model: Model = DEFAULT_MODEL) -> CodecError:
    with pytest.raises(CodecError) as info:
        tlv.decode(payload, Path(base), model)
    assert info.value.format is TLV
    return info.value


def encode_error(values: dict[str, object], base: str, model: Model = DEFAULT_MODEL) -> CodecError:
    with pytest.raises(CodecError) as info:
        tlv.encode({Path(p): v for p, v in values.items()}, Path(base), model)  # type: ignore[misc]
    assert info.value.format is TLV
    return info.value


def rw(id: int, name: str, kind: ResourceType, multiple: bool = False) -> ResourceDef:
    return ResourceDef(id, name, Operations.RW, kind, multiple=multiple)


#: /2 Access Control, enough of it for vector T5.
ACCESS_CONTROL = ObjectDef.of(2, "LwM2M Access Control", "1.0", multiple=True, mandatory=False,
                              resources=[rw(0, "Object ID", INT), rw(1, "Object Instance ID", INT),
                                         rw(2, "ACL", INT, multiple=True),
                                         rw(3, "Access Control Owner", INT)])  # fmt: skip
#: /65, the made-up object of Leshan's vector T6.
OBJECT_65 = ObjectDef.of(65, "Leshan test object 65", "1.0", multiple=True, mandatory=False,
                         resources=[rw(0, "links", OBJLNK, multiple=True), rw(1, "phone", STR),
                                    rw(2, "number", INT)])  # fmt: skip
VECTOR_MODEL = DEFAULT_MODEL.with_objects(ACCESS_CONTROL, OBJECT_65)


# -- the reference test vectors ------------------------------------------------------------------


def test_resource_with_8bit_id_and_inline_length_T1() -> None:
    payload = h("C3 37 01 02 03")
    base = Path(UNKNOWN, 0, 55)
    assert tlv.decode(payload, base, DEFAULT_MODEL) == {base: b"\x01\x02\x03"}
    assert tlv.encode({base: b"\x01\x02\x03"}, base, DEFAULT_MODEL) == payload


def test_object_instance_with_16bit_id_and_8bit_length_T2() -> None:
    # The reference gives only the header; the 9 bytes inside are three 1-byte resources.
    payload = h("28 02 03 09") + h("C1 00 01 C1 01 02 C1 02 03")
    base = Path(UNKNOWN)
    values = {Path(UNKNOWN, 0x0203, r): bytes([r + 1]) for r in range(3)}
    assert tlv.decode(payload, base, DEFAULT_MODEL) == values
    assert tlv.encode(values, base, DEFAULT_MODEL) == payload


def test_multiple_resource_with_16bit_length_T3() -> None:
    # The reference gives only the header; the 400 bytes inside are 100 two-byte instances.
    body = b"".join(bytes([0x42, ri, ri, 0xFF - ri]) for ri in range(100))
    payload = h("90 21 01 90") + body
    base = Path(UNKNOWN, 0, 33)
    values = {base / ri: bytes([ri, 0xFF - ri]) for ri in range(100)}
    assert tlv.decode(payload, base, DEFAULT_MODEL) == values
    assert tlv.encode(values, base, DEFAULT_MODEL) == payload


T4 = h("08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55")
T4_VALUES = {Path("/1/0/0"): 1, Path("/1/0/1"): 86400, Path("/1/0/6"): True, Path("/1/0/7"): "U"}


def test_server_object_instance_T4() -> None:
    assert tlv.decode(T4, Path("/1"), DEFAULT_MODEL) == T4_VALUES
    assert tlv.encode(T4_VALUES, Path("/1"), DEFAULT_MODEL) == T4


def test_access_control_instances_with_16bit_resource_instance_id_T5() -> None:
    payload = h(
        "08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F"
        " 08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F"
    )
    values = {
        Path("/2/0/0"): 1, Path("/2/0/1"): 0, Path("/2/0/2/127"): 7, Path("/2/0/3"): 127,
        Path("/2/2/0"): 3, Path("/2/2/1"): 0, Path("/2/2/2/127"): 7, Path("/2/2/2/310"): 1,
        Path("/2/2/3"): 127,
    }  # fmt: skip
    assert tlv.decode(payload, Path("/2"), VECTOR_MODEL) == values
    assert tlv.encode(values, Path("/2"), VECTOR_MODEL) == payload


def test_objlnk_instances_string_and_4byte_integer_T6() -> None:
    payload = h(
        "88 00 0C 44 00 00 42 00 00 44 01 00 42 00 01"
        " C8 01 0D 38 36 31 33 38 30 30 37 35 35 35 30 30 C4 02 12 34 56 78"
    )
    values = {
        Path("/65/0/0/0"): ObjectLink(66, 0),
        Path("/65/0/0/1"): ObjectLink(66, 1),
        Path("/65/0/1"): "8613800755500",
        Path("/65/0/2"): 0x12345678,
    }
    assert tlv.decode(payload, Path("/65/0"), VECTOR_MODEL) == values
    assert tlv.encode(values, Path("/65/0"), VECTOR_MODEL) == payload


T8 = h("86 06 41 00 01 41 01 05")
POWER_SOURCES = {Path("/3/0/6/0"): 1, Path("/3/0/6/1"): 5}


def test_bare_resource_instances_are_accepted_T7() -> None:
    assert tlv.decode(h("41 00 01 41 01 05"), Path("/3/0/6"), DEFAULT_MODEL) == POWER_SOURCES
    # We accept the bare form but write the Multiple Resource wrapper (T8), as Leshan does.
    assert tlv.encode(POWER_SOURCES, Path("/3/0/6"), DEFAULT_MODEL) == T8


def test_multiple_resource_wrapper_T8() -> None:
    assert tlv.decode(T8, Path("/3/0/6"), DEFAULT_MODEL) == POWER_SOURCES
    assert tlv.encode(POWER_SOURCES, Path("/3/0/6"), DEFAULT_MODEL) == T8


T9 = h(
    "080079C800144F70656E204D6F62696C6520416C6C69616E6365C801164C69676874776569676874204D324D20436C"
    "69656E74C80209333435303030313233C303312E30860641000141010588070842000ED842011388870841007D4201"
    "0384C10964C10A0F830B410000C40D5182428FC60E2B30323A3030C11055"
)
DEVICE_VALUES = {
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
    Path("/3/0/13"): datetime.fromtimestamp(1367491215, UTC),
    Path("/3/0/14"): "+02:00",
    Path("/3/0/16"): "U",
}


def test_device_instance_wrapped_in_object_instance_T9() -> None:
    assert tlv.decode(T9, Path("/3/0"), DEFAULT_MODEL) == DEVICE_VALUES
    assert tlv.decode(T9, Path("/3"), DEFAULT_MODEL) == DEVICE_VALUES
    assert tlv.encode(DEVICE_VALUES, Path("/3"), DEFAULT_MODEL) == T9


def test_device_instance_as_bare_resources_T9() -> None:
    bare = T9[3:]  # without the "08 00 79" Object Instance header
    assert tlv.decode(bare, Path("/3/0"), DEFAULT_MODEL) == DEVICE_VALUES
    assert tlv.encode(DEVICE_VALUES, Path("/3/0"), DEFAULT_MODEL) == bare


# -- how values are written -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "value_hex"),
    [
        (0, "00"),
        (127, "7F"),
        (-128, "80"),
        (128, "00 80"),
        (-129, "FF 7F"),
        (32767, "7F FF"),
        (32768, "00 00 80 00"),
        (86400, "00 01 51 80"),
        (2**31 - 1, "7F FF FF FF"),
        (2**31, "00 00 00 00 80 00 00 00"),
        (-(2**63), "80 00 00 00 00 00 00 00"),
    ],
)
def test_integer_takes_the_smallest_of_1_2_4_8_bytes(number: int, value_hex: str) -> None:
    path = Path("/3/0/9")
    payload = resource_tlv(9, h(value_hex))
    assert tlv.encode({path: number}, path, DEFAULT_MODEL) == payload
    assert tlv.decode(payload, path, DEFAULT_MODEL) == {path: number}


@pytest.mark.parametrize(
    ("number", "value_hex"),
    [
        (127, "7F"),
        (200, "00 C8"),  # the smallest *signed* size: a 1.0 peer reading an Integer agrees
        (2**63 - 1, "7F FF FF FF FF FF FF FF"),
        (2**63, "80 00 00 00 00 00 00 00"),  # too big for signed: 8 bytes unsigned
        (2**64 - 1, "FF FF FF FF FF FF FF FF"),
    ],
)
def test_unsigned_is_written_in_the_smallest_signed_size_else_8_bytes(
    number: int, value_hex: str
) -> None:
    path = typed(ResourceType.UNSIGNED)
    payload = resource_tlv(resource_id(ResourceType.UNSIGNED), h(value_hex))
    assert tlv.encode({path: number}, path, TEST_MODEL) == payload
    assert tlv.decode(payload, path, TEST_MODEL) == {path: number}


def test_unsigned_is_read_as_unsigned_whatever_its_size() -> None:
    path = typed(ResourceType.UNSIGNED)
    rid = path.resource_id
    assert tlv.decode(bytes([0xC1, rid, 0xC8]), path, TEST_MODEL) == {path: 200}  # type: ignore[list-item]
    assert tlv.decode(bytes([0xC2, rid, 0xFF, 0xFF]), path, TEST_MODEL) == {path: 65535}  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("number", "size"),
    [(1.5, 4), (-0.0, 4), (3.4028234663852886e38, 4), (0.1, 8), (1e300, 8), (2**200, 8)],
)
def test_float_takes_4_bytes_when_exact_else_8(number: float, size: int) -> None:
    path = typed(ResourceType.FLOAT)
    payload = tlv.encode({path: number}, path, TEST_MODEL)
    header = 2 if size <= 7 else 3  # 8 bytes need a length field
    assert len(payload) == header + size
    assert tlv.decode(payload, path, TEST_MODEL) == {path: float(number)}


def test_float_reads_ieee754_single_and_double() -> None:
    path = typed(ResourceType.FLOAT)
    rid = path.resource_id
    assert path.resource_id is not None
    single = bytes([0xC4, rid]) + struct.pack(">f", 300.0)  # type: ignore[list-item]
    double = bytes([0xC8, rid, 8]) + struct.pack(">d", 0.1)  # type: ignore[list-item]
    assert tlv.decode(single, path, TEST_MODEL) == {path: 300.0}
    assert tlv.decode(double, path, TEST_MODEL) == {path: 0.1}


def test_boolean_is_one_byte_0_or_1() -> None:
    assert tlv.encode({Path("/1/0/6"): False}, Path("/1/0/6"), DEFAULT_MODEL) == h("C1 06 00")
    assert tlv.decode(h("C1 06 01"), Path("/1/0/6"), DEFAULT_MODEL) == {Path("/1/0/6"): True}


def test_time_is_signed_seconds_since_1970() -> None:
    path = Path("/3/0/13")
    moment = datetime(2013, 5, 2, 10, 40, 15, tzinfo=UTC)
    assert tlv.encode({path: moment}, path, DEFAULT_MODEL) == h("C4 0D 51 82 42 8F")
    before_1970 = datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert tlv.encode({path: before_1970}, path, DEFAULT_MODEL) == h("C1 0D FF")


def test_objlnk_is_object_id_then_instance_id_2_bytes_each() -> None:
    path = typed(OBJLNK)
    rid = path.resource_id
    payload = bytes([0xC4, rid]) + h("12 34 56 78")  # type: ignore[list-item]
    assert tlv.decode(payload, path, TEST_MODEL) == {path: ObjectLink(0x1234, 0x5678)}
    null = bytes([0xC4, rid]) + h("FF FF FF FF")  # type: ignore[list-item]
    assert tlv.encode({path: ObjectLink(65535, 65535)}, path, TEST_MODEL) == null


def test_string_is_utf8() -> None:
    path = Path("/3/0/14")
    assert tlv.encode({path: "±1"}, path, DEFAULT_MODEL) == h("C3 0E C2 B1 31")


# -- how TLV headers are written ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "header_hex"),
    [
        (0, "C0 00"),
        (7, "C7 00"),
        (8, "C8 00 08"),
        (255, "C8 00 FF"),
        (256, "D0 00 01 00"),
        (65535, "D0 00 FF FF"),
        (65536, "D8 00 01 00 00"),
    ],
)
def test_length_is_inline_up_to_7_else_the_smallest_length_field(
    length: int, header_hex: str
) -> None:
    path = Path("/5/0/0")  # Package, Opaque
    payload = tlv.encode({path: bytes(length)}, path, DEFAULT_MODEL)
    assert payload == h(header_hex) + bytes(length)
    assert tlv.decode(payload, path, DEFAULT_MODEL) == {path: bytes(length)}


def test_a_value_of_2_to_the_24_bytes_has_no_length_field() -> None:
    path = Path("/5/0/0")
    error = encode_error({"/5/0/0": bytes(2**24)}, "/5/0/0")
    assert "16777215" in error.reason
    assert error.path == path


@pytest.mark.parametrize(("rid", "header_hex"), [(255, "C1 FF"), (256, "E1 01 00")])
def test_ids_above_255_take_16_bits(rid: int, header_hex: str) -> None:
    path = Path(UNKNOWN, 0, rid)
    payload = h(header_hex) + b"\x2a"
    assert tlv.encode({path: b"\x2a"}, path, DEFAULT_MODEL) == payload
    assert tlv.decode(payload, path, DEFAULT_MODEL) == {path: b"\x2a"}


def test_longer_id_and_length_forms_than_needed_are_accepted() -> None:
    # resource 9 with a 16-bit id and an 8-bit length field holding 1
    assert tlv.decode(h("E8 00 09 01 64"), Path("/3/0"), DEFAULT_MODEL) == {Path("/3/0/9"): 100}


def test_output_is_ordered_by_id_whatever_the_input_order() -> None:
    reordered = dict(reversed(list(DEVICE_VALUES.items())))
    assert tlv.encode(reordered, Path("/3"), DEFAULT_MODEL) == T9


def test_resource_instance_base_is_one_resource_instance_tlv() -> None:
    path = Path("/3/0/6/1")
    assert tlv.encode({path: 5}, path, DEFAULT_MODEL) == h("41 01 05")
    assert tlv.decode(h("41 01 05"), path, DEFAULT_MODEL) == {path: 5}


def test_multiple_resource_without_instances_is_an_empty_wrapper() -> None:
    path = Path("/3/0/6")
    assert tlv.encode({}, path, DEFAULT_MODEL) == h("80 06")
    assert tlv.decode(h("80 06"), path, DEFAULT_MODEL) == {}
    assert tlv.decode(b"", path, DEFAULT_MODEL) == {}


def test_unknown_resource_decodes_as_raw_bytes() -> None:
    payload = h("C4 01 00 01 51 80")
    assert tlv.decode(payload, Path(f"/{UNKNOWN}/0"), DEFAULT_MODEL) == {
        Path(UNKNOWN, 0, 1): h("00 01 51 80")
    }


def test_unknown_resource_is_encoded_by_its_python_type() -> None:
    path = Path(UNKNOWN, 0, 1)
    assert tlv.encode({path: 86400}, path, DEFAULT_MODEL) == h("C4 01 00 01 51 80")
    assert tlv.encode({path / 0: "a", path / 1: True}, path, DEFAULT_MODEL) == h(
        "86 01 41 00 61 41 01 01"
    )


# -- what the encoder refuses ---------------------------------------------------------------------


def test_root_base_cannot_be_encoded() -> None:
    assert "several objects" in encode_error({"/3/0/9": 1}, "/").reason


def test_executable_resource_cannot_be_encoded() -> None:
    error = encode_error({"/3/0/4": b""}, "/3/0")
    assert error.path == Path("/3/0/4")
    assert "executable" in error.reason


def test_multiple_resource_needs_values_per_instance() -> None:
    error = encode_error({"/3/0/6": 1}, "/3/0")
    assert "/3/0/6/0" in error.reason


def test_single_resource_has_no_instances() -> None:
    assert "single resource" in encode_error({"/3/0/9/0": 1}, "/3/0").reason
    assert "single resource" in encode_error({"/3/0/9/0": 1}, "/3/0/9/0").reason


def test_value_of_the_wrong_type_is_refused() -> None:
    error = encode_error({"/3/0/9": "full"}, "/3/0")
    assert error.path == Path("/3/0/9")


def test_resource_instance_base_needs_exactly_its_value() -> None:
    assert "exactly one value" in encode_error({}, "/3/0/6/1").reason


# -- what the decoder rejects ---------------------------------------------------------------------


def test_root_base_cannot_be_decoded() -> None:
    assert "several objects" in decode_error(T4, "/").reason


def test_length_running_past_the_end() -> None:
    error = decode_error(h("C8 00 05 41"), "/3/0")
    assert error.offset == 0
    assert "says 5 bytes, but only 1 remain in the payload" in error.reason


def test_length_running_past_the_enclosing_tlv() -> None:
    error = decode_error(h("08 00 03 C2 00 05"), "/1")
    assert error.offset == 3
    assert error.path == Path("/1/0")
    assert "only 1 remain in the Object Instance TLV" in error.reason


def test_header_cut_short() -> None:
    error = decode_error(h("C9 00"), "/3/0")
    assert error.offset == 0
    assert "takes 3 bytes" in error.reason


def test_truncated_length_field() -> None:
    error = decode_error(h("D0 09 01"), "/3/0")
    assert "takes 4 bytes" in error.reason


def test_bytes_after_the_one_tlv_of_a_resource() -> None:
    error = decode_error(h("C1 09 64 C1 0A 0F"), "/3/0/9")
    assert error.offset == 3
    assert "3 more bytes follow" in error.reason


def test_duplicate_object_instance_ids() -> None:
    error = decode_error(T4 + T4, "/1")
    assert error.offset == len(T4)
    assert error.path == Path("/1/0")
    assert "twice" in error.reason


def test_duplicate_resource_ids() -> None:
    error = decode_error(h("C1 09 64 C1 09 63"), "/3/0")
    assert (error.offset, error.path) == (3, Path("/3/0/9"))


def test_duplicate_resource_instance_ids() -> None:
    error = decode_error(h("86 06 41 00 01 41 00 05"), "/3/0/6")
    assert (error.offset, error.path) == (5, Path("/3/0/6/0"))


def test_object_instance_id_contradicting_the_base() -> None:
    error = decode_error(T4, "/1/1")
    assert "id 0, but the request is for /1/1" in error.reason


def test_resource_id_contradicting_the_base() -> None:
    assert "id 10" in decode_error(h("C1 0A 0F"), "/3/0/9").reason
    assert "id 7" in decode_error(h("86 07 41 00 01"), "/3/0/6").reason
    assert "id 2" in decode_error(h("41 02 01"), "/3/0/6/1").reason


def test_resource_instance_directly_in_an_object_instance() -> None:
    error = decode_error(h("41 00 01"), "/1/0")
    assert "Resource Instance TLV" in error.reason
    assert error.path == Path("/1/0")


def test_object_instance_inside_an_object_instance() -> None:
    error = decode_error(h("08 00 02 00 01"), "/1")
    assert (error.offset, error.path) == (3, Path("/1/0"))
    assert "found an Object Instance TLV" in error.reason


def test_object_instance_after_resources() -> None:
    assert "Object Instance" in decode_error(h("C1 00 01 00 00"), "/1/0").reason


def test_multiple_resource_inside_a_multiple_resource() -> None:
    error = decode_error(h("83 06 81 07 00"), "/3/0/6")
    assert (error.offset, error.path) == (2, Path("/3/0/6"))


def test_resource_at_object_level() -> None:
    assert "Object Instance" in decode_error(h("C1 00 01"), "/1").reason


def test_single_resource_sent_as_multiple_resource() -> None:
    error = decode_error(h("81 09 41 00 64"), "/3/0")
    assert "single resource" in error.reason


def test_multiple_resource_sent_as_single_resource() -> None:
    error = decode_error(h("C1 06 01"), "/3/0")
    assert "multiple resource" in error.reason
    assert error.path == Path("/3/0/6")


def test_empty_payload_for_a_single_resource() -> None:
    assert decode_error(b"", "/3/0/9").offset == 0


def test_resource_instance_of_a_single_resource() -> None:
    assert "single resource" in decode_error(h("41 00 64"), "/3/0/9/0").reason


def test_boolean_other_than_0_or_1() -> None:
    error = decode_error(h("C1 06 02"), "/1/0")
    assert (error.path, error.offset) == (Path("/1/0/6"), 2)
    assert "00 or 01, not 02" in error.reason


def test_integer_length_not_1_2_4_or_8() -> None:
    error = decode_error(h("C3 09 00 00 64"), "/3/0")
    assert (error.path, error.offset) == (Path("/3/0/9"), 2)
    assert "1, 2, 4 or 8 bytes" in error.reason


def test_float_length_not_4_or_8() -> None:
    path = typed(ResourceType.FLOAT)
    error = decode_error(bytes([0xC2, path.resource_id, 0, 0]), str(path), TEST_MODEL)  # type: ignore[list-item]
    assert "4 or 8 bytes" in error.reason


def test_objlnk_not_4_bytes() -> None:
    path = typed(OBJLNK)
    error = decode_error(bytes([0xC3, path.resource_id, 0, 0, 0]), str(path), TEST_MODEL)  # type: ignore[list-item]
    assert "4 bytes" in error.reason


def test_string_not_utf8() -> None:
    error = decode_error(h("C3 0E 41 FF 42"), "/3/0")
    assert (error.path, error.offset) == (Path("/3/0/14"), 3)


def test_time_beyond_year_9999() -> None:
    assert "9999" in decode_error(h("C8 0D 08 7F FF FF FF FF FF FF FF"), "/3/0").reason


def test_inline_length_bits_set_beside_a_length_field() -> None:
    error = decode_error(h("C9 09 01 64"), "/3/0")
    assert "bits 2-0" in error.reason
    assert error.offset == 0


def test_reserved_id_65535() -> None:
    assert "65535" in decode_error(h("E1 FF FF 01"), f"/{UNKNOWN}/0").reason


def test_executable_resource_cannot_be_decoded() -> None:
    error = decode_error(h("C0 04"), "/3/0")
    assert error.path == Path("/3/0/4")
    assert "executable" in error.reason


def test_big_payload_decodes_in_one_pass() -> None:
    # 15000 instances of one multiple resource: about 70 kB, so a 3-byte length field
    values = {Path(3, 0, 7, ri): ri for ri in range(15000)}
    payload = tlv.encode(values, Path("/3/0/7"), DEFAULT_MODEL)
    assert payload[:5] == h("98 07") + (len(payload) - 5).to_bytes(3, "big")
    assert tlv.decode(payload, Path("/3/0/7"), DEFAULT_MODEL) == values


# -- through the public entry points --------------------------------------------------------------


def test_public_entry_points_with_text_paths() -> None:
    assert encode({"/1/0/1": 86400}, TLV, "/1/0/1") == h("C4 01 00 01 51 80")
    assert decode(T4, TLV, "/1/0") == T4_VALUES
    assert decode(T4, ContentFormat.LEGACY_TLV, "/1") == T4_VALUES


def test_public_decode_raises_codec_error() -> None:
    with pytest.raises(CodecError):
        decode(h("C8 00 05 41"), TLV, "/3/0")


def test_public_encode_with_a_model() -> None:
    values = {typed(ResourceType.FLOAT): 1.5}
    payload = resource_tlv(resource_id(ResourceType.FLOAT), struct.pack(">f", 1.5))
    assert encode(values, TLV, "/3442/0", model=TEST_MODEL) == payload
    assert decode(payload, TLV, "/3442/0", model=TEST_MODEL) == values


# -- round trips ----------------------------------------------------------------------------------


def round_trip(values: dict[Path, object], base: Path) -> dict[Path, object]:
    payload = tlv.encode(values, base, TEST_MODEL)  # type: ignore[arg-type]
    return tlv.decode(payload, base, TEST_MODEL)  # type: ignore[return-value]


@given(single_resource())
def test_round_trip_single_resource(item: tuple[Path, object]) -> None:
    path, value = item
    assert round_trip({path: value}, path) == {path: value}


@st.composite
def multiple_resource(draw: st.DrawFn) -> tuple[Path, dict[Path, object]]:
    kind = draw(st.sampled_from(VALUE_TYPES))
    resource = Path(3442, draw(ids), resource_id(kind, multiple=True))
    instances = draw(st.lists(ids, max_size=5, unique=True))
    return resource, {resource / ri: draw(values_of(kind)) for ri in instances}


@given(multiple_resource())
def test_round_trip_multiple_resource(item: tuple[Path, dict[Path, object]]) -> None:
    resource, values = item
    assert round_trip(values, resource) == values


@given(multiple_resource())
def test_round_trip_resource_instance(item: tuple[Path, dict[Path, object]]) -> None:
    _, values = item
    for path, value in values.items():
        assert round_trip({path: value}, path) == {path: value}


@given(instance_values())
def test_round_trip_object_instance(item: tuple[Path, dict[Path, object]]) -> None:
    instance, values = item
    assert round_trip(values, instance) == values


@settings(max_examples=50)
@given(st.lists(instance_values(), max_size=4, unique_by=lambda item: item[0]))
def test_round_trip_object(items: list[tuple[Path, dict[Path, object]]]) -> None:
    values = {path: value for _, part in items for path, value in part.items()}
    assert round_trip(values, Path(3442)) == values


# -- fuzzing: any bytes decode to a dict or raise CodecError, nothing else -------------------------

FUZZ_BASES = [
    Path(p)
    for p in ("/", "/3442", "/3442/0", "/3", "/3/0", "/3/0/6", "/3/0/6/0", "/3/0/9", "/1/0",
              f"/{UNKNOWN}", f"/{UNKNOWN}/0", f"/{UNKNOWN}/0/1", f"/{UNKNOWN}/0/1/0", "/3/0/4")
] + [typed(kind, multiple) for kind in VALUE_TYPES for multiple in (False, True)] + [
    typed(kind, True) / 0 for kind in VALUE_TYPES
]  # fmt: skip


def decodes_or_fails_cleanly(payload: bytes, base: Path) -> None:
    try:
        result = tlv.decode(payload, base, TEST_MODEL)
    except CodecError as error:
        assert error.format is TLV
        assert error.offset is None or 0 <= error.offset <= len(payload)
    else:
        assert isinstance(result, dict)
        assert all(path.startswith(base) for path in result)


@settings(max_examples=400)
@given(st.binary(max_size=64), st.sampled_from(FUZZ_BASES))
def test_fuzz_arbitrary_bytes(payload: bytes, base: Path) -> None:
    decodes_or_fails_cleanly(payload, base)


@st.composite
def mutated(draw: st.DrawFn, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        position = draw(st.integers(0, len(data)))
        if action == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del data[position:]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=3))
        elif position < len(data):
            del data[position]
    return bytes(data)


@settings(max_examples=150)
@given(st.data(), st.sampled_from([T4, T8, T9, T9[3:], h("41 00 01 41 01 05")]))
def test_fuzz_mutated_reference_vectors(data: st.DataObject, vector: bytes) -> None:
    payload = data.draw(mutated(vector))
    for base in (Path("/1"), Path("/1/0"), Path("/3"), Path("/3/0"), Path("/3/0/6")):
        decodes_or_fails_cleanly(payload, base)


@settings(max_examples=100)
@given(st.data(), instance_values())
def test_fuzz_mutated_encodings(data: st.DataObject, item: tuple[Path, dict[Path, object]]) -> None:
    instance, values = item
    payload = data.draw(mutated(tlv.encode(values, instance.parent, TEST_MODEL)))  # type: ignore[arg-type]
    for base in (instance.parent, instance, *(Path(*p.ids[:3]) for p in values)):
        decodes_or_fails_cleanly(payload, base)


def test_max_id_is_the_largest_id_a_tlv_may_carry() -> None:
    path = Path(UNKNOWN, 0, MAX_ID)
    assert tlv.decode(tlv.encode({path: b""}, path, DEFAULT_MODEL), path, DEFAULT_MODEL) == {
        path: b""
    }
