"""Object /0 LwM2M Security: how to reach each server, and with which keys.

Each instance is one *server account*: the server's URI, whether it is the Bootstrap-Server,
the security mode and the keys, and (for an LwM2M server) its Short Server ID, which links it
to the matching instance of Object /1 Server::

    /0/0  uri="coap://bootstrap.example:5683"  Bootstrap-Server=true
    /0/1  uri="coap://lwm2m.example:5683"      Bootstrap-Server=false  Short Server ID=101
    /1/0  Short Server ID=101  Lifetime=300  Binding="U"         (the account's settings)

Because it holds keys, no LwM2M server may see or touch /0: every resource has an empty
"operations" column in the OMA definition. Only the Bootstrap-Server writes it (Bootstrap-Write),
and the client reads it to know where to register. The data model answers a DM server's request
on /0 with 4.04 Not Found, as if the object did not exist (Leshan's client does the same), and
never lists it in Register.

Implemented resources: 0-5 (mandatory), 10 Short Server ID, 11 Client Hold Off Time and
12 Bootstrap-Server Account Timeout. A new instance starts with Bootstrap-Server false, Security
Mode 3 (NoSec: this package speaks plain CoAP) and empty keys, so a Bootstrap-Server may write
just the URI and the Short Server ID; Bootstrap-Finish checks that the result is consistent.
"""

from __future__ import annotations

from enum import IntEnum
from types import MappingProxyType
from typing import NamedTuple

from ..model import SECURITY
from .base import SimpleObject

__all__ = ["SecurityMode", "SecurityObject", "ServerAccount"]


class SecurityMode(IntEnum):
    """/0/x/2 Security Mode (the values are the numbers on the wire)."""

    PSK = 0  #: pre-shared key (DTLS)
    RPK = 1  #: raw public key (DTLS)
    CERTIFICATE = 2  #: X.509 certificate (DTLS)
    NO_SEC = 3  #: no security: plain CoAP over UDP
    CERTIFICATE_EST = 4  #: certificate with EST enrolment


class ServerAccount(NamedTuple):
    """One instance of /0 as the client uses it."""

    instance_id: int
    uri: str
    bootstrap: bool
    short_server_id: int | None
    mode: SecurityMode


class SecurityObject(SimpleObject):
    """Object /0: one instance per server account (see the module docstring).

    ``SecurityObject()`` starts empty (a client that bootstraps); ``add_server`` and
    ``add_bootstrap_server`` set up accounts for a factory-configured client.
    """

    definition = SECURITY
    supported = frozenset({0, 1, 2, 3, 4, 5, 10, 11, 12})
    defaults = MappingProxyType({1: False, 2: int(SecurityMode.NO_SEC), 3: b"", 4: b"", 5: b""})

    def add_server(self, uri: str, short_server_id: int, **values: object) -> int:
        """Add an LwM2M server account; returns the instance id."""
        return self._add({0: uri, 1: False, 10: short_server_id}, values)

    def add_bootstrap_server(self, uri: str, **values: object) -> int:
        """Add the Bootstrap-Server account; returns the instance id."""
        return self._add({0: uri, 1: True}, values)

    def _add(self, values: dict[int, object], extra: dict[str, object]) -> int:
        names = {"mode": 2, "hold_off": 11, "account_timeout": 12}
        for name, value in extra.items():
            if name not in names:
                raise TypeError(f"unknown account setting {name!r}; use one of {sorted(names)}")
            values[names[name]] = value
        outcome = self.create(None, values, 0.0, bootstrap=True)
        if not outcome.ok:
            raise ValueError(outcome.diagnostic)
        return outcome.value  # type: ignore[return-value]

    def accounts(self) -> list[ServerAccount]:
        """Every account, by instance id."""
        return [
            ServerAccount(
                iid,
                str(values.get(0, "")),
                bool(values.get(1, False)),
                values.get(10),  # type: ignore[arg-type]
                SecurityMode(values.get(2, SecurityMode.NO_SEC)),
            )
            for iid, values in sorted(self.instances.items())
        ]

    def bootstrap_instance(self) -> int | None:
        """The instance holding the Bootstrap-Server account, if there is one."""
        return next((a.instance_id for a in self.accounts() if a.bootstrap), None)
