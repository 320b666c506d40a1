"""The state diagram is drawn from ``fota.TRANSITIONS`` and follows a machine as it runs.

The DOT source is checked, not the SVG: SVG differs between Graphviz versions. Rendering is
checked only for what we put in it (element ids and classes), and only where ``dot`` exists.
"""

import html
import re
import shutil

import graphviz
import pytest

from lwm2m_edu import fota
from lwm2m_edu.device import EmulatedDevice, factory_package
from lwm2m_edu.fota import TRANSITIONS, FirmwareUpdateMachine, State, UpdateResult
from lwm2m_edu.server import Server
from lwm2m_edu.viz import LiveStateDiagram, state_diagram, transitions_table
from lwm2m_edu.viz import diagram as diagram_module

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz dot is missing")

NODE = re.compile(r"^\t(\w+) \[label=", re.MULTILINE)
EDGE = re.compile(r"^\t(\w+) -> (\w+) \[.*\bid=(\w+)", re.MULTILINE)
CURRENT_SVG = re.compile(r'<g id="state_(\w+)" class="node current">')
LAST_SVG = re.compile(r'<g id="edge_(\w+?)_(\w+)" class="edge last">')


def driven(*events):
    machine = FirmwareUpdateMachine()
    for now, event in enumerate(events):
        machine.handle(event, float(now))
    return machine


def push_events():
    return [
        fota.PackageWriteStarted(),
        fota.DownloadSucceeded(),
        fota.UpdateExecuted(),
        fota.UpdateSucceeded(),
    ]


def current_and_last(svg: str) -> tuple[str | None, tuple[str, str] | None]:
    current = CURRENT_SVG.findall(svg)
    last = LAST_SVG.findall(svg)
    assert len(current) <= 1 and len(last) <= 1
    return (current[0] if current else None), (last[0] if last else None)


# -- the Digraph --------------------------------------------------------------------------------


def test_one_node_per_state_and_one_edge_per_row_in_table_order():
    source = state_diagram().source
    assert NODE.findall(source) == [state.name for state in State]
    edges = EDGE.findall(source)
    assert len(edges) == len(TRANSITIONS)
    for (tail, head, edge_id), ((state, event), row) in zip(
        edges, TRANSITIONS.items(), strict=True
    ):
        assert (tail, head) == (state.name, row.next_state.name)
        assert edge_id == f"edge_{state.name}_{event.__name__}"


def test_labels_give_trigger_condition_version_and_result():
    source = state_diagram().source
    assert 'label="T1 Write Package URI\\n→ result 0"' in source
    assert 'label="T5-T11 download failed\\n→ result from the event"' in source
    assert 'label="T14 Execute Cancel (1.1)\\n→ result 10"' in source
    assert 'label="T17 user accepts [result 11] (1.1)\\n→ result 0"' in source
    assert "rankdir=LR" in source and "ordering=out" in source


def test_every_event_type_has_words():
    assert set(diagram_module.TRIGGERS) == set(fota.EVENT_TYPES)


def test_rows_newer_than_the_version_are_grey_or_omitted():
    grey = state_diagram(version="1.0").source
    assert len(EDGE.findall(grey)) == len(TRANSITIONS)
    cancel = next(line for line in grey.splitlines() if "edge_DOWNLOADED_CancelExecuted" in line)
    assert "style=dashed" in cancel and diagram_module.NEWER_COLOR in cancel

    omitted = state_diagram(version="1.0", newer="omit").source
    kept = [key for key, row in TRANSITIONS.items() if row.since == "1.0"]
    assert len(EDGE.findall(omitted)) == len(kept)
    assert "CancelExecuted" not in omitted


def test_the_version_defaults_to_the_machine_s():
    machine = FirmwareUpdateMachine(version="1.1")
    source = state_diagram(machine).source
    automatic = next(line for line in source.splitlines() if "AutomaticUpgrade" in line)
    assert "style=dashed" in automatic
    assert "style=dashed" not in state_diagram().source


def test_equal_inputs_give_the_same_source():
    assert state_diagram(driven(*push_events()[:2])).source == (
        state_diagram(driven(*push_events()[:2])).source
    )
    assert state_diagram().source == state_diagram().source


def test_the_current_state_is_filled_and_the_last_transition_highlighted():
    machine = driven(*push_events()[:2])  # IDLE -> DOWNLOADING -> DOWNLOADED
    source = state_diagram(machine).source
    filled = [line for line in source.splitlines() if "filled" in line]
    assert len(filled) == 1 and filled[0].startswith("\tDOWNLOADED ")
    last = [line for line in source.splitlines() if "class=last" in line]
    assert len(last) == 1 and "id=edge_DOWNLOADING_DownloadSucceeded" in last[0]
    assert "State 2 DOWNLOADED, Update Result 0 INITIAL" in source


def test_a_state_or_an_explicit_last_row_may_be_given():
    source = state_diagram(State.UPDATING, last=(State.DOWNLOADED, fota.UpdateExecuted)).source
    assert "\tUPDATING [" in next(line for line in source.splitlines() if "filled" in line)
    assert "id=edge_DOWNLOADED_UpdateExecuted" in next(
        line for line in source.splitlines() if "class=last" in line
    )


def test_a_firmware_object_or_a_device_is_followed_to_its_machine():
    device = EmulatedDevice("dev-1")
    assert "filled" not in state_diagram(device).source  # not booted: no firmware object yet
    with pytest.raises(TypeError):
        state_diagram("IDLE")


@pytest.mark.exe
@needs_dot
def test_dot_renders_svg_with_the_highlights():
    svg = state_diagram(driven(fota.PackageWriteStarted())).to_html()
    assert svg.startswith("<svg")
    assert current_and_last(svg) == ("DOWNLOADING", ("IDLE", "PackageWriteStarted"))
    bundle = state_diagram()._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


# -- without dot --------------------------------------------------------------------------------


def test_without_dot_the_diagram_is_an_html_table_with_the_install_command(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    diagram = state_diagram(driven(fota.PackageUriWritten("coap://h/fw")))
    bundle = diagram._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    page = bundle["text/html"]
    assert "<svg" not in page and page.count("<tr") == len(TRANSITIONS) + 1
    assert "sudo apt-get install graphviz" in page and "brew install graphviz" in page
    assert "conda install -c conda-forge graphviz python-graphviz" in page
    assert "State 1 DOWNLOADING" in page
    assert "0x" not in bundle["text/plain"]  # no memory address for nbval to trip on

    live = LiveStateDiagram(FirmwareUpdateMachine())
    assert "<table" in live.widget.value and "apt-get install graphviz" in live.widget.value


def test_a_dot_that_cannot_run_falls_back_too(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: "/usr/bin/dot")

    def missing(self, *args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot", "-Tsvg"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    monkeypatch.setattr(graphviz.Digraph, "_repr_mimebundle_", missing)
    diagram = state_diagram()
    assert diagram.svg() is None
    assert "<table" in diagram.to_html()
    assert "text/html" in diagram._repr_mimebundle_()


# -- the text table -----------------------------------------------------------------------------


def test_transitions_table_has_one_line_per_row():
    lines = transitions_table().splitlines()
    assert lines[0].split()[:3] == ["row", "from", "trigger"]
    rows = lines[2:]
    assert len(rows) == len(TRANSITIONS)
    assert [line.split()[0] for line in rows] == [row.ref for row in TRANSITIONS.values()]
    assert "not in v" not in transitions_table()
    assert sum("not in v1.0" in line for line in transitions_table("1.0").splitlines()) == sum(
        row.since != "1.0" for row in TRANSITIONS.values()
    )
    assert len(transitions_table("1.0", newer="omit").splitlines()) == 2 + sum(
        row.since == "1.0" for row in TRANSITIONS.values()
    )


# -- the live diagram ---------------------------------------------------------------------------


@pytest.mark.exe
@needs_dot
def test_the_live_diagram_redraws_on_every_step_of_a_machine():
    machine = FirmwareUpdateMachine()
    live = LiveStateDiagram(machine)
    assert live.poll is None  # a bare machine is never replaced: nothing to poll for
    values = [live.widget.value]
    assert current_and_last(values[0]) == ("IDLE", None)
    for event in push_events():
        [step] = machine.handle(event, 0.0)
        values.append(live.widget.value)
        assert values[-1] != values[-2]
        assert current_and_last(values[-1]) == (
            step.state.name,
            (step.previous_state.name, type(event).__name__),
        )
        assert html.escape(str(step)) in values[-1]  # the history under the diagram
    assert live.redraws == 1 + len(push_events())
    live.close()
    assert live._on_step not in machine.observers
    machine.handle(fota.PackageWriteStarted(), 1.0)
    assert live.widget.value == values[-1]


def test_a_failing_redraw_is_shown_and_never_breaks_the_machine(monkeypatch):
    machine = FirmwareUpdateMachine()
    live = LiveStateDiagram(machine)

    def broken():
        raise RuntimeError("no luck")

    monkeypatch.setattr(live, "diagram", broken)
    machine.handle(fota.PackageWriteStarted(), 0.0)
    assert machine.state is State.DOWNLOADING
    assert "redrawing failed: RuntimeError: no luck" in live.widget.value
    assert isinstance(live.error, RuntimeError)


def test_the_live_diagram_moves_to_the_machine_a_reboot_restored():
    before = driven(*push_events()[:3])  # UPDATING
    holder = [before]
    live = LiveStateDiagram(lambda: holder[0], poll=None)
    after = FirmwareUpdateMachine(state=State.IDLE, result=UpdateResult.SUCCESS)
    holder[0] = after  # what a device's reboot does: a new object, restored from flash
    live.refresh()
    assert live.machine is after
    assert live._on_step in after.observers and live._on_step not in before.observers
    assert live.last == (State.UPDATING, fota.UpdateSucceeded)
    assert "reboot: restored State 0 IDLE, Update Result 1 from the FOTA record (as T19)" in (
        live.widget.value
    )


async def test_a_callable_target_is_polled_with_a_timer_not_a_task():
    machine = FirmwareUpdateMachine()
    live = LiveStateDiagram(lambda: machine)
    assert live.poll == 0.25 and live._timer is not None  # a TimerHandle: no task is left
    live.close()
    assert live._timer is None and live._on_step not in machine.observers


def test_a_device_that_has_not_booted_yet_is_waited_for():
    device = EmulatedDevice("dev-1")
    live = LiveStateDiagram(device)
    assert live.poll is None and live._on_boot in device.on_boot
    assert "has the device booted?" in live.widget.value
    live.close()
    assert live._on_boot not in device.on_boot


@pytest.mark.exe
@needs_dot
async def test_the_live_diagram_follows_a_real_push_and_the_reboot():
    server = await Server.start()
    device = EmulatedDevice("dev-1")
    try:
        await device.start(server.uri)
        live = LiveStateDiagram(device)  # follows reboots through device.on_boot
        first = device.firmware
        seen = []
        first.observers.append(lambda step: seen.append((step, live.widget.value)))

        outcome = await server.update("dev-1", factory_package("2.0.0", size=4096), mode="push")
        assert outcome.ok, str(outcome)

        assert [step.state for step, _ in seen] == [
            State.DOWNLOADING,
            State.DOWNLOADED,
            State.UPDATING,
        ]
        for step, value in seen:
            assert current_and_last(value) == (
                step.state.name,
                (step.previous_state.name, type(step.event).__name__),
            )
        assert device.firmware is not first  # rebooted into 2.0.0: a new firmware object
        assert live.machine is device.firmware.machine
        assert live._on_step in device.firmware.observers
        assert live._on_step not in first.observers
        assert current_and_last(live.widget.value) == ("IDLE", ("UPDATING", "UpdateSucceeded"))
        assert "(as T19)" in live.widget.value
        live.close()
    finally:
        await device.stop()
        await server.stop()
