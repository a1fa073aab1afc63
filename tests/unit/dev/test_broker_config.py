"""Unit tests of stream.dev.broker's pure parts: config rendering, the pom, tools and jar
caching."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stream.dev.broker import (
    BrokerError,
    LocalBroker,
    find_java,
    find_pom,
    free_port,
    random_cluster_id,
    read_kafka_version,
    render_log4j2_config,
    render_server_properties,
    resolve_jars,
)
from stream.dev.broker_cli import broker_main

REPO = Path(__file__).resolve().parents[3]

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project{xmlns}>
  <modelVersion>4.0.0</modelVersion>
  <properties>{properties}</properties>
</project>
"""


def _pom(tmp_path: Path, properties: str, *, namespaced: bool = True) -> Path:
    xmlns = ' xmlns="http://maven.apache.org/POM/4.0.0"' if namespaced else ""
    pom = tmp_path / "pom.xml"
    pom.write_text(_POM.format(xmlns=xmlns, properties=properties))
    return pom


def _parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def _script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty dir as the whole PATH (no java, no mvn) and no JAVA_HOME."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return bin_dir


# --------------------------------------------------------------------------- server.properties


def test_server_properties_is_a_single_node_kraft_combined_config() -> None:
    props = _parse_properties(
        render_server_properties(port=29092, controller_port=29093, data_dir=Path("/data/b"))
    )
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == "/data/b/logs"
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key


def test_server_properties_binds_loopback_only() -> None:
    text = render_server_properties(port=9092, controller_port=40000, data_dir=Path("/d"))
    hosts = set(re.findall(r"//([^:]+):\d+", text)) | set(re.findall(r"@([^:]+):\d+", text))
    assert hosts == {"127.0.0.1"}


def test_log4j2_config_logs_to_the_data_dir(tmp_path: Path) -> None:
    text = render_log4j2_config(tmp_path / "a&b")
    assert f'fileName="{tmp_path}/a&amp;b/server.log"' in text
    assert '<Root level="INFO">' in text
    assert 'shutdownHook="disable"' in text


def test_random_cluster_id_is_kafka_shaped() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")


# --------------------------------------------------------------------------- the pom


def test_the_shipped_pom_is_found_and_pins_a_kafka_4_release() -> None:
    pom = find_pom()
    assert pom == REPO / "deploy" / "kafka" / "pom.xml"
    assert re.fullmatch(r"4\.\d+\.\d+", read_kafka_version(pom))


@pytest.mark.parametrize("namespaced", [True, False])
def test_read_kafka_version(tmp_path: Path, namespaced: bool) -> None:
    pom = _pom(tmp_path, "<kafka.version> 4.0.0 </kafka.version>", namespaced=namespaced)
    assert read_kafka_version(pom) == "4.0.0"


@pytest.mark.parametrize(
    "properties",
    ["", "<kafka.version></kafka.version>", "<kafka.version>../4.1</kafka.version>"],
)
def test_read_kafka_version_rejects_a_missing_or_odd_version(
    tmp_path: Path, properties: str
) -> None:
    with pytest.raises(BrokerError, match=r"kafka\.version") as caught:
        read_kafka_version(_pom(tmp_path, properties))
    assert caught.value.exit_code == 2


def test_read_kafka_version_of_a_broken_pom(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project>")
    with pytest.raises(BrokerError, match="cannot read"):
        read_kafka_version(pom)


# --------------------------------------------------------------------------- tools


def test_missing_java_is_one_clear_line(bare_path: Path) -> None:
    with pytest.raises(BrokerError) as caught:
        find_java()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Java 17+ is required to run the local Kafka broker")
    assert "openjdk-17-jre-headless" in message
    assert caught.value.exit_code == 2


def test_old_java_is_refused(bare_path: Path) -> None:
    _script(bare_path, "java", "echo 'java version \"1.8.0_402\"' >&2\n")
    with pytest.raises(BrokerError, match=r"is Java 8\)$"):
        find_java()


def test_java_home_wins_over_path(bare_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = bare_path.parent / "jdk"
    java = _script(home / "bin", "java", "echo 'openjdk version \"21.0.2\"' >&2\n")
    _script(bare_path, "java", "exit 1\n")
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert find_java() == str(java)


def test_start_without_java_fails_before_touching_anything(bare_path: Path) -> None:
    broker = LocalBroker(port=free_port(), data_dir=bare_path.parent / "data")
    with pytest.raises(BrokerError, match="Java 17"):
        broker.start(owned=True)
    assert not broker.data_dir.exists()


def test_cli_reports_missing_java_with_exit_2(
    bare_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = broker_main(["start", "--port", str(free_port()), "--data", str(bare_path.parent / "d")])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("vigil broker: Java 17+ is required")
    assert captured.err.count("\n") == 1


# --------------------------------------------------------------------------- jar cache


_FAKE_MVN = """
echo "$@" >> "{log}"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}" ;; esac
done
if [ -e "{fail_flag}" ]; then mkdir -p "$out"; echo "half" > "$out/half.jar"; exit 1; fi
mkdir -p "$out" && echo jar > "$out/kafka_2.13-4.0.0.jar"
"""


@pytest.fixture
def fake_mvn(bare_path: Path) -> tuple[Path, Path]:
    """A fake ``mvn`` on PATH logging its calls; it fails while ``<tmp>/fail`` exists."""
    log = bare_path.parent / "mvn-calls.log"
    fail_flag = bare_path.parent / "fail"
    _script(bare_path, "mvn", _FAKE_MVN.format(log=log, fail_flag=fail_flag))
    return log, fail_flag


def test_resolve_jars_once_into_the_versioned_cache(
    tmp_path: Path, fake_mvn: tuple[Path, Path]
) -> None:
    log, _ = fake_mvn
    pom = _pom(tmp_path, "<kafka.version>4.0.0</kafka.version>")
    cache = tmp_path / "cache"
    lib = resolve_jars(pom, cache)
    assert lib == cache / "kafka-4.0.0" / "lib"
    assert (lib / "kafka_2.13-4.0.0.jar").is_file()
    assert resolve_jars(pom, cache) == lib
    calls = log.read_text().splitlines()
    assert len(calls) == 1
    assert f"-f {pom} dependency:copy-dependencies" in calls[0]
    assert "-DincludeScope=runtime" in calls[0]
    assert sorted(p.name for p in cache.iterdir()) == ["kafka-4.0.0", "kafka-4.0.0.lock"]


def test_resolve_jars_cache_dir_comes_from_the_environment(
    tmp_path: Path, fake_mvn: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_KAFKA_CACHE", str(tmp_path / "env-cache"))
    lib = resolve_jars(_pom(tmp_path, "<kafka.version>4.0.0</kafka.version>"))
    assert lib == tmp_path / "env-cache" / "kafka-4.0.0" / "lib"


def test_failed_resolve_leaves_no_half_cache(tmp_path: Path, fake_mvn: tuple[Path, Path]) -> None:
    log, fail_flag = fake_mvn
    fail_flag.touch()
    pom = _pom(tmp_path, "<kafka.version>4.0.0</kafka.version>")
    cache = tmp_path / "cache"
    with pytest.raises(BrokerError, match="Maven failed") as caught:
        resolve_jars(pom, cache)
    assert caught.value.exit_code == 1
    assert [p.name for p in cache.iterdir()] == ["kafka-4.0.0.lock"]

    fail_flag.unlink()
    assert (resolve_jars(pom, cache) / "kafka_2.13-4.0.0.jar").is_file()
    assert len(log.read_text().splitlines()) == 2


def test_a_changed_pom_is_resolved_again(tmp_path: Path, fake_mvn: tuple[Path, Path]) -> None:
    log, _ = fake_mvn
    pom = _pom(tmp_path, "<kafka.version>4.0.0</kafka.version>")
    cache = tmp_path / "cache"
    resolve_jars(pom, cache)
    pom.write_text(pom.read_text().replace("</properties>", "<x>1</x></properties>"))
    resolve_jars(pom, cache)
    assert len(log.read_text().splitlines()) == 2
    assert sorted(p.name for p in cache.iterdir()) == ["kafka-4.0.0", "kafka-4.0.0.lock"]


def test_missing_maven_is_one_clear_line(tmp_path: Path, bare_path: Path) -> None:
    pom = _pom(tmp_path, "<kafka.version>4.0.0</kafka.version>")
    with pytest.raises(BrokerError, match=r"^Maven is required") as caught:
        resolve_jars(pom, tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


# --------------------------------------------------------------------------- pid file and status


def test_status_of_a_data_dir_without_a_broker(tmp_path: Path) -> None:
    state = LocalBroker(port=29092, data_dir=tmp_path).status()
    assert not state.running
    assert state.pid is None
    assert state.bootstrap == "127.0.0.1:29092"
    assert state.describe().startswith("not running (port 29092")


def test_a_stale_pid_file_is_not_running_and_stop_tidies_it(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    broker = LocalBroker(port=29092, data_dir=tmp_path)
    broker.pid_file.write_text(json.dumps({"pid": int(dead.stdout), "port": 29092}))
    assert not broker.status().running
    broker.stop()
    assert not broker.pid_file.exists()


def test_a_pid_file_naming_another_live_process_is_not_ours(tmp_path: Path) -> None:
    broker = LocalBroker(port=29092, data_dir=tmp_path)
    broker.pid_file.write_text(json.dumps({"pid": os.getpid(), "port": 29092}))
    assert not broker.status().running
    broker.stop()  # must not signal this very process
    assert not broker.pid_file.exists()


def test_cli_status_without_a_broker_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert broker_main(["status", "--port", "29092", "--data", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("not running")


def test_the_data_dir_defaults_per_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert LocalBroker(port=19092).data_dir == tmp_path / ".cache" / "vigil" / "broker-19092"
