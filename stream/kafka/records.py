"""Consumed records as the detector's stages pass them around."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeAlias

from aiokafka import ConsumerRecord

from stream.codec import DecodeError, dead_letter
from stream.kafka.publisher import Ack
from stream.schemas import DeadLetter, Evidence

__all__ = ["DeadLetterer", "Pending", "Record", "dead_letter_of", "evidence_of"]

Record: TypeAlias = ConsumerRecord[bytes, bytes]
"""A record read from an input topic."""

Pending: TypeAlias = list[tuple[Ack, Record | None]]
"""Acks a batch waits for before committing; an alert's carries the record that raised it."""

DeadLetterer: TypeAlias = Callable[[Record, DecodeError], Awaitable[Ack]]
"""The detector's dead-letter path: send a record that failed, with why; the send's ack."""


def evidence_of(record: Record) -> Evidence:
    """Where a consumed record is stored, for the alert it raised."""
    return Evidence(topic=record.topic, partition=record.partition, offset=record.offset)


def dead_letter_of(record: Record, error: DecodeError, failed_at: datetime) -> DeadLetter:
    """The dead letter of a consumed record that failed for ``error``."""
    return dead_letter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        error=error,
        failed_at=failed_at,
    )
