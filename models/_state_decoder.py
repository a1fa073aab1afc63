"""The walk from a decoded JSON tree back to objects (see :mod:`models.state_codec`)."""

from __future__ import annotations

import base64
import collections
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from models._state_encoder import ARRAY_KINDS, FACTORIES, UNSET
from models._state_registry import ClassEntry, ClassRegistry

__all__ = ["DecodeError", "Decoder"]


class DecodeError(Exception):
    """A payload that must not be loaded: ``corrupt`` (not this layout: bad JSON or npz) or
    ``unreadable`` (well formed, but an object it names cannot be rebuilt now)."""

    def __init__(self, reason: Literal["corrupt", "unreadable"], detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Literal["corrupt", "unreadable"] = reason
        self.detail = detail


class Decoder:
    """One walk over one document; objects are numbered in the order the encoder met them."""

    def __init__(
        self, registry: ClassRegistry, classes: list[list[Any]], arrays: list[np.ndarray]
    ) -> None:
        self.memo: list[Any] = []
        self.arrays = arrays
        self.classes = [self._entry(registry, name, fields) for name, fields in classes]
        self.fields: list[list[str]] = [fields or [] for _, fields in classes]
        self.tags: dict[str, Callable[[Any], Any]] = {
            "@r": self._ref,
            "@u": lambda _: UNSET,
            "@f": self._float,
            "@t": self._tuple,
            "@fs": lambda v: frozenset(self.decode(x) for x in v),
            "@s": lambda v: self._fill(set(), v, lambda out, x: out.add(x)),
            "@q": lambda v: self._fill(collections.deque(maxlen=v[0]), v[1], _append),
            "@d": lambda v: self._mapping({}, v),
            "@C": lambda v: self._mapping(collections.Counter(), v),
            "@O": lambda v: self._mapping(collections.OrderedDict(), v),
            "@dd": self._defaultdict,
            "@a": self._array,
            "@n": self._scalar,
            "@dt": dt.datetime.fromisoformat,
            "@td": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
            "@b": base64.b64decode,
            "@o": self._object,
            "@x": self._custom,
        }

    def run(self, tree: Any) -> Any:
        return self.decode(tree)

    def decode(self, node: Any) -> Any:
        kind = type(node)
        if kind is list:
            out: list[Any] = []
            self.memo.append(out)
            out.extend(self.decode(x) for x in node)
            return out
        if kind is not dict:
            return node  # str, int, float, bool, None
        if len(node) == 1:
            tag = next(iter(node))
            if tag[:1] == "@":
                handler = self.tags.get(tag)
                if handler is None:
                    raise DecodeError("corrupt", f"unknown tag {tag}")
                return handler(node[tag])
        plain: dict[str, Any] = {}
        self.memo.append(plain)
        for key, value in node.items():
            plain[key] = self.decode(value)
        return plain

    def _ref(self, index: int) -> Any:
        return self.memo[index]

    def _float(self, text: str) -> float:
        if text not in ("nan", "inf", "-inf"):
            raise ValueError(f"float {text!r}")
        return float(text)

    def _tuple(self, items: list[Any]) -> tuple[Any, ...]:
        slot = len(self.memo)
        self.memo.append(None)  # references to it are taken only after it is built
        built = tuple([self.decode(x) for x in items])
        self.memo[slot] = built
        return built

    def _fill(self, out: Any, items: list[Any], add: Callable[[Any, Any], Any]) -> Any:
        self.memo.append(out)
        for item in items:
            add(out, self.decode(item))
        return out

    def _mapping(self, out: Any, pairs: list[list[Any]]) -> Any:
        self.memo.append(out)
        return self._update(out, pairs)

    def _defaultdict(self, value: list[Any]) -> Any:
        slot = len(self.memo)
        self.memo.append(None)  # numbered before its factory's arguments, as written
        out: collections.defaultdict[Any, Any] = collections.defaultdict(self._factory(value[0]))
        self.memo[slot] = out
        return self._update(out, value[1])

    def _update(self, out: Any, pairs: list[list[Any]]) -> Any:
        for key, value in pairs:
            decoded = self.decode(key)
            out[decoded] = self.decode(value)
        return out

    def _factory(self, named: str | list[Any]) -> Any:
        if isinstance(named, str):
            return FACTORIES[named]
        factory = FACTORIES[named[0]]
        if factory is None:
            raise ValueError("a partial of no factory")
        return functools.partial(factory, *self.decode(named[1]))

    def _array(self, index: int) -> np.ndarray:
        array = self.arrays[index]
        self.memo.append(array)
        return array

    def _scalar(self, value: list[Any]) -> Any:
        dtype = np.dtype(value[0])
        if dtype.kind not in ARRAY_KINDS:
            raise ValueError(f"scalar of dtype {dtype}")
        return dtype.type(self.decode(value[1]))

    def _entry(self, registry: ClassRegistry, name: str, fields: list[str] | None) -> ClassEntry:
        entry = registry.by_name.get(name)
        if entry is None:
            raise DecodeError("unreadable", f"class {name} is not in the snapshot class registry")
        if (fields is None) != (entry.how == "custom"):
            raise DecodeError("unreadable", f"class {name} is written another way now")
        missing = entry.required.difference(fields or ())
        if entry.how != "custom" and missing:
            raise DecodeError("unreadable", f"class {name} lacks {', '.join(sorted(missing))}")
        return entry

    def _object(self, value: list[Any]) -> Any:
        entry = self.classes[value[0]]
        names = self.fields[value[0]]
        obj = entry.cls.__new__(entry.cls)
        self.memo.append(obj)
        values = [self.decode(x) for x in value[1]]
        if len(values) != len(names):
            raise ValueError(f"{entry.name}: {len(values)} values for {len(names)} fields")
        fields = dict(zip(names, values, strict=True))
        for name, factory in entry.added.items():
            if name not in fields:  # written before the field was added
                fields[name] = factory()
        try:
            if entry.how == "state":
                setter = getattr(obj, "__setstate__", None)
                if setter is not None:
                    setter(fields)
                else:
                    obj.__dict__.update(fields)
                return obj
            for name in entry.slots:
                if name in fields:
                    field = fields.pop(name)
                    if field is not UNSET:
                        object.__setattr__(obj, name, field)
            if fields:
                obj.__dict__.update(fields)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise DecodeError(
                "unreadable", f"class {entry.name} cannot be rebuilt: {type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def _custom(self, value: list[Any]) -> Any:
        entry = self.classes[value[0]]
        slot = len(self.memo)
        self.memo.append(None)  # references to it are taken only after it is built
        decoded = self.decode(value[1])
        assert entry.load is not None
        try:
            obj = entry.load(decoded)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise DecodeError(
                "unreadable", f"class {entry.name} cannot be rebuilt: {type(exc).__name__}: {exc}"
            ) from exc
        self.memo[slot] = obj
        return obj


def _append(out: collections.deque[Any], item: Any) -> None:
    out.append(item)
