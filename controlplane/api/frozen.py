"""A read-only, hashable mapping for the maps inside API objects (labels, annotations...).

Objects are shared between the store, every watcher and every informer cache without
copying, so nothing inside them may be mutable. ``FrozenDict`` subclasses ``dict`` so
lookups, iteration and JSON encoding keep dict speed; every mutating method raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(dict[K, V]):
    __slots__ = ("_hash",)

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only; build a new one instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return self._hash
        except AttributeError:
            self._hash = h = hash(frozenset(self.items()))
            return h

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[K, V]:
        return self

    def set(self, key: K, value: V) -> FrozenDict[K, V]:
        """A copy with ``key`` set to ``value``."""
        new = dict(self)
        new[key] = value
        return FrozenDict(new)

    def without(self, *keys: K) -> FrozenDict[K, V]:
        """A copy without ``keys`` (missing keys are ignored)."""
        return FrozenDict({k: v for k, v in self.items() if k not in keys})


EMPTY: FrozenDict[Any, Any] = FrozenDict()


def freeze(mapping: Mapping[K, V] | Iterable[tuple[K, V]] | None) -> FrozenDict[K, V]:
    """Converter for attrs fields: accept any mapping (or None) and store a FrozenDict."""
    if mapping is None:
        return EMPTY
    if isinstance(mapping, FrozenDict):
        return mapping
    if not mapping:
        return EMPTY
    return FrozenDict(mapping)
