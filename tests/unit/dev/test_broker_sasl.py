"""The local broker's optional SASL_PLAINTEXT listener: its server.properties and users."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.dev.broker import (
    DEV_SASL_PASSWORD,
    DEV_SASL_USERNAME,
    BrokerError,
    LocalBroker,
    render_server_properties,
)


def properties(**sasl: object) -> dict[str, str]:
    text = render_server_properties(
        port=9092,
        controller_port=9093,
        data_dir=Path("/d"),
        **sasl,  # type: ignore[arg-type]
    )
    pairs = (line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    return dict(pairs)


def test_no_sasl_listener_unless_asked() -> None:
    props = properties()
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert not any(key.startswith("listener.name.") for key in props)


def test_sasl_listener_with_plain_and_scram() -> None:
    props = properties(sasl_port=9094, sasl_users={"ann": "pw-1", "bob": "pw-2"})
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9094"
    )
    assert "SASL_PLAINTEXT:SASL_PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    prefix = "listener.name.sasl_plaintext."
    assert props[prefix + "sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    assert props[prefix + "plain.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'user_ann="pw-1" user_bob="pw-2";'
    )
    for mechanism in ("scram-sha-256", "scram-sha-512"):
        assert props[f"{prefix}{mechanism}.sasl.jaas.config"].startswith(
            "org.apache.kafka.common.security.scram.ScramLoginModule required"
        )


def test_the_development_user_by_default() -> None:
    jaas = properties(sasl_port=9094)["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert f'user_{DEV_SASL_USERNAME}="{DEV_SASL_PASSWORD}"' in jaas


@pytest.mark.parametrize("user", [{"ann": 'has"quote'}, {"a b": "pw"}, {"ann": "x,y]"}])
def test_credentials_that_need_quoting_are_refused(user: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(BrokerError) as info:
        LocalBroker(9092, tmp_path, sasl_port=9094, sasl_users=user)
    assert info.value.exit_code == 2
    assert next(iter(user.values())) not in str(info.value)


def test_sasl_bootstrap(tmp_path: Path) -> None:
    assert LocalBroker(9092, tmp_path).sasl_bootstrap is None
    broker = LocalBroker(9092, tmp_path, sasl_port=9094)
    assert broker.sasl_bootstrap == "127.0.0.1:9094"
    assert broker.status().sasl_port == 9094
