"""Observe and notification attributes, rule by rule (reference: lwm2m-core.md §4 and §1.4).

Time is a number of seconds passed in; a ``Sensor`` stands in for the data model and counts
its reads. Nothing sleeps and nothing touches a network.
"""

from __future__ import annotations

import doctest
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lwm2m_edu.observe
from lwm2m_edu.model import Value
from lwm2m_edu.observe import (
    ATTRIBUTE_NAMES,
    OBSERVE_SEQUENCE_MODULUS,
    Attributes,
    AttributeStore,
    InvalidAttributes,
    Notification,
    Observations,
    parse_attributes,
)
from lwm2m_edu.paths import Path

SEEDED = settings(max_examples=300, deadline=None, derandomize=True)

BATTERY = Path("/3/0/9")  # Integer, single
MANUFACTURER = Path("/3/0/0")  # String
VOLTAGES = Path("/3/0/7")  # Integer, multiple
CURRENT_TIME = Path("/3/0/13")  # Time
STORING = Path("/1/0/6")  # Boolean
STATE = Path("/5/0/3")
RESULT = Path("/5/0/5")


class Sensor:
    """The data model as ``Observations.due`` sees it: values by path, and a count of reads."""

    def __init__(self, values: Mapping[Path, Value]) -> None:
        self.values = dict(values)
        self.reads = 0

    def read(self, paths: list[Path]) -> dict[Path, Value]:
        self.reads += 1
        return {p: v for p, v in self.values.items() if any(p.startswith(o) for o in paths)}

    def set(self, path: Path, value: Value, observations: Observations, now: float) -> None:
        self.values[path] = value
        observations.changed([path], now)


def observing(
    attributes: Attributes, value: Value = 80, path: Path = BATTERY
) -> tuple[Observations, Sensor]:
    """One observation of ``path`` (holding ``value``), its first response sent at t=0."""
    sensor = Sensor({path: value})
    observations = Observations()
    observations.add("k", [path], attributes, sensor.read([path]), now=0)
    return observations, sensor


def values_sent(notifications: list[Notification]) -> list[Value]:
    return [value for n in notifications for value in n.values.values()]


# -- parsing (Write-Attributes and 1.2 Observe queries) -------------------------------------------


def test_parse_reads_every_attribute_with_its_type():
    query = [
        "pmin=10",
        "pmax=60",
        "gt=20.5",
        "lt=-3",
        "st=0.5",
        "epmin=1",
        "epmax=30",
        "edge=1",
        "con=0",
        "hqmax=8",
    ]
    parsed = parse_attributes(query)
    assert parsed == {
        "pmin": 10,
        "pmax": 60,
        "gt": 20.5,
        "lt": -3.0,
        "st": 0.5,
        "epmin": 1,
        "epmax": 30,
        "edge": 1,
        "con": 0,
        "hqmax": 8,
    }
    assert list(parsed) == list(ATTRIBUTE_NAMES)
    assert all(type(parsed[name]) is float for name in ("gt", "lt", "st"))
    assert all(type(parsed[name]) is int for name in ("pmin", "pmax", "epmin", "epmax", "hqmax"))


@pytest.mark.parametrize("item", ["pmax", "pmax="])
def test_parse_a_key_without_value_means_remove_it(item):
    assert parse_attributes([item]) == {"pmax": None}


@pytest.mark.parametrize("item", ["foo=1", "PMIN=1", "depth=2", "=5", ""])
def test_parse_refuses_an_unknown_attribute(item):
    with pytest.raises(InvalidAttributes, match="not a notification attribute"):
        parse_attributes([item])


@pytest.mark.parametrize("item", ["dim=2", "ver=1.1"])
def test_parse_refuses_the_read_only_properties_dim_and_ver(item):
    with pytest.raises(InvalidAttributes, match="can't write it"):
        parse_attributes([item])


@pytest.mark.parametrize(
    "item",
    [
        "pmin=ten",
        "pmin=1.5",
        "pmin=0x10",
        "pmin=1_0",
        "gt=1,5",
        "gt=nan",
        "gt=inf",
        "st= 5",
        "gt=1e",
    ],
)
def test_parse_refuses_a_malformed_number(item):
    with pytest.raises(InvalidAttributes, match=item.partition("=")[0]):
        parse_attributes([item])


@pytest.mark.parametrize("item", ["pmin=-1", "pmax=-60", "epmin=-1", "epmax=-2", "st=-0.5"])
def test_parse_refuses_negative_periods_and_steps(item):
    with pytest.raises(InvalidAttributes, match="must not be negative"):
        parse_attributes([item])


def test_parse_accepts_negative_and_exponent_thresholds():
    assert parse_attributes(["gt=-5.5", "lt=-1e2"]) == {"gt": -5.5, "lt": -100.0}


@pytest.mark.parametrize("item", ["edge=2", "con=-1", "con=true"])
def test_parse_refuses_edge_and_con_other_than_0_or_1(item):
    with pytest.raises(InvalidAttributes):
        parse_attributes([item])


def test_parse_refuses_an_attribute_given_twice():
    with pytest.raises(InvalidAttributes, match="pmin is given twice"):
        parse_attributes(["pmin=1", "pmin=2"])


def test_query_and_link_text_read_back_the_same_set():
    attributes = Attributes(pmin=10, pmax=60, gt=50, st=0.5)
    assert attributes.query() == ["pmin=10", "pmax=60", "gt=50", "st=0.5"]
    assert str(attributes) == "pmin=10;pmax=60;gt=50;st=0.5"
    assert Attributes.from_mapping(parse_attributes(attributes.query())) == attributes


# -- Attributes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields", [{"pmin": -1}, {"pmin": 1.5}, {"con": 2}, {"gt": True}, {"st": float("nan")}]
)
def test_attributes_check_each_value_when_built(fields):
    with pytest.raises(InvalidAttributes):
        Attributes(**fields)


def test_thresholds_are_floats_whatever_number_was_given():
    assert Attributes(gt=50) == Attributes(gt=50.0)
    assert type(Attributes(gt=50).gt) is float


def test_pmax_below_pmin_is_ignored():
    assert Attributes(pmin=30, pmax=10).max_period is None
    assert Attributes(pmin=10, pmax=10).max_period == 10


def test_pmax_zero_means_no_maximum_period():
    assert Attributes(pmax=0).max_period is None


def test_epmin_not_below_epmax_is_ignored():
    assert Attributes(epmin=10, epmax=5).min_evaluation_period == 0
    assert Attributes(epmin=2, epmax=5).min_evaluation_period == 2


def test_value_conditions_helpers():
    attributes = Attributes(pmin=1, gt=5, edge=1)
    assert attributes.has_value_conditions
    assert attributes.without_value_conditions() == Attributes(pmin=1)
    assert not Attributes(pmin=1).has_value_conditions


def test_attributes_repr_shows_only_what_is_set():
    assert repr(Attributes(pmin=10, gt=20.5)) == "Attributes(pmin=10, gt=20.5)"
    assert repr(Attributes()) == "Attributes()"


# -- validation (§4 rule 2) → 4.00 ----------------------------------------------------------------


def test_epmin_must_be_below_epmax():
    store = AttributeStore()
    with pytest.raises(InvalidAttributes, match=r"epmin \(10\) must be below epmax \(10\)"):
        store.update(BATTERY, {"epmin": 10, "epmax": 10})


def test_lt_must_be_below_gt():
    store = AttributeStore()
    with pytest.raises(InvalidAttributes, match=r"^lt \(50\) must be below gt \(10\)$"):
        store.update(BATTERY, {"lt": 50, "gt": 10})


def test_lt_plus_two_st_must_be_below_gt():
    store = AttributeStore()
    with pytest.raises(InvalidAttributes, match="lt \\+ 2·st"):
        store.update(BATTERY, {"lt": 10, "gt": 20, "st": 5})
    store.update(BATTERY, {"lt": 10, "gt": 20, "st": 4.5})
    assert store.at(BATTERY) == {"gt": 20.0, "lt": 10.0, "st": 4.5}


@pytest.mark.parametrize("name", ["gt", "lt", "st", "edge"])
@pytest.mark.parametrize("path", [Path("/3"), Path("/3/0")])
def test_value_conditions_only_on_a_resource_or_resource_instance(name, path):
    with pytest.raises(InvalidAttributes, match="resource instance"):
        AttributeStore().update(path, {name: 1})


@pytest.mark.parametrize("name", ["gt", "lt", "st"])
def test_gt_lt_st_only_on_numeric_resources(name):
    with pytest.raises(InvalidAttributes, match=r"Manufacturer\) is String"):
        AttributeStore().update(MANUFACTURER, {name: 1})


def test_time_resources_count_as_numeric():
    store = AttributeStore()
    store.update(CURRENT_TIME, {"st": 60})
    assert store.at(CURRENT_TIME) == {"st": 60.0}


def test_edge_only_on_boolean_resources():
    store = AttributeStore()
    store.update(STORING, {"edge": 1})
    with pytest.raises(InvalidAttributes, match="edge needs a Boolean resource"):
        store.update(BATTERY, {"edge": 1})


def test_value_conditions_allowed_where_the_model_does_not_know_the_resource():
    store = AttributeStore()
    store.update(Path("/3303/0/5700"), {"gt": 30, "lt": 10})
    assert store.at(Path("/3303/0/5700")) == {"gt": 30.0, "lt": 10.0}


def test_the_rules_apply_to_the_set_that_results_at_the_path():
    store = AttributeStore()
    store.update(BATTERY, {"gt": 10})
    with pytest.raises(InvalidAttributes, match="lt \\(50\\) must be below gt \\(10\\)"):
        store.update(BATTERY, {"lt": 50})


def test_a_refused_update_changes_nothing():
    store = AttributeStore()
    store.update(BATTERY, {"pmin": 5, "gt": 10})
    with pytest.raises(InvalidAttributes):
        store.update(BATTERY, {"pmin": 1, "lt": 50})
    assert store.at(BATTERY) == {"pmin": 5, "gt": 10.0}


def test_attributes_are_refused_on_the_root():
    with pytest.raises(InvalidAttributes, match="not '/'"):
        AttributeStore().update(Path("/"), {"pmin": 1})


def test_update_refuses_an_unknown_name_even_to_remove():
    with pytest.raises(InvalidAttributes):
        AttributeStore().update(BATTERY, {"foo": None})


def test_a_valueless_key_removes_the_attribute():
    store = AttributeStore()
    store.update(BATTERY, {"pmin": 10, "pmax": 60})
    store.update(BATTERY, parse_attributes(["pmin", "st"]))  # removing what is unset is fine
    assert store.at(BATTERY) == {"pmax": 60}
    store.update(BATTERY, {"pmax": None})
    assert store.at(BATTERY) == {}
    assert len(store) == 0


# -- inheritance and override (§4 rule 1) ---------------------------------------------------------


def test_attributes_inherit_from_object_to_resource_instance():
    store = AttributeStore()
    store.update(Path("/3"), {"pmin": 1})
    store.update(Path("/3/0"), {"pmax": 60})
    store.update(VOLTAGES, {"st": 100})
    store.update(VOLTAGES / 1, {"gt": 3300})
    assert store.effective(VOLTAGES / 1) == Attributes(pmin=1, pmax=60, st=100, gt=3300)
    assert store.effective(VOLTAGES / 0) == Attributes(pmin=1, pmax=60, st=100)
    assert store.effective(Path("/3/0")) == Attributes(pmin=1, pmax=60)
    assert store.effective(Path("/5/0/3")) == Attributes()


def test_a_lower_level_overrides_what_it_sets():
    store = AttributeStore()
    store.update(Path("/3"), {"pmin": 10, "pmax": 60})
    store.update(BATTERY, {"pmin": 2})
    assert store.effective(BATTERY) == Attributes(pmin=2, pmax=60)


def test_server_defaults_fill_in_below_every_level():
    store = AttributeStore()
    defaults = Attributes(pmin=5, pmax=300)
    assert store.effective(BATTERY, defaults) == defaults
    store.update(Path("/3/0"), {"pmax": 30})
    assert store.effective(BATTERY, defaults) == Attributes(pmin=5, pmax=30)


def test_at_shows_only_what_was_set_at_that_path():
    store = AttributeStore()
    store.update(Path("/3"), {"pmin": 10})
    store.update(BATTERY, {"gt": 50})
    assert store.at(Path("/3")) == {"pmin": 10}
    assert store.at(BATTERY) == {"gt": 50.0}
    assert store.at(Path("/3/0")) == {}
    assert list(store) == [Path("/3"), BATTERY]


def test_forget_drops_the_attributes_of_a_deleted_instance():
    store = AttributeStore()
    store.update(Path("/3303"), {"pmin": 1})
    store.update(Path("/3303/1"), {"pmax": 2})
    store.update(Path("/3303/1/5700"), {"gt": 3})
    store.forget(Path("/3303/1"))
    assert list(store) == [Path("/3303")]


def test_observe_request_attributes_replace_the_stored_set():
    store = AttributeStore()
    store.update(Path("/3"), {"pmin": 10, "con": 1})
    store.update(BATTERY, {"st": 5})
    defaults = Attributes(pmin=1, pmax=300)
    attributes = store.for_observation([BATTERY], defaults, request={"pmax": 30})
    assert attributes == Attributes(pmin=1, pmax=30)


def test_without_request_attributes_an_observation_runs_with_the_effective_set():
    store = AttributeStore()
    store.update(BATTERY, {"st": 5})
    assert store.for_observation([BATTERY], request={}) == Attributes(st=5)


def test_observe_request_attributes_are_checked_like_write_attributes():
    with pytest.raises(InvalidAttributes, match="lt \\(9\\) must be below gt \\(1\\)"):
        AttributeStore().for_observation([BATTERY], request={"gt": 1, "lt": 9})
    with pytest.raises(InvalidAttributes, match="object instance"):
        AttributeStore().for_observation([Path("/3/0")], request={"st": 1})


def test_a_composite_observe_request_may_not_carry_value_conditions():
    with pytest.raises(InvalidAttributes, match="composite"):
        AttributeStore().for_observation([BATTERY, STATE], request={"st": 1})


def test_a_composite_observation_combines_its_paths_attributes():
    store = AttributeStore()
    store.update(BATTERY, {"pmin": 10, "pmax": 60, "st": 5, "con": 0})
    store.update(STATE, {"pmin": 2, "pmax": 90, "con": 1, "epmax": 30})
    assert store.for_observation([BATTERY, STATE]) == Attributes(pmin=2, pmax=60, epmax=30, con=1)


def test_attribute_store_repr_lists_each_path():
    store = AttributeStore()
    assert repr(store) == "<AttributeStore empty>"
    store.update(BATTERY, {"pmin": 1, "gt": 50})
    assert repr(store) == "<AttributeStore /3/0/9 pmin=1;gt=50>"


# -- when to notify: pmin, pmax (§4 rule 4) -------------------------------------------------------


def test_nothing_is_sent_while_nothing_changes_and_there_is_no_pmax():
    observations, sensor = observing(Attributes())
    assert observations.due(1000, sensor.read) == []
    assert observations.next_deadline(1000) is None
    assert sensor.reads == 1  # the first response only


def test_a_change_is_notified_at_once_without_pmin():
    observations, sensor = observing(Attributes())
    sensor.set(BATTERY, 79, observations, now=3)
    assert observations.next_deadline(3) == 3
    assert values_sent(observations.due(3, sensor.read)) == [79]


def test_pmin_holds_a_change_until_pmin_after_the_last_notification():
    observations, sensor = observing(Attributes(pmin=10))
    sensor.set(BATTERY, 79, observations, now=3)
    assert observations.due(3, sensor.read) == []
    assert observations.due(9.5, sensor.read) == []
    assert values_sent(observations.due(10, sensor.read)) == [79]
    sensor.set(BATTERY, 78, observations, now=12)
    assert observations.due(12, sensor.read) == []
    assert values_sent(observations.due(20, sensor.read)) == [78]


def test_a_held_notification_carries_the_value_captured_when_it_triggered():
    observations, sensor = observing(Attributes(pmin=10, gt=50), value=40)
    sensor.set(BATTERY, 60, observations, now=2)  # crosses gt: captured
    observations.due(2, sensor.read)
    sensor.set(BATTERY, 45, observations, now=4)  # back below, but vs. last sent (40) no crossing
    observations.due(4, sensor.read)
    [held] = observations.due(10, sensor.read)
    assert held.values == {BATTERY: 60}
    assert held.reason == "gt=50 crossed: 40 → 60"


def test_after_a_held_notification_the_newer_value_is_evaluated_against_it():
    observations, sensor = observing(Attributes(pmin=10, gt=50), value=40)
    sensor.set(BATTERY, 60, observations, now=2)
    observations.due(2, sensor.read)
    sensor.set(BATTERY, 45, observations, now=4)
    observations.due(4, sensor.read)
    observations.due(10, sensor.read)  # sends 60
    assert observations.due(10, sensor.read) == []  # 45 vs 60 crosses: held for pmin again
    assert values_sent(observations.due(20, sensor.read)) == [45]


def test_a_change_back_to_the_value_sent_is_not_a_change():
    observations, sensor = observing(Attributes())
    sensor.set(BATTERY, 80, observations, now=1)
    assert observations.due(1, sensor.read) == []


def test_pmax_forces_a_notification_without_a_change():
    observations, sensor = observing(Attributes(pmax=60))
    assert observations.due(59, sensor.read) == []
    [notification] = observations.due(60, sensor.read)
    assert notification.values == {BATTERY: 80}
    assert notification.reason == "pmax=60 s elapsed"


def test_pmax_counts_from_the_last_notification():
    observations, sensor = observing(Attributes(pmax=60))
    sensor.set(BATTERY, 79, observations, now=25)
    observations.due(25, sensor.read)
    assert observations.next_deadline(25) == 85
    assert observations.due(60, sensor.read) == []


def test_pmax_below_pmin_is_ignored_by_the_engine():
    observations, sensor = observing(Attributes(pmin=30, pmax=10))
    assert observations.next_deadline(0) is None
    assert observations.due(100, sensor.read) == []


# -- change conditions (§4 rule 5) ----------------------------------------------------------------


def test_without_value_conditions_any_change_notifies():
    observations, sensor = observing(Attributes(), value="ACME", path=MANUFACTURER)
    sensor.set(MANUFACTURER, "ACME Corp", observations, now=1)
    [notification] = observations.due(1, sensor.read)
    assert notification.reason == "value changed"


@pytest.mark.parametrize("name", ["gt", "lt"])
@pytest.mark.parametrize(("before", "after"), [(40, 60), (60, 40), (50, 51), (50, 49)])
def test_a_threshold_fires_when_crossed_in_either_direction(name, before, after):
    observations, sensor = observing(Attributes(**{name: 50}), value=before)
    sensor.set(BATTERY, after, observations, now=1)
    [notification] = observations.due(1, sensor.read)
    assert notification.reason.startswith(f"{name}=50 crossed")


@pytest.mark.parametrize("name", ["gt", "lt"])
@pytest.mark.parametrize(("before", "after"), [(40, 45), (60, 55), (51, 50.5), (40, 50)])
def test_a_threshold_stays_silent_while_the_value_does_not_cross_it(name, before, after):
    observations, sensor = observing(Attributes(**{name: 50}), value=before)
    sensor.set(BATTERY, after, observations, now=1)
    assert observations.due(1, sensor.read) == []


def test_st_fires_at_exactly_st_from_the_last_value_sent():
    observations, sensor = observing(Attributes(st=5), value=80)
    sensor.set(BATTERY, 76, observations, now=1)
    assert observations.due(1, sensor.read) == []
    sensor.set(BATTERY, 75, observations, now=2)
    [notification] = observations.due(2, sensor.read)
    assert notification.reason == "st=5 reached: 80 → 75"


def test_st_compares_with_the_last_value_sent_not_the_last_sampled():
    observations, sensor = observing(Attributes(st=3), value=0)
    sent = []
    for now, value in enumerate(range(1, 8), start=1):  # drifts by 1 per second
        sensor.set(BATTERY, value, observations, now)
        sent += values_sent(observations.due(now, sensor.read))
    assert sent == [3, 6]


def test_change_conditions_are_or_ed():
    observations, sensor = observing(Attributes(gt=50, st=20), value=45)
    sensor.set(BATTERY, 51, observations, now=1)  # small step, but crosses gt
    [by_gt] = observations.due(1, sensor.read)
    sensor.set(BATTERY, 90, observations, now=2)  # no crossing, but a big step
    [by_st] = observations.due(2, sensor.read)
    assert by_gt.reason.startswith("gt=50") and by_st.reason.startswith("st=20")


def test_edge_1_notifies_on_false_to_true_only():
    observations, sensor = observing(Attributes(edge=1), value=False, path=STORING)
    sensor.set(STORING, True, observations, now=1)
    [rising] = observations.due(1, sensor.read)
    sensor.set(STORING, False, observations, now=2)
    assert observations.due(2, sensor.read) == []
    assert rising.reason == "edge=1: false → true"


def test_edge_0_notifies_on_true_to_false_only():
    observations, sensor = observing(Attributes(edge=0), value=True, path=STORING)
    sensor.set(STORING, False, observations, now=1)
    [falling] = observations.due(1, sensor.read)
    sensor.set(STORING, True, observations, now=2)
    assert observations.due(2, sensor.read) == []
    assert falling.reason == "edge=0: true → false"


def test_thresholds_compare_time_values_as_seconds():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    observations, sensor = observing(Attributes(st=60), value=start, path=CURRENT_TIME)
    sensor.set(CURRENT_TIME, start.replace(second=59), observations, now=1)
    assert observations.due(1, sensor.read) == []
    sensor.set(CURRENT_TIME, start.replace(minute=1), observations, now=2)
    assert len(observations.due(2, sensor.read)) == 1


def test_value_conditions_are_ignored_on_a_multiple_resource():
    sensor = Sensor({VOLTAGES / 0: 3300, VOLTAGES / 1: 5000})
    observations = Observations()
    observations.add("k", [VOLTAGES], Attributes(st=1000), sensor.read([VOLTAGES]), now=0)
    sensor.set(VOLTAGES / 1, 5001, observations, now=1)
    [notification] = observations.due(1, sensor.read)
    assert notification.reason == "value changed"
    assert notification.values == {VOLTAGES / 0: 3300, VOLTAGES / 1: 5001}


def test_value_conditions_are_ignored_on_non_numeric_values():
    observations, sensor = observing(Attributes(st=5, gt=1), value="ACME", path=MANUFACTURER)
    sensor.set(MANUFACTURER, "ACME Corp", observations, now=1)
    assert values_sent(observations.due(1, sensor.read)) == ["ACME Corp"]


def test_gt_lt_st_do_not_apply_to_booleans():
    observations, sensor = observing(Attributes(gt=0.5), value=False, path=STORING)
    sensor.set(STORING, True, observations, now=1)
    assert observations.due(1, sensor.read)[0].reason == "value changed"


# -- epmin / epmax (§4 rule 6) --------------------------------------------------------------------


def test_epmax_samples_a_value_nobody_reported():
    observations, sensor = observing(Attributes(epmax=30, st=5), value=80)
    sensor.values[BATTERY] = 70  # a polled sensor: no changed() call
    assert observations.next_deadline(0) == 30
    assert observations.due(29, sensor.read) == []
    assert values_sent(observations.due(30, sensor.read)) == [70]


def test_epmax_sampling_alone_never_sends():
    observations, sensor = observing(Attributes(epmax=30))
    assert observations.due(30, sensor.read) == []
    assert sensor.reads == 2
    assert observations.next_deadline(30) == 60


def test_epmin_debounces_a_burst_of_changes():
    observations, sensor = observing(Attributes(epmin=5), value=80)
    for now, value in [(1, 81), (2, 82), (3, 83)]:
        sensor.set(BATTERY, value, observations, now)
        assert observations.due(now, sensor.read) == []
    assert observations.next_deadline(3) == 5
    assert values_sent(observations.due(5, sensor.read)) == [83]
    assert sensor.reads == 2


def test_pmax_reads_and_sends_even_inside_epmin():
    observations, sensor = observing(Attributes(pmax=10, epmin=8, st=5), value=80)
    sensor.set(BATTERY, 81, observations, now=7)
    assert observations.due(8, sensor.read) == []  # evaluated at 8: below st
    sensor.set(BATTERY, 90, observations, now=9)  # the next evaluation may come at 16...
    assert observations.due(9, sensor.read) == []
    [notification] = observations.due(10, sensor.read)  # ...but pmax is due at 10
    assert notification.values == {BATTERY: 90}
    assert notification.reason == "pmax=10 s elapsed"


# -- paths, composite, cancel (§1.4) --------------------------------------------------------------


def test_a_change_concerns_observations_of_the_path_and_its_ancestors():
    sensor = Sensor({STATE: 0, RESULT: 0, BATTERY: 80})
    observations = Observations()
    for key in ["/5", "/5/0", "/5/0/3", "/5/0/5", "/3"]:
        paths = [Path(key)]
        observations.add(key, paths, Attributes(), sensor.read(paths), now=0)
    sensor.set(STATE, 1, observations, now=1)
    assert {o.key for o in observations if o.dirty} == {"/5", "/5/0", "/5/0/3"}
    assert [n.key for n in observations.due(1, sensor.read)] == ["/5", "/5/0", "/5/0/3"]


def test_a_change_of_the_instance_set_concerns_the_object():
    temperature = Path("/3303/0/5700")
    sensor = Sensor({temperature: 21.5})
    observations = Observations()
    observations.add("k", [Path("/3303")], Attributes(), sensor.read([Path("/3303")]), now=0)
    sensor.values[Path("/3303/1/5700")] = 19.0  # instance 1 created
    observations.changed([Path("/3303")], now=1)
    [notification] = observations.due(1, sensor.read)
    assert set(notification.values) == {temperature, Path("/3303/1/5700")}


def test_a_composite_observation_sends_all_its_paths_on_any_change():
    sensor = Sensor({BATTERY: 80, STATE: 0, RESULT: 0})
    observations = Observations()
    paths = [BATTERY, STATE]
    observations.add("k", paths, Attributes(pmin=1, st=50), sensor.read(paths), now=0)
    sensor.set(RESULT, 1, observations, now=2)  # not observed
    assert observations.due(2, sensor.read) == []
    sensor.set(STATE, 1, observations, now=3)  # st is ignored: several values
    [notification] = observations.due(3, sensor.read)
    assert notification.values == {BATTERY: 80, STATE: 1}


def test_cancel_stops_the_notifications():
    observations, sensor = observing(Attributes(pmax=10))
    assert observations.cancel("k") is True
    assert observations.cancel("k") is False
    assert "k" not in observations and len(observations) == 0
    assert observations.due(100, sensor.read) == []
    assert observations.next_deadline(100) is None


def test_observing_again_on_the_same_key_replaces_the_observation():
    observations, _ = observing(Attributes(pmax=10))
    observations.add("k", [STATE], Attributes(), {STATE: 0}, now=5)
    assert len(observations) == 1
    assert observations["k"].paths == (STATE,)
    assert observations.next_deadline(5) is None


def test_clear_drops_every_observation():
    observations, _ = observing(Attributes(pmax=10))
    observations.clear()
    assert len(observations) == 0


def test_an_observation_needs_a_path():
    with pytest.raises(ValueError, match="at least one path"):
        Observations().add("k", [], Attributes(), {}, now=0)


# -- next_deadline --------------------------------------------------------------------------------


def test_next_deadline_is_pmin_after_the_last_notification_while_a_change_is_held():
    observations, sensor = observing(Attributes(pmin=10, pmax=60))
    sensor.set(BATTERY, 79, observations, now=4)
    assert observations.next_deadline(4) == 4  # evaluate now...
    observations.due(4, sensor.read)
    assert observations.next_deadline(4) == 10  # ...send at pmin


def test_next_deadline_is_pmax_after_the_last_notification():
    observations, _ = observing(Attributes(pmin=10, pmax=60))
    assert observations.next_deadline(0) == 60
    assert observations.next_deadline(59.5) == 60


def test_next_deadline_is_the_earliest_over_all_observations():
    observations, _ = observing(Attributes(pmax=60))
    observations.add("other", [STATE], Attributes(pmax=45), {STATE: 0}, now=5)
    assert observations.next_deadline(0) == 50


def test_next_deadline_is_never_in_the_past():
    observations, _ = observing(Attributes(pmax=60))
    assert observations.next_deadline(100) == 100


def test_next_deadline_waits_for_epmin_before_evaluating():
    observations, sensor = observing(Attributes(epmin=5, pmax=60))
    sensor.set(BATTERY, 79, observations, now=1)
    assert observations.next_deadline(1) == 5


# -- sequence numbers and notification fields -----------------------------------------------------


def test_sequence_numbers_rise_by_one_per_notification():
    observations, sensor = observing(Attributes(pmax=1))
    sequences = [n.sequence for now in range(1, 6) for n in observations.due(now, sensor.read)]
    assert sequences == [1, 2, 3, 4, 5]


def test_sequence_numbers_continue_from_the_first_response_and_wrap_at_24_bits():
    sensor = Sensor({BATTERY: 80})
    observations = Observations()
    last = OBSERVE_SEQUENCE_MODULUS - 1
    observations.add("k", [BATTERY], Attributes(pmax=1), {BATTERY: 80}, now=0, sequence=last)
    sequences = [n.sequence for now in (1, 2) for n in observations.due(now, sensor.read)]
    assert sequences == [0, 1]


def test_a_notification_carries_the_con_attribute():
    observations, sensor = observing(Attributes(pmax=1, con=1))
    [notification] = observations.due(1, sensor.read)
    assert notification.con == 1
    assert observing(Attributes(pmax=1))[0].due(1, sensor.read)[0].con is None


def test_con_written_on_the_object_reaches_the_notifications_of_its_resources():
    store = AttributeStore()
    store.update(Path("/3"), {"con": 0})
    store.update(BATTERY, {"pmax": 1})
    observations, sensor = observing(store.for_observation([BATTERY]))
    [notification] = observations.due(1, sensor.read)
    assert notification.con == 0


def test_notifications_and_observations_have_readable_reprs():
    observations, sensor = observing(Attributes(pmin=10, st=5))
    sensor.set(BATTERY, 70, observations, now=2)
    assert repr(observations["k"]) == (
        "<Observation 'k' /3/0/9 pmin=10;st=5 seq=0 last sent at 0, changed at 2>"
    )
    observations.due(2, sensor.read)
    assert "held (st=5 reached: 80 → 70)" in repr(observations)
    [notification] = observations.due(10, sensor.read)
    assert repr(notification) == ("Notification('k', seq=1, {/3/0/9: 70}, 'st=5 reached: 80 → 70')")
    assert repr(Observations()) == "<Observations: none>"


def test_the_timeline_in_the_module_docstring_runs_as_written():
    failures, tried = doctest.testmod(lwm2m_edu.observe)
    assert tried > 10 and failures == 0


# -- pmin and pmax hold for any history -----------------------------------------------------------


history = st.lists(
    st.tuples(st.integers(0, 40).map(lambda n: n / 2), st.integers(0, 100)), max_size=25
)
conditions = st.sampled_from(
    [{}, {"st": 3.0}, {"gt": 50.0}, {"lt": 20.0, "gt": 60.0}, {"gt": 50.0, "st": 10.0}]
)


def replay(attributes: Attributes, events: list[tuple[float, int]], tail: float) -> tuple:
    """Run ``events`` (seconds after the previous one, new value), calling ``due`` at each
    change and at every ``next_deadline``; return the send times, the sensor, and the
    observations."""
    observations, sensor = observing(attributes, value=50)
    sent = [0.0]
    now = 0.0

    def run_until(end: float) -> None:
        nonlocal now
        for _ in range(10_000):
            deadline = observations.next_deadline(now)
            if deadline is None or deadline > end:
                break
            now = deadline
            sent.extend(now for _ in observations.due(now, sensor.read))
        else:
            pytest.fail("next_deadline keeps returning a time at which nothing happens")
        now = end

    for delay, value in events:
        run_until(now + delay)
        sensor.set(BATTERY, value, observations, now)
        sent.extend(now for _ in observations.due(now, sensor.read))
    run_until(now + tail)
    return sent, now, observations


@SEEDED
@given(
    pmin=st.integers(0, 20),
    pmax=st.integers(0, 40),
    epmin=st.none() | st.integers(0, 10),
    epmax=st.none() | st.integers(1, 30),
    condition=conditions,
    events=history,
)
def test_notifications_respect_pmin_and_pmax_for_any_history(
    pmin, pmax, epmin, epmax, condition, events
):
    attributes = Attributes(pmin=pmin, pmax=pmax, epmin=epmin, epmax=epmax, **condition)
    sent, end, _ = replay(attributes, events, tail=100)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap >= pmin for gap in gaps), (sent, "a notification came before pmin")
    if pmax > 0 and pmax >= pmin:
        assert all(gap <= pmax for gap in [*gaps, end - sent[-1]]), (sent, "pmax passed")


@SEEDED
@given(
    pmin=st.integers(0, 20),
    epmin=st.none() | st.integers(0, 10),
    events=history,
)
def test_without_value_conditions_the_server_ends_up_with_the_last_value(pmin, epmin, events):
    attributes = Attributes(pmin=pmin, epmin=epmin)
    _, _, observations = replay(attributes, events, tail=100)
    final = events[-1][1] if events else 50
    assert observations["k"].last_sent == {BATTERY: final}
