"""Live panels for notebooks: one device's firmware update, and a server's registrations.

``DevicePanel(server, device, package)`` shows what Object /5 on the device says — State and
Update Result, updated the moment they change — with the running firmware, a progress bar of the
bytes transferred, and one button per thing a server can do to /5 (and Reboot, /3/0/4)::

    panel = DevicePanel(server, device, factory_package("2.0.0"))
    panel                    # the last expression of a cell shows the widget

``ServerPanel(server)`` is a live table of the registered devices.

How the buttons work, and why
=============================

A notebook runs cells on the kernel's event loop, and the same loop carries every CoAP
message. So the panels follow three rules (the pitfalls are in
``reference/notebooks-and-style.md`` §3.7 and §5):

* **A click never blocks.** A button's callback only *starts* a background task
  (``loop.create_task``) and returns at once. Awaiting in the callback, or waiting for a widget
  inside a cell, would stop the loop that has to deliver the answer: the kernel hangs.
* **Every error is shown.** Output printed by a widget callback is shown nowhere in JupyterLab,
  so an exception there simply vanishes. Here each task catches what goes wrong and writes it in
  the panel's log, in red: a refused operation reads e.g. ``Execute /5/0/2 on 'dev-1': 4.05
  Method Not Allowed — the device says: UpdateExecuted is not allowed in state IDLE; …``.
  Nothing is raised into ipywidgets.
* **The panel cleans up.** ``panel.close()`` cancels its tasks and unsubscribes from the device
  and the server; ``await panel.aclose()`` also waits until the tasks have ended.
  ``await panel.wait_idle()`` waits for the tasks the buttons started (tests and notebook cells
  that must not "finish" before the work does use it).

Where the numbers come from (honestly)
======================================

* **State, Update Result** are the device's own ``FirmwareObject``: the panel is one of its
  ``observers`` and sees every step. A reboot builds a new object, so the panel moves to it
  when the device boots again (``device.on_boot``; a Register event is the fallback).
* **Bytes transferred**: for a push, what the server has had acknowledged (the ``progress``
  callback of ``Server.push_firmware``); for a pull, what the device's handlers have received
  (the chunks in ``device.timeline``), sampled every ``sample_interval`` seconds while State is
  DOWNLOADING — the device has no per-chunk event to hook.
* ``ServerPanel`` knows /5 State and Result only from what the server heard: a device's LwM2M
  Send after a reboot, or the reads the *Read /5* button makes. It does not poll; a new
  registration clears what it knew (the device rebooted, so the old status is stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import ipywidgets as widgets

from ..device import EmulatedDevice
from ..download import DownloadOutcome
from ..fota import (
    CancelExecuted,
    Event,
    PackageUriEmptied,
    PackageUriWritten,
    PackageWriteStarted,
    State,
    Step,
    UpdateExecuted,
    UpdateResult,
)
from ..objects.firmware import FirmwareObject
from ..package import Package
from ..registry import EventKind, Registration, RegistrationEvent
from ..server import (
    RESULT_PATH,
    STATE_PATH,
    FirmwareStatus,
    LwM2MError,
    SentValues,
    Server,
)

__all__ = ["DevicePanel", "ServerPanel"]

Action = Callable[[], Coroutine[Any, Any, None]]

#: the colour of an error line in the log (readable on light and dark themes)
ERROR_COLOUR = "#d32f2f"


class _Panel:
    """What both panels share: a log that shows every error, background tasks, display, close.

    Subclasses build ``self.widget`` (the ipywidgets box shown in the notebook).
    """

    #: how many of the latest log lines are shown (``messages`` keeps them all)
    LOG_LINES = 30

    widget: widgets.Box

    def __init__(self) -> None:
        #: every line logged, oldest first, as plain text (errors included)
        self.messages: list[str] = []
        #: the lines that report errors
        self.errors: list[str] = []
        self.log_widget = widgets.HTML(layout=widgets.Layout(width="100%"))
        self._lines: list[tuple[str, str, bool]] = []  # (time, text, is_error)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._closed = False
        try:  # the loop the panel was made on: ipykernel runs cells inside it
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    # -- the log --------------------------------------------------------------------------------

    def log(self, text: str, *, error: bool = False) -> None:
        """Add a line to the panel's log (``error=True``: in red, and kept in ``errors``)."""
        self.messages.append(text)
        if error:
            self.errors.append(text)
        self._lines.append((time.strftime("%H:%M:%S"), text, error))
        del self._lines[: -self.LOG_LINES]
        if self._closed:
            return
        lines = "".join(
            f"<div style='color:{ERROR_COLOUR if bad else 'inherit'}'>"
            f"{stamp} {'✗ ' if bad else ''}{html.escape(line)}</div>"
            for stamp, line, bad in self._lines
        )
        self.log_widget.value = (
            "<div style='font-family:monospace;font-size:90%;max-height:14em;"
            f"overflow-y:auto;white-space:pre-wrap'>{lines}</div>"
        )

    # -- background tasks -----------------------------------------------------------------------

    def _on_click(self, label: str, action: Action) -> Callable[[widgets.Button], None]:
        """A button callback that starts ``action`` in the background and returns at once."""

        def callback(_button: widgets.Button) -> None:
            try:
                self._start(label, action)
            except Exception as exc:  # never let an error escape into ipywidgets: it is lost
                self.log(f"{label}: could not start: {exc!r}", error=True)

        return callback

    def _start(self, label: str, action: Action) -> asyncio.Task[None] | None:
        """Run ``action()`` as a task of this panel; its errors go to the log."""
        if self._closed:
            self.log(f"{label}: the panel is closed; make a new one", error=True)
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = self._loop
        if loop is None or loop.is_closed():
            self.log(
                f"{label}: no running event loop; make the panel in a notebook cell "
                "(ipykernel runs one) or inside an async function",
                error=True,
            )
            return None
        task = loop.create_task(self._run(label, action), name=f"{type(self).__name__}: {label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, label: str, action: Action) -> None:
        try:
            await action()
        except LwM2MError as exc:  # its text already says code, path, endpoint and why
            self.log(str(exc), error=True)
        except Exception as exc:
            self.log(f"{label} failed: {type(exc).__name__}: {exc}", error=True)

    @property
    def busy(self) -> bool:
        """Whether a task the panel started is still running."""
        return bool(self._tasks)

    async def wait_idle(self, timeout: float | None = 30.0) -> None:
        """Wait until every task the panel started has ended (``TimeoutError`` after ``timeout``).

        Errors are not raised here: they are in the log (``messages``, ``errors``).
        """
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    # -- closing and display --------------------------------------------------------------------

    def close(self) -> None:
        """Cancel the panel's tasks, unsubscribe everywhere and close the widgets."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        _close_tree(self.widget)

    async def aclose(self) -> None:
        """``close()``, then wait for the cancelled tasks to end."""
        tasks = list(self._tasks)
        self.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _status_text(value: State | UpdateResult) -> str:
    return f"{value.value} {value.name}"


# -- DevicePanel --------------------------------------------------------------------------------


class DevicePanel(_Panel):
    """One device's Object /5, live, with a button for each server operation.

    ``package`` is what Push and Pull deliver (without one those buttons are disabled).
    ``guard=True`` disables the buttons the state machine would refuse now (derived from
    ``FirmwareUpdateMachine.transition_for``); by default they stay enabled, so a participant
    can try, say, Update while Idle and read the device's 4.05 in the log — their tooltips say
    whether the device would accept them. ``timeout`` bounds how long a pull or a reboot is
    waited for; ``block_size`` is the push's Block1 size.
    """

    def __init__(
        self,
        server: Server,
        device: EmulatedDevice,
        package: Package | bytes | None = None,
        *,
        guard: bool = False,
        block_size: int = 512,
        timeout: float = 60.0,
        sample_interval: float = 0.1,
    ) -> None:
        super().__init__()
        self.server = server
        self.device = device
        self.endpoint = device.endpoint
        self.package = package
        self.guard = guard
        self.block_size = block_size
        self.timeout = timeout
        self.sample_interval = sample_interval
        size = len(bytes(package)) if package is not None else 0

        self.state_label = widgets.Label()
        self.result_label = widgets.Label()
        self.version_label = widgets.Label()
        self.staged_label = widgets.Label()
        self.registration_label = widgets.Label()
        self.progress = widgets.IntProgress(value=0, min=0, max=max(size, 1))
        self.progress_label = widgets.Label("no transfer yet")

        self.push_button = self._button("Push", "upload", self._push)
        self.pull_coap_button = self._button("Pull via CoAP", "download", self._pull_coap)
        self.pull_http_button = self._button("Pull via HTTP", "download", self._pull_http)
        self.update_button = self._button("Update", "play", self._update)
        self.cancel_button = self._button("Cancel", "stop", self._cancel)
        self.reset_button = self._button("Reset", "undo", self._reset)
        self.reboot_button = self._button("Reboot", "power-off", self._reboot)
        self.buttons = [
            self.push_button,
            self.pull_coap_button,
            self.pull_http_button,
            self.update_button,
            self.cancel_button,
            self.reset_button,
            self.reboot_button,
        ]

        def row(name: str, value: widgets.Widget) -> list[widgets.Widget]:
            return [widgets.HTML(f"<b>{html.escape(name)}</b>"), value]

        facts = widgets.GridBox(
            row("State (/5/0/3)", self.state_label)
            + row("Update Result (/5/0/5)", self.result_label)
            + row("running firmware", self.version_label)
            + row("staged package", self.staged_label)
            + row("registration", self.registration_label),
            layout=widgets.Layout(grid_template_columns="max-content auto", grid_gap="0 1em"),
        )
        title = widgets.HTML(
            f"<b>{html.escape(self.endpoint)}</b> — Object /5 Firmware Update, as the device "
            "sees it"
        )
        self.widget = widgets.VBox(
            [
                title,
                facts,
                widgets.HBox([self.progress, self.progress_label]),
                widgets.HBox(self.buttons[:3]),
                widgets.HBox(self.buttons[3:]),
                self.log_widget,
            ]
        )

        self._firmware: FirmwareObject | None = None  # the object whose steps we observe
        self._changed = asyncio.Event()  # set on every State / Update Result step
        self._reregistered: list[asyncio.Future[Registration]] = []
        self._unsubscribe.append(server.add_listener(self._on_registration))
        device.on_boot.append(self._on_boot)
        self._unsubscribe.append(lambda: _discard(device.on_boot, self._on_boot))
        self._unsubscribe.append(self._stop_following)
        self._follow()
        self.refresh()

    def _button(self, label: str, icon: str, action: Action) -> widgets.Button:
        button = widgets.Button(description=label, icon=icon)
        button.on_click(self._on_click(label, action))
        return button

    # -- following the device -------------------------------------------------------------------

    def _follow(self) -> None:
        """Observe the device's current ``FirmwareObject`` (a reboot makes a new one)."""
        firmware = self.device.firmware
        if firmware is self._firmware:
            return
        self._stop_following()
        self._firmware = firmware
        if firmware is not None:
            firmware.observers.append(self._on_step)

    def _stop_following(self) -> None:
        if self._firmware is not None and self._on_step in self._firmware.observers:
            self._firmware.observers.remove(self._on_step)
        self._firmware = None

    def _on_boot(self, device: EmulatedDevice) -> None:
        # The device has just built its objects after a boot, before it registers.
        try:
            self._follow()
            self.refresh()
        except Exception as exc:
            self.log(f"the panel failed to follow the reboot: {exc!r}", error=True)

    def _on_step(self, step: Step) -> None:
        # Called by the device's state machine in the middle of its work: never raise here.
        try:
            self._changed.set()
            self.refresh()
        except Exception as exc:
            self.log(f"the panel failed to show {step}: {exc!r}", error=True)

    def _on_registration(self, event: RegistrationEvent) -> None:
        if event.registration.endpoint != self.endpoint:
            return
        try:
            if event.kind is EventKind.REGISTERED:
                self._follow()  # after a reboot: the new FirmwareObject (if on_boot missed it)
                for future in self._reregistered:
                    if not future.done():
                        future.set_result(event.registration)
                self.log(f"registered at /{event.registration.location} (boot {self._boots()})")
            elif event.kind in (EventKind.DEREGISTERED, EventKind.EXPIRED):
                self.log(f"registration {event.kind.value}")
            self.refresh()
        except Exception as exc:
            self.log(f"the panel failed to show {event.kind.value}: {exc!r}", error=True)

    def _boots(self) -> int:
        return len(self.device.boots)

    # -- what the widgets show ------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the device's State, Update Result, firmware and registration now."""
        if self._closed:
            return
        firmware = self.device.firmware
        self.state_label.value = _status_text(firmware.state) if firmware else "-"
        self.result_label.value = _status_text(firmware.result) if firmware else "-"
        if self.device.boots:
            running = self.device.running
            self.version_label.value = f"{running.name} {running.version}"
        else:
            self.version_label.value = "not booted"
        staged = self.device.handlers.staged if self.device.handlers else None
        self.staged_label.value = (
            f"{staged.name} {staged.version} ({staged.size} bytes)" if staged else "none"
        )
        registration = self.server.registry.get(self.endpoint)
        self.registration_label.value = (
            f"/{registration.location} from {_address(registration)}, lt={registration.lifetime}"
            if registration
            else "not registered"
        )
        self._update_buttons()

    def _update_buttons(self) -> None:
        firmware = self.device.firmware
        machine = firmware.machine if firmware is not None else None
        state = machine.state.name if machine is not None else "(not booted)"

        def accepts(event_type: type[Event]) -> bool:
            return machine is not None and machine.transition_for(event_type) is not None

        checks: list[tuple[widgets.Button, bool, str]] = [
            (self.push_button, accepts(PackageWriteStarted), "write the package into /5/0/0"),
            (self.pull_coap_button, accepts(PackageUriWritten), "write a coap:// URI to /5/0/1"),
            (self.pull_http_button, accepts(PackageUriWritten), "write an http:// URI to /5/0/1"),
            (self.update_button, accepts(UpdateExecuted), "Execute /5/0/2 Update"),
            (self.cancel_button, accepts(CancelExecuted), "Execute /5/0/10 Cancel"),
            (self.reset_button, accepts(PackageUriEmptied), "write an empty Package URI /5/0/1"),
            (self.reboot_button, firmware is not None, "Execute /3/0/4 Reboot"),
        ]
        for button, ok, what in checks:
            needs_package = button in self.buttons[:3]
            if needs_package and self.package is None:
                button.disabled = True
                button.tooltip = f"{what} — no package: DevicePanel(server, device, package)"
                continue
            verdict = "" if ok else f" — the device refuses this in {state} (4.05)"
            button.tooltip = what + verdict
            button.disabled = self.guard and not ok

    def _begin_transfer(self, kind: str) -> int:
        total = len(bytes(self._need_package()))
        self.progress.max = max(total, 1)
        self.progress.value = 0
        self.progress_label.value = f"0 of {total} bytes ({kind})"
        return total

    def _show_received(self, total: int, kind: str) -> int:
        """Show the bytes the device's handlers have received (its download's chunks)."""
        received = sum(chunk.length for chunk in self.device.timeline)
        self.progress.value = min(received, self.progress.max)
        self.progress_label.value = f"{received} of {total} bytes received by the device ({kind})"
        return received

    def _need_package(self) -> Package | bytes:
        if self.package is None:
            raise ValueError("no package to deliver: DevicePanel(server, device, package)")
        return self.package

    def _status_line(self) -> str:
        firmware = self.device.firmware
        if firmware is None:
            return "the device is not running"
        return (
            f"State {_status_text(firmware.state)}, Update Result {_status_text(firmware.result)}"
        )

    # -- the actions (each runs as a background task) -------------------------------------------

    async def _push(self) -> None:
        package = self._need_package()
        total = self._begin_transfer("push")

        def progress(sent: int, size: int) -> None:
            self.progress.max = max(size, 1)
            self.progress.value = sent
            self.progress_label.value = f"{sent} of {size} bytes acknowledged (push)"

        self.log(f"Push: writing {total} bytes into /5/0/0, {self.block_size}-byte blocks")
        blocks = await self.server.push_firmware(
            self.endpoint, package, block_size=self.block_size, progress=progress
        )
        self.log(f"Push: {blocks} blocks acknowledged; {self._status_line()}")

    async def _pull_coap(self) -> None:
        await self._pull("coap")

    async def _pull_http(self) -> None:
        await self._pull("http")

    async def _pull(self, via: Literal["coap", "http"]) -> None:
        package = self._need_package()
        kind = f"pull via {via}"
        total = self._begin_transfer(kind)
        downloads = len(self.device.downloads)
        uri = await self.server.pull_firmware(self.endpoint, package, via=via)
        self.log(f"Pull: wrote Package URI {uri}; the device downloads it")
        try:
            async with asyncio.timeout(self.timeout):
                while True:  # sample the device's progress until State leaves DOWNLOADING
                    self._changed.clear()
                    self._show_received(total, kind)
                    firmware = self.device.firmware
                    if firmware is None or firmware.state is not State.DOWNLOADING:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), self.sample_interval)
        except TimeoutError:
            raise TimeoutError(
                f"still downloading after {self.timeout:g} s (the download goes on: Cancel or "
                "Reset stops it)"
            ) from None
        firmware = self.device.firmware
        failed = firmware is None or firmware.state is not State.DOWNLOADED
        detail = ""  # what the device's downloader says about this pull, if it ran
        for how in self.device.downloads[downloads:]:
            if isinstance(how, DownloadOutcome):
                detail = (
                    f" ({how.bytes_received} bytes in {how.blocks} blocks, {how.retries} retries)"
                )
            else:
                detail = f" ({how})"
        self.log(f"Pull: the download ended{detail}: {self._status_line()}", error=failed)

    async def _update(self) -> None:
        await self._execute_and_reboot("/5/0/2", "Update")
        firmware = self.device.firmware
        ok = firmware is not None and firmware.result is UpdateResult.SUCCESS
        self.log(
            f"Update: running {self.version_label.value} after the reboot; {self._status_line()}",
            error=not ok,
        )

    async def _reboot(self) -> None:
        await self._execute_and_reboot("/3/0/4", "Reboot")
        self.log(f"Reboot: running {self.version_label.value}; {self._status_line()}")

    async def _execute_and_reboot(self, path: str, label: str) -> None:
        """Execute ``path``; then wait until the device has rebooted and registered again."""
        future: asyncio.Future[Registration] = asyncio.get_running_loop().create_future()
        self._reregistered.append(future)  # before the Execute: the Register may come quickly
        try:
            await self.server.execute(self.endpoint, path)
            self.log(f"{label}: executed {path}; the device answered 2.04 and reboots")
            try:
                async with asyncio.timeout(self.timeout):
                    await future
            except TimeoutError:
                raise TimeoutError(
                    f"{self.endpoint!r} did not register again within {self.timeout:g} s"
                ) from None
        finally:
            self._reregistered.remove(future)
            future.cancel()

    async def _cancel(self) -> None:
        await self.server.execute(self.endpoint, "/5/0/10")
        self.log(f"Cancel: executed /5/0/10; {self._status_line()}")

    async def _reset(self) -> None:
        await self.server.write(self.endpoint, "/5/0/1", "")
        self.log(f"Reset: wrote an empty Package URI; {self._status_line()}")

    def close(self) -> None:
        for future in self._reregistered:
            future.cancel()
        super().close()


def _address(registration: Registration) -> str:
    return str(getattr(registration.address, "hostinfo", None) or registration.address)


# -- ServerPanel --------------------------------------------------------------------------------


class ServerPanel(_Panel):
    """A live table of a server's registrations, with the /5 status where the server knows it.

    The table changes on every Register, Update, De-register and expiry. The /5 columns come
    from a device's LwM2M Send (a device sends State and Result after it reboots) or from the
    *Read /5* button (``await panel.refresh()``), which reads /5/0/3 and /5/0/5 of every
    registered device once; "known from" says which, and when.
    """

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server
        #: endpoint → (the last /5 status the server heard, how and when it heard it)
        self.status: dict[str, tuple[FirmwareStatus, str]] = {}
        self.table = widgets.HTML()
        self.refresh_button = widgets.Button(
            description="Read /5 State and Result",
            icon="refresh",
            tooltip="read /5/0/3 and /5/0/5 of every registered device, once",
            layout=widgets.Layout(width="max-content"),
        )
        self.refresh_button.on_click(self._on_click("Read /5", self.refresh))
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<b>Server {html.escape(server.uri)}</b> — registered devices"),
                self.table,
                self.refresh_button,
                self.log_widget,
            ]
        )
        self._unsubscribe.append(server.add_listener(self._on_registration))
        server.send_listeners.append(self._on_send)
        self._unsubscribe.append(lambda: _discard(server.send_listeners, self._on_send))
        self.render()

    def _on_registration(self, event: RegistrationEvent) -> None:
        try:
            endpoint = event.registration.endpoint
            if event.kind is not EventKind.UPDATED:
                self.status.pop(endpoint, None)  # a new boot, or gone: what we knew is stale
                registered = event.kind is EventKind.REGISTERED
                where = f" at /{event.registration.location}" if registered else ""
                self.log(f"{endpoint} {event.kind.value}{where}")
            self.render()
        except Exception as exc:
            self.log(f"the panel failed to show {event.kind.value}: {exc!r}", error=True)

    def _on_send(self, report: SentValues) -> None:
        try:
            state, result = report.values.get(STATE_PATH), report.values.get(RESULT_PATH)
            if state is None or result is None:
                return
            status = FirmwareStatus(State(state), UpdateResult(result))
            self.status[report.endpoint] = (status, f"Send at {time.strftime('%H:%M:%S')}")
            self.render()
        except Exception as exc:
            self.log(f"the panel failed to show a Send from {report.endpoint}: {exc!r}", error=True)

    async def refresh(self) -> None:
        """Read /5/0/3 and /5/0/5 of every registered device once; errors go to the log."""

        async def one(endpoint: str) -> None:
            try:
                status = await self.server.firmware_status(endpoint)
            except Exception as exc:
                self.log(f"{endpoint}: {exc}", error=True)
                return
            self.status[endpoint] = (status, f"read at {time.strftime('%H:%M:%S')}")

        await asyncio.gather(*(one(endpoint) for endpoint in self.server.endpoints))
        self.render()

    def render(self) -> None:
        """Redraw the table from the server's registry and the known statuses."""
        if self._closed:
            return
        headers = ("endpoint", "address", "lifetime", "binding", "objects")
        headers += ("/5 State", "/5 Update Result", "known from")
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in headers)
        rows = []
        for registration in self.server.registry.registrations:
            known = self.status.get(registration.endpoint)
            objects = " ".join(
                f"/{oid}" + (f" v{obj.version}" if obj.version else "")
                for oid, obj in registration.objects.items()
            )
            cells = (
                registration.endpoint,
                _address(registration),
                f"{registration.lifetime} s" if registration.lifetime else "never expires",
                registration.binding
                + (
                    " (queue mode)"
                    if "Q" not in registration.binding and registration.queue_mode
                    else ""
                ),
                objects or "none",
                _status_text(known[0].state) if known else "?",
                _status_text(known[0].result) if known else "?",
                known[1] if known else "not heard yet",
            )
            tds = "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in cells)
            rows.append(f"<tr>{tds}</tr>")
        if not rows:
            rows.append(f"<tr><td colspan='{len(headers)}'>no device registered</td></tr>")
        self.table.value = f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _discard(items: list[Any], item: Any) -> None:
    if item in items:
        items.remove(item)
