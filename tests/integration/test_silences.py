"""Silences through the real broker: ``vigil silence add|list|remove`` as an operator runs
it, and a follower that sees silences come and go while it runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import structlog

from stream.cli import main
from stream.kafka.silences import SilenceFollower, publish_silence, publish_tombstone
from stream.schemas import Silence
from stream.settings import Settings
from tests.integration.kafka_io import produce

pytestmark = pytest.mark.integration


def _own_topic(settings: Settings) -> Settings:
    return settings.model_copy(update={"topic_silences": f"{settings.group_id}.silences"})


def _vigil_process(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``vigil silence ARGS`` in a process of its own, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {
        "VIGIL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "VIGIL_TOPIC_SILENCES": settings.topic_silences,
        "VIGIL_CONNECT_TIMEOUT_S": "10",
    }
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "silence", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def vigil(
    test_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """``vigil silence ARGS`` in this process (faster: no interpreter start), with this
    test's broker and topic in the environment: (exit status, stdout, stderr)."""
    settings = _own_topic(test_settings)
    for name in [k for k in os.environ if k.startswith("VIGIL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIGIL_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    monkeypatch.setenv("VIGIL_TOPIC_SILENCES", settings.topic_silences)
    # The command configures logging for a process of its own: not this test session's.
    monkeypatch.setattr("stream.telemetry.configure_logging", lambda *_: None)

    def run(*args: str) -> tuple[int, str, str]:
        with structlog.testing.capture_logs():  # structlog's default would print to stdout
            code = main(["silence", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_an_operator_adds_lists_and_removes_a_silence(
    test_settings: Settings, vigil: Callable[..., tuple[int, str, str]]
) -> None:
    settings = _own_topic(test_settings)
    added = _vigil_process(
        settings, "add", "--service", "db*", "--for", "2h", "--reason", "upgrade", "--by", "ann"
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    assert silence_id.startswith("s-")

    code, out, err = vigil("list", "--json")
    assert code == 0, err
    (row,) = orjson.loads(out)
    assert row["silence_id"] == silence_id
    assert (row["service"], row["state"], row["reason"], row["created_by"]) == (
        "db*",
        "active",
        "upgrade",
        "ann",
    )
    ends = datetime.fromisoformat(row["ends_at"]) - datetime.fromisoformat(row["starts_at"])
    assert ends == timedelta(hours=2)
    code, out, _ = vigil("list")
    assert silence_id in out
    assert "upgrade" in out

    code, _, err = vigil("remove", "s-nosuchsilence")
    assert code == 1
    assert err.strip() == "vigil silence remove: no silence 's-nosuchsilence'"

    code, out, err = vigil("remove", silence_id)
    assert (code, out.strip()) == (0, f"removed {silence_id}"), err
    code, out, _ = vigil("list", "--all", "--json")
    assert (code, out.strip()) == (0, "[]")


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, "not seen in time"
        await asyncio.sleep(0.02)


async def test_a_follower_sees_silences_come_and_go(test_settings: Settings) -> None:
    settings = _own_topic(test_settings)
    now = datetime.now(UTC)

    def silence(silence_id: str) -> Silence:
        return Silence(
            silence_id=silence_id,
            service="db",
            starts_at=now,
            ends_at=now + timedelta(hours=1),
            reason="test",
        )

    before = SilenceFollower(settings)
    await before.start(follow=False)  # creates the topic
    await before.stop()
    await publish_silence(settings, silence("old"))
    follower = SilenceFollower(settings, poll_s=0.2)
    await follower.start()
    try:
        assert "old" in follower.book  # read whole before start() returned
        began = time.monotonic()
        await publish_silence(settings, silence("new"))  # a producer's start, send and ack
        await _until(lambda: "new" in follower.book)
        seen_s = time.monotonic() - began
        await produce(settings.bootstrap_servers, settings.topic_silences, [(b"bad", b"{nope")])
        began = time.monotonic()
        await publish_tombstone(settings, "old")
        await _until(lambda: "old" not in follower.book)
        gone_s = time.monotonic() - began
        assert follower.counts["malformed"] == 1
        assert [s.silence_id for s in follower.book.active(now)] == ["new"]
        print(f"\nadd seen in {seen_s:.2f} s, removal in {gone_s:.2f} s")
        assert seen_s < 2.0
        assert gone_s < 2.0
    finally:
        await follower.stop()
        await follower.stop()  # idempotent
