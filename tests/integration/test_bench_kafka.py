"""``vigil bench`` through the real broker, at a small size: every figure is measured."""

from __future__ import annotations

import orjson
import pytest

from stream.cli import main

pytestmark = pytest.mark.integration


def test_bench_kafka_figures(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "bench",
        "--bootstrap",
        kafka_bootstrap,
        "--events",
        "1000",
        "--kafka-events",
        "5000",
        "--latency-rate",
        "500",
        "--latency-seconds",
        "4",
        "--json",
    ]
    assert main(args) == 0
    figures = {f["name"]: f for f in orjson.loads(capsys.readouterr().out)}
    assert figures["kafka end-to-end"]["value"] > 0
    p50 = figures["event→alert latency p50"]["value"]
    p99 = figures["event→alert latency p99"]["value"]
    assert 0 < p50 <= p99
