"""The walk from live objects to a JSON-ready tree and array copies (see
:mod:`models.state_codec`)."""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import functools
import gc
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from models._state_registry import ClassRegistry

__all__ = ["ARRAY_KINDS", "FACTORIES", "UNSET", "EncodeError", "EncodedState", "Encoder"]

ARRAY_KINDS = frozenset("biufcUS")
"""numpy dtype kinds a snapshot may hold: bool, integers, floats, complex, strings."""

FACTORIES: dict[str, Callable[[], Any] | None] = {
    "None": None,
    "float": float,
    "int": int,
    "list": list,
    "dict": dict,
    "set": set,
    "tuple": tuple,
}
"""The ``defaultdict`` factories a snapshot may name (alone, or in a ``functools.partial``
with encodable arguments, as river's Half-Space Trees keep their limits)."""

_MISSING = object()


class _Unset:
    """A slot an object has not set (written as ``{"@u": 0}``: the field list still names
    every slot the writer's class had)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


class EncodeError(TypeError):
    """Something in a state cannot be written; the message says where in the tree."""

    __module__ = "models.state_codec"  # documented there

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def at(self, step: str) -> EncodeError:
        """Prefix the path with the step taken to reach the failing value."""
        self.path.insert(0, step)
        return self

    def __str__(self) -> str:
        return f"{''.join(self.path) or '<root>'}: {self.message}"


@dataclasses.dataclass(frozen=True)
class EncodedState:
    """A state walked into plain data: its tree as JSON text, the class table the tree's
    objects index into, and copies of its arrays (the tree's ``{"@a": i}`` is ``arrays[i]``).

    The tree is dumped at once: the many small containers of the walk die young, instead of
    living until a writer thread is done with them and making the cyclic collector traverse
    the whole heap meanwhile (that cost the loop more than the walk itself)."""

    tree: bytes
    classes: list[list[Any]]
    arrays: list[np.ndarray]


class Encoder:
    """One walk over one state (references are numbered per walk)."""

    def __init__(self, registry: ClassRegistry) -> None:
        self.registry = registry
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # every numbered object stays alive: ids stay unique
        self.arrays: list[np.ndarray] = []
        self.classes: list[list[Any]] = []
        self.signatures: dict[tuple[str, tuple[str, ...] | None], int] = {}
        self.building: set[int] = set()
        self.handlers: dict[type, Callable[[Any], Any]] = {
            list: self._list,
            dict: self._dict,
            tuple: self._tuple,
            set: lambda o: {"@s": self._items(o)},
            frozenset: lambda o: {"@fs": self._items(o)},
            collections.deque: lambda o: {"@q": [o.maxlen, self._items(o)]},
            collections.Counter: lambda o: {"@C": self._pairs(o)},
            collections.OrderedDict: lambda o: {"@O": self._pairs(o)},
            collections.defaultdict: self._defaultdict,
            np.ndarray: self._array,
            dt.datetime: self._datetime,
            dt.timedelta: lambda o: {"@td": [o.days, o.seconds, o.microseconds]},
            bytes: lambda o: {"@b": base64.b64encode(o).decode()},
            _Unset: lambda o: {"@u": 0},
        }
        self.numbered = frozenset(
            {list, dict, tuple, set, collections.deque, collections.Counter}
            | {collections.OrderedDict}
            | {collections.defaultdict, np.ndarray}
        )

    def run(self, state: Any) -> EncodedState:
        # The walk makes many small containers and frees none: the cyclic collector would
        # traverse the whole heap (the models included) several times for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            tree = self.encode(state)
            try:
                text = json.dumps(tree, separators=(",", ":"), allow_nan=False).encode()
            except ValueError as exc:  # a float the walk did not tag: a bug, not a snapshot
                raise EncodeError(f"not JSON: {exc}") from exc
            return EncodedState(text, self.classes, self.arrays)
        finally:
            if collecting:
                gc.enable()

    def encode(self, o: Any) -> Any:
        kind = type(o)
        if kind is str or kind is int or kind is bool or o is None:
            return o
        if kind is float:
            return o if o - o == 0.0 else {"@f": repr(o)}  # NaN and infinities: not JSON
        handler = self.handlers.get(kind)
        entry = None
        if handler is None:
            entry = self.registry.by_type.get(kind)
            if entry is None:
                if isinstance(o, np.generic) and o.dtype.kind in "biuf":
                    return {"@n": [o.dtype.str, self.encode(o.item())]}
                raise EncodeError(
                    f"{kind.__module__}.{kind.__qualname__} is not in the snapshot class registry"
                )
        elif kind not in self.numbered:
            return handler(o)
        key = id(o)
        seen = self.memo.get(key)
        if seen is not None:
            if key in self.building:
                raise EncodeError(f"{kind.__qualname__} refers to itself (through a tuple or dump)")
            return {"@r": seen}
        self.memo[key] = len(self.memo)
        self.keep.append(o)
        if handler is not None:
            return handler(o)
        assert entry is not None
        if entry.how == "custom":
            assert entry.dump is not None
            self.building.add(key)
            try:
                dumped = self.encode(entry.dump(o))
            except EncodeError as error:
                raise error.at(f"<{entry.name}>") from None
            self.building.discard(key)
            return {"@x": [self._class(entry.name, None), dumped]}
        if entry.how == "state":
            fields = o.__getstate__()
            if not isinstance(fields, dict):
                raise EncodeError(f"{entry.name}.__getstate__ did not return a dict")
            names, values = tuple(fields), list(fields.values())
        else:
            names, values = self._fields(o, entry.slots)
        return {"@o": [self._class(entry.name, names), self._items(values, names)]}

    def _fields(self, o: Any, slots: tuple[str, ...]) -> tuple[tuple[str, ...], list[Any]]:
        names: list[str] = []
        values: list[Any] = []
        for slot in slots:
            names.append(slot)
            values.append(getattr(o, slot, UNSET))
        own = getattr(o, "__dict__", None)
        if own:
            names.extend(own)
            values.extend(own.values())
        return tuple(names), values

    def _class(self, name: str, fields: tuple[str, ...] | None) -> int:
        signature = (name, fields)
        index = self.signatures.get(signature)
        if index is None:
            index = self.signatures[signature] = len(self.classes)
            self.classes.append([name, None if fields is None else list(fields)])
        return index

    def _items(self, items: Any, names: tuple[str, ...] = ()) -> list[Any]:
        """Encoded ``items``; an error's path names the field (given ``names``) or index."""
        out: list[Any] = []
        try:
            for value in items:
                out.append(self.encode(value))
        except EncodeError as error:
            raise error.at(f".{names[len(out)]}" if names else f"[{len(out)}]") from None
        return out

    def _list(self, o: list[Any]) -> list[Any]:
        return self._items(o)

    def _tuple(self, o: tuple[Any, ...]) -> Any:
        key = id(o)
        self.building.add(key)  # built after its items: none may refer back to it
        items = self._items(o)
        self.building.discard(key)
        return {"@t": items}

    def _pairs(self, o: dict[Any, Any]) -> list[list[Any]]:
        out: list[list[Any]] = []
        encode = self.encode
        for key, value in o.items():
            try:
                out.append([encode(key), encode(value)])
            except EncodeError as error:
                raise error.at(f"[{key!r}]") from None
        return out

    def _dict(self, o: dict[Any, Any]) -> Any:
        if not all(type(k) is str and k[:1] != "@" for k in o):
            return {"@d": self._pairs(o)}
        out: dict[str, Any] = {}
        encode = self.encode
        for key, value in o.items():
            try:
                out[key] = encode(value)
            except EncodeError as error:
                raise error.at(f"[{key!r}]") from None
        return out

    def _defaultdict(self, o: collections.defaultdict[Any, Any]) -> Any:
        factory = o.default_factory
        if isinstance(factory, functools.partial) and not factory.keywords:
            name = self._factory(factory.func)
            return {"@dd": [[name, self.encode(factory.args)], self._pairs(o)]}
        return {"@dd": [self._factory(factory), self._pairs(o)]}

    def _factory(self, factory: Any) -> str:
        name = getattr(factory, "__name__", repr(factory)) if factory is not None else "None"
        if FACTORIES.get(name, _MISSING) is not factory:
            raise EncodeError(f"defaultdict of {factory!r} (allowed: {', '.join(FACTORIES)})")
        return name

    def _array(self, o: np.ndarray) -> Any:
        if o.dtype.kind not in ARRAY_KINDS or o.dtype.fields is not None:
            raise EncodeError(f"array of dtype {o.dtype} (allowed kinds: {''.join(ARRAY_KINDS)})")
        copy = np.array(o, order="C", copy=True)
        if not o.flags.writeable:
            copy.setflags(write=False)
        self.arrays.append(copy)
        return {"@a": len(self.arrays) - 1}

    def _datetime(self, o: dt.datetime) -> Any:
        if o.tzinfo is not None and not isinstance(o.tzinfo, dt.timezone):
            raise EncodeError(f"datetime with time zone {o.tzinfo!r} (only fixed offsets)")
        return {"@dt": o.isoformat()}
