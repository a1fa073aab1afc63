"""The risk models' holdout figures as PNG bytes: the precision-recall curve with the
operating point, and the holdout's probabilities over event time (alerts, incidents, the
threshold). The sidecar stores them beside each artifact (:mod:`stream.sidecar.artifacts`); the
data they draw is pure (:mod:`models.batch.holdout`).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from models.batch.holdout import HoldoutSample, TimelineMarks, timeline_marks
from models.batch.risk import RiskArtifact

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure

__all__ = ["holdout_timeline_png", "png_bytes", "pr_curve_png", "risk_timeline_png"]

_FLOOR = 1e-3  # the probability axis is logit: from this to 1 - this
_TICKS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999)
_MAX_MARKED = 200  # more incidents than this: counted in the legend, not marked one by one


def pr_curve_png(artifact: RiskArtifact) -> bytes:
    """The holdout's precision-recall curve with the operating point, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    precision, recall = artifact.pr_curve
    figure = Figure(figsize=(5.0, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(recall, precision, lw=1.2, label=f"PR-AUC {artifact.metrics['pr_auc']:.3f}")
    ax.axhline(artifact.metrics["base_rate"], lw=0.8, ls=":", color="grey", label="base rate")
    ax.scatter(
        [artifact.metrics["recall"]],
        [artifact.metrics["precision"]],
        s=40,
        zorder=3,
        color="C3",
        label=f"{artifact.strategy} ≥ {artifact.threshold:.3g}",
    )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall (vectors)")
    ax.set_ylabel("precision")
    ax.set_title(f"{artifact.version}: holdout", fontsize=8)
    ax.legend(fontsize=7)
    figure.tight_layout()
    return png_bytes(figure)


def risk_timeline_png(artifact: RiskArtifact) -> bytes | None:
    """The holdout's probabilities over event time, alerts, incidents and the threshold,
    as PNG bytes (see :func:`holdout_timeline_png`); None for an
    artifact without :attr:`holdout_sample` (pickled before it was kept).
    """
    if artifact.holdout_sample is None:
        return None
    m = artifact.metrics
    title = (
        f"{artifact.version}: holdout, {artifact.strategy} ≥ {artifact.threshold:.3g}, "
        f"PR-AUC {m['pr_auc']:.3f}, base rate {m['base_rate']:.3f}\n"
        f"{m['n']:,} rows, {m['positives']:,} positive; alerts {m['tp'] + m['fp']:,} "
        f"({m['tp']:,} on positives), recall {m['recall']:.2f}, precision {m['precision']:.2f}"
    )
    if m["incidents"] is not None:
        title += f"; {m['incidents']} incidents, {m['incident_recall']:.0%} warned of"
    return holdout_timeline_png(artifact.holdout_sample, artifact.threshold, title)


def holdout_timeline_png(sample: HoldoutSample, threshold: float, title: str) -> bytes:
    """The holdout's probabilities over event time as PNG bytes: rows as points (negatives
    thinned), alerts ringed, each incident's positive rows shaded, the threshold dashed.

    Examples:
        >>> from models.batch.holdout import thin_holdout
        >>> sample = thin_holdout([0.0, 60.0, 120.0], [0.2, 0.6, 0.3], [0, 1, 1],
        ...                       ["a", "a", "a"], threshold=0.5)
        >>> holdout_timeline_png(sample, 0.5, "example")[:4]
        b'\\x89PNG'
    """
    from matplotlib.figure import Figure

    marks = timeline_marks(sample, threshold)
    span_s = float(sample.offset_s.max()) if sample.offset_s.size else 0.0
    unit_s, unit = (3600.0, "hours") if span_s >= 2 * 3600.0 else (60.0, "minutes")
    x = sample.offset_s.astype(np.float64) / unit_s
    y = np.clip(sample.probability.astype(np.float64), _FLOOR, 1.0 - _FLOOR)
    figure = Figure(figsize=(11.0, 4.6), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    transform = ax.get_xaxis_transform()  # x in data, y in axes fraction
    spans = [(m.first_s / unit_s, (m.last_s - m.first_s) / unit_s) for m in marks.incidents]
    ax.broken_barh(spans, (0.0, 1.0), transform=transform, **_INCIDENT)  # one artist for all
    negative = ~sample.positive
    ax.scatter(x[negative], y[negative], **_NEGATIVE)
    false_alarm = negative & marks.alert  # opaque: inside its ring
    ax.scatter(x[false_alarm], y[false_alarm], **{**_NEGATIVE, "alpha": 1.0, "zorder": 2})
    ax.scatter(x[sample.positive], y[sample.positive], **_POSITIVE)
    ax.scatter(x[marks.alert], y[marks.alert], **_ALERT)
    ax.axhline(min(max(threshold, _FLOOR), 1.0 - _FLOOR), **_THRESHOLD)
    for caught in (True, False) if len(marks.incidents) <= _MAX_MARKED else ():
        at = [m.last_s / unit_s for m in marks.incidents if m.caught is caught]
        ax.scatter(at, [0.95] * len(at), transform=transform, **_warned_style(caught))
    ax.set_yscale("logit")
    ax.set_ylim(_FLOOR, 1.0 - _FLOOR)
    ax.set_yticks(_TICKS, labels=[f"{t:g}" for t in _TICKS])
    ax.set_yticks([], minor=True)
    pad = 0.01 * max(span_s, unit_s) / unit_s  # a holdout at one instant still gets a width
    ax.set_xlim(-pad, span_s / unit_s + pad)
    start = dt.datetime.fromtimestamp(sample.origin_s, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    ax.set_xlabel(f"event time, {unit} after the holdout's first row ({start} UTC)")
    ax.set_ylabel("P(incident within the horizon)")
    ax.set_title(title, loc="left", fontsize=9)
    ax.grid(alpha=0.25)
    figure.legend(
        handles=_legend_handles(sample, marks, threshold),
        loc="outside upper center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    return png_bytes(figure)


def png_bytes(figure: Figure) -> bytes:
    """``figure`` drawn on the Agg canvas as PNG bytes, without a ``Software`` stamp (the same
    figure gives the same bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


# Matplotlib styles, shared by the drawing and the legend.
_NEGATIVE: dict[str, Any] = {"s": 4, "color": "tab:blue", "alpha": 0.45, "lw": 0}
_POSITIVE: dict[str, Any] = {"s": 9, "color": "tab:orange", "zorder": 2, "lw": 0}
_ALERT: dict[str, Any] = {
    "s": 36,
    "facecolors": "none",
    "edgecolors": "tab:red",
    "linewidths": 0.9,
    "zorder": 1.5,  # under the points: in a crowd, their colours still show
}
_INCIDENT: dict[str, Any] = {"color": "tab:orange", "alpha": 0.2, "lw": 0}
_THRESHOLD: dict[str, Any] = {"lw": 0.9, "color": "black", "ls": "--"}


def _warned_style(caught: bool) -> dict[str, Any]:
    return {"marker": "v", "s": 30, "color": "tab:green" if caught else "grey", "zorder": 4}


def _legend_handles(sample: HoldoutSample, marks: TimelineMarks, threshold: float) -> list[Artist]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def dots(style: dict[str, Any], label: str) -> Line2D:
        return Line2D([], [], ls="", marker="o", markersize=4, color=style["color"], label=label)

    kept = int((~sample.positive).sum())
    shown = "all" if kept == sample.negatives else f"{kept:,} evenly spaced of"
    caught = sum(m.caught for m in marks.incidents)
    handles: list[Artist] = [
        dots(_NEGATIVE, f"negative row ({shown} {sample.negatives:,})"),
        dots(_POSITIVE, f"positive row (all {int(sample.positive.sum()):,})"),
        Line2D([], [], ls="", marker="o", mfc="none", mec="tab:red", label="alert (p ≥ threshold)"),
        Line2D([], [], label=f"threshold {threshold:.3g}", **_THRESHOLD),
    ]
    if len(marks.incidents) > _MAX_MARKED:
        label = f"{len(marks.incidents):,} incidents, {caught:,} warned of (too many to mark)"
        handles += [Patch(label=label, **_INCIDENT)]
    elif marks.incidents:
        handles += [
            Patch(label="an incident's positive rows, first → last", **_INCIDENT),
            Line2D([], [], ls="", label=f"incident warned of ({caught})", **_marker(True)),
            Line2D(
                [],
                [],
                ls="",
                label=f"incident missed ({len(marks.incidents) - caught})",
                **_marker(False),
            ),
        ]
    return handles


def _marker(caught: bool) -> dict[str, Any]:
    style = _warned_style(caught)
    return {"marker": style["marker"], "color": style["color"]}
