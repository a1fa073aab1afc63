"""Episodes: one alert per problem, not one per anomalous sample.

An anomalous sample of a service (calibrated tail probability at most ``alpha``, and a metric
far enough off) opens an episode when none is open. While it lasts, further samples update it
and raise nothing. It resolves once the service has been normal (tail probability above the
clearing level: hysteresis) for ``resolve_after`` of its own samples in a row, so the cooldown
is counted in samples of the service's cadence, never in seconds.

Samples of an open episode that are not normal are withheld from learning, so an anomaly
does not teach the baselines, the trees or the calibration that it is normal; an episode is
counted once in the calibration's history (its opening score). ``max_withheld`` bounds that:
a state that lasts longer is learned, and becomes the new normal.

The tracker is pure and works on a run of samples at once, with numpy for the common case
(no episode, nothing anomalous: one ``any``), and gives the marks of one-at-a-time processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

__all__ = ["Episode", "EpisodeMarks", "EpisodeTracker", "preview_marks"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Episode:
    """An open episode: when it started, and how it has gone so far."""

    started_s: float
    samples: int = 0
    """Samples since it opened (the opening one included)."""
    withheld: int = 0
    """Samples withheld from learning so far."""
    normal_run: int = 0
    """Normal samples in a row, most recent last."""


@dataclass
class EpisodeMarks:
    """What a run of samples did to episodes, row by row."""

    opened: BoolArray
    resolved: BoolArray
    open: BoolArray
    """An episode was open at the row (its opening row included, its resolving row not)."""
    withheld: BoolArray
    """The row must not be learned."""
    started_s: FloatArray
    """The episode's start, at rows that opened or resolved one (NaN elsewhere)."""
    end: Episode | None = field(default=None)
    """The episode open after the last row, if any."""
    quiet: bool = False
    """No row opened, resolved or belongs to an episode (False: not known)."""


class EpisodeTracker:
    """The episode state of one service and source.

    Args:
        resolve_after: Normal samples in a row that resolve an episode.
        max_withheld: Most samples of one episode withheld from learning.

    Examples:
        >>> tracker = EpisodeTracker(resolve_after=2, max_withheld=10)
        >>> anomalous = np.array([0, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
        >>> marks = tracker.run(anomalous, ~anomalous, list(range(8)))
        >>> marks.opened.nonzero()[0].tolist(), marks.resolved.nonzero()[0].tolist()
        ([1], [6])
        >>> marks.withheld.nonzero()[0].tolist(), tracker.episode is None
        ([1, 2, 4], True)
    """

    def __init__(self, resolve_after: int, max_withheld: int) -> None:
        self.resolve_after = resolve_after
        self.max_withheld = max_withheld
        self.episode: Episode | None = None

    def run(
        self,
        anomalous: BoolArray,
        normal: BoolArray,
        ts_s: FloatArray,
        *,
        commit: bool = True,
    ) -> EpisodeMarks:
        """Marks for rows in order; the tracker ends in the state after the last row unless
        ``commit`` is false (a preview: nothing changes)."""
        n = anomalous.size
        flags = np.zeros((4, n), dtype=bool)  # one allocation
        started_s = np.empty(n)
        started_s.fill(np.nan)
        episode = self.episode
        quiet = episode is None and not np.count_nonzero(anomalous)  # the common case
        marks = EpisodeMarks(flags[0], flags[1], flags[2], flags[3], started_s, quiet=quiet)
        if quiet:
            return marks
        i = 0
        while i < n:
            if episode is None:
                ahead = anomalous[i:].nonzero()[0]
                if ahead.size == 0:
                    break
                i += int(ahead[0])
                episode = Episode(started_s=float(ts_s[i]))
                marks.opened[i] = True
                marks.started_s[i] = episode.started_s
            episode, i = self._follow(episode, normal, i, marks)
        marks.end = episode
        if commit:
            self.episode = episode
        return marks

    def _follow(
        self, episode: Episode, normal: BoolArray, start: int, marks: EpisodeMarks
    ) -> tuple[Episode | None, int]:
        """Rows from ``start`` while ``episode`` is open: where it resolves, or the end."""
        ok = normal[start:]
        index = np.arange(ok.size)
        last_bad = np.maximum.accumulate(np.where(ok, -1, index))
        run = np.where(last_bad < 0, index + 1 + episode.normal_run, index - last_bad)
        hits = np.flatnonzero(run >= self.resolve_after)
        stop = int(hits[0]) if hits.size else ok.size  # rows [start, start + stop) stay open
        bad = ~ok[:stop]
        allowed = np.cumsum(bad) + episode.withheld <= self.max_withheld
        marks.open[start : start + stop] = True
        marks.withheld[start : start + stop] = bad & allowed
        grown = replace(
            episode,
            samples=episode.samples + stop,
            withheld=episode.withheld + int(np.count_nonzero(bad & allowed)),
            normal_run=int(run[stop - 1]) if stop else episode.normal_run,
        )
        if not hits.size:
            return grown, start + stop
        end = start + stop
        marks.resolved[end] = True
        marks.started_s[end] = episode.started_s
        return None, end + 1


def preview_marks(anomalous: BoolArray, episode_open: bool, ts: FloatArray) -> EpisodeMarks:
    """Marks without learning: each row on its own against the episode state as it is.

    Examples:
        >>> marks = preview_marks(np.array([False, True]), False, np.array([60.0, 120.0]))
        >>> marks.opened.tolist(), marks.started_s.tolist()
        ([False, True], [nan, 120.0])
    """
    n = anomalous.size
    opened = anomalous & (not episode_open)
    return EpisodeMarks(
        opened=opened,
        resolved=np.zeros(n, dtype=bool),
        open=np.full(n, episode_open),
        withheld=np.zeros(n, dtype=bool),
        started_s=np.where(opened, ts, np.nan),
        quiet=not episode_open and not np.count_nonzero(opened),
    )
