"""Pictures of a firmware update: the state machine, the messages, the timing.

* ``diagram`` — the Object /5 state diagram, drawn with Graphviz from ``fota.TRANSITIONS``
  (the table the machine runs): ``state_diagram(machine)`` fills the current state and
  highlights the last transition; ``LiveStateDiagram(device)`` is a widget that redraws on
  every step and follows a device across reboots; ``transitions_table()`` is the same table
  as plain text. Without the ``dot`` program they fall back to an HTML table.
* ``sequence`` — ``sequence_chart(trace)``: a message sequence chart (matplotlib) of a
  recorded CoAP trace: who sent what to whom, block-wise transfers folded, state changes as
  notes on the device's lifeline.
* ``plots`` — where the time of an update goes (matplotlib Figures): ``plot_timeline``
  (per block: network, erase, program), ``plot_bytes_over_time``, ``plot_block_size_sweep``,
  ``plot_push_vs_pull`` — from a device's timeline or from ``simulate.simulate_update``.
* ``widgets`` — notebook controls: ``DevicePanel`` (State, Update Result, progress, buttons
  for push, pull, update, cancel, reset, reboot) and ``ServerPanel`` (who is registered).
  Import them from ``lwm2m_edu.viz.widgets`` (that imports ipywidgets).

Importing ``lwm2m_edu.viz`` imports graphviz and matplotlib but no pyplot and no ipywidgets
(``LiveStateDiagram`` imports ipywidgets when it is created)::

    import lwm2m_edu as le
    le.viz.state_diagram(device.firmware)        # graphviz.Digraph: current state lit
    live = le.viz.LiveStateDiagram(device)       # display(live); live.close() when done
    le.viz.sequence_chart(trace)                 # matplotlib Figure
"""

from .diagram import LiveStateDiagram, StateDiagram, state_diagram, transitions_table
from .plots import plot_block_size_sweep, plot_bytes_over_time, plot_push_vs_pull, plot_timeline
from .sequence import sequence_chart

__all__ = [
    "LiveStateDiagram",
    "StateDiagram",
    "plot_block_size_sweep",
    "plot_bytes_over_time",
    "plot_push_vs_pull",
    "plot_timeline",
    "sequence_chart",
    "state_diagram",
    "transitions_table",
]
