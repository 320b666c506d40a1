"""Timing plots of a firmware update: where the seconds go, block by block and phase by phase.

Each function returns a ``matplotlib.figure.Figure`` made without pyplot (so nothing is shown
twice in a notebook and nothing piles up in pyplot's figure list): leave it last in a cell, or
``figure.savefig("update.png")``. Every time on these plots is *modeled* time (the flash
datasheet and the ``LinkModel`` decide it), so they are the same on every run.

* ``plot_timeline(update)`` — a Gantt chart, one row per block: the block's messages on the
  link, then the sectors erased ahead of it and the pages programmed (back-to-back operations
  of one kind are drawn as one bar). Read it for the rhythm of
  a transfer: in lock-step the bars form a staircase, network and flash taking turns; the
  blocks that cross into a new sector stand out by their erase; with ``overlap=True`` the
  network of the next block slides under the flash work of this one. It also takes a device's
  ``timeline`` (``ChunkTiming`` records of a real download), which knows when each block
  arrived and what it cost on flash, but nothing of the network.
* ``plot_bytes_over_time({label: update, ...})`` — how much of the package is safely in flash
  over time, one curve per update: the slope is the throughput, the flat end is the reboot.
* ``plot_block_size_sweep(profiles, package)`` — the total update time against the block size,
  one curve per flash part: small blocks pay the round trip (and the headers) many times over.
* ``plot_push_vs_pull(profile, package)`` — the phases side by side for a push and a pull.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from ..flash import FlashProfile
from ..flash_handlers import ChunkTiming
from ..package import Package
from ..simulate import (
    PHASES,
    LinkModel,
    Mode,
    SimulatedUpdate,
    block_size_sweep,
    simulate_update,
)

__all__ = [
    "plot_block_size_sweep",
    "plot_bytes_over_time",
    "plot_push_vs_pull",
    "plot_timeline",
]

#: One color per kind of work, the same on every plot.
COLORS = {
    "network": "#4c72b0",
    "erase": "#c44e52",
    "program": "#55a868",
    "record": "#8172b2",
    "verify": "#ccb974",
    "install": "#64b5cd",
    "received": "#222222",
    "reboot": "#dddddd",
}
_LABELS = {
    "network": "network (block on the link)",
    "erase": "flash erase",
    "program": "flash program",
    "record": "FOTA record write",
}


def plot_timeline(
    source: SimulatedUpdate | Sequence[ChunkTiming], *, title: str | None = None
) -> Figure:
    """A per-block Gantt chart: network receive vs flash erase vs flash program.

    ``source`` is a ``SimulatedUpdate`` (network legs, flash work, and the reboot as a shaded
    span) or a device's ``timeline`` list of ``ChunkTiming`` (flash work, and a mark where each
    block arrived: a real download's network is not on the modeled clock).
    """
    if isinstance(source, SimulatedUpdate):
        blocks = source.blocks
        rows: dict[str, list[tuple[int, float, float]]] = {k: [] for k in _LABELS}
        low, high = blocks[0].record_range if blocks else (0, 0)
        # The exchanges that carry no block get a row of their own: before block 0 if they
        # start before it (a pull's Package URI write), after the last block otherwise.
        first = blocks[0].network_start if blocks else 0.0
        exchanges = [s for s in source.spans if s.legs]
        before = [s for s in exchanges if s.start < first]
        after = [s for s in exchanges if s.start >= first]
        placed = [(-len(before) + i, s) for i, s in enumerate(before)]
        placed += [(len(blocks) + i, s) for i, s in enumerate(after)]
        for row, work in [(b.index, b) for b in blocks] + placed:
            for start, end in work.legs:
                rows["network"].append((row, start, end - start))
            for op in work.flash:
                kind = "record" if low <= op.offset < high else op.kind
                rows[kind].append((row, op.start, op.duration))
        received: list[tuple[int, float]] = []
        heading = title or f"Per-block timeline: {source.label}"
    else:
        timings = list(source)
        if not timings:
            raise ValueError(
                "the timeline is empty: no download has run yet (push or pull a package first)"
            )
        rows = {"erase": [], "program": []}
        for timing in timings:
            for op in timing.flash:
                if op.kind in rows:
                    rows[op.kind].append((timing.index, op.start, op.duration))
        received = [(t.index, t.received_at) for t in timings]
        count = len(timings)
        heading = title or f"Per-block timeline of a download ({count} blocks)"

    figure, ax = _figure(height=_timeline_height(rows, received))
    for kind, bars in rows.items():
        if bars:
            # One collection per kind of work: thousands of bars (a 64 KiB image on a part
            # with 16-byte program rows) still draw in a blink.
            boxes = [
                [(x, y - 0.4), (x + w, y - 0.4), (x + w, y + 0.4), (x, y + 0.4)]
                for y, x, w in _merged(bars)
            ]
            ax.add_collection(PolyCollection(boxes, color=COLORS[kind], label=_LABELS[kind]))
    if received:
        ys, xs = zip(*received, strict=True)
        ax.scatter(xs, ys, marker="|", s=60, color=COLORS["received"], label="block received")
    if isinstance(source, SimulatedUpdate):
        for row, span in placed:
            ax.annotate(
                span.label,
                (span.end, row),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
            )
        ax.axvspan(
            source.reboot_start,
            source.total,
            color=COLORS["reboot"],
            label=f"reboot: verify + install ({source.total - source.reboot_start:.3g} s)",
        )
        heading += f"\ntotal {source.total:.3f} s"
    ax.autoscale_view()
    ax.invert_yaxis()  # block 0 on top: time runs left to right, blocks top to bottom
    ax.set_title(heading)
    ax.set_xlabel("modeled time (s)")
    ax.set_ylabel("block number (other exchanges: own rows)")
    ax.legend(loc="best", fontsize="small")
    return figure


def plot_bytes_over_time(
    updates: Mapping[str, SimulatedUpdate] | Iterable[SimulatedUpdate], *, title: str | None = None
) -> Figure:
    """Package bytes safely in flash over time, one step curve per update (e.g. per profile).

    ``updates`` maps a legend label to a ``SimulatedUpdate``; a plain list uses each update's
    own label. The curve rises as blocks land in flash and stays flat through the reboot, up to
    the moment the new firmware runs.
    """
    labelled = dict(updates) if isinstance(updates, Mapping) else {u.label: u for u in updates}
    if not labelled:
        raise ValueError("give at least one SimulatedUpdate to plot")
    figure, ax = _figure()
    for label, update in labelled.items():
        times, stored = zip(*update.bytes_over_time, strict=True)
        ax.step(
            times,
            [b / 1024 for b in stored],
            where="post",
            label=f"{label} — {update.total:.2f} s",
        )
    ax.set_title(title or "Package in flash over time")
    ax.set_xlabel("modeled time (s)")
    ax.set_ylabel("package bytes in flash (KiB)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return figure


def plot_block_size_sweep(
    profiles: Iterable[str | FlashProfile],
    package: bytes | Package,
    block_sizes: Sequence[int] = (64, 128, 256, 512, 1024),
    *,
    link: LinkModel | str = "wifi",
    mode: Mode = "push",
    overlap: bool = False,
    title: str | None = None,
) -> Figure:
    """Total update time against block size (log scale), one curve per flash profile.

    Runs ``simulate.block_size_sweep``: len(profiles) x len(block_sizes) whole updates (a 64 KiB
    package on four profiles and five sizes takes about a second).
    """
    link = LinkModel.preset(link) if isinstance(link, str) else link
    package = package if isinstance(package, Package) else Package.parse(bytes(package))
    results = block_size_sweep(
        profiles, package, block_sizes, link=link, mode=mode, overlap=overlap
    )
    figure, ax = _figure()
    for name, runs in results.items():
        sizes = sorted(runs)
        ax.plot(sizes, [runs[s].total for s in sizes], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(block_sizes), [str(s) for s in sorted(block_sizes)])
    ax.minorticks_off()
    size = len(bytes(package))
    ax.set_title(
        title
        or f"Update time vs block size: {size / 1024:.0f} KiB package, {mode} over "
        f"{link.name or 'a link'}{', overlapped' if overlap else ''}"
    )
    ax.set_xlabel("block size (bytes, log scale)")
    ax.set_ylabel("total update time (s)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return figure


def plot_push_vs_pull(
    profile: str | FlashProfile,
    package: bytes | Package,
    *,
    link: LinkModel | str = "wifi",
    block_size: int = 1024,
    overlap: bool = False,
    title: str | None = None,
) -> Figure:
    """Grouped bars of the time in each phase (``simulate.PHASES``) for a push and a pull."""
    link = LinkModel.preset(link) if isinstance(link, str) else link
    runs = {
        mode: simulate_update(
            profile, package, block_size=block_size, link=link, mode=mode, overlap=overlap
        )
        for mode in ("push", "pull")
    }
    figure, ax = _figure()
    width = 0.38
    positions = range(len(PHASES))
    for i, (mode, run) in enumerate(runs.items()):
        ax.bar(
            [p + (i - 0.5) * width for p in positions],
            [run.phases[phase] for phase in PHASES],
            width,
            label=f"{mode} — total {run.total:.3f} s",
            color=("#4c72b0", "#dd8452")[i],
        )
    ax.set_xticks(list(positions), list(PHASES))
    name = runs["push"].profile.name
    ax.set_title(
        title or f"Push vs pull on {name}: {block_size}-byte blocks over {link.name or 'a link'}"
    )
    ax.set_xlabel("phase")
    ax.set_ylabel("time spent (s)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return figure


def _figure(height: float = 4.0) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(9.0, height), layout="constrained")
    return figure, figure.add_subplot()


def _merged(bars: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """Back-to-back bars of one row drawn as one: a block's page programs follow each other."""
    merged: list[tuple[int, float, float]] = []
    for row, start, width in sorted(bars):
        if merged and merged[-1][0] == row and abs(merged[-1][1] + merged[-1][2] - start) < 1e-12:
            merged[-1] = (row, merged[-1][1], start + width - merged[-1][1])
        else:
            merged.append((row, start, width))
    return merged


def _timeline_height(rows: Mapping[str, list], received: list) -> float:
    """Taller for more blocks, within reason: 3 to 10 inches."""
    blocks = {row[0] for bars in rows.values() for row in bars} | {r[0] for r in received}
    return min(10.0, max(3.0, 1.5 + 0.12 * len(blocks)))
