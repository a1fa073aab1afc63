"""The demo's output, which may stop being read: ``vigil demo | head``, an interrupted
``make demo | tee``. Writing to a closed pipe then raises, and that used to end the demo
before it stopped its children. Here it stops the run in order, and what is still printed
goes nowhere."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from rich.console import Console, RenderableType

__all__ = ["Output"]


class Output:
    """Lines and rich renderables to stdout; ``on_gone`` is called once nobody reads."""

    def __init__(self, console: Console, on_gone: Callable[[], None]) -> None:
        self.console = console
        self._on_gone = on_gone

    def say(self, renderable: RenderableType) -> None:
        """Print through rich."""
        try:
            self.console.print(renderable, highlight=False)
        except OSError:
            self._gone()

    def line(self, text: str) -> None:
        """One line of plain output."""
        try:
            print(text, flush=True)
        except OSError:
            self._gone()

    def _gone(self) -> None:
        self._on_gone()
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
