"""The markdown tables ``benchmarks/quality.py`` prints (the README quotes them)."""

from __future__ import annotations

from typing import Any

from quality_sets import LabelledSet

from models.alert_quality import AlertQuality
from stream.dev.planted import PlantedEpisode

_COLUMNS = (
    "detector",
    "alerts",
    "budget",
    "point P",
    "point R",
    "point F1",
    "point-adjusted F1",
    "episode P",
    "episode R",
    "episode F1",
    "caught",
    "alerts / caught",
    "false / service-day",
    "median delay",
)


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A figure for a table: ``-`` when undefined, thousands separated."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(header: tuple[str, ...], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def quality_row(detector: str, q: AlertQuality, budget: float | None) -> list[str]:
    """One detector's figures on one set or group."""
    return [
        detector,
        fmt(q.alerts),
        "n/a" if budget is None else fmt(budget, 1),
        fmt(q.precision),
        fmt(q.recall),
        fmt(q.f1),
        fmt(q.adjusted_f1),
        fmt(q.episode_precision),
        fmt(q.episode_recall),
        fmt(q.episode_f1),
        f"{q.caught} of {q.segments}",
        fmt(q.alerts_per_caught, 2),
        fmt(q.false_per_service_day, 2),
        fmt(q.median_delay, 1),
    ]


def print_report(
    meta: dict[str, Any],
    sets: dict[str, LabelledSet],
    results: dict[str, Any],
    timings: dict[str, float],
    rate: float,
) -> None:
    """Every set's tables, then the timings."""
    print("# Alert quality (benchmarks/quality.py)\n")
    print(f"- vigil: this tree ({meta['tree']})")
    if meta["baseline"]:
        print(f"- vigil@{meta['baseline']}: the same replay in a worktree of {meta['baseline']}")
    river = meta["river_rate"]
    print(f"- river: MinMaxScaler | HalfSpaceTrees(seed=42), QuantileFilter(q={1 - river:g})")
    print(f"- Vigil settings: {meta['vigil_settings']}")
    print(
        f"- budget: vigil {meta['budget_per_day']:g} false alerts per service-day; "
        f"an older revision {rate:g} x scored samples (its target rate), river {river:g} x"
    )
    print(
        f"- caught: a firing alert in [start, end + {meta['tolerance_samples']} samples]; "
        "delay in samples; figures pooled over a set's services"
    )
    for name, s in sets.items():
        per_detector = results[name]
        for group in s.groups:
            chosen = sum(s.truth[m].labels.size for m in s.groups[group])
            title = name if group == "all" else f"{name}, {group}"
            print(f"\n## {title}: {s.describe(group)}\n")
            rows = [
                quality_row(
                    d,
                    entry["quality"][f"group:{group}"],
                    _budget(d, entry["quality"][f"group:{group}"], chosen, rate, meta, s.source),
                )
                for d, entry in per_detector.items()
            ]
            if s.source == "logs":
                rows.append(["river", "n/a: no log detector", *[""] * (len(_COLUMNS) - 2)])
            print(table(_COLUMNS, rows))
        notes = list(s.notes)
        notes += [
            f"{d}: {e['off_grid_alerts']} alerts off the samples' times (put on the next)"
            for d, e in per_detector.items()
            if e.get("off_grid_alerts")
        ]
        if s.source == "logs":
            notes.append(
                "log points are lines (flagged when their window is in an alert's span); "
                "segments, delays and service-days are on the grid of log windows"
            )
        if notes:
            print("\n" + "\n".join(f"- {note}" for note in notes))
        if s.episodes:
            print_kinds(per_detector)
        if name == "degenerate":
            print_degenerate(s, per_detector)
    print(f"\n## Wall time (seconds; each run's own; {meta['jobs']} runs at a time overlap)\n")
    print(table(("part", "s"), [[part, f"{s:.1f}"] for part, s in timings.items()]))


def _budget(
    detector: str, q: AlertQuality, scored: int, rate: float, meta: dict[str, Any], source: str
) -> float | None:
    """The alert budget a detector works to: this tree's false episodes per service-day
    (``budget_per_day`` x service-days), a per-sample rate for river and older revisions."""
    if detector == "vigil":
        return meta["budget_per_day"] * q.service_days
    if source == "logs":
        return None
    return (meta["river_rate"] if detector == "river" else rate) * scored


def print_kinds(per_detector: dict[str, Any]) -> None:
    """The planted set per episode kind."""
    header = (
        "kind",
        "detector",
        "episodes",
        "caught within 3 of start",
        "caught in [start, end + 3]",
        "alerts / caught",
        "median delay",
    )
    rows = []
    kinds = next(iter(per_detector.values()))["per_kind"]
    for kind in kinds:
        for detector, entry in per_detector.items():
            k = entry["per_kind"][kind]
            label = f"{kind} (must not alert)" if kind == "benign_drop" else kind
            rows.append(
                [
                    label,
                    detector,
                    fmt(k["episodes"]),
                    fmt(k["caught_within_3_of_start"]),
                    fmt(k["caught"]),
                    fmt(k["alerts_per_caught"], 2),
                    fmt(k["median_delay"], 1),
                ]
            )
    print("\n### planted, per kind (benign drops: alerted = caught)\n")
    print(table(header, rows))


def print_degenerate(s: LabelledSet, per_detector: dict[str, Any]) -> None:
    """Firing alerts per degenerate stream (the target is 0)."""
    services = list(s.truth)
    rows = [
        [
            detector,
            *(fmt(entry["quality"][svc].alerts) for svc in services),
            fmt(sum(entry["quality"][svc].alerts for svc in services)),
        ]
        for detector, entry in per_detector.items()
    ]
    header = ("detector", *(svc.removeprefix("degenerate-") for svc in services), "total")
    print(f"\n### degenerate: firing alerts per stream of {s.truth[services[0]].labels.size:,}")
    print("normal samples (target 0)\n")
    print(table(header, rows))


def to_json(
    meta: dict[str, Any],
    sets: dict[str, LabelledSet],
    results: dict[str, Any],
    timings: dict[str, float],
    rate: float,
) -> dict[str, Any]:
    """Every figure of the run as plain values."""
    out: dict[str, Any] = {"run": meta, "timings_s": timings, "sets": {}}
    for name, s in sets.items():
        detectors = {}
        for detector, entry in results[name].items():
            quality = {k: q.as_dict() for k, q in entry["quality"].items()}
            detectors[detector] = {**entry, "quality": quality}
        out["sets"][name] = {
            "groups": {g: s.describe(g) for g in s.groups},
            "budget_alerts": None if s.source == "logs" else rate * s.scored,
            "river_budget_alerts": None if s.source == "logs" else meta["river_rate"] * s.scored,
            "notes": s.notes,
            "detectors": detectors,
        }
        if s.episodes:
            out["sets"][name]["episodes"] = [_episode(e) for e in s.episodes]
    return out


def _episode(e: PlantedEpisode) -> dict[str, Any]:
    return {
        "service": e.service,
        "kind": e.kind,
        "start": e.start.isoformat(),
        "end": e.end.isoformat(),
        "metrics": list(e.metrics),
        "direction": e.direction,
        "size_sd": e.size_sd,
    }
