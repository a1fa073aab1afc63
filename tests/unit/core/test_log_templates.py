"""stream.core.logs.templates: masking, stable template ids, the per-service cap."""

from __future__ import annotations

import pytest

from stream.core.logs.templates import ServiceTemplates, mask_message


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("retry 3 of 5", "retry <NUM> of <NUM>"),
        ("balance -12.50 now", "balance <NUM> now"),
        ("block blk_-6952295868487656571 done", "block blk_<NUM> done"),
        ("at Ledger.java:88)", "at Ledger.java:<NUM>)"),
        ("addr 0x7ffd1234 freed", "addr <HEX> freed"),
        ("trace 4bf92f3577b34da6 sampled", "trace <HEX> sampled"),
        ("from 10.0.12.7 to 192.168.1.1:8080", "from <IP> to <IP>"),
        ("req 123e4567-e89b-12d3-a456-426614174000 ok", "req <UUID> ok"),
        ("open /var/log/app-1.log failed", "open <PATH> failed"),
        ("GET /api/v1/users/42 HTTP/1.1", "GET <PATH> HTTP/<NUM>"),
        ("took 35ms then 1.5s then 2m30s", "took <DUR> then <DUR> then <DUR>"),
        ("deadline 30 s", "deadline <NUM> s"),
        ("no variable parts here", "no variable parts here"),
        ("R02-M1-N0 node v2 in a3b", "R02-M1-N0 node v2 in a3b"),  # names with digits stay
    ],
)
def test_masks_variable_parts(line: str, masked: str) -> None:
    assert mask_message(line) == masked


def test_id_stays_when_drain_generalises_the_template() -> None:
    miner = ServiceTemplates("api")
    first, new_first = miner.add("user alice logged in")
    second, new_second = miner.add("user bob logged in")
    assert first.text == "user <*> logged in"
    assert first.first_template == "user alice logged in"
    assert second is first
    assert second.template_id == first.template_id
    assert (new_first, new_second) == (True, False)
    assert len(miner) == 1


def test_ids_are_the_same_in_another_process_and_differ_across_services() -> None:
    lines = ["disk /dev/sda1 at 91% full", "cache miss for key k1", "disk /dev/sdb2 at 95% full"]
    a, b, other = ServiceTemplates("api"), ServiceTemplates("api"), ServiceTemplates("db")
    ids_a = [a.add(line)[0].template_id for line in lines]
    ids_b = [b.add(line)[0].template_id for line in lines]
    ids_other = [other.add(line)[0].template_id for line in lines]
    assert ids_a == ids_b
    assert ids_a[0] == ids_a[2] != ids_a[1]
    assert not set(ids_a) & set(ids_other)


def test_only_first_line_of_a_stack_trace_is_templated() -> None:
    miner = ServiceTemplates("api")
    t1, _ = miner.add("java.lang.IllegalStateException: closed\n\tat a.B.c(B.java:1)")
    t2, new = miner.add("java.lang.IllegalStateException: closed\n\tat x.Y.z(Y.java:2)\n\tat q")
    assert t1 is t2
    assert not new


def test_evictions_are_counted_at_the_cap() -> None:
    miner = ServiceTemplates("api", max_templates=3)
    words = ["alpha", "bravo", "charlie", "delta", "echo"]
    ids = [miner.add(f"{w} started worker")[0].template_id for w in words]
    assert len(set(ids)) == 5
    assert len(miner) == 3
    assert miner.evictions == 2
    # The oldest (alpha) was evicted: seeing it again re-creates the same id, not new.
    again, new = miner.add("alpha started worker")
    assert again.template_id == ids[0]
    assert not new
    assert miner.evictions == 3


def test_forgotten_ids_count_as_new_again() -> None:
    miner = ServiceTemplates("api", max_templates=1, seen_capacity=1)
    miner.add("alpha started worker")
    miner.add("bravo stopped now")  # evicts alpha, and forgets it was seen
    _, new = miner.add("alpha started worker")
    assert new
