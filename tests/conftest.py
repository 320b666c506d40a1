"""Run ``async def`` tests without a plugin: each gets a fresh event loop via ``asyncio.run``.

A test that is still running after ``ASYNC_TEST_DEADLINE`` seconds fails instead of hanging
the suite, and one that leaves a task running fails too: tests shut down what they start.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable

import pytest

ASYNC_TEST_DEADLINE = 20.0


async def _run_checked(test: Awaitable[object]) -> None:
    await asyncio.wait_for(test, ASYNC_TEST_DEADLINE)
    leftover = asyncio.all_tasks() - {asyncio.current_task()}
    assert not leftover, f"the test left tasks running: {leftover}"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(_run_checked(pyfuncitem.obj(**arguments)))
    return True
