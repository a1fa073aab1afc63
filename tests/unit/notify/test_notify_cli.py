"""``vigil notify`` on the command line: its settings flags, and bad configuration exits 2
with one line."""

from __future__ import annotations

import os

import pytest

from stream.cli import main


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)


def test_notify_offers_its_settings_and_detect_does_not(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["notify", "--help"])
    out = capsys.readouterr().out
    for flag in ("--alertmanager-url", "--notify-repost-s", "--notify-webhook-secret"):
        assert flag in out
    # The silences of single alerts (--notify-alerts): windows and the deploy rule.
    for flag in ("--maintenance-windows", "--deploy-expected-s"):
        assert flag in out
    assert "--hst-trees" not in out
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    assert "--alertmanager-url" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["notify"], "no sink configured"),
        (["notify", "--notify-webhook-url", "http://h/x"], "VIGIL_NOTIFY_WEBHOOK_SECRET"),
        (["notify", "--alertmanager-url", "am:9093"], "http:// or https://"),
        (
            ["notify", "--notify-slack-webhook-url", "http://h/x", "--notify-retry-max-s", "-1"],
            "notify_retry_max_s",
        ),
        (
            ["notify", "--notify-webhook-url", "http://h/x", "--notify-webhook-secret", "short"],
            "at least 16 characters",
        ),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert says in err
    assert "short" not in err  # a secret is never echoed
