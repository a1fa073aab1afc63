"""Vigil's log templates and log pipeline on the Loghub 2k samples (HDFS, BGL).

1. Grouping accuracy of the template miner against Loghub's ground-truth templates (EventId):
   a line is grouped correctly when the set of lines sharing its predicted template is exactly
   the set of lines sharing its EventId (the standard Loghub metric). Messages are the parsed
   ``Content`` column, mined per dataset as one service, with Vigil's generic masks (no
   dataset-specific regexes).
2. BGL through the whole LogPipeline (labels: first column ``-`` is normal, else an alert):
   the share of alert lines that fall in windows Vigil flagged, next to the share of normal
   lines that do. The BGL sample is 2,000 lines picked from 214 days, so windows are long
   (``--bgl-window``, default 1 h: 456 of its 5,128 hours hold any line) and the window model
   is warmed up on fewer windows than in production. It is a small sample: read the figures
   as a smoke test, not a detection benchmark. Each detector's flagged windows are reported
   apart (``hst-logs``, ``new-templates``, ``template-rates``) and together. The template
   rates keep the production half-life in windows (720) and, by default, the production
   test level per window (``--bgl-rate-alpha``, 0.25 a day at 30 s windows): the budget per
   day would allow 120 times as many false windows at 1 h windows.

Data is read in place (read-only) from ``--data`` (default ``/work/shared/data/loghub``).
Usage: python benchmarks/loghub_templates.py [--data DIR] [--bgl-window 3600]
    [--bgl-rate-alpha A] [--json]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from stream.core.logs.config import LogConfig, default_window_anomaly_config
from stream.core.logs.pipeline import LogPipeline
from stream.core.logs.templates import ServiceTemplates
from stream.schemas import Evidence, LogEvent

# BGL's levels beyond LogEvent's five.
_BGL_LEVELS = {"SEVERE": "ERROR", "FAILURE": "FATAL"}


def read_structured(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def grouping_accuracy(predicted: list[str], truth: list[str]) -> float:
    """Share of lines whose predicted group is exactly their ground-truth group."""
    groups_p: dict[str, set[int]] = defaultdict(set)
    groups_t: dict[str, set[int]] = defaultdict(set)
    for i, (p, t) in enumerate(zip(predicted, truth, strict=True)):
        groups_p[p].add(i)
        groups_t[t].add(i)
    correct = sum(1 for i, p in enumerate(predicted) if groups_p[p] == groups_t[truth[i]])
    return correct / len(predicted)


def mine(rows: list[dict[str, str]], name: str, **kwargs: Any) -> dict[str, Any]:
    miner = ServiceTemplates(name, **kwargs)
    predicted = [miner.add(r["Content"])[0].template_id for r in rows]
    truth = [r["EventId"] for r in rows]
    return {
        "lines": len(rows),
        "templates_truth": len(set(truth)),
        "templates_mined": len(set(predicted)),
        "grouping_accuracy": round(grouping_accuracy(predicted, truth), 4),
    }


def bgl_events(rows: list[dict[str, str]]) -> list[LogEvent]:
    events = []
    for r in rows:
        level = _BGL_LEVELS.get(r["Level"].upper(), r["Level"])
        events.append(
            LogEvent(
                ts=datetime.fromtimestamp(int(r["Timestamp"]), UTC),
                service="bgl",
                level=level,
                message=r["Content"],
                host=r["Node"],
            )
        )
    return events


def bgl_pipeline(rows: list[dict[str, str]], window_s: float, rate_alpha: float) -> dict[str, Any]:
    anomaly = dataclasses.replace(default_window_anomaly_config(), warmup_events=50, window_size=25)
    # idle_expiry = one window: the sample's gaps are sampling gaps, not silences.
    config = LogConfig(
        window_s=window_s,
        lateness_s=0.0,
        idle_expiry_s=window_s,
        anomaly=anomaly,
        rate_false_alerts_per_day=rate_alpha * 86_400.0 / window_s,
        rate_halflife_s=720 * window_s,
    )
    pipeline = LogPipeline(config)
    events = bgl_events(rows)
    outcome = pipeline.process_batch(events, lambda i: Evidence(topic="bgl", partition=0, offset=i))
    end = pipeline.advance(events[-1].ts.replace(year=events[-1].ts.year + 1))
    windows = outcome.windows + end.windows
    alerts = outcome.alerts + end.alerts
    by_detector = {
        pipeline.model_name: {w.start.timestamp() for w in windows if w.flagged},
        pipeline.rule_name: {w.start.timestamp() for w in windows if w.rule_flagged},
        pipeline.rates_name: {w.start.timestamp() for w in windows if w.rate_flagged},
    }
    flagged = set().union(*by_detector.values())
    warm = {w.start.timestamp() for w in windows if w.warming_up}
    with_alert_lines = {
        int(r["Timestamp"]) // window_s * window_s for r in rows if r["Label"] != "-"
    }

    def shares(windows_flagged: set[float], after_warmup: bool) -> dict[str, float | int]:
        counts = {"alert": [0, 0], "normal": [0, 0]}
        for r in rows:
            start = int(r["Timestamp"]) // window_s * window_s
            if after_warmup and start in warm:
                continue
            kind = "normal" if r["Label"] == "-" else "alert"
            counts[kind][0] += 1
            counts[kind][1] += start in windows_flagged
        return {
            "windows_flagged": len(windows_flagged - warm if after_warmup else windows_flagged),
            "of_them_with_alert_lines": len(windows_flagged & with_alert_lines),
            "alert_lines": counts["alert"][0],
            "alert_lines_in_flagged_windows": round(
                counts["alert"][1] / max(1, counts["alert"][0]), 3
            ),
            "normal_lines": counts["normal"][0],
            "normal_lines_in_flagged_windows": round(
                counts["normal"][1] / max(1, counts["normal"][0]), 3
            ),
        }

    return {
        "window_s": window_s,
        "rate_alpha": rate_alpha,
        "windows": len(windows),
        "windows_with_lines": sum(1 for w in windows if w.lines),
        "windows_with_alert_lines": len(with_alert_lines),
        "alerts": {name: sum(1 for a in alerts if a.model.name == name) for name in by_detector},
        "all_lines": shares(flagged, False),
        "after_warmup": shares(flagged, True),
        **{f"after_warmup:{name}": shares(s, True) for name, s in by_detector.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/loghub"))
    parser.add_argument("--bgl-window", type=float, default=3600.0)
    parser.add_argument("--bgl-rate-alpha", type=float, default=LogConfig().rate_alpha)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    hdfs = read_structured(args.data / "HDFS" / "HDFS_2k.log_structured.csv")
    bgl = read_structured(args.data / "BGL" / "BGL_2k.log_structured.csv")
    report = {
        "templates": {
            "HDFS": mine(hdfs, "hdfs"),
            "BGL": mine(bgl, "bgl"),
            # Loghub's published Drain settings for both: similarity 0.5, depth 4.
            "HDFS_sim0.5": mine(hdfs, "hdfs", similarity=0.5),
            "BGL_sim0.5": mine(bgl, "bgl", similarity=0.5),
        },
        "bgl_pipeline": bgl_pipeline(bgl, args.bgl_window, args.bgl_rate_alpha),
    }
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    for name, result in report["templates"].items():
        print(
            f"{name:12s} grouping accuracy {result['grouping_accuracy']:.3f}"
            f"  templates mined {result['templates_mined']} (truth {result['templates_truth']})"
        )
    print("BGL through LogPipeline:")
    for key, value in report["bgl_pipeline"].items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
