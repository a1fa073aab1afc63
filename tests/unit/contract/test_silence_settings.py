"""Maintenance windows and the deploy rule as settings, and ``vigil silence``'s input
checks (no broker: bad input exits 2 before Kafka is asked)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream.cli import main
from stream.core.problems.silences import SilenceBook
from stream.core.problems.windows import MaintenanceWindow
from stream.schemas import Silence
from stream.settings import ConfigError, load_settings
from stream.silence_command import silence_rows

WINDOW = '{"name": "db-nightly", "cron": "0 2 * * *", "duration_s": "2h", "service": "db*"}'


def test_windows_from_toml(tmp_path: Path) -> None:
    toml = tmp_path / "vigil.toml"
    toml.write_text(
        "deploy_expected_s = 900\n"
        "[[maintenance_windows]]\n"
        'name = "db-nightly"\ncron = "0 2 * * sun"\nduration_s = "1h30m"\nservice = "db*"\n'
        'metric = "disk_*"\n'
    )
    settings = load_settings(config_file=toml)
    (window,) = settings.maintenance_windows
    assert (window.duration_s, window.metric) == (5400.0, "disk_*")
    book = settings.silence_book()
    assert book.deploy_expected_s == 900
    sunday = datetime(2026, 12, 6, 3, tzinfo=UTC)
    assert [s.silence_id for s in book.active(sunday)] == ["window:db-nightly"]


def test_windows_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_MAINTENANCE_WINDOWS", f"[{WINDOW}]")
    (window,) = load_settings().maintenance_windows
    assert (window.name, window.duration_s, window.service) == ("db-nightly", 7200.0, "db*")
    assert load_settings().deploy_expected_s == 0  # the deploy rule is off by default


@pytest.mark.parametrize(
    ("windows", "says"),
    [
        ('[{"name": "w1", "cron": "0 25 * * *", "duration_s": 60}]', "'w1': cron '0 25 * * *'"),
        ('[{"name": "w1", "cron": "0 2 * *", "duration_s": 60}]', "needs five fields"),
        ('[{"name": "w1", "cron": "0 2 * * *", "duration_s": "2 hours"}]', "not a duration"),
        ('[{"name": "w1", "cron": "0 2 * * *", "duration_s": -5}]', "must be positive"),
        (f"[{WINDOW}, {WINDOW}]", "unique: db-nightly"),
        ('[{"name": "w1", "cron": "0 2 * * *"}]', "duration_s"),
    ],
)
def test_bad_windows_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, windows: str, says: str
) -> None:
    monkeypatch.setenv("VIGIL_MAINTENANCE_WINDOWS", windows)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_window_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIGIL_MAINTENANCE_WINDOWS", '[{"name": "w", "cron": "x", "duration_s": 1}]')
    assert main(["silence", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "maintenance window 'w'" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--service", "db", "--for", "2x", "--reason", "r"], "not a duration: '2x'"),
        (["--service", "db", "--for", "0s", "--reason", "r"], "must be positive"),
        (["--service", "db", "--reason", "r"], "required: --for"),
        (["--service", "db", "--for", "1h"], "required: --reason"),
        (["--service", "db", "--for", "1h", "--reason", "r", "--starts-at", "soon"], "RFC 3339"),
        (["--service", "db", "--for", "1h", "--reason", "r", "--starts-at", "2026-12-07T02:00"],
         "timezone"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["silence", "add", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1


def test_a_silence_over_already_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command configures logging for a process of its own: not this test session's.
    monkeypatch.setattr("stream.telemetry.configure_logging", lambda *_: None)
    args = ["--service", "db", "--for", "1h", "--reason", "r", "--starts-at", "2020-01-01T00:00Z"]
    assert main(["silence", "add", *args]) == 2
    assert "over already" in capsys.readouterr().err


def test_silence_offers_its_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["silence", "add", "--help"])
    out = capsys.readouterr().out
    for flag in ("--bootstrap-servers", "--topic-silences", "--maintenance-windows", "--for"):
        assert flag in out
    assert "--hst-trees" not in out


def test_list_shows_what_is_in_force_or_everything_with_its_state() -> None:
    book = SilenceBook([MaintenanceWindow("nightly", "0 2 * * *", 3600, service="search")])
    for name, start_h, end_h in [("old", 0, 1), ("now", 1, 4), ("later", 5, 6)]:
        book.put(
            Silence(
                silence_id=name,
                starts_at=datetime(2026, 12, 7, start_h, tzinfo=UTC),
                ends_at=datetime(2026, 12, 7, end_h, tzinfo=UTC),
            )
        )
    at = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
    rows = silence_rows(book, at, everything=False)
    assert [(r["silence_id"], r["state"]) for r in rows] == [
        ("now", "active"),
        ("window:nightly", "active"),
    ]
    rows = silence_rows(book, at, everything=True)
    assert [(r["silence_id"], r["state"]) for r in rows] == [
        ("old", "expired"),
        ("now", "active"),
        ("later", "future"),
        ("window:nightly", "active"),
    ]
