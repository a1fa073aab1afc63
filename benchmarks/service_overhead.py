"""Cost per service per batch of the metric pipeline, with few events per service per batch.

A live detector at modest rates sees many services with a few events each in every batch, so
the fixed cost of a service's model call matters more than its cost per event. This replays
simulated events of ``--services`` services through ``MetricPipeline.process_batch`` in batches
of ``--per-service`` events per service (after an untimed warm-up of 700 events per service:
past the HST window and the warm-up) and reports CPU µs per service per batch (median of
``--repeat`` runs, ``time.process_time``), both as the pipeline runs (``together``: the trees'
walks shared by all services) and with one ``observe_batch`` per service (``apart``). Usage:
    python benchmarks/service_overhead.py [--services 20] [--per-service 1,5,20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from models.anomaly import ServiceAnomalyModel
from stream import pipeline
from stream.codec import DecodeError, decode_metric
from stream.dev.simulate import MetricSimulator
from stream.schemas import Evidence, MetricSample
from stream.settings import Settings

_WARM_EVENTS = 700


def _apart(
    calls: Sequence[tuple[ServiceAnomalyModel, Sequence[dict[str, float]], Sequence[float]]],
    *,
    learn: bool = True,
) -> list[object]:
    return [model.observe_batch(rows, ts, learn=learn) for model, rows, ts in calls]


def time_per_service(events: Sequence[MetricSample], services: int, per_service: int) -> float:
    """CPU µs per service per batch over the events after the warm-up."""
    evidence = lambda i: Evidence(topic="bench", partition=0, offset=i)  # noqa: E731
    run = pipeline.MetricPipeline(Settings().anomaly_config())
    warm = services * _WARM_EVENTS
    run.process_batch(events[:warm], evidence)
    size = services * per_service
    starts = range(warm, len(events) - size + 1, size)
    started = time.process_time()
    for start in starts:
        run.process_batch(events[start : start + size], evidence)
    return (time.process_time() - started) / len(starts) / services * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--per-service", default="1,5,20", help="Events per service per batch.")
    parser.add_argument("--events-per-service", type=int, default=1_500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    simulator = MetricSimulator(services=args.services, seed=7)
    payloads = simulator.events(args.services * args.events_per_service)
    events = [decode_metric(p.to_bytes()) for p in payloads]
    samples = [e for e in events if not isinstance(e, DecodeError)]
    together = pipeline.observe_together
    for k in (int(x) for x in args.per_service.split(",")):
        for mode, run in (("together", together), ("apart", _apart)):
            pipeline.observe_together = run  # type: ignore[assignment]  # the mode timed
            runs = [time_per_service(samples, args.services, k) for _ in range(args.repeat)]
            print(
                f"{args.services} services x {k} events, {mode:>8}: "
                f"{statistics.median(runs):7.1f} µs per service per batch"
            )
    pipeline.observe_together = together
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
