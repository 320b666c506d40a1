"""Objects /0 /1 /3 and the object interface: what each resource accepts, holds and does."""

from datetime import UTC, datetime

import pytest

from lwm2m_edu.fota import UpdateResult
from lwm2m_edu.model import DEVICE, SECURITY, SERVER
from lwm2m_edu.objects import Code
from lwm2m_edu.objects.base import LwM2MObject, SimpleObject, SingleInstance, check_value
from lwm2m_edu.objects.device import DeviceObject
from lwm2m_edu.objects.firmware import FirmwareObject
from lwm2m_edu.objects.security import SecurityMode, SecurityObject
from lwm2m_edu.objects.server import ServerObject
from lwm2m_edu.paths import Path


class Handlers:
    """The eight firmware handlers, all succeeding."""

    def package_write_start(self):
        return UpdateResult.SUCCESS

    def package_write(self, chunk):
        return UpdateResult.SUCCESS

    def package_write_finish(self):
        return UpdateResult.SUCCESS

    def uri_write(self, uri):
        return UpdateResult.SUCCESS

    def update_start(self):
        return UpdateResult.SUCCESS

    def get_name(self):
        return "app"

    def get_version(self):
        return "2.0"

    def reset(self):
        pass


def changes(obj) -> list[Path]:
    seen: list[Path] = []
    obj.changed.append(seen.append)
    return seen


# -- check_value ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "value", "problem"),
    [
        (SECURITY[2], 3, None),
        (SECURITY[2], 5, "outside the range 0..4"),
        (SECURITY[2], "3", "not a valid Integer"),
        (SECURITY[2], True, "not a valid Integer"),
        (SECURITY[10], 0, "outside the range 1..65534"),
        (SECURITY[10], 65535, "outside the range 1..65534"),
        (SECURITY[0], "x" * 256, "allowed length 0..255 bytes"),
        (SECURITY[0], "coap://a", None),
        (SECURITY[3], b"key", None),
        (SECURITY[3], "key", "not a valid Opaque"),
        (DEVICE[6], {0: 1, 1: 5}, None),
        (DEVICE[6], 1, "multiple resource"),
        (DEVICE[6], {0: 9}, "instance 0"),
        (DEVICE[9], {0: 1}, "single resource"),
        (DEVICE[13], datetime(2024, 1, 1, tzinfo=UTC), None),
        (DEVICE[13], datetime(2024, 1, 1), "no timezone"),
        (DEVICE[4], None, "executable"),
    ],
)
def test_check_value_names_the_problem_with_type_range_and_shape(resource, value, problem):
    found = check_value(resource, value)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_check_value_without_ranges_checks_the_type_only():
    assert check_value(SECURITY[2], 9, ranges=False) is None
    assert check_value(SECURITY[2], "9", ranges=False) is not None


# -- SimpleObject ---------------------------------------------------------------------------------


def test_objects_implement_the_interface():
    fw = SingleInstance(FirmwareObject(Handlers()))
    for obj in (SecurityObject(), ServerObject(), DeviceObject(), fw):
        assert isinstance(obj, LwM2MObject)


def test_create_without_a_mandatory_resource_is_refused_naming_it():
    outcome = ServerObject().create(None, {1: 300}, 0.0)
    assert outcome.code is Code.BAD_REQUEST
    assert "0 Short Server ID" in outcome.diagnostic


def test_create_fills_defaults_and_picks_the_lowest_free_id():
    server = ServerObject()
    assert server.create(None, {0: 1, 1: 300}, 0.0).value == 0
    assert server.create(None, {0: 2, 1: 60}, 0.0).value == 1
    assert server.instance_ids() == [0, 1]
    assert server.get(1, 6) is True and server.get(1, 7) == "U"


def test_create_of_an_existing_instance_is_bad_request():
    server = ServerObject({3: {0: 1, 1: 300}})
    assert server.create(3, {0: 2, 1: 300}, 0.0).code is Code.BAD_REQUEST


def test_create_ignores_optional_resources_the_object_does_not_implement():
    server = ServerObject()
    outcome = server.create(None, {0: 1, 1: 300, 10: None, 12: 5}, 0.0)
    assert outcome.ok
    assert 12 not in server.resource_ids(0)


def test_create_in_a_single_instance_object_that_has_its_instance_is_not_allowed():
    assert DeviceObject().create(None, {}, 0.0).code is Code.METHOD_NOT_ALLOWED


def test_read_of_an_absent_optional_resource_is_not_found():
    server = ServerObject({0: {0: 1, 1: 300}})
    assert server.read(0, 2, 0.0).code is Code.NOT_FOUND
    assert server.read(7, 0, 0.0).code is Code.NOT_FOUND


def test_read_of_an_executable_resource_is_not_allowed():
    assert ServerObject({0: {0: 1, 1: 300}}).read(0, 8, 0.0).code is Code.METHOD_NOT_ALLOWED


def test_write_of_a_read_only_resource_is_not_allowed_but_bootstrap_may():
    server = ServerObject({0: {0: 1, 1: 300}})
    assert server.write(0, 0, 5, 0.0).code is Code.METHOD_NOT_ALLOWED
    assert server.write(0, 0, 5, 0.0, bootstrap=True).code is Code.CHANGED
    assert server.short_server_id(0) == 5


def test_write_notifies_the_change_hooks_only_when_the_value_changes():
    server = ServerObject({0: {0: 1, 1: 300}})
    seen = changes(server)
    server.write(0, 1, 300, 0.0)
    server.write(0, 1, 60, 0.0)
    assert seen == [Path("/1/0/1")]


def test_set_from_the_device_side_checks_and_notifies():
    device = DeviceObject(battery_level=90)
    seen = changes(device)
    device.set(0, 9, 80)
    assert seen == [Path("/3/0/9")]
    with pytest.raises(ValueError, match=r"0\.\.100"):
        device.set(0, 9, 101)


def test_a_subclass_is_a_few_declarations():
    class Temperature(SimpleObject):
        definition = SERVER  # any definition will do for the shape of the API

    obj = Temperature({0: {0: 1, 1: 10}})
    assert obj.read(0, 1, 0.0).value == 10
    assert obj.delete(0, 0.0).code is Code.DELETED
    assert obj.delete(0, 0.0).code is Code.NOT_FOUND


# -- /0 Security ----------------------------------------------------------------------------------


def test_security_resources_are_not_readable_or_writable_through_dm():
    security = SecurityObject()
    iid = security.add_server("coap://srv", 101)
    assert security.read(iid, 0, 0.0).code is Code.METHOD_NOT_ALLOWED
    assert security.write(iid, 0, "coap://x", 0.0).code is Code.METHOD_NOT_ALLOWED


def test_security_is_written_by_bootstrap_with_nosec_defaults():
    security = SecurityObject()
    assert security.create(0, {0: "coap://srv", 10: 5}, 0.0, bootstrap=True).ok
    assert security.read(0, 2, 0.0, bootstrap=True).value == SecurityMode.NO_SEC
    assert security.write(0, 2, 0, 0.0, bootstrap=True).ok
    assert security.write(0, 2, 7, 0.0, bootstrap=True).code is Code.BAD_REQUEST


def test_security_lists_accounts_and_finds_the_bootstrap_server():
    security = SecurityObject()
    security.add_bootstrap_server("coap://bs")
    security.add_server("coap://srv", 101, mode=SecurityMode.NO_SEC)
    assert security.bootstrap_instance() == 0
    assert [(a.uri, a.bootstrap, a.short_server_id) for a in security.accounts()] == [
        ("coap://bs", True, None),
        ("coap://srv", False, 101),
    ]


# -- /1 Server -------------------------------------------------------------------------------------


def test_registration_update_trigger_calls_the_hook_with_the_short_server_id():
    calls = []
    server = ServerObject(on_update_trigger=calls.append)
    server.add(101, 300)
    assert server.execute(0, 8, "", 0.0).code is Code.CHANGED
    assert calls == [101]


def test_disable_calls_the_hook_with_the_disable_timeout():
    calls = []
    server = ServerObject(on_disable=lambda ssid, timeout: calls.append((ssid, timeout)))
    server.add(101, 300)
    server.execute(0, 4, "", 0.0)
    server.write(0, 5, 60, 0.0)
    server.execute(0, 4, "", 0.0)
    assert calls == [(101, 86400), (101, 60)]


def test_bootstrap_request_trigger_calls_the_hook():
    calls = []
    server = ServerObject(on_bootstrap_trigger=calls.append)
    server.add(7, 300)
    server.execute(0, 9, "", 0.0)
    assert calls == [7]


@pytest.mark.parametrize(
    ("binding", "ok"),
    [("U", True), ("UQ", True), ("T", True), ("UU", False), ("X", False), ("", False)],
)
def test_binding_is_letters_from_u_t_s_n_q_each_once(binding, ok):
    server = ServerObject()
    server.add(1, 300)
    assert server.write(0, 7, binding, 0.0).ok is ok


def test_lifetime_and_periods_are_not_negative():
    server = ServerObject()
    server.add(1, 300)
    assert server.write(0, 1, -1, 0.0).code is Code.BAD_REQUEST
    assert server.write(0, 2, -5, 0.0).code is Code.BAD_REQUEST


def test_two_instances_with_one_short_server_id_are_refused():
    server = ServerObject()
    server.add(1, 300)
    with pytest.raises(ValueError, match="already has an instance"):
        server.add(1, 60)


def test_server_answers_the_questions_a_client_asks():
    server = ServerObject()
    server.add(101, 300, pmin=5, pmax=60, binding="UQ", mute_send=True)
    assert server.instance_for(101) == 0 and server.instance_for(9) is None
    assert server.lifetime(0) == 300 and server.binding(0) == "UQ"
    assert server.default_periods(0) == (5, 60)
    assert server.send_muted(0)


# -- /3 Device -------------------------------------------------------------------------------------


def test_firmware_version_is_read_from_a_function_each_time():
    running = ["1.0.0"]
    device = DeviceObject(firmware_version=lambda: running[0])
    assert device.read(0, 3, 0.0).value == "1.0.0"
    running[0] = "1.1.0"
    assert device.read(0, 3, 0.0).value == "1.1.0"


def test_current_time_is_now_plus_an_offset_a_write_sets():
    device = DeviceObject()
    assert device.read(0, 13, 1000.0).value == datetime.fromtimestamp(1000, UTC)
    assert device.write(0, 13, datetime.fromtimestamp(5000, UTC), 1000.0).ok
    assert device.read(0, 13, 1010.0).value == datetime.fromtimestamp(5010, UTC)


@pytest.mark.parametrize(
    ("offset", "ok"), [("+02:00", True), ("-05:30", True), ("UTC+01:00", True), ("2 hours", False)]
)
def test_utc_offset_looks_like_plus_hh_mm(offset, ok):
    assert DeviceObject().write(0, 14, offset, 0.0).ok is ok


def test_reboot_and_factory_reset_call_their_hooks():
    calls = []
    device = DeviceObject(
        on_reboot=lambda: calls.append("reboot"), on_factory_reset=lambda: calls.append("reset")
    )
    assert device.execute(0, 4, "", 0.0).code is Code.CHANGED
    assert device.execute(0, 5, "", 0.0).code is Code.CHANGED
    assert calls == ["reboot", "reset"]


def test_factory_reset_is_absent_without_a_hook():
    assert DeviceObject().execute(0, 5, "", 0.0).code is Code.NOT_FOUND


def test_error_code_0_means_no_error_and_reset_error_code_clears():
    device = DeviceObject()
    assert device.read(0, 11, 0.0).value == {0: 0}
    device.add_error(1)
    device.add_error(5)
    assert device.read(0, 11, 0.0).value == {0: 1, 1: 5}
    device.execute(0, 12, "", 0.0)
    assert device.read(0, 11, 0.0).value == {0: 0}


@pytest.mark.parametrize(("queue_mode", "binding"), [(False, "U"), (True, "UQ")])
def test_supported_binding_is_u_or_uq(queue_mode, binding):
    assert DeviceObject(queue_mode=queue_mode).read(0, 16, 0.0).value == binding


def test_device_values_given_at_construction_and_absent_ones():
    device = DeviceObject(memory_free=64, memory_total=256, battery_level=100, device_type="demo")
    assert device.read(0, 10, 0.0).value == 64
    assert device.read(0, 17, 0.0).value == "demo"
    assert device.read(0, 2, 0.0).code is Code.NOT_FOUND  # no serial given
    with pytest.raises(TypeError, match="unknown device property"):
        DeviceObject(colour="red")


def test_device_instance_can_not_be_deleted_and_identity_is_read_only():
    device = DeviceObject()
    assert device.delete(0, 0.0).code is Code.METHOD_NOT_ALLOWED
    assert device.write(0, 0, "ACME", 0.0).code is Code.METHOD_NOT_ALLOWED


# -- SingleInstance over FirmwareObject ----------------------------------------------------------


def test_firmware_object_is_served_as_instance_0_of_object_5():
    fw = SingleInstance(FirmwareObject(Handlers()))
    assert fw.instance_ids() == [0] and fw.definition.id == 5 and fw.version == "1.1"
    assert fw.read(0, 3, 0.0).value == 0
    assert fw.read(1, 3, 0.0).code is Code.NOT_FOUND
    assert fw.create(None, {}, 0.0).code is Code.METHOD_NOT_ALLOWED
    assert fw.delete(0, 0.0).code is Code.METHOD_NOT_ALLOWED


def test_firmware_changes_reach_the_hooks_also_from_the_device_side():
    inner = FirmwareObject(Handlers())
    fw = SingleInstance(inner)
    seen = changes(fw)
    assert fw.write(0, 1, "coap://host/fw", 1.0).ok
    assert {Path("/5/0/1"), Path("/5/0/3")} <= set(seen)
    seen.clear()
    inner.download_finished(2.0)  # the device reports, not the server
    assert Path("/5/0/3") in seen and Path("/5/0/7") in seen
