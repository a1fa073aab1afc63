"""vigil correlate's pure parts and its command line, without a broker."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main
from stream.codec import encode
from stream.core.problems.correlator import CorrelationConfig
from stream.core.problems.merge import EventTimeMerge
from stream.core.problems.scoped_log import ScopedLog, tick_value
from stream.core.problems.topology import Topology
from stream.schemas import Alert

TOPOLOGY = Topology({"web": frozenset({"db"})})


def _alert(service: str, minute: float, status: str = "firing", episode: int = 1) -> bytes:
    return encode(
        Alert.model_validate(
            {
                "alert_id": f"{service}-{minute}-{status}",
                "episode_id": f"{service}-{episode}",
                "status": status,
                "kind": "anomaly",
                "source": "metrics",
                "service": service,
                "event_ts": minute * 60,
                "started_at": minute * 60,
                "detected_at": 0,
                "score": 1,
                "threshold": 0.9,
                "severity": "warning",
                "model": {"name": "m", "version": "1"},
                "explanation": {"top_features": []},
                "evidence": {"topic": "t", "partition": 0, "offset": 0},
            }
        )
    )


def _records() -> list[bytes]:
    return [
        _alert("db", 0),
        _alert("web", 2),
        _alert("db", 9, "resolved"),
        _alert("web", 10, "resolved"),
        tick_value(25 * 60.0),  # the hold passed: the problem resolves on the tick
        _alert("db", 30, episode=2),
    ]


def test_a_snapshot_taken_anywhere_resumes_to_the_same_problems() -> None:
    config = CorrelationConfig()
    whole = ScopedLog(config, TOPOLOGY)
    expected = [p for i, v in enumerate(_records()) for p in whole.take(i, v).problems]
    assert [p.status for p in expected] == [
        "opened", "updated", "updated", "updated", "resolved", "opened"
    ]  # fmt: skip
    for cut in range(len(_records()) + 1):
        first = ScopedLog(config, TOPOLOGY)
        before = [p for i, v in enumerate(_records()[:cut]) for p in first.take(i, v).problems]
        state = orjson.loads(orjson.dumps(first.state()))  # as a snapshot holds it
        resumed = ScopedLog.from_state(state, config, TOPOLOGY)
        # The records before the snapshot come again (a replay from an older offset): ignored.
        after = [p for i, v in enumerate(_records()) for p in resumed.take(i, v).problems]
        assert before + after == expected, cut


def test_an_alert_seen_again_after_its_problem_resolved_opens_nothing() -> None:
    log = ScopedLog(CorrelationConfig(), TOPOLOGY)
    for i, value in enumerate(_records()[:5]):
        log.take(i, value)
    assert log.take(5, _alert("db", 0)).problems == []  # a detector's replay of it


def test_the_merge_holds_alerts_a_partition_behind_may_precede() -> None:
    merge = EventTimeMerge[str]()
    merge.add(0, 0, 500.0, "late partition's alert")
    assert merge.release(behind={0, 1}) == []  # 1 has brought nothing yet
    merge.add(1, 0, 100.0, "early")
    assert merge.release(behind={0, 1}) == ["early"]
    assert merge.commits() == {0: 0, 1: 1}
    merge.drop(0)
    assert merge.held == 0
    assert merge.commits() == {1: 1}


def test_a_bad_topology_file_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = tmp_path / "services.toml"
    topology.write_text('[services.api]\ndepends_on = "db"\n')
    monkeypatch.setenv("VIGIL_CORRELATE_TOPOLOGY", str(topology))
    assert main(["correlate"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "services.api.depends_on must be a list" in line
