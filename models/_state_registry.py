"""The classes a state may hold, by stable name (see :mod:`models.state_codec`)."""

from __future__ import annotations

import dataclasses
import dis
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

__all__ = ["ClassEntry", "ClassRegistry", "by_fields", "by_state", "custom"]


@dataclasses.dataclass(frozen=True)
class ClassEntry:
    """How one class is written and rebuilt.

    Attributes:
        name: Its stable name in snapshots (kept when the class moves or is renamed).
        cls: The class (exactly: a subclass needs an entry of its own).
        how: ``fields``: its ``__dict__`` and ``__slots__`` attributes, set back on an
            object made with ``cls.__new__``; ``state``: what its ``__getstate__`` returns (a
            dict), given back to its ``__setstate__`` (or its ``__dict__``); ``custom``:
            :attr:`dump` gives an encodable value, :attr:`load` rebuilds from it.
        slots: Its slot attributes (all classes of its MRO), in order.
        required: Fields a snapshot must hold for the object to be rebuilt (its slots and
            dataclass fields, plus any given); one missing is refused, not half-loaded.
        dump: For ``custom``: object to encodable value.
        load: For ``custom``: decoded value to object.
        added: Fields added after snapshots were written without them: name -> a factory
            of the value an older object stands for (set on rebuild when the snapshot
            lacks the field; never required).
    """

    name: str
    cls: type
    how: Literal["fields", "state", "custom"]
    slots: tuple[str, ...] = ()
    required: frozenset[str] = frozenset()
    dump: Callable[[Any], Any] | None = None
    load: Callable[[Any], Any] | None = None
    added: Mapping[str, Callable[[], Any]] = dataclasses.field(default_factory=dict)


def _slots(cls: type) -> tuple[str, ...]:
    found: list[str] = []
    for klass in reversed(cls.__mro__):
        declared = vars(klass).get("__slots__", ())
        for slot in (declared,) if isinstance(declared, str) else declared:
            if slot not in ("__dict__", "__weakref__") and slot not in found:
                found.append(slot)
    return tuple(found)


def by_fields(
    cls: type,
    name: str,
    *,
    required: Iterable[str] = (),
    from_init: bool = False,
    added: Mapping[str, Callable[[], Any]] | None = None,
) -> ClassEntry:
    """An entry written field by field (``__dict__`` and ``__slots__``).

    Args:
        cls: The class.
        name: Its stable name.
        required: Fields a snapshot must hold, besides its slots and dataclass fields.
        from_init: Require too every attribute the ``__init__`` methods of its MRO set on
            ``self`` (for classes whose ``__init__`` sets every attribute unconditionally,
            as Vigil's do: a snapshot from before an attribute was added is refused rather
            than rebuilt without it).
        added: Fields added after snapshots were written without them, each with a factory
            of the value an older object stands for (an attribute whose absence has one
            meaning, say "not known": ``None``); left out of the required fields.
    """
    slots = _slots(cls)
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    stored = _init_stores(cls) if from_init else set()
    added = dict(added or {})
    required = frozenset({*slots, *fields, *required, *stored}).difference(added)
    return ClassEntry(name, cls, "fields", slots, required, added=added)


def _init_stores(cls: type) -> set[str]:
    """The attributes the ``__init__`` methods of ``cls``'s MRO (of its own package) assign
    on ``self`` (``self.x = ...``), read from their bytecode; properties are left out. A
    bytecode this does not recognise gives fewer names: a weaker check, never a false one."""
    names: set[str] = set()
    package = cls.__module__.split(".")[0]
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] != package:
            continue  # a library's base class may set attributes only on some paths
        code = getattr(vars(klass).get("__init__"), "__code__", None)
        if code is None or not code.co_argcount:
            continue
        me = code.co_varnames[0]
        steps = list(dis.get_instructions(code))
        for before, step in itertools.pairwise(steps):
            loads_me = before.argval == me or (
                isinstance(before.argval, tuple) and before.argval[-1:] == (me,)
            )
            if step.opname == "STORE_ATTR" and before.opname.startswith("LOAD_FAST") and loads_me:
                names.add(step.argval)
    return {n for n in names if not isinstance(getattr(cls, n, None), property)}


def by_state(cls: type, name: str, *, required: Iterable[str] = ()) -> ClassEntry:
    """An entry written through its ``__getstate__`` (which must return a dict of fields)."""
    return ClassEntry(name, cls, "state", (), frozenset(required))


def custom(
    cls: type, name: str, dump: Callable[[Any], Any], load: Callable[[Any], Any]
) -> ClassEntry:
    """An entry with its own conversion to and from an encodable value."""
    return ClassEntry(name, cls, "custom", dump=dump, load=load)


class ClassRegistry:
    """The classes a state may hold; any other is refused both ways.

    Args:
        entries: One per class; names and classes must be unique.
    """

    def __init__(self, entries: Iterable[ClassEntry]) -> None:
        self.by_type: dict[type, ClassEntry] = {}
        self.by_name: dict[str, ClassEntry] = {}
        for entry in entries:
            if entry.cls in self.by_type or entry.name in self.by_name:
                raise ValueError(f"{entry.name} ({entry.cls.__qualname__}) registered twice")
            self.by_type[entry.cls] = entry
            self.by_name[entry.name] = entry

    def __len__(self) -> int:
        return len(self.by_name)

    def __contains__(self, cls: object) -> bool:
        return cls in self.by_type
