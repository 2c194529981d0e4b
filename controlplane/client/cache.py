"""The informer's cache: objects by key, with indexes (client-go ``tools/cache`` Indexer).

No locks and no copies: trio runs one task at a time, and API objects are frozen, so the
cache stores and returns the very instances the store delivered. Nothing here mutates an
object; callers must not try (``attrs.evolve`` makes a new one).

Keys are ``namespace/name`` (``name`` for cluster-scoped objects), see
:func:`controlplane.api.meta.object_key`. Built-in indexes:

- ``namespace``: ``metadata.namespace`` → keys;
- ``label``: ``"key=value"`` for each label → keys, used by ``list(label_selector=...)``
  for equality requirements (``app=web``, ``app==web``, ``matchLabels``);
- ``node_name``: ``spec.node_name`` → keys, for objects that have one set (pods).

User indexers are ``{name: fn(obj) -> iterable of str}``; look them up with ``by_index``.
Results come back in a deterministic order (the order objects entered the cache or the
index bucket), never in ``set`` order, so runs replay identically whatever the hash seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from controlplane.api.labels import Operator, Selector, parse_selector
from controlplane.api.meta import object_key

__all__ = [
    "LABEL_INDEX",
    "NAMESPACE_INDEX",
    "NODE_NAME_INDEX",
    "Cache",
    "IndexFunc",
]

IndexFunc = Callable[[Any], Iterable[str]]

NAMESPACE_INDEX = "namespace"
LABEL_INDEX = "label"
NODE_NAME_INDEX = "node_name"


def _namespace_values(obj: Any) -> Iterable[str]:
    return (obj.metadata.namespace,)


def _label_values(obj: Any) -> Iterable[str]:
    return [f"{k}={v}" for k, v in obj.metadata.labels.items()]


def _node_name_values(obj: Any) -> Iterable[str]:
    node_name = getattr(getattr(obj, "spec", None), "node_name", None)
    return (node_name,) if node_name else ()


_BUILTIN: dict[str, IndexFunc] = {
    NAMESPACE_INDEX: _namespace_values,
    LABEL_INDEX: _label_values,
    NODE_NAME_INDEX: _node_name_values,
}


class Cache:
    """A key → object map with indexes; the read side of an informer.

    Args:
        indexers: extra indexes, ``{name: fn(obj) -> iterable of str}``. The names of the
            built-in indexes (``namespace``, ``label``, ``node_name``) are reserved.

    Raises:
        ValueError: an indexer name clashes with a built-in index.
    """

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        clash = sorted(set(indexers or ()) & set(_BUILTIN))
        if clash:
            raise ValueError(f"indexer name {clash[0]!r} is reserved for a built-in index")
        self._index_funcs: dict[str, IndexFunc] = {**_BUILTIN, **(indexers or {})}
        self._items: dict[str, Any] = {}
        # index name -> value -> keys (a dict used as an insertion-ordered set)
        self._indexes: dict[str, dict[str, dict[str, None]]] = {
            name: {} for name in self._index_funcs
        }

    # -- reads -----------------------------------------------------------------------

    def get(self, name: str, namespace: str = "") -> Any | None:
        """The object called ``name`` (in ``namespace`` if namespaced), or None."""
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Any | None:
        """The object with key ``namespace/name`` (or ``name``), or None."""
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._items.values()))

    def keys(self) -> list[str]:
        return list(self._items)

    def list(
        self, namespace: str | None = None, label_selector: str | Selector | None = None
    ) -> list[Any]:
        """The objects in ``namespace`` (all if None) matching ``label_selector``.

        The selector is a string (``"app=web,tier!=db"``) or a parsed ``Selector``. With an
        equality requirement the label index narrows the candidates first.

        Raises:
            SelectorError: the selector string does not parse.
        """
        selector = self._selector(label_selector)
        if selector is not None and selector.matches_nothing:
            return []
        candidates: Iterable[str] | None = None
        if selector is not None:
            for key, value in _equality_requirements(selector):
                bucket = self._indexes[LABEL_INDEX].get(f"{key}={value}")
                if bucket is None:
                    return []
                if candidates is None or len(bucket) < len(candidates):  # type: ignore[arg-type]
                    candidates = bucket
        if namespace is not None:
            bucket = self._indexes[NAMESPACE_INDEX].get(namespace)
            if bucket is None:
                return []
            if candidates is None or len(bucket) < len(candidates):  # type: ignore[arg-type]
                candidates = bucket
        items = self._items
        objs = items.values() if candidates is None else (items[k] for k in candidates)
        return [
            obj
            for obj in objs
            if (namespace is None or obj.metadata.namespace == namespace)
            and (selector is None or selector.matches(obj.metadata.labels))
        ]

    def by_index(self, index_name: str, value: str) -> list[Any]:
        """The objects whose ``index_name`` index yields ``value``.

        Raises:
            KeyError: no index is called ``index_name``.
        """
        return [self._items[key] for key in self.index_keys(index_name, value)]

    def index_keys(self, index_name: str, value: str) -> list[str]:
        """The keys of the objects whose ``index_name`` index yields ``value``.

        Raises:
            KeyError: no index is called ``index_name``.
        """
        try:
            index = self._indexes[index_name]
        except KeyError:
            raise KeyError(f"no index named {index_name!r}") from None
        return list(index.get(value, ()))

    def index_values(self, index_name: str) -> list[str]:
        """Every value the ``index_name`` index currently holds.

        Raises:
            KeyError: no index is called ``index_name``.
        """
        try:
            return list(self._indexes[index_name])
        except KeyError:
            raise KeyError(f"no index named {index_name!r}") from None

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Add an index (shared informers: each controller brings the indexes it reads);
        objects already cached are indexed at once.

        Raises:
            ValueError: an index called ``name`` exists with another function.
        """
        existing = self._index_funcs.get(name)
        if existing is fn:
            return
        if existing is not None:
            raise ValueError(f"an index named {name!r} exists already")
        self._index_funcs[name] = fn
        self._indexes[name] = index = {}
        for key, obj in self._items.items():
            for value in fn(obj):
                index.setdefault(value, {})[key] = None

    # -- writes (the informer's; tests and fakes may use them too) -------------------

    def upsert(self, obj: Any) -> Any | None:
        """Store ``obj`` under its key; return the object it replaced, or None."""
        key = object_key(obj)
        old = self._items.get(key)
        self._items[key] = obj
        if old is not None:
            self._unindex(key, old)
        self._index(key, obj)
        return old

    def remove(self, key: str) -> Any | None:
        """Drop the object with ``key``; return it, or None if it was not cached."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[Any]) -> dict[str, Any]:
        """Make ``objs`` the whole content of the cache (a re-list); return the previous
        content as a new ``{key: object}`` dict the caller may keep."""
        previous = self._items
        self._items = {}
        self._indexes = {name: {} for name in self._index_funcs}
        for obj in objs:
            self.upsert(obj)
        return previous

    # -- internals -------------------------------------------------------------------

    def _index(self, key: str, obj: Any) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indexes[name]
            for value in fn(obj):
                bucket = index.get(value)
                if bucket is None:
                    index[value] = bucket = {}
                bucket[key] = None

    def _unindex(self, key: str, obj: Any) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indexes[name]
            for value in fn(obj):
                bucket = index.get(value)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del index[value]

    @staticmethod
    def _selector(selector: str | Selector | None) -> Selector | None:
        if isinstance(selector, str):
            selector = parse_selector(selector)  # cached by the labels module
        if selector is None or selector.empty:
            return None
        return selector


def _equality_requirements(selector: Selector) -> list[tuple[str, str]]:
    """The ``key=value`` pairs every object matching ``selector`` must carry."""
    return [
        (r.key, r.values[0])
        for r in selector.requirements
        if r.operator in (Operator.EQUALS, Operator.IN) and len(r.values) == 1
    ]
