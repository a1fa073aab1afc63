"""A metrics partition's state as the snapshot keeper sees it, with incident-risk state per
partition: a snapshot carries exactly its partition's lane, a restore installs it as it is,
and changing ``VIGIL_INCIDENT_STATE`` restarts only the risk family."""

from __future__ import annotations

from models.snapshot import SnapshotMeta, changed_families
from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import build_risk_pipeline
from stream.detector.partition_models import MetricModels
from stream.dev.incident_sim import IncidentSimulator
from stream.dev.simulate import SimulatedEvent
from stream.schemas import Evidence, MetricEvent
from stream.settings import Settings


def _models(settings: Settings) -> MetricModels:
    risk = build_risk_pipeline(settings)
    return MetricModels(MetricPipeline(settings.anomaly_config()), risk)


def test_changing_where_risk_state_lives_restarts_only_the_risk_family() -> None:
    pooled = _models(Settings()).config_ids()
    apart = _models(Settings(incident_state="partition")).config_ids()
    assert pooled["metrics"] == apart["metrics"]
    assert pooled["risk"] != apart["risk"]
    meta = SnapshotMeta.create(topic="m", partition=0, offsets={}, config_ids=pooled, services=[])
    assert changed_families(meta, apart) == ["risk"]


def test_a_partitions_snapshot_carries_its_own_lane_and_installs_it_as_it_is() -> None:
    settings = Settings(incident_state="partition")
    models = _models(settings)
    sim = IncidentSimulator(services=4, interval_s=30.0, seed=2)
    events = [
        MetricEvent.model_validate_json(item.to_bytes())
        for item in sim.stream(3 * 3600)
        if isinstance(item, SimulatedEvent)
    ]
    where = [
        Evidence(topic="m", partition=int(e.service[-1]) % 2, offset=i)
        for i, e in enumerate(events)
    ]
    outcome = models.pipeline.process_batch(events, where.__getitem__)
    assert models.risk is not None
    models.risk.on_metrics(events, outcome, where.__getitem__)
    lanes = models.risk._lanes
    assert lanes is not None
    assert sorted(lanes.lanes) == [0, 1]
    mine = ["svc-00", "svc-02"]
    state = models.export(0, mine)
    assert state["risk"]["groups"]["all"] is lanes.lanes[0].groups["all"]
    assert state["risk"]["latest_event_s"] == lanes.lanes[0].clock_s
    other = _models(settings)
    other.install(0, state, frozenset())
    assert other.risk is not None
    assert other.risk._lanes is not None
    installed = other.risk._lanes.lanes[0]
    assert installed.groups["all"] is state["risk"]["groups"]["all"]  # as it is, no merge
    assert installed.next_expiry_s == lanes.lanes[0].next_expiry_s
    assert {s: other.risk.labeler.lanes[s] for s in mine} == {"svc-00": 0, "svc-02": 0}
    models.forget([0], mine)
    assert sorted(lanes.lanes) == [1]
    assert "svc-00" not in models.risk.labeler.lanes
