"""The setup check: is this machine ready for the workshop? (``lwm2m-edu check``, notebook 00)

Each check tries the real thing — import the libraries, run the ``dot`` program, send a CoAP
request over loopback UDP and get the answer, let a background task run — and, when something
is wrong, says exactly what to type to fix it. Nothing here needs the network beyond loopback.
"""

from __future__ import annotations

import asyncio
import html
import importlib
import importlib.metadata
import shutil
import subprocess
import sys
from dataclasses import dataclass

import aiocoap
from aiocoap import Message, resource

from .coap import coap_uri, open_context

__all__ = ["Check", "check_all", "report"]

#: The libraries a workshop uses, with the name pip installs them by.
LIBRARIES = {
    "aiocoap": "aiocoap",
    "aiohttp": "aiohttp",
    "cbor2": "cbor2",
    "cryptography": "cryptography",
    "graphviz": "graphviz",
    "matplotlib": "matplotlib",
    "ipywidgets": "ipywidgets",
    "jupyterlab_widgets": "jupyterlab-widgets",
}

DOT_FIX = (
    "install Graphviz: `sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` "
    "(macOS) or `conda install -c conda-forge graphviz python-graphviz`"
)
REINSTALL_FIX = "run `make lab` (or `pip install -e .`) again from the repository"


@dataclass(frozen=True)
class Check:
    """One check: what was checked, whether it passed, what was seen, and the fix if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        line = f"[{mark}] {self.name}: {self.detail}"
        return line if self.ok else f"{line}\n       fix: {self.fix}"


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info >= (3, 11)
    return Check("Python", ok, version, "use Python 3.11 or newer (`make test PYTHON=python3.11`)")


def check_libraries() -> list[Check]:
    checks = []
    for module, distribution in LIBRARIES.items():
        try:
            importlib.import_module(module)
            version = importlib.metadata.version(distribution)
        except Exception as error:  # an import may fail in many ways; say which
            checks.append(Check(module, False, f"cannot import: {error}", REINSTALL_FIX))
        else:
            checks.append(Check(module, True, version))
    return checks


def check_dot() -> Check:
    dot = shutil.which("dot")
    if dot is None:
        return Check("Graphviz dot", False, "the `dot` program is not on PATH", DOT_FIX)
    try:
        done = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("Graphviz dot", False, f"`dot -V` failed: {error}", DOT_FIX)
    version = (done.stderr or done.stdout).strip()
    return Check("Graphviz dot", done.returncode == 0, version or "no version printed", DOT_FIX)


class _Echo(resource.Resource):
    async def render_get(self, request: Message) -> Message:
        return Message(payload=b"pong")


async def check_coap_loopback(host: str = "127.0.0.1") -> Check:
    """A CoAP GET from one aiocoap context to another, over real UDP on loopback."""
    server = client = None
    try:
        site = resource.Site()
        site.add_resource(["ping"], _Echo())
        server, port = await open_context(site, host)
        client, _ = await open_context(None, host)
        request = Message(code=aiocoap.GET, uri=f"{coap_uri(host, port)}/ping")
        response = await asyncio.wait_for(client.request(request).response, 5)
        ok = response.code == aiocoap.CONTENT and response.payload == b"pong"
        return Check("CoAP over loopback UDP", ok, f"GET coap://{host}:{port}/ping -> "
                     f"{response.code} {response.payload!r}", REINSTALL_FIX)  # fmt: skip
    except Exception as error:
        return Check(
            "CoAP over loopback UDP", False, f"{type(error).__name__}: {error}",
            "check that UDP on 127.0.0.1 is allowed (a firewall or VPN may block it)",
        )  # fmt: skip
    finally:
        for context in (client, server):
            if context is not None:
                await context.shutdown()


async def check_background_tasks() -> Check:
    """A task started and left alone must make progress while we wait."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.get_running_loop().create_task(tick())
    try:
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
    return Check(
        "background tasks", ticks > 1, f"a background task ran {ticks} times in 0.1 s",
        "restart the kernel; if it persists, `pip install 'ipykernel<7'` (see the README)",
    )  # fmt: skip


async def check_all() -> list[Check]:
    """Every check, in the order a workshop needs them."""
    checks = [check_python(), *check_libraries(), check_dot()]
    checks.append(await check_coap_loopback())
    checks.append(await check_background_tasks())
    return checks


def report(checks: list[Check]) -> str:
    """The checks as text, ending with a verdict."""
    failed = [c for c in checks if not c.ok]
    verdict = "All set for the workshop." if not failed else (
        f"{len(failed)} problem(s) to fix before the workshop (see 'fix:' above)."
    )  # fmt: skip
    return "\n".join([*map(str, checks), "", verdict])


def report_html(checks: list[Check]) -> str:
    rows = "".join(
        f"<tr><td>{'✅' if c.ok else '❌'}</td><td>{html.escape(c.name)}</td>"
        f"<td>{html.escape(c.detail)}</td><td>{html.escape(c.fix if not c.ok else '')}</td></tr>"
        for c in checks
    )
    return f"<table><tr><th></th><th>check</th><th>seen</th><th>fix</th></tr>{rows}</table>"
