"""The long-running commands: demo, client and server, driven in-process."""

import asyncio
import io
import socket

import pytest

from lwm2m_edu.cli import main
from lwm2m_edu.device import factory_package
from lwm2m_edu.terminal import ProgressBar, run_client, run_demo, run_server


async def test_the_demo_runs_a_push_and_a_pull_update_to_the_end():
    out = io.StringIO()
    assert await run_demo(size=8 * 1024, out=out) is True
    text = out.getvalue()
    assert "1. A push update to 2.0.0" in text and "2. A pull update to 3.0.0" in text
    assert text.count("State IDLE/SUCCESS") == 2
    assert text.rstrip().endswith("Both updates ended in State 0 (Idle) with Update Result 1.")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_the_server_command_updates_a_device_that_registers_and_only_once():
    port = free_udp_port()
    lines: list[str] = []
    updated = asyncio.Event()

    def say(line: str) -> None:
        lines.append(line)
        if "updated (push)" in line:
            updated.set()

    firmware = bytes(factory_package("2.0.0", size=4096))
    server = asyncio.ensure_future(
        run_server(port=port, firmware=firmware, say=say, until=updated.wait)
    )
    client_done = asyncio.Event()
    client = asyncio.ensure_future(
        run_client(f"coap://127.0.0.1:{port}", "cli-dev", say=say, until=client_done.wait)
    )
    outcomes = await server
    client_done.set()
    await client
    assert [o.ok for o in outcomes] == [True]
    assert any("cli-dev: registered" in line for line in lines)
    assert any("running firmware 1.0.0" in line for line in lines)


def test_the_progress_bar_prints_quarters_when_not_on_a_terminal():
    out = io.StringIO()
    bar = ProgressBar("push", out=out)
    for done in range(0, 1025, 64):
        bar(done, 1024)
    lines = out.getvalue().splitlines()
    assert [line.split("]")[1].split("%")[0].strip() for line in lines] == [
        "0", "25", "50", "75", "100",
    ]  # fmt: skip


def test_the_command_line_names_the_long_running_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("client", "server", "demo", "package", "decode", "model"):
        assert command in text
