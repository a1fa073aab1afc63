"""What a window of one service's log lines looks like, as a feature dict (pure).

:class:`WindowStats` accumulates lines as they arrive (kept lean: it runs once per line);
:func:`window_features` turns a closed window into the row its anomaly model scores.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "COUNT_FEATURES",
    "FEATURE_NAMES",
    "LEVELS",
    "WindowStats",
    "has_connection_error",
    "has_exception",
    "has_timeout",
    "template_entropy",
    "window_features",
]

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
"""Log levels in order of severity (LogEvent's normalised values)."""
_LEVEL_INDEX = {level: i for i, level in enumerate(LEVELS)}
ERROR_INDEX = _LEVEL_INDEX["ERROR"]

_EXCEPTION = re.compile(
    r"exception|traceback \(most recent|stack ?trace|panic:|\bat [\w$.<>]+\([\w$.]*(?::\d+)?\)",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(r"time[d]? ?out|deadline exceeded", re.IGNORECASE)
_CONNECTION = re.compile(
    r"connection (?:refused|reset|closed|aborted|lost|failed|error|timed out)|econnrefused"
    r"|econnreset|broken pipe|no route to host|host unreachable|(?:could not|failed to|unable to)"
    r" connect",
    re.IGNORECASE,
)

FEATURE_NAMES: tuple[str, ...] = (
    "lines",
    *(f"lines_{level.lower()}" for level in LEVELS),
    *(f"ratio_{level.lower()}" for level in LEVELS),
    "has_exception",
    "has_timeout",
    "has_connection_error",
    "msg_len_mean",
    "msg_len_p95",
    "msg_len_max",
    "templates_distinct",
    "templates_new",
    "template_entropy",
)
"""The features of every window, in this order."""

COUNT_FEATURES: tuple[str, ...] = tuple(
    name
    for name in FEATURE_NAMES
    if not name.startswith("ratio_") and name not in ("msg_len_mean", "template_entropy")
)
"""The features that count something (lines, templates, characters): whole numbers."""


def has_exception(message: str) -> bool:
    """Whether a line reports an exception or carries a stack trace.

    Examples:
        >>> has_exception("java.lang.IllegalStateException: closed"), has_exception("ok")
        (True, False)
        >>> has_exception("  at com.acme.Ledger.post(Ledger.java:88)")
        True
    """
    return _EXCEPTION.search(message) is not None


def has_timeout(message: str) -> bool:
    """Whether a line reports a timeout.

    Examples:
        >>> has_timeout("upstream timed out"), has_timeout("Deadline exceeded"), has_timeout("x")
        (True, True, False)
    """
    return _TIMEOUT.search(message) is not None


def has_connection_error(message: str) -> bool:
    """Whether a line reports a failed or broken connection.

    Examples:
        >>> has_connection_error("connect: Connection refused"), has_connection_error("connected")
        (True, False)
    """
    return _CONNECTION.search(message) is not None


class WindowStats:
    """The lines of one service in one window, accumulated line by line.

    ``templates`` maps a template id to ``[count, first sample line, Template, highest level
    index]``; ``new_template_ids`` lists the ids of templates the service had never seen, and
    ``new_error_templates`` those of them first seen here at ERROR or above.
    """

    __slots__ = (
        "batch",
        "connection",
        "evidence",
        "exceptions",
        "host",
        "last_index",
        "lengths",
        "levels",
        "new_error_templates",
        "new_template_ids",
        "service",
        "start_s",
        "templates",
        "timeouts",
    )

    def __init__(self, service: str, start_s: float) -> None:
        self.service = service
        self.start_s = start_s
        self.levels = [0, 0, 0, 0, 0]
        self.exceptions = 0
        self.timeouts = 0
        self.connection = 0
        self.lengths: list[int] = []
        self.templates: dict[str, list[Any]] = {}
        self.new_template_ids: list[str] = []
        self.new_error_templates: list[str] = []
        # Where the window's last line is stored: its index in the batch being processed,
        # resolved to an Evidence by the pipeline at the end of that batch.
        self.last_index = -1
        self.batch = -1
        self.evidence: Any = None
        # The host of the window's last line (the line its evidence points at), resolved with
        # the evidence: a log alert's ``host`` label.
        self.host: str | None = None

    @property
    def new_templates(self) -> int:
        """How many templates the service had never seen the window holds."""
        return len(self.new_template_ids)

    @property
    def lines(self) -> int:
        """How many lines the window holds."""
        return len(self.lengths)

    def add(self, level: str, message: str, template: Any, is_new: bool, index: int) -> None:
        """Add one line, its template (``stream.core.logs.templates.Template``) and batch index."""
        li = _LEVEL_INDEX[level]
        self.levels[li] += 1
        self.lengths.append(len(message))
        if _EXCEPTION.search(message) is not None:
            self.exceptions += 1
        if _TIMEOUT.search(message) is not None:
            self.timeouts += 1
        if _CONNECTION.search(message) is not None:
            self.connection += 1
        template_id = template.template_id
        entry = self.templates.get(template_id)
        if entry is None:
            self.templates[template_id] = [1, message, template, li]
            if is_new:
                self.new_template_ids.append(template_id)
                if li >= ERROR_INDEX:
                    self.new_error_templates.append(template_id)
        else:
            entry[0] += 1
            if li > entry[3]:
                entry[3] = li
        self.last_index = index


def template_entropy(counts: list[int]) -> float:
    """Shannon entropy (bits) of the template distribution given by ``counts``.

    Examples:
        >>> template_entropy([8]), template_entropy([4, 4]), template_entropy([2, 2, 2, 2])
        (0.0, 1.0, 2.0)
        >>> template_entropy([])
        0.0
    """
    total = sum(counts)
    if total <= 0:
        return 0.0
    return max(0.0, math.log2(total) - sum(c * math.log2(c) for c in counts if c > 0) / total)


def window_features(stats: WindowStats) -> dict[str, float]:
    """The feature row of a closed window.

    Ratios are shares of the window's lines; ``msg_len_p95`` is the nearest-rank 95th
    percentile of the message lengths. An empty window has counts of 0 and no ratios nor
    lengths: they are undefined there, and the model treats them as missing. (As zeros, a
    service that logs a few lines a day had "message length 0" as its normal, and every line
    it wrote was a jump from it: 673 alerts over BGL's 2,000 lines, 171 without them.)

    Examples:
        >>> from stream.core.logs.templates import ServiceTemplates
        >>> miner, stats = ServiceTemplates("api"), WindowStats("api", 0.0)
        >>> for i, (level, msg) in enumerate([("INFO", "GET /a 200"), ("INFO", "GET /b 200"),
        ...                                   ("ERROR", "db timeout after 30s")]):
        ...     stats.add(level, msg, *miner.add(msg), i)
        >>> f = window_features(stats)
        >>> f["lines"], round(f["ratio_error"], 3), f["has_timeout"], f["templates_distinct"]
        (3.0, 0.333, 1.0, 2.0)
        >>> round(f["template_entropy"], 3), f["templates_new"], f["msg_len_max"]
        (0.918, 2.0, 20.0)
    """
    lines = len(stats.lengths)
    out: dict[str, float] = {"lines": float(lines)}
    for level, count in zip(LEVELS, stats.levels, strict=True):
        out[f"lines_{level.lower()}"] = float(count)
    if lines:
        for level, count in zip(LEVELS, stats.levels, strict=True):
            out[f"ratio_{level.lower()}"] = count / lines
    out["has_exception"] = float(stats.exceptions)
    out["has_timeout"] = float(stats.timeouts)
    out["has_connection_error"] = float(stats.connection)
    if lines:
        lengths = sorted(stats.lengths)
        out["msg_len_mean"] = sum(lengths) / lines
        out["msg_len_p95"] = float(lengths[max(0, math.ceil(0.95 * lines) - 1)])
        out["msg_len_max"] = float(lengths[-1])
    out["templates_distinct"] = float(len(stats.templates))
    out["templates_new"] = float(stats.new_templates)
    out["template_entropy"] = template_entropy([e[0] for e in stats.templates.values()])
    return out
