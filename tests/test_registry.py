"""The registration bookkeeping, stepped with no network and a clock we hold (``now``)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2m_edu.codecs import ContentFormat
from lwm2m_edu.objects.outcome import Code
from lwm2m_edu.registry import (
    PRECONDITION_FAILED,
    EventKind,
    RegistrationError,
    Registry,
)

PAYLOAD = b'</>;rt="oma.lwm2m";ct=112,</1>;ver=1.1,</1/0>,</3/0>,</5>'
QUERY = ["ep=dev-1", "lt=300", "lwm2m=1.1", "b=U"]
ADDRESS = ("127.0.0.1", 5683)


def registered(registry: Registry, query=QUERY, payload=PAYLOAD, now=0.0):
    return registry.register(query, payload, ADDRESS, now)


def refusal(call) -> RegistrationError:
    with pytest.raises(RegistrationError) as caught:
        call()
    return caught.value


def test_register_records_the_query_and_the_parsed_object_links():
    registration = registered(Registry(), now=10.0)
    assert registration.endpoint == "dev-1"
    assert registration.location == "rd/0001"
    assert registration.location_path == ("rd", "0001")
    assert (registration.lifetime, registration.binding, registration.lwm2m_version) == (
        300,
        "U",
        "1.1",
    )
    assert not registration.queue_mode
    assert registration.content_formats == (ContentFormat.SENML_CBOR,)
    assert registration.objects[1].version == "1.1"
    assert registration.objects[3].instances == (0,)
    assert registration.has_object(5)
    assert registration.address == ADDRESS
    assert (registration.registered_at, registration.expires_at) == (10.0, 310.0)


def test_register_applies_the_defaults_of_the_specification():
    registration = Registry().register(["ep=dev-1"], b"</3/0>", ADDRESS, 0.0)
    assert (registration.lifetime, registration.lwm2m_version, registration.binding) == (
        86400,
        "1.0",
        "U",
    )


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (["lt=300"], "ep=<name>"),
        (["ep="], "ep=<name>"),
        (["ep=a", "ep=b"], "given twice"),
        (["ep=a", "lt=-5"], "whole number"),
        (["ep=a", "lt=soon"], "whole number"),
        (["ep=a", "lwm2m=one"], "version number"),
        (["ep=a", "b=X"], "not a binding letter"),
        (["ep=a", "b=UU"], "repeats"),
        (["ep=a", "b="], "empty"),
        (["ep=a", "lwm2m=1.1", "b=UQ"], "its own query item"),
        (["ep=a", "lwm2m=1.0", "b=U", "Q"], "inside b"),
        (["ep=a", "lwm2m=1.0", "b=T"], "1.1 or later"),
        (["ep=a", "lwm2m=1.1", "Q=1"], "takes no value"),
        (["ep"], "needs a value"),
    ],
)
def test_malformed_register_is_answered_4_00_with_the_reason(query, reason):
    error = refusal(lambda: Registry().register(query, b"</3/0>", ADDRESS, 0.0))
    assert error.code == Code.BAD_REQUEST
    assert reason in error.reason


@pytest.mark.parametrize(
    ("payload", "content_format", "reason"),
    [
        (b"</3/0", ContentFormat.LINK_FORMAT, "do not parse"),
        (b"</3/0/1>", ContentFormat.LINK_FORMAT, "not an object or object instance"),
        (b"</3/0>", ContentFormat.TEXT, "link-format (Content-Format 40)"),
        (b"</3/0>", None, "came with none"),
    ],
)
def test_register_payload_must_be_link_format_that_parses(payload, content_format, reason):
    registry = Registry()
    error = refusal(
        lambda: registry.register(QUERY, payload, ADDRESS, 0.0, content_format=content_format)
    )
    assert error.code == Code.BAD_REQUEST
    assert reason in error.reason


def test_unsupported_lwm2m_version_is_answered_4_12_precondition_failed():
    error = refusal(lambda: Registry().register(["ep=a", "lwm2m=2.0"], b"", ADDRESS, 0.0))
    assert error.code == PRECONDITION_FAILED
    assert str(error).startswith("4.12 Precondition Failed")


def test_queue_mode_is_the_q_item_in_1_1_and_the_letter_q_in_1_0():
    registry = Registry()
    new_style = registry.register(["ep=a", "lwm2m=1.1", "b=U", "Q"], b"", ADDRESS, 0.0)
    old_style = registry.register(["ep=b", "lwm2m=1.0", "b=UQ"], b"", ADDRESS, 0.0)
    assert new_style.queue_mode and old_style.queue_mode
    assert new_style.binding == old_style.binding == "U"


def test_update_changes_only_what_it_carries_and_renews_the_lifetime():
    registry = Registry()
    first = registered(registry)
    updated = registry.update(first.location, ["lt=600"], b"", ("127.0.0.1", 9999), 100.0)
    assert updated.lifetime == 600
    assert updated.binding == first.binding and updated.links == first.links
    assert updated.address == ("127.0.0.1", 9999)
    assert (updated.registered_at, updated.updated_at, updated.expires_at) == (0.0, 100.0, 700.0)
    assert registry.get("dev-1") == updated


def test_update_with_a_payload_replaces_the_object_links():
    registry = Registry()
    first = registered(registry)
    updated = registry.update(first.location, [], b"</3/0>,</5/0>", ADDRESS, 1.0, content_format=40)
    assert set(updated.objects) == {3, 5}


def test_update_of_an_unknown_location_is_answered_4_04():
    error = refusal(lambda: Registry().update("rd/dead", [], b"", ADDRESS, 0.0))
    assert error.code == Code.NOT_FOUND
    assert "Register again" in error.reason


def test_update_may_not_rename_the_endpoint():
    registry = Registry()
    location = registered(registry).location
    error = refusal(lambda: registry.update(location, ["ep=other"], b"", ADDRESS, 0.0))
    assert error.code == Code.BAD_REQUEST


def test_deregister_forgets_the_client_and_its_location():
    registry = Registry()
    location = registered(registry).location
    assert registry.deregister(location).endpoint == "dev-1"
    assert "dev-1" not in registry
    assert refusal(lambda: registry.deregister(location)).code == Code.NOT_FOUND


def test_register_again_replaces_the_registration_with_a_new_location():
    registry = Registry()
    events = []
    registry.add_listener(events.append)
    first = registered(registry)
    second = registered(registry, now=5.0)
    assert second.location != first.location
    assert registry.by_location(first.location) is None
    assert registry.by_location(second.location) == second
    assert len(registry) == 1
    assert events[-1].kind is EventKind.REGISTERED and events[-1].previous == first


def test_expire_drops_a_registration_only_after_lifetime_plus_grace():
    registry = Registry(grace=10.0)
    events = []
    registry.add_listener(events.append)
    registered(registry, now=0.0)
    assert registry.next_expiry() == 310.0
    assert registry.expire(310.0) == []
    assert [r.endpoint for r in registry.expire(310.5)] == ["dev-1"]
    assert "dev-1" not in registry
    assert events[-1].kind is EventKind.EXPIRED


def test_an_update_postpones_expiry():
    registry = Registry(grace=0.0)
    location = registered(registry, now=0.0).location
    registry.update(location, [], b"", ADDRESS, 250.0)
    assert registry.expire(400.0) == []
    assert registry.expire(551.0) != []


def test_the_next_expiry_is_the_soonest_of_many_registrations():
    registry = Registry(grace=0.0)
    for name, lifetime in (("a", 300), ("b", 60), ("c", 900)):
        registered(registry, query=[f"ep={name}", f"lt={lifetime}"])
    assert registry.next_expiry() == 60.0
    registry.deregister(registry.get("b").location)
    assert registry.next_expiry() == 300.0
    registry.update(registry.get("a").location, ["lt=30"], b"", ADDRESS, 10.0)
    assert registry.next_expiry() == 40.0
    assert [r.endpoint for r in registry.expire(901.0)] == ["a", "c"]
    assert registry.next_expiry() == math.inf


_registry_steps = st.lists(
    st.tuples(
        st.sampled_from(["register", "update", "deregister", "expire"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(min_value=0, max_value=500),  # a lifetime (0 = never expires)
    ),
    max_size=60,
)


@given(_registry_steps)
def test_next_expiry_and_expire_agree_with_a_scan_of_every_registration(steps):
    registry = Registry(grace=5.0)
    for now, (operation, endpoint, lifetime) in enumerate(steps):
        current = registry.get(endpoint)
        if operation == "register":
            registered(registry, query=[f"ep={endpoint}", f"lt={lifetime}"], now=now)
        elif operation == "update" and current is not None:
            registry.update(current.location, [f"lt={lifetime}"], b"", ADDRESS, now)
        elif operation == "deregister" and current is not None:
            registry.deregister(current.location)
        elif operation == "expire":
            due = {r.endpoint for r in registry.registrations if now > r.expires_at + 5.0}
            assert {r.endpoint for r in registry.expire(now)} == due
        soonest = min((r.expires_at + 5.0 for r in registry.registrations), default=math.inf)
        assert registry.next_expiry() == soonest


def test_a_registration_is_found_by_the_address_its_client_speaks_from():
    registry = Registry()
    location = registered(registry).location
    assert registry.by_address(ADDRESS).endpoint == "dev-1"
    moved = ("127.0.0.1", 40000)
    registry.update(location, [], b"", moved, 10.0)
    assert registry.by_address(ADDRESS) is None
    assert registry.by_address(moved).endpoint == "dev-1"
    registry.deregister(location)
    assert registry.by_address(moved) is None


def test_lifetime_zero_never_expires():
    registry = Registry()
    registration = registered(registry, query=["ep=dev-1", "lt=0"])
    assert registration.expires_at == math.inf
    assert registry.expire(1e12) == []


def test_listeners_hear_every_kind_of_event_and_can_be_removed():
    registry = Registry(grace=0.0)
    kinds = []
    remove = registry.add_listener(lambda event: kinds.append(event.kind))
    location = registered(registry).location
    registry.update(location, [], b"", ADDRESS, 1.0)
    registry.deregister(location)
    registered(registry, query=["ep=x", "lt=1"])
    registry.expire(100.0)
    remove()
    registered(registry)
    assert kinds == [
        EventKind.REGISTERED,
        EventKind.UPDATED,
        EventKind.DEREGISTERED,
        EventKind.REGISTERED,
        EventKind.EXPIRED,
    ]


def test_queue_mode_client_is_reachable_only_for_awake_time_after_it_talked():
    registry = Registry(awake_time=30.0)
    registration = registry.register(["ep=q", "lwm2m=1.1", "Q"], b"", ADDRESS, 0.0)
    assert registry.is_reachable("q", 30.0)
    assert not registry.is_reachable("q", 31.0)
    registry.update(registration.location, [], b"", ADDRESS, 100.0)
    assert registry.is_reachable("q", 120.0)


def test_held_requests_are_handed_back_once_in_order():
    registry = Registry()
    registry.register(["ep=q", "lwm2m=1.1", "Q"], b"", ADDRESS, 0.0)
    registry.hold("q", "read /3/0/9")
    registry.hold("q", "execute /5/0/2")
    registry.hold("q", "withdrawn")
    registry.unhold("q", "withdrawn")
    assert registry.take_held("q") == ["read /3/0/9", "execute /5/0/2"]
    assert registry.take_held("q") == []


def test_location_ids_can_be_supplied_and_collisions_are_skipped():
    registry = Registry(location_ids=iter(["a", "a", "b"]))
    registered(registry, query=["ep=one"])
    second = registered(registry, query=["ep=two"])
    assert second.location == "rd/b"
