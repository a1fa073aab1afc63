"""A demo runs alone: no member of its consumer groups but its own detector and sidecar.

A detector left running by an earlier demo (killed before this version's children died with
it) kept reconnecting to 127.0.0.1:9092 and joined every later demo's ``vigil-detector``
group: it took partitions, scored with another run's state and looked for another run's
artifacts. The demo now checks its groups before it starts its children (they must be
empty) and while they run (one member each), and stops with a clear error otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from stream.dev.demo.processes import ChildFailed
from stream.kafka.kafka_options import kafka_options
from stream.kafka.topics import group_members
from stream.settings import Settings

__all__ = ["ForeignMember", "check_groups", "foreign_members"]


class ForeignMember(ChildFailed):
    """A process that is not this demo's is a member of one of its consumer groups."""


def foreign_members(members: Mapping[str, list[str]], own: int) -> dict[str, list[str]]:
    """The groups with more than ``own`` members, and their members.

    Examples:
        >>> foreign_members({"vigil-detector": ["vigil-consumer@127.0.0.1"], "s": []}, own=0)
        {'vigil-detector': ['vigil-consumer@127.0.0.1']}
        >>> foreign_members({"vigil-detector": ["a@h"], "s": ["b@h"]}, own=1)
        {}
    """
    return {group: found for group, found in members.items() if len(found) > own}


async def check_groups(settings: Settings, *, own: int) -> None:
    """Raise :class:`ForeignMember` if the demo's detector or sidecar group has more than
    ``own`` members (0 before the demo starts them, 1 while they run)."""
    groups = [settings.group_id, settings.sidecar_group_id]
    members = await group_members(
        settings.bootstrap_servers,
        groups,
        f"{settings.client_id}-demo",
        kafka_options=kafka_options(settings),
    )
    foreign = foreign_members(members, own)
    if foreign:
        described = "; ".join(f"{g}: {', '.join(m)}" for g, m in sorted(foreign.items()))
        raise ForeignMember(
            f"another process is a member of this demo's consumer groups at "
            f"{settings.bootstrap_servers} ({described}): an earlier demo's detector or "
            "sidecar still running? Stop it, or run the demo on another --port"
        )
