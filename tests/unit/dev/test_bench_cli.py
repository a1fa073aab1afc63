"""``vigil bench`` offline sections at tiny sizes: the JSON shape, positive figures, ratios
computed from the rates measured in the same run (see ``tests/integration/test_bench_kafka.py``
for the Kafka section)."""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import orjson
import pytest

from models.anomaly import AnomalyConfig
from stream.cli import main
from stream.dev.bench_memory import memory_footprint

TINY = [
    "--repeats",
    "1",
    "--engine-events",
    "600",
    "--large-shape",
    "12x6",  # 25x15 takes river ~10 s to build its trees: too slow for a unit test
    "--river-large-events",
    "300",
    "--events",
    "1500",
    "--memory-services",
    "12",
    "--quiet",
]
CROSSOVER_SIZES = [1, 2, 5, 10, 20, 50, 100]  # 1000 is left out: more than --engine-events


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One JSON run of the engine, offline and memory sections (shared: it takes seconds)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "--only", "memory,engine,offline", "--json", *TINY])
    assert code == 0
    parsed: dict[str, Any] = orjson.loads(out.getvalue())
    return parsed


def _value(report: dict[str, Any], key: str) -> float:
    value = report["figures"][key]["value"]
    assert isinstance(value, float | int), key
    return float(value)


def test_json_names_every_figure_with_unit_and_section(report: dict[str, Any]) -> None:
    assert report["sections"] == ["engine", "offline", "memory"]  # canonical order
    figures = report["figures"]
    expected = {
        *(
            f"engine_{kind}_{shape}"
            for kind in ("river", "numpy", "speedup")
            for shape in ("10x8", "12x6")
        ),
        *(f"crossover_numpy_batch_{b}" for b in CROSSOVER_SIZES),
        "crossover_batch_size",
        "offline_river",
        "offline_numpy",
        "offline_speedup",
        "offline_numpy_risk",
        "offline_risk_cost",
        "offline_dense_risk_cost",
        "offline_risk_us_per_vector",
        *(["offline_configured"] if report["settings"]["detector"] == "robust_z" else []),
        "memory_rss_total",
        "memory_rss_process",
        "memory_rss_per_1000",
        "memory_arrays_total",
        "memory_arrays_per_1000",
    }
    assert set(figures) == expected
    for key, figure in figures.items():
        assert set(figure) == {"label", "value", "unit", "note", "section"}, key
        assert figure["section"] == key.split("_")[0].replace("crossover", "engine"), key
    assert figures["offline_numpy"]["unit"] == "events/s"
    assert figures["engine_speedup_12x6"]["unit"] == "x"
    assert figures["memory_rss_per_1000"]["unit"] == "MiB"
    assert report["settings"]["max_batch"] == 2000


def test_rates_and_sizes_are_positive(report: dict[str, Any]) -> None:
    # Costs are differences of two rates: at this tiny size, noise can make them negative.
    differences = {"offline_risk_cost", "offline_dense_risk_cost", "offline_risk_us_per_vector"}
    for key, figure in report["figures"].items():
        if key in differences:
            assert math.isfinite(figure["value"]), key
        elif key not in ("crossover_batch_size", "memory_rss_total", "memory_rss_per_1000"):
            assert figure["value"] > 0, key
    # RSS can shrink by a page or two at this size; the array bytes cannot.
    assert _value(report, "memory_arrays_total") > 0


def test_ratios_come_from_the_two_measured_rates(report: dict[str, Any]) -> None:
    for shape in ("10x8", "12x6"):
        ratio = _value(report, f"engine_numpy_{shape}") / _value(report, f"engine_river_{shape}")
        assert _value(report, f"engine_speedup_{shape}") == pytest.approx(ratio, rel=1e-12)
    offline = _value(report, "offline_numpy") / _value(report, "offline_river")
    assert _value(report, "offline_speedup") == pytest.approx(offline, rel=1e-12)


def test_crossover_is_the_smallest_batch_where_numpy_keeps_up(report: dict[str, Any]) -> None:
    river = _value(report, "engine_river_10x8")
    rates = {b: _value(report, f"crossover_numpy_batch_{b}") for b in CROSSOVER_SIZES}
    crossover = report["figures"]["crossover_batch_size"]["value"]
    expected = next((b for b in CROSSOVER_SIZES if rates[b] >= river), None)
    assert crossover == expected


def test_memory_per_1000_services_scales_the_total(report: dict[str, Any]) -> None:
    per_1000 = _value(report, "memory_arrays_per_1000")
    assert per_1000 == pytest.approx(_value(report, "memory_arrays_total") * 1000 / 12)
    assert "12 services" in report["figures"]["memory_arrays_per_1000"]["note"]


def test_memory_footprint_holds_every_service_past_its_first_window() -> None:
    config = AnomalyConfig(window_size=50, warmup_events=0)
    footprint = memory_footprint(config, services=7, events_per_service=60, batch_size=100)
    assert footprint.services == 7
    # Past the first window every HST holds two mass arrays: more than at construction.
    assert footprint.array_bytes > 0
    assert footprint.rss_after >= footprint.rss_before - 2**20


def test_table_shows_only_the_chosen_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "offline", *TINY]) == 0
    out = capsys.readouterr().out
    assert "[offline]" in out
    assert "events/s" in out
    assert "[engine]" not in out
    assert "[memory]" not in out


@pytest.mark.parametrize(
    "flags",
    [
        ["--only", "engine,gpu"],
        ["--only", ""],
        ["--large-shape", "25"],
        ["--latency-rates", "2000,fast"],
        ["--latency-rates", "0"],
    ],
)
def test_bad_bench_flags_exit_2(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", *flags])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
