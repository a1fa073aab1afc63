"""``vigil bench --only snapshot``: snapshot size, write and restore times, throughput cost.

A pipeline learns ``--snapshot-services`` services (default 1,000) up to past their warm-up,
as a detector's would. Then:

* one partition holding all of them is snapshotted (captured as plain data in the loop,
  serialized to JSON and npz, written and fsynced as the detector does) and restored (read,
  checked, decoded, installed), three times each;
* the pipeline decodes and scores 600 more events per service, three times alone and three
  times while a partition's snapshot (a sixth of the services, as with six partitions) is
  taken every ``--snapshot-every-s`` seconds, captured in the loop and written by a worker
  thread, as in the detector. The default (1 s) is ten times the detector's default rate
  (each of six partitions every 60 s: one every 10 s), so the loss it shows is an upper
  bound for the default.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from models.snapshot import SnapshotError, SnapshotMeta
from stream.codec import DecodeError, decode_metric
from stream.core.pipeline import MetricPipeline
from stream.detector.snapshots import SnapshotStore
from stream.dev.simulate import payloads_by_block
from stream.schemas import Evidence, MetricSample
from stream.settings import Settings

__all__ = ["SnapshotRun", "measure_snapshots"]

_MIB = 1024 * 1024
_TOPIC = "bench.metrics"
_PARTITIONS = 6


def _events(services: int, per_service: int, seed: int) -> Iterator[MetricSample]:
    """``per_service`` events of each service, decoded, a few services at a time (as under
    load: several events per service in each batch)."""
    for payload in payloads_by_block(services, per_service, seed=seed):
        decoded = decode_metric(payload, 1 << 20)
        assert not isinstance(decoded, DecodeError)
        yield decoded


def _batches(events: Iterator[MetricSample], size: int) -> Iterator[list[MetricSample]]:
    while batch := list(itertools.islice(events, size)):
        yield batch


def _score(pipeline: MetricPipeline, events: Iterator[MetricSample], batch: int) -> None:
    where = Evidence(topic=_TOPIC, partition=0, offset=0)
    for chunk in _batches(events, batch):
        pipeline.process_batch(chunk, lambda _: where)


def _meta(partition: int, services: list[str], offset: int) -> SnapshotMeta:
    return SnapshotMeta.create(
        topic=_TOPIC,
        partition=partition,
        offsets={f"{_TOPIC}:{partition}": offset},
        config_ids={"metrics": "bench"},
        services=services,
    )


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _rate_with_snapshots(
    pipeline: MetricPipeline,
    events: Iterator[MetricSample],
    batch: int,
    store: SnapshotStore | None,
    every_s: float,
) -> tuple[float, int]:
    """Events/s decoding and scoring ``events``; with a store, a partition's snapshot every
    ``every_s`` (captured in the loop, written by a worker thread, as the detector does)."""
    services = sorted(m.service for m in pipeline)
    partitions = [services[p::_PARTITIONS] for p in range(_PARTITIONS)]
    where = Evidence(topic=_TOPIC, partition=0, offset=0)
    taken = count = 0
    pending: Future[tuple[Path, int]] | None = None
    with ThreadPoolExecutor(max_workers=1) as writer:
        started = last = time.perf_counter()
        for chunk in _batches(events, batch):
            pipeline.process_batch(chunk, lambda _: where)
            count += len(chunk)
            now = time.perf_counter()
            if store is not None and now - last >= every_s and (pending is None or pending.done()):
                partition = taken % _PARTITIONS
                meta = _meta(partition, partitions[partition], count)
                captured = store.capture({"metrics": pipeline.models_of(meta.services)})
                pending = writer.submit(store.write_captured, meta, captured)
                taken += 1
                last = now
        if pending is not None:
            pending.result()
        elapsed = time.perf_counter() - started
    return count / elapsed, taken


@dataclass(frozen=True)
class SnapshotRun:
    """What :func:`measure_snapshots` measured (times in seconds and rates, medians of three)."""

    services: int
    events_per_service: int
    bytes: int
    encode_s: float
    write_s: float
    restore_s: float
    plain_rate: float
    snapshotting_rate: float
    snapshots_taken: int
    every_s: float

    @property
    def loss(self) -> float:
        """Throughput lost while snapshotting, in percent."""
        return 100.0 * (1.0 - self.snapshotting_rate / self.plain_rate)


def measure_snapshots(
    settings: Settings, services: int, every_s: float, say: Callable[[str], None]
) -> SnapshotRun:
    """Snapshot size, write and restore times at ``services``; throughput cost."""
    config = settings.anomaly_config()
    per_service = max(config.window_size, config.warmup_events) + 50
    say(f"snapshot: {services} services x {per_service} events to learn")
    pipeline = MetricPipeline(config)
    _score(pipeline, _events(services, per_service, seed=9), settings.max_batch)
    names = sorted(m.service for m in pipeline)
    writes, restores, encodes, size = [], [], [], 0
    with tempfile.TemporaryDirectory(prefix="vigil-bench-snapshots-") as root:
        store = SnapshotStore(Path(root), keep=2)
        for _ in range(3):
            meta = _meta(0, names, 0)
            encodes.append(
                _timed(functools.partial(store.capture, {"metrics": pipeline.models_of(names)}))
            )
            started = time.perf_counter()
            _, size = store.write(meta, {"metrics": pipeline.models_of(names)})
            writes.append(time.perf_counter() - started)

            def restore() -> None:
                loaded = store.load(_TOPIC, 0, config_ids={}, on_reject=_refused)
                if loaded is None:
                    raise RuntimeError("the snapshot just written did not load")
                MetricPipeline(config).install(loaded.state["metrics"])

            restores.append(_timed(restore))
        say(f"snapshot: throughput over {services * 600} events, with and without snapshots")
        plain, busy, taken = [], [], 0
        for run in range(3):
            more = _events(services, 600, seed=10_009 + run)
            plain.append(_rate_with_snapshots(pipeline, more, settings.max_batch, None, 0)[0])
            more = _events(services, 600, seed=20_009 + run)
            rate, taken = _rate_with_snapshots(pipeline, more, settings.max_batch, store, every_s)
            busy.append(rate)
    return SnapshotRun(
        services=services,
        events_per_service=per_service,
        bytes=size,
        encode_s=statistics.median(encodes),
        write_s=statistics.median(writes),
        restore_s=statistics.median(restores),
        plain_rate=statistics.median(plain),
        snapshotting_rate=statistics.median(busy),
        snapshots_taken=taken,
        every_s=every_s,
    )


def _refused(path: Path, error: SnapshotError) -> None:
    raise RuntimeError(f"{path}: {error}")
