"""The Object /5 state machine, checked against the rules of the specification.

Every (state, event) pair is generated from the enums; each either takes its documented row or
is refused with 4.05 and changes nothing.
"""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2m_edu.fota import (
    EVENT_TYPES,
    FROM_EVENT,
    KEEP,
    TRANSITIONS,
    AutomaticUpgrade,
    CancelExecuted,
    DeferPeriodExpired,
    DeliveryMethod,
    DownloadFailed,
    DownloadSucceeded,
    Effect,
    FirmwareUpdateMachine,
    PackageNullWritten,
    PackageUriEmptied,
    PackageUriRejected,
    PackageUriWritten,
    PackageWriteStarted,
    Protocol,
    Severity,
    State,
    TransitionNotAllowed,
    UpdateDeferred,
    UpdateExecuted,
    UpdateFailed,
    UpdateIntegrityFailed,
    UpdateResult,
    UpdateSucceeded,
    UserAccepted,
)

R = UpdateResult


def sample(event_type):
    """An instance of each event type, with a typical payload."""
    if event_type is DownloadFailed:
        return DownloadFailed(result=R.CONNECTION_LOST)
    if event_type is PackageUriRejected:
        return PackageUriRejected(uri="ftp://x/fw", result=R.UNSUPPORTED_PROTOCOL)
    if event_type is PackageUriWritten:
        return PackageUriWritten(uri="coap://127.0.0.1/fw")
    return event_type()


def machine_in(state, result=R.INITIAL, version="1.2"):
    return FirmwareUpdateMachine(version=version, state=state, result=result)


# -- the wire values ------------------------------------------------------------------------------


def test_wire_values_are_those_of_the_object_definition():
    assert [(s.name, s.value) for s in State] == [
        ("IDLE", 0), ("DOWNLOADING", 1), ("DOWNLOADED", 2), ("UPDATING", 3),
    ]  # fmt: skip
    assert [r.value for r in UpdateResult] == list(range(12))
    assert [p.value for p in Protocol] == list(range(6))
    assert [d.value for d in DeliveryMethod] == [0, 1, 2]
    assert [s.value for s in Severity] == [0, 1, 2]


# -- every (state, event) pair --------------------------------------------------------------------

PAIRS = list(itertools.product(State, EVENT_TYPES))
RESULTS_SEEN = [R.INITIAL, R.SUCCESS, R.UPDATE_FAILED, R.DEFERRED, R.CONNECTION_LOST]


@pytest.mark.parametrize(("state", "event_type"), PAIRS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("result", RESULTS_SEEN, ids=lambda r: f"result{r.value}")
def test_every_pair_takes_its_row_or_is_refused_without_change(state, event_type, result):
    machine = machine_in(state, result)
    machine.last_state_change_time = 5.0
    event = sample(event_type)
    row = TRANSITIONS.get((state, event_type))
    applies = row is not None and (row.requires is None or row.requires is result)
    if not applies:
        with pytest.raises(TransitionNotAllowed) as refusal:
            machine.handle(event, now=10.0)
        assert refusal.value.coap_code == "4.05"
        assert (machine.state, machine.result, machine.last_state_change_time) == (
            state, result, 5.0,
        )  # fmt: skip
        assert machine.history == []
        return
    step = machine.handle(event, now=10.0)[0]
    expected_result = {KEEP: result, FROM_EVENT: getattr(event, "result", None)}.get(
        row.result, row.result
    )
    assert (machine.state, machine.result) == (row.next_state, expected_result)
    assert (step.previous_state, step.state, step.effect) == (state, row.next_state, row.effect)
    assert machine.last_state_change_time == (10.0 if row.next_state is not state else 5.0)


# -- the rules of the specification, each checked over the whole table -----------------------------


def rows():
    return TRANSITIONS.items()


def test_update_result_is_reset_to_0_whenever_a_download_or_an_update_starts():
    for (state, _), row in rows():
        starts_download = state is State.IDLE and row.next_state is State.DOWNLOADING
        starts_update = row.next_state is State.UPDATING
        if starts_download or starts_update:
            assert row.result is R.INITIAL


def test_update_can_be_executed_only_in_downloaded():
    assert {s for (s, e) in TRANSITIONS if e is UpdateExecuted} == {State.DOWNLOADED}


def test_cancel_is_refused_in_idle_and_updating():
    assert {s for (s, e) in TRANSITIONS if e is CancelExecuted} == {
        State.DOWNLOADING, State.DOWNLOADED,
    }  # fmt: skip
    for (_, event_type), row in rows():
        if event_type is CancelExecuted:
            assert (row.next_state, row.result, row.since) == (State.IDLE, R.CANCELLED, "1.1")


def test_both_resets_lead_to_idle_with_result_0_from_every_state_but_updating():
    for reset in (PackageUriEmptied, PackageNullWritten):
        assert {s for (s, e) in TRANSITIONS if e is reset} == set(State) - {State.UPDATING}
        for state in set(State) - {State.UPDATING}:
            row = TRANSITIONS[(state, reset)]
            assert (row.next_state, row.result, row.effect) == (
                State.IDLE, R.INITIAL, Effect.DISCARD_PACKAGE,
            )  # fmt: skip


def test_a_new_package_is_accepted_only_in_idle():
    for event_type in (PackageWriteStarted, PackageUriWritten, PackageUriRejected):
        assert {s for (s, e) in TRANSITIONS if e is event_type} == {State.IDLE}


def test_nothing_the_server_does_is_allowed_while_updating():
    for state, event_type in TRANSITIONS:
        if state is State.UPDATING:
            assert event_type.by == "device"


def test_leaving_for_idle_other_than_by_success_discards_the_package():
    for (state, event_type), row in rows():
        if row.next_state is State.IDLE and state is not State.IDLE and row.result is not R.SUCCESS:
            assert row.effect is Effect.DISCARD_PACKAGE, (state, event_type)


def test_every_row_is_reachable_from_idle():
    seen, frontier = {State.IDLE}, [State.IDLE]
    while frontier:
        state = frontier.pop()
        for (source, _), row in rows():
            if source is state and row.next_state not in seen:
                seen.add(row.next_state)
                frontier.append(row.next_state)
    assert seen == set(State)


# -- whole procedures ----------------------------------------------------------------------------


def run(machine, *events, start=0.0):
    return [step for i, e in enumerate(events) for step in machine.handle(e, start + i)]


def test_pull_update_from_uri_to_success():
    machine = FirmwareUpdateMachine()
    steps = run(machine, PackageUriWritten("coap://h/fw"), DownloadSucceeded(), UpdateExecuted(),
                UpdateSucceeded())  # fmt: skip
    assert [(s.state, s.result) for s in steps] == [
        (State.DOWNLOADING, R.INITIAL), (State.DOWNLOADED, R.INITIAL),
        (State.UPDATING, R.INITIAL), (State.IDLE, R.SUCCESS),
    ]  # fmt: skip
    assert [s.effect for s in steps] == [Effect.START_PULL, Effect.NONE, Effect.START_UPDATE,
                                         Effect.NONE]  # fmt: skip


def test_a_failed_update_returns_to_downloaded_with_result_8_and_may_be_retried():
    machine = machine_in(State.UPDATING)
    run(machine, UpdateFailed())
    assert (machine.state, machine.result) == (State.DOWNLOADED, R.UPDATE_FAILED)
    run(machine, UpdateExecuted(), UpdateSucceeded(), start=1)
    assert (machine.state, machine.result) == (State.IDLE, R.SUCCESS)


def test_an_integrity_failure_at_install_goes_to_idle_with_result_5():
    machine = machine_in(State.UPDATING)
    step = run(machine, UpdateIntegrityFailed())[0]
    assert (machine.state, machine.result, step.effect) == (
        State.IDLE, R.INTEGRITY_FAILURE, Effect.DISCARD_PACKAGE,
    )  # fmt: skip


@pytest.mark.parametrize("failure", sorted({2, 3, 4, 5, 6, 7, 9}))
def test_a_failed_download_goes_to_idle_with_its_result(failure):
    machine = machine_in(State.DOWNLOADING)
    run(machine, DownloadFailed(result=R(failure)))
    assert (machine.state, machine.result) == (State.IDLE, R(failure))


@pytest.mark.parametrize("result", [R.INITIAL, R.SUCCESS, R.UPDATE_FAILED, R.CANCELLED])
def test_a_download_failure_must_carry_a_download_failure_result(result):
    machine = machine_in(State.DOWNLOADING)
    with pytest.raises(ValueError, match="carries result"):
        machine.handle(DownloadFailed(result=result), 0)
    assert machine.state is State.DOWNLOADING


def test_an_unsupported_uri_scheme_stays_idle_with_result_9():
    machine = FirmwareUpdateMachine()
    run(machine, PackageUriRejected("ftp://h/fw", R.UNSUPPORTED_PROTOCOL))
    assert (machine.state, machine.result) == (State.IDLE, R.UNSUPPORTED_PROTOCOL)


def test_deferral_keeps_downloaded_with_result_11_until_the_period_runs_out():
    machine = machine_in(State.DOWNLOADED)
    machine.max_defer_period = 60
    run(machine, UpdateDeferred(), start=100)
    assert (machine.state, machine.result, machine.defer_deadline) == (
        State.DOWNLOADED, R.DEFERRED, 160,
    )  # fmt: skip
    assert machine.expire(159.9) == []
    steps = machine.expire(160)
    assert [type(s.event) for s in steps] == [DeferPeriodExpired]
    assert (machine.state, machine.result, machine.defer_deadline) == (
        State.UPDATING, R.INITIAL, None,
    )  # fmt: skip


def test_a_user_may_accept_a_deferred_update_but_not_one_never_deferred():
    machine = machine_in(State.DOWNLOADED)
    with pytest.raises(TransitionNotAllowed, match="only while Update Result is 11"):
        machine.handle(UserAccepted(), 0)
    machine.max_defer_period = 10
    run(machine, UpdateDeferred(), UserAccepted())
    assert machine.state is State.UPDATING


def test_critical_updates_and_a_zero_defer_period_may_not_be_deferred():
    machine = machine_in(State.DOWNLOADED)
    assert not machine.may_defer()
    machine.max_defer_period = 10
    assert machine.may_defer()
    machine.severity = Severity.CRITICAL
    assert not machine.may_defer()


def test_automatic_upgrade_at_download_goes_straight_to_updating():
    machine = machine_in(State.DOWNLOADING, version="1.2")
    machine.automatic_upgrade = True
    steps = run(machine, DownloadSucceeded())
    assert [(type(s.event), s.state) for s in steps] == [
        (DownloadSucceeded, State.DOWNLOADED), (AutomaticUpgrade, State.UPDATING),
    ]  # fmt: skip
    assert steps[-1].effect is Effect.START_UPDATE


def test_automatic_upgrade_is_a_1_2_feature():
    machine = machine_in(State.DOWNLOADING, version="1.1")
    machine.automatic_upgrade = True
    run(machine, DownloadSucceeded())
    assert machine.state is State.DOWNLOADED


def test_version_1_0_has_no_cancel_and_no_deferral_and_says_so():
    machine = machine_in(State.DOWNLOADING, version="1.0")
    with pytest.raises(TransitionNotAllowed, match=r"needs Object /5 version 1\.1"):
        machine.handle(CancelExecuted(), 0)
    assert "CancelExecuted" not in [t.__name__ for t in machine.allowed_events()]


def test_refusal_names_the_state_and_what_is_allowed():
    machine = FirmwareUpdateMachine()
    with pytest.raises(TransitionNotAllowed) as refusal:
        machine.handle(UpdateExecuted(), 0)
    assert "not allowed in state IDLE" in str(refusal.value)
    assert "PackageUriWritten" in str(refusal.value)


def test_last_state_change_time_changes_only_with_the_state():
    machine = machine_in(State.DOWNLOADED)
    machine.max_defer_period = 5
    run(machine, UpdateDeferred(), start=50)
    assert machine.last_state_change_time is None  # DOWNLOADED -> DOWNLOADED
    run(machine, UserAccepted(), start=70)
    assert machine.last_state_change_time == 70
    assert machine.last_state_change.isoformat() == "1970-01-01T00:01:10+00:00"


def test_observers_see_every_step():
    machine = FirmwareUpdateMachine()
    seen = []
    machine.observers.append(seen.append)
    run(machine, PackageWriteStarted(), DownloadFailed(result=R.NOT_ENOUGH_FLASH))
    assert [(s.state, s.result) for s in seen] == [
        (State.DOWNLOADING, R.INITIAL), (State.IDLE, R.NOT_ENOUGH_FLASH),
    ]  # fmt: skip


def test_an_unknown_version_is_refused():
    with pytest.raises(ValueError, match=r"'1\.0', '1\.1' or '1\.2'"):
        FirmwareUpdateMachine(version="2.0")


# -- random sequences ------------------------------------------------------------------------------

events = st.one_of(
    st.sampled_from([t for t in EVENT_TYPES if t not in (DownloadFailed, PackageUriRejected)]).map(
        lambda t: t()
    ),
    st.sampled_from(sorted({2, 3, 4, 5, 6, 7, 9})).map(lambda r: DownloadFailed(result=R(r))),
    st.sampled_from([7, 9]).map(lambda r: PackageUriRejected("x://y", R(r))),
)


@given(
    st.lists(events, max_size=40),
    st.sampled_from(["1.0", "1.1", "1.2"]),
    st.booleans(),
    st.integers(0, 100),
)
def test_random_event_sequences_only_ever_refuse_and_stay_in_defined_states(
    sequence, version, automatic, defer
):
    machine = FirmwareUpdateMachine(version=version, automatic_upgrade=automatic,
                                    max_defer_period=defer)  # fmt: skip
    for now, event in enumerate(sequence):
        before = (machine.state, machine.result, len(machine.history))
        try:
            steps = machine.handle(event, float(now))
        except TransitionNotAllowed:
            assert (machine.state, machine.result, len(machine.history)) == before
            continue
        assert steps and steps[-1].state is machine.state
        assert machine.state in State and machine.result in UpdateResult
        # the invariants of the wire values
        if machine.state is State.DOWNLOADING:
            assert machine.result is R.INITIAL
        if machine.state is State.UPDATING:
            assert machine.result is R.INITIAL
        if machine.result is R.DEFERRED:
            assert machine.state is State.DOWNLOADED and version != "1.0"
        if machine.result in (R.SUCCESS, R.CANCELLED):
            assert machine.state is State.IDLE
