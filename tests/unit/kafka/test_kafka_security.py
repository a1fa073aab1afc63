"""Kafka security settings: validation, the aiokafka options they become, TLS contexts from
real PEM files, and secrets that never show in reprs, errors, logs or HTTP responses."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import SecretStr

from stream.cli import main
from stream.detector.detector import Detector
from stream.detector.http import create_app
from stream.dev.broker import free_port
from stream.kafka.kafka_options import SaslRedaction, kafka_options
from stream.settings import ConfigError, Settings, load_settings

SECRET = "pa55-Unlikely-To-Appear-7c1e"
KEY_SECRET = "key-Unlikely-To-Appear-90ab"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VIGIL_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)


def sasl(**more: object) -> dict[str, object]:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "vigil",
        "sasl_password": SECRET,
        **more,
    }


def config_error(overrides: dict[str, object], config_file: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides, config_file)
    message = str(info.value)
    assert "\n" not in message
    assert SECRET not in message
    assert KEY_SECRET not in message
    return message


# --------------------------------------------------------------------------- validation


def test_plaintext_is_the_default() -> None:
    settings = load_settings()
    assert settings.security_protocol == "PLAINTEXT"
    assert kafka_options(settings) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs VIGIL_SASL_MECHANISM, VIGIL_SASL_USERNAME"),
        (sasl(sasl_password=None), "SASL_PLAINTEXT needs VIGIL_SASL_PASSWORD"),
        (sasl(sasl_mechanism="GSSAPI"), "sasl_mechanism / VIGIL_SASL_MECHANISM: Input should be"),
        ({"sasl_password": SECRET}, "VIGIL_SASL_PASSWORD unused with security_protocol PLAINTEXT"),
        ({"ssl_cafile": "/etc/hostname"}, "VIGIL_SSL_CAFILE unused with security_protocol"),
        (sasl(ssl_check_hostname="maybe"), "ssl_check_hostname / VIGIL_SSL_CHECK_HOSTNAME"),
        ({"security_protocol": "TLS"}, "security_protocol / VIGIL_SECURITY_PROTOCOL"),
        ({"security_protocol": "SSL", "ssl_cafile": "/no/such.pem"}, "no such file"),
    ],
    ids=[
        "sasl-without-credentials",
        "sasl-without-password",
        "unknown-mechanism",
        "password-without-sasl",
        "tls-file-without-tls",
        "not-a-bool",
        "unknown-protocol",
        "missing-file",
    ],
)
def test_bad_combinations_are_one_readable_line(
    overrides: dict[str, object], expected: str
) -> None:
    message = config_error(overrides)
    assert message.startswith("invalid configuration: ")
    assert expected in message


def test_bad_security_configuration_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIGIL_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VIGIL_SASL_PASSWORD", SECRET)
    assert main(["detect"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("vigil: invalid configuration: ")
    assert SECRET not in err


def test_a_bad_secret_value_is_not_quoted(tmp_path: Path) -> None:
    toml = tmp_path / "vigil.toml"
    toml.write_text('sasl_password = ["pa55-Unlikely-To-Appear-7c1e"]\n')
    assert "sasl_password / VIGIL_SASL_PASSWORD" in config_error({}, toml)


def test_a_misspelt_secret_name_is_not_quoted(tmp_path: Path) -> None:
    toml = tmp_path / "vigil.toml"
    toml.write_text(f'sasl_pasword = "{SECRET}"\n')
    assert "sasl_pasword" in config_error({}, toml)


# --------------------------------------------------------------------------- SASL options


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_options(mechanism: str) -> None:
    options = kafka_options(load_settings(sasl(sasl_mechanism=mechanism)))
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "vigil",
        "sasl_plain_password": SECRET,
    }
    redactions = logging.getLogger("aiokafka.conn").filters
    assert sum(isinstance(f, SaslRedaction) for f in redactions) == 1


def test_aiokafka_debug_lines_lose_the_sasl_bytes(caplog: pytest.LogCaptureFixture) -> None:
    from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

    kafka_options(load_settings(sasl()))
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    request = SaslAuthenticateRequest_v1(f"vigil\0vigil\0{SECRET}".encode())
    logging.getLogger("aiokafka.conn").debug("Request to %s:%d %d: %s", "h", 1, 2, request)
    assert caplog.messages == ["Request to h:1 2: SaslAuthenticateRequest(<redacted>)"]


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Pem:
    """Self-signed PEM files made by the openssl CLI."""

    cert: Path
    key: Path
    encrypted_key: Path


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Pem:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    where = tmp_path_factory.mktemp("pem")
    files = Pem(where / "cert.pem", where / "key.pem", where / "key-encrypted.pem")
    subj = "/CN=vigil-test-ca"
    run = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subj]
    subprocess.run(
        [*run, "-keyout", str(files.key), "-out", str(files.cert)], check=True, capture_output=True
    )
    encrypt = [openssl, "pkey", "-in", str(files.key), "-aes256", "-passout", f"pass:{KEY_SECRET}"]
    subprocess.run([*encrypt, "-out", str(files.encrypted_key)], check=True, capture_output=True)
    return files


def test_ssl_options_carry_a_verifying_context(pem: Pem) -> None:
    settings = load_settings(
        {
            "security_protocol": "SSL",
            "ssl_cafile": str(pem.cert),
            "ssl_certfile": str(pem.cert),
            "ssl_keyfile": str(pem.encrypted_key),
            "ssl_keyfile_password": KEY_SECRET,
        }
    )
    options = kafka_options(settings)
    assert set(options) == {"security_protocol", "ssl_context"}
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    subjects = [dict(pair[0] for pair in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "vigil-test-ca"} in subjects
    assert KEY_SECRET not in repr(settings)


def test_sasl_ssl_without_hostname_checks(pem: Pem) -> None:
    options = kafka_options(
        load_settings(
            sasl(security_protocol="SASL_SSL", ssl_cafile=str(pem.cert), ssl_check_hostname=False)
        )
    )
    assert options["sasl_plain_password"] == SECRET
    assert options["ssl_context"].check_hostname is False
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_a_wrong_key_password_is_a_config_error(pem: Pem) -> None:
    message = config_error(
        {
            "security_protocol": "SSL",
            "ssl_certfile": str(pem.cert),
            "ssl_keyfile": str(pem.encrypted_key),
            "ssl_keyfile_password": SECRET,
        }
    )
    assert "VIGIL_SSL_KEYFILE_PASSWORD" in message


def test_a_ca_file_without_certificates_is_a_config_error(pem: Pem) -> None:
    message = config_error({"security_protocol": "SSL", "ssl_cafile": str(pem.key)})
    assert f"ssl_cafile / VIGIL_SSL_CAFILE: no PEM CA certificate in {pem.key}" in message


def test_a_key_needs_its_certificate(pem: Pem) -> None:
    message = config_error({"security_protocol": "SSL", "ssl_keyfile": str(pem.key)})
    assert "VIGIL_SSL_KEYFILE needs VIGIL_SSL_CERTFILE" in message


# --------------------------------------------------------------------------- never shown


def secured_settings() -> Settings:
    return load_settings(sasl(http_host="127.0.0.1", http_port=0, snapshots=False))


def test_reprs_and_dumps_hide_the_password() -> None:
    settings = secured_settings()
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == SECRET
    for shown in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        str(settings.model_dump(mode="json")),
    ):
        assert SECRET not in shown
        assert "**********" in shown


def test_help_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIGIL_SASL_PASSWORD", SECRET)
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    assert SECRET not in capsys.readouterr().out


async def test_http_responses_and_logs_never_show_the_password(tmp_path: Path) -> None:
    token = f"http-{SECRET}"
    settings = secured_settings().model_copy(
        update={"artifact_dir": str(tmp_path), "http_token": SecretStr(token)}
    )
    with structlog.testing.capture_logs() as logs:
        detector = Detector(settings, serve_http=False)
        transport = httpx.ASGITransport(app=create_app(detector, detector.http_guard))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            bodies = [(await client.get(path)).text for path in ("/healthz", "/models", "/metrics")]
            wrong = {"Authorization": f"Bearer {token[:-1]}"}
            bodies.append((await client.post("/score", json={}, headers=wrong)).text)
    assert SECRET not in "".join(bodies) + repr(logs)


def test_a_failed_start_logs_no_password(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``vigil detect`` at DEBUG against a port where nothing listens: start-up, logging set-up
    and the failure are all written out, and the password is in none of it."""
    for name, value in sasl().items():
        monkeypatch.setenv(f"VIGIL_{name.upper()}", str(value))
    monkeypatch.setenv("VIGIL_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("VIGIL_CONNECT_TIMEOUT_S", "3")  # a few retries, not the default minute
    monkeypatch.setenv("VIGIL_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("VIGIL_LOG_FORMAT", "json")
    monkeypatch.setenv("VIGIL_HTTP_HOST", "127.0.0.1")
    monkeypatch.setenv("VIGIL_HTTP_PORT", "0")
    monkeypatch.setenv("VIGIL_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.setenv("VIGIL_ARTIFACT_DIR", str(tmp_path / "artifacts"))
    assert main(["detect"]) == 1
    out, err = capfd.readouterr()
    assert "detector_failed" in err
    assert SECRET not in out + err
