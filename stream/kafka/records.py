"""Consumed records as the detector's stages pass them around."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from aiokafka import ConsumerRecord

from stream.codec import DecodeError
from stream.kafka.publisher import Ack
from stream.schemas import Evidence

__all__ = ["DeadLetterer", "Pending", "Record", "evidence_of"]

Record: TypeAlias = ConsumerRecord[bytes, bytes]
"""A record read from an input topic."""

Pending: TypeAlias = list[tuple[Ack, Record | None]]
"""Acks a batch waits for before committing; an alert's carries the record that raised it."""

DeadLetterer: TypeAlias = Callable[[Record, DecodeError], Awaitable[Ack]]
"""The detector's dead-letter path: send a record that failed, with why; the send's ack."""


def evidence_of(record: Record) -> Evidence:
    """Where a consumed record is stored, for the alert it raised."""
    return Evidence(topic=record.topic, partition=record.partition, offset=record.offset)
