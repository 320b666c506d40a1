"""LwM2M objects as the client serves them: resource-level operations with no I/O.

``firmware.FirmwareObject`` is Object /5 on top of the state machine (``fota``) and the device's
handlers (``handlers``). Operations return an ``Outcome`` (a CoAP code and, for reads, a value).
"""

from .outcome import Code, Outcome

__all__ = ["Code", "Outcome"]
