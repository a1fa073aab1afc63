"""``vigil bench`` prints a table or JSON (the offline part; see
``tests/integration/test_bench_kafka.py`` for the Kafka part)."""

from __future__ import annotations

import orjson
import pytest

from stream.cli import main


def test_bench_json_offline(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "--skip-kafka", "--events", "2000", "--memory-services", "20", "--json"]
    assert main(args) == 0
    figures = orjson.loads(capsys.readouterr().out)
    assert [f["name"] for f in figures] == [
        "offline parse→decide",
        "memory per 1,000 services (RSS)",
        "model arrays per 1,000 services",
    ]
    assert figures[2]["value"] > 0
    assert figures[0]["unit"] == "events/s"
    assert figures[0]["value"] > 0


def test_bench_table_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--skip-kafka", "--events", "2000", "--memory-services", "20"]) == 0
    assert "events/s" in capsys.readouterr().out
