"""The fault scenario: seeded, faults spread from their root to its callers, noise apart."""

from __future__ import annotations

import tomllib

from stream.core.problems.topology import topology_from
from stream.dev.fault_sim import MESH, FaultScenario, topology_toml


def test_faults_spread_from_their_root_to_callers_only_later() -> None:
    scenario = FaultScenario(days=6, quiet_days=2, seed=5)
    topology = topology_from(tomllib.loads(topology_toml()))
    assert scenario.faults
    for fault in scenario.faults:
        assert fault.onsets[fault.root] == fault.start_s == min(fault.onsets.values())
        for service, onset in fault.onsets.items():
            if service != fault.root:
                # Every affected service depends on the root (it is reached through callers).
                assert fault.root in topology.reach(service)
                assert onset - fault.start_s >= 60
        assert fault.start_s >= scenario.end_s - 4 * 86_400  # none in the quiet days
    for noise in scenario.noise:
        for fault in scenario.faults:
            if noise.service in fault.onsets:
                assert not fault.start_s - 1800 < noise.start_s < fault.end_s + 1800


def test_the_same_seed_gives_the_same_events_and_faults() -> None:
    a, b = (
        FaultScenario(days=1.2, quiet_days=1, seed=9),
        FaultScenario(days=1.2, quiet_days=1, seed=9),
    )
    assert a.faults == b.faults
    first_a = [e for _, e in zip(range(500), a.events(), strict=False)]
    first_b = [e for _, e in zip(range(500), b.events(), strict=False)]
    assert first_a == first_b
    assert {e["service"] for e in first_a} == set(MESH)
