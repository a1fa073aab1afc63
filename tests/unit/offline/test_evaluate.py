"""``vigil evaluate`` on a labelled replay: a report, timeline and PR-curve PNGs, nothing
trained on."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main
from stream.core.pipeline import MetricPipeline
from stream.dev.simulate import MetricSimulator
from stream.offline.evaluate import evaluate_lines, pr_line
from stream.settings import load_settings
from tests.unit.png import png_size


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
            "--anomaly-budget-per-day",
            "86.4",
            "--anomaly-resolve-after",
            "1",
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
    assert png_size(out / "timeline.png") == (1200, 520)  # 2 services
    assert png_size(out / "pr_curve.png") == (640, 560)
    assert 10_000 < (out / "pr_curve.png").stat().st_size < 200_000


def test_pr_curve_marks_the_flags_and_the_alerts(labelled: Path) -> None:
    settings = load_settings({"anomaly_budget_per_day": 86.4})
    pipeline = MetricPipeline(settings.anomaly_config())
    run = evaluate_lines(labelled.read_bytes().splitlines(), pipeline)
    report = run.report()
    line = pr_line(run, report)
    assert line is not None
    assert line.curve.base_rate == report.anomalous_points / report.points
    assert line.curve.recall[0] == 1.0
    assert line.curve.recall[-1] == 0.0
    assert 0.9 < line.curve.average_precision <= 1.0
    flags, alerts = line.points
    assert (flags.precision, flags.recall) == (report.precision, report.recall)
    raised = run.arrays("alerts")
    hits = int((raised & run.arrays("labels")).sum())
    assert 0 < raised.sum() < report.flags  # an episode alerts once for its flags
    assert alerts.precision == hits / raised.sum()
    assert alerts.recall == hits / report.anomalous_points


def test_no_pr_curve_without_an_anomaly(tmp_path: Path) -> None:
    path = tmp_path / "quiet.jsonl"
    events = MetricSimulator(services=1, anomaly_rate=0.0, seed=3).events(800)
    path.write_bytes(b"".join(orjson.dumps({**e.payload, "label": 0}) + b"\n" for e in events))
    out = tmp_path / "report"
    assert main(["evaluate", str(path), "--out-dir", str(out), "--json"]) == 0
    assert (out / "report.json").is_file()
    assert png_size(out / "timeline.png")[0] == 1200
    assert not (out / "pr_curve.png").exists()


def test_no_labels_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b"".join(e.to_bytes() + b"\n" for e in MetricSimulator(seed=1).events(50)))
    assert main(["evaluate", str(path)]) == 2
