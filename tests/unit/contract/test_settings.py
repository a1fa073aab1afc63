"""stream.settings and the CLI's configuration handling: defaults, precedence, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream.cli import main
from stream.cli_flags import SETTING_GROUPS, setting_group
from stream.settings import ConfigError, Settings, load_settings, settings_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VIGIL_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "vigil.toml"
    path.write_text('http_port = 7000\ngroup_id = "from-toml"\n')
    return path


def _config_error(*args: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kwargs)  # type: ignore[arg-type]  # arguments vary per test
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.group_id == "vigil-detector"
    assert settings.http_port == 8000
    assert settings.create_topics is True
    assert settings.anomaly_threshold is None
    assert settings.anomaly_budget_per_day == 0.25
    topics = {
        name: getattr(settings, f"topic_{name}")
        for name in ("metrics", "logs", "incidents", "feedback", "alerts", "dlq", "models")
    }
    assert topics == {name: f"vigil.{name}" for name in topics}


def test_toml_overrides_defaults(toml: Path) -> None:
    settings = load_settings(config_file=toml)
    assert (settings.http_port, settings.group_id) == (7000, "from-toml")


def test_env_overrides_toml(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_HTTP_PORT", "7100")
    settings = load_settings(config_file=toml)
    assert (settings.http_port, settings.group_id) == (7100, "from-toml")


def test_flags_override_env(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_HTTP_PORT", "7100")
    settings = load_settings({"http_port": "7200", "group_id": None}, config_file=toml)
    assert (settings.http_port, settings.group_id) == (7200, "from-toml")


def test_env_renames_a_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_TOPIC_ALERTS", "team.alerts")
    settings = load_settings()
    assert settings.topic_alerts == "team.alerts"
    assert settings.topic_metrics == "vigil.metrics"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.http_port = 1  # type: ignore[misc]  # the point of the test


@pytest.mark.parametrize(
    ("overrides", "env", "named"),
    [
        ({"http_port": "abc"}, {}, "http_port"),
        ({}, {"VIGIL_HTTP_PORT": "abc"}, "VIGIL_HTTP_PORT"),
        ({"anomaly_budget_per_day": -2}, {}, "anomaly_budget_per_day"),
        ({}, {"VIGIL_ANOMALY_DIRECTIONS": '[{"metric": "x"}]'}, "anomaly_directions"),
        ({}, {"VIGIL_ANOMALY_DIRECTIONS": "not json"}, "anomaly_directions"),
        ({}, {"VIGIL_CREATE_TOPICS": "maybe"}, "create_topics"),
        ({"log_level": "LOUD"}, {}, "log_level"),
        ({}, {"VIGIL_LOG_WINDOW_S": "0"}, "log_window_s"),
    ],
)
def test_invalid_values_are_one_line_naming_the_setting(
    overrides: dict[str, object],
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert named in _config_error(overrides)


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("http_prot = 8001\n")
    assert "http_prot" in _config_error(config_file=path)


def test_missing_toml_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert str(path) in _config_error(config_file=path)


def test_malformed_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("http_port = \n")
    assert "line 1" in _config_error(config_file=path)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("http_port = \n")
    assert "broken.toml" in _config_error(config_file=path)


# ------------------------------------------------------------------------------ the CLI


def test_cli_bad_flag_value_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--http-port", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "http_port" in err
    assert "Traceback" not in err


def test_cli_bad_env_value_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_ANOMALY_BUDGET_PER_DAY", "-1")
    assert main(["detect"]) == 2
    assert "anomaly_budget_per_day" in capsys.readouterr().err


def test_cli_config_from_env_that_does_not_exist_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", str(tmp_path / "absent.toml"))
    assert main(["detect"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_replay_of_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "/nonexistent.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent.jsonl" in err
    assert err.count("\n") == 1


def test_cli_help_documents_flags_and_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        main(["detect", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "--anomaly-budget-per-day",
        "VIGIL_ANOMALY_BUDGET_PER_DAY",
        "--http-port",
        "--config",
    ):
        assert text in out


def test_cli_unknown_flag_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["detect", "--no-such-flag"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--no-such-flag" in err


def test_every_setting_has_one_group() -> None:
    for name in Settings.model_fields:
        owners = [
            group
            for group, entries in SETTING_GROUPS.items()
            if any(name == e or (e.endswith("_") and name.startswith(e)) for e in entries)
        ]
        assert owners == [setting_group(name)], name


@pytest.mark.parametrize(
    ("command", "offered", "not_offered"),
    [
        ("simulate", "--bootstrap-servers", "--hst-trees"),
        ("replay", "--anomaly-budget-per-day", "--bootstrap-servers"),
        ("sidecar", "--sidecar-retrain-s", "--season-buckets"),
        ("detect", "--snapshot-interval-s", "--sidecar-retrain-s"),
        ("detect", "--metrics-services", "--sidecar-retrain-s"),
        ("sidecar", "--sidecar-retrain-s", "--metrics-services"),
        ("bench", "--sidecar-retrain-s", None),
    ],
)
def test_each_command_offers_the_settings_it_uses(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    offered: str,
    not_offered: str | None,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert offered in out
    if not_offered is not None:
        assert not_offered not in out


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("vigil 0.")


def test_python_m_stream_cli_runs_every_command() -> None:
    """``python -m stream.cli`` (how tests and the demo start services) knows all commands:
    its ``__main__`` guard must come after the last function it may call."""
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "config", "show", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert orjson.loads(done.stdout)


def test_config_show_says_where_each_setting_came_from_and_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, toml: Path
) -> None:
    monkeypatch.setenv("VIGIL_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("VIGIL_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("VIGIL_SASL_USERNAME", "vigil")
    monkeypatch.setenv("VIGIL_SASL_PASSWORD", "s3cret-password")
    monkeypatch.setenv("VIGIL_CONFIG", str(toml))
    assert main(["config", "show", "--json", "--group-id", "from-flag"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    rows = {row["name"]: row for row in orjson.loads(out)}
    assert (rows["group_id"]["value"], rows["group_id"]["source"]) == ("from-flag", "flag")
    assert (rows["http_port"]["value"], rows["http_port"]["source"]) == (7000, f"config {toml}")
    assert rows["sasl_password"]["value"] == "********"
    assert rows["sasl_password"]["source"] == "env VIGIL_SASL_PASSWORD"
    assert rows["client_id"]["source"] == "default"
    assert set(rows) == set(Settings.model_fields)
    assert main(["config", "show"]) == 0  # as text: one line per setting
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rows)
    assert any(line.startswith("http_port") and line.endswith(f"# config {toml}") for line in lines)


def test_config_show_of_bad_settings_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--http-port", "abc"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_log_settings_shape_the_log_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_LOG_LATENESS_S", "5")
    config = load_settings({"log_window_s": 60, "log_max_templates": 50}).log_config()
    assert (config.window_s, config.lateness_s, config.max_templates) == (60.0, 5.0, 50)


def test_log_windows_alert_on_longer_messages_only_unless_the_operator_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    anomaly = load_settings().log_config().anomaly
    assert anomaly.direction_of("msg_len_max") == "up"
    assert anomaly.direction_of("lines") == "both"  # silence is a drop
    monkeypatch.setenv("VIGIL_ANOMALY_DIRECTIONS", '[{"metric": "msg_len_*", "direction": "both"}]')
    assert load_settings().log_config().anomaly.direction_of("msg_len_max") == "both"


def test_direction_and_budget_rules_from_toml_env_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text(
        '[[anomaly_directions]]\nmetric = "cpu_*"\ndirection = "both"\n\n'
        '[[anomaly_services]]\nservice = "pay*"\nbudget_per_day = 2\n'
    )
    anomaly = load_settings(config_file=config).anomaly_config()
    assert anomaly.direction_of("cpu_p95") == "both"
    assert anomaly.direction_of("err_5xx") == "up"  # the defaults still apply after
    assert anomaly.budget_for("payments") == 2.0
    assert anomaly.budget_for("search") == 0.25
    monkeypatch.setenv("VIGIL_ANOMALY_DIRECTIONS", '[{"metric": "err_*", "direction": "both"}]')
    assert load_settings().anomaly_config().direction_of("err_5xx") == "both"
    flags = load_settings({"anomaly_services": '[{"service": "*", "budget_per_day": 5}]'})
    assert flags.anomaly_config().budget_for("x") == 5.0
    # A child process gets the rules back as JSON.
    env = settings_env(flags)
    assert orjson.loads(env["VIGIL_ANOMALY_SERVICES"]) == [{"service": "*", "budget_per_day": 5.0}]
