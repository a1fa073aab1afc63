"""BatchHST's snapshot state: its parameters and masses, its trees named when they are shared.

Trees from ``shared_structure`` (the usual case) are not written: they are rebuilt from the
seed on load and checked against the fingerprint the state holds, so a change in river's tree
construction is refused rather than scored against masses counted on other trees. Trees given
to the model (``structure=``) are written whole.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from models.anomaly.trees import TreeStructure, node_count, shared_structure

__all__ = ["HSTFields", "hst_state", "restore_hst"]


class HSTFields(Protocol):
    """What a snapshot holds of a :class:`~models.anomaly.hst_numpy.BatchHST`."""

    n_trees: int
    height: int
    window_size: int
    seed: int
    l_mass: npt.NDArray[np.int64]
    r_mass: npt.NDArray[np.int64]
    counter: int
    first_window: bool
    feature_names: tuple[str, ...] | None
    structure: TreeStructure | None
    _shared: bool  # the trees come from shared_structure


def hst_state(hst: HSTFields) -> dict[str, Any]:
    """What a snapshot holds of ``hst`` (its ``__getstate__``)."""
    structure = hst.structure
    return {
        "n_trees": hst.n_trees,
        "height": hst.height,
        "window_size": hst.window_size,
        "seed": hst.seed,
        "l_mass": hst.l_mass,
        "r_mass": hst.r_mass,
        "counter": hst.counter,
        "first_window": hst.first_window,
        "feature_names": hst.feature_names,
        "shared": hst._shared,
        # A shared structure is rebuilt from the seed on load and checked against this.
        "n_features": None if structure is None else structure.n_features,
        "fingerprint": None if structure is None else structure.fingerprint,
        "structure": structure if not hst._shared else None,
    }


def restore_hst(hst: HSTFields, state: dict[str, Any]) -> None:
    """Set ``hst``'s parameters, masses and trees from :func:`hst_state`'s dict (its derived
    constants are left to the caller).

    Raises:
        ValueError: If the masses have the wrong shape, or the trees rebuilt from the seed
            are not the snapshot's.
    """
    hst.n_trees = int(state["n_trees"])
    hst.height = int(state["height"])
    hst.window_size = int(state["window_size"])
    hst.seed = int(state["seed"])
    shape = (hst.n_trees, node_count(hst.height))
    hst.l_mass = np.array(state["l_mass"], dtype=np.int64, order="C")
    hst.r_mass = np.array(state["r_mass"], dtype=np.int64, order="C")
    if hst.l_mass.shape != shape or hst.r_mass.shape != shape:
        raise ValueError(f"mass arrays must have shape {shape}")
    hst.counter = int(state["counter"])
    hst.first_window = bool(state["first_window"])
    names = state["feature_names"]
    hst.feature_names = None if names is None else tuple(names)
    hst._shared = bool(state["shared"])
    hst.structure = state["structure"]
    if hst._shared and state["n_features"] is not None:
        hst.structure = shared_structure(
            int(state["n_features"]), hst.n_trees, hst.height, hst.seed
        )
        if hst.structure.fingerprint != state["fingerprint"]:
            raise ValueError(
                "the trees rebuilt from the seed differ from the snapshot's "
                "(did river's tree construction change?)"
            )
