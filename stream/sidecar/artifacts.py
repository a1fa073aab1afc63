"""The sidecar's model artifacts on disk: versioned, checksummed, with a champion per group.

Layout: ``<root>/<kind>/<group>/<version>/`` holds

- ``model.pkl``: the pickled artifact (:mod:`models.batch`), and ``model.sha256``;
- ``metadata.json``: data range, metrics, thresholds, importance, the comparison that decided
  its fate, and its status (``champion``, ``rejected``, ``retired``);
- ``importance.csv``: coefficient and permutation importance per feature (risk models);
- ``pr_curve.png``: the holdout precision-recall curve with the operating point (risk models);
- ``holdout_timeline.png``: the holdout's probabilities over event time, with the alerts at
  the threshold, each incident's positive rows and the threshold marked (risk models; not
  written for an artifact pickled before it kept a holdout sample).

``<root>/<kind>/<group>/champion.json`` names the champion's version (written atomically),
``challenger.json`` the challenger being scored in shadow (if any), and ``history.jsonl``
records every decision. A promoted model's directory also holds ``reference.npz``: the sample
of its training rows that feature drift is measured against (so a restarted sidecar measures
drift against the same rows). Loading checks the checksum and the scikit-learn
version the artifact was fitted with (another version may unpickle it wrongly) and refuses
otherwise. Artifacts are written and read only by Vigil's own processes: pickle is not a
format for untrusted input.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from models.batch import Artifact, RiskArtifact
from models.batch._shared import library_versions
from stream.offline.holdout_figures import pr_curve_png, risk_timeline_png

__all__ = ["Artifact", "ArtifactError", "ArtifactStore", "StoredArtifact"]


class ArtifactError(Exception):
    """An artifact that must not be used (damaged, or fitted by another library version)."""


@dataclass(frozen=True)
class StoredArtifact:
    """Where an artifact was written."""

    kind: str
    group: str
    version: str
    path: Path


class ArtifactStore:
    """Model artifacts under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, artifact: Artifact, group: str, decision: dict[str, Any]) -> StoredArtifact:
        """Write an artifact with its metadata, figures and the decision about it."""
        directory = self.root / artifact.kind / group / artifact.version
        directory.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps(artifact, protocol=5)
        _atomic_write(directory / "model.pkl", blob)
        _atomic_write(directory / "model.sha256", hashlib.sha256(blob).hexdigest().encode())
        metadata = {**artifact.metadata(), "group": group, "decision": decision}
        _atomic_write(
            directory / "metadata.json",
            orjson.dumps(metadata, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY),
        )
        if isinstance(artifact, RiskArtifact):
            _atomic_write(directory / "pr_curve.png", pr_curve_png(artifact))
            timeline = risk_timeline_png(artifact)
            if timeline is not None:
                _atomic_write(directory / "holdout_timeline.png", timeline)
            _atomic_write(directory / "importance.csv", _importance_csv(artifact.importance))
        self._append_history(artifact.kind, group, {"version": artifact.version, **decision})
        return StoredArtifact(artifact.kind, group, artifact.version, directory)

    def exists(self, kind: str, group: str, version: str) -> bool:
        """Whether the artifact ``kind/group/version`` is on disk (model and checksum)."""
        directory = self.root / kind / group / version
        return (directory / "model.pkl").is_file() and (directory / "model.sha256").is_file()

    def set_champion(self, kind: str, group: str, version: str) -> None:
        """Make ``version`` the group's champion (promotion, or a roll-back)."""
        if not (self.root / kind / group / version / "model.pkl").is_file():
            raise ArtifactError(f"no artifact {kind}/{group}/{version}")
        _atomic_write(
            self.root / kind / group / "champion.json", orjson.dumps({"version": version})
        )
        self._append_history(kind, group, {"version": version, "status": "champion"})

    def champion_version(self, kind: str, group: str) -> str | None:
        """The group's champion version, if any."""
        return self._pointer(kind, group, "champion.json")

    def set_challenger(self, kind: str, group: str, version: str | None) -> None:
        """Name the challenger scored in shadow (None: there is none any more)."""
        pointer = self.root / kind / group / "challenger.json"
        if version is None:
            pointer.unlink(missing_ok=True)
            return
        if not (self.root / kind / group / version / "model.pkl").is_file():
            raise ArtifactError(f"no artifact {kind}/{group}/{version}")
        _atomic_write(pointer, orjson.dumps({"version": version}))

    def challenger_version(self, kind: str, group: str) -> str | None:
        """The group's challenger in shadow, if any."""
        return self._pointer(kind, group, "challenger.json")

    def record_decision(
        self, kind: str, group: str, version: str, decision: dict[str, Any]
    ) -> None:
        """A later decision about a stored artifact (a challenger's fate after its shadow
        run): its metadata carries it from now on, and the history records it."""
        path = self.root / kind / group / version / "metadata.json"
        metadata = orjson.loads(path.read_bytes())
        metadata["decision"] = decision
        _atomic_write(
            path, orjson.dumps(metadata, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        self._append_history(kind, group, {"version": version, **decision})

    def groups(self) -> list[tuple[str, str]]:
        """Every (kind, group) with a stored artifact."""
        if not self.root.is_dir():
            return []
        return sorted(
            (kind.name, group.name)
            for kind in self.root.iterdir()
            if kind.is_dir()
            for group in kind.iterdir()
            if group.is_dir()
        )

    def save_reference(
        self, kind: str, group: str, version: str, names: list[str], rows: npt.NDArray[np.float64]
    ) -> None:
        """Keep the rows drift is measured against with the model fitted from them."""
        buffer = io.BytesIO()
        np.savez(buffer, names=np.array(names, dtype=str), rows=rows)
        _atomic_write(self.root / kind / group / version / "reference.npz", buffer.getvalue())

    def load_reference(
        self, kind: str, group: str, version: str
    ) -> tuple[list[str], npt.NDArray[np.float64]] | None:
        """The drift reference kept with a model, if any (None also when unreadable)."""
        path = self.root / kind / group / version / "reference.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                return [str(n) for n in data["names"]], np.asarray(data["rows"], np.float64)
        except (OSError, KeyError, ValueError):
            return None

    def _pointer(self, kind: str, group: str, name: str) -> str | None:
        pointer = self.root / kind / group / name
        if not pointer.is_file():
            return None
        version = orjson.loads(pointer.read_bytes()).get("version")
        return str(version) if version else None

    def load(self, kind: str, group: str, version: str) -> Artifact:
        """Read an artifact back, checked.

        Raises:
            ArtifactError: Missing, damaged, fitted by another scikit-learn version, or of a
                class this version does not have (an older sidecar's anomaly model).
        """
        directory = self.root / kind / group / version
        try:
            blob = (directory / "model.pkl").read_bytes()
            digest = (directory / "model.sha256").read_text().strip()
            metadata = orjson.loads((directory / "metadata.json").read_bytes())
        except OSError as exc:
            raise ArtifactError(f"{kind}/{group}/{version}: {exc}") from exc
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ArtifactError(f"{kind}/{group}/{version}: checksum mismatch")
        fitted_with = metadata.get("libraries", {}).get("scikit-learn")
        running = library_versions().get("scikit-learn")
        if fitted_with != running:
            raise ArtifactError(
                f"{kind}/{group}/{version}: fitted with scikit-learn {fitted_with}, "
                f"running {running}"
            )
        try:
            artifact = pickle.loads(blob)  # our own files, checksum verified
        except (ImportError, AttributeError, pickle.UnpicklingError) as exc:
            raise ArtifactError(f"{kind}/{group}/{version}: cannot be read: {exc}") from exc
        if not isinstance(artifact, RiskArtifact) or artifact.kind != kind:
            raise ArtifactError(f"{kind}/{group}/{version}: not a {kind} artifact")
        return artifact

    def champion(self, kind: str, group: str) -> Artifact | None:
        """The group's champion, or None (none yet, or unusable: then it is reported by
        :meth:`load`'s error)."""
        version = self.champion_version(kind, group)
        return None if version is None else self.load(kind, group, version)

    def _append_history(self, kind: str, group: str, entry: dict[str, Any]) -> None:
        path = self.root / kind / group / "history.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as out:
            out.write(orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def _importance_csv(rows: list[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return text.getvalue().encode()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
