"""Which templates make a window unusual: what an operator reads first in a log alert."""

from __future__ import annotations

from collections.abc import Iterable

from stream.core.logs.features import WindowStats
from stream.core.logs.rate_verdict import RateVerdict
from stream.schemas import TemplateSample

__all__ = ["ranked_templates", "top_templates"]


def ranked_templates(
    stats: WindowStats, verdict: RateVerdict, *, first: Iterable[str] = ()
) -> list[str]:
    """The template ids of a window in the order an explanation lists them.

    ``first`` (ids the detector names, in its order), then the templates the service had never
    seen (the most lines first), then the known templates whose count alone is unusual for
    them (the least probable count first, see :mod:`stream.core.logs.rates`). Only when none of
    these exist, the window's most frequent templates: nothing in the window is unusual by
    its templates.

    Examples:
        >>> from stream.core.logs.templates import ServiceTemplates
        >>> from stream.core.logs.rate_verdict import RateVerdict, UnusualTemplate
        >>> miner, stats = ServiceTemplates("api"), WindowStats("api", 0.0)
        >>> _ = miner.add("GET /a 200"), miner.add("upstream timeout calling db")
        >>> lines = ["GET /b 200"] * 5 + ["upstream timeout calling db"] * 3 + ["disk full"]
        >>> for i, line in enumerate(lines):
        ...     stats.add("INFO", line, *miner.add(line), i)
        >>> get, timeout, disk = list(stats.templates)
        >>> calm = RateVerdict(tested=2, p_value=1.0, alpha=1e-3)
        >>> ranked_templates(stats, calm) == [disk]              # only the new one is unusual
        True
        >>> burst = RateVerdict(2, 1e-6, 1e-3, (UnusualTemplate(timeout, 3, 0.1, 5e-7, 1),))
        >>> ranked_templates(stats, burst) == [disk, timeout]
        True
        >>> stats.new_template_ids.clear()  # pretend nothing is new: the most frequent then
        >>> ranked_templates(stats, calm) == [get, timeout, disk]
        True
    """
    templates = stats.templates
    ordered = [t for t in first if t in templates]
    ordered += sorted(
        (t for t in stats.new_template_ids if t in templates),
        key=lambda t: (-templates[t][0], t),
    )
    ordered += [u.template_id for u in verdict.templates if u.template_id in templates]
    if not ordered:
        return sorted(templates, key=lambda t: (-templates[t][0], t))
    return list(dict.fromkeys(ordered))


def top_templates(
    stats: WindowStats,
    verdict: RateVerdict,
    *,
    k: int = 3,
    sample_chars: int = 200,
    first: Iterable[str] = (),
) -> list[TemplateSample]:
    """The first ``k`` templates of :func:`ranked_templates`, one sample line each.

    Args:
        stats: The window.
        verdict: The window's template-rate verdict.
        k: How many templates.
        sample_chars: Samples are cut to this many characters (with an ellipsis).
        first: Template ids listed before all others.
    """
    out = []
    for template_id in ranked_templates(stats, verdict, first=first)[:k]:
        count, sample, template, _ = stats.templates[template_id]
        if len(sample) > sample_chars:
            sample = sample[: sample_chars - 1] + "…"
        out.append(
            TemplateSample(
                template_id=template_id, template=template.text, count=count, sample=sample
            )
        )
    return out
