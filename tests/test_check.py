"""The setup check finds what a workshop needs, and names the fix for what is missing."""

from lwm2m_edu import check
from lwm2m_edu.cli import main


async def test_this_machine_passes_every_check():
    checks = await check.check_all()
    assert [c for c in checks if not c.ok] == []
    assert check.report(checks).endswith("All set for the workshop.")


def test_a_missing_dot_program_is_reported_with_the_install_commands(monkeypatch):
    monkeypatch.setattr(check.shutil, "which", lambda name: None)
    result = check.check_dot()
    assert not result.ok
    assert "apt-get install graphviz" in result.fix and "brew install graphviz" in result.fix


def test_a_library_that_does_not_import_is_reported(monkeypatch):
    monkeypatch.setitem(check.LIBRARIES, "no_such_module_for_the_test", "no-such-module")
    failed = [c for c in check.check_libraries() if not c.ok]
    assert [c.name for c in failed] == ["no_such_module_for_the_test"]
    assert "cannot import" in failed[0].detail and "make lab" in failed[0].fix


def test_the_report_lists_fixes_only_for_failures():
    checks = [check.Check("a", True, "fine"), check.Check("b", False, "broken", "do this")]
    text = check.report(checks)
    assert "[ok  ] a: fine" in text and "[FAIL] b: broken\n       fix: do this" in text
    assert "1 problem(s) to fix" in text


async def test_coap_over_loopback_round_trips():
    result = await check.check_coap_loopback()
    assert result.ok, result.detail


def test_the_check_command_exits_0_when_all_is_well(capsys):
    assert main(["check"]) == 0
    assert "All set for the workshop." in capsys.readouterr().out


def test_the_check_command_exits_1_when_something_needs_fixing(monkeypatch, capsys):
    monkeypatch.setattr(check.shutil, "which", lambda name: None)
    assert main(["check"]) == 1
    assert "fix: install Graphviz" in capsys.readouterr().out
