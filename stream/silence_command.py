"""``vigil silence add|list|remove``: silences on the silences topic (docs/silences.md).

``add`` publishes a new Silence and prints its id; ``list`` reads the topic whole and prints
the silences in force (``--all``: expired and future ones too) and the maintenance windows in
force; ``remove ID`` publishes a tombstone. Exit status: 0 done, 1 an unknown id or Kafka
unreachable, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from stream.core.problems.silences import SilenceBook
from stream.kafka.kafka_options import kafka_options
from stream.kafka.silences import SilenceFollower, publish_silence, publish_tombstone
from stream.kafka.topic_specs import topic_spec
from stream.kafka.topics import ensure_topics
from stream.schemas import Silence
from stream.settings import Settings

__all__ = ["new_silence", "run_silence", "silence_rows", "state_of"]


def run_silence(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``vigil silence <args.action>``; the exit status."""
    now = datetime.now(UTC)
    try:
        if args.action == "add":
            return _add(args, settings, now)
        if args.action == "list":
            return _list(args, settings, now)
        return _remove(args.silence_id, settings)
    except (KafkaError, OSError, RuntimeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"vigil silence: Kafka at {settings.bootstrap_servers}: {why}", file=sys.stderr)
        return 1


def new_silence(args: argparse.Namespace, now: datetime) -> Silence:
    """The Silence ``vigil silence add`` publishes, from its flags, at ``now``.

    Raises:
        ValueError: It would be over already, or a pattern is empty.
    """
    starts = args.starts_at or now
    ends = starts + timedelta(seconds=args.for_s)
    if ends <= now:
        raise ValueError(f"it would be over already (it ends {ends:%Y-%m-%dT%H:%M:%SZ})")
    if not args.service.strip():
        raise ValueError("--service is empty (use '*' for every service)")
    if args.metric is not None and not args.metric.strip():
        raise ValueError("--metric is empty (leave it out for any metric)")
    return Silence(
        silence_id=f"s-{uuid.uuid4().hex[:12]}",
        service=args.service.strip(),
        metric=args.metric.strip() if args.metric else None,
        starts_at=starts,
        ends_at=ends,
        reason=args.reason,
        created_by=args.by or _user(),
        created_at=now,
    )


def state_of(silence: Silence, now: datetime) -> str:
    """``active``, ``future`` or ``expired`` at ``now``."""
    if now < silence.starts_at:
        return "future"
    return "active" if now < silence.ends_at else "expired"


def silence_rows(book: SilenceBook, now: datetime, *, everything: bool) -> list[dict[str, Any]]:
    """What ``vigil silence list`` shows: the silences in force at ``now`` and the windows
    in force (``everything``: every silence held, then the windows in force), as JSON
    objects with their ``state``."""
    shown = book.silences() if everything else book.active(now)
    if everything:
        shown += [s for s in book.active(now) if s.silence_id.startswith("window:")]
    return [s.model_dump(mode="json") | {"state": state_of(s, now)} for s in shown]


def _add(args: argparse.Namespace, settings: Settings, now: datetime) -> int:
    try:
        silence = new_silence(args, now)
    except ValueError as exc:
        print(f"vigil silence add: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_publish(settings, silence))
    print(silence.silence_id, flush=True)
    return 0


async def _publish(settings: Settings, silence: Silence) -> None:
    if settings.create_topics:
        await ensure_topics(
            settings.bootstrap_servers,
            [topic_spec(settings, "topic_silences")],
            client_id=f"{settings.client_id}-admin",
            kafka_options=kafka_options(settings),
        )
    await publish_silence(settings, silence)


def _list(args: argparse.Namespace, settings: Settings, now: datetime) -> int:
    book = asyncio.run(_read(settings))
    rows = silence_rows(book, now, everything=args.all)
    if args.json:
        print(orjson.dumps(rows).decode(), flush=True)
        return 0
    print(_table(rows), flush=True)
    return 0


def _remove(silence_id: str, settings: Settings) -> int:
    if silence_id.startswith("window:"):
        print(
            f"vigil silence remove: {silence_id} is a maintenance window: change the "
            "maintenance_windows setting instead",
            file=sys.stderr,
        )
        return 1
    book = asyncio.run(_read(settings))
    if silence_id not in book:
        print(f"vigil silence remove: no silence {silence_id!r}", file=sys.stderr)
        return 1
    asyncio.run(publish_tombstone(settings, silence_id))
    print(f"removed {silence_id}", flush=True)
    return 0


async def _read(settings: Settings) -> SilenceBook:
    follower = SilenceFollower(settings, poll_s=0.2)
    try:
        await follower.start(follow=False)
    finally:
        await follower.stop()
    return follower.book


_COLUMNS = ("silence_id", "state", "service", "metric", "starts_at", "ends_at", "by", "reason")


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no silences"
    cells = [
        [
            str(row["silence_id"]),
            str(row["state"]),
            str(row["service"]),
            str(row["metric"] or "*"),
            _short(row["starts_at"]),
            _short(row["ends_at"]),
            str(row["created_by"] or ""),
            str(row["reason"]),
        ]
        for row in rows
    ]
    head = [c.replace("silence_id", "id") for c in _COLUMNS]
    widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *cells]]
    return "\n".join(line.rstrip() for line in lines)


def _short(text: str) -> str:
    """``2026-12-07T02:00:00Z`` from the JSON timestamp."""
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None
