"""``vigil demo``: everything Vigil is, on one machine, with a live view (see :mod:`.run`)."""

from stream.dev.demo.run import run_demo

__all__ = ["run_demo"]
