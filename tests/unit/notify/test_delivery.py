"""SinkWorker against a real local HTTP receiver: retries with backoff, in order per
problem, problems side by side, permanent refusals given up at once."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.core.notifications import Attempt
from stream.notify.delivery import Job, RetryPolicy, SinkWorker
from stream.notify.metrics import NotifyMetrics
from stream.notify.sinks import Sink, SlackSink
from tests.http_receiver import Receiver
from tests.unit.core.notifications.problems import problem

FAST = RetryPolicy(base_s=0.01, cap_s=0.05, max_s=5.0)


async def _deliver(
    receiver: Receiver, jobs: list[Job], retry: RetryPolicy = FAST
) -> tuple[list[tuple[str, int, Attempt]], NotifyMetrics]:
    base = await receiver.start()
    settled: list[tuple[str, int, Attempt]] = []
    done = asyncio.Event()

    async def on_settled(sink: Sink, job: Job, attempt: Attempt) -> None:
        settled.append((job.problem.problem_id, job.problem.revision, attempt))
        if len(settled) == len(jobs):
            done.set()

    metrics = NotifyMetrics(CollectorRegistry(), ["slack"], ["t"])
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            worker = SinkWorker(SlackSink(f"{base}/hook"), client, retry, metrics, on_settled)
            for job in jobs:
                worker.submit(job)
            await asyncio.wait_for(done.wait(), 20)
            assert worker.busy == 0
    finally:
        await receiver.stop()
    return settled, metrics


async def test_failures_are_retried_until_delivered_honouring_retry_after() -> None:
    receiver = Receiver(script={"/hook": [503, "drop", "429:1"]})
    started = time.monotonic()
    retry = RetryPolicy(base_s=0.01, cap_s=5.0, max_s=10.0)
    settled, metrics = await _deliver(receiver, [Job(problem(1), "trigger", None)], retry)
    assert [a.outcome for _, _, a in settled] == ["delivered"]
    assert receiver.attempts["/hook"] == 4
    assert len(receiver.received) == 1
    assert time.monotonic() - started >= 1.0  # the 429's Retry-After
    retries = {
        reason: metrics.retries.labels(sink="slack", reason=reason)._value.get()
        for reason in ("http_5xx", "protocol", "http_429")
    }
    assert retries == {"http_5xx": 1, "protocol": 1, "http_429": 1}


async def test_a_problem_notices_arrive_in_order_and_others_go_alongside() -> None:
    receiver = Receiver(script={"/hook": [503, 503]})
    jobs = [
        Job(problem(1), "trigger", None),
        Job(problem(2, severity="critical"), "trigger", None),
        Job(problem(3, "resolved"), "resolve", None),
        Job(problem(1, problem_id="p-2"), "trigger", None),
    ]
    settled, _ = await _deliver(receiver, jobs)
    assert all(a.outcome == "delivered" for _, _, a in settled)
    bodies = receiver.bodies("/hook")
    assert len(bodies) == 4
    p1 = [orjson.loads(body)["text"] for body in bodies if b"p-2" not in body]
    assert [r for pid, r, _ in settled if pid == "p-1"] == [1, 2, 3]
    assert [text.split(" ")[0] for text in p1] == [
        ":warning:",
        ":red_circle:",
        ":white_check_mark:",
    ]


async def test_a_refusal_is_permanent_and_retries_run_out() -> None:
    refused, _ = await _deliver(
        Receiver(script={"/hook": [400]}), [Job(problem(1), "trigger", None)]
    )
    assert [a for _, _, a in refused] == [Attempt("permanent", "http_400")]
    receiver = Receiver(script={"/hook": [503] * 100})
    # Retried for a second at most (time enough for two attempts on a loaded machine),
    # every 0.05-0.1 s.
    short = RetryPolicy(base_s=0.05, cap_s=0.1, max_s=1.0)
    exhausted, _ = await _deliver(receiver, [Job(problem(1), "trigger", None)], short)
    assert [a for _, _, a in exhausted] == [Attempt("permanent", "retries_exhausted")]
    assert 2 <= receiver.attempts["/hook"] <= 21


@pytest.mark.parametrize("kind", ["connect"])
async def test_a_sink_that_is_not_there_is_retried(kind: str) -> None:
    metrics = NotifyMetrics(CollectorRegistry(), ["slack"], ["t"])
    settled: list[Attempt] = []

    async def on_settled(sink: Sink, job: Job, attempt: Attempt) -> None:
        settled.append(attempt)

    async with httpx.AsyncClient(timeout=1.0) as client:
        worker = SinkWorker(
            SlackSink("http://127.0.0.1:9/hook"),
            client,
            RetryPolicy(0.01, 0.02, 0.1),
            metrics,
            on_settled,
        )
        attempt = await worker.deliver(Job(problem(1), "trigger", None))
    assert attempt == Attempt("permanent", "retries_exhausted")
    assert metrics.retries.labels(sink="slack", reason=kind)._value.get() >= 1


class _Broken:
    name = "slack"
    keyed = False

    def request(self, problem: object, action: object, now: object) -> object:
        raise RuntimeError("a bug")


async def test_a_bug_in_a_sink_gives_the_job_up_instead_of_hanging() -> None:
    metrics = NotifyMetrics(CollectorRegistry(), ["slack"], ["t"])
    settled: list[Attempt] = []

    async def on_settled(sink: Sink, job: Job, attempt: Attempt) -> None:
        settled.append(attempt)

    async with httpx.AsyncClient() as client:
        worker = SinkWorker(_Broken(), client, FAST, metrics, on_settled)  # type: ignore[arg-type]  # a stand-in sink
        worker.submit(Job(problem(1), "trigger", None))
        for _ in range(100):
            if settled:
                break
            await asyncio.sleep(0.01)
    assert settled == [Attempt("permanent", "unexpected")]
    assert worker.busy == 0
