"""CoRE Link Format (Content-Format 40): Register payloads, Discover and Bootstrap-Discover answers.

The examples are the ones quoted in the shared reference (lwm2m-core.md §1.1-§1.3, §9).
"""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2m_edu.codecs import CodecError, ContentFormat
from lwm2m_edu.codecs.linkformat import (
    FLOAT_ATTRIBUTES,
    FORMAT,
    INT_ATTRIBUTES,
    MAX_PAYLOAD,
    Link,
    RegisteredObject,
    Registration,
    encode_links,
    parse_links,
    parse_registration,
    registration_links,
)
from lwm2m_edu.paths import MAX_ID, Path

ANJAY_BOOTSTRAP_DISCOVER = (
    '</>;lwm2m=1.2,</0/0>;ssid=10;uri="coaps://server_1.example.com",</0/1>,'
    "</1/0/>;ssid=10,</3/0>,</4>,</55>;ver=1.9,</55/0>"
)
ANJAY_REGISTER = "</1>;ver=1.2,</1/0>,</1/1>,</3/0>,</5>"
LESHAN_REGISTER = (
    '</>;rt="oma.lwm2m";ct="60 110 112 1542 1543 11542 11543",</1/0>,</2>,</3/0>,</3442/0>'
)
SPEC_REGISTER_WITH_SPACES = "</>;ct=110, </1/0>,</1/1>,</2/0>,</3/0>,</4/0>,</5>"
DISCOVER_12 = (
    "</3>;ver=1.0;pmin=10;pmax=60,</3/0>,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,"
    "</3/0/6>;dim=2,</3/0/6/0>,</3/0/6/1>,</3/0/9>;gt=50"
)
ALTERNATE_PATH_REGISTER = '</lwm2m>;rt="oma.lwm2m",</lwm2m/1/101>'


def test_format_is_content_format_40() -> None:
    assert FORMAT is ContentFormat.LINK_FORMAT
    assert FORMAT == 40


# -- the reference examples --------------------------------------------------------------------


def test_anjay_bootstrap_discover_parses_to_its_links() -> None:
    assert parse_links(ANJAY_BOOTSTRAP_DISCOVER.encode()) == [
        Link("/", {"lwm2m": "1.2"}),
        Link("/0/0", {"ssid": 10, "uri": "coaps://server_1.example.com"}),
        Link("/0/1"),
        Link("/1/0/", {"ssid": 10}),
        Link("/3/0"),
        Link("/4"),
        Link("/55", {"ver": "1.9"}),
        Link("/55/0"),
    ]


def test_anjay_bootstrap_discover_encodes_back_to_the_same_text() -> None:
    assert encode_links(parse_links(ANJAY_BOOTSTRAP_DISCOVER)) == ANJAY_BOOTSTRAP_DISCOVER.encode()


def test_bootstrap_discover_trailing_slash_target_names_the_instance() -> None:
    link = parse_links(ANJAY_BOOTSTRAP_DISCOVER)[3]
    assert link.target == "/1/0/"
    assert link.path == Path("/1/0")


def test_anjay_register_parses_to_its_links() -> None:
    assert parse_links(ANJAY_REGISTER) == [
        Link("/1", {"ver": "1.2"}),
        Link("/1/0"),
        Link("/1/1"),
        Link("/3/0"),
        Link("/5"),
    ]


def test_anjay_register_encodes_back_to_the_same_text() -> None:
    assert encode_links(parse_links(ANJAY_REGISTER)) == ANJAY_REGISTER.encode()


def test_anjay_register_is_what_registration_links_builds() -> None:
    links = registration_links([(1, "1.2", [0, 1]), (3, None, [0]), (5, None, [])])
    assert encode_links(links) == ANJAY_REGISTER.encode()


def test_anjay_register_as_a_registration() -> None:
    assert parse_registration(ANJAY_REGISTER) == Registration(
        root_path="/",
        content_formats=(),
        objects={
            1: RegisteredObject("1.2", (0, 1)),
            3: RegisteredObject(None, (0,)),
            5: RegisteredObject(None, ()),
        },
    )


def test_leshan_register_parses_root_link_with_quoted_ct_list() -> None:
    links = parse_links(LESHAN_REGISTER)
    assert links[0] == Link("/", {"rt": "oma.lwm2m", "ct": "60 110 112 1542 1543 11542 11543"})
    assert [link.target for link in links[1:]] == ["/1/0", "/2", "/3/0", "/3442/0"]


def test_leshan_register_encodes_back_to_the_same_text() -> None:
    assert encode_links(parse_links(LESHAN_REGISTER)) == LESHAN_REGISTER.encode()


def test_leshan_register_as_a_registration_lists_content_formats() -> None:
    registration = parse_registration(LESHAN_REGISTER.encode())
    assert registration.root_path == "/"
    assert registration.content_formats == (60, 110, 112, 1542, 1543, 11542, 11543)
    assert registration.objects == {
        1: (None, (0,)),
        2: (None, ()),
        3: (None, (0,)),
        3442: (None, (0,)),
    }


def test_spec_register_example_with_spaces_parses() -> None:
    assert parse_links(SPEC_REGISTER_WITH_SPACES) == [
        Link("/", {"ct": "110"}),
        Link("/1/0"),
        Link("/1/1"),
        Link("/2/0"),
        Link("/3/0"),
        Link("/4/0"),
        Link("/5"),
    ]


def test_spec_register_example_encodes_without_the_spaces() -> None:
    assert encode_links(parse_links(SPEC_REGISTER_WITH_SPACES)) == (
        SPEC_REGISTER_WITH_SPACES.replace(", ", ",").encode()
    )


def test_spec_register_example_root_link_without_rt_gives_ct() -> None:
    registration = parse_registration(SPEC_REGISTER_WITH_SPACES)
    assert registration.content_formats == (110,)
    assert list(registration.objects) == [1, 2, 3, 4, 5]


def test_discover_12_example_parses_with_typed_attributes() -> None:
    links = parse_links(DISCOVER_12)
    assert links[0] == Link("/3", {"ver": "1.0", "pmin": 10, "pmax": 60})
    assert links[6] == Link("/3/0/6", {"dim": 2})
    assert links[-1] == Link("/3/0/9", {"gt": 50.0})
    assert isinstance(links[-1].attributes["gt"], float)
    assert [link.path for link in links] == [
        Path(p)
        for p in (
            "/3",
            "/3/0",
            "/3/0/1",
            "/3/0/2",
            "/3/0/3",
            "/3/0/4",
            "/3/0/6",
            "/3/0/6/0",
            "/3/0/6/1",
            "/3/0/9",
        )
    ]


def test_discover_12_example_encodes_back_to_the_same_text() -> None:
    assert encode_links(parse_links(DISCOVER_12)) == DISCOVER_12.encode()


def test_alternate_path_example_parses() -> None:
    assert parse_links(ALTERNATE_PATH_REGISTER) == [
        Link("/lwm2m", {"rt": "oma.lwm2m"}),
        Link("/lwm2m/1/101"),
    ]


def test_alternate_path_example_encodes_back_to_the_same_text() -> None:
    assert encode_links(parse_links(ALTERNATE_PATH_REGISTER)) == ALTERNATE_PATH_REGISTER.encode()


def test_alternate_path_example_as_a_registration() -> None:
    assert parse_registration(ALTERNATE_PATH_REGISTER) == Registration(
        root_path="/lwm2m", objects={1: RegisteredObject(None, (101,))}
    )


def test_alternate_path_example_is_what_registration_links_builds() -> None:
    links = registration_links([(1, None, [101])], root_path="/lwm2m")
    assert encode_links(links) == ALTERNATE_PATH_REGISTER.encode()


# -- Link ---------------------------------------------------------------------------------------


def test_link_str_is_the_link_text() -> None:
    assert str(Link("/3/0/6", {"dim": 2})) == "</3/0/6>;dim=2"
    assert str(Link("/5")) == "</5>"


def test_link_keeps_attributes_in_order() -> None:
    link = parse_links("</3>;pmax=60;ver=1.0;pmin=10")[0]
    assert list(link.attributes) == ["pmax", "ver", "pmin"]


def test_link_attributes_are_read_only() -> None:
    link = Link("/3", {"pmin": 1})
    with pytest.raises(TypeError):
        link.attributes["pmin"] = 2  # type: ignore[index]


def test_link_is_hashable_and_equal_by_value() -> None:
    assert {Link("/3", {"pmin": 1}), Link("/3", {"pmin": 1})} == {Link("/3", {"pmin": 1})}


def test_link_path_is_none_when_target_is_not_an_lwm2m_path() -> None:
    assert Link("/lwm2m/1").path is None
    assert Link("/3/x").path is None
    assert Link("coap://host/3").path is None


def test_link_path_tolerates_only_one_trailing_slash() -> None:
    assert Link("/1/0/").path == Path("/1/0")
    assert Link("/1/0//").path is None


def test_link_lwm2m_path_under_alternate_root() -> None:
    assert Link("/lwm2m/1/101").lwm2m_path("/lwm2m") == Path("/1/101")
    assert Link("/lwm2m").lwm2m_path("/lwm2m") == Path("/")
    assert Link("/lwm2mx/1").lwm2m_path("/lwm2m") is None
    assert Link("/1/101").lwm2m_path("/lwm2m") is None


def test_valueless_attribute_is_none() -> None:
    link = parse_links("</3/0/13>;obs")[0]
    assert link.attributes == {"obs": None}
    assert str(link) == "</3/0/13>;obs"


def test_quoted_numeric_attribute_reads_as_a_number() -> None:
    assert parse_links('</3/0>;pmin="10";gt="2.5"')[0].attributes == {"pmin": 10, "gt": 2.5}


def test_unknown_numeric_looking_attribute_stays_a_string() -> None:
    assert parse_links("</3>;foo=12")[0].attributes == {"foo": "12"}


def test_float_attribute_is_written_shortest() -> None:
    assert str(Link("/3/0/9", {"gt": 50.0, "lt": 0.5, "st": 1e20})) == (
        "</3/0/9>;gt=50;lt=0.5;st=1e+20"
    )


def test_int_given_for_float_attribute_is_stored_as_float() -> None:
    assert isinstance(Link("/3/0/9", {"gt": 50}).attributes["gt"], float)


def test_single_content_format_is_written_unquoted() -> None:
    assert str(Link("/", {"ct": "110"})) == "</>;ct=110"


def test_content_format_list_is_written_quoted() -> None:
    assert str(Link("/", {"ct": "110 112"})) == '</>;ct="110 112"'


def test_rt_and_uri_are_always_quoted() -> None:
    assert str(Link("/", {"rt": "oma.lwm2m", "uri": "coap://x"})) == (
        '</>;rt="oma.lwm2m";uri="coap://x"'
    )


def test_string_needing_quotes_is_escaped() -> None:
    link = Link("/3", {"title": 'say "hi", a\\b; ok'})
    assert str(link) == r'</3>;title="say \"hi\", a\\b; ok"'
    assert parse_links(str(link)) == [link]


def test_empty_string_value_is_quoted() -> None:
    assert str(Link("/3", {"x": ""})) == '</3>;x=""'
    assert parse_links('</3>;x=""')[0].attributes == {"x": ""}


def test_commas_and_semicolons_inside_quotes_do_not_separate() -> None:
    assert parse_links('</a>;t="1,2;3",</b>') == [Link("/a", {"t": "1,2;3"}), Link("/b")]


def test_commas_inside_target_do_not_separate() -> None:
    assert parse_links("</a,b;c>;x=1,</d>") == [Link("/a,b;c", {"x": "1"}), Link("/d")]


def test_whitespace_around_separators_is_tolerated() -> None:
    assert parse_links(" </3> ; ver=1.1 ,\r\n\t</3/0> ") == [
        Link("/3", {"ver": "1.1"}),
        Link("/3/0"),
    ]


def test_non_ascii_string_value_round_trips() -> None:
    link = Link("/3", {"title": "Gerät ✓"})
    assert encode_links([link]) == '</3>;title="Gerät ✓"'.encode()
    assert parse_links(encode_links([link])) == [link]


def test_empty_payload_is_no_links() -> None:
    assert parse_links(b"") == []
    assert encode_links([]) == b""


def test_encode_links_refuses_non_links() -> None:
    with pytest.raises(TypeError, match="Link"):
        encode_links(["</3>"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("target", "attributes", "error"),
    [
        ("/3", {"pmin": "10"}, TypeError),
        ("/3", {"pmin": True}, TypeError),
        ("/3", {"ver": 1.1}, TypeError),
        ("/3", {"gt": "50"}, TypeError),
        ("/3", {"pmin": -1}, CodecError),
        ("/3", {"gt": float("inf")}, CodecError),
        ("/3", {"bad name": "x"}, CodecError),
        ("/3", {"x": "\ud800"}, CodecError),
        ("", {}, CodecError),
        ("/a b", {}, CodecError),
        ("/a>", {}, CodecError),
        ("/%zz", {}, CodecError),
    ],
)
def test_link_refuses_what_it_could_not_write(target, attributes, error) -> None:
    with pytest.raises(error):
        Link(target, attributes)


# -- registration_links -------------------------------------------------------------------------


def test_registration_links_with_root_link_and_versions() -> None:
    links = registration_links(
        [(1, "1.1", [0]), (3, None, [0]), (5, "1.1", [0])], content_formats=[110]
    )
    assert encode_links(links) == (
        b'</>;rt="oma.lwm2m";ct=110,</1>;ver=1.1,</1/0>,</3/0>,</5>;ver=1.1,</5/0>'
    )


def test_registration_links_never_lists_security_or_oscore() -> None:
    links = registration_links([(0, None, [0, 1]), (1, None, [0]), (21, None, [0])])
    assert [link.target for link in links] == ["/1/0"]


def test_registration_links_lists_an_object_without_instances() -> None:
    assert registration_links([(5, None, [])]) == [Link("/5")]


def test_registration_links_leaves_out_object_link_without_attributes() -> None:
    assert registration_links([(3, None, [0])]) == [Link("/3/0")]


def test_registration_links_sorts_objects_and_instances() -> None:
    links = registration_links([(3, None, [0]), (1, None, [1, 0])])
    assert [link.target for link in links] == ["/1/0", "/1/1", "/3/0"]


def test_registration_links_quotes_several_content_formats() -> None:
    links = registration_links([(3, None, [0])], content_formats=[110, 112])
    assert str(links[0]) == '</>;rt="oma.lwm2m";ct="110 112"'


def test_registration_links_without_formats_or_alternate_root_has_no_root_link() -> None:
    assert registration_links([(3, None, [0])])[0].target == "/3/0"


def test_registration_links_round_trip_through_parse_registration() -> None:
    payload = encode_links(
        registration_links(
            [(1, "1.1", [0, 1]), (3, None, [0]), (5, None, []), (3442, "1.0", [7])],
            content_formats=[112],
        )
    )
    assert parse_registration(payload) == Registration(
        content_formats=(112,),
        objects={
            1: RegisteredObject("1.1", (0, 1)),
            3: RegisteredObject(None, (0,)),
            5: RegisteredObject(None, ()),
            3442: RegisteredObject("1.0", (7,)),
        },
    )


@pytest.mark.parametrize(
    ("objects", "kwargs"),
    [
        ([(1, None, [0]), (1, None, [1])], {}),
        ([(65535, None, [0])], {}),
        ([(1, None, [-1])], {}),
        ([(1, None, [0])], {"content_formats": [70000]}),
        ([(1, None, [0])], {"root_path": "/lwm2m/"}),
        ([(1, None, [0])], {"root_path": "lwm2m"}),
        ([(1, None, [0])], {"root_path": "/5"}),
    ],
)
def test_registration_links_refuses_bad_input(objects, kwargs) -> None:
    with pytest.raises(ValueError):
        registration_links(objects, **kwargs)


# -- parse_registration errors ------------------------------------------------------------------


def test_parse_registration_refuses_resource_links() -> None:
    with pytest.raises(CodecError, match="not an object or object instance") as info:
        parse_registration("</1/0>,</3/0/1>")
    assert info.value.offset == 7


def test_parse_registration_refuses_links_outside_the_alternate_root() -> None:
    with pytest.raises(CodecError, match="under '/lwm2m'"):
        parse_registration('</lwm2m>;rt="oma.lwm2m",</1/0>')


def test_parse_registration_refuses_two_root_links() -> None:
    with pytest.raises(CodecError, match="more than one"):
        parse_registration('</>;rt="oma.lwm2m",</a>;rt="oma.lwm2m"')


def test_parse_registration_refuses_bad_content_format() -> None:
    with pytest.raises(CodecError, match="not a content format"):
        parse_registration('</>;ct="110 json"')


# -- parse errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "offset", "message"),
    [
        ("/3/0", 0, "expected '<'"),
        ("</3/0>,", 7, "trailing ','"),
        ("</3/0", 0, "unterminated '<'"),
        ("</3/0>;t=1 </4>", 11, "expected ','"),
        ("</3/0 >", 5, "not allowed in a link target"),
        ("<>", 1, "empty target"),
        ("</3>;=1", 5, "attribute name"),
        ("</3>;", 5, "attribute name"),
        ('</3>;t="abc', 7, "unterminated quoted string"),
        ('</3>;t="abc\\', 7, "ends with a lone"),
        ('</3>;t="a\x01b"', 9, "control character"),
        ("</3>;t=", 7, "no value"),
        ("</3>;t=a b", 9, "expected ','"),
        ("</3>;pmin=ten", 10, "not a whole number"),
        ("</3>;pmin=-1", 10, "not a whole number"),
        ("</3>;pmin=" + "9" * 21, 10, "not a whole number"),
        ("</3>;gt=fifty", 8, "not a decimal number"),
        ("</3>;gt=1e999", 8, "too large"),
        ("</3>;pmin=1;pmin=2", 12, "appears twice"),
        ("</3>;title=ü", 11, "put the value in double quotes"),
    ],
)
def test_malformed_payload_raises_codec_error_at_offset(payload, offset, message) -> None:
    with pytest.raises(CodecError, match=message) as info:
        parse_links(payload)
    assert info.value.format is FORMAT
    assert info.value.offset == offset


def test_error_offset_is_in_bytes_for_bytes_input() -> None:
    payload = '</3>;title="ä",</4>;pmin=x'
    with pytest.raises(CodecError) as as_text:
        parse_links(payload)
    with pytest.raises(CodecError) as as_bytes:
        parse_links(payload.encode())
    assert as_text.value.offset == payload.index("x")
    assert as_bytes.value.offset == payload.encode().index(b"x")


def test_invalid_utf8_raises_codec_error_at_the_bad_byte() -> None:
    with pytest.raises(CodecError, match="UTF-8") as info:
        parse_links(b'</3>;t="\xff"')
    assert info.value.offset == 8


def test_lone_surrogate_in_text_raises_codec_error() -> None:
    with pytest.raises(CodecError, match="surrogate") as info:
        parse_links('</3>;t="\ud800"')
    assert info.value.offset == 8


def test_payload_over_the_cap_is_refused() -> None:
    payload = b"</3/0>," * (MAX_PAYLOAD // 7) + b"</3/0>"
    with pytest.raises(CodecError, match="at most") as info:
        parse_links(payload)
    assert info.value.offset == MAX_PAYLOAD


def test_payload_at_the_cap_is_read() -> None:
    link = b"</3/0>,"
    payload = link * (MAX_PAYLOAD // len(link) - 1) + b"</3/0>"
    payload += b" " * (MAX_PAYLOAD - len(payload))
    assert len(parse_links(payload)) == MAX_PAYLOAD // len(link)


def test_parse_links_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        parse_links(42)  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------------

ids = st.integers(min_value=0, max_value=MAX_ID)
lwm2m_targets = st.lists(ids, max_size=4).map(lambda i: str(Path.from_ids(i)))
targets = st.one_of(
    lwm2m_targets,
    lwm2m_targets.map(lambda t: t if t == "/" else t + "/"),
    lwm2m_targets.map(lambda t: "/lwm2m" + t.rstrip("/")),
    st.text(
        alphabet=string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=",
        min_size=1,
        max_size=12,
    ),
)
STRING_NAMES = ["ver", "lwm2m", "rt", "ct", "uri", "title"]
generic_names = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$&+-.^_`|~", min_size=1, max_size=8
).filter(lambda n: n not in INT_ATTRIBUTES | FLOAT_ATTRIBUTES)
names = st.one_of(
    st.sampled_from(sorted(INT_ATTRIBUTES | FLOAT_ATTRIBUTES) + STRING_NAMES), generic_names
)
tricky_strings = st.sampled_from(
    ["", "1.1", "110 112", "a,b", "a;b", 'say "hi"', "back\\slash", "<x>", "tab\there", "ü"]
)


@st.composite
def links(draw) -> Link:
    attributes = {}
    for name in draw(st.lists(names, max_size=5, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            attributes[name] = None
        elif name in INT_ATTRIBUTES:
            attributes[name] = draw(st.integers(0, 2**64 - 1))
        elif name in FLOAT_ATTRIBUTES:
            attributes[name] = draw(st.floats(allow_nan=False, allow_infinity=False))
        else:
            attributes[name] = draw(st.one_of(tricky_strings, st.text(max_size=12)))
    return Link(draw(targets), attributes)


@given(st.lists(links(), max_size=6))
@settings(max_examples=200)
def test_parse_of_encode_round_trips(generated: list[Link]) -> None:
    assert parse_links(encode_links(generated)) == generated


@given(st.lists(links(), max_size=6))
def test_encoded_links_are_canonical(generated: list[Link]) -> None:
    payload = encode_links(generated)
    assert encode_links(parse_links(payload)) == payload


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_arbitrary_bytes_parse_or_raise_codec_error(payload: bytes) -> None:
    try:
        parse_links(payload)
    except CodecError as exc:
        assert exc.format is FORMAT
        assert exc.offset is not None and 0 <= exc.offset <= len(payload)


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_arbitrary_text_parses_or_raises_codec_error(payload: str) -> None:
    try:
        parse_links(payload)
    except CodecError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(payload)


@given(
    st.sampled_from(
        [ANJAY_BOOTSTRAP_DISCOVER, LESHAN_REGISTER, DISCOVER_12, SPEC_REGISTER_WITH_SPACES]
    ),
    st.integers(0, 200),
    st.text(alphabet='<>;,="\\ /0a\x00', min_size=0, max_size=3),
    st.integers(0, 3),
)
@settings(max_examples=300)
def test_mutated_examples_parse_or_raise_codec_error(base, where, insert, cut) -> None:
    where %= len(base) + 1
    payload = base[:where] + insert + base[where + cut :]
    with contextlib.suppress(CodecError):
        parse_links(payload)
    with contextlib.suppress(CodecError):
        parse_registration(payload)
