"""An emulated device: an LwM2M client on emulated flash, with a bootloader and real reboots.

``EmulatedDevice`` puts every piece of the package together the way a real device does::

    ┌──────────────────────────── EmulatedDevice "dev-1" ───────────────────────────────┐
    │  Client (UDP socket) ── DataModel: /0 Security  /1 Server  /3 Device  /5 Firmware │
    │                                                                  │                │
    │                                    FlashFirmwareHandlers ◄───────┘                │
    │                                     │ stream a package into the staging slot      │
    │   downloader (pull) ────────────────┤ persist every State/Result change           │
    │                                     ▼                                             │
    │                          Bootloader on EmulatedFlash: record │ slot A │ slot B    │
    └───────────────────────────────────────────────────────────────────────────────────┘

``await device.start(server.uri)`` boots (the bootloader verifies and runs the active image),
builds the objects, and registers. When the server executes Update, the device answers 2.04,
then reboots: the client goes silent (no De-register — the power goes), the bootloader installs
the staged package, and the client registers again, now reporting the new firmware version in
/3/0/3 and Idle + Update Result 1 in /5 (it also *Sends* them, so the server learns at once).

**Deferral.** A user who defers an update (Update Result 11) has until the Maximum Defer Period
runs out; then the device installs by itself. The deadline is kept in the FOTA record with the
State, so it survives a reboot or a power cut: at each start the device takes it back from the
record and waits only for the time that is *left* on its wall clock (``clock``, injectable), or
installs at once — right after registering — if the deadline passed while it was off.

Flash time is modeled (``device.clock``): a download's erase and program operations advance
the device's modeled clock and leave a timeline for the plots, without slowing the network.

**Power cuts.** ``device.cut_power(at_operation=n)`` (or ``at_time=t``, modeled seconds; no
argument: now) schedules a cut on the flash. The flash operation it hits is torn and raises
``flash.PowerLoss`` wherever the device happens to be: serving a request (a push block, the
UPDATING record an Execute writes), in a background download, or in the bootloader. The device
then dies as a real one does: the request in hand is never answered, the client stops at once
without a De-register (a dead device is silent), the background tasks end. Then, unless
``restart_after_power_loss=False``, the power comes back: the flash is powered on, the bootloader
boots (finishing or undoing whatever the cut interrupted, and surviving a cut during the boot
itself) and the device registers again. Each loss is kept in ``device.power_losses`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import Callable, Iterable

from .bootloader import Bootloader, BootReport
from .client import Client, no_log
from .coap import udp_transport
from .dm import DataModel
from .download import DownloadError, DownloadOutcome, download
from .flash import EmulatedFlash, FlashProfile, ModeledClock, PowerLoss
from .flash_handlers import FlashFirmwareHandlers
from .fota import Protocol, Severity, State, Step, UpdateResult
from .objects.base import SingleInstance
from .objects.device import DeviceObject
from .objects.firmware import FirmwareObject
from .objects.security import SecurityObject
from .objects.server import ServerObject
from .package import Package, PackageInfo
from .paths import Path

__all__ = ["DEFAULT_DEVICE_TYPE", "DeviceHandlers", "EmulatedDevice", "factory_package"]

DEFAULT_DEVICE_TYPE = "lwm2m-edu-demo"
SHORT_SERVER_ID = 1


def factory_package(
    version: str = "1.0.0", *, size: int = 16 * 1024, device_type: str = DEFAULT_DEVICE_TYPE
) -> Package:
    """A deterministic firmware image to start from (or to update to), ``size`` bytes."""
    seed = f"lwm2m_edu firmware {version} ".encode()
    image = (seed * (size // len(seed) + 1))[:size]
    return Package.build(image, name="app", version=version, device_type=device_type)


class DeviceHandlers(FlashFirmwareHandlers):
    """The reference handlers with two traits of a particular device.

    ``ram_budget``: the receive buffer holds that many bytes; every block (pushed, or a piece of
    a pull) is copied there before it is written to flash, so a larger one can't be received and
    is refused with Update Result 3 (out of RAM). ``defer``: a user who answers "later" whenever
    an update may be deferred (Object /5 1.1, a Maximum Defer Period > 0, not critical): Update
    Result 11, and the update starts by itself when the period runs out.

    ``stop_download`` is called when the package is discarded (Cancel, or a reset by the
    server): a pull still running must stop, or its next piece would land in a staging slot
    nobody is receiving into any more.
    """

    def __init__(
        self, bootloader: Bootloader, *, ram_budget: int | None = None, defer: bool = False,
        stop_download: Callable[[], None] | None = None, **options,
    ) -> None:  # fmt: skip
        super().__init__(bootloader, **options)
        self.ram_budget = ram_budget
        self.defer = defer
        self.stop_download = stop_download

    def reset(self) -> None:
        super().reset()
        if self.stop_download is not None:
            self.stop_download()

    def write_chunk(self, chunk: bytes) -> UpdateResult:
        if self.ram_budget is not None and len(chunk) > self.ram_budget:
            return UpdateResult.OUT_OF_RAM
        return super().write_chunk(chunk)

    def defer_update(self, severity: Severity) -> bool:
        return self.defer


class _Unanswered(asyncio.CancelledError):
    """Ends the handling of a request the device was serving when its power failed: a dead
    device answers nothing. It is a ``CancelledError`` because aiocoap answers 5.00 to any
    ``Exception`` a resource raises, but lets a cancelled request go without a word."""


class _Powered:
    """Around work that touches the flash while serving a request: a power loss kills the
    device, and the request stays unanswered. One instance serves every request: a class
    rather than a ``contextmanager`` generator, which would be built anew for each push block."""

    def __init__(self, device: EmulatedDevice) -> None:
        self.device = device

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if isinstance(error, PowerLoss):
            self.device._power_lost(error)
            raise _Unanswered(f"{self.device.endpoint} lost power") from None


class _DeviceDataModel(DataModel):
    """The data model of a device whose flash may lose power while it serves a request."""

    def __init__(self, objects: Iterable, *, powered: _Powered) -> None:
        super().__init__(objects)
        self._powered = powered

    def handle(self, request, now, **options):  # type: ignore[override]
        with self._powered:
            return super().handle(request, now, **options)


class _DeviceFirmware(FirmwareObject):
    """Object /5 whose streamed push blocks (which bypass ``DataModel.handle``) may meet a power
    cut too."""

    def __init__(self, handlers: object, *, powered: _Powered, **options) -> None:
        super().__init__(handlers, **options)
        self._powered = powered

    def write_package(self, chunk: bytes, *, offset: int, last: bool, now: float):
        with self._powered:
            return super().write_package(chunk, offset=offset, last=last, now=now)


class EmulatedDevice:
    """A firmware-updatable LwM2M device in this process.

    ``flash`` names a profile of ``flash.FLASH_PROFILES`` (or is a ``FlashProfile``);
    ``firmware`` is the factory image (a ``Package``; default: ``factory_package("1.0.0")``).
    ``push`` and ``protocols`` choose the delivery methods /5/0/9 and /5/0/8 announce.
    ``log`` receives one line per request served and per State/Update Result change.
    ``queue_mode`` makes it a sleepy device: reachable only ``awake_time`` seconds after each
    exchange (registering with ``Q``), until its next registration Update.

    Faults to teach with: ``cut_power()`` (see the module doc; ``restart_after_power_loss``
    says whether the power comes back by itself), ``self_test`` (a new image that fails to start:
    result 8), ``ram_budget`` (blocks larger than that many bytes: result 3) and
    ``defer_update`` (the user defers every deferrable update: result 11).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        flash: str | FlashProfile = "nrf52840-internal",
        firmware: Package | None = None,
        device_type: str = DEFAULT_DEVICE_TYPE,
        verify_key=None,
        self_test: Callable[[PackageInfo], bool] | None = None,
        push: bool = True,
        protocols: Iterable[Protocol] = (Protocol.COAP, Protocol.HTTP),
        object_version: str = "1.1",
        lifetime: int = 300,
        queue_mode: bool = False,
        awake_time: float = 93.0,
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
        restart_after_power_loss: bool = True,
        ram_budget: int | None = None,
        defer_update: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.restart_after_power_loss = restart_after_power_loss
        self.ram_budget = ram_budget
        self.defer_update = defer_update
        self.clock = ModeledClock()
        self.flash = EmulatedFlash(flash, self.clock)
        self.bootloader = Bootloader(
            self.flash, device_type=device_type, verify_key=verify_key, self_test=self_test
        )
        self.bootloader.provision(firmware or factory_package(device_type=device_type))
        self.push = push
        self.protocols = tuple(protocols)
        self.object_version = object_version
        self.lifetime = lifetime
        self.queue_mode, self.awake_time = queue_mode, awake_time
        self.host = host
        self.wall_clock = clock
        self.log = log or no_log
        self.server_uri: str | None = None
        self.boots: list[BootReport] = []
        self.client: Client | None = None
        self.handlers: DeviceHandlers | None = None
        self.firmware: FirmwareObject | None = None
        self.data_model: DataModel | None = None
        #: keyword options for ``download.download`` (``retries``, ``retry_delay``, ``timeout``,
        #: ``block_size``): how hard a pull tries before it reports Update Result 4
        self.download_options: dict[str, float | int] = {}
        #: how each pull went: a ``DownloadOutcome`` or the ``DownloadError`` that ended it
        self.downloads: list[DownloadOutcome | DownloadError] = []
        self._tasks: set[asyncio.Task] = set()
        self._rebooting: asyncio.Task | None = None
        self.rebooted = asyncio.Event()
        #: called with the device after every boot, once the new client and objects exist and
        #: before the client opens its socket: a ``trace.Trace`` re-attaches itself here
        self.on_boot: list[Callable[[EmulatedDevice], None]] = []
        #: every power cut the device went through, in order (the torn flash operation is in
        #: ``.operation``; ``None`` if the power was found off before an operation started)
        self.power_losses: list[PowerLoss] = []
        #: set while a power loss keeps the device off (its client stopped, nothing answers)
        self.powered_off = asyncio.Event()
        self._power_failed = False  # a loss since the last power-on (later ones are echoes)
        self._boot_pending = False  # a reboot is scheduled and has not booted yet
        self._powered = _Powered(self)
        self._downloading: asyncio.Task | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def running(self) -> PackageInfo:
        """The firmware the device runs now."""
        if not self.boots:
            raise RuntimeError(f"{self.endpoint} has not booted yet: await device.start(uri)")
        return self.boots[-1].image

    @property
    def timeline(self):
        """Per-chunk timing of the last download (``flash_handlers.ChunkTiming``)."""
        return self.handlers.timeline if self.handlers else []

    async def start(
        self, server_uri: str | None = None, *, bootstrap_uri: str | None = None
    ) -> None:
        """Boot and register with ``server_uri``; returns once registered.

        A factory-fresh device may instead be given only its Bootstrap-Server
        (``bootstrap_uri``): it asks there which server to use, then registers with it. The
        configuration it receives survives reboots (a real device keeps /0 and /1 in flash).
        """
        report = self._boot()
        if report is None:  # the power failed during the boot and stays off
            return
        self.server_uri = server_uri or self.server_uri
        self._build(bootstrap_uri=None if self.server_uri else bootstrap_uri)
        assert self.client is not None
        if self.server_uri is None:
            await self.client.start(bootstrap_uri=bootstrap_uri)
            self.server_uri = self.client.server_uri
        else:
            await self.client.start(self.server_uri)
        if report.record.result is not UpdateResult.INITIAL:
            # Tell the server at once how the update ended (LwM2M 1.1 Send).
            with contextlib.suppress(Exception):
                await self.client.send([Path(5, 0, 3), Path(5, 0, 5), Path(3, 0, 3)])
        self._resume_deferral()

    async def stop(self) -> None:
        """De-register and stop (the device is switched off cleanly)."""
        # Let a reboot in progress finish first (a power cut may replace it with another).
        while (rebooting := self._rebooting) is not None and not rebooting.done():
            if rebooting is asyncio.current_task():
                break
            await asyncio.wait([rebooting])
        await self._shutdown(deregister=True)

    async def reboot(self) -> None:
        """Power-cycle: go silent without de-registering, boot, register again."""
        await self._shutdown(deregister=False)
        await self.start(self.server_uri)
        if self.client is not None:
            self.rebooted.set()

    def _boot(self) -> BootReport | None:
        """Power the flash on and run the bootloader, again after each power cut during the boot
        (unless the power is to stay off: then None)."""
        self._boot_pending = False
        while True:
            if not self.flash.powered:
                self.flash.power_on()
            self._power_failed = False
            self.powered_off.clear()
            try:
                report = self.bootloader.boot()
            except PowerLoss as loss:
                self._record_power_loss(loss, "during the boot")
                if not self.restart_after_power_loss:
                    self.powered_off.set()
                    return None
                continue
            self.boots.append(report)
            self.log(f"{self.endpoint}: boot: {report}")
            return report

    # -- power cuts -------------------------------------------------------------------------------

    def cut_power(self, at_operation: int | None = None, at_time: float | None = None) -> None:
        """Cut the power at flash operation number ``at_operation`` (``flash.operation_count``
        counts them) or at the modeled instant ``at_time`` (``device.clock``), whichever comes
        first; with neither, pull the plug now."""
        if at_operation is None and at_time is None:
            self.flash.cut_power()
            if self.client is None:  # not running: it stays off until started
                return
            now = self.clock.now
            self._power_lost(PowerLoss(f"power cut at t={now:.6g} s", time=now, operation=None))
            return
        self.flash.cut_power(at_time=at_time, at_operation=at_operation)

    def _record_power_loss(self, loss: PowerLoss, where: str) -> bool:
        if self._power_failed:
            return False  # the same outage, met again by other work
        self._power_failed = True
        self.power_losses.append(loss)
        self.log(f"{self.endpoint}: power lost {where}: {loss}")
        return True

    def _power_lost(self, loss: PowerLoss, where: str = "") -> None:
        """The device dies: deaf at once, then silent (no answer, no De-register), then, when the
        power comes back, it boots and registers again."""
        if not self._record_power_loss(loss, where or "while serving a request"):
            return
        client = self.client
        transport = udp_transport(client.context) if client and client.context else None
        if transport is not None:  # the radio dies with the power: hear nothing from now on
            sock = transport.get_extra_info("socket")
            asyncio.get_running_loop().remove_reader(sock.fileno())
        if self._boot_pending:
            return  # a reboot is coming; its boot powers the flash on again
        self._boot_pending = True
        self.rebooted.clear()
        previous = self._rebooting
        self._rebooting = asyncio.get_running_loop().create_task(self._die(previous))

    async def _die(self, previous: asyncio.Task | None) -> None:
        if previous is not None and not previous.done():  # what the device was starting up
            previous.cancel()  # to do dies with it
            await asyncio.wait([previous])
        await self._shutdown(deregister=False)
        if not self.restart_after_power_loss:
            self.powered_off.set()
            return
        await self.start(self.server_uri)
        if self.client is not None:
            self.rebooted.set()

    async def _shutdown(self, *, deregister: bool) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.client is not None:
            await self.client.stop(deregister=deregister)
            self.client = None

    async def __aenter__(self) -> EmulatedDevice:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the objects ------------------------------------------------------------------------------

    def _build(self, *, bootstrap_uri: str | None = None) -> None:
        handlers = DeviceHandlers(
            self.bootloader, start_download=self._start_download if self.protocols else None,
            ram_budget=self.ram_budget, defer=self.defer_update, stop_download=self._stop_download,
        )  # fmt: skip
        if self.handlers is not None:  # RAM is lost on reboot, but keep the last download's
            handlers.timeline = self.handlers.timeline  # timing for the plots

        firmware = _DeviceFirmware(
            handlers, push=self.push, protocols=self.protocols, version=self.object_version,
            powered=self._powered,
        )  # fmt: skip
        handlers.attach(firmware)
        firmware.observers.append(self._deferral_timer)
        firmware.observers.append(
            lambda step: self.log(
                f"{self.endpoint}: State {step.state.value} {step.state.name}, "
                f"Update Result {step.result.value} {step.result.name}"
            )
        )
        security = SecurityObject()
        server = ServerObject(on_update_trigger=lambda ssid: self._request_update())
        if bootstrap_uri is not None:  # factory-fresh: only the Bootstrap-Server is known
            security.add_bootstrap_server(bootstrap_uri)
        else:
            security.add_server(self.server_uri or "", SHORT_SERVER_ID)
            server.add(SHORT_SERVER_ID, self.lifetime)
        device = DeviceObject(
            manufacturer="lwm2m_edu",
            model=self.flash.profile.name,
            serial=self.endpoint,
            firmware_version=lambda: self.running.version,
            on_reboot=self._schedule_reboot,
            queue_mode=self.queue_mode,
        )
        self.handlers, self.firmware = handlers, firmware
        self.data_model = _DeviceDataModel(
            [security, server, device, SingleInstance(firmware)], powered=self._powered
        )
        self.client = Client(
            self.endpoint, self.data_model, lifetime=self.lifetime, host=self.host,
            queue_mode=self.queue_mode, awake_time=self.awake_time, clock=self.wall_clock,
            log=self.log,
        )  # fmt: skip
        self.client.after_response.append(self._after_response)
        for hook in list(self.on_boot):
            hook(self)

    def _request_update(self) -> None:
        if self.client is not None:
            self.client.request_update()

    def _after_response(self) -> None:
        # The Execute of /5/0/2 has been answered; now the device may go away and install.
        if self.handlers is not None and self.handlers.reboot_requested:
            self.handlers.reboot_requested = False
            self._schedule_reboot()

    def _schedule_reboot(self) -> None:
        if self._rebooting is None or self._rebooting.done():
            self.rebooted.clear()
            self._boot_pending = True
            self._rebooting = asyncio.get_running_loop().create_task(self.reboot())

    # -- deferral ---------------------------------------------------------------------------------

    def _deferral_timer(self, step: Step) -> None:
        """The user deferred the update: install it by itself when Maximum Defer Period ends.

        The deadline is already in the FOTA record (``FlashFirmwareHandlers.on_step`` wrote it
        with this step): this timer is only the RAM half, and ``_resume_deferral`` rebuilds it
        after a reboot."""
        firmware = self.firmware
        if firmware is None or step.result is not UpdateResult.DEFERRED:
            return
        deadline = firmware.machine.defer_deadline
        if deadline is not None:
            self._start_deferral_timer(deadline)

    def _resume_deferral(self) -> None:
        """After a boot: a deferred update the record brought back gets its timer again, for the
        time left until its deadline (none if the deadline passed while the device was off)."""
        firmware = self.firmware
        if firmware is None or firmware.result is not UpdateResult.DEFERRED:
            return
        deadline = firmware.machine.defer_deadline  # restored from the record by attach()
        if deadline is not None:
            self._start_deferral_timer(deadline)

    def _start_deferral_timer(self, deadline: float) -> None:
        left = max(0.0, deadline - self.wall_clock())
        self.log(
            f"{self.endpoint}: the deferred update installs by itself in {left:g} s "
            f"(at t = {deadline:g} s)"
        )
        self._spawn(self._install_when_deferral_ends(deadline, left))

    async def _install_when_deferral_ends(self, deadline: float, left: float) -> None:
        await asyncio.sleep(left)
        # A boot still finishing (this timer may start at its very end) comes first: the reboot
        # to install is scheduled only when no other one is under way.
        while (rebooting := self._rebooting) is not None and not rebooting.done():
            await asyncio.wait([rebooting])
        firmware, handlers = self.firmware, self.handlers
        if firmware is None or handlers is None:
            return
        try:
            firmware.expire(max(deadline, self.wall_clock()))
        except PowerLoss as loss:
            self._power_lost(loss, "as the deferred update started")
            return
        self._after_response()  # Updating: reboot to install

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- pull -------------------------------------------------------------------------------------

    def _start_download(self, uri: str) -> UpdateResult:
        self._downloading = self._spawn(self._download(uri))
        return UpdateResult.SUCCESS

    def _stop_download(self) -> None:
        """The server cancelled or reset the update: a pull in progress ends here."""
        task = self._downloading
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        result = self.firmware.result if self.firmware else UpdateResult.CANCELLED
        stopped = DownloadError(result, "the server discarded the package; the download stopped")
        self.downloads.append(stopped)
        self.log(f"{self.endpoint}: download stopped: {stopped}")

    async def _download(self, uri: str) -> None:
        try:
            await self._pull(uri)
        except PowerLoss as loss:
            self._power_lost(loss, "during a download")

    async def _pull(self, uri: str) -> None:
        handlers, firmware, client = self.handlers, self.firmware, self.client
        assert handlers is not None and firmware is not None and client is not None
        try:
            outcome = await download(
                uri, handlers.write_chunk, coap_context=client.context,
                on_restart=lambda: handlers.begin(uri), **self.download_options,
            )  # fmt: skip
        except DownloadError as error:
            self.downloads.append(error)
            self.log(f"{self.endpoint}: download failed: {error}")
            if firmware.state is State.DOWNLOADING:
                firmware.download_failed(error.result, self.wall_clock())
            return
        self.downloads.append(outcome)
        result = handlers.finish()
        if firmware.state is not State.DOWNLOADING:  # cancelled or reset meanwhile
            return
        if result is UpdateResult.SUCCESS:
            firmware.download_finished(self.wall_clock())
        else:
            firmware.download_failed(result, self.wall_clock())

    def __repr__(self) -> str:
        version = self.running.version if self.boots else "not booted"
        state = self.firmware.state.name if self.firmware else "-"
        return f"<EmulatedDevice {self.endpoint!r} firmware {version}, /5 {state}>"

    def _repr_html_(self) -> str:
        """Endpoint, running firmware, /5 State and Update Result and the flash, as a table."""
        running = f"{self.running.name} {self.running.version}" if self.boots else "not booted"
        staged = self.handlers.staged if self.handlers else None
        status = "-", "-"
        if self.firmware is not None:
            state, result = self.firmware.state, self.firmware.result
            status = f"{state.value} {state.name}", f"{result.value} {result.name}"
        profile = self.flash.profile
        rows = [
            ("endpoint", self.endpoint),
            ("server", (self.server_uri or "none") + ("" if self.client else " (not running)")),
            ("running firmware", f"{running} (boot {len(self.boots)})"),
            ("staged package", f"{staged.name} {staged.version}" if staged else "none"),
            ("State (/5/0/3)", status[0]),
            ("Update Result (/5/0/5)", status[1]),
            ("flash", f"{profile.name}: {profile.capacity // 1024} KiB, {len(profile.sectors)} "
                      f"sectors, modeled t = {self.clock.now:.3f} s"),
        ]  # fmt: skip
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
            for k, v in rows
        )
        return f"<table><caption>EmulatedDevice</caption>{body}</table>"
