"""Short stable ids of plain data: what a snapshot's state was learned under."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

__all__ = ["short_id"]


def short_id(fields: Mapping[str, object]) -> str:
    """Eight hex digits of the SHA-256 of ``fields`` as sorted JSON.

    Examples:
        >>> short_id({"a": 1, "b": [2, 3]}) == short_id({"b": (2, 3), "a": 1})
        True
        >>> len(short_id({}))
        8
    """
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
