"""Walking rows through shared trees: one walk for many models gives each model's own paths."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.anomaly import AnomalyConfig, ServiceAnomalyModel, observe_together, trees
from models.anomaly.trees import PathRequest, Steps, run_steps, run_together, shared_structure, walk


def reference_path(structure: trees.TreeStructure, row: list[float], tree: int) -> list[int]:
    """One tree's path for one row, node by node in Python (heap layout)."""
    node, path = 0, [tree * structure.n_nodes]
    for _ in range(structure.height):
        feature = int(structure.feature[tree, node])
        right = row[feature] >= structure.threshold[tree, node]
        node = 2 * node + 1 + int(right)
        path.append(tree * structure.n_nodes + node)
    return path


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 5),
    n_trees=st.integers(1, 4),
    height=st.integers(0, 6),
    seed=st.integers(0, 1000),
)
def test_walk_follows_each_row_down_each_tree(
    n: int, d: int, n_trees: int, height: int, seed: int
) -> None:
    structure = shared_structure(d, n_trees, height, seed)
    rows = np.random.default_rng(seed).random((n, d))
    paths = walk(structure, rows)
    for i, row in enumerate(rows.tolist()):
        for t in range(n_trees):
            assert paths[:, t, i].tolist() == reference_path(structure, row, t)


def leaves(structure: trees.TreeStructure, rows: np.ndarray, asks: int) -> Steps[list[int]]:
    """Asks for the paths of ``rows`` ``asks`` times; the leaves it was sent."""
    got: list[int] = []
    for _ in range(asks):
        paths = yield PathRequest(structure, rows)
        got += paths[-1].reshape(-1).tolist()
    return got


@pytest.mark.parametrize("max_elements", [trees.MAX_PATH_ELEMENTS, 50])
def test_run_together_sends_each_computation_its_own_paths(
    monkeypatch: pytest.MonkeyPatch, max_elements: int
) -> None:
    monkeypatch.setattr(trees, "MAX_PATH_ELEMENTS", max_elements)  # 50: walks split in parts
    rng = np.random.default_rng(3)
    cases = [
        (shared_structure(d, 3, 4, seed=1), rng.random((n, d)), asks)
        for d, n, asks in [(2, 1, 1), (3, 4, 2), (2, 5, 3), (3, 1, 0), (1, 2, 1)]
    ]
    together = run_together([leaves(*case) for case in cases])
    assert together == [run_steps(leaves(*case)) for case in cases]


def test_services_together_get_the_verdicts_they_get_apart() -> None:
    """Growing feature sets (candidates), missing values and scoring without learning."""
    config = AnomalyConfig(warmup_events=60, window_size=40, scaler_window=32, season_buckets=12)
    names = ["a", "b", "c"]
    apart = {s: ServiceAnomalyModel(s, config) for s in "wxyz"}
    together = {s: ServiceAnomalyModel(s, config) for s in "wxyz"}
    rng = random.Random(5)
    t = 0.0
    for step in range(150):
        batches = []
        for service in rng.sample(sorted(apart), rng.randint(1, 4)):
            width = 1 + (service > "x") + (step > 70)
            rows = []
            for _ in range(rng.randint(1, 6)):
                t += 60.0
                row = {n: rng.gauss(10.0, 2.0) for n in names[:width]}
                if rng.random() < 0.1:
                    row.pop(names[0])
                rows.append(row or {"a": 1.0})
            batches.append((service, rows, [t - 60.0 * i for i in range(len(rows))][::-1]))
        learn = step % 10 != 9
        expected = [apart[s].observe_batch(r, ts, learn=learn) for s, r, ts in batches]
        got = observe_together([(together[s], r, ts) for s, r, ts in batches], learn=learn)
        for want, have in zip(expected, got, strict=True):
            assert have.scores.tolist() == want.scores.tolist()
            assert have.thresholds.tolist() == want.thresholds.tolist()
            assert have.alerts.tolist() == want.alerts.tolist()
            assert have.generation.tolist() == want.generation.tolist()
            assert have.missing == want.missing
