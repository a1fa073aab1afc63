"""``vigil evaluate FILE``: detection quality of the detector's pipeline on a labelled replay.

Lines are MetricEvents as for ``vigil replay``; a line may carry ``"label"`` (true/1 for an
anomalous point). Lines without a label are warm-up: scored and learned, as live, but not
counted. Every counted point is scored *before* the model learns it (prequential), so nothing
is measured on data the model was trained on.

A point is *flagged* when its score reaches the threshold in force after warm-up; *alerts*
are the flags that open an episode. Point-wise and point-adjusted precision, recall and
F1 are computed on flags; alerts per 1,000 events on alerts. Writes ``timeline.png``,
``pr_curve.png`` (the scores' point-wise precision-recall, flags and alerts marked) and
``report.json`` to the output directory.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.evaluation import DetectionReport, evaluate_detection, pr_curve, precision_recall_f1
from stream.codec import DecodeError, decode_metric
from stream.core.pipeline import MetricPipeline
from stream.offline.figures import OperatingPoint, PRLine, new_figure, plot_pr_curves, save_figure
from stream.schemas import Evidence, MetricSample
from stream.settings import Settings

__all__ = [
    "EvaluationRun",
    "evaluate_lines",
    "plot_pr_curve",
    "plot_timeline",
    "pr_line",
    "run_evaluate",
]


@dataclass
class _Series:
    ts: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)
    flags: list[bool] = field(default_factory=list)
    alerts: list[bool] = field(default_factory=list)


@dataclass
class EvaluationRun:
    """Per-service series of the labelled points, and what was skipped."""

    series: dict[str, _Series] = field(default_factory=lambda: defaultdict(_Series))
    warmup_points: int = 0
    rejected: int = 0

    def arrays(self, name: str) -> np.ndarray:
        """One field over all services' labelled points, services in sorted order."""
        return np.array([v for s in sorted(self.series) for v in getattr(self.series[s], name)])

    def report(self) -> DetectionReport:
        """Pooled report over every labelled point."""
        return evaluate_detection(
            self.arrays("labels"), self.arrays("flags"), self.arrays("scores")
        )


def _label_of(raw: bytes) -> bool | None:
    label = orjson.loads(raw).get("label")
    if label is None:
        return None
    return bool(label) and label not in ("0", "false", "False")


def evaluate_lines(
    lines: list[bytes], pipeline: MetricPipeline, batch_size: int = 2000
) -> EvaluationRun:
    """Run the lines through ``pipeline`` in batches (exact, as live); collect labelled points."""
    run = EvaluationRun()
    events: list[MetricSample] = []
    labels: list[bool | None] = []

    def flush() -> None:
        outcome = pipeline.process_batch(
            events, lambda i: Evidence(topic="evaluate", partition=0, offset=i)
        )
        alerted = {i for i, alert in outcome.alerts if alert.status == "firing"}
        for i, (event, label) in enumerate(zip(events, labels, strict=True)):
            if label is None:
                run.warmup_points += 1
                continue
            s = run.series[event.service]
            s.ts.append(event.ts.timestamp())
            s.scores.append(float(outcome.scores[i]))
            s.thresholds.append(float(outcome.thresholds[i]))
            s.labels.append(label)
            s.flags.append(bool(outcome.flagged[i]))
            s.alerts.append(i in alerted)
        events.clear()
        labels.clear()

    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        event = decode_metric(raw)
        if isinstance(event, DecodeError):
            run.rejected += 1
            continue
        events.append(event)
        labels.append(_label_of(raw))
        if len(events) >= batch_size:
            flush()
    if events:
        flush()
    return run


def plot_timeline(run: EvaluationRun, path: Path, max_services: int = 4) -> None:
    """Score timeline PNG: scores, threshold, labelled anomalies shaded, alerts marked."""
    services = sorted(run.series)[:max_services]
    fig = new_figure(12, 2.6 * len(services))
    axes = fig.subplots(len(services), 1, squeeze=False)
    for ax, service in zip(axes[:, 0], services, strict=True):
        s = run.series[service]
        t = (np.array(s.ts) - s.ts[0]) / 3600.0
        labels = np.array(s.labels)
        ax.fill_between(
            t,
            0,
            1,
            where=labels,
            color="tab:red",
            alpha=0.15,
            step="mid",
            label="labelled anomaly",
            transform=ax.get_xaxis_transform(),
        )
        ax.plot(t, s.scores, lw=0.6, color="tab:blue", label="score")
        thresholds = np.array(s.thresholds)
        ax.plot(
            t,
            np.where(np.isfinite(thresholds), thresholds, np.nan),
            lw=0.8,
            color="black",
            ls="--",
            label="threshold",
        )
        alerts = np.array(s.alerts)
        ax.scatter(
            t[alerts], np.array(s.scores)[alerts], color="tab:red", s=14, zorder=3, label="alert"
        )
        ax.set_title(service, loc="left", fontsize=9)
        ax.set_ylabel("score")
    axes[-1, 0].set_xlabel("hours since first labelled point")
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=4)
    save_figure(fig, path)


def pr_line(run: EvaluationRun, report: DetectionReport) -> PRLine | None:
    """The scores' point-wise precision-recall curve over every labelled point, with the
    flags' and the alerts' operating points (None when no point is labelled anomalous)."""
    labels = run.arrays("labels")
    curve = pr_curve(labels, run.arrays("scores"))
    if curve is None:
        return None
    alert_precision, alert_recall, _ = precision_recall_f1(run.arrays("alerts"), labels)
    points = (
        OperatingPoint("flags (score ≥ threshold in force)", report.precision, report.recall),
        OperatingPoint("alerts (episodes opened)", alert_precision, alert_recall),
    )
    return PRLine("scores", curve, points)


def plot_pr_curve(run: EvaluationRun, report: DetectionReport, path: Path) -> bool:
    """``pr_curve.png`` (see :func:`pr_line`); False, and nothing written, without a
    labelled anomaly."""
    line = pr_line(run, report)
    if line is None:
        return False
    plot_pr_curves([line], path, "Anomaly scores: precision-recall, point-wise (prequential)")
    return True


def run_evaluate(path: Path, out_dir: Path | None, as_json: bool, settings: Settings) -> int:
    """``vigil evaluate``: print the report; write ``timeline.png``, ``pr_curve.png`` (and
    ``report.json``)."""
    if not path.is_file():
        print(f"vigil evaluate: no such file: {path}", file=sys.stderr)
        return 2
    run = evaluate_lines(
        path.read_bytes().splitlines(),
        MetricPipeline(settings.anomaly_config()),
        batch_size=settings.max_batch,
    )
    if not run.series:
        print('vigil evaluate: no labelled points (lines need a "label" field)', file=sys.stderr)
        return 2
    report = run.report()
    summary: dict[str, Any] = {
        **report.as_dict(),
        "alerts": int(run.arrays("alerts").sum()),
        "warmup_points": run.warmup_points,
        "rejected": run.rejected,
        "services": len(run.series),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_timeline(run, out_dir / "timeline.png")
        plot_pr_curve(run, report, out_dir / "pr_curve.png")
        (out_dir / "report.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if as_json:
        print(orjson.dumps(summary).decode())
    else:
        for key, value in summary.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"{key:<22} {shown}")
    return 0
