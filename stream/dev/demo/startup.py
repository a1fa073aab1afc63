"""The demo's start-up, one step at a time: each step under a spinner (a line in plain output),
and Ctrl-C (or SIGTERM) stops start-up between steps, or during an interruptible one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from rich.progress import Progress

from stream.dev.demo.output import Output

__all__ = ["StartUp", "Stopped"]

T = TypeVar("T")


class Stopped(Exception):
    """Ctrl-C (or SIGTERM) during start-up."""


class StartUp:
    """Start-up steps shown on ``progress`` (or as lines on ``out`` when not ``live``); the
    ``stop`` event set means Ctrl-C."""

    def __init__(self, progress: Progress, out: Output, stop: asyncio.Event, *, live: bool):
        self.progress = progress
        self.out = out
        self.stop = stop
        self.live = live

    async def step(self, description: str, work: Awaitable[T], *, interruptible: bool = True) -> T:
        """Run one start-up step under a spinner (a line in plain output); Ctrl-C stops
        start-up between steps, or during an ``interruptible`` one."""
        if self.stop.is_set():
            raise Stopped
        task = self.progress.add_task(description, total=None)
        if not self.live:
            self.out.line(f"starting: {description}")
        job = asyncio.ensure_future(work)
        if interruptible:
            stopper = asyncio.create_task(self.stop.wait())
            await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
                raise Stopped
        result = await job
        self.progress.update(task, total=1, completed=1)
        return result
