"""lwm2m_edu — firmware updates over the air with LwM2M, as a small real library to learn from.

The package is layered; each layer only uses the ones before it in this list (see
``docs/architecture.md``). Everything listed here is sans-I/O: no network, no asyncio, no clock.

* vocabulary: ``paths`` (``/5/0/3``), ``model`` (objects and resources as data),
  ``codecs`` (text, link-format, opaque, CBOR, SenML JSON/CBOR, TLV, LwM2M CBOR);
* Object /5: ``fota`` (the state machine as one table), ``handlers`` (the eight handlers a
  device implements), ``objects.firmware`` (the object, resource by resource);
* the device: ``package`` (signed firmware packages), ``flash`` (emulated NOR flash on a
  modeled clock), ``bootloader`` (A/B slots, a FOTA record that survives power cuts),
  ``flash_handlers`` (the reference handlers on flash).

The names most people need are re-exported here::

    import lwm2m_edu as le
    le.Path("/5/0/3").level                      # Level.RESOURCE
    le.DEFAULT_MODEL[5][3].name                  # 'State'
    machine = le.FirmwareUpdateMachine()
    machine.handle(le.fota.PackageUriWritten("coap://[::1]/fw"), now=0.0)
    machine.state                                # State.DOWNLOADING
"""

from . import codecs, fota
from .bootloader import Bootloader, BootReport, FotaRecord
from .codecs import CodecError, ContentFormat
from .flash import FLASH_PROFILES, EmulatedFlash, FlashProfile, ModeledClock, PowerLoss
from .flash_handlers import FlashFirmwareHandlers
from .fota import (
    TRANSITIONS,
    DeliveryMethod,
    FirmwareUpdateMachine,
    Protocol,
    Severity,
    State,
    TransitionNotAllowed,
    UpdateResult,
)
from .handlers import FirmwareHandlers, MissingHandlerError
from .model import (
    DEFAULT_MODEL,
    Model,
    ModelError,
    ObjectDef,
    ObjectLink,
    Operations,
    ResourceDef,
    ResourceType,
    load_object_xml,
)
from .objects import Code, Outcome
from .objects.firmware import FirmwareObject
from .package import Package, PackageError, PackageVerifier
from .paths import Level, Path, PathError

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "FLASH_PROFILES",
    "TRANSITIONS",
    "BootReport",
    "Bootloader",
    "Code",
    "CodecError",
    "ContentFormat",
    "DeliveryMethod",
    "EmulatedFlash",
    "FirmwareHandlers",
    "FirmwareObject",
    "FirmwareUpdateMachine",
    "FlashFirmwareHandlers",
    "FlashProfile",
    "FotaRecord",
    "Level",
    "MissingHandlerError",
    "Model",
    "ModelError",
    "ModeledClock",
    "ObjectDef",
    "ObjectLink",
    "Operations",
    "Outcome",
    "Package",
    "PackageError",
    "PackageVerifier",
    "Path",
    "PathError",
    "PowerLoss",
    "Protocol",
    "ResourceDef",
    "ResourceType",
    "Severity",
    "State",
    "TransitionNotAllowed",
    "UpdateResult",
    "__version__",
    "codecs",
    "fota",
    "load_object_xml",
]
