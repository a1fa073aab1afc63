"""deploy/prometheus/ checked by Prometheus's own promtool (the Debian package ``prometheus``,
installed by the test set-up when missing; skipped with a message where it cannot be):

- ``promtool check rules``: rules.yml parses, every expression and template is valid;
- ``promtool check config``: prometheus.yml (its rule_files resolve beside it);
- ``promtool test rules``: the unit tests beside them (rules_test.yml, rules_test_week.yml)
  make every alert fire when it should and stay quiet when it should not.

The metric names and labels the rules use are checked against the code in test_deploy.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.debian import require_debian_binary

PROMETHEUS_DIR = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULE_TESTS = ("rules_test.yml", "rules_test_week.yml")


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_debian_binary("promtool", "prometheus")


def _promtool(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def _alerts(path: Path) -> set[str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_rules_pass_promtool_check(promtool: str) -> None:
    assert "SUCCESS" in _promtool(promtool, "check", "rules", str(RULES))


def test_prometheus_config_passes_promtool_check(promtool: str) -> None:
    output = _promtool(promtool, "check", "config", "prometheus.yml")
    assert "1 rule files found" in output


def test_rule_unit_tests_pass(promtool: str) -> None:
    output = _promtool(promtool, "test", "rules", *RULE_TESTS)
    assert output.count("SUCCESS") == len(RULE_TESTS), output


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for name in RULE_TESTS:
        document = yaml.safe_load((PROMETHEUS_DIR / name).read_text())
        assert document["rule_files"] == [RULES.name]
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case["exp_alerts"] else quiet).add(case["alertname"])
    alerts = _alerts(RULES)
    assert alerts - fires == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


def test_promtool_test_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: a threshold moved makes them say so."""
    for name in (*RULE_TESTS, RULES.name):
        shutil.copy(PROMETHEUS_DIR / name, tmp_path / name)
    rules = tmp_path / RULES.name
    text = rules.read_text()
    assert "> 50000" in text
    rules.write_text(text.replace("> 50000", "> 70000"))
    done = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "VigilConsumerLagHigh" in done.stdout + done.stderr
