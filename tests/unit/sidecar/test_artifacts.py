"""The sidecar's artifact store: versions, champion pointer, checks before loading."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest

from models.batch import RiskArtifact
from models.batch._shared import library_versions
from models.batch.risk_fit import _example
from stream.offline.holdout_figures import risk_timeline_png
from stream.sidecar.artifacts import ArtifactError, ArtifactStore
from tests.unit.png import png_size


def test_save_promote_load_and_roll_back(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    risk = _example()
    stored = store.save(risk, "all", {"status": "champion"})
    for name in (
        "model.pkl",
        "model.sha256",
        "metadata.json",
        "pr_curve.png",
        "holdout_timeline.png",
        "importance.csv",
    ):
        assert (stored.path / name).is_file(), name
    assert store.champion("risk", "all") is None
    store.set_champion("risk", "all", risk.version)
    loaded = store.champion("risk", "all")
    assert loaded is not None
    X = np.array([[6.0, 0.0], [-1.0, 0.0], [0.5, 2.0]])
    np.testing.assert_array_equal(loaded.score(X), risk.score(X))

    with pytest.raises(ArtifactError):
        store.set_champion("risk", "all", "no-such-version")  # roll back only to what exists
    history = (tmp_path / "risk" / "all" / "history.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["status"] for line in history] == ["champion", "champion"]


def test_a_damaged_or_foreign_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    risk = _example()
    path = store.save(risk, "all", {"status": "champion"}).path
    blob = (path / "model.pkl").read_bytes()
    (path / "model.pkl").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ArtifactError, match="checksum"):
        store.load("risk", "all", risk.version)
    (path / "model.pkl").write_bytes(blob)
    metadata = orjson.loads((path / "metadata.json").read_bytes())
    metadata["libraries"]["scikit-learn"] = "0.1"
    (path / "metadata.json").write_bytes(orjson.dumps(metadata))
    with pytest.raises(ArtifactError, match=r"scikit-learn 0\.1"):
        store.load("risk", "all", risk.version)


def test_an_older_sidecars_anomaly_artifact_is_refused(tmp_path: Path) -> None:
    """Its pickle names ``models.batch.anomaly.AnomalyArtifact``, which is gone: loading it
    is an :class:`ArtifactError` like any unusable artifact, not an ImportError."""
    store = ArtifactStore(tmp_path)
    version = "anomaly-20270115T080319Z-0a1b2c3d"
    path = tmp_path / "anomaly" / "all" / version
    path.mkdir(parents=True)
    blob = b"\x80\x05cmodels.batch.anomaly\nAnomalyArtifact\n)\x81."  # as pickled then
    (path / "model.pkl").write_bytes(blob)
    (path / "model.sha256").write_text(hashlib.sha256(blob).hexdigest())
    metadata = {"kind": "anomaly", "version": version, "libraries": library_versions()}
    (path / "metadata.json").write_bytes(orjson.dumps(metadata))
    store.set_champion("anomaly", "all", version)
    with pytest.raises(ArtifactError, match="cannot be read"):
        store.load("anomaly", "all", version)
    with pytest.raises(ArtifactError, match="cannot be read"):
        store.champion("anomaly", "all")


def test_a_risk_version_gets_its_holdout_timeline_png(tmp_path: Path) -> None:
    risk = _example()
    path = ArtifactStore(tmp_path).save(risk, "all", {"status": "champion"}).path
    assert png_size(path / "holdout_timeline.png") == (1100, 460)
    assert (path / "holdout_timeline.png").read_bytes() == risk_timeline_png(risk)  # same bytes
    assert not (path / ".tmp-holdout_timeline.png").exists()


def test_an_artifact_pickled_before_the_holdout_sample_still_saves_and_loads(
    tmp_path: Path,
) -> None:
    risk = _example()
    state = dict(vars(risk))
    del state["holdout_sample"]  # what an older version pickled
    older = object.__new__(RiskArtifact)
    older.__dict__.update(state)
    restored = pickle.loads(pickle.dumps(older, protocol=5))
    assert "holdout_sample" not in vars(restored)
    assert restored.holdout_sample is None
    assert risk_timeline_png(restored) is None

    store = ArtifactStore(tmp_path)
    path = store.save(restored, "all", {"status": "champion"}).path
    assert (path / "pr_curve.png").is_file()
    assert not (path / "holdout_timeline.png").exists()
    loaded = store.load("risk", "all", risk.version)
    X = np.array([[6.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(loaded.score(X), risk.score(X))
