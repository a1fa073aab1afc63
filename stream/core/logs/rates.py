"""Template rates: is a window unusual because a known template came far more often than usual?

A burst of a template the service already knows (an upstream timeout going from 2 to 20 a
minute) adds no new template and barely moves volume features, so neither the new-template
rule nor the window model sees it. :class:`TemplateRates` learns, per template of one service,
how many lines it writes per window, and scores each window against that:

* **Rate.** A template's count per window is Poisson with an unknown rate. The rate has a
  Gamma posterior under Jeffreys' prior (half a pseudo-count, no pseudo-window), over the
  windows learned since the template was first seen, each weighted by ``2^(-age/halflife)``:
  a rate seen over few windows stays uncertain, and the baseline follows slow drift.
* **Over-dispersion.** Real templates come in clumps (a retry loop writes five lines at once).
  The excess of a template's (weighted, unbiased) count variance over its mean is added to the
  predictive variance; then a template that is usually bursty is not unusual when it bursts.
  A rare template has written too few lines to show its own clumpiness, so the service's
  templates lend theirs (empirical Bayes): as for a negative binomial, excess ``= k * mean^2``;
  a pooled dispersion ``k`` is estimated over all templates (method of moments), and each
  template's ``k`` is its own, weighted by the lines it wrote, shrunk towards the pooled one,
  weighted as ``pool_lines`` lines. Simulated (Poisson) logs pool to ``k`` ~ 0.002, which
  changes nothing; the Loghub BGL sample pools to ``k`` ~ 37, where a rare template's clump of
  a few lines in an hour is ordinary (8 of its hours flagged without pooling, 6 with it; none
  holds a line labelled as an alert).
* **Tail probability.** The predictive count is negative binomial with that mean and variance
  (exactly the Gamma-Poisson predictive when there is no excess); a template's p-value is
  ``P(C >= count)``, the regularised incomplete beta function.
* **Many templates.** A window tests every known template it holds, so the smallest p-value
  is multiplied by their number (Bonferroni): the window is unusual when that is at most
  ``alpha``, the false-alert rate per window the caller can afford. A template absent from a
  window cannot be unusually frequent in it, so it is not counted.

Templates seen for the first time are not tested (there is no rate to compare with: the
new-template rule looks at them). Templates are tested for rises only; **silence** is one more
test, of the window's total line count against the service's own, learned the same way, on
the lower tail ``P(C <= count)``: a service that writes about 30 lines a window and writes none
is unusual at ``P = e^-30``, while one that writes a line a day is never unusual for writing
none. (The window model saw silence through message lengths that fell to 0 in an empty window;
lengths of no message are undefined, and a sparse service's every line was a jump from 0.)

Learning is the caller's choice per window (score first, then learn or not): a window it does
not learn does not count at all, not as a window of zeros. Learned counts have a bounded
influence: a template whose count alone is unusual at ``alpha`` (no correction) is learned as
its predictive mean plus three standard deviations (Huber's winsorizing). Second moments are
sensitive to outliers: learned in full (or even cut at the largest count not unusual), the
windows of a burst raised the learned variance so fast that the burst's later windows no longer
stood out, and an earlier burst of the same template made the next one look ordinary. Capped,
a window of a burst raises the learned variance by at most ``9 / n`` of itself (``n`` the
weighted windows learned): one burst barely moves the baseline, while a lasting change of rate,
or a burstiness that recurs, is still learned, over some tens to hundreds of windows. Counts
that are not unusual on their own are learned as they are, so ordinary variation is not cut
(which would make the learned variance too small).

State depends only on the windows scored and learned, in order: the same windows give the same
verdicts, whatever batches they came in. Templates are capped (``capacity``): beyond it the
least recently seen are forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from stream.core.logs.rate_verdict import QuietWindow, RateVerdict, UnusualTemplate
from stream.core.logs.tails import MIN_P, lower_tail_probability, tail_probability

__all__ = ["TemplateRates"]


def _add(entry: list[float] | None, count: float, now: int, decay: float) -> list[float]:
    """A count entry (weighted sum of counts, of squared counts, learned window of the last
    update, learned window it was first learned in) with ``count`` learned at window ``now``;
    the entry is updated in place, or made when None."""
    if entry is None:
        return [float(count), float(count * count), now, now]
    fade = decay ** (now - entry[2])
    entry[0] = entry[0] * fade + count
    entry[1] = entry[1] * fade + count * count
    entry[2] = now
    return entry


class TemplateRates:
    """Per-template count distributions of one service's windows, and a test of each window.

    Args:
        alpha: False-alert rate per window if every template followed its learned
            distribution (after the correction for the templates tested); 1e-4 is about 0.3
            a day at 30 s windows.
        halflife_windows: A learned window's weight halves every this many learned windows.
        capacity: Templates remembered; beyond it the least recently seen are forgotten.
        prior_count: Pseudo-count of the rate's Gamma prior (Jeffreys': 0.5).
        pool_lines: How many lines of its own a template needs for its own clumpiness to
            weigh as much as the service's pooled one.

    Examples:
        >>> rates = TemplateRates(alpha=1e-3, halflife_windows=100)
        >>> for window in range(200):  # a timeout line about twice a window, a heartbeat once
        ...     rates.learn({"timeout": 1 + window % 3, "heartbeat": 1})
        >>> calm = rates.score({"timeout": 3, "heartbeat": 1})
        >>> calm.flagged, calm.tested
        (False, 2)
        >>> burst = rates.score({"timeout": 20, "heartbeat": 1, "never-seen": 4})
        >>> burst.flagged, [(t.template_id, t.count, round(t.expected, 2)) for t in burst.templates]
        (True, [('timeout', 20, 2.0)])
        >>> rates.learn({"timeout": 20, "heartbeat": 1}, burst)   # not as 20: as mean + 3 sd
        >>> round(burst.templates[0].learned_as, 2), round(rates.expected("timeout"), 3)
        (6.26, 2.039)
    """

    def __init__(
        self,
        *,
        alpha: float = 1e-4,
        halflife_windows: float = 720.0,
        capacity: int = 2000,
        prior_count: float = 0.5,
        pool_lines: float = 30.0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if halflife_windows <= 0 or capacity < 1 or prior_count <= 0 or pool_lines <= 0:
            raise ValueError(
                "halflife_windows, capacity, prior_count and pool_lines must be positive"
            )
        self.alpha = alpha
        self.halflife_windows = halflife_windows
        self.capacity = capacity
        self.prior_count = prior_count
        self.pool_lines = pool_lines
        self._decay = 0.5 ** (1.0 / halflife_windows)
        self._learned = 0
        self._dispersion = 0.0  # pooled: excess variance = dispersion * mean^2
        # template id -> [weighted sum of counts, of squared counts, learned window of the
        # last update, learned window it was first learned in]
        self._state: dict[str, list[float]] = {}
        self._lines: list[float] | None = None  # the same, of the window's total lines

    _lines: list[float] | None = None  # (a snapshot from before the silence test has none)

    def __len__(self) -> int:
        return len(self._state)

    @property
    def windows_learned(self) -> int:
        """How many windows have been learned."""
        return self._learned

    @property
    def dispersion(self) -> float:
        """The service's pooled dispersion ``k`` (a template's excess variance over its mean
        is ``k * mean^2``)."""
        return self._dispersion

    def _observed(self, entry: list[float]) -> tuple[float, float, float]:
        """A template's weighted windows, mean count per window, and excess of its count
        variance over that mean (0 while it has a single window)."""
        total, squares, at, born = entry
        now, decay = self._learned, self._decay
        if at != now:
            fade = decay ** (now - at)
            total *= fade
            squares *= fade
        age = now - born + 1
        windows = (1.0 - decay**age) / (1.0 - decay)
        observed = total / windows
        if age < 2:
            return windows, observed, 0.0
        # The weighted variance, made unbiased by its weights' effective sample size.
        squared_weights = (1.0 - decay ** (2 * age)) / (1.0 - decay * decay)
        variance = (squares / windows - observed * observed) / (
            1.0 - squared_weights / (windows * windows)
        )
        return windows, observed, variance - observed

    def _moments(self, entry: list[float]) -> tuple[float, float]:
        """A template's predictive mean and variance per window."""
        windows, observed, excess = self._observed(entry)
        lines = observed * windows
        mean = (self.prior_count + lines) / windows
        own = excess / (observed * observed) if excess > 0.0 else 0.0
        pool = self.pool_lines
        dispersion = (lines * own + pool * self._dispersion) / (lines + pool)
        # Poisson noise, the rate's own uncertainty (Gamma posterior), and over-dispersion.
        return mean, mean + mean / windows + dispersion * mean * mean

    def expected(self, template_id: str) -> float:
        """The expected count of a template in the next window (0 if unknown)."""
        entry = self._state.get(template_id)
        return 0.0 if entry is None else self._moments(entry)[0]

    def expected_lines(self) -> float:
        """The expected line count of the next window (0 before any window was learned)."""
        return 0.0 if self._lines is None else self._moments(self._lines)[0]

    def _silence(self, lines: int) -> tuple[float, QuietWindow | None]:
        """The lower-tail p-value of a window's line count, and the count when unusual."""
        assert self._lines is not None
        mean, variance = self._moments(self._lines)
        if lines >= mean:
            return 1.0, None
        p = max(lower_tail_probability(lines, mean, variance), MIN_P)
        if p > self.alpha:
            return p, None
        return p, QuietWindow(lines, mean, p, max(float(lines), mean - 3.0 * math.sqrt(variance)))

    def score(self, counts: Mapping[str, int]) -> RateVerdict:
        """Test a window's count per template, and its line count, against what was learned
        (learns nothing)."""
        state = self._state
        tested = 0
        silence_p, quiet = 1.0, None
        if self._lines is not None:
            silence_p, quiet = self._silence(sum(counts.values()))
        candidates: list[tuple[float, str, int, float, float]] = []
        for template_id, count in counts.items():
            entry = state.get(template_id)
            if entry is None:
                continue
            tested += 1
            mean, variance = self._moments(entry)
            if count > mean:  # below its mean a template is never unusually frequent
                p = tail_probability(count, mean, variance)
                candidates.append((p, template_id, count, mean, variance))
        silence = self._lines is not None
        tests = tested + silence
        if not candidates:
            p_value = min(1.0, silence_p * max(1, tests))
            return RateVerdict(tested, p_value, self.alpha, (), quiet, silence)
        candidates.sort(key=lambda c: (c[0], -c[2], c[1]))
        alpha = self.alpha
        unusual = tuple(
            UnusualTemplate(
                template_id=template_id,
                count=count,
                expected=mean,
                p_value=max(p, MIN_P),
                learned_as=min(float(count), mean + 3.0 * math.sqrt(variance)),
            )
            for p, template_id, count, mean, variance in candidates
            if p <= alpha
        )
        p_value = min(1.0, min(max(candidates[0][0], MIN_P), silence_p) * tests)
        return RateVerdict(tested, p_value, alpha, unusual, quiet, silence)

    def learn(self, counts: Mapping[str, float], verdict: RateVerdict | None = None) -> None:
        """Learn a window's count per template.

        Args:
            counts: The window's count per template (templates absent from it count 0).
            verdict: The window's :meth:`score`: templates unusual on their own are learned as
                :attr:`UnusualTemplate.learned_as`, not their count, and so is an unusually
                low line count (:attr:`QuietWindow.learned_as`).
        """
        if verdict is not None and verdict.templates:
            capped = {u.template_id: u.learned_as for u in verdict.templates}
            counts = {t: capped.get(t, c) for t, c in counts.items()}
        lines = float(sum(counts.values()))
        if verdict is not None and verdict.quiet is not None:
            lines = verdict.quiet.learned_as
        self._learned += 1
        now, decay, state = self._learned, self._decay, self._state
        self._lines = _add(self._lines, lines, now, decay)
        for template_id, count in counts.items():
            state[template_id] = _add(state.get(template_id), count, now, decay)
        if len(state) > self.capacity:
            self._forget()
        self._pool()

    def observe(self, counts: Mapping[str, int], *, learn: bool = True) -> RateVerdict:
        """Score a window, then learn it (winsorized) or not.

        Examples:
            >>> rates = TemplateRates()
            >>> rates.observe({"a": 3}).tested, rates.observe({"a": 3}, learn=False).tested
            (0, 1)
            >>> rates.windows_learned
            1
        """
        verdict = self.score(counts)
        if learn:
            self.learn(counts, verdict)
        return verdict

    def _pool(self) -> None:
        """Re-estimate the pooled dispersion: the excesses of all templates with more than a
        window over their squared means (signed sums: Poisson noise cancels out)."""
        excess_sum = squares_sum = 0.0
        for entry in self._state.values():
            if entry[3] == self._learned:
                continue  # a single window says nothing of a variance
            _, observed, excess = self._observed(entry)
            excess_sum += excess
            squares_sum += observed * observed
        self._dispersion = max(0.0, excess_sum / squares_sum) if squares_sum > 0.0 else 0.0

    def _forget(self) -> None:
        """Forget the least recently seen templates, down to 90% of the capacity (so that
        this sort runs once per many new templates, not once per window)."""
        keep = max(1, self.capacity * 9 // 10)
        ranked = sorted(self._state.items(), key=lambda item: (item[1][2], item[0]))
        for template_id, _ in ranked[: len(ranked) - keep]:
            del self._state[template_id]
