"""A running digest of the store's write history, for determinism checks.

Same seed + same workload must give the same digest; a different generated name or uid
must change it. Each write folds in its revision, event type, kind, namespace, name,
uid, resourceVersion, generation and a cheap content fingerprint: the finalizers, owner
references and deletion timestamp, and the *top-level scalars* of each other part
(``spec.nodeName``, ``spec.replicas``, ``status.phase``, ``status.podIP``, an Event's
reason and message ...; nested structs count only by their length). A full ``repr`` of
a defaulted PodSpec costs ~60 µs, far too much per write; changes deeper in a spec are
still seen through ``generation``. Everything is deterministic across processes (no
``hash()`` of strings, which follows ``PYTHONHASHSEED``). Parts that objects share
(specs stamped from a template, label maps) are fingerprinted once and memoised by
identity; parts new with each write go straight into the hashed line. Writes are folded
in batches, so the write path only appends a tuple (the batch keeps at most ``_BATCH``
objects alive).
"""

from __future__ import annotations

import functools
import hashlib
import operator
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from controlplane.api.frozen import FrozenDict

__all__ = ["HistoryDigest"]

_MEMO_LIMIT = 16384
_SCALARS = frozenset({str, int, bool, float, type(None), datetime})


@functools.cache
def _getter(cls: type[Any]) -> Callable[[Any], tuple[Any, ...]] | None:
    """Reads all attrs fields of ``cls`` at once (None: not an attrs class)."""
    if not attrs.has(cls):
        return None
    names = [a.name for a in attrs.fields(cls)]
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda obj: (get(obj),)
    return operator.attrgetter(*names)  # type: ignore[return-value]


def _shallow(part: Any) -> Any:
    """What of ``part`` the fingerprint covers: scalars, and sizes of collections."""
    get = _getter(part.__class__)
    if get is None:
        return part
    return tuple(
        v if v.__class__ in _SCALARS else len(v) if isinstance(v, tuple | dict) else None
        for v in get(part)
    )


_BATCH = 1024

#: Part classes that many objects share by identity (besides ``*Spec`` classes).
_SHARED = frozenset({FrozenDict})


class HistoryDigest:
    """Records writes cheaply (a tuple append) and folds them into the hash in batches
    of ``_BATCH`` (and whenever :meth:`hexdigest` is asked for)."""

    __slots__ = ("_hash", "_memo", "_parts", "_pending", "_recent")

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)
        #: id(part) -> (part, crc). Holding the part keeps its id from being reused.
        self._memo: dict[int, tuple[Any, int]] = {}
        #: class -> its top-level fields besides metadata.
        self._parts: dict[type[Any], tuple[str, ...]] = {}
        self._pending: list[tuple[int, str, str, Any]] = []
        #: class -> (the last part of that class seen, its shallow form).
        self._recent: dict[type[Any], tuple[Any, Any]] = {}

    def record(self, revision: int, type: str, kind: str, obj: Any) -> None:
        """Fold one write into the digest (soon)."""
        pending = self._pending
        pending.append((revision, type, kind, obj))
        if len(pending) >= _BATCH:
            self._fold()

    def hexdigest(self) -> str:
        self._fold()
        return self._hash.hexdigest()

    def _fold(self) -> None:
        pending = self._pending
        if not pending:
            return
        memo = self._memo
        parts_of = self._parts
        recent = self._recent
        crc32 = zlib.crc32
        lines = []
        for revision, type, kind, obj in pending:
            cls = obj.__class__
            parts = parts_of.get(cls)
            if parts is None:
                parts = parts_of[cls] = tuple(
                    a.name for a in attrs.fields(cls) if a.name != "metadata"
                )
            meta = obj.metadata
            fields: list[Any] = []
            for part in (meta.labels, meta.annotations, *[getattr(obj, n) for n in parts]):
                part_cls = part.__class__
                if part_cls in _SCALARS:
                    fields.append(part)
                elif part_cls in _SHARED or part_cls.__name__.endswith("Spec"):
                    # Shared between objects (template specs, label maps): fingerprint
                    # once per object, by identity.
                    hit = memo.get(id(part))
                    if hit is None or hit[0] is not part:
                        if len(memo) >= _MEMO_LIMIT:
                            memo.clear()
                        hit = memo[id(part)] = (part, crc32(repr(_shallow(part)).encode()))
                    fields.append(hit[1])
                else:
                    # Mostly new with each write (a status, an Event's parts): a memo
                    # entry would rarely be hit again, so put its scalars in the line --
                    # remembering only the last one per class, which catches a shared
                    # default (the Pending status every created pod starts with).
                    last = recent.get(part_cls)
                    if last is None or last[0] is not part:
                        last = recent[part_cls] = (part, _shallow(part))
                    fields.append(last[1])
            if meta.finalizers or meta.owner_references or meta.deletion_timestamp is not None:
                fields.append((meta.finalizers, meta.owner_references, meta.deletion_timestamp))
            lines.append(
                f"{revision}|{type}|{kind}|{meta.namespace}|{meta.name}|{meta.uid}"
                f"|{meta.resource_version}|{meta.generation}|{fields!r}\n"
            )
        pending.clear()
        self._hash.update("".join(lines).encode())
