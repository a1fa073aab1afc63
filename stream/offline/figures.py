"""Figures written as PNG files: matplotlib figures on the Agg canvas, never pyplot.

Without pyplot there is no global state (no backend to switch, no figure left open). Files
are written at 100 dpi without a ``Software`` stamp, so the same data gives the same bytes.
matplotlib is imported on first use: commands that draw nothing never load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.evaluation import PRCurve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DPI", "OperatingPoint", "PRLine", "new_figure", "plot_pr_curves", "save_figure"]

DPI = 100

# Operating points (marker, size, hollow): a ring first, so a point on it stays visible.
_POINT_STYLES = (("o", 110, True), ("D", 30, False), ("s", 30, False))


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Decisions marked on a precision-recall curve: their precision and recall."""

    label: str
    precision: float
    recall: float


@dataclass(frozen=True, slots=True)
class PRLine:
    """One curve of a precision-recall figure, with the operating points marked on it."""

    name: str
    curve: PRCurve
    points: Sequence[OperatingPoint] = ()


def new_figure(width: float, height: float) -> Figure:
    """An empty figure ``width`` by ``height`` inches, laid out as it is drawn (constrained
    layout: room is made for titles, labels and a legend placed ``outside``)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path: Path) -> None:
    """Write the figure to ``path`` as PNG."""
    figure.savefig(path, dpi=DPI, metadata={"Software": None})


def plot_pr_curves(lines: Sequence[PRLine], path: Path, title: str) -> None:
    """A precision-recall figure: each curve with its PR-AUC, base rate and operating points."""
    figure = new_figure(6.4, 5.6)
    ax = figure.add_subplot()
    for i, line in enumerate(lines):
        color = f"C{i}"
        curve = line.curve
        ax.plot(
            curve.recall,
            curve.precision,
            lw=1.3,
            color=color,
            label=f"{line.name}: PR-AUC {curve.average_precision:.4f}",
        )
        ax.axhline(
            curve.base_rate,
            lw=0.9,
            ls=":",
            color=color,
            label=f"{line.name}: base rate {curve.base_rate:.3f}",
        )
        for point, (marker, size, hollow) in zip(line.points, _POINT_STYLES, strict=False):
            ax.scatter(
                [point.recall],
                [point.precision],
                marker=marker,
                s=size,
                zorder=3,
                facecolors="none" if hollow else color,
                edgecolors="black",
                linewidths=1.5 if hollow else 1.0,
                label=f"{point.label}: P {point.precision:.2f}, R {point.recall:.2f}",
            )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    # Below the axes: a good curve fills the top right, a poor one the bottom left.
    figure.legend(loc="outside lower center", fontsize=8, frameon=False)
    save_figure(figure, path)
