"""The sidecar fits risk models only: what an older detector or sidecar left for the anomaly
model it used to fit (rows on the features topic, a champion and its drift reference on disk)
is skipped, and risk models are restored and fed as before. No broker: the parts that need
none (``tests/integration/test_sidecar.py`` runs the rest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from models.batch.risk_fit import _example
from stream.settings import load_settings
from stream.sidecar.service import Sidecar

T0 = 1_795_000_000.0


def _sidecar(tmp_path: Path) -> Sidecar:
    settings = load_settings({"artifact_dir": str(tmp_path), "group_id": "g"})
    return Sidecar(settings, registry=CollectorRegistry(), serve_http=False)


def test_an_older_detectors_anomaly_rows_are_skipped(tmp_path: Path) -> None:
    sidecar = _sidecar(tmp_path)
    anomaly = [
        {"k": "anomaly", "g": "all", "s": "api", "t": T0 + i, "f": {"cpu": 50.0}, "score": 0.9}
        for i in range(300)
    ]
    risk = [
        {"k": "risk", "g": "all", "s": "api", "t": T0 + i, "f": {"z:cpu": 0.1}, "y": False}
        for i in range(40)
    ]
    assert sidecar._ingest(orjson.dumps({"rows": anomaly + risk})) == 40
    assert sidecar.window.groups() == ["risk:all"]
    rows = sidecar.registry.get_sample_value("vigil_sidecar_rows_total", {"kind": "risk"})
    assert rows == 40.0
    assert sidecar.registry.get_sample_value("vigil_sidecar_bad_messages_total") == 0.0
    assert set(sidecar.describe_models()["groups"]) == {"risk:all"}


def test_a_restart_restores_risk_champions_and_leaves_an_old_anomaly_champion_alone(
    tmp_path: Path,
) -> None:
    sidecar = _sidecar(tmp_path)
    store = sidecar.store
    risk = _example()
    store.save(risk, "all", {"status": "champion"})
    store.set_champion("risk", "all", risk.version)
    store.save_reference("risk", "all", risk.version, ["latency"], np.zeros((50, 1)))
    # What an older sidecar wrote for its anomaly champion: the model (a pickle of a class
    # that is gone), the pointer and the drift reference.
    old = "anomaly-20270115T080319Z-0a1b2c3d"
    (tmp_path / "g" / "anomaly" / "all" / old).mkdir(parents=True)
    (tmp_path / "g" / "anomaly" / "all" / old / "model.pkl").write_bytes(b"IsolationForest")
    store.set_champion("anomaly", "all", old)
    store.save_reference("anomaly", "all", old, ["cpu", "mem"], np.ones((50, 2)))
    assert sorted(store.groups()) == [("anomaly", "all"), ("risk", "all")]

    sidecar._restore()
    models = sidecar.describe_models()["groups"]
    assert set(models) == {"risk:all"}
    assert models["risk:all"]["champion"] == risk.version
    assert sidecar._groups["risk:all"].drift is not None  # the risk reference came back
    assert store.champion_version("anomaly", "all") == old  # left on disk as it was
