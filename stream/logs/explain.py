"""Which templates make a window unusual: what an operator reads first in a log alert."""

from __future__ import annotations

import math
from collections.abc import Iterable

from stream.logs.features import WindowStats
from stream.schemas import TemplateSample

__all__ = ["TemplateBaseline", "top_templates"]

_MIN_EXPECTED = 0.01


class TemplateBaseline:
    """How many lines of each template a service usually writes per window.

    An exponentially weighted mean per template, over windows (a window without the template
    counts as 0, applied lazily when the template is next seen or asked about).

    Args:
        alpha: Weight of the newest window.
        capacity: Templates remembered; beyond it the least expected are forgotten.

    Examples:
        >>> b = TemplateBaseline(alpha=0.5)
        >>> b.learn(0, {"t1": 10}); b.learn(1, {"t1": 10})
        >>> b.expected("t1", 2), b.expected("t1", 3), b.expected("t2", 2)  # window 2 had none
        (7.5, 3.75, 0.0)
    """

    def __init__(self, alpha: float = 0.1, capacity: int = 4000) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.capacity = capacity
        self._means: dict[str, tuple[float, int]] = {}

    def __len__(self) -> int:
        return len(self._means)

    def expected(self, template_id: str, window: int) -> float:
        """The expected count of a template in window number ``window`` (before learning it)."""
        mean, at = self._means.get(template_id, (0.0, window))
        # Windows between the last one learned and this one held none of the template.
        return mean * (1.0 - self.alpha) ** max(0, window - at - 1)

    def learn(self, window: int, counts: dict[str, int]) -> None:
        """Fold in window number ``window``'s count per template."""
        a = self.alpha
        for template_id, count in counts.items():
            previous = self.expected(template_id, window)
            self._means[template_id] = (previous + a * (count - previous), window)
        if len(self._means) > self.capacity:
            ranked = sorted(self._means, key=lambda t: (self.expected(t, window), t))
            for template_id in ranked[: len(self._means) - self.capacity]:
                del self._means[template_id]


def top_templates(
    stats: WindowStats,
    baseline: TemplateBaseline,
    window: int,
    *,
    k: int = 3,
    sample_chars: int = 200,
    only: Iterable[str] | None = None,
) -> list[TemplateSample]:
    """The ``k`` templates of a window most above their usual count, one sample line each.

    Templates are ranked by the Poisson log-likelihood ratio of their count against the
    expected one, ``c·ln(c/λ) - (c - λ)`` for ``c > λ`` (0 otherwise), with ``λ`` at least
    0.01: how unlikely that many lines are for that template. A template never seen before
    ranks first unless a usual one is far above its usual volume.

    Args:
        stats: The window.
        baseline: The service's usual counts (before this window was learned).
        window: The window's number (its start time over the window length).
        k: How many templates.
        sample_chars: Samples are cut to this many characters (with an ellipsis).
        only: Rank only these template ids.
    """
    ids = list(stats.templates) if only is None else [t for t in only if t in stats.templates]

    def surprise(template_id: str) -> tuple[float, int, str]:
        count = stats.templates[template_id][0]
        expected = max(baseline.expected(template_id, window), _MIN_EXPECTED)
        excess = (
            count * math.log(count / expected) - (count - expected) if count > expected else 0.0
        )
        return (-excess, -count, template_id)

    out = []
    for template_id in sorted(ids, key=surprise)[:k]:
        count, sample, template, _ = stats.templates[template_id]
        if len(sample) > sample_chars:
            sample = sample[: sample_chars - 1] + "…"
        out.append(
            TemplateSample(
                template_id=template_id, template=template.text, count=count, sample=sample
            )
        )
    return out
