"""The numpy Half-Space Trees engine against river's ``HalfSpaceTrees``: same trees, same scores."""

from __future__ import annotations

import pickle
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from river import anomaly

from models.anomaly.hst_numpy import BatchHST, TreeStructure, shared_structure

JUST_BELOW_ONE = float(np.nextafter(1.0, 0.0))


def names(d: int) -> list[str]:
    """Feature names whose sorted order is column order (d <= 10)."""
    return [f"f{j}" for j in range(d)]


def as_dicts(X: np.ndarray) -> list[dict[str, float]]:
    cols = names(X.shape[1])
    return [dict(zip(cols, row, strict=True)) for row in X.tolist()]


def river_scores(
    X: np.ndarray, n_trees: int, height: int, window_size: int, seed: int
) -> tuple[np.ndarray, Any]:
    """river's score_one then learn_one for each row in order; also returns the model."""
    model: Any = anomaly.HalfSpaceTrees(
        n_trees=n_trees, height=height, window_size=window_size, seed=seed
    )
    scores = []
    for x in as_dicts(X):
        scores.append(model.score_one(x))
        model.learn_one(x)
    return np.array(scores, dtype=np.float64), model


def stream(
    rng: np.random.Generator, n: int, d: int, structure: TreeStructure | None, edgy: float
) -> np.ndarray:
    """Uniform values mixed with duplicates, 0.0, just-below-1.0 and exact split thresholds."""
    X = rng.random((n, d))
    pool = rng.random(3)
    specials = [0.0, JUST_BELOW_ONE, *pool.tolist()]
    if structure is not None:  # ties with a split point must go right, as in river
        thresholds = structure.threshold[np.isfinite(structure.threshold)]
        specials.extend(rng.choice(thresholds, size=min(8, thresholds.size)).tolist())
    mask = rng.random((n, d)) < edgy
    X[mask] = rng.choice(np.array(specials), size=int(mask.sum()))
    return X


# -------------------------------------------------------------------- exactness vs river


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    n=st.integers(1, 1500),
    d=st.integers(1, 6),
    n_trees=st.integers(1, 8),
    height=st.integers(1, 9),
    window_size=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    data_seed=st.integers(0, 2**32 - 1),
    edgy=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=8),
)
# The largest stream and trees, several swaps inside one batch, and a window of one event.
@example(1500, 6, 8, 9, 300, 1, 2, 0.5, [0.1, 0.1, 0.9])
@example(1500, 3, 3, 4, 1, 5, 6, 0.1, [0.5])
@example(1500, 2, 8, 9, 97, 7, 8, 1.0, [])
def test_scores_equal_river_exactly(
    n: int,
    d: int,
    n_trees: int,
    height: int,
    window_size: int,
    seed: int,
    data_seed: int,
    edgy: float,
    cuts: list[float],
) -> None:
    rng = np.random.default_rng(data_seed)
    X = stream(rng, n, d, shared_structure(d, n_trees, height, seed), edgy)
    expected, reference = river_scores(X, n_trees, height, window_size, seed)

    model = BatchHST(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    bounds = [0, *sorted(int(c * n) for c in cuts), n]  # may include empty batches
    got = np.concatenate([model.score_learn_batch(X[a:b]) for a, b in pairwise(bounds)])
    assert got.shape == expected.shape
    # Bitwise equality, not approximate: see the module docstring for why it holds.
    np.testing.assert_array_equal(got, expected)
    assert model.counter == reference.counter
    assert model.first_window == reference._first_window
    assert_masses_equal(model, reference)


def assert_masses_equal(model: BatchHST, reference: Any) -> None:
    for t, root in enumerate(reference.trees):
        stack = [(root, 0)]
        while stack:
            node, k = stack.pop()
            assert model.l_mass[t, k] == node.l_mass
            assert model.r_mass[t, k] == node.r_mass
            if k < (1 << model.height) - 1:
                stack.extend([(node.children[0], 2 * k + 1), (node.children[1], 2 * k + 2)])


def test_bigger_trees_match_river_across_many_swaps() -> None:
    rng = np.random.default_rng(7)
    X = stream(rng, 1200, 5, None, 0.1)
    expected, _ = river_scores(X, n_trees=12, height=11, window_size=97, seed=3)
    model = BatchHST(n_trees=12, height=11, window_size=97, seed=3)
    got = np.concatenate([model.score_learn_batch(b) for b in np.array_split(X, 7)])
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(got) == 1200 - 97


def test_score_batch_equals_river_score_one_without_learning() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((700, 4))
    _, reference = river_scores(X, n_trees=6, height=7, window_size=100, seed=5)
    model = BatchHST(n_trees=6, height=7, window_size=100, seed=5)
    model.learn_batch(X)
    probe = stream(rng, 300, 4, model.structure, 0.3)
    expected = [reference.score_one(x) for x in as_dicts(probe)]
    np.testing.assert_array_equal(model.score_batch(probe), expected)


# --------------------------------------------------------------------------- structure


def test_structure_is_rivers_trees() -> None:
    d, n_trees, height, seed = 4, 5, 6, 11
    reference: Any = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, seed=seed)
    reference.learn_one(dict.fromkeys(names(d), 0.5))
    structure = TreeStructure.from_river(d, n_trees, height, seed)
    assert structure.feature.shape == structure.threshold.shape == (n_trees, 2 ** (height + 1) - 1)
    assert structure.feature.dtype == np.int32
    assert structure.threshold.dtype == np.float64
    n_internal = 2**height - 1
    for t, root in enumerate(reference.trees):
        stack = [(root, 0)]
        while stack:
            node, k = stack.pop()
            if k < n_internal:
                assert names(d)[structure.feature[t, k]] == node.feature
                assert structure.threshold[t, k] == node.threshold
                stack.extend([(node.children[0], 2 * k + 1), (node.children[1], 2 * k + 2)])
            else:
                assert structure.feature[t, k] == -1
                assert np.isnan(structure.threshold[t, k])
    assert not structure.feature.flags.writeable
    assert not structure.threshold.flags.writeable


def test_shared_structure_is_one_object_per_key() -> None:
    a = shared_structure(3, 4, 5, 9)
    assert shared_structure(3, 4, 5, 9) is a
    assert shared_structure(3, 4, 5, 10) is not a
    m1, m2 = BatchHST(4, 5, 50, seed=9), BatchHST(4, 5, 50, seed=9)
    m1.learn_batch(np.full((1, 3), 0.5))
    m2.learn_batch(np.full((1, 3), 0.25))
    assert m1.structure is m2.structure is a
    assert m1.nbytes == 2 * 4 * (2**6 - 1) * 8


def test_structure_pickles_read_only() -> None:
    structure = shared_structure(2, 3, 4, 0)
    copy = pickle.loads(pickle.dumps(structure))
    np.testing.assert_array_equal(copy.feature, structure.feature)
    np.testing.assert_array_equal(copy.threshold, structure.threshold)
    assert copy.fingerprint == structure.fingerprint
    assert not copy.threshold.flags.writeable


# ------------------------------------------------------------------------- model contract


@pytest.mark.parametrize("injected", [False, True])
@pytest.mark.parametrize("split_at", [0, 130, 250, 399])
def test_pickle_round_trip_gives_identical_scores(injected: bool, split_at: int) -> None:
    rng = np.random.default_rng(2)
    X = rng.random((900, 3))
    structure = TreeStructure.from_river(3, 5, 6, 4) if injected else None
    model = BatchHST(n_trees=5, height=6, window_size=100, seed=4, structure=structure)
    model.score_learn_batch(X[:split_at])
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        restored.score_learn_batch(X[split_at:]), model.score_learn_batch(X[split_at:])
    )
    np.testing.assert_array_equal(restored.l_mass, model.l_mass)
    np.testing.assert_array_equal(restored.r_mass, model.r_mass)
    if not injected and split_at:
        assert restored.structure is model.structure  # shared, not copied


def test_snapshot_with_other_trees_is_refused() -> None:
    model = BatchHST(n_trees=2, height=3, window_size=10, seed=0)
    model.learn_batch(np.full((5, 2), 0.5))
    state = model.__getstate__()
    state["fingerprint"] ^= 1
    with pytest.raises(ValueError, match="differ"):
        BatchHST.__new__(BatchHST).__setstate__(state)


def test_score_batch_does_not_change_state() -> None:
    rng = np.random.default_rng(3)
    model = BatchHST(n_trees=4, height=5, window_size=50, seed=1)
    model.learn_batch(rng.random((130, 2)))
    before = pickle.dumps(model)
    model.score_batch(rng.random((500, 2)))
    model.score_one({"a": 0.1, "b": 0.9})
    assert pickle.dumps(model) == before


def test_dict_api_equals_array_api() -> None:
    rng = np.random.default_rng(4)
    X = rng.random((400, 3))
    by_array = BatchHST(n_trees=5, height=6, window_size=60, seed=8)
    by_dict = BatchHST(n_trees=5, height=6, window_size=60, seed=8)
    expected = by_array.score_learn_batch(X)
    got = []
    for row in X.tolist():
        x = {"zeta": row[2], "alpha": row[0], "mid": row[1]}  # sorted: alpha, mid, zeta
        got.append(by_dict.score_one(x))
        by_dict.learn_one(x)
    assert got == expected.tolist()
    assert by_dict.feature_names == ("alpha", "mid", "zeta")


def test_scores_zero_before_learning_and_in_first_window() -> None:
    model = BatchHST(window_size=10)
    assert model.score_one({"a": 0.3}) == 0.0
    assert model.score_batch(np.full((3, 2), 0.5)).tolist() == [0.0] * 3
    assert model.score_learn_batch(np.full((10, 2), 0.5)).tolist() == [0.0] * 10
    assert not model.first_window
    assert model.score_batch(np.full((1, 2), 0.5))[0] > -1.0


def test_clone_is_fresh_and_independent() -> None:
    model = BatchHST(n_trees=3, height=4, window_size=20, seed=2)
    model.learn_batch(np.random.default_rng(5).random((50, 2)))
    clone = model.clone()
    assert (clone.n_trees, clone.height, clone.window_size, clone.seed) == (3, 4, 20, 2)
    assert clone.first_window
    assert clone.counter == 0
    assert not clone.l_mass.any()
    clone.learn_batch(np.full((5, 2), 0.5))
    assert model.counter == 10


def test_same_seed_same_scores() -> None:
    X = np.random.default_rng(6).random((300, 3))
    a, b = BatchHST(4, 5, 50, seed=3), BatchHST(4, 5, 50, seed=3)
    np.testing.assert_array_equal(a.score_learn_batch(X), b.score_learn_batch(X))


# ------------------------------------------------------------------------------ errors


def test_invalid_input_is_refused() -> None:
    model = BatchHST(n_trees=2, height=3, window_size=10)
    with pytest.raises(ValueError, match="NaN"):
        model.learn_batch(np.array([[0.5, np.nan]]))
    model.learn_batch(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="feature columns"):
        model.learn_batch(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="2-D"):
        model.score_batch(np.full(2, 0.5))
    by_dict = BatchHST(n_trees=2, height=3, window_size=10)
    by_dict.learn_one({"a": 0.1, "b": 0.2})
    with pytest.raises(ValueError, match="missing feature 'b'"):
        by_dict.learn_one({"a": 0.1})
    with pytest.raises(ValueError, match="NaN"):
        by_dict.learn_one({"a": 0.1, "b": float("nan")})
    assert by_dict.counter == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_trees": 0}, "n_trees"),
        ({"window_size": 0}, "window_size"),
        ({"height": 40, "window_size": 10**6}, "2\\*\\*53"),
        ({"structure": TreeStructure.from_river(2, 3, 4, 0)}, "expected 10 of height 8"),
    ],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BatchHST(**kwargs)
