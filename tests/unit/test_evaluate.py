"""``vigil evaluate`` on a labelled replay: a report, a timeline PNG, nothing trained on."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main
from stream.simulate import MetricSimulator


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.jsonl"
    lines = []
    for i, event in enumerate(MetricSimulator(services=2, anomaly_rate=0.01, seed=2).events(6000)):
        payload = dict(event.payload)
        if i >= 2000:  # the first third is warm-up: no label
            payload["label"] = int(event.anomaly is not None)
        lines.append(orjson.dumps(payload))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_report_and_timeline(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            str(labelled),
            "--out-dir",
            str(out),
            "--json",
            "--anomaly-target-rate",
            "0.01",
            "--cooldown-s",
            "0",
        ]
    )
    assert code == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["points"] == 4000
    assert report["warmup_points"] == 2000
    assert report["anomalous_points"] > 20
    assert report["recall"] > 0.5
    assert report["precision"] > 0.3
    assert 0.9 < report["roc_auc"] <= 1.0
    assert report == orjson.loads((out / "report.json").read_bytes())
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_labels_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b"".join(e.to_bytes() + b"\n" for e in MetricSimulator(seed=1).events(50)))
    assert main(["evaluate", str(path)]) == 2
