"""``vigil evaluate`` on a replay file with incidents: how well incident risk did, prequentially.

The file is replayed exactly as ``vigil replay`` does (metric lines scored, incident and
feedback lines applied as labels where they stand). Each risk vector's probability was
predicted before the model learned from that vector, so every figure here is prequential:
measured on data the model had not been trained on when it predicted.

Risk alerts as an operator counts them (:mod:`models.incident.alert_quality`): firing alerts
(one per episode) per service-day, precision (alerts followed by an incident opening within
the horizon), the share of incidents with precursors warned ahead (a firing alert in the
horizon before the opening, or an episode still open in it; every incident when the file
does not say which had precursors), the median lead.

Per service group: PR-AUC (average precision) against the base rate, ROC AUC, Brier score,
precision / recall / F1 and the confusion matrix at the threshold the group's strategy chose
by the end, a calibration (reliability) table, alerts per day and the lead time from the
first risk alert to each incident. Writes ``pr_curve.png``, ``calibration.png``,
``timeline.png`` (risk over event time for the services with the most incidents, see
:mod:`stream.offline.risk_timeline`) and ``incident_report.json`` to the output directory.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.evaluation import PRCurve
from models.incident import IncidentReport, LabelledVector, incident_report
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.logs import LogPipeline
from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import build_risk_pipeline
from stream.offline.figures import OperatingPoint, PRLine, new_figure, plot_pr_curves, save_figure
from stream.offline.replay import ReplayStats, replay
from stream.offline.risk_timeline import RiskTrace, plot_risk_timeline
from stream.settings import Settings

__all__ = [
    "RiskEvaluation",
    "evaluate_risk",
    "has_incidents",
    "operating_points",
    "run_evaluate_risk",
]


def has_incidents(lines: Iterable[bytes]) -> bool:
    """Whether any line looks like an IncidentEvent (a cheap test before a full replay).

    Examples:
        >>> has_incidents([b'{"metrics": {}}', b'{"incident_id": "INC-1", "status": "opened"}'])
        True
    """
    return any(b'"incident_id"' in line for line in lines)


class RiskEvaluation:
    """The labelled vectors of a replay, by group, what happened over its event time
    (:attr:`trace`), and the reports built from them."""

    def __init__(self, pipeline: IncidentRiskPipeline, stats: ReplayStats) -> None:
        self.pipeline = pipeline
        self.stats = stats
        self.labelled: dict[str, list[LabelledVector]] = defaultdict(list)
        self.trace = RiskTrace()

    def reports(self) -> dict[str, IncidentReport]:
        """One report per group, at the threshold the group ended with."""
        thresholds = self.pipeline.thresholds()
        out = {}
        for group, items in sorted(self.labelled.items()):
            labels = np.array([item.label for item in items], dtype=bool)
            probabilities = np.array([item.probability for item in items])
            out[group] = incident_report(labels, probabilities, thresholds[group][0])
        return out

    def summary(self, reports: dict[str, IncidentReport]) -> dict[str, Any]:
        """Everything printed and written to ``incident_report.json``, from :meth:`reports`."""
        prequential = self.pipeline.summaries()
        thresholds = self.pipeline.thresholds()
        groups = {}
        for group, report in reports.items():
            figures = report.as_dict()
            figures.pop("pr_curve", None)
            threshold, strategy = thresholds[group]
            figures["threshold"] = threshold if math.isfinite(threshold) else None
            figures["strategy"] = strategy
            for key in ("alerts_per_day", "incidents", "incidents_caught", "median_lead_time_s"):
                figures[key] = prequential.get(group, {}).get(key)
            figures["operating_points"] = operating_points(self.labelled[group])
            groups[group] = figures
        return {
            "vectors": self.pipeline.vectors_total,
            "labels": dict(self.pipeline.labeler.counts),
            "metric_events": self.stats.scored,
            "rejected": dict(self.stats.rejected),
            "risk_alerts": self.trace.quality(self.pipeline.config.horizon_s).as_dict(),
            "groups": groups,
        }


def operating_points(
    items: list[LabelledVector], recalls: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
) -> list[dict[str, float]]:
    """What each incident recall would cost: the threshold that catches that share of the
    incidents (their best-scored vector in the horizon reaching it), and how many vectors per
    service-day score over it (an upper bound on alerts: the cooldown merges neighbours).

    Examples:
        >>> from models.incident import LabelledVector
        >>> def item(t, p, incident):
        ...     return LabelledVector("a", t, {}, p, incident is not None, "", incident, "horizon")
        >>> items = [item(0, 0.9, "i1"), item(60, 0.2, "i2"), item(120, 0.1, None)]
        >>> [(r["incident_recall"], r["threshold"]) for r in operating_points(items, (0.5, 1.0))]
        [(0.5, 0.9), (1.0, 0.2)]
    """
    best: dict[str, float] = {}
    for item in items:
        if item.label and item.incident_id is not None:
            best[item.incident_id] = max(best.get(item.incident_id, 0.0), item.probability)
    if not best or not items:
        return []
    caught_at = np.sort(np.fromiter(best.values(), np.float64))[::-1]
    probabilities = np.array([item.probability for item in items])
    services = len({item.service for item in items})
    days = max((max(i.ts_s for i in items) - min(i.ts_s for i in items)) / 86_400.0, 1 / 1440)
    points = []
    for recall in recalls:
        threshold = float(caught_at[max(math.ceil(recall * caught_at.size - 1e-9), 1) - 1])
        over = int((probabilities >= threshold).sum())
        points.append(
            {
                "incident_recall": recall,
                "threshold": threshold,
                "vectors_over_per_service_day": over / services / days,
            }
        )
    return points


def evaluate_risk(
    lines: Iterable[bytes], settings: Settings, pipeline: IncidentRiskPipeline | None = None
) -> RiskEvaluation:
    """Replay ``lines`` with incident risk on (``pipeline``, or the one ``settings`` make);
    collect every labelled vector, and trace predictions, risk alerts and incidents (with
    whether each came with precursors, when its line says: the simulator's ``precursor``)."""
    pipeline = pipeline if pipeline is not None else build_risk_pipeline(settings)
    stats = ReplayStats()
    evaluation = RiskEvaluation(pipeline, stats)
    pipeline.on_labelled = lambda group, item: evaluation.labelled[group].append(item)
    evaluation.trace.attach(pipeline)
    for alert in replay(
        _noting_precursors(lines, evaluation.trace.precursors),
        MetricPipeline(settings.anomaly_config()),
        source="evaluate",
        stats=stats,
        logs=LogPipeline(settings.log_config()),
        risk=pipeline,
        batch_size=settings.max_batch,
    ):
        evaluation.trace.alerted(alert)
    return evaluation


def _noting_precursors(lines: Iterable[bytes], precursors: dict[str, bool]) -> Iterator[bytes]:
    """The lines as they are; an incident opening that says whether it had precursors (a
    field IncidentEvent ignores) is noted in ``precursors``."""
    for line in lines:
        if b'"precursor"' in line and b'"incident_id"' in line:
            data = orjson.loads(line)
            if isinstance(data, dict) and "precursor" in data and "incident_id" in data:
                precursors[str(data["incident_id"])] = data["precursor"] is not None
        yield line


def plot_reports(reports: dict[str, IncidentReport], out_dir: Path) -> None:
    """``pr_curve.png`` (with base rate and operating point; not written when no group has
    a positive) and ``calibration.png``."""
    lines = [
        PRLine(
            group,
            PRCurve(report.precision_curve, report.recall_curve, report.pr_auc, report.base_rate),
            [OperatingPoint(_final(report.threshold), report.precision, report.recall)],
        )
        for group, report in reports.items()
        if report.pr_auc is not None
    ]
    if lines:  # none without a positive label: no curve to draw
        plot_pr_curves(
            lines,
            out_dir / "pr_curve.png",
            "Incident risk: precision-recall per vector (prequential)",
        )

    fig = new_figure(5, 5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    for group, report in reports.items():
        rows = [r for r in report.reliability if r["count"] > 0]
        ax.plot(
            [r["mean_predicted"] for r in rows],
            [r["observed_rate"] for r in rows],
            marker="o",
            lw=1.0,
            label=group,
        )
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed incident rate")
    ax.set_title("Incident risk: calibration")
    ax.legend(fontsize=7)
    save_figure(fig, out_dir / "calibration.png")


def _final(threshold: float) -> str:
    shown = f"{threshold:.3g}" if math.isfinite(threshold) else "none"
    return f"the threshold in force at the end ({shown})"


def run_evaluate_risk(path: Path, out_dir: Path | None, as_json: bool, settings: Settings) -> int:
    """``vigil evaluate`` on a file with incidents: print the report, write the figures."""
    with path.open("rb") as lines:
        evaluation = evaluate_risk(lines, settings)
    if not evaluation.labelled:
        print(
            "vigil evaluate: no risk vector got a label (too short a file, or no metric lines)",
            file=sys.stderr,
        )
        return 2
    reports = evaluation.reports()
    summary = evaluation.summary(reports)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_reports(reports, out_dir)
        plot_risk_timeline(
            evaluation.trace, evaluation.pipeline.config.horizon_s, out_dir / "timeline.png"
        )
        (out_dir / "incident_report.json").write_bytes(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2)
        )
    if as_json:
        print(orjson.dumps(summary).decode())
        return 0
    print(f"{'vectors':<26} {summary['vectors']}")
    print(f"{'labels':<26} {summary['labels']}")
    print("risk alerts (one per episode), as an operator counts them")
    for key, value in summary["risk_alerts"].items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:<26} {shown}")
    for group, figures in summary["groups"].items():
        print(f"group {group}")
        for key, value in figures.items():
            if key in ("reliability", "operating_points"):
                continue
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"  {key:<24} {shown}")
        print("  calibration (bin: count, mean predicted, observed)")
        for row in figures.get("reliability", []):
            if row["count"]:
                print(
                    f"    [{row['lower']:.1f}, {row['upper']:.1f}): {row['count']:>6.0f}"
                    f"  {row['mean_predicted']:.4f}  {row['observed_rate']:.4f}"
                )
        print("  operating points (incident recall → threshold, vectors over it per day)")
        for row in figures.get("operating_points", []):
            print(
                f"    {row['incident_recall']:.1f} → {row['threshold']:.4f}, "
                f"{row['vectors_over_per_service_day']:.1f} per service-day"
            )
    return 0
