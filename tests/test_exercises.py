"""The handler exercise of notebook 07: the checker passes good handlers and pinpoints bugs.

The correct handlers are the solution notebook's own class, so the notebook and this test can't
drift apart; each broken variant changes one thing and must fail where (and only where) that
thing matters, with a hint that names the fix.
"""

import json
from pathlib import Path

import pytest

from lwm2m_edu import PackageError, PackageVerifier, UpdateResult
from lwm2m_edu.exercises import (
    BLOCK_SIZE,
    StagingArea,
    Verdict,
    check_handlers,
    sample_package,
)
from lwm2m_edu.flash import KiB

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXERCISE = NOTEBOOKS / "07-write-your-own-handlers.ipynb"
SOLUTION = NOTEBOOKS / "solutions" / "07-write-your-own-handlers.ipynb"
CHECK_CELL = "print(check_handlers(MyHandlers))"


def notebook_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def handlers_class(path: Path) -> type:
    """The ``MyHandlers`` class a notebook defines, run in the names its setup cell imports."""
    (source,) = [
        "".join(c["source"])
        for c in notebook_cells(path)
        if "".join(c["source"]).startswith("class MyHandlers")
    ]
    names = {
        "PackageError": PackageError,
        "PackageVerifier": PackageVerifier,
        "StagingArea": StagingArea,
        "UpdateResult": UpdateResult,
    }
    exec(compile(source, str(path), "exec"), names)
    return names["MyHandlers"]


Good = handlers_class(SOLUTION)
Skeleton = handlers_class(EXERCISE)


def scenario(verdict: Verdict, name: str):
    (found,) = [s for s in verdict.scenarios if s.name.startswith(name)]
    return found


def failing(verdict: Verdict) -> list[str]:
    return [s.name for s in verdict.failed()]


# -- the correct handlers and the skeleton --------------------------------------------------------


@pytest.mark.parametrize("flash", ["w25q64-spi-nor", "nrf52840-internal"])
def test_the_solution_passes_every_scenario(flash):
    verdict = check_handlers(Good, flash=flash)
    assert verdict.ok, str(verdict)
    assert len(verdict.scenarios) == 10
    assert str(verdict).endswith(
        "10 of 10 scenarios pass: these handlers are ready for a real push."
    )
    assert "✘" not in str(verdict)
    assert scenario(verdict, "push of a 10 KiB").detail.startswith("DOWNLOADED after 41 blocks")


def test_the_skeleton_installs_and_fails_with_a_hint_for_the_first_thing_to_do():
    verdict = check_handlers(Skeleton)
    assert not verdict.ok
    assert failing(verdict)[0] == "push of a 10 KiB package"
    push = scenario(verdict, "push of a 10 KiB")
    assert "still holds the previous package" in push.detail
    assert "area.flash.write" in push.hint
    assert "not checked" in scenario(verdict, "PkgName").detail
    assert "Update Result 5" in scenario(verdict, "corrupted").detail


def test_the_exercise_notebook_stores_the_skeletons_verdict():
    (cell,) = [c for c in notebook_cells(EXERCISE) if CHECK_CELL in "".join(c["source"])]
    stored = "".join(cell["outputs"][0]["text"])
    assert stored == str(check_handlers(Skeleton)) + "\n"


def test_the_verdict_is_the_same_text_on_every_run():
    assert str(check_handlers(Skeleton)) == str(check_handlers(Skeleton))
    assert str(check_handlers(Good)) == str(check_handlers(Good))


# -- deliberately broken handlers ---------------------------------------------------------------


class NoErase(Good):
    """Writes without erasing: NOR flash refuses to turn the old package's 0 bits into 1."""

    def package_write(self, chunk):
        try:
            self.verifier.feed(chunk)
        except PackageError as error:
            return error.result
        self.area.flash.write(self.area.start + self.received, chunk)
        self.received += len(chunk)
        return UpdateResult.SUCCESS


def test_writing_without_erasing_reports_the_flash_error_and_says_erase():
    verdict = check_handlers(NoErase)
    push = scenario(verdict, "push of a 10 KiB")
    assert not push.passed
    assert push.detail.startswith("package_write() raised FlashError")
    assert "from 0 to 1" in push.detail
    assert "erase each sector before writing into it" in push.hint
    assert "area.sector_ranges" in push.hint


class ErasesOnlyOnce(Good):
    """Remembers the erased sectors for good: the next push writes over the last package."""

    def __init__(self, area):
        super().__init__(area)
        self.erased_ever: set[int] = set()

    def reset(self):
        erased = getattr(self, "erased_ever", set())
        super().reset()
        self.erased = erased

    def package_write(self, chunk):
        result = super().package_write(chunk)
        self.erased_ever |= self.erased
        return result


def test_not_erasing_again_after_a_reset_fails_the_second_push():
    verdict = check_handlers(ErasesOnlyOnce)
    assert failing(verdict) == ["second push after a reset", "reset half-way through a push"]
    second = scenario(verdict, "second push")
    assert "FlashError" in second.detail
    assert "erases them again" in second.hint


class NoVerification(Good):
    """Never checks the hash: a damaged package would be installed."""

    def package_write_finish(self):
        self.info = self.verifier.header
        return UpdateResult.SUCCESS


def test_skipping_verification_fails_the_corrupted_package():
    verdict = check_handlers(NoVerification)
    assert failing(verdict) == ["corrupted package"]
    corrupted = scenario(verdict, "corrupted")
    assert "expected State 0 IDLE with Update Result 5 INTEGRITY_FAILURE" in corrupted.detail
    assert "got State 2 DOWNLOADED, Update Result 0 INITIAL" in corrupted.detail
    assert "PackageVerifier.finish() in package_write_finish" in corrupted.hint


class TrustsTheHeader(Good):
    """Verifies the hash but not whom the package is for nor whether it fits."""

    def package_write_start(self):
        self.reset()
        self.verifier = PackageVerifier()
        return UpdateResult.SUCCESS


def test_a_verifier_without_device_type_and_size_lets_foreign_and_huge_packages_through():
    verdict = check_handlers(TrustsTheHeader)
    assert failing(verdict) == [
        "package for another device type",
        "package bigger than the staging area",
    ]
    foreign = scenario(verdict, "package for another")
    assert "Update Result 6" in foreign.detail
    assert "device_type=area.device_type" in foreign.hint
    big = scenario(verdict, "package bigger")
    assert "don't exist" in big.detail  # area.sector_ranges refused to go past the area
    assert big.hint == "the same fix as for 'package for another device type'"


class ChecksSizeLate(Good):
    """Refuses an oversized package only when the area is full: after writing all of it."""

    def package_write_start(self):
        self.reset()
        self.verifier = PackageVerifier(device_type=self.area.device_type)
        return UpdateResult.SUCCESS

    def package_write(self, chunk):
        if self.received + len(chunk) > self.area.size:
            return UpdateResult.NOT_ENOUGH_FLASH
        return super().package_write(chunk)


def test_refusing_a_big_package_late_is_reported_with_the_block():
    verdict = check_handlers(ChecksSizeLate)
    assert failing(verdict) == ["package bigger than the staging area"]
    big = scenario(verdict, "package bigger")
    blocks = 128 * KiB // BLOCK_SIZE + 1
    assert f"Update Result 2, but only at block {blocks} of" in big.detail
    assert "max_image_size=area.max_image_size" in big.hint


class MissingFinish:
    def __init__(self, area):
        self.area = area

    def package_write_start(self):
        return UpdateResult.SUCCESS

    def package_write(self, chunk):
        return UpdateResult.SUCCESS

    def update_start(self):
        return UpdateResult.SUCCESS

    def reset(self):
        pass


def test_a_missing_handler_fails_the_install_with_the_objects_message():
    verdict = check_handlers(MissingFinish)
    install = scenario(verdict, "install")
    assert not install.passed
    assert install.detail == (
        "MissingFinish is missing package_write_finish() (needed by push delivery (writes to "
        "/5/0/0 Package)). Add the method(s) to MissingFinish."
    )
    assert verdict.passed == 0
    assert all("not run" in s.detail for s in verdict.scenarios[1:])


class Raises(Good):
    def package_write(self, chunk):
        if self.received >= 4 * BLOCK_SIZE:
            raise KeyError(f"no such block: {object()}")
        return super().package_write(chunk)


def test_a_handler_that_raises_is_reported_not_propagated():
    verdict = check_handlers(Raises)
    push = scenario(verdict, "push of a 10 KiB")
    assert push.detail.startswith("package_write() raised KeyError: 'no such block: <object")
    assert "a handler must not raise: fix package_write()" in push.hint
    assert "<object object>" in str(verdict)  # no memory address, even from the learner's message
    assert "corrupted package" in failing(verdict)


class ReturnsNone(Good):
    def package_write_start(self):
        super().package_write_start()


def test_a_handler_returning_none_is_told_to_return_an_update_result():
    push = scenario(check_handlers(ReturnsNone), "push of a 10 KiB")
    assert "package_write_start() returned None" in push.detail
    assert "UpdateResult.SUCCESS" in push.hint


class BrokenInit:
    def __init__(self, area):
        raise RuntimeError("forgot something")


def test_a_constructor_that_raises_fails_the_install():
    verdict = check_handlers(BrokenInit)
    assert scenario(verdict, "install").detail == (
        "BrokenInit(area) raised RuntimeError: forgot something"
    )
    assert verdict.passed == 0


class ErasesTooMuch(Good):
    """Erases one sector too many: the running firmware's first sector after the area."""

    def package_write_start(self):
        result = super().package_write_start()
        self.area.flash.erase(self.area.start, self.area.size + 4 * KiB)
        self.erased = {start for start, _ in self.area.sector_ranges()}
        return result


def test_touching_flash_outside_the_staging_area_is_caught():
    verdict = check_handlers(ErasesTooMuch)
    push = scenario(verdict, "push of a 10 KiB")
    assert not push.passed
    assert "the flash at 0x30000, outside the staging area, changed" in push.detail
    assert "area.start .. area.end - 1" in push.hint


class NeverForgets(Good):
    def reset(self):
        info = getattr(self, "info", None)
        super().reset()
        self.info = info


class RefusesToUpdate(Good):
    def update_start(self):
        return UpdateResult.UPDATE_FAILED


def test_reset_must_forget_and_update_start_must_succeed():
    assert failing(check_handlers(NeverForgets)) == ["reset (empty Package URI)"]
    verdict = check_handlers(RefusesToUpdate)
    assert failing(verdict) == ["Execute Update"]
    update = scenario(verdict, "Execute Update")
    assert "got State 2 DOWNLOADED, Update Result 8 UPDATE_FAILED" in update.detail


# -- the staging area and the verdict's HTML -----------------------------------------------------


def test_the_staging_area_is_whole_sectors_that_still_hold_the_previous_package():
    area = StagingArea.create()
    assert (area.start, area.size, area.end) == (64 * KiB, 128 * KiB, 192 * KiB)
    assert area.sector_ranges(4000, 300) == [(area.start, 4096), (area.start + 4096, 4096)]
    assert len(area.sector_ranges()) == 32
    assert area.read_back(4) == b"the "
    assert area.guard_damage() is None
    with pytest.raises(ValueError, match="don't exist"):
        area.sector_ranges(area.size - 10, 20)
    assert area.max_image_size < area.size
    mixed = StagingArea.create("stm32f4-internal", start=16 * KiB)
    assert "sectors of mixed sizes" in repr(mixed)
    assert len(bytes(sample_package())) > 10 * KiB


def test_the_html_verdict_marks_each_scenario_and_escapes_text():
    page = check_handlers(Skeleton)._repr_html_()
    assert page.count("<tr>") == 10
    assert "✔" in page and "✘" in page
    assert "&#x27;push of a 10 KiB package&#x27;" in page
    assert repr(check_handlers(Good)) == "<Verdict MyHandlers: 10 of 10 scenarios pass>"
