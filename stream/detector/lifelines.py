"""Child processes that end with their parent, however it ends.

``vigil demo`` starts a broker, ``vigil detect`` and ``vigil sidecar``. Stopped by Ctrl-C it
stops them in order; but a ``kill -9``, a closed terminal or a broken pipe used to leave its
children running, orphaned, and one such detector joined every later demo's consumer group.
Two lines hold them now:

- Linux: the child is forked with a parent-death signal (``prctl(PR_SET_PDEATHSIG)``, set in
  the child between fork and exec by :func:`die_with_parent_preexec`), which the kernel sends
  when the thread that forked it ends, even when the parent is SIGKILLed.
- Anywhere: a child told to (``VIGIL_EXIT_WITH_PARENT``) watches its parent's pid
  (:func:`watch_parent`) and exits once it has been re-parented.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import orjson

__all__ = [
    "can_set_parent_death_signal",
    "die_with_parent_preexec",
    "exit_at_once",
    "exit_with_parent",
    "pid_alive",
    "spawn_from_long_lived_thread",
    "watch_parent",
]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def can_set_parent_death_signal() -> bool:
    """Whether this platform has ``PR_SET_PDEATHSIG`` (Linux)."""
    return sys.platform.startswith("linux")


def die_with_parent_preexec(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to send the child ``sig`` when its parent thread dies
    (fork it with :func:`spawn_from_long_lived_thread`)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


_SpawnRequest = tuple[Callable[[], "subprocess.Popen[bytes]"], "queue.Queue[Any]"]
_spawner_lock = threading.Lock()
_spawner_queue: queue.Queue[_SpawnRequest] | None = None


def spawn_from_long_lived_thread(
    spawn: Callable[[], subprocess.Popen[bytes]],
) -> subprocess.Popen[bytes]:
    """Run ``spawn`` on a thread that lives as long as the process.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the process.
    The main thread lives as long as the process, so it forks directly; any other caller (say a
    worker thread of ``asyncio.to_thread``) hands the fork to one daemon thread kept for this.
    """
    if threading.current_thread() is threading.main_thread():
        return spawn()
    global _spawner_queue
    with _spawner_lock:
        if _spawner_queue is None:
            _spawner_queue = queue.Queue()
            threading.Thread(
                target=_spawner_loop,
                args=(_spawner_queue,),
                name="vigil-spawner",
                daemon=True,
            ).start()
        requests = _spawner_queue
    reply: queue.Queue[Any] = queue.Queue()
    requests.put((spawn, reply))
    result = reply.get()
    if isinstance(result, BaseException):
        raise result
    proc: subprocess.Popen[bytes] = result
    return proc


def _spawner_loop(requests: queue.Queue[_SpawnRequest]) -> None:
    while True:
        spawn, reply = requests.get()
        try:
            reply.put(spawn())
        except BaseException as exc:  # handed back to the caller, which raises it
            reply.put(exc)


def pid_alive(pid: int) -> bool:
    """Whether a pid is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = stat.rsplit(")", 1)[-1].split()[0]  # the comm field may hold spaces and ')'
    return state not in ("Z", "X")


async def watch_parent(
    parent: int,
    on_gone: Callable[[], None],
    *,
    interval_s: float = 1.0,
    getppid: Callable[[], int] = os.getppid,
) -> None:
    """Call ``on_gone`` (and return) once this process's parent is no longer ``parent``
    (it died: the process was re-parented), checking every ``interval_s``.

    Examples:
        >>> parents = iter([7, 7, 1])
        >>> gone = []
        >>> asyncio.run(watch_parent(7, lambda: gone.append(True), interval_s=0,
        ...     getppid=lambda: next(parents)))
        >>> gone
        [True]
    """
    while True:  # a poll: no event says that a parent has died
        if getppid() != parent:
            on_gone()
            return
        await asyncio.sleep(interval_s)


def exit_at_once(event: str, **fields: object) -> NoReturn:
    """Write one JSON line on stderr and end the process with status 1, running no cleanup
    (``os.write``: no lock that a stuck thread could hold)."""
    line = orjson.dumps({"event": event, "level": "error", **fields}, default=str)
    try:
        os.write(2, line + b"\n")
    finally:
        os._exit(1)


def exit_with_parent(parent: int | None) -> None:
    """With a ``parent`` pid (``VIGIL_EXIT_WITH_PARENT``), start a task on the running loop
    that ends this process at once when that parent is gone."""
    if parent is None:
        return
    task = asyncio.create_task(
        watch_parent(parent, lambda: exit_at_once("parent_gone", parent=parent)),
        name="vigil-exit-with-parent",
    )
    _watchers.add(task)  # the loop holds tasks weakly
    task.add_done_callback(_watchers.discard)


_watchers: set[asyncio.Task[None]] = set()
