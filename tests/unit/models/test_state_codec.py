"""The state codec (JSON + npz, no pickle): exact round trips, shared objects kept shared,
unknown classes refused both ways, damaged payloads refused as ``corrupt``."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import io
import json
import math
import random
import struct
import zipfile
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.state_codec import (
    ClassRegistry,
    DecodeError,
    EncodeError,
    by_fields,
    decode_state,
    encode_state,
    serialize_state,
)


class _Plain:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.items: list[Any] = []


class _Slotted:
    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = 1.5


@dataclasses.dataclass(frozen=True, slots=True)
class _Frozen:
    name: str
    weight: float


REGISTRY = ClassRegistry(
    [
        by_fields(_Plain, "test.Plain"),
        by_fields(_Slotted, "test.Slotted"),
        by_fields(_Frozen, "test.Frozen"),
    ]
)


def _round_trip(state: Any, registry: ClassRegistry = REGISTRY) -> Any:
    return decode_state(serialize_state(encode_state(state, registry)), registry)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def test_builtins_and_collections_come_back_equal_and_typed() -> None:
    state = {
        "list": [1, "two", None, True],
        "tuple": (1, (2, 3)),
        "int_keys": {1: "a", (2, 3): "b", "@at": "c"},
        "set": {1, 2, 3},
        "frozen": frozenset({"x"}),
        "deque": collections.deque([1.0, 2.0], maxlen=5),
        "counter": collections.Counter({"a": 3}),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "default": collections.defaultdict(float, {"a": 1.0}),
        "partial": collections.defaultdict(functools.partial(tuple, (0.0, 1.0)), {"k": (1, 2)}),
        "when": dt.datetime(2026, 12, 6, 19, 0, tzinfo=dt.UTC),
        "offset": dt.datetime(
            2026, 12, 6, 19, 0, 0, 123, tzinfo=dt.timezone(dt.timedelta(hours=2))
        ),
        "delta": dt.timedelta(days=1, seconds=2, microseconds=3),
        "bytes": b"\x00\xff",
        "big": 2**80,
    }
    back = _round_trip(state)
    assert back == state
    for key, value in state.items():
        assert type(back[key]) is type(value), key
    assert back["deque"].maxlen == 5
    assert back["when"].tzinfo is dt.UTC
    assert back["partial"]["new"] == (0.0, 1.0)
    assert list(back["ordered"]) == ["b", "a"]


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=30))
def test_floats_come_back_bit_for_bit(values: list[float]) -> None:
    back = _round_trip({"values": values, "array": np.array(values, dtype=np.float64)})
    assert [_bits(v) for v in back["values"]] == [
        _bits(v) if not math.isnan(v) else _bits(math.nan) for v in values
    ]
    assert back["array"].tobytes() == np.array(values, dtype=np.float64).tobytes()


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=4), inner, max_size=4)
            | st.tuples(inner, inner)
        ),
        max_leaves=20,
    )
)
def test_nested_plain_data_round_trips(state: Any) -> None:
    assert _round_trip(state) == state


@pytest.mark.parametrize(
    "dtype", [np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_, np.complex128]
)
def test_arrays_keep_dtype_shape_and_flags(dtype: Any) -> None:
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    frozen = np.arange(3.0)
    frozen.setflags(write=False)
    scalar = np.array(2.5)
    back = _round_trip({"a": array, "t": array.T, "frozen": frozen, "s": scalar, "e": np.empty(0)})
    assert back["a"].dtype == array.dtype
    assert back["a"].shape == (2, 3, 4)
    np.testing.assert_array_equal(back["a"], array)
    np.testing.assert_array_equal(back["t"], array.T)
    assert not back["frozen"].flags.writeable
    assert back["a"].flags.writeable
    assert back["s"].shape == ()
    assert back["e"].shape == (0,)
    assert back["a"].base is None or back["a"].flags.owndata  # not a view into the archive


def test_numpy_scalars_keep_their_type() -> None:
    back = _round_trip([np.float64(0.1), np.int64(-3), np.float32(np.inf), np.bool_(True)])
    assert [type(v) for v in back] == [np.float64, np.int64, np.float32, np.bool_]
    assert back[0] == np.float64(0.1)
    assert back[2] == np.inf


def test_registered_objects_are_rebuilt_field_by_field() -> None:
    plain = _Plain({"x": [1.0]})
    plain.items.append(_Frozen("w", 0.5))
    slotted = _Slotted()  # b left unset: stays unset
    back = _round_trip([plain, slotted])
    assert type(back[0]) is _Plain
    assert back[0].value == {"x": [1.0]}
    assert back[0].items == [_Frozen("w", 0.5)]
    assert back[1].a == 1.5
    assert not hasattr(back[1], "b")


def test_shared_objects_and_cycles_stay_shared() -> None:
    config = _Frozen("cfg", 1.0)
    array = np.zeros(3)
    one, two = _Plain(config), _Plain(config)
    one.items = [two, array]
    two.items = [one, array]  # a cycle
    back = _round_trip({"one": one, "two": two})
    assert back["one"].value is back["two"].value
    assert back["one"].items[0] is back["two"]
    assert back["two"].items[0] is back["one"]
    assert back["one"].items[1] is back["two"].items[1]
    data = encode_state({"one": one, "two": two}, REGISTRY)
    assert len(data.arrays) == 1  # written once


def test_unknown_classes_are_refused_with_where_they_are() -> None:
    class Stranger:
        pass

    plain = _Plain(1)
    plain.items.append(Stranger())
    with pytest.raises(EncodeError, match=r"\['a'\]\.items\[0\]: .*Stranger is not in"):
        encode_state({"a": plain}, REGISTRY)
    for refused in (print, random.Random(1), np.array([object()]), collections.deque):
        with pytest.raises(EncodeError):
            encode_state([refused], REGISTRY)
    with pytest.raises(EncodeError, match="defaultdict of"):
        encode_state(collections.defaultdict(lambda: 0), REGISTRY)
    with pytest.raises(EncodeError, match="time zone"):
        encode_state(dt.datetime.now(dt.UTC).astimezone(_zone()), REGISTRY)


def _zone() -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")


def test_classes_the_reader_does_not_know_or_cannot_rebuild_are_unreadable() -> None:
    payload = serialize_state(encode_state([_Plain(1), _Slotted()], REGISTRY))
    with pytest.raises(DecodeError) as caught:
        decode_state(payload, ClassRegistry([by_fields(_Slotted, "test.Slotted")]))
    assert caught.value.reason == "unreadable"
    assert "test.Plain is not in the snapshot class registry" in caught.value.detail

    class _Grown:  # the same name, a slot more than the writer had
        __slots__ = ("a", "b", "c")

    grown = ClassRegistry([by_fields(_Plain, "test.Plain"), by_fields(_Grown, "test.Slotted")])
    with pytest.raises(DecodeError) as caught:
        decode_state(payload, grown)
    assert caught.value.reason == "unreadable"
    assert "class test.Slotted lacks c" in caught.value.detail  # b was written, unset

    class _Renamed:  # a __dict__ class whose new field a snapshot must hold
        pass

    needs = ClassRegistry(
        [
            by_fields(_Renamed, "test.Plain", required=["weight"]),
            by_fields(_Slotted, "test.Slotted"),
        ]
    )
    with pytest.raises(DecodeError, match=r"class test\.Plain lacks weight"):
        decode_state(payload, needs)


def _document(payload: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from(">I", payload)
    return json.loads(payload[4 : 4 + length]), payload[4 + length :]


def _payload(document: dict[str, Any], npz: bytes) -> bytes:
    text = json.dumps(document).encode()
    return struct.pack(">I", len(text)) + text + npz


def test_damaged_json_or_npz_is_corrupt() -> None:
    payload = serialize_state(encode_state({"v": np.arange(4.0), "x": [1]}, REGISTRY))
    document, npz = _document(payload)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("g0.npy", b"not an array")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with_objects = io.BytesIO()
    with zipfile.ZipFile(with_objects, "w") as out:
        out.writestr("g0.npy", pickled.getvalue())
    damaged = [
        b"",
        payload[:3],
        struct.pack(">I", 10**6) + payload[4:],
        payload[:4] + b"[" + payload[5:],  # not JSON
        _payload({**document, "format": 99}, npz),
        _payload({**document, "root": {"@nope": 1}}, npz),
        _payload({**document, "root": {"@r": 99}}, npz),
        _payload({**document, "root": {"@f": "1e308"}}, npz),
        _payload({**document, "arrays": [[0, 2, [4], False]]}, npz),  # past its group
        _payload(document, npz[: len(npz) // 2]),
        _payload(document, archive.getvalue()),
        _payload(document, with_objects.getvalue()),  # refused: allow_pickle=False
        _payload(document, b"") + b"NaN",
    ]
    for number, bad in enumerate(damaged):
        with pytest.raises(DecodeError) as caught:
            decode_state(bad, REGISTRY)
        assert caught.value.reason == "corrupt", (number, caught.value)
    nan_json = payload.replace(b'"x":[1]', b'"x":[NaN]')
    with pytest.raises(DecodeError, match="corrupt"):
        decode_state(struct.pack(">I", len(nan_json) - 4 - len(npz)) + nan_json[4:], REGISTRY)


def test_registries_refuse_a_name_or_class_twice() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        ClassRegistry([by_fields(_Plain, "a"), by_fields(_Slotted, "a")])
    with pytest.raises(ValueError, match="registered twice"):
        ClassRegistry([by_fields(_Plain, "a"), by_fields(_Plain, "b")])


class _Before:
    def __init__(self) -> None:
        self.kept = 1


class _After:  # the same class a version later: __init__ sets one more attribute
    def __init__(self) -> None:
        self.kept = 1
        self.added: list[int] = []


def test_a_snapshot_from_before_an_attribute_was_added_is_unreadable() -> None:
    payload = serialize_state(encode_state(_Before(), ClassRegistry([by_fields(_Before, "t.C")])))
    now = ClassRegistry([by_fields(_After, "t.C", from_init=True)])
    with pytest.raises(DecodeError, match=r"class t\.C lacks added") as caught:
        decode_state(payload, now)
    assert caught.value.reason == "unreadable"
    lenient = ClassRegistry([by_fields(_After, "t.C")])  # without from_init: rebuilt as it was
    assert vars(decode_state(payload, lenient)) == {"kept": 1}


class _SlottedAfter:  # a slotted class a version later, with a slot older snapshots lack
    __slots__ = ("added", "kept")

    def __init__(self) -> None:
        self.kept = 1
        self.added: str | None = "new"


def test_a_field_declared_added_takes_its_older_value_from_a_snapshot_without_it() -> None:
    payload = serialize_state(encode_state(_Before(), ClassRegistry([by_fields(_Before, "t.C")])))
    now = ClassRegistry([by_fields(_SlottedAfter, "t.C", from_init=True, added={"added": list})])
    back = decode_state(payload, now)
    assert (back.kept, back.added) == (1, [])
    # A snapshot that holds the field keeps its value.
    fresh = serialize_state(encode_state(_SlottedAfter(), now))
    assert decode_state(fresh, now).added == "new"
