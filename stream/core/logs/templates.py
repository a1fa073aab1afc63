"""Log templates per service: Drain3 clustering behind masks, with stable template ids.

A template is a log line with its variable parts replaced: ``"upstream timeout after <DUR>
calling <IP>"``. Variable parts are masked first (UUIDs, IPs, paths, durations, hex ids,
numbers), then Drain3's prefix tree groups the masked lines into clusters and generalises a
cluster's template (a differing token becomes ``<*>``) as new lines join it.

Drain's own cluster ids are per-process counters, and a cluster's template text changes as it
generalises. Features and alerts instead use a **template id** fixed when the cluster is
created: a hash of the service and the cluster's first template. It stays the same when Drain
generalises the cluster, and the same first line gives the same id in every process (replay,
restart). Clusters are capped per service (Drain's LRU ``max_clusters``); evicted clusters
are counted.

drain3 is untyped: this module is its one boundary.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from drain3.drain import Drain, LogClusterCache

__all__ = ["MASKS", "ServiceTemplates", "Template", "mask_message"]

# Order matters: the more specific shapes first, so an IP is not masked as four numbers.
# Every mask but PATH needs a digit, so lines without digits skip them (see mask_message).
_B = r"(?<![A-Za-z0-9])"  # not in the middle of a word
_E = r"(?![A-Za-z0-9])"
MASKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("UUID", re.compile(_B + r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}" + _E)),
    ("IP", re.compile(_B + r"\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?" + _E)),
    ("DUR", re.compile(_B + r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+" + _E)),
    # 0x-prefixed, or 8+ hex digits with at least one digit and one letter (an all-digit
    # string is a number, a word like "deadbeef" may well be a word).
    (
        "HEX",
        re.compile(
            _B + r"(?:0x[0-9a-fA-F]+|"
            r"(?=[a-fA-F]*\d)(?=\d*[a-fA-F])[0-9a-fA-F]{8,})" + _E
        ),
    ),
    ("NUM", re.compile(_B + r"[-+]?\d+(?:\.\d+)*" + _E)),
)
_PATH = ("PATH", re.compile(r"(?<![\w/.:<>-])(?:/[\w.\-@~%+]+)+/?"))
_DIGIT = re.compile(r"\d")


def mask_message(text: str) -> str:
    """``text`` with its variable parts replaced by ``<UUID>``, ``<IP>``, ``<PATH>``, ...

    Examples:
        >>> mask_message("GET /api/v1/users took 35ms from 10.0.0.7:443 id=0x1f trace ab12cd34ef")
        'GET <PATH> took <DUR> from <IP> id=<HEX> trace <HEX>'
        >>> mask_message("retry 3 of 5 for 123e4567-e89b-12d3-a456-426614174000")
        'retry <NUM> of <NUM> for <UUID>'
    """
    text = _PATH[1].sub("<PATH>", text)
    if _DIGIT.search(text) is None:
        return text
    for name, pattern in MASKS:
        text = pattern.sub(f"<{name}>", text)
    return text


@dataclass(slots=True)
class Template:
    """A template of one service: its stable id, first-seen text and Drain cluster."""

    template_id: str
    first_template: str
    cluster: Any  # drain3.drain.LogCluster (untyped)

    @property
    def text(self) -> str:
        """The cluster's current template (more general than the first one, as it learns)."""
        return str(self.cluster.get_template())


class _EvictionCountingCache(LogClusterCache):  # type: ignore[misc]  # untyped base class
    """Drain's LRU cluster cache, remembering which cluster ids it evicts."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.evicted: list[int] = []

    def popitem(self) -> tuple[int, Any]:
        # cachetools calls popitem() to make room for a new cluster: that is an eviction.
        key, value = super().popitem()
        self.evicted.append(key)
        return key, value


class ServiceTemplates:
    """The template miner of one service.

    Args:
        service: The service (part of each template id, so ids never clash across services).
        max_templates: Clusters kept; beyond it the least recently matched one is evicted.
        similarity: Drain's similarity threshold to join an existing cluster.
        depth: Drain's prefix-tree depth.
        max_children: Drain's children per tree node; beyond it new tokens share a wildcard
            node whose clusters are matched one by one (Drain3's default 100 made a service
            with 500 templates 9 times slower: 5,300 against 48,000 lines/s).
        max_chars: Only the first line of a message, cut to this length, is templated
            (multi-line stack traces are told apart by their first line).
        seen_capacity: Template ids remembered as seen (a bound on memory); an id forgotten
            and met again counts as new.

    Examples:
        >>> miner = ServiceTemplates("api")
        >>> a, new_a = miner.add("user 17 logged in from 10.0.0.1")
        >>> b, new_b = miner.add("user alice logged in from 10.0.0.2")  # generalises it
        >>> a is b, new_a, new_b, a.first_template, a.text
        (True, True, False, 'user <NUM> logged in from <IP>', 'user <*> logged in from <IP>')
    """

    def __init__(
        self,
        service: str,
        *,
        max_templates: int = 1000,
        similarity: float = 0.4,
        depth: int = 4,
        max_children: int = 1000,
        max_chars: int = 512,
        seen_capacity: int | None = None,
    ) -> None:
        if max_templates < 1:
            raise ValueError("max_templates must be at least 1")
        self.service = service
        self.max_templates = max_templates
        self.max_chars = max_chars
        self.seen_capacity = seen_capacity if seen_capacity is not None else 10 * max_templates
        self._drain: Any = Drain(
            depth=depth, sim_th=similarity, max_children=max_children, max_clusters=max_templates
        )
        self._cache = _EvictionCountingCache(max_templates)
        self._drain.id_to_cluster = self._cache
        self._by_cluster: dict[int, Template] = {}
        self._ids_in_use: set[str] = set()
        self._seen: dict[str, None] = {}  # insertion-ordered set, oldest first
        self.evictions = 0
        self.lines = 0

    def __len__(self) -> int:
        return len(self._by_cluster)

    def __iter__(self) -> Iterator[Template]:
        return iter(self._by_cluster.values())

    def add(self, message: str) -> tuple[Template, bool]:
        """Template one log line (learning from it).

        Returns:
            The line's template, and whether the service had never seen that template.
        """
        newline = message.find("\n")
        line = message if newline < 0 else message[:newline]
        if len(line) > self.max_chars:
            line = line[: self.max_chars]
        cluster, change = self._drain.add_log_message(mask_message(line))
        self.lines += 1
        if change != "cluster_created":
            return self._by_cluster[cluster.cluster_id], False
        if self._cache.evicted:
            self._forget_evicted()
        template = Template(self._new_id(cluster.get_template()), cluster.get_template(), cluster)
        self._by_cluster[cluster.cluster_id] = template
        self._ids_in_use.add(template.template_id)
        is_new = template.template_id not in self._seen
        if is_new:
            self._seen[template.template_id] = None
            if len(self._seen) > self.seen_capacity:
                del self._seen[next(iter(self._seen))]
        return template, is_new

    def _new_id(self, first_template: str) -> str:
        # The same first template can start a second live cluster (a line too unlike the
        # generalised first one): a counter suffix keeps the ids apart, deterministically.
        n = 0
        while True:
            key = f"{self.service}\x00{first_template}\x00{n}".encode()
            template_id = hashlib.blake2b(key, digest_size=6).hexdigest()
            if template_id not in self._ids_in_use:
                return template_id
            n += 1

    def _forget_evicted(self) -> None:
        for cluster_id in self._cache.evicted:
            template = self._by_cluster.pop(cluster_id, None)
            if template is not None:
                self._ids_in_use.discard(template.template_id)
        self.evictions += len(self._cache.evicted)
        self._cache.evicted.clear()
