"""What an object operation answers: a CoAP response code, and a value for reads.

Objects never touch the network. Each operation (read, write, execute) returns an ``Outcome``;
the client turns it into the CoAP response. The codes are the CoAP ones LwM2M uses, with their
values on the wire (class << 5 | detail), so ``Code.CHANGED == 0x44`` is "2.04".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Code", "Outcome"]


class Code(IntEnum):
    """CoAP response codes (RFC 7252 §12.1.2, RFC 7959 §2.9) an LwM2M object answers with."""

    CREATED = 0x41  #: 2.01
    DELETED = 0x42  #: 2.02
    CHANGED = 0x44  #: 2.04 — a Write or Execute succeeded
    CONTENT = 0x45  #: 2.05 — a Read succeeded
    CONTINUE = 0x5F  #: 2.31 — a Block1 block was stored; send the next one
    BAD_REQUEST = 0x80  #: 4.00 — the value is malformed or out of range
    UNAUTHORIZED = 0x81  #: 4.01
    NOT_FOUND = 0x84  #: 4.04 — no such object, instance or resource
    METHOD_NOT_ALLOWED = 0x85  #: 4.05 — not allowed on this resource, or not in this state
    NOT_ACCEPTABLE = 0x86  #: 4.06 — can't answer in the Accept format asked for
    REQUEST_ENTITY_INCOMPLETE = 0x88  #: 4.08 — a Block1 block out of sequence
    REQUEST_ENTITY_TOO_LARGE = 0x8D  #: 4.13 — the payload doesn't fit
    UNSUPPORTED_CONTENT_FORMAT = 0x8F  #: 4.15
    INTERNAL_SERVER_ERROR = 0xA0  #: 5.00 — the device failed to do it

    @property
    def dotted(self) -> str:
        """The code as people write it: ``"2.04"``."""
        return f"{self.value >> 5}.{self.value & 0x1F:02d}"

    @property
    def is_success(self) -> bool:
        return self.value >> 5 == 2

    def __str__(self) -> str:
        return f"{self.dotted} {self.name.replace('_', ' ').title()}"


@dataclass(frozen=True)
class Outcome:
    """The answer to one operation: the code, the value read (if any), and why (on errors)."""

    code: Code
    value: object = None
    diagnostic: str = ""

    @property
    def ok(self) -> bool:
        return self.code.is_success

    def __str__(self) -> str:
        text = str(self.code)
        if self.value is not None:
            text += f" {self.value!r}"
        if self.diagnostic:
            text += f" — {self.diagnostic}"
        return text
