"""Object /5 resource by resource: what the server's operations do and what they answer."""

from datetime import UTC, datetime

import pytest

from lwm2m_edu.fota import DeliveryMethod, Protocol, Severity, State, UpdateResult
from lwm2m_edu.handlers import HandlerResultError, MissingHandlerError, check_handlers
from lwm2m_edu.objects import Code
from lwm2m_edu.objects.firmware import FirmwareObject

R = UpdateResult


class RamHandlers:
    """A complete handler set keeping the package in RAM, recording every call."""

    def __init__(self, **failures: UpdateResult) -> None:
        self.failures = failures
        self.calls: list[str] = []
        self.package = bytearray()
        self.defer = False

    def _result(self, name: str) -> UpdateResult:
        self.calls.append(name)
        return self.failures.get(name, R.SUCCESS)

    def package_write_start(self):
        self.package.clear()
        return self._result("package_write_start")

    def package_write(self, chunk):
        self.package += chunk
        return self._result("package_write")

    def package_write_finish(self):
        return self._result("package_write_finish")

    def uri_write(self, uri):
        self.uri = uri
        return self._result("uri_write")

    def update_start(self):
        return self._result("update_start")

    def get_name(self):
        return "app"

    def get_version(self):
        return "1.1.0"

    def defer_update(self, severity):
        self.calls.append(f"defer_update({severity.name})")
        return self.defer

    def reset(self):
        self.calls.append("reset")
        self.package.clear()


def push(fw, package: bytes, block=4, now=0.0):
    outcomes = []
    for offset in range(0, len(package), block):
        chunk = package[offset : offset + block]
        last = offset + block >= len(package)
        outcomes.append(fw.write_package(chunk, offset=offset, last=last, now=now).code)
        if not outcomes[-1].is_success:
            break  # a server stops a Block1 transfer at the first error
    return outcomes


# -- installing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "push", "pull", "mode"),
    [
        ("uri_write", False, True, "pull delivery"),
        ("package_write_start", True, False, "push delivery"),
        ("package_write", True, False, "push delivery"),
        ("package_write_finish", True, False, "push delivery"),
        ("update_start", True, True, "every device"),
        ("reset", True, False, "every device"),
    ],
)
def test_a_missing_mandatory_handler_is_named_with_the_mode_that_needs_it(
    missing, push, pull, mode
):
    handlers = RamHandlers()
    setattr(handlers, missing, None)
    with pytest.raises(MissingHandlerError) as error:
        check_handlers(handlers, push=push, pull=pull)
    assert f"{missing}() (needed by {mode}" in str(error.value)


def test_optional_handlers_may_be_absent():
    class Minimal:
        def uri_write(self, uri):
            return R.SUCCESS

        def update_start(self):
            return R.SUCCESS

        def reset(self):
            pass

    fw = FirmwareObject(Minimal(), push=False)
    fw.write_package_uri("coap://h/fw", 0)
    fw.download_finished(1)
    assert fw.read(6).value == "" and fw.read(7).value == ""


def test_push_handlers_are_not_needed_by_a_pull_only_device():
    class PullOnly:
        uri_write = update_start = reset = staticmethod(lambda *a: R.SUCCESS)

    FirmwareObject(PullOnly(), push=False, protocols=[Protocol.COAP])


@pytest.mark.parametrize(
    ("push", "protocols", "method", "support"),
    [
        (True, [Protocol.HTTP, Protocol.COAP, Protocol.COAP], DeliveryMethod.BOTH, {0: 0, 1: 2}),
        (False, [Protocol.COAPS], DeliveryMethod.PULL, {0: 1}),
        (True, [], DeliveryMethod.PUSH, None),
    ],
)
def test_protocol_support_and_delivery_method_follow_the_configuration(
    push, protocols, method, support
):
    fw = FirmwareObject(RamHandlers(), push=push, protocols=protocols)
    assert fw.read(9).value == method
    if support is None:
        assert fw.read(8).code is Code.NOT_FOUND
    else:
        assert fw.read(8).value == support


# -- push -----------------------------------------------------------------------------------------


def test_push_streams_every_block_to_package_write_and_ends_downloaded():
    handlers = RamHandlers()
    fw = FirmwareObject(handlers)
    assert push(fw, b"0123456789") == [Code.CONTINUE, Code.CONTINUE, Code.CHANGED]
    assert handlers.calls == ["package_write_start"] + ["package_write"] * 3 + [
        "package_write_finish"
    ]
    assert bytes(handlers.package) == b"0123456789"
    assert (fw.state, fw.result) == (State.DOWNLOADED, R.INITIAL)


def test_push_enters_downloading_on_the_first_block():
    fw = FirmwareObject(RamHandlers())
    fw.write_package(b"abcd", offset=0, last=False, now=0)
    assert fw.state is State.DOWNLOADING


def test_a_whole_package_in_one_write_is_a_push_of_one_block():
    fw = FirmwareObject(RamHandlers())
    assert fw.write(0, b"image", now=0).code is Code.CHANGED
    assert fw.state is State.DOWNLOADED


def test_a_block_out_of_sequence_is_request_entity_incomplete():
    fw = FirmwareObject(RamHandlers())
    fw.write_package(b"abcd", offset=0, last=False, now=0)
    outcome = fw.write_package(b"ijkl", offset=8, last=False, now=0)
    assert outcome.code is Code.REQUEST_ENTITY_INCOMPLETE
    assert "expected the block at offset 4" in outcome.diagnostic


def test_a_later_block_without_a_push_in_progress_is_request_entity_incomplete():
    fw = FirmwareObject(RamHandlers())
    assert fw.write_package(b"abcd", offset=4, last=True, now=0).code is (
        Code.REQUEST_ENTITY_INCOMPLETE
    )
    assert fw.state is State.IDLE


def test_a_push_to_a_pull_only_device_is_method_not_allowed():
    fw = FirmwareObject(RamHandlers(), push=False)
    outcome = fw.write(0, b"image", now=0)
    assert outcome.code is Code.METHOD_NOT_ALLOWED and "pull only" in outcome.diagnostic
    assert fw.state is State.IDLE


def test_a_second_package_while_downloading_is_method_not_allowed_and_changes_nothing():
    fw = FirmwareObject(RamHandlers())
    fw.write_package(b"abcd", offset=0, last=False, now=0)
    assert fw.write_package(b"new!", offset=0, last=False, now=1).code is Code.METHOD_NOT_ALLOWED
    assert fw.write_package_uri("coap://h/fw", 1).code is Code.METHOD_NOT_ALLOWED
    assert fw.state is State.DOWNLOADING and fw.transfer.received == 4


@pytest.mark.parametrize(
    ("failing", "result", "code"),
    [
        ("package_write_start", R.NOT_ENOUGH_FLASH, Code.REQUEST_ENTITY_TOO_LARGE),
        ("package_write", R.OUT_OF_RAM, Code.INTERNAL_SERVER_ERROR),
        ("package_write_finish", R.INTEGRITY_FAILURE, Code.INTERNAL_SERVER_ERROR),
        ("package_write_finish", R.UNSUPPORTED_PACKAGE_TYPE, Code.INTERNAL_SERVER_ERROR),
    ],
)
def test_a_failing_push_handler_stops_the_push_with_its_update_result(failing, result, code):
    handlers = RamHandlers(**{failing: result})
    fw = FirmwareObject(handlers)
    codes = push(fw, b"0123456789")
    assert codes[-1] is code
    assert (fw.state, fw.result) == (State.IDLE, result)
    assert handlers.calls[-1] == "reset"


def test_an_abandoned_push_is_reset_after_the_push_timeout():
    handlers = RamHandlers()
    fw = FirmwareObject(handlers, push_timeout=30)
    fw.write_package(b"abcd", offset=0, last=False, now=100)
    assert fw.expire(129) == []
    fw.expire(130)
    assert (fw.state, fw.result) == (State.IDLE, R.CONNECTION_LOST)
    assert handlers.calls[-1] == "reset"


# -- pull -----------------------------------------------------------------------------------------


def test_a_package_uri_starts_the_download():
    handlers = RamHandlers()
    fw = FirmwareObject(handlers, protocols=[Protocol.COAP, Protocol.HTTP])
    assert fw.write(1, "http://127.0.0.1:8080/fw.bin", now=0).code is Code.CHANGED
    assert (fw.state, handlers.uri) == (State.DOWNLOADING, "http://127.0.0.1:8080/fw.bin")
    assert fw.read(1).value == "http://127.0.0.1:8080/fw.bin"
    fw.download_finished(now=1)
    assert fw.state is State.DOWNLOADED


@pytest.mark.parametrize(
    ("uri", "result"),
    [
        ("https://h/fw", R.UNSUPPORTED_PROTOCOL),
        ("file:///etc/passwd", R.INVALID_URI),
        ("ftp://h/fw", R.UNSUPPORTED_PROTOCOL),
        ("javascript://h/%0Aalert(1)", R.UNSUPPORTED_PROTOCOL),
        ("not a uri", R.INVALID_URI),
        ("coap://", R.INVALID_URI),
        ("coap://h/" + "x" * 250, R.INVALID_URI),
    ],
)
def test_an_unusable_package_uri_is_bad_request_with_result_7_or_9(uri, result):
    handlers = RamHandlers()
    fw = FirmwareObject(handlers, protocols=[Protocol.COAP, Protocol.HTTP])
    outcome = fw.write_package_uri(uri, 0)
    assert outcome.code is Code.BAD_REQUEST
    assert (fw.state, fw.result) == (State.IDLE, result)
    assert "uri_write" not in handlers.calls


def test_a_uri_to_a_push_only_device_is_an_unsupported_protocol():
    fw = FirmwareObject(RamHandlers(), protocols=[])
    assert fw.write_package_uri("coap://h/fw", 0).code is Code.BAD_REQUEST
    assert fw.result is R.UNSUPPORTED_PROTOCOL


def test_a_failed_download_returns_to_idle_clears_the_uri_and_calls_reset():
    handlers = RamHandlers()
    fw = FirmwareObject(handlers)
    fw.write_package_uri("coap://h/fw", 0)
    fw.download_failed(R.INVALID_URI, 1)
    assert (fw.state, fw.result, fw.read(1).value) == (State.IDLE, R.INVALID_URI, "")
    assert handlers.calls[-1] == "reset"


def test_a_failing_uri_write_handler_reports_its_result():
    fw = FirmwareObject(RamHandlers(uri_write=R.OUT_OF_RAM))
    fw.write_package_uri("coap://h/fw", 0)
    assert (fw.state, fw.result) == (State.IDLE, R.OUT_OF_RAM)


# -- resets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reset",
    [
        lambda fw: fw.write_package_uri("", 5),
        lambda fw: fw.write_package(b"\0", offset=0, last=True, now=5),
        lambda fw: fw.write_package(b"", offset=0, last=True, now=5),
    ],
    ids=["empty URI", "NUL package", "empty package"],
)
@pytest.mark.parametrize("state", [State.IDLE, State.DOWNLOADING, State.DOWNLOADED])
def test_each_reset_returns_to_idle_with_result_0_and_calls_reset(reset, state):
    handlers = RamHandlers()
    fw = FirmwareObject(handlers)
    if state is not State.IDLE:
        fw.write_package_uri("coap://h/fw", 0)
    if state is State.DOWNLOADED:
        fw.download_finished(1)
    assert reset(fw).code is Code.CHANGED
    assert (fw.state, fw.result) == (State.IDLE, R.INITIAL)
    assert handlers.calls[-1] == "reset"


def test_a_reset_while_updating_is_refused():
    fw = FirmwareObject(RamHandlers())
    fw.write(0, b"image", now=0)
    fw.execute(2, now=1)
    assert fw.write_package_uri("", 2).code is Code.METHOD_NOT_ALLOWED
    assert fw.state is State.UPDATING


# -- execute --------------------------------------------------------------------------------------


def test_update_outside_downloaded_is_method_not_allowed_and_changes_nothing():
    fw = FirmwareObject(RamHandlers())
    outcome = fw.execute(2, now=0)
    assert outcome.code is Code.METHOD_NOT_ALLOWED
    assert "not allowed in state IDLE" in outcome.diagnostic
    assert (fw.state, fw.result, fw.machine.history) == (State.IDLE, R.INITIAL, [])


def test_update_calls_update_start_and_reports_success_after_the_reboot():
    handlers = RamHandlers()
    fw = FirmwareObject(handlers)
    fw.write(0, b"image", now=0)
    assert fw.execute(2, now=1).code is Code.CHANGED
    assert (fw.state, handlers.calls[-1]) == (State.UPDATING, "update_start")
    fw.update_finished(now=2)
    assert (fw.state, fw.result) == (State.IDLE, R.SUCCESS)


def test_a_failing_update_start_returns_to_downloaded_with_result_8():
    fw = FirmwareObject(RamHandlers(update_start=R.UPDATE_FAILED))
    fw.write(0, b"image", now=0)
    assert fw.execute(2, now=1).code is Code.CHANGED
    assert (fw.state, fw.result) == (State.DOWNLOADED, R.UPDATE_FAILED)


def test_an_integrity_failure_at_install_goes_to_idle():
    fw = FirmwareObject(RamHandlers())
    fw.write(0, b"image", now=0)
    fw.execute(2, now=1)
    fw.update_failed(R.INTEGRITY_FAILURE, now=2)
    assert (fw.state, fw.result) == (State.IDLE, R.INTEGRITY_FAILURE)


def test_cancel_while_downloading_ends_in_idle_with_result_10():
    handlers = RamHandlers()
    fw = FirmwareObject(handlers)
    fw.write_package_uri("coap://h/fw", 0)
    assert fw.execute(10, now=1).code is Code.CHANGED
    assert (fw.state, fw.result, handlers.calls[-1]) == (State.IDLE, R.CANCELLED, "reset")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_cancel_in_idle_is_method_not_allowed(version):
    fw = FirmwareObject(RamHandlers(), version=version)
    assert fw.execute(10, now=0).code is Code.METHOD_NOT_ALLOWED


def test_a_version_1_0_object_has_no_cancel_resource():
    fw = FirmwareObject(RamHandlers(), version="1.0")
    assert fw.execute(10, now=0).code is Code.NOT_FOUND
    assert fw.resource_ids() == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_a_user_may_defer_an_optional_update_within_the_maximum_defer_period():
    handlers = RamHandlers()
    handlers.defer = True
    fw = FirmwareObject(handlers)
    fw.write(0, b"image", now=0)
    fw.write(13, 3600, now=0)
    fw.write(11, int(Severity.OPTIONAL), now=0)
    fw.execute(2, now=10)
    assert (fw.state, fw.result) == (State.DOWNLOADED, R.DEFERRED)
    assert "defer_update(OPTIONAL)" in handlers.calls
    fw.expire(now=3610)
    assert (fw.state, handlers.calls[-1]) == (State.UPDATING, "update_start")


def test_a_critical_update_is_not_offered_for_deferral():
    handlers = RamHandlers()
    handlers.defer = True
    fw = FirmwareObject(handlers)
    fw.write(0, b"image", now=0)
    fw.write(13, 3600, now=0)
    fw.write(11, int(Severity.CRITICAL), now=0)
    fw.execute(2, now=10)
    assert fw.state is State.UPDATING
    assert not any(call.startswith("defer_update") for call in handlers.calls)


# -- reads and writes of the other resources ------------------------------------------------------


def test_package_name_and_version_are_read_from_the_handlers_only_while_downloaded():
    fw = FirmwareObject(RamHandlers())
    assert (fw.read(6).value, fw.read(7).value) == ("", "")
    fw.write(0, b"image", now=0)
    assert (fw.read(6).value, fw.read(7).value) == ("app", "1.1.0")


def test_last_state_change_time_is_the_time_of_the_last_state_change():
    fw = FirmwareObject(RamHandlers())
    assert fw.read(12).value == datetime(1970, 1, 1, tzinfo=UTC)
    fw.write_package_uri("coap://h/fw", 1_700_000_000)
    assert fw.read(12).value == datetime.fromtimestamp(1_700_000_000, UTC)


@pytest.mark.parametrize(
    ("resource_id", "value"),
    [(11, 3), (11, -1), (11, "1"), (13, -5), (13, 1.5), (14, 1)],
)
def test_out_of_range_settings_are_bad_requests(resource_id, value):
    fw = FirmwareObject(RamHandlers(), version="1.2")
    assert fw.write(resource_id, value, now=0).code is Code.BAD_REQUEST


def test_settings_are_stored():
    fw = FirmwareObject(RamHandlers(), version="1.2")
    fw.write(11, 2, now=0)
    fw.write(13, 60, now=0)
    fw.write(14, True, now=0)
    assert [fw.read(r).value for r in (11, 13, 14)] == [2, 60, True]


@pytest.mark.parametrize("resource_id", [3, 5, 6, 7, 8, 9, 12])
def test_read_only_resources_refuse_writes(resource_id):
    fw = FirmwareObject(RamHandlers())
    assert fw.write(resource_id, 1, now=0).code is Code.METHOD_NOT_ALLOWED


@pytest.mark.parametrize("resource_id", [0, 2, 10])
def test_write_only_and_executable_resources_refuse_reads(resource_id):
    assert FirmwareObject(RamHandlers()).read(resource_id).code is Code.METHOD_NOT_ALLOWED


def test_resource_4_and_14_do_not_exist_in_version_1_1():
    fw = FirmwareObject(RamHandlers())
    assert fw.read(4).code is Code.NOT_FOUND
    assert fw.read(14).code is Code.NOT_FOUND


def test_read_all_lists_every_readable_resource():
    values = FirmwareObject(RamHandlers()).read_all()
    assert sorted(str(p) for p in values) == [
        "/5/0/1", "/5/0/11", "/5/0/12", "/5/0/13", "/5/0/3", "/5/0/5", "/5/0/6", "/5/0/7",
        "/5/0/8/0", "/5/0/9",
    ]  # fmt: skip


def test_observers_hear_every_state_and_result_change():
    fw = FirmwareObject(RamHandlers(package_write_finish=R.INTEGRITY_FAILURE))
    heard = []
    fw.observers.append(lambda step: heard.append((step.state.value, step.result.value)))
    push(fw, b"0123456789")
    assert heard == [(1, 0), (0, 5)]


def test_a_handler_returning_a_non_result_is_a_clear_error():
    handlers = RamHandlers()
    handlers.package_write_start = lambda: None
    fw = FirmwareObject(handlers)
    with pytest.raises(HandlerResultError, match=r"package_write_start\(\) returned None"):
        fw.write(0, b"image", now=0)
