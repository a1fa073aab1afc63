"""Platt scaling of the incident-risk model's logits: calibrated probabilities online."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from models.refresh import refresh_due

__all__ = ["PlattScaler", "sigmoid"]

FloatArray = npt.NDArray[np.float64]


def sigmoid(logits: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -500.0, 500.0)))


_PLATT_RIDGE = 1e-3
"""Per pair: the ridge that keeps Platt's (a, b) finite and near (1, 0) when data is thin."""


class PlattScaler:
    """``sigmoid(a * logit + b)`` fitted to the model's recent prequential (logit, label) pairs.

    Refitted (Newton steps on Platt's smoothed targets) on the last ``window`` pairs whenever
    the pairs seen grow by 1/16th, and at least every 250 pairs. Until the window holds
    ``min_positives`` positives, the prior-shift correction ``logit - log(w_pos / w_neg)``
    stands in. The slope is kept >= 0, so the mapping never reverses the model's ranking.
    """

    def __init__(self, window: int, min_positives: int) -> None:
        self._logits = np.zeros(window)
        self._labels = np.zeros(window)
        self._count = 0
        self._since = 0
        self._min_positives = min_positives
        self._fit: tuple[float, float] | None = None

    def add(self, logit: float, label: bool) -> None:
        at = self._count % self._logits.size
        self._logits[at], self._labels[at] = logit, float(label)
        self._count += 1
        self._since += 1
        if refresh_due(self._since, self._count, 250):
            self._since = 0
            self._refit()

    def transform(self, logits: FloatArray, log_weight_ratio: float) -> FloatArray:
        if self._fit is None:
            return logits - log_weight_ratio
        a, b = self._fit
        return a * logits + b

    def _refit(self) -> None:
        n = min(self._count, self._logits.size)
        s, y = self._logits[:n], self._labels[:n]
        positives = float(y.sum())
        if positives < self._min_positives or positives == n:
            return
        target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (n - positives + 2))
        # A weak ridge pulls (a, b) towards (1, 0): without it, a window whose logits separate
        # the classes (or sit at one value) sends the fit off to 1e10. Newton steps are halved
        # until the penalised loss goes down (plain Newton oscillated on real windows).
        ridge = _PLATT_RIDGE * n

        def loss(a: float, b: float) -> float:
            z = a * s + b
            # Cross-entropy against the smoothed targets, computed stably.
            log_p = -np.logaddexp(0.0, -z)
            log_q = -np.logaddexp(0.0, z)
            nll = -float(np.dot(target, log_p) + np.dot(1.0 - target, log_q))
            return nll + 0.5 * ridge * ((a - 1.0) ** 2 + b**2)

        a, b = self._fit or (1.0, 0.0)
        current = loss(a, b)
        for _ in range(30):
            p = sigmoid(a * s + b)
            w = p * (1 - p) + 1e-12
            gradient = np.array(
                [np.dot(p - target, s) + ridge * (a - 1.0), np.sum(p - target) + ridge * b]
            )
            ws = w * s
            hessian = np.array([[np.dot(ws, s), ws.sum()], [ws.sum(), w.sum()]]) + ridge * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            scale = 1.0
            while scale > 1e-4:
                a_new = max(0.0, a - scale * float(step[0]))
                b_new = b - scale * float(step[1])
                new = loss(a_new, b_new)
                if new <= current:
                    break
                scale /= 2
            else:
                break
            moved = max(abs(a_new - a), abs(b_new - b))
            a, b, current = a_new, b_new, new
            if moved < 1e-6:
                break
        if math.isfinite(a) and math.isfinite(b):
            self._fit = (a, b)
