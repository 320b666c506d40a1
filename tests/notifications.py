"""A test helper: every notification of a server-side observation, queued as it arrives.

A test that does something else while a device notifies must not miss a notification, and one
that decodes badly (a junk payload) must not end the stream: each is queued, the error too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

TIMEOUT = 5.0


class Notifications(asyncio.Queue):
    async def next(self, timeout: float = TIMEOUT) -> Any:
        item = await asyncio.wait_for(self.get(), timeout)
        if isinstance(item, Exception):
            raise item
        return item


@contextlib.asynccontextmanager
async def notifications(observation: Any) -> AsyncIterator[Notifications]:
    """Every notification of ``observation`` (or the exception it raised), queued."""
    queue = Notifications()

    async def feed() -> None:
        while True:
            try:
                queue.put_nowait(await observation.__anext__())
            except StopAsyncIteration:
                return
            except Exception as error:  # e.g. LwM2MError for a final 4.04, CodecError
                queue.put_nowait(error)

    feeder = asyncio.create_task(feed())
    try:
        yield queue
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await observation.cancel()
