"""What a model part derives from its state and keeps between calls: never its state.

Arrays over a feature set, flags such as "no value missing", a window's last row: each is
rebuilt from the state when it is not there, so a part's :class:`Memo` can be dropped at
any time. A snapshot holds an empty one (``stream.detector.snapshot_classes``), and so do a
pickle and a copy.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Memo", "memo_of"]


class Memo:
    """Derived values by key (:attr:`values`); copied, pickled or snapshotted, it comes back
    empty.

    Examples:
        >>> import copy, pickle
        >>> memo = Memo()
        >>> memo.values["names"] = ("a",)
        >>> [m.values for m in (copy.deepcopy(memo), pickle.loads(pickle.dumps(memo)))]
        [{}, {}]
    """

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[Any, Any] = {}

    def __reduce__(self) -> tuple[type[Memo], tuple[()]]:
        return (Memo, ())


class _HasMemo(Protocol):
    _memo: Memo | None


def memo_of(owner: _HasMemo) -> dict[Any, Any]:
    """``owner``'s memo values, its memo made at first use (an object restored from a
    snapshot, or made by ``__new__``, has none yet).

    Examples:
        >>> class Part:
        ...     _memo: Memo | None = None
        >>> part = Part()
        >>> memo_of(part) is memo_of(part)
        True
    """
    memo = owner._memo
    if memo is None:
        memo = owner._memo = Memo()
    return memo.values
