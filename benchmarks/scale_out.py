"""Scale-out through a real broker: events/s with 1, 2, 3 detector processes, the pause a
joining detector causes, and how long a detector killed with SIGKILL leaves its partitions
unprocessed.

Every run gets fresh topics (``--partitions`` each), a fresh consumer group and a fresh
snapshot directory shared by its detectors (as a volume would be), and deletes its topics at
the end. Each detector is a separate process running ``stream.cli.main(["detect"])``, what the
``vigil`` script runs, configured through ``VIGIL_*`` variables (the defaults, incident risk
on, plus whatever ``VIGIL_*`` the bench's own environment sets). A detector process imports
Vigil first and waits for a line on its stdin before it runs, so import time (1.5 s here) is
not part of any figure and the bench decides when each one joins the group
(:mod:`detector_fleet` starts them, reads their logs and polls the group).

* **scale**: ``--events`` metric events of ``--services`` services (the simulator, as
  ``vigil bench --only kafka`` pre-loads them) are pre-loaded, then k detectors start at once
  in one group. The group's committed offsets are polled every ``--poll-s`` with the admin
  client. The broker's group starts with no rebalance delay here, so the first detector to
  join consumes alone until the others' joins are noticed (its next heartbeat, up to 3 s):
  the **steady** rate counts only the events committed after the group's last assignment
  (from the detectors' ``partitions_assigned`` log lines), the **whole** rate from the first
  commit to the last. Per detector: its own rate (the events of its partitions over the time
  they took) and the CPU it used (from ``/proc`` through psutil, in cores), the broker's too.
* **rebalance**: two detectors drain a backlog of ``--events``; once both are assigned
  and committing, a third joins. The pause is the longest time during which no partition's
  committed offset advanced; the detectors' logs give when each revoked and got partitions
  back, and their ``/metrics`` what the snapshot restores took.
* **kill**: three detectors drain ``--events``; once all are committing, the one holding the
  most metrics partitions is sent SIGKILL. Recovery is the time from the kill until every one
  of its partitions' committed offsets advanced again; it includes the group's session
  timeout (aiokafka's default 10 s, heartbeats every 3 s: Vigil does not set them).

The machine matters: on 2 cores the broker, the bench and k detectors share the CPU, so k
detectors cannot be k times faster; the CPU figures show where it went.

Run with a broker: ``.venv/bin/python benchmarks/scale_out.py --bootstrap 127.0.0.1:19092
[--detectors 1,2,3] [--repeats 3] [--services 20] [--only scale,rebalance,kill] [--json FILE]
[--logs DIR]``. Every run is printed, then the medians; ``--json`` keeps them all.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import itertools
import math
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
from detector_fleet import (
    Encoded,
    Poller,
    Sample,
    at_or_after,
    broker_process,
    delete_topics,
    fresh_run,
    newest_snapshots_bytes,
    others_by_label,
    run_dir,
    simulated_events,
    spawn,
    stop,
    wait_quiet,
    wait_stable,
)

from stream.settings import Settings, load_settings
from stream.telemetry import configure_logging

# -- scale -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrainRun:
    """k detectors draining a pre-loaded topic.

    Attributes:
        detectors: k.
        events: Events pre-loaded.
        whole_rate: Events/s from the first commit to the last.
        steady_rate: Events/s committed after the group's last assignment, to the last commit.
        steady_s: How long that was.
        detector_rates: Each detector's events/s over its own partitions, from the last
            assignment until its partitions were done.
        busiest_share: The share of the steady events on the busiest detector's partitions.
        cpu: Cores each detector used during the steady window.
        broker_cpu: Cores the broker used then (nan if it could not be seen).
        bench_cpu: Cores this bench used then (polling, mostly).
        machine_cpu: Cores busy on the whole machine then, every process counted (2 = all).
        others_cpu: Of those, what neither the detectors, the broker nor the bench used
            (other work on a shared machine, the kernel's share of loopback traffic).
        others_top: The three other processes that used the most then, with their cores.
        rss_mib: Each detector's resident memory at the end.
        mean_batch: Each detector's mean records per fetched batch, over the whole run.
        snapshot_mib: The metrics partitions' newest snapshots after the detectors' clean
            stop (each holds the whole state of its partition's services), in all.
        assignments: How many assignments the detectors logged in all (1 per detector: no
            rebalance after the first).
    """

    detectors: int
    events: int
    whole_rate: float
    steady_rate: float
    steady_s: float
    detector_rates: tuple[float, ...]
    busiest_share: float
    cpu: tuple[float, ...]
    broker_cpu: float
    bench_cpu: float
    machine_cpu: float
    others_cpu: float
    others_top: tuple[str, ...]
    rss_mib: tuple[float, ...]
    mean_batch: tuple[float, ...]
    snapshot_mib: float
    assignments: int


async def drain(
    base: Settings,
    k: int,
    events: Sequence[Encoded],
    poll_s: float,
    broker: Any,
    keep_logs: Path | None = None,
) -> DrainRun:
    with run_dir(keep_logs) as log_dir:
        run, ends = await fresh_run(base, events, log_dir / "snapshots")
        total = sum(ends)
        detectors = await spawn(run, k, log_dir)
        try:
            async with Poller(run, run.topic_partitions, poll_s) as poller:
                poller.processes = [psutil.Process(d.proc.pid) for d in detectors]
                poller.processes += [broker, psutil.Process()]
                await asyncio.gather(*(d.go() for d in detectors))
                end = await poller.wait(lambda s: sum(s.offsets) >= total, 600, "the drain")
                rss = tuple(float(p.memory_info().rss) / 2**20 for p in poller.processes[:k])
                metrics = await asyncio.gather(*(d.metrics() for d in detectors))
            assigned = [e for d in detectors for e in d.events("partitions_assigned")]
            final = {i: d.assignment(run.topic_metrics) for i, d in enumerate(detectors)}
        finally:
            await stop(detectors)
            await delete_topics(run)
        snapshot_mib = newest_snapshots_bytes(log_dir / "snapshots", run.topic_metrics) / 2**20
    samples = poller.samples
    stable_at = max(e["at"] for e in assigned)
    first = next(s for s in samples if sum(s.offsets) > 0)
    start = at_or_after(samples, stable_at)
    steady_events = total - sum(start.offsets)
    rates, shares = [], []
    for i in range(k):
        owned = (final[i] or (0.0, []))[1]
        left = sum(ends[p] - start.offsets[p] for p in owned)
        done = next(s for s in samples if all(s.offsets[p] >= ends[p] for p in owned))
        rates.append(left / (done.at - start.at) if done.at > start.at else math.nan)
        shares.append(left / steady_events if steady_events else math.nan)
    wall = end.at - start.at
    if wall < 1.0:
        raise RuntimeError(f"the group settled {wall:.2f} s before the drain ended: pre-load more")
    cpu = [(e - s) / wall for s, e in zip(start.cpu_s, end.cpu_s, strict=True)]
    inside = [(at, cpu_s) for at, cpu_s in poller.everyone if start.at <= at <= end.at]
    others_top: list[str] = []
    if len(inside) >= 2:
        (at0, before), (at1, after) = inside[0], inside[-1]
        mine = {d.proc.pid for d in detectors} | {os.getpid()} | ({broker.pid} if broker else set())
        others_top = [
            f"{label}: {s / (at1 - at0):.2f}"
            for label, s in others_by_label(before, after, mine)[:3]
        ]
    return DrainRun(
        detectors=k,
        events=total,
        whole_rate=total / (end.at - first.at),
        steady_rate=steady_events / wall if wall > 0 else math.nan,
        steady_s=wall,
        detector_rates=tuple(rates),
        busiest_share=max(shares),
        cpu=tuple(cpu[:k]),
        broker_cpu=cpu[k],
        bench_cpu=cpu[k + 1],
        machine_cpu=(end.machine_s - start.machine_s) / wall,
        others_cpu=(end.machine_s - start.machine_s) / wall - sum(c for c in cpu if c == c),
        others_top=tuple(others_top),
        rss_mib=rss,
        mean_batch=tuple(
            m.get("vigil_batch_size_events_sum", 0.0) / m.get("vigil_batch_size_events_count", 1.0)
            for m in metrics
        ),
        snapshot_mib=snapshot_mib,
        assignments=len(assigned),
    )


# -- rebalance -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RebalanceRun:
    """A third detector joining two that drain a backlog.

    Attributes:
        pause_s: The longest time no partition's committed offset advanced, after the third
            detector was started (poll resolution: ``--poll-s``).
        moved_pause_s: The longest time one of the partitions the third detector took over
            had its committed offset stand still (the old owner's revocation and snapshot,
            the new one's restore, fetch and first batch).
        steady_gap_s: For comparison, the longest time one partition's committed offset
            stood still in the 2 s before the third detector started: a detector works
            through one partition's fetched records at a time, so a partition's commits
            come in bursts even without a rebalance.
        go_to_pause_s: From the third detector's go to the start of the pause (it starts,
            joins, and the others notice at their next heartbeat).
        revoke_to_assign_s: Each old detector's time from its ``partitions_revoked`` log line
            (revocation done: batch finished, commits flushed, snapshots written) to its
            ``partitions_assigned`` (restores done).
        moved: Metrics partitions the third detector took over.
        restore_s: Snapshot restore time the third detector's ``/metrics`` reports, total.
        snapshot_write_s: Snapshot write time the old detectors report, total (their first
            batches' snapshots and the revocation's).
        left: Events still unread when the pause ended (0 would make the run invalid).
    """

    pause_s: float
    moved_pause_s: float
    steady_gap_s: float
    go_to_pause_s: float
    revoke_to_assign_s: tuple[float, ...]
    moved: int
    restore_s: float
    snapshot_write_s: float
    left: int


async def rebalance(
    base: Settings, events: Sequence[Encoded], poll_s: float, keep_logs: Path | None = None
) -> RebalanceRun:
    with run_dir(keep_logs) as log_dir:
        run, ends = await fresh_run(base, events, log_dir / "snapshots")
        detectors = await spawn(run, 3, log_dir)
        try:
            async with Poller(run, run.topic_partitions, poll_s) as poller:
                await asyncio.gather(*(d.go() for d in detectors[:2]))
                stable_at, _ = await wait_stable(detectors[:2], run, poller, ends)
                await asyncio.sleep(2.0)
                go_at = await detectors[2].go()
                await wait_stable(detectors, run, poller, ends)
                await asyncio.sleep(1.0)
                metrics = await asyncio.gather(*(d.metrics() for d in detectors))
            revoke_to_assign = []
            for d in detectors[:2]:
                revoked = [e["at"] for e in d.events("partitions_revoked") if e["at"] >= go_at]
                assigned = [e["at"] for e in d.events("partitions_assigned") if e["at"] >= go_at]
                if revoked and assigned:
                    revoke_to_assign.append(assigned[-1] - revoked[0])
            moved = detectors[2].assignment(run.topic_metrics)
        finally:
            await stop(detectors)
            await delete_topics(run)
    after = [s for s in poller.samples if s.at >= go_at]
    gap_from, gap_to = _longest_stall(after, range(run.topic_partitions))
    resumed = at_or_after(poller.samples, gap_to)
    moved_gaps = [_longest_stall(after, [p]) for p in (moved[1] if moved else [])]
    before = [s for s in poller.samples if stable_at <= s.at < go_at]
    steady_gaps = [_longest_stall(before, [p]) for p in range(run.topic_partitions)]
    return RebalanceRun(
        pause_s=gap_to - gap_from,
        moved_pause_s=max((b - a for a, b in moved_gaps), default=math.nan),
        steady_gap_s=max(b - a for a, b in steady_gaps),
        go_to_pause_s=gap_from - go_at,
        revoke_to_assign_s=tuple(revoke_to_assign),
        moved=len(moved[1]) if moved else 0,
        restore_s=metrics[2].get("vigil_snapshot_restore_seconds_sum", math.nan),
        snapshot_write_s=sum(m.get("vigil_snapshot_write_seconds_sum", 0.0) for m in metrics[:2]),
        left=sum(ends) - sum(resumed.offsets),
    )


def _longest_stall(samples: Sequence[Sample], partitions: Sequence[int]) -> tuple[float, float]:
    """(last advance before, first advance after) around the longest time none of
    ``partitions`` had its committed offset move."""
    advances = [
        b.at
        for a, b in itertools.pairwise(samples)
        if any(b.offsets[p] > a.offsets[p] for p in partitions)
    ]
    gaps = list(itertools.pairwise(advances))
    if not gaps:
        raise RuntimeError("no commits moved after the third detector started")
    return max(gaps, key=lambda g: g[1] - g[0])


# -- kill -9 ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KillRun:
    """One of three detectors killed with SIGKILL mid-drain.

    Attributes:
        recovery_s: From the kill until every partition it held had its committed offset
            advance again.
        kill_to_revoke_s: From the kill to the survivors' first ``partitions_revoked`` log
            line: the broker's session timeout expiring plus their next heartbeat.
        revoke_to_assign_s: From there to the last survivor's ``partitions_assigned``
            (join, sync, restores).
        partitions: Metrics partitions the killed detector held.
        replayed: Records the survivors re-read from the snapshots' offsets up to the
            committed ones (``vigil_snapshot_replayed_events_total``).
        restore_s: Snapshot restore time the survivors report, total.
    """

    recovery_s: float
    kill_to_revoke_s: float
    revoke_to_assign_s: float
    partitions: int
    replayed: float
    restore_s: float


async def kill(
    base: Settings, events: Sequence[Encoded], poll_s: float, keep_logs: Path | None = None
) -> KillRun:
    with run_dir(keep_logs) as log_dir:
        run, ends = await fresh_run(base, events, log_dir / "snapshots")
        detectors = await spawn(run, 3, log_dir)
        try:
            async with Poller(run, run.topic_partitions, poll_s) as poller:
                await asyncio.gather(*(d.go() for d in detectors))
                _, owned = await wait_stable(detectors, run, poller, ends)
                await asyncio.sleep(0.5)
                victim = max(owned, key=lambda i: len(owned[i]))
                detectors[victim].proc.send_signal(signal.SIGKILL)
                killed_at = time.time()
                await detectors[victim].proc.wait()
                held = owned[victim]
                at_kill = await poller.wait(lambda s: s.at > killed_at, 10, "a sample")
                if any(at_kill.offsets[p] >= ends[p] for p in held):
                    raise RuntimeError("the killed detector's partitions were already drained")
                await poller.wait(
                    lambda s: all(s.offsets[p] > at_kill.offsets[p] for p in held), 120, "recovery"
                )
                survivors = [d for i, d in enumerate(detectors) if i != victim]
                metrics = await asyncio.gather(*(d.metrics() for d in survivors))
            revoked = [
                e["at"]
                for d in survivors
                for e in d.events("partitions_revoked")
                if e["at"] > killed_at
            ]
            assigned = [
                e["at"]
                for d in survivors
                for e in d.events("partitions_assigned")
                if e["at"] > killed_at
            ]
        finally:
            await stop(detectors)
            await delete_topics(run)
    recovered = max(
        next(s.at for s in poller.samples if s.at > killed_at and s.offsets[p] > at_kill.offsets[p])
        for p in held
    )
    return KillRun(
        recovery_s=recovered - killed_at,
        kill_to_revoke_s=min(revoked) - killed_at if revoked else math.nan,
        revoke_to_assign_s=max(assigned) - min(revoked) if revoked and assigned else math.nan,
        partitions=len(held),
        replayed=sum(m.get("vigil_snapshot_replayed_events_total", 0.0) for m in metrics),
        restore_s=sum(m.get("vigil_snapshot_restore_seconds_sum", 0.0) for m in metrics),
    )


# -- report ----------------------------------------------------------------------------------


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value) if abs(value) >= 100 else round(value, 3)
    if isinstance(value, tuple):
        return [_rounded(v) for v in value]
    return value


def _row(run: Any) -> str:
    return ", ".join(f"{k} {_rounded(v)}" for k, v in dataclasses.asdict(run).items())


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def report(drains: list[DrainRun], rebalances: list[RebalanceRun], kills: list[KillRun]) -> None:
    """Every run, then the medians (ratios are of medians measured in this invocation)."""
    print(f"machine: {os.cpu_count()} cores")
    for run in [*drains, *rebalances, *kills]:
        print(f"{type(run).__name__}: {_row(run)}")
    one = _median([r.steady_rate for r in drains if r.detectors == 1])
    for k in sorted({r.detectors for r in drains}):
        runs = [r for r in drains if r.detectors == k]
        steady = _median([r.steady_rate for r in runs])
        print(
            f"median, {k} detector(s): steady {steady:,.0f} events/s ({steady / one:.2f}x one),"
            f" whole drain {_median([r.whole_rate for r in runs]):,.0f},"
            f" sum of per-detector rates {_median([sum(r.detector_rates) for r in runs]):,.0f},"
            f" detector CPU {_median([sum(r.cpu) for r in runs]):.2f} cores"
            f" ({_median([r.steady_rate / sum(r.cpu) for r in runs]):,.0f} events per CPU-second),"
            f" broker {_median([r.broker_cpu for r in runs]):.2f},"
            f" machine {_median([r.machine_cpu for r in runs]):.2f},"
            f" others {_median([r.others_cpu for r in runs]):.2f}"
        )
    if rebalances:
        print(
            f"median rebalance pause: {_median([r.pause_s for r in rebalances]):.2f} s,"
            f" of a moved partition {_median([r.moved_pause_s for r in rebalances]):.2f} s"
        )
    if kills:
        print(f"median recovery after kill -9: {_median([r.recovery_s for r in kills]):.2f} s")


async def _main(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM cancels like Ctrl-C does, so every run's detectors are stopped on the way out.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    base = load_settings({"bootstrap_servers": args.bootstrap, "topic_partitions": args.partitions})
    port = int(args.bootstrap.rsplit(":", 1)[1])
    broker = broker_process(port)
    # Rebalance and kill runs need a backlog that outlasts three detectors' starts.
    backlog = 2 * args.events if {"rebalance", "kill"} & set(args.only) else args.events
    simulated = simulated_events(backlog, args.services)
    scale_events, logs = simulated[: args.events], args.logs
    drains: list[DrainRun] = []
    rebalances: list[RebalanceRun] = []
    kills: list[KillRun] = []
    plan: list[tuple[str, Callable[[], Awaitable[Any]], list[Any]]] = []
    for repeat in range(1, args.repeats + 1):
        if "scale" in args.only:
            for k in args.detectors:
                scale = functools.partial(drain, base, k, scale_events, args.poll_s, broker, logs)
                plan.append((f"repeat {repeat}: {k} detector(s)", scale, drains))
        if "rebalance" in args.only:
            join = functools.partial(rebalance, base, simulated, args.poll_s, logs)
            plan.append((f"repeat {repeat}: rebalance", join, rebalances))
        if "kill" in args.only:
            crash = functools.partial(kill, base, simulated, args.poll_s, logs)
            plan.append((f"repeat {repeat}: kill -9", crash, kills))
    for label, measure, results in plan:
        print(label, file=sys.stderr)
        await wait_quiet(args.quiet_cores, args.quiet_wait_s)
        try:
            results.append(await measure())
        except (RuntimeError, TimeoutError) as exc:  # reported, not averaged
            print(f"  failed: {exc}", file=sys.stderr)
            continue
        print(f"  {_row(results[-1])}", file=sys.stderr)
    report(drains, rebalances, kills)
    if args.json:
        _write_json(args, drains, rebalances, kills)


def _write_json(
    args: argparse.Namespace,
    drains: list[DrainRun],
    rebalances: list[RebalanceRun],
    kills: list[KillRun],
) -> None:
    runs: dict[str, Sequence[Any]] = {"drains": drains, "rebalances": rebalances, "kills": kills}
    document = {
        "cores": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(args).items() if k != "json"},
        **{name: [dataclasses.asdict(r) for r in rs] for name, rs in runs.items()},
    }
    Path(args.json).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument(
        "--events",
        type=int,
        default=800_000,
        help="pre-loaded for each scale run; twice as many for rebalance and kill runs",
    )
    parser.add_argument(
        "--detectors", type=lambda s: [int(k) for k in s.split(",")], default=[1, 2, 3]
    )
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll-s", type=float, default=0.05)
    parser.add_argument(
        "--only", type=lambda s: s.split(","), default=["scale", "rebalance", "kill"]
    )
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.5,
        help="before each run, wait for the machine to be at most this busy (cores)",
    )
    parser.add_argument("--quiet-wait-s", type=float, default=60.0, help="but no longer")
    parser.add_argument("--json", help="also write every run here")
    parser.add_argument("--logs", type=Path, help="keep each run's detector logs here")
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
