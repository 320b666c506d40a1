"""The timing plots: each returns a Figure with the series it promises, titled and labelled."""

import random

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

from lwm2m_edu.bootloader import Bootloader
from lwm2m_edu.flash import EmulatedFlash
from lwm2m_edu.flash_handlers import FlashFirmwareHandlers
from lwm2m_edu.objects import Code
from lwm2m_edu.objects.firmware import FirmwareObject
from lwm2m_edu.package import Package
from lwm2m_edu.simulate import PHASES, LinkModel, simulate_update
from lwm2m_edu.viz.plots import (
    plot_block_size_sweep,
    plot_bytes_over_time,
    plot_push_vs_pull,
    plot_timeline,
)

W25Q = "w25q64-spi-nor"
NRF = "nrf52840-internal"
LINK = LinkModel(rtt=0.1, bandwidth=10_000, overhead=50, name="test")


def package(size: int = 6000, version: str = "2.0.0") -> Package:
    image = random.Random(size).randbytes(size)
    return Package.build(image, name="app", version=version, device_type="demo")


def only_axes(figure: Figure):
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "(s)" in ax.get_xlabel() + ax.get_ylabel()  # a unit on the time axis
    figure.canvas.draw()  # it really renders
    return ax


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def polys(ax) -> dict[str, PolyCollection]:
    return {c.get_label(): c for c in ax.collections if isinstance(c, PolyCollection)}


def test_timeline_of_a_simulated_update_has_network_erase_program_and_record_rows():
    update = simulate_update(W25Q, package(), block_size=1024, link=LINK)
    ax = only_axes(plot_timeline(update))
    bars = polys(ax)
    assert sorted(bars) == sorted(
        ["network (block on the link)", "flash erase", "flash program", "FOTA record write"]
    )
    blocks = len(update.blocks)
    assert blocks == 6
    # push, lock-step: each block's PUT and its 2.31, with the flash work in between; and the
    # Execute Update exchange on a row of its own
    assert len(bars["network (block on the link)"].get_paths()) == 2 * blocks + 2
    assert len(bars["flash erase"].get_paths()) == 2  # 6 KiB of package: two 4 KiB sectors
    assert len(bars["flash program"].get_paths()) == blocks  # back-to-back pages merged
    assert len(ax.patches) == 1  # the reboot, shaded
    labels = legend_texts(ax)
    assert len(labels) == 5 and labels[-1].startswith("reboot: verify + install")
    assert "Execute Update" in [t.get_text() for t in ax.texts]


def test_timeline_of_a_pull_puts_the_uri_write_above_block_0():
    update = simulate_update(W25Q, package(), block_size=1024, link=LINK, mode="pull")
    ax = only_axes(plot_timeline(update))
    assert [t.get_text() for t in ax.texts] == [
        "write Package URI",
        "notify Downloaded",
        "Execute Update",
    ]
    network = polys(ax)["network (block on the link)"]
    # a pull's GET and its 2.05 follow each other: one bar per block; the URI write and the
    # Execute are two legs each, around the device's record write; the notification is one
    assert len(network.get_paths()) == len(update.blocks) + 2 + 1 + 2
    top = min(path.vertices[:, 1].min() for path in network.get_paths())
    assert top < -0.5  # the row above block 0


def test_timeline_of_a_device_timeline_from_an_in_process_push():
    flash = EmulatedFlash(NRF)
    bootloader = Bootloader(flash, device_type="demo")
    bootloader.provision(package(5000, version="1.0.0"))
    bootloader.boot()
    handlers = FlashFirmwareHandlers(bootloader)
    firmware = FirmwareObject(handlers, protocols=())
    handlers.attach(firmware)
    data = bytes(package(9000))
    for offset in range(0, len(data), 512):
        last = offset + 512 >= len(data)
        chunk = data[offset : offset + 512]
        outcome = firmware.write_package(chunk, offset=offset, last=last, now=flash.clock.now)
        assert outcome.code is (Code.CHANGED if last else Code.CONTINUE)
    timeline = handlers.timeline
    assert len(timeline) == 18

    ax = only_axes(plot_timeline(timeline))
    bars = polys(ax)
    assert sorted(bars) == ["flash erase", "flash program"]
    assert len(bars["flash erase"].get_paths()) == 3  # 9 KiB: three 4 KiB pages of the nRF52840
    assert len(bars["flash program"].get_paths()) == len(timeline)
    (received,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(received.get_offsets()) == len(timeline)
    assert legend_texts(ax) == ["flash erase", "flash program", "block received"]
    assert not ax.patches  # no reboot in a device's download timeline


def test_timeline_of_nothing_says_what_to_do():
    with pytest.raises(ValueError, match="no download has run yet"):
        plot_timeline([])


def test_bytes_over_time_draws_one_curve_per_update():
    pkg = package(8000)
    updates = {name: simulate_update(name, pkg, link=LINK) for name in (W25Q, NRF)}
    ax = only_axes(plot_bytes_over_time(updates))
    assert len(ax.lines) == 2
    for line, update in zip(ax.lines, updates.values(), strict=True):
        xs, ys = line.get_data()
        assert xs[-1] == pytest.approx(update.total)
        assert ys[-1] == pytest.approx(len(bytes(pkg)) / 1024)
    labels = legend_texts(ax)
    assert len(labels) == 2 and labels[0].startswith(W25Q)
    # a plain list of updates is labelled by the updates themselves
    ax = only_axes(plot_bytes_over_time(list(updates.values())))
    assert len(ax.lines) == 2 and "push over test" in legend_texts(ax)[0]


def test_block_size_sweep_draws_one_curve_per_profile_on_a_log_axis():
    sizes = (128, 512, 1024)
    ax = only_axes(plot_block_size_sweep([W25Q, NRF], package(8000), sizes, link=LINK))
    assert len(ax.lines) == 2
    assert all(len(line.get_xdata()) == len(sizes) for line in ax.lines)
    assert list(ax.lines[0].get_xdata()) == list(sizes)
    totals = list(ax.lines[0].get_ydata())
    assert totals == sorted(totals, reverse=True)  # bigger blocks, fewer round trips
    assert ax.get_xscale() == "log"
    assert legend_texts(ax) == [W25Q, NRF]


def test_push_vs_pull_draws_two_groups_of_phase_bars():
    ax = only_axes(plot_push_vs_pull(W25Q, package(), link=LINK))
    assert len(ax.containers) == 2
    assert len(ax.patches) == 2 * len(PHASES)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(PHASES)
    labels = legend_texts(ax)
    assert labels[0].startswith("push — total") and labels[1].startswith("pull — total")


def test_a_64_kib_sweep_of_four_profiles_plots_quickly():
    # the notebook's case: 4 profiles x 5 block sizes of a 64 KiB package; a few seconds at most
    import time

    started = time.perf_counter()
    figure = plot_block_size_sweep(
        ["nrf52840-internal", "stm32f4-internal", W25Q, "mx25r6435f-spi-nor"],
        package(64 * 1024),
    )
    figure.canvas.draw()
    assert time.perf_counter() - started < 10
    assert len(figure.axes[0].lines) == 4
