"""``vigil bench --only kafka`` through the real broker, at a small size: every figure is
measured, at each of two rates."""

from __future__ import annotations

import orjson
import pytest

from stream.cli import main

pytestmark = pytest.mark.integration


def test_bench_kafka_figures(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "bench",
        "--only",
        "kafka",
        "--bootstrap",
        kafka_bootstrap,
        "--kafka-events",
        "5000",
        "--kafka-pairs",
        "2",
        "--latency-rates",
        "300,800",
        "--latency-seconds",
        "4",
        "--quiet",
        "--json",
    ]
    assert main(args) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["sections"] == ["kafka"]
    figures = {key: f["value"] for key, f in report["figures"].items()}
    assert figures["kafka_throughput"] > 0
    assert figures["kafka_log_throughput"] > 0
    assert figures["kafka_throughput_anomaly_only"] > 0
    cost = 100.0 * (1.0 - figures["kafka_throughput"] / figures["kafka_throughput_anomaly_only"])
    assert figures["kafka_risk_cost"] == pytest.approx(cost)
    for rate in ("300", "800"):
        assert 0 < figures[f"latency_{rate}_p50"] <= figures[f"latency_{rate}_p99"]
        assert figures[f"latency_{rate}_p99"] <= figures[f"latency_{rate}_max"]
        assert figures[f"latency_{rate}_achieved_rate"] > 0
        assert figures[f"latency_{rate}_mean_batch"] >= 1
        # By the broker's clock, from the event's append to its alert's.
        assert 0 <= figures[f"latency_{rate}_broker_p50"] <= figures[f"latency_{rate}_broker_p99"]
        assert figures[f"latency_{rate}_broker_p99"] <= figures[f"latency_{rate}_broker_max"]
        # The run waits until the detector has scored every event it produced.
        assert (
            f"{int(rate) * 4} events produced, {int(rate) * 4} scored"
            in (report["figures"][f"latency_{rate}_achieved_rate"]["note"])
        )
    assert {f["unit"] for key, f in report["figures"].items() if "_p" in key} == {"ms"}
