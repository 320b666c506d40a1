"""Paths: /O, /O/I, /O/I/R, /O/I/R/RI — parsing, canonical text, levels, limits."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2m_edu.paths import MAX_ID, Level, Path, PathError


@pytest.mark.parametrize(
    ("text", "ids", "level"),
    [
        ("/", (), Level.ROOT),
        ("/5", (5,), Level.OBJECT),
        ("/5/0", (5, 0), Level.INSTANCE),
        ("/5/0/3", (5, 0, 3), Level.RESOURCE),
        ("/3/0/11/0", (3, 0, 11, 0), Level.RESOURCE_INSTANCE),
    ],
)
def test_every_level_parses_to_its_ids(text, ids, level):
    path = Path(text)
    assert path.ids == ids
    assert path.level is level
    assert str(path) == text


def test_path_from_ids_equals_path_from_text():
    assert Path(5, 0, 3) == Path("/5/0/3") == Path.from_ids([5, 0, 3])


def test_empty_constructor_is_the_root():
    assert Path() == Path("/")
    assert Path().is_root


def test_parts_are_named():
    path = Path("/3/0/11/2")
    assert (path.object_id, path.instance_id, path.resource_id, path.resource_instance_id) == (
        3,
        0,
        11,
        2,
    )
    assert Path("/3").instance_id is None


def test_parent_and_child_walk_the_tree():
    assert Path("/5/0/3").parent == Path("/5/0")
    assert Path("/5/0") / 3 == Path("/5/0/3")
    assert Path("/").child(5) == Path("/5")


def test_root_has_no_parent():
    with pytest.raises(PathError, match="no parent"):
        Path("/").parent  # noqa: B018


def test_highest_valid_id_is_65534():
    assert Path(f"/{MAX_ID}").ids == (65534,)


def test_id_65535_is_reserved():
    with pytest.raises(PathError, match="reserved"):
        Path("/65535")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "must start with '/'"),
        ("5/0/3", "must start with '/'"),
        ("/5/0/", "trailing '/'"),
        ("/5//3", "empty level"),
        ("/5/x", "not a number"),
        ("/5/-1", "not a number"),
        ("/5/+1", "not a number"),
        ("/05", "leading zero"),
        ("/1/2/3/4/5", "at most 4"),
        ("/70000", "exceeds 65534"),
        ("/5/٣", "not a number"),  # a non-ASCII digit
        ("/ 5", "not a number"),
    ],
)
def test_invalid_text_is_quoted_and_explained(text, complaint):
    with pytest.raises(PathError) as info:
        Path(text)
    message = str(info.value)
    assert complaint in message
    assert repr(text) in message or text == ""


def test_ids_must_be_ints_not_bools_or_strings():
    with pytest.raises(PathError, match="not an int"):
        Path(5, True)
    with pytest.raises(PathError, match="not an int"):
        Path(5, "0")  # type: ignore[arg-type]


def test_negative_id_is_rejected():
    with pytest.raises(PathError, match="negative"):
        Path(5, -1)


def test_paths_sort_numerically_not_textually():
    assert sorted([Path("/3/0/10"), Path("/3/0/2"), Path("/3")]) == [
        Path("/3"),
        Path("/3/0/2"),
        Path("/3/0/10"),
    ]


def test_startswith_and_relative_to():
    assert Path("/3/0/6/1").startswith(Path("/3/0"))
    assert Path("/3/0").startswith(Path("/"))
    assert not Path("/3/1").startswith(Path("/3/0"))
    assert Path("/3/0/6/1").relative_to(Path("/3/0")) == (6, 1)
    with pytest.raises(PathError, match="not below"):
        Path("/3/1").relative_to(Path("/3/0"))


def test_uri_path_gives_coap_option_values():
    assert Path("/5/0/3").uri_path == ("5", "0", "3")
    assert Path.from_uri_path(["5", "0", "3"]) == Path("/5/0/3")
    assert Path("/").uri_path == ()


def test_repr_shows_the_canonical_text():
    assert repr(Path("/5/0/3")) == "Path('/5/0/3')"


def test_paths_are_hashable_dict_keys():
    assert {Path("/5/0/3"): 1}[Path(5, 0, 3)] == 1


@given(st.lists(st.integers(0, MAX_ID), max_size=4))
def test_text_round_trip_is_identity(ids):
    path = Path.from_ids(ids)
    assert Path(str(path)) == path
    assert str(Path(str(path))) == str(path)


@given(st.text(max_size=30))
def test_arbitrary_text_parses_or_raises_path_error(text):
    try:
        path = Path(text)
    except PathError:
        return
    assert str(path) == text
