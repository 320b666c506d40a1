"""Object /1 LwM2M Server: the settings of one server account, chosen by that server.

Each instance belongs to one LwM2M server, named by its Short Server ID (resource 0, the same
number as /0/x/10 of its Security instance). The server reads and writes its own settings here:

======  ==============================  ================================================
id      resource                        what the client does with it
======  ==============================  ================================================
0       Short Server ID                 names the account (read-only)
1       Lifetime                        registers with ``lt=``; a write triggers an Update
2, 3    Default Min/Max Period          ``pmin``/``pmax`` when no attribute says otherwise
4       Disable (E)                     de-registers, stays silent for Disable Timeout (5)
6       Notification Storing            keep notifications while offline (default true)
7       Binding                         ``b=`` in Register: U (UDP), T, S, N; a write
                                        triggers an Update
8       Registration Update Trigger     (E) send a registration Update now
9       Bootstrap-Request Trigger       (E) start a client-initiated bootstrap
17-20   Communication Retry ...         how Register retries (Anjay Lite's defaults)
23      Mute Send                       true: the client must not Send
======  ==============================  ================================================

The object itself does no networking: executables call the hooks given to the constructor
(``on_update_trigger(ssid)``, ``on_disable(ssid, timeout)``, ``on_bootstrap_trigger(ssid)``), and
the client learns of Lifetime and Binding writes through the change hooks (``changed``).

Choices: a new instance starts with Notification Storing true, Binding "U" and Mute Send false
(Send allowed), so a Create needs only the Short Server ID and the Lifetime. Binding letters
are checked (each of U, T, S, N at most once; Q, queue mode in LwM2M 1.0, is accepted too).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType

from ..model import SERVER
from .base import SimpleObject
from .outcome import Code, Outcome

__all__ = ["DEFAULT_DISABLE_TIMEOUT", "ServerObject"]

#: /1/x/5 Disable Timeout when the resource is absent (the DDF's default).
DEFAULT_DISABLE_TIMEOUT = 86400

_BINDING = re.compile(r"(?!.*(.).*\1)[UTSNQ]+")
_NON_NEGATIVE = (1, 2, 3, 5)


class ServerObject(SimpleObject):
    """Object /1: one instance per LwM2M server (see the module docstring)."""

    definition = SERVER
    supported = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 20, 23})
    defaults = MappingProxyType({6: True, 7: "U", 23: False})

    def __init__(
        self,
        instances: dict[int, dict[int, object]] | None = None,
        *,
        on_update_trigger: Callable[[int], None] | None = None,
        on_disable: Callable[[int, int], None] | None = None,
        on_bootstrap_trigger: Callable[[int], None] | None = None,
    ) -> None:
        self.on_update_trigger = on_update_trigger
        self.on_disable = on_disable
        self.on_bootstrap_trigger = on_bootstrap_trigger
        super().__init__(instances)

    def add(self, short_server_id: int, lifetime: int, **values: object) -> int:
        """Add the account of server ``short_server_id``; returns the instance id.

        ``values`` may set ``binding``, ``pmin``, ``pmax``, ``storing``, ``mute_send``.
        """
        names = {"binding": 7, "pmin": 2, "pmax": 3, "storing": 6, "mute_send": 23}
        initial: dict[int, object] = {0: short_server_id, 1: lifetime}
        for name, value in values.items():
            if name not in names:
                raise TypeError(f"unknown server setting {name!r}; use one of {sorted(names)}")
            initial[names[name]] = value
        outcome = self.create(None, initial, 0.0, bootstrap=True)
        if not outcome.ok:
            raise ValueError(outcome.diagnostic)
        return outcome.value  # type: ignore[return-value]

    # -- what the client asks -------------------------------------------------------------------

    def instance_for(self, short_server_id: int) -> int | None:
        """The instance of server ``short_server_id``, if any."""
        return next(
            (iid for iid, v in sorted(self.instances.items()) if v.get(0) == short_server_id),
            None,
        )

    def short_server_id(self, instance_id: int) -> int:
        return self.instances[instance_id][0]  # type: ignore[return-value]

    def lifetime(self, instance_id: int) -> int:
        return self.instances[instance_id][1]  # type: ignore[return-value]

    def binding(self, instance_id: int) -> str:
        return self.instances[instance_id].get(7, "U")  # type: ignore[return-value]

    def default_periods(self, instance_id: int) -> tuple[int, int | None]:
        """(pmin, pmax) for notifications without attributes: /1/x/2 (else 0) and /1/x/3."""
        values = self.instances[instance_id]
        return values.get(2, 0), values.get(3)  # type: ignore[return-value]

    def send_muted(self, instance_id: int) -> bool:
        """Whether Send is off (Mute Send true, or the resource absent, as the spec says)."""
        return bool(self.instances[instance_id].get(23, True))

    # -- hooks ----------------------------------------------------------------------------------

    def store(self, instance_id: int, resource_id: int, value: object, now: float) -> Outcome:
        if resource_id in _NON_NEGATIVE and value < 0:  # type: ignore[operator]
            return Outcome(Code.BAD_REQUEST, diagnostic=f"/1/x/{resource_id} is seconds, >= 0")
        if resource_id == 7 and not _BINDING.fullmatch(value):  # type: ignore[arg-type]
            return Outcome(
                Code.BAD_REQUEST,
                diagnostic=f"Binding {value!r} is not letters from U T S N (Q), each once",
            )
        return super().store(instance_id, resource_id, value, now)

    def instance_problem(self, instance_id: int, values: dict[int, object]) -> str | None:
        ssid = values.get(0)
        if ssid is not None and any(
            v.get(0) == ssid for iid, v in self.instances.items() if iid != instance_id
        ):
            return f"Short Server ID {ssid} already has an instance of /1"
        for rid in _NON_NEGATIVE:
            if rid in values and values[rid] < 0:  # type: ignore[operator]
                return f"/1/x/{rid} is seconds, >= 0"
        if 7 in values and not _BINDING.fullmatch(values[7]):  # type: ignore[arg-type]
            return f"Binding {values[7]!r} is not letters from U T S N (Q), each once"
        return None

    def run(self, instance_id: int, resource_id: int, arguments: str, now: float) -> Outcome:
        ssid = self.instances[instance_id].get(0, 0)
        if resource_id == 4 and self.on_disable is not None:
            timeout = self.instances[instance_id].get(5, DEFAULT_DISABLE_TIMEOUT)
            self.on_disable(ssid, timeout)  # type: ignore[arg-type]
        elif resource_id == 8 and self.on_update_trigger is not None:
            self.on_update_trigger(ssid)  # type: ignore[arg-type]
        elif resource_id == 9 and self.on_bootstrap_trigger is not None:
            self.on_bootstrap_trigger(ssid)  # type: ignore[arg-type]
        return Outcome(Code.CHANGED)
