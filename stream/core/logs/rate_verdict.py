"""What a window's template-rate test found: :class:`RateVerdict`, with the templates
unusual on their own (:class:`UnusualTemplate`) and an unusually low line count
(:class:`QuietWindow`), as :meth:`~stream.core.logs.rates.TemplateRates.score` returns them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stream.core.logs.tails import MIN_P

__all__ = ["QuietWindow", "RateVerdict", "UnusualTemplate"]


@dataclass(frozen=True, slots=True)
class UnusualTemplate:
    """A template whose count in a window alone is unusual: ``P(C >= count) <= alpha``."""

    template_id: str
    count: int
    expected: float
    """Its predictive mean count per window (before this window was learned)."""
    p_value: float
    """``P(C >= count)`` under its learned count distribution (not corrected)."""
    learned_as: float
    """What learning keeps of its count: the predictive mean plus three standard deviations."""

    @property
    def ratio(self) -> float:
        """How many times its expected count the window held."""
        return self.count / self.expected


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """A window whose line count alone is unusually low: ``P(C <= count) <= alpha``."""

    count: int
    expected: float
    """The service's predictive mean line count per window."""
    p_value: float
    """``P(C <= count)`` under the service's learned line-count distribution."""
    learned_as: float
    """What learning keeps of the count: the predictive mean minus three standard deviations."""


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """What :meth:`~stream.core.logs.rates.TemplateRates.score` made of a window."""

    tested: int
    """Known templates in the window (the Bonferroni factor)."""
    p_value: float
    """The window's p-value: the smallest template p-value times ``tested`` (at most 1)."""
    alpha: float
    """The level a window's p-value must reach to be unusual."""
    templates: tuple[UnusualTemplate, ...] = ()
    """The templates unusual on their own (uncorrected), the least probable first."""
    quiet: QuietWindow | None = None
    """The window's line count, when unusually low on its own (uncorrected)."""
    silence_tested: bool = False
    """Whether the window's line count was tested (the service has a learned line count)."""

    @property
    def tests(self) -> int:
        """The Bonferroni factor: templates tested, and the line-count test."""
        return self.tested + self.silence_tested

    @property
    def flagged(self) -> bool:
        """Whether the window is unusual by its template rates."""
        return self.p_value <= self.alpha

    @property
    def significant(self) -> tuple[UnusualTemplate, ...]:
        """The templates unusual after the correction: those that flag the window."""
        level = self.alpha / max(1, self.tests)
        return tuple(t for t in self.templates if t.p_value <= level)

    @property
    def silent(self) -> bool:
        """Whether the window is unusual by its low line count (after the correction)."""
        return self.quiet is not None and self.quiet.p_value <= self.alpha / max(1, self.tests)

    @property
    def surprise(self) -> float:
        """``-log10`` of the window's p-value (0 for an unremarkable window)."""
        return -math.log10(max(self.p_value, MIN_P))

    @property
    def threshold(self) -> float:
        """``-log10(alpha)``: the surprise a window must reach to be unusual."""
        return -math.log10(self.alpha)
