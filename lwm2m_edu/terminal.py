"""The terminal side of the command line: a progress bar, and the long-running commands.

``lwm2m-edu client`` runs an emulated device until interrupted; ``lwm2m-edu server`` serves
registrations and, given a firmware file, updates every device that registers;
``lwm2m-edu demo`` runs a whole push update and a whole pull update in one process. Each prints
what happens as it happens, one line per event, so a person can follow along.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from .device import EmulatedDevice, factory_package
from .fota import Protocol
from .registry import EventKind, RegistrationEvent
from .server import Server, UpdateOutcome

__all__ = ["ProgressBar", "run_client", "run_demo", "run_server"]


@dataclass
class ProgressBar:
    """``[██████······] 52%  12.0 / 24.0 KiB``, redrawn in place on a terminal.

    Where the output is not a terminal (a log file, CI) it prints a line at every quarter
    instead, so logs stay readable.
    """

    label: str
    out: TextIO = field(default_factory=lambda: sys.stdout)
    width: int = 30
    _last_quarter: int = -1
    _done: bool = False

    def __call__(self, done: int, total: int) -> None:
        if self._done or total <= 0:
            return
        fraction = min(done / total, 1.0)
        filled = round(fraction * self.width)
        bar = "█" * filled + "·" * (self.width - filled)
        text = f"{self.label} [{bar}] {fraction:4.0%}  {done / 1024:.1f} / {total / 1024:.1f} KiB"
        if self.out.isatty():
            self.out.write("\r" + text)
            if done >= total:
                self.out.write("\n")
        elif int(fraction * 4) > self._last_quarter:
            self._last_quarter = int(fraction * 4)
            self.out.write(text + "\n")
        self.out.flush()
        self._done = done >= total


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def run_client(
    server: str,
    endpoint: str,
    *,
    lifetime: int = 300,
    flash: str = "nrf52840-internal",
    bootstrap: bool = False,
    host: str = "127.0.0.1",
    say: Callable[[str], None] = print,
    until: Callable[[], object] | None = None,
) -> None:
    """Run an emulated device against ``server`` until interrupted (or ``until()`` finishes)."""
    device = EmulatedDevice(endpoint, flash=flash, lifetime=lifetime, host=host, log=say)
    if bootstrap:
        await device.start(bootstrap_uri=server)
    else:
        await device.start(server)
    say(f"{endpoint}: running firmware {device.running.version}; Ctrl-C stops (and de-registers)")
    try:
        await (until() if until is not None else _until_interrupted())
    finally:
        await device.stop()


async def run_server(
    *,
    host: str = "127.0.0.1",
    port: int = 5683,
    firmware: bytes | None = None,
    mode: str = "push",
    via: str = "coap",
    say: Callable[[str], None] = print,
    until: Callable[[], object] | None = None,
) -> list[UpdateOutcome]:
    """Serve registrations; with ``firmware``, update every device that registers, once."""
    server = await Server.start(host, port)
    say(f"LwM2M server at {server.uri}")
    if firmware is not None:
        say(f"updating every device that registers: {len(firmware)} bytes by {mode}"
            + (f" via {via}" if mode == "pull" else ""))  # fmt: skip
    outcomes: list[UpdateOutcome] = []
    started: set[str] = set()
    tasks: set[asyncio.Task] = set()

    async def update(endpoint: str) -> None:
        bar = ProgressBar(f"{endpoint} push")
        outcome = await server.update(
            endpoint, firmware, mode=mode, via=via, progress=bar if mode == "push" else None,
        )  # fmt: skip
        outcomes.append(outcome)
        say(str(outcome))

    def on_event(event: RegistrationEvent) -> None:
        registration = event.registration
        say(f"{registration.endpoint}: {event.kind.value} ({registration})")
        endpoint = registration.endpoint
        if firmware is not None and event.kind is EventKind.REGISTERED and endpoint not in started:
            started.add(endpoint)  # its re-registration after the reboot must not update it again
            task = asyncio.get_running_loop().create_task(update(endpoint))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server.add_listener(on_event)
    try:
        await (until() if until is not None else _until_interrupted())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await server.stop()
    return outcomes


async def run_demo(*, size: int = 64 * 1024, flash: str = "nrf52840-internal",
                   out: TextIO | None = None) -> bool:  # fmt: skip
    """A whole push update, then a whole pull update, between an in-process server and device."""
    stream = out or sys.stdout

    def say(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    server = await Server.start()
    device = EmulatedDevice(
        "demo-device", flash=flash, protocols=[Protocol.COAP, Protocol.HTTP],
        log=lambda line: say("  " + line) if "State" in line or "boot:" in line else None,
    )  # fmt: skip
    ok = True
    try:
        say(f"LwM2M server at {server.uri}; an emulated device on {flash} flash registers:")
        await device.start(server.uri)
        say(f"  demo-device runs firmware {device.running.version}\n")
        for number, (version, mode, via) in enumerate(
            [("2.0.0", "push", "coap"), ("3.0.0", "pull", "coap")], start=1
        ):
            package = factory_package(version, size=size)
            how = "pushes it into /5/0/0 (Block1)" if mode == "push" else (
                "hosts it and writes its URI into /5/0/1; the device downloads it (Block2)"
            )  # fmt: skip
            say(f"{number}. A {mode} update to {version}: the server {how}.")
            bar = ProgressBar("   push", out=stream) if mode == "push" else None
            outcome = await server.update(
                "demo-device", package, mode=mode, via=via, progress=bar, timeout=60
            )
            ok = ok and outcome.ok
            flash_time = sum(op.duration for c in device.timeline for op in c.flash)
            say(f"   {'done' if outcome.ok else 'FAILED'} in {outcome.duration:.2f} s: "
                f"the device now runs {device.running.version}, "
                f"State {outcome.status}; flash work {flash_time:.2f} s (modeled)\n")  # fmt: skip
    finally:
        await device.stop()
        await server.stop()
    say("Both updates ended in State 0 (Idle) with Update Result 1." if ok else "An update failed.")
    return ok
