"""The LwM2M data model: objects made of resources, as data.

An LwM2M client exposes **objects** (``/3`` Device, ``/5`` Firmware Update, ...). An object may
have several **instances** (``/1/0``, ``/1/1``: one per server account) or exactly one
(``/3/0``). Each instance holds **resources** (``/3/0/0`` Manufacturer); a *multiple* resource holds
**resource instances** (``/3/0/6/0``, ``/3/0/6/1``: one per power source).

OMA publishes each object as an XML "DDF" file (Device Description Framework). This module holds
what those files say about the objects this package implements — id, name, the operations a
server may perform (R read, W write, E execute), the value type, single or multiple, mandatory or
optional, range and units — written as Python data, one line per resource, so a reader can check
it against the OMA tables. ``load_object_xml`` reads any other OMA DDF file into the same shape.

Versions modelled (what an LwM2M 1.1 server expects): ``/0`` Security 1.1, ``/1`` Server 1.1,
``/3`` Device 1.1 and ``/5`` Firmware Update 1.1, plus ``/5/x/14`` Automatic Upgrade at Download
from Firmware Update 1.2.

Value types map to Python types as the codecs decode them:

=================  ==================================================
``STRING``         ``str``
``INTEGER``        ``int`` (signed, 64-bit on the wire)
``UNSIGNED``       ``int`` (0 .. 2**64-1)                    [LwM2M 1.1]
``FLOAT``          ``float``
``BOOLEAN``        ``bool``
``OPAQUE``         ``bytes``
``TIME``           ``datetime`` (UTC, whole seconds since 1970 on the wire)
``OBJLNK``         ``ObjectLink`` (``"3:0"`` points at ``/3/0``)
``CORELNK``        ``str`` in CoRE Link Format
``NONE``           executable resources carry no value
=================  ==================================================
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path as FilePath

from .paths import MAX_ID, Level, Path

__all__ = [
    "DEFAULT_MODEL",
    "DEVICE",
    "FIRMWARE_UPDATE",
    "SECURITY",
    "SERVER",
    "Model",
    "ModelError",
    "ObjectDef",
    "ObjectLink",
    "Operations",
    "ResourceDef",
    "ResourceType",
    "Value",
    "load_object_xml",
]


class ModelError(ValueError):
    """An object definition is inconsistent, or a path names nothing in the model."""


class ResourceType(Enum):
    """The data type of a resource, named as in the OMA DDF files."""

    STRING = "String"
    INTEGER = "Integer"
    UNSIGNED = "Unsigned Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    OPAQUE = "Opaque"
    TIME = "Time"
    OBJLNK = "Objlnk"
    CORELNK = "Corelnk"
    NONE = "none"  #: executable resources: they have no value

    @classmethod
    def from_ddf(cls, text: str) -> ResourceType:
        text = text.strip()
        if not text:
            return cls.NONE
        for member in cls:
            if member.value.lower() == text.lower():
                return member
        raise ModelError(f"unknown resource type {text!r} in an object definition")


class Operations(Enum):
    """What an LwM2M server may do with a resource through the Device Management interface."""

    NONE = ""  #: nothing (e.g. every resource of /0 Security: written only by Bootstrap)
    R = "R"  #: Read (and Observe, Discover)
    W = "W"  #: Write
    RW = "RW"  #: Read and Write
    E = "E"  #: Execute

    @property
    def readable(self) -> bool:
        return "R" in self.value

    @property
    def writable(self) -> bool:
        return "W" in self.value

    @property
    def executable(self) -> bool:
        return self is Operations.E


@dataclass(frozen=True, slots=True)
class ObjectLink:
    """An Objlnk value: a pointer to object instance ``/object_id/instance_id``.

    Its text form is ``"3:0"``; ``ObjectLink(65535, 65535)`` is the "null" link.
    """

    object_id: int
    instance_id: int

    def __post_init__(self) -> None:
        for name in ("object_id", "instance_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
                raise ModelError(f"ObjectLink {name} must be an int in 0..65535, not {value!r}")

    @classmethod
    def parse(cls, text: str) -> ObjectLink:
        """``ObjectLink.parse("3:0") == ObjectLink(3, 0)``."""
        object_part, colon, instance_part = text.partition(":")
        if not colon or not all(p.isascii() and p.isdigit() for p in (object_part, instance_part)):
            raise ModelError(f"object link {text!r} is not of the form 'OID:IID', e.g. '3:0'")
        return cls(int(object_part), int(instance_part))

    @property
    def path(self) -> Path:
        return Path(self.object_id, self.instance_id)

    def __str__(self) -> str:
        return f"{self.object_id}:{self.instance_id}"


#: A typed resource value, as the codecs decode it.
Value = int | float | bool | str | bytes | datetime | ObjectLink


@dataclass(frozen=True, slots=True)
class ResourceDef:
    """One resource of an object, as its OMA DDF file describes it."""

    id: int
    name: str
    operations: Operations
    type: ResourceType
    multiple: bool = False
    mandatory: bool = False
    range: str = ""  #: the DDF's RangeEnumeration, e.g. "0..3" or "0..255 bytes"
    units: str = ""
    since: str = ""  #: the object version that added it, where newer than the object's own


@dataclass(frozen=True)
class ObjectDef:
    """An LwM2M object: id, name, version, whether it has several instances, and its resources."""

    id: int
    name: str
    version: str
    multiple: bool
    mandatory: bool
    resources: Mapping[int, ResourceDef] = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.id <= MAX_ID:
            raise ModelError(f"object id {self.id} is outside 0..{MAX_ID}")
        for key, resource in self.resources.items():
            if key != resource.id:
                raise ModelError(f"/{self.id}: resource {resource.id} is filed under id {key}")

    @classmethod
    def of(
        cls,
        id: int,
        name: str,
        version: str,
        *,
        multiple: bool,
        mandatory: bool,
        resources: Iterable[ResourceDef],
    ) -> ObjectDef:
        """Build an object from a list of resources (ids must be unique)."""
        table: dict[int, ResourceDef] = {}
        for resource in resources:
            if resource.id in table:
                raise ModelError(f"/{id}: resource id {resource.id} is defined twice")
            table[resource.id] = resource
        return cls(id, name, version, multiple, mandatory, table)

    @property
    def urn(self) -> str:
        return f"urn:oma:lwm2m:oma:{self.id}:{self.version}"

    @property
    def mandatory_resources(self) -> tuple[ResourceDef, ...]:
        return tuple(r for r in self.resources.values() if r.mandatory)

    def __getitem__(self, resource_id: int) -> ResourceDef:
        try:
            return self.resources[resource_id]
        except KeyError:
            raise ModelError(
                f"object /{self.id} ({self.name}) has no resource {resource_id}"
            ) from None

    def __repr__(self) -> str:
        kind = "multiple" if self.multiple else "single"
        return (
            f"<ObjectDef /{self.id} {self.name!r} v{self.version}, {kind}, "
            f"{len(self.resources)} resources>"
        )


class Model:
    """A set of object definitions, looked up by object id or by path.

    ``DEFAULT_MODEL`` holds /0 /1 /3 /5. Make your own with more objects::

        model = DEFAULT_MODEL.with_objects(load_object_xml("3303.xml"))
    """

    def __init__(self, objects: Iterable[ObjectDef] = ()) -> None:
        self._objects: dict[int, ObjectDef] = {}
        for obj in objects:
            if obj.id in self._objects:
                raise ModelError(f"object /{obj.id} is defined twice in one model")
            self._objects[obj.id] = obj

    def with_objects(self, *objects: ObjectDef) -> Model:
        """A new model with ``objects`` added (replacing any definition with the same id)."""
        merged = dict(self._objects)
        merged.update((obj.id, obj) for obj in objects)
        return Model(merged.values())

    def __getitem__(self, object_id: int) -> ObjectDef:
        try:
            return self._objects[object_id]
        except KeyError:
            raise ModelError(f"the model has no object /{object_id}") from None

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._objects

    def __iter__(self) -> Iterator[ObjectDef]:
        return iter(sorted(self._objects.values(), key=lambda o: o.id))

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, object_id: int) -> ObjectDef | None:
        return self._objects.get(object_id)

    def resource(self, path: Path) -> ResourceDef | None:
        """The definition of the resource ``path`` names (``/O/I/R`` or ``/O/I/R/RI``), if known."""
        if path.level < Level.RESOURCE:
            return None
        obj = self._objects.get(path.ids[0])
        if obj is None:
            return None
        return obj.resources.get(path.ids[2])

    def __repr__(self) -> str:
        ids = " ".join(f"/{o.id}" for o in self)
        return f"<Model {ids}>"


# -- the object definitions ------------------------------------------------------------------------

_R, _W, _RW, _E, _NO = Operations.R, Operations.W, Operations.RW, Operations.E, Operations.NONE
STR, INT, UINT = ResourceType.STRING, ResourceType.INTEGER, ResourceType.UNSIGNED
BOOL, OPAQUE, TIME = ResourceType.BOOLEAN, ResourceType.OPAQUE, ResourceType.TIME
OBJLNK, EXEC = ResourceType.OBJLNK, ResourceType.NONE
M, MULTI = True, True  # readability of the tables: mandatory=M, multiple=MULTI


def _res(
    id: int,
    name: str,
    operations: Operations,
    type: ResourceType,
    *,
    mandatory: bool = False,
    multiple: bool = False,
    range: str = "",
    units: str = "",
    since: str = "",
) -> ResourceDef:
    return ResourceDef(id, name, operations, type, multiple, mandatory, range, units, since)


#: /0 LwM2M Security 1.1. Servers can't touch it: it is written by Bootstrap only.
SECURITY = ObjectDef.of(0, "LwM2M Security", "1.1", multiple=True, mandatory=True, resources=[
    _res(0, "LwM2M Server URI", _NO, STR, mandatory=M, range="0..255 bytes"),
    _res(1, "Bootstrap-Server", _NO, BOOL, mandatory=M),
    _res(2, "Security Mode", _NO, INT, mandatory=M, range="0..4"),
    _res(3, "Public Key or Identity", _NO, OPAQUE, mandatory=M),
    _res(4, "Server Public Key", _NO, OPAQUE, mandatory=M),
    _res(5, "Secret Key", _NO, OPAQUE, mandatory=M),
    _res(6, "SMS Security Mode", _NO, INT, range="0..255"),
    _res(7, "SMS Binding Key Parameters", _NO, OPAQUE, range="6"),
    _res(8, "SMS Binding Secret Key(s)", _NO, OPAQUE, range="16,32,48"),
    _res(9, "LwM2M Server SMS Number", _NO, STR),
    _res(10, "Short Server ID", _NO, INT, range="1..65534"),
    _res(11, "Client Hold Off Time", _NO, INT, units="s"),
    _res(12, "Bootstrap-Server Account Timeout", _NO, INT, units="s"),
    _res(13, "Matching Type", _NO, UINT, range="0..3"),
    _res(14, "SNI", _NO, STR),
    _res(15, "Certificate Usage", _NO, UINT, range="0..3"),
    _res(16, "DTLS/TLS Ciphersuite", _NO, UINT, multiple=MULTI),
    _res(17, "OSCORE Security Mode", _NO, OBJLNK),
])  # fmt: skip

#: /1 LwM2M Server 1.1: one instance per server account. (The 1.1 DDF leaves the operations of
#: 13..20 blank; the 1.2 DDF gives them, and we use those.)
SERVER = ObjectDef.of(1, "LwM2M Server", "1.1", multiple=True, mandatory=True, resources=[
    _res(0, "Short Server ID", _R, INT, mandatory=M, range="1..65534"),
    _res(1, "Lifetime", _RW, INT, mandatory=M, units="s"),
    _res(2, "Default Minimum Period", _RW, INT, units="s"),
    _res(3, "Default Maximum Period", _RW, INT, units="s"),
    _res(4, "Disable", _E, EXEC),
    _res(5, "Disable Timeout", _RW, INT, units="s"),
    _res(6, "Notification Storing When Disabled or Offline", _RW, BOOL, mandatory=M),
    _res(7, "Binding", _RW, STR, mandatory=M),
    _res(8, "Registration Update Trigger", _E, EXEC, mandatory=M),
    _res(9, "Bootstrap-Request Trigger", _E, EXEC),
    _res(10, "APN Link", _RW, OBJLNK),
    _res(11, "TLS-DTLS Alert Code", _R, UINT, range="0..255"),
    _res(12, "Last Bootstrapped", _R, TIME),
    _res(13, "Registration Priority Order", _R, UINT),
    _res(14, "Initial Registration Delay Timer", _RW, UINT, units="s"),
    _res(15, "Registration Failure Block", _R, BOOL),
    _res(16, "Bootstrap on Registration Failure", _R, BOOL),
    _res(17, "Communication Retry Count", _RW, UINT),
    _res(18, "Communication Retry Timer", _RW, UINT, units="s"),
    _res(19, "Communication Sequence Delay Timer", _RW, UINT, units="s"),
    _res(20, "Communication Sequence Retry Count", _RW, UINT),
    _res(21, "Trigger", _RW, BOOL),
    _res(22, "Preferred Transport", _RW, STR),
    _res(23, "Mute Send", _RW, BOOL),
])  # fmt: skip

#: /3 Device 1.1: exactly one instance, /3/0.
DEVICE = ObjectDef.of(3, "Device", "1.1", multiple=False, mandatory=True, resources=[
    _res(0, "Manufacturer", _R, STR),
    _res(1, "Model Number", _R, STR),
    _res(2, "Serial Number", _R, STR),
    _res(3, "Firmware Version", _R, STR),
    _res(4, "Reboot", _E, EXEC, mandatory=M),
    _res(5, "Factory Reset", _E, EXEC),
    _res(6, "Available Power Sources", _R, INT, multiple=MULTI, range="0..7"),
    _res(7, "Power Source Voltage", _R, INT, multiple=MULTI, units="mV"),
    _res(8, "Power Source Current", _R, INT, multiple=MULTI, units="mA"),
    _res(9, "Battery Level", _R, INT, range="0..100", units="%"),
    _res(10, "Memory Free", _R, INT, units="KB"),
    _res(11, "Error Code", _R, INT, mandatory=M, multiple=MULTI, range="0..8"),
    _res(12, "Reset Error Code", _E, EXEC),
    _res(13, "Current Time", _RW, TIME),
    _res(14, "UTC Offset", _RW, STR),
    _res(15, "Timezone", _RW, STR),
    _res(16, "Supported Binding and Modes", _R, STR, mandatory=M),
    _res(17, "Device Type", _R, STR),
    _res(18, "Hardware Version", _R, STR),
    _res(19, "Software Version", _R, STR),
    _res(20, "Battery Status", _R, INT, range="0..6"),
    _res(21, "Memory Total", _R, INT, units="KB"),
    _res(22, "ExtDevInfo", _R, OBJLNK, multiple=MULTI),
])  # fmt: skip

#: /5 Firmware Update 1.1 (+ resource 14 from 1.2). There is no resource 4: it was removed in 1.0.
FIRMWARE_UPDATE = ObjectDef.of(5, "Firmware Update", "1.1", multiple=False, mandatory=False,
                               resources=[
    _res(0, "Package", _W, OPAQUE, mandatory=M),
    _res(1, "Package URI", _RW, STR, mandatory=M, range="0..255 bytes"),
    _res(2, "Update", _E, EXEC, mandatory=M),
    _res(3, "State", _R, INT, mandatory=M, range="0..3"),
    _res(5, "Update Result", _R, INT, mandatory=M, range="0..11"),
    _res(6, "PkgName", _R, STR, range="0..255 bytes"),
    _res(7, "PkgVersion", _R, STR, range="0..255 bytes"),
    _res(8, "Firmware Update Protocol Support", _R, INT, multiple=MULTI, range="0..5"),
    _res(9, "Firmware Update Delivery Method", _R, INT, mandatory=M, range="0..2"),
    _res(10, "Cancel", _E, EXEC),
    _res(11, "Severity", _RW, INT, range="0..2"),
    _res(12, "Last State Change Time", _R, TIME),
    _res(13, "Maximum Defer Period", _RW, UINT, units="s"),
    _res(14, "Automatic Upgrade at Download", _RW, BOOL, since="1.2"),
])  # fmt: skip

#: The objects this package implements.
DEFAULT_MODEL = Model([SECURITY, SERVER, DEVICE, FIRMWARE_UPDATE])


# -- reading OMA DDF files -----------------------------------------------------------------------


def load_object_xml(source: str | bytes | FilePath) -> ObjectDef:
    """Read an OMA object definition (DDF XML) from a file path or from the XML text itself.

    >>> temperature = load_object_xml("3303.xml")          # doctest: +SKIP
    >>> model = DEFAULT_MODEL.with_objects(temperature)    # doctest: +SKIP
    """
    if isinstance(source, FilePath) or (
        isinstance(source, str) and not source.lstrip().startswith("<")
    ):
        text = FilePath(source).read_bytes()
        origin = str(source)
    else:
        text = source.encode() if isinstance(source, str) else source
        origin = "the XML text"
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ModelError(f"{origin} is not well-formed XML: {exc}") from None
    obj = root.find("Object")
    if obj is None:
        raise ModelError(f"{origin} has no <Object> element; is it an OMA LwM2M DDF file?")

    def text_of(element: ET.Element, tag: str, default: str | None = None) -> str:
        value = element.findtext(tag)
        if value is None:
            if default is None:
                raise ModelError(f"{origin}: <{element.tag}> lacks <{tag}>")
            return default
        return value.strip()

    def as_int(element: ET.Element, tag: str, value: str) -> int:
        if not value.isdigit():
            raise ModelError(f"{origin}: <{tag}> of <{element.tag}> is {value!r}, not a number")
        return int(value)

    resources = []
    for item in obj.iterfind("Resources/Item"):
        raw_id = item.get("ID", "")
        operations_text = text_of(item, "Operations", "")
        try:
            operations = Operations(operations_text)
        except ValueError:
            raise ModelError(
                f"{origin}: resource {raw_id} has operations {operations_text!r}"
            ) from None
        resources.append(
            ResourceDef(
                id=as_int(item, "ID", raw_id),
                name=" ".join(text_of(item, "Name").split()),
                operations=operations,
                type=ResourceType.from_ddf(text_of(item, "Type", "")),
                multiple=text_of(item, "MultipleInstances") == "Multiple",
                mandatory=text_of(item, "Mandatory") == "Mandatory",
                range=text_of(item, "RangeEnumeration", ""),
                units=text_of(item, "Units", ""),
            )
        )
    return ObjectDef.of(
        as_int(obj, "ObjectID", text_of(obj, "ObjectID")),
        text_of(obj, "Name"),
        text_of(obj, "ObjectVersion", "1.0") or "1.0",
        multiple=text_of(obj, "MultipleInstances") == "Multiple",
        mandatory=text_of(obj, "Mandatory") == "Mandatory",
        resources=resources,
    )
