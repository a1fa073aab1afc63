"""A state tree as plain data: JSON for its structure and scalars, npz for its arrays (pure).

Snapshots hold the live objects of online models. This codec writes them without pickle: a
JSON document names every object by a stable class name from an explicit
:class:`ClassRegistry` and lists its fields; every numpy array goes to an npz archive (read
back with ``allow_pickle=False``). Reading never imports, calls or evaluates anything a
snapshot names: it looks the name up in the registry, makes the object with
``cls.__new__`` and sets its fields (or calls a loader the registry gives for that class).

What it encodes: ``None``, bool, int, float (NaN and infinities included, bit-exact), str,
bytes, list, tuple, dict (any encodable keys), set, frozenset, ``collections.deque``,
``Counter``, ``OrderedDict``, ``defaultdict`` (of a few builtin factories), timezone-aware or
naive ``datetime`` and ``timedelta``, numpy arrays of numbers, booleans or strings, numpy
scalars, and instances of registered classes. Anything else is an :class:`EncodeError`
naming where in the tree it was. An object referenced twice comes back as one object
(references are numbered in the order first met, as pickle's memo does), so shared
configurations, tree structures and Drain's clusters stay shared.

Layout: ``JSON length (4 bytes, big-endian) | JSON | npz``. The JSON document::

    {"format": 1, "classes": [[name, [field, ...] or null], ...],
     "arrays": [[group, offset, shape, read_only], ...], "groups": [dtype, ...], "root": tree}

holds one flat array per dtype in the npz (``g0``, ``g1``, ...); an array is a slice of its
group. In the tree a JSON array is a list and a JSON object without a key starting with
``@`` is a dict with those string keys; everything else is a one-key object ``{"@tag":
...}``.

Examples:
    >>> import numpy as np
    >>> from collections import deque
    >>> registry = ClassRegistry([])
    >>> shared = [1.5, float("nan")]
    >>> tree = {"a": shared, "b": shared, "q": deque([1, 2], maxlen=3), "v": np.arange(3.0)}
    >>> back = decode_state(serialize_state(encode_state(tree, registry)), registry)
    >>> back["a"] is back["b"], back["q"], back["v"].tolist()
    (True, deque([1, 2], maxlen=3), [0.0, 1.0, 2.0])
    >>> encode_state({"f": [1, 2j]}, registry)
    Traceback (most recent call last):
    ...
    models.state_codec.EncodeError: ['f'][1]: builtins.complex is not in the snapshot class registry
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from collections.abc import Iterable
from typing import IO, Any, Protocol

import numpy as np

from models._state_decoder import DecodeError, Decoder
from models._state_encoder import EncodedState, EncodeError, Encoder
from models._state_registry import ClassEntry, ClassRegistry, by_fields, by_state, custom

__all__ = [
    "ClassEntry",
    "ClassRegistry",
    "DecodeError",
    "EncodeError",
    "EncodedState",
    "by_fields",
    "by_state",
    "custom",
    "decode_state",
    "encode_state",
    "serialize_state",
    "write_state",
]

FORMAT = 1
"""The layout's own version (the snapshot's schema version says what the state means)."""

_LENGTH = struct.Struct(">I")


def encode_state(state: Any, registry: ClassRegistry) -> EncodedState:
    """Walk ``state`` into a JSON-ready tree and copies of its arrays: the part that must run
    while the state holds still; :func:`serialize_state` can run elsewhere.

    Raises:
        EncodeError: Something in ``state`` is not encodable (an unregistered class, an
            object array, ...); the message says where.
    """
    return Encoder(registry).run(state)


def serialize_state(encoded: EncodedState) -> bytes:
    """The payload's bytes: JSON length, JSON, npz (arrays grouped by dtype)."""
    buffer = io.BytesIO()
    write_state(encoded, buffer)
    return buffer.getvalue()


class Sink(Protocol):
    """Where :func:`write_state` writes (a file, a hashing wrapper, ...)."""

    def write(self, data: bytes | memoryview, /) -> int:
        """Write all of ``data``."""
        ...


def write_state(encoded: EncodedState, out: Sink) -> None:
    """Write the payload to ``out`` in order: JSON length, JSON, then the npz streamed
    (one ``.npy`` entry per dtype, its arrays written one after the other: the arrays are
    not joined or copied once more, and large ones go to ``out`` as they are)."""
    groups: dict[str, list[np.ndarray]] = {}
    table: list[list[Any]] = []
    sizes: dict[str, int] = {}
    for array in encoded.arrays:
        dtype = array.dtype.str
        groups.setdefault(dtype, []).append(array)
        offset = sizes.get(dtype, 0)
        sizes[dtype] = offset + array.size
        table.append([dtype, offset, list(array.shape), not array.flags.writeable])
    names = list(groups)
    index = {dtype: i for i, dtype in enumerate(names)}
    for row in table:
        row[0] = index[row[0]]
    # {"format": ..., "classes": ..., "arrays": ..., "groups": ..., "root": ...}, the root
    # as the capture dumped it.
    head = {"format": FORMAT, "classes": encoded.classes, "arrays": table, "groups": names}
    text = b"".join(
        (json.dumps(head, separators=(",", ":")).encode()[:-1], b',"root":', encoded.tree, b"}")
    )
    out.write(_LENGTH.pack(len(text)) + text)
    # A sink without tell/seek: zipfile writes the archive front to back (data descriptors).
    with zipfile.ZipFile(_Forward(out), "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for number, dtype in enumerate(names):
            with archive.open(f"g{number}.npy", "w", force_zip64=True) as entry:
                header = io.BytesIO()
                described = np.lib.format.dtype_to_descr(np.dtype(dtype))
                np.lib.format.write_array_header_2_0(
                    header, {"descr": described, "fortran_order": False, "shape": (sizes[dtype],)}
                )
                entry.write(header.getvalue())
                _write_arrays(entry, groups[dtype])


def _write_arrays(entry: IO[bytes], arrays: list[np.ndarray]) -> None:
    """The arrays' bytes in order, joined up to 8 MiB at a time: each write checksums,
    hashes and writes without the GIL, and the writer thread taking the GIL back after each
    one interrupts the event loop (a copy of the small arrays is cheaper than thousands of
    round trips)."""
    small: list[memoryview] = []
    held = 0
    for array in arrays:
        data = array.reshape(-1).view(np.uint8).data
        if data.nbytes >= _LARGE:
            if small:
                entry.write(b"".join(small))
                small, held = [], 0
            entry.write(data)
            continue
        small.append(data)
        held += data.nbytes
        if held >= _BATCH:
            entry.write(b"".join(small))
            small, held = [], 0
    if small:
        entry.write(b"".join(small))


_LARGE = 8 << 20
_BATCH = 8 << 20


class _Forward:
    """A write-only view of a sink (no tell, no seek), so zipfile streams."""

    def __init__(self, out: Sink) -> None:
        self.out = out

    def write(self, data: bytes, /) -> int:
        return self.out.write(data)

    def flush(self) -> None:
        """Nothing is buffered here."""

    def close(self) -> None:
        """The sink is the caller's to close."""


def decode_state(payload: bytes | memoryview, registry: ClassRegistry) -> Any:
    """Rebuild a state from :func:`serialize_state`'s bytes.

    Raises:
        DecodeError: ``corrupt`` or ``unreadable``.
    """
    document, arrays = _parse(payload)
    try:
        return Decoder(registry, document["classes"], arrays).run(document["root"])
    except DecodeError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DecodeError("corrupt", f"state tree: {type(exc).__name__}: {exc}") from exc


def _parse(payload: bytes | memoryview) -> tuple[dict[str, Any], list[np.ndarray]]:
    if len(payload) < _LENGTH.size:
        raise DecodeError("corrupt", "state payload too short")
    (length,) = _LENGTH.unpack_from(payload)
    if _LENGTH.size + length > len(payload):
        raise DecodeError("corrupt", "state JSON length past the end")
    try:
        document = json.loads(
            bytes(payload[_LENGTH.size : _LENGTH.size + length]), parse_constant=_no_constant
        )
    except ValueError as exc:
        raise DecodeError("corrupt", f"state JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DecodeError("corrupt", "state JSON is not a Vigil state document")
    try:
        with np.load(io.BytesIO(payload[_LENGTH.size + length :]), allow_pickle=False) as npz:
            groups = [npz[f"g{i}"] for i in range(len(document["groups"]))]
        arrays = list(_arrays(document["arrays"], document["groups"], groups))
    except Exception as exc:  # any damage to the archive or its table: refuse as corrupt
        raise DecodeError("corrupt", f"state arrays: {type(exc).__name__}: {exc}") from exc
    return document, arrays


def _arrays(
    table: list[list[Any]], dtypes: list[str], groups: list[np.ndarray]
) -> Iterable[np.ndarray]:
    for group, dtype in zip(groups, dtypes, strict=True):
        if group.dtype.str != dtype or group.ndim != 1:
            raise ValueError(f"group of {group.dtype.str}, expected {dtype}")
    for group, offset, shape, read_only in table:
        flat = groups[group]
        size = math.prod(shape)
        if offset < 0 or offset + size > flat.size:
            raise ValueError("array past the end of its group")
        array = flat[offset : offset + size].reshape(shape).copy()
        if read_only:
            array.setflags(write=False)
        yield array


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
