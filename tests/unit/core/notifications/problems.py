"""Problems for the notification tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stream.schemas import Problem, Suspect

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def problem(revision: int = 1, status: str = "opened", **fields: Any) -> Problem:
    """Problem ``p-1`` at ``revision``: db (rank 1) and api (rank 2) suspected."""
    suspects = [
        Suspect(
            service="db",
            rank=1,
            reasons=["2 services depend on it", "deployed 3 min before"],
            first_seen=T0,
            depends_on_it=2,
            deploy_recent=True,
        ),
        Suspect(
            service="api",
            rank=2,
            reasons=["alerted 1 min later"],
            first_seen=T0 + timedelta(minutes=1),
            depends_on_it=0,
            deploy_recent=False,
        ),
    ]
    values: dict[str, Any] = {
        "problem_id": "p-1",
        "status": status,
        "scope": "blr",
        "summary": "[warning] db, api: latency up; db suspected",
        "severity": "warning",
        "opened_at": T0,
        "updated_at": T0 + timedelta(minutes=2),
        "resolved_at": T0 + timedelta(minutes=30) if status == "resolved" else None,
        "services": ["api", "db"],
        "members": [],
        "suspects": suspects,
        "labels": {"region": "blr", "host": "h-1"},
        "revision": revision,
    }
    values.update(fields)
    return Problem.model_validate(values)
