"""The models' fast paths give exactly what the numpy calls they replace give (``==``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from models.anomaly.scaling import _PERCENTILES, percentiles
from models.anomaly.seasonal import _sorted_by_key_then_value
from models.refresh import refresh_due, steps_to_refresh

# Few distinct values as well as many: ties are where selection algorithms differ.
_FLOATS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, 1.0, -2.5, 3.0]),
)


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 300)),
        elements=_FLOATS,
    )
)
def test_percentiles_equal_numpy_percentile(rows: np.ndarray) -> None:
    expected = np.percentile(rows, _PERCENTILES, axis=1).T
    assert np.array_equal(np.array(percentiles(rows)), expected)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 400).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, n, elements=_FLOATS),
            hnp.arrays(np.int64, n, elements=st.integers(0, 2_000)),
        )
    )
)
def test_key_then_value_order_equals_lexsort(pair: tuple[np.ndarray, np.ndarray]) -> None:
    values, keys = pair
    order = np.lexsort((values, keys))
    sorted_values, sorted_keys = _sorted_by_key_then_value(values, keys)
    assert np.array_equal(sorted_values, values[order])
    assert np.array_equal(sorted_keys, keys[order])


@settings(max_examples=500, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda every: st.tuples(
            st.just(every), st.integers(0, every), st.integers(0, 20 * every + 50)
        )
    )
)
def test_steps_to_refresh_is_the_first_due_step(case: tuple[int, int, int]) -> None:
    every, since, count = case
    steps = steps_to_refresh(since, count, every)
    assert refresh_due(since + steps, count + steps, every)
    assert not any(refresh_due(since + s, count + s, every) for s in range(1, steps))
