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

Flash time is modeled (``device.clock``): a download's erase and program operations advance
the device's modeled clock and leave a timeline for the plots, without slowing the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import Callable, Iterable

from .bootloader import Bootloader, BootReport
from .client import Client
from .dm import DataModel
from .download import DownloadError, DownloadOutcome, download
from .flash import EmulatedFlash, FlashProfile, ModeledClock
from .flash_handlers import FlashFirmwareHandlers
from .fota import Protocol, State, UpdateResult
from .objects.base import SingleInstance
from .objects.device import DeviceObject
from .objects.firmware import FirmwareObject
from .objects.security import SecurityObject
from .objects.server import ServerObject
from .package import Package, PackageInfo
from .paths import Path

__all__ = ["DEFAULT_DEVICE_TYPE", "EmulatedDevice", "factory_package"]

DEFAULT_DEVICE_TYPE = "lwm2m-edu-demo"
SHORT_SERVER_ID = 1


def factory_package(
    version: str = "1.0.0", *, size: int = 16 * 1024, device_type: str = DEFAULT_DEVICE_TYPE
) -> Package:
    """A deterministic firmware image to start from (or to update to), ``size`` bytes."""
    seed = f"lwm2m_edu firmware {version} ".encode()
    image = (seed * (size // len(seed) + 1))[:size]
    return Package.build(image, name="app", version=version, device_type=device_type)


class EmulatedDevice:
    """A firmware-updatable LwM2M device in this process.

    ``flash`` names a profile of ``flash.FLASH_PROFILES`` (or is a ``FlashProfile``);
    ``firmware`` is the factory image (a ``Package``; default: ``factory_package("1.0.0")``).
    ``push`` and ``protocols`` choose the delivery methods /5/0/9 and /5/0/8 announce.
    ``log`` receives one line per request served and per State/Update Result change.
    ``queue_mode`` makes it a sleepy device: reachable only ``awake_time`` seconds after each
    exchange (registering with ``Q``), until its next registration Update.
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
    ) -> None:
        self.endpoint = endpoint
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
        self.log = log or (lambda line: None)
        self.server_uri: str | None = None
        self.boots: list[BootReport] = []
        self.client: Client | None = None
        self.handlers: FlashFirmwareHandlers | None = None
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
        report = self.bootloader.boot()
        self.boots.append(report)
        self.log(f"{self.endpoint}: boot: {report}")
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

    async def stop(self) -> None:
        """De-register and stop (the device is switched off cleanly)."""
        rebooting = self._rebooting
        if rebooting is not None and rebooting is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await rebooting  # let a reboot in progress finish first
        await self._shutdown(deregister=True)

    async def reboot(self) -> None:
        """Power-cycle: go silent without de-registering, boot, register again."""
        await self._shutdown(deregister=False)
        await self.start(self.server_uri)
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
        handlers = FlashFirmwareHandlers(
            self.bootloader, start_download=self._start_download if self.protocols else None
        )
        if self.handlers is not None:  # RAM is lost on reboot, but keep the last download's
            handlers.timeline = self.handlers.timeline  # timing for the plots

        firmware = FirmwareObject(
            handlers, push=self.push, protocols=self.protocols, version=self.object_version
        )
        handlers.attach(firmware)
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
        self.data_model = DataModel([security, server, device, SingleInstance(firmware)])
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
            self._rebooting = asyncio.get_running_loop().create_task(self.reboot())

    # -- pull -------------------------------------------------------------------------------------

    def _start_download(self, uri: str) -> UpdateResult:
        task = asyncio.get_running_loop().create_task(self._download(uri))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return UpdateResult.SUCCESS

    async def _download(self, uri: str) -> None:
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
