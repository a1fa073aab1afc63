"""Consumed records as the detector's stages pass them around."""

from __future__ import annotations

from typing import TypeAlias

from aiokafka import ConsumerRecord

from stream.publisher import Ack
from stream.schemas import Evidence

__all__ = ["Pending", "Record", "evidence_of"]

Record: TypeAlias = ConsumerRecord[bytes, bytes]
"""A record read from an input topic."""

Pending: TypeAlias = list[tuple[Ack, Record | None]]
"""Acks a batch waits for before committing; an alert's carries the record that raised it."""


def evidence_of(record: Record) -> Evidence:
    """Where a consumed record is stored, for the alert it raised."""
    return Evidence(topic=record.topic, partition=record.partition, offset=record.offset)
