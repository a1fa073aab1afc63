"""Where snapshots live: one directory per input partition, atomic writes, newest first.

Layout: ``<root>/<topic>-<partition>/<created_ns>-<offset>.snap``. A snapshot is written to a
temporary file in the same directory, flushed to disk, then renamed over its final name and
the directory flushed: a crash leaves either the whole file or none (a leftover temporary
file is removed by the next prune). Loading walks a partition's snapshots newest first and
returns the first that checks out (see :mod:`models.snapshot`); every one refused on the
way is reported with why, so a corrupt newest snapshot falls back to the one before it.
Retention keeps the newest ``keep`` per partition. The classes a snapshot may hold are
:data:`stream.detector.snapshot_classes.SNAPSHOT_CLASSES` unless the store is given others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.snapshot import (
    SnapshotError,
    SnapshotMeta,
    capture_state,
    decode_snapshot,
    write_snapshot,
)
from models.state_codec import ClassRegistry, EncodedState
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES

__all__ = ["LoadedSnapshot", "SnapshotStore"]

_SUFFIX = ".snap"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class LoadedSnapshot:
    """A snapshot that checked out: its header, state and file."""

    meta: SnapshotMeta
    state: Any
    path: Path
    size: int


class SnapshotStore:
    """Snapshots on a local (or mounted) filesystem.

    Args:
        root: The directory for this consumer group's snapshots (created when needed).
        keep: Snapshots kept per partition; older ones are deleted after each write.
        classes: The classes a snapshot may hold.
    """

    def __init__(
        self, root: Path, *, keep: int = 3, classes: ClassRegistry = SNAPSHOT_CLASSES
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.root = root
        self.keep = keep
        self.classes = classes

    def directory(self, topic: str, partition: int) -> Path:
        """Where a partition's snapshots are."""
        return self.root / f"{topic}-{partition}"

    def capture(self, state: Any) -> EncodedState:
        """A state taken as plain data (:func:`~models.snapshot.capture_state`): run it while
        the state holds still, then :meth:`write_captured` anywhere."""
        return capture_state(state, self.classes)

    def write(self, meta: SnapshotMeta, state: Any) -> tuple[Path, int]:
        """Encode and store a snapshot atomically, then prune; returns its path and size."""
        return self.write_captured(meta, self.capture(state))

    def write_captured(self, meta: SnapshotMeta, captured: EncodedState) -> tuple[Path, int]:
        """Serialize and frame a captured state (:meth:`capture`) and store it atomically,
        then prune; returns its path and size. Safe to run in a worker thread."""
        directory = self.directory(meta.topic, meta.partition)
        directory.mkdir(parents=True, exist_ok=True)
        offset = meta.offsets.get(f"{meta.topic}:{meta.partition}", 0)
        final = directory / f"{time.time_ns():020d}-{offset}{_SUFFIX}"
        tmp = directory / f"{_TMP_PREFIX}{final.name}"
        with open(tmp, "wb") as out:
            size = write_snapshot(meta, captured, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
        _fsync_directory(directory)
        self.prune(meta.topic, meta.partition)
        return final, size

    def paths(self, topic: str, partition: int) -> list[Path]:
        """A partition's snapshot files, newest first."""
        directory = self.directory(topic, partition)
        if not directory.is_dir():
            return []
        found = [p for p in directory.iterdir() if p.name.endswith(_SUFFIX) and p.is_file()]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def load(
        self,
        topic: str,
        partition: int,
        *,
        config_ids: dict[str, str],
        on_reject: Callable[[Path, SnapshotError], None],
        validate: Callable[[Any], None] | None = None,
        belongs: Callable[[SnapshotMeta], None] | None = None,
    ) -> LoadedSnapshot | None:
        """The newest snapshot of a partition that checks out (None if there is none).

        Each refused on the way (unreadable file, bad checksum, incompatible, or a state
        ``validate`` raises :class:`SnapshotError` for) is passed to ``on_reject`` and left in
        place for inspection; retention removes it in time. One whose header ``belongs``
        refuses (taken from another incarnation of the partition) ends the walk: every older
        one was taken before it, from that incarnation or an earlier one.
        """
        for path in self.paths(topic, partition):
            try:
                data = path.read_bytes()
            except OSError as exc:
                on_reject(path, SnapshotError("unreadable", f"{type(exc).__name__}: {exc}"))
                continue
            try:
                meta, state = decode_snapshot(data, config_ids=config_ids, classes=self.classes)
            except SnapshotError as exc:
                on_reject(path, exc)
                continue
            if belongs is not None:
                try:
                    belongs(meta)
                except SnapshotError as exc:
                    # Snapshots are walked newest first: the ones before it were taken from
                    # that earlier incarnation too, or an older one still.
                    on_reject(path, exc)
                    return None
            try:
                if validate is not None:
                    validate(state)
            except SnapshotError as exc:
                on_reject(path, exc)
                continue
            if (meta.topic, meta.partition) != (topic, partition):
                on_reject(path, SnapshotError("corrupt", f"holds {meta.topic}:{meta.partition}"))
                continue
            return LoadedSnapshot(meta, state, path, len(data))
        return None

    def prune(self, topic: str, partition: int) -> int:
        """Delete all but the newest ``keep`` snapshots (and stray temporary files)."""
        directory = self.directory(topic, partition)
        removed = 0
        for path in self.paths(topic, partition)[self.keep :]:
            path.unlink(missing_ok=True)
            removed += 1
        if directory.is_dir():
            for path in directory.glob(f"{_TMP_PREFIX}*"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
