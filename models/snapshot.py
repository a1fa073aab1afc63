"""Snapshots of online model state: one self-checking blob per Kafka partition (pure).

A snapshot is the state a detector owns for one input partition (per-service anomaly models,
incident-risk buffers, ...) as plain data, with a JSON header saying what it is and where in
the input it stands::

    MAGIC | header length (4 bytes, big-endian) | header (JSON) | payload | SHA-256

The payload is :mod:`models.state_codec`'s: a JSON document (the objects, by stable class
name from an explicit registry, field by field; every scalar) and an npz archive (every numpy
array, read with ``allow_pickle=False``). No pickle: reading a snapshot never imports or
calls anything it names, and a newer Python, numpy or river reads it as long as the
registered classes can be rebuilt from its fields. The SHA-256 trailer covers everything
before it, so a truncated or bit-flipped file is refused before anything is decoded.

A snapshot is *incompatible* (refused, never loaded) when its schema version is not
:data:`SCHEMA_VERSION` (version 1 was a pickle: ``schema``), when every model family it holds
was learned under a configuration that shapes state differently from the running one (a
family that changed alone starts fresh while the others are restored:
:func:`changed_families`), or when an object it holds cannot be rebuilt now (a class no
longer registered, or lacking a field it needs: ``unreadable``). The library versions in the
header are recorded, not checked.

Examples:
    >>> from models.state_codec import ClassRegistry
    >>> classes = ClassRegistry([])
    >>> meta = SnapshotMeta.create(
    ...     topic="vigil.metrics", partition=3, offsets={"vigil.metrics:3": 120},
    ...     config_ids={"metrics": "c1"}, services=["api"])
    >>> blob = encode_snapshot(meta, {"api": [1.0, 2.0]}, classes)
    >>> header, state = decode_snapshot(blob, config_ids={"metrics": "c1"}, classes=classes)
    >>> header.offsets, state
    ({'vigil.metrics:3': 120}, {'api': [1.0, 2.0]})
    >>> decode_snapshot(blob[:-1], config_ids={"metrics": "c1"}, classes=classes)
    Traceback (most recent call last):
    ...
    models.snapshot.SnapshotError: corrupt: checksum mismatch
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import struct
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from models import versions
from models.state_codec import (
    ClassRegistry,
    DecodeError,
    EncodedState,
    Sink,
    decode_state,
    encode_state,
    write_state,
)

__all__ = [
    "SCHEMA_VERSION",
    "RejectReason",
    "SnapshotError",
    "SnapshotMeta",
    "capture_state",
    "changed_families",
    "check_anchor",
    "check_incarnation",
    "decode_snapshot",
    "encode_snapshot",
    "library_versions",
    "read_meta",
    "write_snapshot",
]

SCHEMA_VERSION = 2
"""The snapshot format's version: 1 pickled the state, 2 writes it as JSON and npz
(:mod:`models.state_codec`). A later version adds its own fixture beside
``tests/fixtures/snapshots/v2`` and still reads v2, or refuses it on purpose (and says why in
:data:`RejectReason`)."""

MAGIC = b"VIGILSNAP\x00"
_LENGTH = struct.Struct(">I")
_DIGEST_BYTES = 32

RejectReason = Literal[
    "corrupt",
    "schema",
    "config_changed",
    "unreadable",
    "other_cluster",
    "beyond_end",
    "record_mismatch",
]
"""Why a snapshot was refused: damaged bytes (or a payload that is not the state codec's JSON
and npz); another schema version (version 1's pickles included); learned under another model
configuration; an object it holds cannot be rebuilt (a class it names is not registered, or
lacks a field the running class needs); taken against another Kafka cluster; or
its offset lies past the end of the partition it would resume (a re-created topic, a fresh
broker under the old cluster id: the records it stood on are not this partition's); or the
record it stood on is another one now (a re-created topic that grew past its offset)."""


class SnapshotError(Exception):
    """A snapshot that must not be loaded; :attr:`reason` is one of :data:`RejectReason`."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail


def library_versions() -> dict[str, str]:
    """The versions a snapshot's writer ran (Python minor, numpy, river): recorded for
    diagnosis, not checked (the payload is plain data)."""
    return versions.library_versions("numpy", "river")


@dataclass(frozen=True)
class SnapshotMeta:
    """What a snapshot holds and where in the input it stands.

    Attributes:
        schema_version: The snapshot format's version (:data:`SCHEMA_VERSION`).
        topic: The input topic whose partition owns the state.
        partition: That partition.
        offsets: ``"topic:partition"`` → the next offset to read: the state reflects every
            record before it, and none from it on.
        created_at: When it was taken (ISO 8601, UTC).
        config_ids: Each model family's configuration id (a snapshot learned under another
            configuration is refused).
        libraries: :func:`library_versions` of the writer.
        services: The services whose state it holds.
        cluster_id: The Kafka cluster the input was read from (None: unknown, as in
            snapshots written before it was recorded).
        anchor: The last record before the snapshot's offset, as ``[offset, timestamp ms,
            CRC-32 of its value]``: the partition it resumes must still hold that record.
    """

    schema_version: int
    topic: str
    partition: int
    offsets: dict[str, int]
    created_at: str
    config_ids: dict[str, str]
    libraries: dict[str, str]
    services: list[str] = field(default_factory=list)
    cluster_id: str | None = None
    anchor: list[int] | None = None

    @classmethod
    def create(
        cls,
        *,
        topic: str,
        partition: int,
        offsets: dict[str, int],
        config_ids: dict[str, str],
        services: list[str],
        created_at: dt.datetime | None = None,
        cluster_id: str | None = None,
        anchor: list[int] | None = None,
    ) -> SnapshotMeta:
        """A header for state taken now, with this process's versions."""
        when = created_at if created_at is not None else dt.datetime.now(dt.UTC)
        return cls(
            schema_version=SCHEMA_VERSION,
            topic=topic,
            partition=partition,
            offsets=dict(offsets),
            created_at=when.isoformat(),
            config_ids=dict(config_ids),
            libraries=library_versions(),
            services=list(services),
            cluster_id=cluster_id,
            anchor=anchor,
        )


def changed_families(meta: SnapshotMeta, config_ids: dict[str, str]) -> list[str]:
    """The model families of a snapshot whose state was learned under a configuration the
    running one does not share (families not running now are not named).

    A snapshot is refused when every family it holds that runs now changed; otherwise the
    families that changed start fresh and the others are restored.

    Examples:
        >>> meta = SnapshotMeta.create(topic="m", partition=0, offsets={},
        ...     config_ids={"metrics": "a", "risk": "r"}, services=[])
        >>> changed_families(meta, {"metrics": "a", "risk": "r2"})
        ['risk']
        >>> changed_families(meta, {"metrics": "a"})
        []
    """
    return sorted(f for f, c in meta.config_ids.items() if config_ids.get(f) not in (None, c))


def check_incarnation(meta: SnapshotMeta, cluster_id: str | None, end_offset: int | None) -> None:
    """Refuse a snapshot that was not taken from the partition it would resume.

    Args:
        meta: The snapshot's header.
        cluster_id: The cluster the partition is on now (None: unknown).
        end_offset: The partition's end offset now (None: unknown).

    Raises:
        SnapshotError: ``other_cluster`` when both clusters are known and differ;
            ``beyond_end`` when the snapshot resumes past the partition's end (its records
            were never this partition's: resuming there would skip everything until the
            partition grew that far).

    Examples:
        >>> meta = SnapshotMeta.create(topic="m", partition=0, offsets={"m:0": 600},
        ...     config_ids={}, services=[], cluster_id="a")
        >>> check_incarnation(meta, "a", 600)  # caught up: resumes at the end
        >>> check_incarnation(meta, "b", 900)
        Traceback (most recent call last):
        ...
        models.snapshot.SnapshotError: other_cluster: taken on cluster a, the partition is on b
        >>> check_incarnation(meta, "a", 60)
        Traceback (most recent call last):
        ...
        models.snapshot.SnapshotError: beyond_end: resumes at offset 600, the partition ends at 60
    """
    if meta.cluster_id is not None and cluster_id is not None and meta.cluster_id != cluster_id:
        raise SnapshotError(
            "other_cluster", f"taken on cluster {meta.cluster_id}, the partition is on {cluster_id}"
        )
    offset = meta.offsets.get(f"{meta.topic}:{meta.partition}")
    if offset is not None and end_offset is not None and offset > end_offset:
        raise SnapshotError(
            "beyond_end", f"resumes at offset {offset}, the partition ends at {end_offset}"
        )


def check_anchor(meta: SnapshotMeta, found: tuple[int, int] | None) -> None:
    """Refuse a snapshot whose anchor record is another one now.

    Args:
        meta: The snapshot's header.
        found: The timestamp and value CRC-32 of the record at the anchor's offset now (None:
            unknown, e.g. retention deleted it).

    Raises:
        SnapshotError: ``record_mismatch``.

    Examples:
        >>> meta = SnapshotMeta.create(topic="m", partition=0, offsets={"m:0": 600},
        ...     config_ids={}, services=[], anchor=[599, 1700000000000, 42])
        >>> check_anchor(meta, (1700000000000, 42)), check_anchor(meta, None)
        (None, None)
        >>> check_anchor(meta, (1800000000000, 7))
        Traceback (most recent call last):
        ...
        models.snapshot.SnapshotError: record_mismatch: the record at offset 599 is another one
    """
    if meta.anchor is None or found is None:
        return
    offset, timestamp, crc = meta.anchor
    if (timestamp, crc) != found:
        raise SnapshotError("record_mismatch", f"the record at offset {offset} is another one")


def encode_snapshot(meta: SnapshotMeta, state: Any, classes: ClassRegistry) -> bytes:
    """The snapshot's bytes: header, ``state`` as JSON and npz, and the SHA-256 trailer.

    Raises:
        EncodeError: ``state`` holds something the codec cannot write (a class not in
            ``classes``, ...).
    """
    buffer = io.BytesIO()
    write_snapshot(meta, capture_state(state, classes), buffer)
    return buffer.getvalue()


def capture_state(state: Any, classes: ClassRegistry) -> EncodedState:
    """The part of a snapshot that must be taken while the state holds still: the state
    walked into plain data and copies of its arrays. Serializing, framing and checksumming
    (:func:`write_snapshot`) can happen elsewhere, e.g. in a writer thread.

    Raises:
        EncodeError: ``state`` holds something the codec cannot write.
    """
    return encode_state(state, classes)


def write_snapshot(meta: SnapshotMeta, captured: EncodedState, out: Sink) -> int:
    """Write a captured state (:func:`capture_state`) as a snapshot to ``out``: header,
    payload streamed, SHA-256 trailer; returns the bytes written. Safe to run in a worker
    thread."""
    header = json.dumps(asdict(meta), sort_keys=True).encode()
    hashed = _Hashed(out)
    hashed.write(b"".join((MAGIC, _LENGTH.pack(len(header)), header)))
    write_state(captured, hashed)
    trailer = hashed.digest.digest()
    out.write(trailer)
    return hashed.size + len(trailer)


class _Hashed:
    """Writes to a sink and hashes what it writes (large writes hash and write without
    holding the GIL)."""

    def __init__(self, out: Sink) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self.digest.update(data)
        self.out.write(data)
        written = memoryview(data).nbytes
        self.size += written
        return written


def read_meta(data: bytes) -> SnapshotMeta:
    """The header of a snapshot whose checksum holds (the payload is not decoded).

    Raises:
        SnapshotError: ``corrupt`` (bad magic, length or checksum) or ``schema``.
    """
    meta, _ = _split(data)
    return meta


def decode_snapshot(
    data: bytes, *, config_ids: dict[str, str], classes: ClassRegistry
) -> tuple[SnapshotMeta, Any]:
    """Check a snapshot and load its state.

    Args:
        data: The snapshot's bytes.
        config_ids: The running configuration ids; each one the snapshot names must match.
        classes: The classes its objects may be.

    Raises:
        SnapshotError: The snapshot must not be loaded (see :data:`RejectReason`).
    """
    meta, payload = _split(data)
    changed = changed_families(meta, config_ids)
    running = [family for family in meta.config_ids if family in config_ids]
    if running and len(changed) == len(running):
        described = ", ".join(f"{f} {meta.config_ids[f]} is now {config_ids[f]}" for f in changed)
        raise SnapshotError("config_changed", f"configuration {described}")
    try:
        state = decode_state(payload, classes)
    except DecodeError as exc:
        raise SnapshotError(exc.reason, exc.detail) from exc
    except Exception as exc:  # any other failure to rebuild the objects: refuse, never half-load
        raise SnapshotError("unreadable", f"{type(exc).__name__}: {exc}") from exc
    return meta, state


def _split(data: bytes) -> tuple[SnapshotMeta, memoryview]:
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start + _DIGEST_BYTES or not data.startswith(MAGIC):
        raise SnapshotError("corrupt", "not a Vigil snapshot (bad magic or too short)")
    view = memoryview(data)  # slices without copying the arrays
    body, digest = view[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise SnapshotError("corrupt", "checksum mismatch")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if start + length > len(body):
        raise SnapshotError("corrupt", "header length past the end")
    try:
        fields = json.loads(bytes(body[start : start + length]))
    except ValueError as exc:
        raise SnapshotError("corrupt", f"header is not JSON: {exc}") from exc
    version = fields.get("schema_version") if isinstance(fields, dict) else None
    if version != SCHEMA_VERSION:
        raise SnapshotError("schema", f"schema version {version}, expected {SCHEMA_VERSION}")
    try:
        meta = SnapshotMeta(**fields)
    except TypeError as exc:
        raise SnapshotError("schema", f"header fields: {exc}") from exc
    return meta, body[start + length :]
