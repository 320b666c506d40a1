"""Pictures of a firmware update: the state machine, the messages, the timing.

* ``diagram`` — the Object /5 state diagram, drawn with Graphviz from ``fota.TRANSITIONS``
  (the table the machine runs): ``state_diagram(machine)`` fills the current state and
  highlights the last transition; ``LiveStateDiagram(device)`` is a widget that redraws on
  every step and follows a device across reboots; ``transitions_table()`` is the same table
  as plain text. Without the ``dot`` program they fall back to an HTML table.
* ``sequence`` — ``sequence_chart(trace)``: a message sequence chart (matplotlib) of a
  recorded CoAP trace: who sent what to whom, block-wise transfers folded, state changes as
  notes on the device's lifeline.
* ``plots`` — transfer and flash timing plots (matplotlib).
* ``widgets`` — notebook controls (ipywidgets).

Importing ``lwm2m_edu.viz`` imports graphviz and matplotlib but no pyplot and no ipywidgets
(``LiveStateDiagram`` imports ipywidgets when it is created)::

    import lwm2m_edu as le
    le.viz.state_diagram(device.firmware)        # graphviz.Digraph: current state lit
    live = le.viz.LiveStateDiagram(device)       # display(live); live.close() when done
    le.viz.sequence_chart(trace)                 # matplotlib Figure
"""

from .diagram import LiveStateDiagram, StateDiagram, state_diagram, transitions_table
from .sequence import sequence_chart

# plots / widgets: re-exported here by the lead once those modules land.

__all__ = [
    "LiveStateDiagram",
    "StateDiagram",
    "sequence_chart",
    "state_diagram",
    "transitions_table",
]
