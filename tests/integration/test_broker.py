"""Real-broker tests of stream.dev.broker: a running Kafka, its lifecycle, and owned-JVM cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.dev.broker import BrokerError, LocalBroker, free_port
from stream.dev.broker_cli import broker_main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _jvm_alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie left for init to reap counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


async def test_produce_consume_round_trip(kafka_bootstrap: str) -> None:
    topic = f"vigil-roundtrip-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"event-{i}".encode(), key=b"host-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"vigil-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000, max_records=3)
        values = [record.value for records in batches.values() for record in records]
        while len(values) < 3:
            record = await consumer.getone()
            values.append(record.value)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert values == [b"event-0", b"event-1", b"event-2"]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of the test's own (the session one must keep running), not yet started."""
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "own-broker")
    try:
        yield broker
    finally:
        broker.stop()


def test_status_and_idempotent_start_stop(own_broker: LocalBroker) -> None:
    assert not own_broker.status().running
    assert own_broker.start(owned=True) == own_broker.bootstrap
    running = own_broker.status()
    assert running.running
    assert running.port == own_broker.port
    assert running.pid is not None
    assert _jvm_alive(running.pid)

    # Starting again finds the running broker instead of starting a second one.
    again = LocalBroker(port=own_broker.port, data_dir=own_broker.data_dir)
    assert again.start(owned=True) == own_broker.bootstrap
    assert again.status().pid == running.pid

    own_broker.stop()
    assert not _jvm_alive(running.pid)
    assert not own_broker.pid_file.exists()
    stopped = own_broker.status()
    assert not stopped.running
    assert stopped.pid is None
    own_broker.stop()  # idempotent: nothing left to stop
    again.stop()


def test_stop_without_a_broker_is_a_no_op(tmp_path: Path) -> None:
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "never-started")
    broker.stop()
    broker.stop()
    assert not broker.status().running


def test_cli_start_is_detached_and_status_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    data = tmp_path / "cli-broker"
    args = ["--port", str(port), "--data", str(data)]
    cli = (
        "import sys; from stream.dev.broker_cli import broker_main; "
        "sys.exit(broker_main(sys.argv[1:]))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", cli, "start", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"127.0.0.1:{port}"

        # The CLI process has exited; the broker it started keeps running.
        assert broker_main(["status", *args]) == 0
        assert capsys.readouterr().out.startswith(f"running on 127.0.0.1:{port}")
    finally:
        assert broker_main(["stop", *args]) == 0
    assert broker_main(["status", *args]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("not running")


_OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from stream.dev.broker import LocalBroker

    broker = LocalBroker(port=int(sys.argv[1]), data_dir=sys.argv[2])
    if sys.argv[3] == "worker-thread":
        # The starting thread ends right away: the broker must outlive it.
        worker = threading.Thread(target=broker.start, kwargs={"owned": True})
        worker.start()
        worker.join()
    else:
        broker.start(owned=True)
    print(broker.status().pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("starter", ["main-thread", "worker-thread"])
def test_owned_broker_dies_with_a_sigkilled_owner(tmp_path: Path, starter: str) -> None:
    port = free_port()
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT, str(port), str(tmp_path / "owned"), starter],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    jvm_pid = 0
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line.strip().isdigit(), f"owner printed {line!r}, exit {owner.poll()}"
        jvm_pid = int(line)
        time.sleep(0.5)
        assert _jvm_alive(jvm_pid)

        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert _wait_until(lambda: not _jvm_alive(jvm_pid), 15.0), (
            "the owned JVM outlived its owner"
        )
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        if jvm_pid and _jvm_alive(jvm_pid):
            os.killpg(jvm_pid, signal.SIGKILL)


def test_a_failed_start_explains_itself_and_leaves_nothing_running(tmp_path: Path) -> None:
    data = tmp_path / "bad-broker"
    (data / "logs").mkdir(parents=True)
    # Storage formatted for another node id: the broker exits at once.
    (data / "logs" / "meta.properties").write_text(
        "version=1\nnode.id=7\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAQ\n"
    )
    broker = LocalBroker(port=free_port(), data_dir=data)
    with pytest.raises(BrokerError, match="exited before it was ready") as caught:
        broker.start(owned=True)
    assert caught.value.exit_code == 1
    assert "broker.out" in str(caught.value)
    assert "node id 7" in str(caught.value)
    assert not broker.status().running
    assert not broker.pid_file.exists()
