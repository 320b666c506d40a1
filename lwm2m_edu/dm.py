"""The Device Management dispatcher: one LwM2M request in, one response out, no I/O.

An LwM2M server manages a client with a handful of CoAP methods on paths. CoAP does not say
*which LwM2M operation* a request is; the client works it out from the method, the depth of the
path and two options. ``classify`` applies the rules Anjay Lite uses::

    GET     Observe=0 → Observe, Observe=1 → Cancel Observe, Accept=40 → Discover, else Read
    POST    /O → Create   /O/I → Write (partial update)
            /O/I/R → Execute without Content-Format (or text/plain 0), else partial update of
            a multiple resource
    PUT     with Content-Format → Write (replace), without → Write-Attributes
    DELETE  Delete         FETCH → Read-Composite (Observe=0/1: (Cancel) Observe-Composite)
    iPATCH  Write-Composite
    during bootstrap: GET Accept=40 → Bootstrap-Discover, GET → Bootstrap-Read,
                      PUT → Bootstrap-Write, DELETE → Bootstrap-Delete

``DataModel.handle(request, now)`` classifies, checks the path level for the operation, finds
the object, converts the payload with the codecs and calls the object (``objects.base``
interface). Every problem becomes a CoAP code with a diagnostic, never an exception:

=====  ==========================================================================================
4.00   malformed payload or Execute arguments, bad value, non-confirmable request (not Execute),
       Bootstrap path errors
4.04   no such object / instance / resource; any DM request on /0 Security (servers never see it)
4.05   the operation is not allowed at that path or on that resource (Read of /5/0/0, Write of
       a read-only resource, Execute of a value, Delete of a resource, Create on /3 ...)
4.06   the Accept format can't carry the answer (text for an instance, opaque for a string)
4.15   unknown or unsupported Content-Format in a request
=====  ==========================================================================================

Content negotiation. Reads answer in the Accept format when given: text (0), opaque (42), CBOR
(60), SenML JSON (110), SenML CBOR (112), TLV (11542) or LwM2M CBOR (11544). Without Accept, a
single value answers as text/plain (opaque for an Opaque resource), as servers expect, and
anything bigger in ``preferred_format``. Writes accept the same formats, and TLV under its old
number 1542 too.

Choices, where the specification leaves room:

* A Write on an object instance (PUT or POST) ignores resources the object does not have
  (unknown ones, or optional ones it does not implement), as Anjay Lite does, but refuses the
  whole request with 4.05 when it names a resource that is not writable (read-only or
  executable). Resources the payload does not name are left as they are, PUT or POST. A
  multiple resource named in a PUT is replaced whole; in a POST its instances are merged.
* Values are type-checked for every resource before any is written; checks only an object can
  make (a range, a Firmware Update state) may still stop a multi-resource write half-way.
* A non-confirmable request is answered 4.00 Bad Request, except Execute (Anjay Lite rejects
  them too); ``Response.diagnostic`` says to send it confirmable.
* Read-Composite skips paths that don't exist or can't be read, as Anjay Lite does.
* Observe and Cancel Observe answer like a Read: keeping the observation is the client's job
  (``lwm2m_edu.observe``).
* Bootstrap-Write accepts several instances in one object-level write (LwM2M 1.2 allows it;
  Anjay Lite refuses it). Bootstrap-Delete keeps the Bootstrap-Server account of /0 and the
  instances their object won't delete (/3/0, /5/0). Bootstrap-Finish (``bootstrap_finish``:
  its URI is ``/bs``, not a path) answers 4.06 unless /0 and /1 describe usable servers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

from .codecs import CodecError, ContentFormat, UnsupportedContentFormat, decode, encode, senml
from .codecs.linkformat import (
    FLOAT_ATTRIBUTES,
    INT_ATTRIBUTES,
    Link,
    encode_links,
    registration_links,
)
from .model import DEFAULT_MODEL, Model, ResourceDef, ResourceType, Value
from .objects.base import LwM2MObject, SingleInstance, check_value
from .objects.outcome import Code
from .paths import Level, Path

__all__ = [
    "DataModel",
    "Method",
    "Operation",
    "Refused",
    "Request",
    "Response",
    "classify",
    "parse_execute_arguments",
]

#: Object versions that are the default for an LwM2M 1.1 client (no ``ver`` in Register).
#: Every other object's default version is 1.0.
_DEFAULT_VERSIONS_1_1 = {0: "1.1", 1: "1.1", 3: "1.1"}

#: Formats a read may answer in. TLV is answered under 11542 only (1542 is accepted on input).
READ_FORMATS = frozenset(
    {
        ContentFormat.TEXT,
        ContentFormat.OPAQUE,
        ContentFormat.CBOR,
        ContentFormat.SENML_JSON,
        ContentFormat.SENML_CBOR,
        ContentFormat.TLV,
        ContentFormat.LWM2M_CBOR,
    }
)
#: A Uri-Query option holds at most 255 bytes (RFC 7252 §5.10). Longer items are refused before
#: anything parses them: a 5000-digit ``pmin`` would overflow the observe timers' arithmetic.
MAX_QUERY_ITEM = 255
_SINGLE_VALUE_FORMATS = (ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.CBOR)
_SENML = (ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR)
_COMPOSITE_FORMATS = (*_SENML, ContentFormat.LWM2M_CBOR)


class Method(IntEnum):
    """CoAP request methods (the values are the codes on the wire: 0.01 GET ... 0.07 iPATCH)."""

    GET = 1
    POST = 2
    PUT = 3
    DELETE = 4
    FETCH = 5  #: RFC 8132: Read-Composite, Observe-Composite
    PATCH = 6  #: not used by LwM2M
    IPATCH = 7  #: RFC 8132: Write-Composite


class Operation(Enum):
    """The LwM2M operation a request stands for (what ``classify`` answers)."""

    READ = "Read"
    DISCOVER = "Discover"
    WRITE_REPLACE = "Write (replace)"
    WRITE_UPDATE = "Write (partial update)"
    WRITE_ATTRIBUTES = "Write-Attributes"
    EXECUTE = "Execute"
    CREATE = "Create"
    DELETE = "Delete"
    OBSERVE = "Observe"
    CANCEL_OBSERVE = "Cancel Observation"
    READ_COMPOSITE = "Read-Composite"
    OBSERVE_COMPOSITE = "Observe-Composite"
    CANCEL_OBSERVE_COMPOSITE = "Cancel Observe-Composite"
    WRITE_COMPOSITE = "Write-Composite"
    BOOTSTRAP_READ = "Bootstrap-Read"
    BOOTSTRAP_WRITE = "Bootstrap-Write"
    BOOTSTRAP_DISCOVER = "Bootstrap-Discover"
    BOOTSTRAP_DELETE = "Bootstrap-Delete"


#: The path levels at which each operation exists (Anjay Lite's path checks, and the spec's).
_LEVELS: dict[Operation, frozenset[Level]] = {
    Operation.READ: frozenset(Level) - {Level.ROOT},
    Operation.OBSERVE: frozenset(Level) - {Level.ROOT},
    Operation.CANCEL_OBSERVE: frozenset(Level) - {Level.ROOT},
    Operation.DISCOVER: frozenset({Level.OBJECT, Level.INSTANCE, Level.RESOURCE}),
    Operation.WRITE_REPLACE: frozenset({Level.INSTANCE, Level.RESOURCE, Level.RESOURCE_INSTANCE}),
    Operation.WRITE_UPDATE: frozenset({Level.INSTANCE, Level.RESOURCE}),
    Operation.WRITE_ATTRIBUTES: frozenset(Level) - {Level.ROOT},
    Operation.EXECUTE: frozenset({Level.RESOURCE}),
    Operation.CREATE: frozenset({Level.OBJECT}),
    Operation.DELETE: frozenset({Level.INSTANCE}),
    Operation.READ_COMPOSITE: frozenset({Level.ROOT}),
    Operation.OBSERVE_COMPOSITE: frozenset({Level.ROOT}),
    Operation.CANCEL_OBSERVE_COMPOSITE: frozenset({Level.ROOT}),
    Operation.WRITE_COMPOSITE: frozenset({Level.ROOT}),
    Operation.BOOTSTRAP_READ: frozenset(Level) - {Level.ROOT},
    Operation.BOOTSTRAP_WRITE: frozenset(Level) - {Level.ROOT},
    Operation.BOOTSTRAP_DISCOVER: frozenset({Level.ROOT, Level.OBJECT}),
    Operation.BOOTSTRAP_DELETE: frozenset({Level.ROOT, Level.OBJECT, Level.INSTANCE}),
}
_BOOTSTRAP_OPERATIONS = frozenset(op for op in Operation if op.name.startswith("BOOTSTRAP"))


@dataclass(frozen=True)
class Request:
    """One request from a server, as the CoAP layer hands it over."""

    method: Method
    path: Path = field(default_factory=Path)
    payload: bytes = b""
    content_format: int | None = None
    accept: int | None = None
    query: tuple[str, ...] = ()
    observe: int | None = None
    confirmable: bool = True


@dataclass(frozen=True)
class Response:
    """The answer: a CoAP code, a payload in ``content_format``, and why (on errors)."""

    code: Code
    payload: bytes = b""
    content_format: int | None = None
    location_path: tuple[str, ...] = ()
    diagnostic: str = ""

    def __str__(self) -> str:
        text = str(self.code)
        return f"{text} — {self.diagnostic}" if self.diagnostic else text


class Refused(Exception):
    """A request (or ``read_values``) can't be served: ``code`` and ``diagnostic`` say why."""

    def __init__(self, code: Code, diagnostic: str) -> None:
        super().__init__(f"{code.dotted} {diagnostic}")
        self.code = code
        self.diagnostic = diagnostic


def _refuse(code: Code, diagnostic: str) -> Refused:
    return Refused(code, diagnostic)


# -- classification -----------------------------------------------------------------------------


def classify(request: Request, *, bootstrap: bool = False) -> Operation | None:
    """The LwM2M operation ``request`` stands for (Anjay Lite's rules), or None if none."""
    method, level, cf = request.method, request.path.level, request.content_format
    if bootstrap:
        if method is Method.GET:
            if request.accept == ContentFormat.LINK_FORMAT:
                return Operation.BOOTSTRAP_DISCOVER
            return Operation.BOOTSTRAP_READ
        if method is Method.PUT and cf is not None:
            return Operation.BOOTSTRAP_WRITE
        if method is Method.DELETE:
            return Operation.BOOTSTRAP_DELETE
        return None
    if method is Method.GET:
        if request.observe == 0:
            return Operation.OBSERVE
        if request.observe == 1:
            return Operation.CANCEL_OBSERVE
        if request.accept == ContentFormat.LINK_FORMAT:
            return Operation.DISCOVER
        return Operation.READ
    if method is Method.POST:
        if level is Level.OBJECT:
            return Operation.CREATE
        if level is Level.INSTANCE:
            return Operation.WRITE_UPDATE
        if level is Level.RESOURCE:
            if cf is None or cf == ContentFormat.TEXT:
                return Operation.EXECUTE
            return Operation.WRITE_UPDATE
        return None
    if method is Method.PUT:
        return Operation.WRITE_ATTRIBUTES if cf is None else Operation.WRITE_REPLACE
    if method is Method.DELETE:
        return Operation.DELETE
    if method is Method.FETCH:
        if request.observe == 0:
            return Operation.OBSERVE_COMPOSITE
        if request.observe == 1:
            return Operation.CANCEL_OBSERVE_COMPOSITE
        return Operation.READ_COMPOSITE
    if method is Method.IPATCH:
        return Operation.WRITE_COMPOSITE
    return None


# Execute arguments (text/plain): 0='abc',1 — a digit, optionally ='value'. The value's
# characters follow the ABNF recalled from the LwM2M core spec: printable ASCII except space,
# '"', "'" and '\'.
_EXECUTE_ARGUMENT = re.compile(r"([0-9])(?:='([\x21\x23-\x26\x28-\x5b\x5d-\x7e]*)')?")


def parse_execute_arguments(text: str) -> dict[int, str | None]:
    """``"0='abc',1"`` → ``{0: 'abc', 1: None}``; malformed text raises ``ValueError``."""
    arguments: dict[int, str | None] = {}
    if text == "":
        return arguments
    for position, item in enumerate(text.split(",")):
        match = _EXECUTE_ARGUMENT.fullmatch(item)
        if match is None:
            raise ValueError(
                f"Execute argument {position} ({item[:30]!r}) is not a digit 0-9 optionally "
                "followed by ='value', as in 0='abc',1"
            )
        digit = int(match[1])
        if digit in arguments:
            raise ValueError(f"Execute argument {digit} is given twice")
        arguments[digit] = match[2]
    return arguments


# -- the data model ---------------------------------------------------------------------------


class DataModel:
    """The client's objects behind one ``handle(request, now)`` entry point.

    ``objects`` implement ``objects.base.LwM2MObject``; wrap a resource-level object such as
    ``FirmwareObject`` in ``SingleInstance``. Hooks, for the client:

    * ``on_change``: called with the path of every resource whose value changed (observe);
    * ``on_instances_changed``: called after a DM Create or Delete, when the Register links
      change (the client sends an Update with ``registration_links()``).

    ``attributes`` is the notification-attribute store Write-Attributes and Discover use when
    ``handle`` is not given the requesting server's own store.
    """

    def __init__(
        self,
        objects: Iterable[LwM2MObject],
        *,
        model: Model = DEFAULT_MODEL,
        preferred_format: ContentFormat = ContentFormat.SENML_CBOR,
        lwm2m_version: str = "1.1",
        attributes: Any = None,
    ) -> None:
        self.objects: dict[int, LwM2MObject] = {}
        for obj in objects:
            if not isinstance(obj, LwM2MObject):
                hint = (
                    f"; wrap it: SingleInstance({type(obj).__name__.lower()})"
                    if hasattr(obj, "read_all")
                    else ""
                )
                raise TypeError(f"{obj!r} does not implement objects.base.LwM2MObject{hint}")
            oid = obj.definition.id
            if oid in self.objects:
                raise ValueError(f"two objects have the id /{oid}")
            self.objects[oid] = obj
            obj.changed.append(self._forward_change)
        self.model = model.with_objects(*(o.definition for o in self.objects.values()))
        self.preferred_format = ContentFormat(preferred_format)
        self.lwm2m_version = lwm2m_version
        self._attributes = attributes
        self.on_change: list[Callable[[Path], None]] = []
        self.on_instances_changed: list[Callable[[], None]] = []
        self._last_now = 0.0

    def __getitem__(self, object_id: int) -> LwM2MObject:
        return self.objects[object_id]

    @property
    def attributes(self) -> Any:
        """The default ``observe.AttributeStore`` (created on first use)."""
        if self._attributes is None:
            from .observe import AttributeStore

            self._attributes = AttributeStore()
        return self._attributes

    @property
    def firmware(self) -> Any:
        """The ``FirmwareObject`` behind /5, for the streamed Block1 push to /5/0/0."""
        obj = self.objects.get(5)
        if obj is None:
            raise LookupError("this data model has no Object /5 Firmware Update")
        return obj.inner if isinstance(obj, SingleInstance) else obj

    def __repr__(self) -> str:
        return f"<DataModel {' '.join(f'/{oid}' for oid in sorted(self.objects))}>"

    # -- the entry points ---------------------------------------------------------------------

    def handle(
        self, request: Request, now: float, *, bootstrap: bool = False, attributes: Any = None
    ) -> Response:
        """Serve one request (from the Bootstrap-Server when ``bootstrap``) at time ``now``.

        ``attributes`` is the requesting server's ``AttributeStore`` (default: ``attributes``).
        """
        self._last_now = now
        operation = classify(request, bootstrap=bootstrap)
        if operation is None:
            kind = "bootstrap " if bootstrap else ""
            return Response(
                Code.METHOD_NOT_ALLOWED,
                diagnostic=f"{request.method.name} {request.path} is no LwM2M {kind}operation",
            )
        if not request.confirmable and operation is not Operation.EXECUTE:
            return Response(
                Code.BAD_REQUEST,
                diagnostic=f"{operation.value} must be sent confirmable (CON); only Execute "
                "may be non-confirmable",
            )
        for item in request.query:
            if len(item.encode()) > MAX_QUERY_ITEM:
                return Response(
                    Code.BAD_REQUEST,
                    diagnostic=f"the query item {item[:20]!r}... is {len(item.encode())} bytes; "
                    f"a Uri-Query option holds at most {MAX_QUERY_ITEM} (RFC 7252 §5.10)",
                )
        if request.path.object_id == 0 and not bootstrap:
            return Response(
                Code.NOT_FOUND,
                diagnostic="the client has no object /0 (Security is the Bootstrap-Server's only)",
            )
        if request.path.level not in _LEVELS[operation]:
            levels = " or ".join(
                "/" if lv is Level.ROOT else f"an {lv.label}" if lv.label[0] in "aeiou"
                else f"a {lv.label}"
                for lv in sorted(_LEVELS[operation])
            )  # fmt: skip
            code = (
                Code.BAD_REQUEST if operation in _BOOTSTRAP_OPERATIONS else Code.METHOD_NOT_ALLOWED
            )
            return Response(
                code,
                diagnostic=f"{operation.value} applies to {levels}, not {request.path}",
            )
        try:
            return self._dispatch(operation, request, now, attributes)
        except Refused as refusal:
            return Response(refusal.code, diagnostic=refusal.diagnostic)

    def read_values(self, path: Path, now: float | None = None) -> dict[Path, Value]:
        """Every readable value at or below ``path`` (``/`` = every object but /0).

        For the observe engine and Send. ``now`` defaults to the time of the latest request
        (it matters only for /3/0/13 Current Time). Raises ``Refused`` (4.04, 4.05).
        """
        if now is None:
            now = self._last_now
        if path.is_root:
            values: dict[Path, Value] = {}
            for oid in sorted(self.objects):
                if oid != 0:
                    values.update(self._collect(Path(oid), now))
            return values
        return self._collect(path, now)

    def composite_paths(self, request: Request) -> list[Path]:
        """The paths a Read-/Observe-Composite request names (raises ``Refused``)."""
        return self._composite_paths(request)

    def attributes_for(
        self, paths: list[Path], query: Iterable[str] = (), *, attributes: Any = None
    ) -> Any:
        """The ``observe.Attributes`` a new observation of ``paths`` runs with: the Observe
        request's own query (LwM2M 1.2), else the stored ones, over the default periods of the
        first /1 instance.
        Raises ``observe.InvalidAttributes`` (→ 4.00)."""
        from .observe import Attributes, parse_attributes

        store = attributes if attributes is not None else self.attributes
        defaults = Attributes()
        server = self.objects.get(1)
        if server is not None and server.instance_ids():
            first = server.instance_ids()[0]
            pmin = server.read(first, 2, self._last_now)
            pmax = server.read(first, 3, self._last_now)
            defaults = Attributes(
                pmin=pmin.value if pmin.ok else None, pmax=pmax.value if pmax.ok else None
            )
        request = parse_attributes(query) if query else None
        return store.for_observation(paths, defaults, request, self.model)

    def registration_links(
        self, content_format_hint: int | None = ContentFormat.SENML_CBOR
    ) -> list[Link]:
        """The links of a Register (or Update) payload: every object but /0 (and /21), with
        ``ver`` where the object's version isn't the default, its instances, and a root link
        ``</>;rt="oma.lwm2m";ct=<hint>`` naming one format (Wakaama accepts only one);
        ``None`` leaves the root link out."""
        objects = [
            (oid, self._version_attribute(obj), obj.instance_ids())
            for oid, obj in sorted(self.objects.items())
        ]
        formats = () if content_format_hint is None else (int(content_format_hint),)
        return registration_links(objects, content_formats=formats)

    def bootstrap_finish(self, now: float) -> Response:
        """Bootstrap-Finish (``POST /bs``): 2.04 if /0 and /1 are consistent, else 4.06.

        Checked: the mandatory resources of every /0 and /1 instance, at most one
        Bootstrap-Server account, at least one LwM2M server account, each with a Short Server
        ID in 1..65534 that names exactly one /1 instance, and no /1 instance without one.
        """
        problems = self._bootstrap_problems(now)
        if problems:
            return Response(Code.NOT_ACCEPTABLE, diagnostic="; ".join(problems))
        return Response(Code.CHANGED)

    # -- dispatch -------------------------------------------------------------------------------

    def _dispatch(self, operation: Operation, request: Request, now: float, store: Any) -> Response:
        op = Operation
        if operation in (op.READ, op.OBSERVE, op.CANCEL_OBSERVE):
            return self._read(request, now)
        if operation is op.DISCOVER:
            return self._discover(request.path, store)
        if operation in (op.WRITE_REPLACE, op.WRITE_UPDATE):
            return self._write(request, now, replace=operation is op.WRITE_REPLACE)
        if operation is op.WRITE_ATTRIBUTES:
            return self._write_attributes(request, store)
        if operation is op.EXECUTE:
            return self._execute(request, now)
        if operation is op.CREATE:
            return self._create(request, now)
        if operation is op.DELETE:
            return self._delete(request, now)
        if operation in (op.READ_COMPOSITE, op.OBSERVE_COMPOSITE, op.CANCEL_OBSERVE_COMPOSITE):
            return self._read_composite(request, now)
        if operation is op.WRITE_COMPOSITE:
            return self._write_composite(request, now)
        if operation is op.BOOTSTRAP_READ:
            return self._bootstrap_read(request, now)
        if operation is op.BOOTSTRAP_WRITE:
            return self._bootstrap_write(request, now)
        if operation is op.BOOTSTRAP_DISCOVER:
            return self._bootstrap_discover(request.path)
        return self._bootstrap_delete(request.path, now)

    # -- finding things -------------------------------------------------------------------------

    def _object(self, path: Path, *, bootstrap: bool = False) -> LwM2MObject:
        oid = path.object_id
        obj = self.objects.get(oid)  # type: ignore[arg-type]
        if obj is None or (oid == 0 and not bootstrap):
            raise _refuse(Code.NOT_FOUND, f"the client has no object /{oid}")
        return obj

    def _instance(self, obj: LwM2MObject, path: Path) -> int:
        iid = path.instance_id
        assert iid is not None
        if iid not in obj.instance_ids():
            raise _refuse(Code.NOT_FOUND, f"/{obj.definition.id}/{iid} does not exist")
        return iid

    def _resource(self, obj: LwM2MObject, path: Path) -> ResourceDef:
        """The definition of a resource present in an existing instance (else 4.04)."""
        iid = self._instance(obj, path)
        rid = path.resource_id
        resource = obj.definition.resources.get(rid)  # type: ignore[arg-type]
        if resource is None or rid not in obj.resource_ids(iid):
            raise _refuse(Code.NOT_FOUND, f"{path.parent if path.level > 3 else path} "
                          "is not present")  # fmt: skip
        return resource

    # -- Read -----------------------------------------------------------------------------------

    def _collect(self, path: Path, now: float, *, bootstrap: bool = False) -> dict[Path, Value]:
        """Every readable value at or below ``path`` (raises ``Refused``)."""
        obj = self._object(path, bootstrap=bootstrap)
        if path.level is Level.OBJECT:
            values: dict[Path, Value] = {}
            for iid in obj.instance_ids():
                values.update(self._collect_instance(obj, path / iid, now, bootstrap))
            return values
        if path.level is Level.INSTANCE:
            self._instance(obj, path)
            return self._collect_instance(obj, path, now, bootstrap)
        resource = self._resource(obj, path)
        resource_path = Path.from_ids(path.ids[:3])
        value = self._read_one(obj, resource_path, now, bootstrap)
        expanded = _expand(resource_path, resource, value)
        if path.level is Level.RESOURCE_INSTANCE:
            if path not in expanded:
                raise _refuse(Code.NOT_FOUND, f"{path} is not present")
            return {path: expanded[path]}
        return expanded

    def _collect_instance(
        self, obj: LwM2MObject, path: Path, now: float, bootstrap: bool
    ) -> dict[Path, Value]:
        values: dict[Path, Value] = {}
        iid = path.instance_id
        for rid in obj.resource_ids(iid):  # type: ignore[arg-type]
            resource = obj.definition.resources.get(rid)
            if resource is None or resource.operations.executable:
                continue
            outcome = obj.read(iid, rid, now, bootstrap=bootstrap)  # type: ignore[arg-type]
            if outcome.ok:
                values.update(_expand(path / rid, resource, outcome.value))
        return values

    def _read_one(self, obj: LwM2MObject, path: Path, now: float, bootstrap: bool) -> object:
        outcome = obj.read(path.instance_id, path.resource_id, now, bootstrap=bootstrap)  # type: ignore[arg-type]
        if not outcome.ok:
            raise _refuse(outcome.code, outcome.diagnostic)
        return outcome.value

    def _read(self, request: Request, now: float, *, bootstrap: bool = False) -> Response:
        path = request.path
        values = self._collect(path, now, bootstrap=bootstrap)
        fmt = self._read_format(path, request.accept)
        return self._content(values, fmt, path)

    def _read_format(self, path: Path, accept: int | None) -> ContentFormat:
        resource = self.model.resource(path)
        single = path.level is Level.RESOURCE_INSTANCE or (
            path.level is Level.RESOURCE and resource is not None and not resource.multiple
        )
        opaque = resource is not None and resource.type is ResourceType.OPAQUE
        if accept is None:
            if single:
                return ContentFormat.OPAQUE if opaque else ContentFormat.TEXT
            return self.preferred_format
        try:
            fmt = ContentFormat(accept)
        except ValueError:
            raise _refuse(Code.NOT_ACCEPTABLE, f"unknown Accept format {accept}") from None
        if fmt not in READ_FORMATS:
            raise _refuse(Code.NOT_ACCEPTABLE, f"this client doesn't answer in {fmt.label}")
        if fmt in _SINGLE_VALUE_FORMATS and not single:
            raise _refuse(
                Code.NOT_ACCEPTABLE,
                f"{fmt.label} carries one value, but {path} holds several; ask for "
                "SenML CBOR (112), SenML JSON (110), TLV (11542) or LwM2M CBOR (11544)",
            )
        if fmt is ContentFormat.OPAQUE and not opaque:
            raise _refuse(Code.NOT_ACCEPTABLE, f"opaque (42) carries only Opaque resources; "
                          f"{path} is not one")  # fmt: skip
        return fmt

    def _content(self, values: Mapping[Path, Value], fmt: ContentFormat, base: Path) -> Response:
        try:
            payload = encode(values, fmt, base, model=self.model)
        except CodecError as error:
            raise _refuse(Code.INTERNAL_SERVER_ERROR, f"can't encode the answer: {error}") from None
        return Response(Code.CONTENT, payload, int(fmt))

    # -- Discover ----------------------------------------------------------------------------

    def _discover(self, path: Path, store: Any) -> Response:
        store = store if store is not None else self.attributes
        obj = self._object(path)
        oid = obj.definition.id
        links: list[Link] = []
        if path.level is Level.OBJECT:
            links.append(Link(f"/{oid}", {"ver": obj.version, **_link_attrs(store, path)}))
            instance_ids = obj.instance_ids()
        else:
            instance_ids = [self._instance(obj, path)]
        for iid in instance_ids:
            instance = Path(oid, iid)
            if path.level <= Level.INSTANCE:
                links.append(Link(str(instance), _link_attrs(store, instance)))
                resource_ids = obj.resource_ids(iid)
            else:
                self._resource(obj, path)
                resource_ids = [path.resource_id]
            for rid in resource_ids:
                resource = obj.definition.resources.get(rid)  # type: ignore[arg-type]
                if resource is None:
                    continue
                attributes: dict[str, Any] = {}
                if resource.multiple:
                    outcome = obj.read(iid, rid, self._last_now)  # type: ignore[arg-type]
                    if outcome.ok and isinstance(outcome.value, Mapping):
                        attributes["dim"] = len(outcome.value)
                attributes.update(_link_attrs(store, instance / rid))  # type: ignore[operator]
                links.append(Link(f"{instance}/{rid}", attributes))
        return _links_response(links)

    # -- Write ----------------------------------------------------------------------------------

    def _decoded(self, request: Request, base: Path) -> dict[Path, Value]:
        if request.content_format is None:
            raise _refuse(Code.UNSUPPORTED_CONTENT_FORMAT, "the request has no Content-Format")
        try:
            return decode(request.payload, request.content_format, base, model=self.model)
        except UnsupportedContentFormat as error:
            raise _refuse(Code.UNSUPPORTED_CONTENT_FORMAT, str(error)) from None
        except CodecError as error:
            raise _refuse(Code.BAD_REQUEST, str(error)) from None
        except ValueError as error:  # e.g. int() of a 5000-digit text value (Python's limit)
            raise _refuse(Code.BAD_REQUEST, f"the payload does not decode: {error}") from None

    def _write(self, request: Request, now: float, *, replace: bool) -> Response:
        path = request.path
        obj = self._object(path)
        iid = self._instance(obj, path)
        if path.level >= Level.RESOURCE:
            resource = obj.definition.resources.get(path.resource_id)  # type: ignore[arg-type]
            if resource is None:
                raise _refuse(Code.NOT_FOUND, f"/{obj.definition.id} has no resource "
                              f"{path.resource_id}")  # fmt: skip
            if not replace and not resource.multiple:
                raise _refuse(
                    Code.METHOD_NOT_ALLOWED,
                    f"POST with a Content-Format on {path} ({resource.name}) would be a "
                    "partial update, which only a multiple resource has; use PUT to write it",
                )
            if path.level is Level.RESOURCE_INSTANCE and not resource.multiple:
                raise _refuse(Code.NOT_FOUND, f"{path.parent} is a single resource")
        values = self._decoded(request, path)
        grouped = _group(values)
        changes = grouped.get(iid, {})
        if path.level >= Level.RESOURCE:
            rid = path.resource_id
            resource = obj.definition.resources[rid]  # type: ignore[index]
            if path.level is Level.RESOURCE and resource.multiple:
                changes.setdefault(rid, {})  # type: ignore[arg-type]
            elif rid not in changes:
                raise _refuse(Code.BAD_REQUEST, f"the payload carries no value for {path}")
            merge = path.level is Level.RESOURCE_INSTANCE or not replace
            return self._apply(obj, iid, changes, now, merge=merge, targeted=True)
        return self._apply(obj, iid, changes, now, merge=not replace, targeted=False)

    def _apply(
        self,
        obj: LwM2MObject,
        iid: int,
        changes: Mapping[int, object],
        now: float,
        *,
        merge: bool,
        targeted: bool,
        bootstrap: bool = False,
    ) -> Response:
        """Check then write ``changes`` (rid → value, a dict for a multiple resource)."""
        oid = obj.definition.id
        planned: list[tuple[int, object]] = []
        for rid, value in sorted(changes.items()):
            resource = obj.definition.resources.get(rid)
            if resource is None:
                continue  # unknown to the object: ignored
            if resource.operations.executable or not (bootstrap or resource.operations.writable):
                raise _refuse(
                    Code.METHOD_NOT_ALLOWED,
                    f"/{oid}/{iid}/{rid} {resource.name} is not writable",
                )
            if resource.multiple and merge:
                current = obj.read(iid, rid, now, bootstrap=True)
                base = (
                    dict(current.value) if current.ok and isinstance(current.value, Mapping) else {}
                )
                base.update(value)  # type: ignore[call-overload]
                value = base
            problem = check_value(resource, value, ranges=False)
            if problem:
                raise _refuse(Code.BAD_REQUEST, f"/{oid}/{iid}/{rid}: {problem}")
            planned.append((rid, value))
        for rid, value in planned:
            outcome = obj.write(iid, rid, value, now, bootstrap=bootstrap)
            optional = not obj.definition.resources[rid].mandatory
            if outcome.code is Code.NOT_FOUND and not targeted and optional:
                continue  # an optional resource this object doesn't implement
            if not outcome.ok:
                return Response(outcome.code, diagnostic=outcome.diagnostic)
        return Response(Code.CHANGED)

    def _write_attributes(self, request: Request, store: Any) -> Response:
        from .observe import InvalidAttributes, parse_attributes

        path = request.path
        if request.payload:
            raise _refuse(
                Code.BAD_REQUEST,
                "a PUT without Content-Format is Write-Attributes, which carries its attributes "
                "in the query and no payload; give the Content-Format to Write a value",
            )
        obj = self._object(path)
        if path.level >= Level.INSTANCE:
            self._instance(obj, path)
        if path.level >= Level.RESOURCE:
            resource = self._resource(obj, path)
            if path.level is Level.RESOURCE_INSTANCE:
                value = self._read_one(obj, Path.from_ids(path.ids[:3]), self._last_now, False)
                if not resource.multiple or path not in _expand(path.parent, resource, value):
                    raise _refuse(Code.NOT_FOUND, f"{path} is not present")
        store = store if store is not None else self.attributes
        try:
            store.update(path, parse_attributes(request.query), self.model)
        except InvalidAttributes as error:
            raise _refuse(Code.BAD_REQUEST, str(error)) from None
        return Response(Code.CHANGED)

    # -- Execute, Create, Delete ----------------------------------------------------------------

    def _execute(self, request: Request, now: float) -> Response:
        path = request.path
        obj = self._object(path)
        resource = self._resource(obj, path)
        if not resource.operations.executable:
            raise _refuse(
                Code.METHOD_NOT_ALLOWED,
                f"{path} {resource.name} is not executable (a POST without Content-Format is "
                "Execute)",
            )
        try:
            arguments = request.payload.decode("ascii")
            parse_execute_arguments(arguments)
        except UnicodeDecodeError:
            raise _refuse(Code.BAD_REQUEST, "Execute arguments are ASCII text") from None
        except ValueError as error:
            raise _refuse(Code.BAD_REQUEST, str(error)) from None
        outcome = obj.execute(path.instance_id, path.resource_id, arguments, now)  # type: ignore[arg-type]
        return Response(outcome.code, diagnostic=outcome.diagnostic)

    def _create(self, request: Request, now: float) -> Response:
        path = request.path
        obj = self._object(path)
        values: dict[Path, Value] = {}
        if request.content_format is not None or request.payload:
            values = self._decoded(request, path)
        grouped = _group(values)
        if len(grouped) > 1:
            raise _refuse(Code.BAD_REQUEST, "one Create makes one instance; the payload has "
                          f"{len(grouped)}")  # fmt: skip
        iid, resources = next(iter(grouped.items()), (None, {}))
        known = {rid: v for rid, v in resources.items() if rid in obj.definition.resources}
        outcome = obj.create(iid, known, now)
        if not outcome.ok:
            return Response(outcome.code, diagnostic=outcome.diagnostic)
        self._instances_changed()
        return Response(Code.CREATED, location_path=(str(path.object_id), str(outcome.value)))

    def _delete(self, request: Request, now: float) -> Response:
        path = request.path
        obj = self._object(path)
        self._instance(obj, path)
        outcome = obj.delete(path.instance_id, now)  # type: ignore[arg-type]
        if not outcome.ok:
            return Response(outcome.code, diagnostic=outcome.diagnostic)
        if self._attributes is not None and hasattr(self._attributes, "forget"):
            self._attributes.forget(path)
        self._instances_changed()
        return Response(Code.DELETED)

    # -- composite ------------------------------------------------------------------------------

    def _composite_format(self, content_format: int | None, role: str) -> ContentFormat:
        if content_format not in _COMPOSITE_FORMATS:
            raise _refuse(
                Code.UNSUPPORTED_CONTENT_FORMAT,
                f"{role} is SenML JSON (110), SenML CBOR (112) or LwM2M CBOR (11544), "
                f"not {content_format}",
            )
        return ContentFormat(content_format)

    def _composite_paths(self, request: Request) -> list[Path]:
        fmt = request.content_format
        if fmt not in _SENML:
            raise _refuse(
                Code.UNSUPPORTED_CONTENT_FORMAT,
                f"a composite request lists its paths in SenML JSON (110) or SenML CBOR (112), "
                f"not {fmt}",
            )
        try:
            return senml.decode_paths(request.payload, ContentFormat(fmt))
        except CodecError as error:
            raise _refuse(Code.BAD_REQUEST, str(error)) from None

    def _read_composite(self, request: Request, now: float) -> Response:
        paths = self._composite_paths(request)
        accept = request.content_format if request.accept is None else request.accept
        if accept not in _COMPOSITE_FORMATS:
            raise _refuse(
                Code.NOT_ACCEPTABLE,
                f"a composite answer is SenML JSON (110), SenML CBOR (112) or LwM2M CBOR "
                f"(11544), not {accept}",
            )
        fmt = ContentFormat(accept)
        records: list[senml.Record] = []
        for path in paths:
            try:
                values = self.read_values(path, now)
            except Refused:
                continue  # paths that don't exist (or can't be read) are left out
            records.extend(senml.Record(p, v) for p, v in sorted(values.items()))
        try:
            if fmt in _SENML:
                payload = senml.encode_records(records, fmt, Path(), self.model)
            else:
                payload = encode({r.path: r.value for r in records}, fmt, Path(), model=self.model)  # type: ignore[misc]
        except CodecError as error:
            raise _refuse(Code.INTERNAL_SERVER_ERROR, f"can't encode the answer: {error}") from None
        return Response(Code.CONTENT, payload, int(fmt))

    def _write_composite(self, request: Request, now: float) -> Response:
        fmt = self._composite_format(request.content_format, "a Write-Composite payload")
        values = self._decoded(Request(request.method, Path(), request.payload, fmt), Path())
        plan: dict[tuple[int, int], dict[int, object]] = {}
        for path in sorted(values):
            obj = self._object(path)
            self._instance(obj, path)
            resource = obj.definition.resources.get(path.resource_id)  # type: ignore[arg-type]
            if resource is None:
                raise _refuse(Code.NOT_FOUND, f"/{path.object_id} has no resource "
                              f"{path.resource_id}")  # fmt: skip
            if resource.operations.executable or not resource.operations.writable:
                raise _refuse(Code.METHOD_NOT_ALLOWED, f"{path} {resource.name} is not writable")
            changes = plan.setdefault((path.object_id, path.instance_id), {})  # type: ignore[arg-type]
            if path.level is Level.RESOURCE_INSTANCE:
                changes.setdefault(path.resource_id, {})[path.resource_instance_id] = values[path]  # type: ignore[index]
            else:
                changes[path.resource_id] = values[path]  # type: ignore[index]
        # Check everything before writing anything.
        for (oid, iid), changes in plan.items():
            for rid, value in changes.items():
                resource = self.objects[oid].definition.resources[rid]
                if isinstance(value, dict) and resource.multiple:
                    continue  # merged with the current instances by _apply, then checked
                problem = check_value(resource, value, ranges=False)
                if problem:
                    raise _refuse(Code.BAD_REQUEST, f"/{oid}/{iid}/{rid}: {problem}")
        for (oid, iid), changes in plan.items():
            response = self._apply(self.objects[oid], iid, changes, now, merge=True, targeted=True)
            if not response.code.is_success:
                return response
        return Response(Code.CHANGED)

    # -- bootstrap ------------------------------------------------------------------------------

    def _bootstrap_read(self, request: Request, now: float) -> Response:
        if request.path.object_id not in (1, 2):
            raise _refuse(
                Code.METHOD_NOT_ALLOWED,
                "Bootstrap-Read reads /1 Server (and /2 Access Control) only",
            )
        return self._read(request, now, bootstrap=True)

    def _bootstrap_write(self, request: Request, now: float) -> Response:
        path = request.path
        obj = self.objects.get(path.object_id)  # type: ignore[arg-type]
        if obj is None:
            raise _refuse(Code.BAD_REQUEST, f"the client has no object /{path.object_id}")
        values = self._decoded(request, path)
        grouped = _group(values)
        if path.level >= Level.INSTANCE:
            grouped.setdefault(path.instance_id, {})  # type: ignore[arg-type]
        for iid, changes in sorted(grouped.items()):
            known = {rid: v for rid, v in changes.items() if rid in obj.definition.resources}
            if iid in obj.instance_ids():
                merge = path.level is Level.RESOURCE_INSTANCE
                response = self._apply(
                    obj, iid, known, now, merge=merge, targeted=False, bootstrap=True
                )
                if not response.code.is_success:
                    return Response(Code.BAD_REQUEST, diagnostic=response.diagnostic)
            else:
                outcome = obj.create(iid, known, now, bootstrap=True)
                if not outcome.ok:
                    return Response(Code.BAD_REQUEST, diagnostic=outcome.diagnostic)
        return Response(Code.CHANGED)

    def _bootstrap_discover(self, path: Path) -> Response:
        links = [Link("/", {"lwm2m": self.lwm2m_version})]
        if path.level is Level.OBJECT and path.object_id not in self.objects:
            raise _refuse(Code.NOT_FOUND, f"the client has no object /{path.object_id}")
        for oid, obj in sorted(self.objects.items()):
            if path.level is Level.OBJECT and oid != path.object_id:
                continue
            version = self._version_attribute(obj)
            instance_ids = obj.instance_ids()
            if version is not None or not instance_ids:
                links.append(Link(f"/{oid}", {} if version is None else {"ver": version}))
            for iid in instance_ids:
                links.append(Link(f"/{oid}/{iid}", self._account_attributes(obj, iid)))
        return _links_response(links)

    def _account_attributes(self, obj: LwM2MObject, iid: int) -> dict[str, Any]:
        def value(rid: int) -> object:
            if rid not in obj.resource_ids(iid):
                return None
            outcome = obj.read(iid, rid, self._last_now, bootstrap=True)
            return outcome.value if outcome.ok else None

        attributes: dict[str, Any] = {}
        if obj.definition.id == 0:
            ssid, uri = value(10), value(0)
            if isinstance(ssid, int) and not value(1):
                attributes["ssid"] = ssid
            if isinstance(uri, str):
                attributes["uri"] = uri
        elif obj.definition.id == 1:
            ssid = value(0)
            if isinstance(ssid, int):
                attributes["ssid"] = ssid
        return attributes

    def _bootstrap_delete(self, path: Path, now: float) -> Response:
        if path.level is not Level.ROOT and path.object_id not in self.objects:
            return Response(Code.DELETED)  # nothing there: deleted already
        targets = [path.object_id] if path.object_id is not None else sorted(self.objects)
        deleted_any = False
        for oid in targets:
            obj = self.objects[oid]  # type: ignore[index]
            keep = self._bootstrap_account(obj)
            if path.level is Level.INSTANCE:
                iid = path.instance_id
                if iid == keep:
                    raise _refuse(
                        Code.BAD_REQUEST,
                        f"/0/{iid} is the Bootstrap-Server account, which Bootstrap-Delete keeps",
                    )
                if iid not in obj.instance_ids():
                    return Response(Code.DELETED)
                outcome = obj.delete(iid, now, bootstrap=True)  # type: ignore[arg-type]
                if not outcome.ok:
                    raise _refuse(Code.BAD_REQUEST, outcome.diagnostic)
                deleted_any = True
                continue
            for iid in obj.instance_ids():
                if iid != keep:
                    deleted_any |= obj.delete(iid, now, bootstrap=True).ok
        if deleted_any and self._attributes is not None and hasattr(self._attributes, "forget"):
            self._attributes.forget(path)
        return Response(Code.DELETED)

    def _bootstrap_account(self, obj: LwM2MObject) -> int | None:
        if obj.definition.id != 0:
            return None
        for iid in obj.instance_ids():
            outcome = obj.read(iid, 1, self._last_now, bootstrap=True)
            if outcome.ok and outcome.value is True:
                return iid
        return None

    def _bootstrap_problems(self, now: float) -> list[str]:
        security, server = self.objects.get(0), self.objects.get(1)
        if security is None or server is None:
            return ["the client needs Object /0 Security and Object /1 Server"]
        problems: list[str] = []

        def values_of(obj: LwM2MObject, iid: int) -> dict[int, object]:
            result = {}
            for rid in obj.resource_ids(iid):
                outcome = obj.read(iid, rid, now, bootstrap=True)
                if outcome.ok:
                    result[rid] = outcome.value
            return result

        for obj in (security, server):
            for iid in obj.instance_ids():
                present = values_of(obj, iid)
                for resource in obj.definition.mandatory_resources:
                    if not resource.operations.executable and resource.id not in present:
                        problems.append(
                            f"/{obj.definition.id}/{iid} lacks mandatory resource "
                            f"{resource.id} {resource.name}"
                        )
        accounts = {iid: values_of(security, iid) for iid in security.instance_ids()}
        bootstrap_accounts = [iid for iid, v in accounts.items() if v.get(1) is True]
        if len(bootstrap_accounts) > 1:
            problems.append(f"/0 has {len(bootstrap_accounts)} Bootstrap-Server accounts")
        servers = {iid: values_of(server, iid).get(0) for iid in server.instance_ids()}
        dm_ssids = []
        for iid, values in accounts.items():
            if values.get(1) is True:
                continue
            ssid = values.get(10)
            if not isinstance(ssid, int) or not 1 <= ssid <= 65534:
                problems.append(f"/0/{iid} is an LwM2M server account without a Short Server "
                                "ID (/0/x/10, 1..65534)")  # fmt: skip
                continue
            dm_ssids.append(ssid)
            matching = [s for s in servers.values() if s == ssid]
            if len(matching) != 1:
                problems.append(
                    f"/0/{iid} (Short Server ID {ssid}) needs exactly one /1 instance with "
                    f"that Short Server ID; there are {len(matching)}"
                )
        if not dm_ssids:
            problems.append("/0 has no LwM2M server account: there is nowhere to register")
        for iid, ssid in servers.items():
            if ssid not in dm_ssids:
                problems.append(f"/1/{iid} (Short Server ID {ssid}) has no /0 account")
        return problems

    # -- small helpers --------------------------------------------------------------------------

    def _version_attribute(self, obj: LwM2MObject) -> str | None:
        """The object's version, or None when it is the default for our LwM2M version."""
        defaults = _DEFAULT_VERSIONS_1_1 if self.lwm2m_version != "1.0" else {}
        default = defaults.get(obj.definition.id, "1.0")
        return None if obj.version == default else obj.version

    def _forward_change(self, path: Path) -> None:
        for hook in list(self.on_change):
            hook(path)

    def _instances_changed(self) -> None:
        for hook in list(self.on_instances_changed):
            hook()


def _expand(path: Path, resource: ResourceDef, value: object) -> dict[Path, Value]:
    """A resource's value as path → value: one per instance for a multiple resource."""
    if resource.multiple and isinstance(value, Mapping):
        return {path / riid: v for riid, v in sorted(value.items())}
    return {path: value}  # type: ignore[dict-item]


def _group(values: Mapping[Path, Value]) -> dict[int, dict[int, object]]:
    """Decoded values as instance id → resource id → value (a dict for resource instances)."""
    grouped: dict[int, dict[int, object]] = {}
    for path, value in values.items():
        changes = grouped.setdefault(path.instance_id, {})  # type: ignore[arg-type]
        if path.level is Level.RESOURCE_INSTANCE:
            instances = changes.setdefault(path.resource_id, {})  # type: ignore[arg-type]
            if isinstance(instances, dict):
                instances[path.resource_instance_id] = value
        elif path.level is Level.RESOURCE:
            changes[path.resource_id] = value  # type: ignore[index]
    return grouped


def _link_attrs(store: Any, path: Path) -> dict[str, Any]:
    """The attributes set at ``path``, typed as link-format writes them."""
    attributes: dict[str, Any] = {}
    for name, value in store.at(path).items():
        if name in FLOAT_ATTRIBUTES:
            attributes[name] = float(value)
        elif name in INT_ATTRIBUTES:
            attributes[name] = int(value)
        else:
            attributes[name] = str(value)
    return attributes


def _links_response(links: list[Link]) -> Response:
    return Response(Code.CONTENT, encode_links(links), int(ContentFormat.LINK_FORMAT))
