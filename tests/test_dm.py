"""The Device Management dispatcher: every operation, path level and format, and its error codes."""

from datetime import UTC, datetime

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2m_edu.codecs import ContentFormat, decode, encode
from lwm2m_edu.codecs.linkformat import encode_links, parse_links
from lwm2m_edu.dm import DataModel, Method, Operation, Refused, Request, classify
from lwm2m_edu.dm import parse_execute_arguments as args
from lwm2m_edu.fota import State
from lwm2m_edu.model import ObjectDef, Operations, ResourceDef, ResourceType
from lwm2m_edu.objects import Code
from lwm2m_edu.objects.base import SimpleObject, SingleInstance
from lwm2m_edu.objects.device import DeviceObject
from lwm2m_edu.objects.firmware import FirmwareObject
from lwm2m_edu.objects.security import SecurityObject
from lwm2m_edu.objects.server import ServerObject
from lwm2m_edu.observe import AttributeStore
from lwm2m_edu.paths import Path

from .strategies import TYPED_OBJECT
from .test_objects import Handlers

CF = ContentFormat
GET, POST, PUT, DELETE, FETCH, IPATCH = (
    Method[n] for n in ["GET", "POST", "PUT", "DELETE", "FETCH", "IPATCH"]
)
NOW = 1_000.0


class Typed(SimpleObject):
    """/3442: a writable single and multiple resource of every type."""

    definition = TYPED_OBJECT


def _rw(id, name, type):
    return ResourceDef(id, name, Operations.RW, type)


class LightControl(SimpleObject):
    definition = ObjectDef.of(
        3311,
        "Light Control",
        "1.0",
        multiple=True,
        mandatory=False,
        resources=[
            _rw(5850, "On/Off", ResourceType.BOOLEAN),
            _rw(5851, "Dimmer", ResourceType.INTEGER),
        ],
    )


class SetPoint(SimpleObject):
    definition = ObjectDef.of(
        3308,
        "Set Point",
        "1.0",
        multiple=True,
        mandatory=False,
        resources=[_rw(5900, "Set Point Value", ResourceType.FLOAT)],
    )


def make_parts():
    security = SecurityObject()
    security.add_bootstrap_server("coap://bs")
    security.add_server("coap://srv", 101)
    triggers: list[int] = []
    server = ServerObject(on_update_trigger=triggers.append)
    server.add(101, 86400)
    device = DeviceObject(
        manufacturer="Open Mobile Alliance",
        battery_level=95,
        firmware_version="1.0",
        on_reboot=lambda: triggers.append(-1),
    )
    firmware = FirmwareObject(Handlers())
    typed = Typed({0: {}})
    return {
        "security": security,
        "server": server,
        "device": device,
        "firmware": firmware,
        "typed": typed,
        "triggers": triggers,
    }


@pytest.fixture
def parts():
    return make_parts()


def build(parts):
    return DataModel(
        [
            parts["security"],
            parts["server"],
            parts["device"],
            SingleInstance(parts["firmware"]),
            parts["typed"],
            LightControl({0: {}, 1: {}, 2: {}}),
            SetPoint({0: {}}),
        ],
        attributes=AttributeStore(),
    )


@pytest.fixture
def dm(parts):
    return build(parts)


def req(method, path, payload=b"", **options):
    return Request(method, Path(path), payload, **options)


def handle(dm, method, path, payload=b"", *, bootstrap=False, **options):
    return dm.handle(req(method, path, payload, **options), NOW, bootstrap=bootstrap)


# -- classification (Anjay Lite's rules) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "operation"),
    [
        (req(GET, "/3/0/9"), Operation.READ),
        (req(GET, "/3/0/9", accept=40), Operation.DISCOVER),
        (req(GET, "/3/0/9", observe=0), Operation.OBSERVE),
        (req(GET, "/3/0/9", observe=1), Operation.CANCEL_OBSERVE),
        (req(GET, "/3/0/9", observe=0, accept=40), Operation.OBSERVE),
        (req(POST, "/1"), Operation.CREATE),
        (req(POST, "/1/0", content_format=112), Operation.WRITE_UPDATE),
        (req(POST, "/1/0/8"), Operation.EXECUTE),
        (req(POST, "/1/0/8", content_format=0), Operation.EXECUTE),
        (req(POST, "/3442/0/11", content_format=112), Operation.WRITE_UPDATE),
        (req(POST, "/"), None),
        (req(POST, "/3/0/11/0"), None),
        (req(PUT, "/1/0/1", content_format=0), Operation.WRITE_REPLACE),
        (req(PUT, "/1/0/1"), Operation.WRITE_ATTRIBUTES),
        (req(DELETE, "/1/0"), Operation.DELETE),
        (req(FETCH, "/"), Operation.READ_COMPOSITE),
        (req(FETCH, "/", observe=0), Operation.OBSERVE_COMPOSITE),
        (req(FETCH, "/", observe=1), Operation.CANCEL_OBSERVE_COMPOSITE),
        (req(IPATCH, "/"), Operation.WRITE_COMPOSITE),
        (req(Method.PATCH, "/"), None),
    ],
)
def test_requests_are_classified_as_anjay_lite_does(request_, operation):
    assert classify(request_) is operation


@pytest.mark.parametrize(
    ("request_", "operation"),
    [
        (req(GET, "/", accept=40), Operation.BOOTSTRAP_DISCOVER),
        (req(GET, "/1"), Operation.BOOTSTRAP_READ),
        (req(PUT, "/0/1", content_format=112), Operation.BOOTSTRAP_WRITE),
        (req(DELETE, "/"), Operation.BOOTSTRAP_DELETE),
        (req(PUT, "/1/0"), None),
        (req(POST, "/1/0/8"), None),
        (req(FETCH, "/"), None),
    ],
)
def test_bootstrap_requests_are_classified_during_bootstrap(request_, operation):
    assert classify(request_, bootstrap=True) is operation


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        (GET, "/", {}),  # Read needs an object id
        (GET, "/3/0/11/0", {"accept": 40}),  # Discover: not on a resource instance
        (GET, "/", {"accept": 40}),
        (PUT, "/1", {"content_format": 0}),  # Write needs an instance id
        (DELETE, "/1/0/1", {}),  # Delete: not on a resource
        (DELETE, "/1", {}),
        (DELETE, "/", {}),
        (FETCH, "/3/0", {"content_format": 112}),  # composite: on / only
        (IPATCH, "/3/0", {"content_format": 112}),
        (PUT, "/", {}),
        (Method.PATCH, "/3/0", {}),
        (POST, "/", {}),
    ],
)
def test_an_operation_at_a_path_level_it_does_not_have_is_method_not_allowed(
    dm, method, path, options
):
    assert handle(dm, method, path, **options).code is Code.METHOD_NOT_ALLOWED


def test_non_confirmable_requests_are_refused_except_execute(dm, parts):
    refused = handle(dm, GET, "/3/0/9", confirmable=False)
    assert refused.code is Code.BAD_REQUEST and "confirmable" in refused.diagnostic
    assert handle(dm, POST, "/1/0/8", confirmable=False).code is Code.CHANGED
    assert parts["triggers"] == [101]


@pytest.mark.parametrize("method", [GET, PUT, POST, DELETE])
def test_object_0_security_is_invisible_to_dm_servers(dm, method):
    for path in ("/0", "/0/1", "/0/1/0"):
        assert handle(dm, method, path, accept=40).code is Code.NOT_FOUND


# -- Read ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        (p, f)
        for p in ("/3", "/3/0", "/1/0", "/3/0/11")
        for f in (CF.SENML_JSON, CF.SENML_CBOR, CF.TLV, CF.LWM2M_CBOR)
    ]
    + [
        (p, f)
        for p in ("/3/0/9", "/3/0/11/0")
        for f in (CF.TEXT, CF.CBOR, CF.SENML_CBOR, CF.SENML_JSON, CF.TLV, CF.LWM2M_CBOR)
    ],
)
def test_read_answers_every_level_in_every_format_that_can_carry_it(dm, path, accept):
    response = handle(dm, GET, path, accept=int(accept))
    assert response.code is Code.CONTENT and response.content_format == accept
    assert decode(response.payload, accept, path) == dm.read_values(Path(path))


def test_read_of_an_instance_carries_its_readable_resources(dm):
    values = dm.read_values(Path("/3/0"), NOW)
    assert values[Path("/3/0/0")] == "Open Mobile Alliance"
    assert values[Path("/3/0/11/0")] == 0
    assert values[Path("/3/0/13")] == datetime.fromtimestamp(NOW, UTC)
    assert Path("/3/0/4") not in values  # executable


@pytest.mark.parametrize(
    ("path", "expected_format", "payload"),
    [
        ("/3/0/9", CF.TEXT, b"95"),
        ("/3/0/11/0", CF.TEXT, b"0"),
        ("/3/0", CF.SENML_CBOR, None),
        ("/3/0/11", CF.SENML_CBOR, None),
        ("/3442/0/50", CF.OPAQUE, b"\x01\x02"),
    ],
)
def test_without_accept_one_value_is_text_or_opaque_and_more_the_preferred_format(
    dm, parts, path, expected_format, payload
):
    parts["typed"].set(0, 50, b"\x01\x02")  # TYPED_OBJECT: 50 is the single Opaque resource
    response = handle(dm, GET, path)
    assert response.content_format == expected_format
    if payload is not None:
        assert response.payload == payload


def test_the_preferred_format_is_a_constructor_choice(parts):
    dm = DataModel([parts["device"]], preferred_format=CF.SENML_JSON)
    assert handle(dm, GET, "/3/0").content_format == CF.SENML_JSON


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/3/0", CF.TEXT),
        ("/3/0", CF.CBOR),
        ("/3/0/11", CF.TEXT),
        ("/3/0/0", CF.OPAQUE),
        ("/3/0/9", CF.LEGACY_TLV),
        ("/3/0/9", CF.OMA_JSON),
        ("/3/0/9", 9999),
    ],
)
def test_an_accept_format_that_cannot_carry_the_answer_is_not_acceptable(dm, path, accept):
    assert handle(dm, GET, path, accept=int(accept)).code is Code.NOT_ACCEPTABLE


@pytest.mark.parametrize("path", ["/9", "/3/1", "/3/0/2", "/3/0/11/7", "/3/0/9/0", "/1/0/99"])
def test_read_of_something_missing_is_not_found(dm, path):
    assert handle(dm, GET, path).code is Code.NOT_FOUND


@pytest.mark.parametrize("path", ["/5/0/0", "/1/0/8"])
def test_read_of_a_write_only_or_executable_resource_is_method_not_allowed(dm, path):
    assert handle(dm, GET, path).code is Code.METHOD_NOT_ALLOWED


def test_read_values_serves_the_observe_engine_and_send(dm):
    assert dm.read_values(Path("/3/0/9")) == {Path("/3/0/9"): 95}
    assert Path("/1/0/1") in dm.read_values(Path("/"))
    assert not any(p.object_id == 0 for p in dm.read_values(Path("/")))
    with pytest.raises(Refused) as refusal:
        dm.read_values(Path("/3/0/2"))
    assert refusal.value.code is Code.NOT_FOUND


# -- Discover --------------------------------------------------------------------------------------


def test_discover_of_an_object_lists_version_instances_resources_and_dim(dm):
    response = handle(dm, GET, "/3", accept=40)
    assert response.content_format == CF.LINK_FORMAT
    text = response.payload.decode()
    assert text.startswith("</3>;ver=1.1,</3/0>,</3/0/0>,")
    assert "</3/0/11>;dim=1" in text and "</3/0/4>," in text


def test_discover_shows_the_attributes_written_at_each_level(dm):
    assert handle(dm, PUT, "/3", query=("pmin=10", "pmax=60")).code is Code.CHANGED
    assert handle(dm, PUT, "/3/0/9", query=("gt=50",)).code is Code.CHANGED
    text = handle(dm, GET, "/3", accept=40).payload.decode()
    assert text.startswith("</3>;ver=1.1;pmin=10;pmax=60,")
    assert "</3/0/9>;gt=50," in text


def test_discover_of_an_instance_and_of_a_resource(dm):
    links = parse_links(handle(dm, GET, "/1/0", accept=40).payload)
    assert links[0].target == "/1/0" and {link.target for link in links} >= {"/1/0/1", "/1/0/8"}
    assert handle(dm, GET, "/3/0/11", accept=40).payload == b"</3/0/11>;dim=1"


def test_discover_of_something_missing_is_not_found(dm):
    assert handle(dm, GET, "/3/0/2", accept=40).code is Code.NOT_FOUND
    assert handle(dm, GET, "/7", accept=40).code is Code.NOT_FOUND


# -- Write -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", [CF.TEXT, CF.CBOR, CF.SENML_JSON, CF.SENML_CBOR, CF.TLV, CF.LEGACY_TLV, CF.LWM2M_CBOR]
)
def test_write_replace_of_a_resource_in_every_format(dm, fmt):
    payload = encode({Path("/1/0/1"): 300}, fmt, "/1/0/1")
    assert handle(dm, PUT, "/1/0/1", payload, content_format=int(fmt)).code is Code.CHANGED
    assert dm.read_values(Path("/1/0/1")) == {Path("/1/0/1"): 300}


@pytest.mark.parametrize("fmt", [CF.SENML_JSON, CF.SENML_CBOR, CF.TLV, CF.LWM2M_CBOR])
@pytest.mark.parametrize("method", [PUT, POST])
def test_write_of_an_instance_in_every_format(dm, fmt, method):
    values = {Path("/1/0/1"): 60, Path("/1/0/7"): "UQ", Path("/1/0/6"): False}
    payload = encode(values, fmt, "/1/0")
    assert handle(dm, method, "/1/0", payload, content_format=int(fmt)).code is Code.CHANGED
    assert {p: dm.read_values(p)[p] for p in values} == values


def test_write_of_an_instance_refuses_read_only_resources_whole(dm):
    # Leshan's ENCODED_SERVER vector (reference T4): it carries Short Server ID, read-only.
    t4 = bytes.fromhex("08000FC10001C40100015180C10601C10755")
    response = handle(dm, PUT, "/1/0", t4, content_format=int(CF.TLV))
    assert response.code is Code.METHOD_NOT_ALLOWED and "Short Server ID" in response.diagnostic
    assert dm.read_values(Path("/1/0/1")) == {Path("/1/0/1"): 86400}  # nothing written


def test_write_of_an_instance_ignores_optional_resources_the_object_lacks(dm):
    payload = encode({Path("/1/0/1"): 70, Path("/1/0/22"): "U"}, CF.SENML_CBOR, "/1/0")
    assert handle(dm, POST, "/1/0", payload, content_format=112).code is Code.CHANGED
    assert dm.read_values(Path("/1/0/1"))[Path("/1/0/1")] == 70


@pytest.mark.parametrize("cf", [40, 11543, 1543, 9999])
def test_write_in_an_unknown_or_unsupported_format_is_4_15(dm, cf):
    response = handle(dm, PUT, "/1/0/1", b"300", content_format=cf)
    assert response.code is Code.UNSUPPORTED_CONTENT_FORMAT


@pytest.mark.parametrize(
    ("cf", "payload"), [(0, b"3x0"), (112, b"\xff"), (110, b"[{"), (11542, b"\xc8")]
)
def test_a_malformed_payload_is_bad_request_with_the_codec_error(dm, cf, payload):
    response = handle(dm, PUT, "/1/0/1", payload, content_format=cf)
    assert response.code is Code.BAD_REQUEST and response.diagnostic


@pytest.mark.parametrize(("path", "payload"), [("/1/0/7", b"X"), ("/1/0/1", b"-1")])
def test_a_bad_value_is_bad_request(dm, path, payload):
    assert handle(dm, PUT, path, payload, content_format=0).code is Code.BAD_REQUEST


def test_write_of_a_read_only_resource_is_method_not_allowed(dm):
    assert handle(dm, PUT, "/3/0/9", b"5", content_format=0).code is Code.METHOD_NOT_ALLOWED
    assert handle(dm, PUT, "/1/0/0", b"5", content_format=0).code is Code.METHOD_NOT_ALLOWED


@pytest.mark.parametrize("path", ["/3/1/9", "/3/0/99", "/42/0/1"])
def test_write_of_something_missing_is_not_found(dm, path):
    assert handle(dm, PUT, path, b"5", content_format=0).code is Code.NOT_FOUND


def test_post_with_content_format_on_a_single_resource_is_method_not_allowed(dm):
    assert handle(dm, POST, "/1/0/1", b"5", content_format=60).code is Code.METHOD_NOT_ALLOWED


def test_put_replaces_a_multiple_resource_and_post_merges_into_it(dm, parts):
    typed = parts["typed"]
    path = "/3442/0/21"  # the multiple Integer resource
    put = encode({Path(path) / 0: 1, Path(path) / 1: 2}, CF.SENML_CBOR, path)
    assert handle(dm, PUT, path, put, content_format=112).code is Code.CHANGED
    post = encode({Path(path) / 5: 9}, CF.SENML_CBOR, path)
    assert handle(dm, POST, path, post, content_format=112).code is Code.CHANGED
    assert typed.get(0, 21) == {0: 1, 1: 2, 5: 9}
    assert handle(dm, PUT, path, post, content_format=112).code is Code.CHANGED
    assert typed.get(0, 21) == {5: 9}
    assert handle(dm, PUT, path, b"", content_format=112).code is Code.CHANGED
    assert typed.get(0, 21) == {}


def test_write_of_one_resource_instance_keeps_the_others(dm, parts):
    parts["typed"].set(0, 21, {0: 1, 1: 2})
    assert handle(dm, PUT, "/3442/0/21/1", b"7", content_format=0).code is Code.CHANGED
    assert parts["typed"].get(0, 21) == {0: 1, 1: 7}


def test_write_to_the_firmware_package_goes_to_the_firmware_object(dm, parts):
    response = handle(dm, PUT, "/5/0/0", b"image", content_format=42)
    assert response.code is Code.CHANGED
    assert parts["firmware"].state is State.DOWNLOADED


def test_a_package_uri_write_is_judged_by_the_firmware_object(dm, parts):
    response = handle(dm, PUT, "/5/0/1", b"ftp://x/y", content_format=0)
    assert response.code is Code.BAD_REQUEST
    assert parts["firmware"].result == 9  # Unsupported protocol, as Object /5 says


# -- Write-Attributes ----------------------------------------------------------------------------


def test_write_attributes_stores_them_per_path(dm):
    assert handle(dm, PUT, "/3/0/9", query=("pmin=5", "st=2")).code is Code.CHANGED
    assert dm.attributes.at(Path("/3/0/9")) == {"pmin": 5, "st": 2.0}
    assert handle(dm, PUT, "/3/0/9", query=("st",)).code is Code.CHANGED
    assert dm.attributes.at(Path("/3/0/9")) == {"pmin": 5}


@pytest.mark.parametrize("query", [("pmin=x",), ("lt=10", "gt=5"), ("bogus=1",), ("dim=3",)])
def test_invalid_attributes_are_bad_request(dm, query):
    assert handle(dm, PUT, "/3/0/9", query=query).code is Code.BAD_REQUEST


def test_write_attributes_on_something_missing_is_not_found(dm):
    assert handle(dm, PUT, "/3/0/2", query=("pmin=1",)).code is Code.NOT_FOUND
    assert handle(dm, PUT, "/3/0/11/5", query=("pmin=1",)).code is Code.NOT_FOUND


def test_a_put_with_payload_but_no_content_format_is_bad_request(dm):
    response = handle(dm, PUT, "/1/0/1", b"300")
    assert response.code is Code.BAD_REQUEST and "Content-Format" in response.diagnostic


def test_handle_uses_the_store_of_the_requesting_server(dm):
    mine = AttributeStore()
    dm.handle(req(PUT, "/3", query=("pmax=9",)), NOW, attributes=mine)
    assert mine.at(Path("/3")) == {"pmax": 9} and dm.attributes.at(Path("/3")) == {}


# -- Execute ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "0", "0='abc',1", "5='',9='x-y_z'"])
def test_execute_with_well_formed_arguments_runs(dm, parts, text):
    response = handle(dm, POST, "/3/0/4", text.encode(), content_format=0)
    assert response.code is Code.CHANGED and parts["triggers"] == [-1]


@pytest.mark.parametrize("text", ["a", "0=abc", "10", "0='a'b'", "0,", "0,0", "0='a b'"])
def test_execute_with_malformed_arguments_is_bad_request(dm, text):
    assert handle(dm, POST, "/3/0/4", text.encode()).code is Code.BAD_REQUEST


def test_execute_arguments_parse_into_digits_and_values():
    assert args("0='abc',1") == {0: "abc", 1: None}


def test_execute_of_a_value_is_method_not_allowed(dm):
    assert handle(dm, POST, "/3/0/9").code is Code.METHOD_NOT_ALLOWED


def test_execute_of_something_missing_is_not_found(dm):
    assert handle(dm, POST, "/3/0/5").code is Code.NOT_FOUND  # no factory reset hook given
    assert handle(dm, POST, "/3/1/4").code is Code.NOT_FOUND


# -- Create and Delete ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [CF.SENML_JSON, CF.SENML_CBOR, CF.TLV, CF.LWM2M_CBOR])
def test_create_makes_an_instance_and_answers_its_location(dm, fmt):
    changed = []
    dm.on_instances_changed.append(lambda: changed.append(True))
    payload = encode({Path("/1/4/0"): 7, Path("/1/4/1"): 60}, fmt, "/1")
    response = handle(dm, POST, "/1", payload, content_format=int(fmt))
    assert response.code is Code.CREATED and response.location_path == ("1", "4")
    assert changed == [True]
    assert "</1/4>" in encode_links(dm.registration_links()).decode()


def test_create_without_a_mandatory_resource_is_bad_request(dm):
    payload = encode({Path("/1/4/1"): 60}, CF.SENML_CBOR, "/1")
    assert handle(dm, POST, "/1", payload, content_format=112).code is Code.BAD_REQUEST


def test_create_with_an_empty_payload_uses_the_defaults(dm):
    response = handle(dm, POST, "/3308")
    assert response.code is Code.CREATED and response.location_path == ("3308", "1")


def test_create_of_two_instances_at_once_is_bad_request(dm):
    payload = encode({Path("/3308/5/5900"): 1.0, Path("/3308/6/5900"): 2.0}, CF.SENML_CBOR, "/3308")
    assert handle(dm, POST, "/3308", payload, content_format=112).code is Code.BAD_REQUEST


def test_create_in_a_single_instance_object_is_method_not_allowed(dm):
    assert handle(dm, POST, "/3").code is Code.METHOD_NOT_ALLOWED


def test_create_of_an_existing_instance_is_bad_request(dm):
    payload = encode({Path("/1/0/0"): 7, Path("/1/0/1"): 60}, CF.SENML_CBOR, "/1")
    assert handle(dm, POST, "/1", payload, content_format=112).code is Code.BAD_REQUEST


def test_delete_removes_an_instance(dm):
    changed = []
    dm.on_instances_changed.append(lambda: changed.append(True))
    assert handle(dm, DELETE, "/3311/1").code is Code.DELETED
    assert handle(dm, GET, "/3311/1").code is Code.NOT_FOUND
    assert changed == [True]


def test_delete_of_something_missing_is_not_found_and_of_the_device_not_allowed(dm):
    assert handle(dm, DELETE, "/3311/9").code is Code.NOT_FOUND
    assert handle(dm, DELETE, "/3/0").code is Code.METHOD_NOT_ALLOWED
    assert handle(dm, DELETE, "/5/0").code is Code.METHOD_NOT_ALLOWED


# -- Read-Composite and Write-Composite ---------------------------------------------------------


S5 = bytes.fromhex("83a100662f332f302f30a100662f332f302f39a100662f312f302f31")
S6 = bytes.fromhex(
    "83a200662f332f302f3003744f70656e204d6f62696c6520416c6c69616e6365a200662f332f302f39"
    "02185fa200662f312f302f31021a00015180"
)
S7 = bytes.fromhex(
    "84a2006c2f333331312f302f3538353004f4a2006c2f333331312f312f3538353004f4a2006c2f3333"
    "31312f322f353835310214a2006c2f333330382f302f353930300212"
)


def test_read_composite_answers_the_specification_example_byte_for_byte(dm):
    response = handle(dm, FETCH, "/", S5, content_format=112)
    assert response.code is Code.CONTENT and response.content_format == 112
    assert response.payload == S6


@pytest.mark.parametrize("accept", [CF.SENML_JSON, CF.SENML_CBOR, CF.LWM2M_CBOR])
def test_read_composite_answers_in_the_accept_format(dm, accept):
    response = handle(dm, FETCH, "/", S5, content_format=112, accept=int(accept))
    assert response.content_format == accept
    assert decode(response.payload, accept, "/") == {
        Path("/3/0/0"): "Open Mobile Alliance",
        Path("/3/0/9"): 95,
        Path("/1/0/1"): 86400,
    }


def test_read_composite_leaves_out_paths_that_do_not_exist(dm):
    paths = cbor2.dumps([{0: "/3/0/9"}, {0: "/3/0/2"}, {0: "/77"}, {0: "/0/0"}])
    response = handle(dm, FETCH, "/", paths, content_format=112)
    assert cbor2.loads(response.payload) == [{0: "/3/0/9", 2: 95}]


def test_read_composite_of_whole_objects(dm):
    response = handle(dm, FETCH, "/", cbor2.dumps([{0: "/1"}, {0: "/3/0/11"}]), content_format=112)
    assert decode(response.payload, 112, "/")[Path("/3/0/11/0")] == 0


@pytest.mark.parametrize(
    ("options", "payload", "code"),
    [
        ({"content_format": 0}, S5, Code.UNSUPPORTED_CONTENT_FORMAT),
        ({}, S5, Code.UNSUPPORTED_CONTENT_FORMAT),
        ({"content_format": 112, "accept": 11542}, S5, Code.NOT_ACCEPTABLE),
        ({"content_format": 112}, b"\x81\xa1\x00\x62/x", Code.BAD_REQUEST),
        ({"content_format": 112}, S6, Code.BAD_REQUEST),  # values in a path list
    ],
)
def test_read_composite_errors(dm, options, payload, code):
    assert handle(dm, FETCH, "/", payload, **options).code is code


def test_write_composite_applies_the_specification_example(dm):
    response = handle(dm, IPATCH, "/", S7, content_format=112)
    assert response.code is Code.CHANGED
    assert dm.read_values(Path("/3311/2/5851")) == {Path("/3311/2/5851"): 20}
    assert dm.read_values(Path("/3308/0/5900")) == {Path("/3308/0/5900"): 18.0}
    assert dm.read_values(Path("/3311/0/5850")) == {Path("/3311/0/5850"): False}


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"/3311/9/5850": False}, Code.NOT_FOUND),
        ({"/3/0/9": 5}, Code.METHOD_NOT_ALLOWED),
        ({"/0/0/0": "coap://evil"}, Code.NOT_FOUND),
    ],
)
def test_write_composite_checks_every_path_before_writing_any(dm, values, code):
    payload = encode({Path("/1/0/1"): 5, **{Path(p): v for p, v in values.items()}}, 112, "/")
    assert handle(dm, IPATCH, "/", payload, content_format=112).code is code
    assert dm.read_values(Path("/1/0/1"))[Path("/1/0/1")] == 86400


def test_write_composite_of_resource_instances_merges(dm, parts):
    parts["typed"].set(0, 21, {0: 1})
    payload = encode({Path("/3442/0/21/3"): 4}, CF.SENML_JSON, "/")
    assert handle(dm, IPATCH, "/", payload, content_format=110).code is Code.CHANGED
    assert parts["typed"].get(0, 21) == {0: 1, 3: 4}


def test_write_composite_in_a_single_value_format_is_4_15(dm):
    assert handle(dm, IPATCH, "/", b"5", content_format=0).code is Code.UNSUPPORTED_CONTENT_FORMAT


# -- Register links and hooks --------------------------------------------------------------------


def test_registration_links_leave_out_security_and_mark_versions(dm):
    text = encode_links(dm.registration_links(CF.SENML_CBOR)).decode()
    assert text.startswith('</>;rt="oma.lwm2m";ct=112,</1/0>,</3/0>,</5>;ver=1.1,</5/0>,')
    assert "</0" not in text


def test_registration_links_without_a_format_hint_have_no_root_link(dm):
    assert dm.registration_links(None)[0].target == "/1/0"


def test_value_changes_of_every_object_reach_on_change(dm):
    seen = []
    dm.on_change.append(seen.append)
    handle(dm, PUT, "/1/0/1", b"60", content_format=0)
    handle(dm, PUT, "/5/0/1", b"coap://h/fw", content_format=0)
    assert Path("/1/0/1") in seen and Path("/5/0/3") in seen


def test_a_resource_level_object_must_be_wrapped(parts):
    with pytest.raises(TypeError, match="SingleInstance"):
        DataModel([parts["firmware"]])


def test_the_firmware_object_is_reachable_for_the_streamed_push(dm, parts):
    assert dm.firmware is parts["firmware"]


# -- Bootstrap -----------------------------------------------------------------------------------


def test_a_whole_bootstrap_sequence(dm):
    assert handle(dm, DELETE, "/", bootstrap=True).code is Code.DELETED
    assert dm.objects[0].instance_ids() == [0]  # the Bootstrap-Server account stays
    assert dm.objects[1].instance_ids() == []
    assert dm.objects[3].instance_ids() == [0]  # the device can't be deleted
    security = encode(
        {Path("/0/1/0"): "coap://new", Path("/0/1/1"): False, Path("/0/1/10"): 202}, CF.TLV, "/0/1"
    )
    assert (
        handle(dm, PUT, "/0/1", security, content_format=11542, bootstrap=True).code is Code.CHANGED
    )
    server = encode(
        {Path("/1/0/0"): 202, Path("/1/0/1"): 60, Path("/1/0/6"): True, Path("/1/0/7"): "U"},
        CF.SENML_CBOR,
        "/1",
    )
    assert handle(dm, PUT, "/1", server, content_format=112, bootstrap=True).code is Code.CHANGED
    discover = handle(dm, GET, "/", accept=40, bootstrap=True)
    assert discover.payload.decode() == (
        '</>;lwm2m=1.1,</0/0>;uri="coap://bs",</0/1>;ssid=202;uri="coap://new",</1/0>;ssid=202,'
        "</3/0>,</5>;ver=1.1,</5/0>,</3308>,</3311>,</3442>"
    )
    assert dm.bootstrap_finish(NOW).code is Code.CHANGED
    assert handle(dm, GET, "/1/0/1").payload == b"60"


def test_bootstrap_write_may_write_read_only_resources_and_existing_instances(dm):
    response = handle(dm, PUT, "/1/0/0", b"7", content_format=0, bootstrap=True)
    assert response.code is Code.CHANGED
    assert dm.read_values(Path("/1/0/0")) == {Path("/1/0/0"): 7}


def test_bootstrap_write_of_several_instances_at_object_level(dm):
    payload = encode({Path("/3311/5/5851"): 1, Path("/3311/6/5851"): 2}, CF.SENML_JSON, "/3311")
    assert (
        handle(dm, PUT, "/3311", payload, content_format=110, bootstrap=True).code is Code.CHANGED
    )
    assert dm.objects[3311].instance_ids() == [0, 1, 2, 5, 6]


@pytest.mark.parametrize(
    ("method", "path", "options", "code"),
    [
        (PUT, "/", {"content_format": 112}, Code.BAD_REQUEST),
        (PUT, "/77", {"content_format": 0}, Code.BAD_REQUEST),
        (PUT, "/1/0/1", {"content_format": 40}, Code.UNSUPPORTED_CONTENT_FORMAT),
        (PUT, "/1/0/1", {"content_format": 0, "payload": b"x"}, Code.BAD_REQUEST),
        (GET, "/3/0", {"accept": 40}, Code.BAD_REQUEST),
        (GET, "/77", {"accept": 40}, Code.NOT_FOUND),
        (GET, "/3/0", {}, Code.METHOD_NOT_ALLOWED),
        (DELETE, "/1/0/1", {}, Code.BAD_REQUEST),
        (DELETE, "/0/0", {}, Code.BAD_REQUEST),
        (POST, "/1/0/8", {}, Code.METHOD_NOT_ALLOWED),
    ],
)
def test_bootstrap_errors(dm, method, path, options, code):
    payload = options.pop("payload", b"")
    assert handle(dm, method, path, payload, bootstrap=True, **options).code is code


def test_bootstrap_read_reads_the_server_object(dm):
    response = handle(dm, GET, "/1/0", accept=112, bootstrap=True)
    assert decode(response.payload, 112, "/1/0")[Path("/1/0/0")] == 101


def test_bootstrap_discover_of_one_object(dm):
    response = handle(dm, GET, "/1", accept=40, bootstrap=True)
    assert response.payload == b"</>;lwm2m=1.1,</1/0>;ssid=101"


def test_bootstrap_delete_of_an_object_keeps_the_bootstrap_account(dm):
    assert handle(dm, DELETE, "/0", bootstrap=True).code is Code.DELETED
    assert dm.objects[0].instance_ids() == [0]


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda dm: handle(dm, DELETE, "/1", bootstrap=True), "needs exactly one /1 instance"),
        (lambda dm: handle(dm, DELETE, "/0", bootstrap=True), "no LwM2M server account"),
        (
            lambda dm: handle(dm, PUT, "/0/5/0", b"coap://x", content_format=0, bootstrap=True),
            "without a Short Server ID",
        ),
        (
            lambda dm: handle(dm, PUT, "/1/3/0", b"55", content_format=0, bootstrap=True),
            "lacks mandatory resource 1 Lifetime",
        ),
    ],
)
def test_bootstrap_finish_with_an_inconsistent_configuration_is_not_acceptable(dm, setup, problem):
    setup(dm)
    response = dm.bootstrap_finish(NOW)
    assert response.code is Code.NOT_ACCEPTABLE and problem in response.diagnostic


# -- robustness ------------------------------------------------------------------------------------

paths = st.lists(st.sampled_from([0, 1, 3, 5, 11, 3442, 3311, 9, 65534]), max_size=4).map(
    lambda ids: Path.from_ids(ids)
)
formats = st.one_of(st.none(), st.sampled_from([int(f) for f in CF] + [1, 9999]))


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from(list(Method)),
    path=paths,
    payload=st.one_of(st.binary(max_size=40), st.sampled_from([S5, S6, S7, b"0='a'", b"1"])),
    content_format=formats,
    accept=formats,
    observe=st.sampled_from([None, 0, 1]),
    confirmable=st.booleans(),
    bootstrap=st.booleans(),
    query=st.lists(st.sampled_from(["pmin=1", "pmax", "gt=2", "x", "lt=9"]), max_size=2),
)
def test_handle_never_raises_whatever_arrives(
    method, path, payload, content_format, accept, observe, confirmable, bootstrap, query
):
    dm = build(make_parts())
    request = Request(
        method, path, payload, content_format, accept, tuple(query), observe, confirmable
    )
    response = dm.handle(request, NOW, bootstrap=bootstrap)
    assert response.code.dotted[0] in "245"
    if not response.code.is_success:
        assert response.diagnostic
