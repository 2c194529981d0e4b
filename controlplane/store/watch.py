"""Watch fan-out: watchers, the index that routes each write to the interested ones,
and the stream a watcher reads.

Each write becomes one :class:`~controlplane.store.history.Change`; :meth:`WatchHub.dispatch`
looks up only the buckets that can care -- watchers of the kind across all namespaces,
watchers of the object's namespace, and (pods) watchers pinned to the old or the new
``spec.nodeName`` -- so 5,000 kubelets watching their own pods do not make a pod write
5,000 times dearer. Delivery is an append to each watcher's bounded
:class:`actors.Subscription`; a watcher that falls ``capacity`` events behind is closed
with :class:`actors.Lagged` and dropped from the index.

Selector transitions follow Kubernetes' cacher: an object that starts matching arrives
as ADDED, one that stops matching as DELETED carrying its previous state stamped with the
resourceVersion of the change.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import attrs
import trio

from actors import Subscription, WorkTracker
from controlplane.api.fields import FieldSelector
from controlplane.api.labels import Selector
from controlplane.client.protocol import WatchEvent
from controlplane.store._copy import replacer
from controlplane.store.history import Change

__all__ = ["NODE_FIELD", "WatchHub", "WatchStream", "Watcher"]

#: Pod watches whose field selector pins this field are indexed by its value.
NODE_FIELD = "spec.nodeName"

Filter = Callable[[Any], bool]


def node_of(pod: Any) -> str:
    return pod.spec.node_name or ""


def stamp(obj: Any, resource_version: str) -> Any:
    """``obj`` with ``metadata.resource_version`` replaced (a shallow copy)."""
    meta = replacer(type(obj.metadata), ("resource_version",))(obj.metadata, resource_version)
    return replacer(type(obj), ("metadata",))(obj, meta)


class Watcher:
    """One open watch: what it selects, where its events go, and its place in the index."""

    __slots__ = (
        "bookmarks",
        "filter",
        "kind",
        "namespace",
        "node",
        "outstanding",
        "residual",
        "subscription",
        "tracked",
    )

    def __init__(
        self,
        kind: str,
        *,
        namespace: str | None,
        label_selector: Selector | None,
        field_selector: FieldSelector | None,
        node: str | None,
        bookmarks: bool,
        subscription: Subscription[WatchEvent],
        tracked: bool = False,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.node = node
        self.bookmarks = bookmarks
        self.subscription = subscription
        #: Whether queued events count as work on the hub's tracker (component watches
        #: do; a test's own watch that nobody drains must not hold ``settle`` forever).
        self.tracked = tracked
        #: Tracked events queued for this watcher and not yet handed to its reader.
        self.outstanding = 0
        self.filter = _make_filter(namespace, node, label_selector, field_selector)
        #: For node-indexed watchers: the filter minus the node term, which the index
        #: guarantees for both states when a change does not move the pod between nodes
        #: (every write but a bind), so the common case is one shared event, no check.
        self.residual = (
            self.filter
            if node is None
            else _make_filter(namespace, node, label_selector, _without(field_selector, NODE_FIELD))
        )

    def convert(self, change: Change, f: Filter | None) -> WatchEvent | None:
        """The event this watcher gets for ``change`` when ``f`` (its :attr:`filter` or,
        if the index already guarantees the node, its :attr:`residual`) decides what it
        selects; None if it is not interested."""
        if f is None:
            return WatchEvent(change.type, change.new)  # type: ignore[arg-type]
        if change.type == "MODIFIED":
            now, before = f(change.new), f(change.old)
            if now:
                return WatchEvent("MODIFIED" if before else "ADDED", change.new)
            if before:
                return WatchEvent(
                    "DELETED", stamp(change.old, change.new.metadata.resource_version)
                )
            return None
        if f(change.new):
            return WatchEvent(change.type, change.new)  # type: ignore[arg-type]
        return None


def _without(fields: FieldSelector | None, field: str) -> FieldSelector | None:
    if fields is None:
        return None
    return attrs.evolve(fields, requirements=[r for r in fields.requirements if r.field != field])


def _make_filter(
    namespace: str | None,
    node: str | None,
    labels: Selector | None,
    fields: FieldSelector | None,
) -> Filter | None:
    """What the index does not already guarantee. Watchers indexed by namespace or kind
    alone need no filter; node-indexed ones check everything (old and new may differ)."""
    checks: list[Filter] = []
    if node is not None and namespace is not None:
        checks.append(lambda obj: obj.metadata.namespace == namespace)
    if labels is not None and not labels.empty:
        match_labels = labels.matches
        checks.append(lambda obj: match_labels(obj.metadata.labels))
    if fields is not None and not fields.empty:
        checks.append(fields.matches)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda obj: all(check(obj) for check in checks)


class _KindWatchers:
    __slots__ = ("by_namespace", "by_node", "everyone")

    def __init__(self) -> None:
        # dicts as insertion-ordered sets: delivery order is deterministic.
        self.everyone: dict[Watcher, None] = {}
        self.by_namespace: dict[str, dict[Watcher, None]] = {}
        self.by_node: dict[str, dict[Watcher, None]] = {}

    def bucket(self, w: Watcher, create: bool) -> dict[Watcher, None] | None:
        if w.node is not None:
            table, key = self.by_node, w.node
        elif w.namespace is not None:
            table, key = self.by_namespace, w.namespace
        else:
            return self.everyone
        bucket = table.get(key)
        if bucket is None and create:
            bucket = table[key] = {}
        return bucket

    def discard(self, w: Watcher) -> None:
        bucket = self.bucket(w, create=False)
        if bucket is not None:
            bucket.pop(w, None)
            if not bucket and bucket is not self.everyone:
                table = self.by_node if w.node is not None else self.by_namespace
                del table[w.node if w.node is not None else w.namespace]  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return bool(self.everyone or self.by_namespace or self.by_node)


class WatchHub:
    """The index of open watchers and the fan-out of changes to them."""

    def __init__(self, *, tracker: WorkTracker | None = None) -> None:
        self._kinds: dict[str, _KindWatchers] = {}
        self._bookmarkers: dict[Watcher, None] = {}
        self._tracker = tracker
        self.count = 0

    def add(self, w: Watcher) -> None:
        kw = self._kinds.get(w.kind)
        if kw is None:
            kw = self._kinds[w.kind] = _KindWatchers()
        bucket = kw.bucket(w, create=True)
        assert bucket is not None
        bucket[w] = None
        if w.bookmarks:
            self._bookmarkers[w] = None
        self.count += 1

    def remove(self, w: Watcher) -> None:
        """Take ``w`` out of the index (idempotent) and settle its outstanding work."""
        kw = self._kinds.get(w.kind)
        if kw is not None:
            before = kw.bucket(w, create=False)
            if before is not None and w in before:
                self.count -= 1
            kw.discard(w)
            if not kw:
                del self._kinds[w.kind]
        self._bookmarkers.pop(w, None)
        if w.outstanding and self._tracker is not None:
            self._tracker.done(w.outstanding)
        w.outstanding = 0

    def interested(self, kind: str) -> bool:
        return kind in self._kinds

    def dispatch(self, change: Change) -> None:
        """Deliver ``change`` to every watcher it concerns. The write hot path."""
        kw = self._kinds.get(change.kind)
        if kw is None:
            return
        new = change.new
        # (bucket, whether the node index guarantees the node term for old and new)
        buckets: list[tuple[dict[Watcher, None], bool]] = [(kw.everyone, False)]
        bucket = kw.by_namespace.get(new.metadata.namespace)
        if bucket:
            buckets.append((bucket, False))
        if kw.by_node:
            node = node_of(new)
            old = change.old
            old_node = node if old is None else node_of(old)
            bucket = kw.by_node.get(node)
            if bucket:
                buckets.append((bucket, old_node == node))
            if old_node != node:
                bucket = kw.by_node.get(old_node)
                if bucket:
                    buckets.append((bucket, False))
        shared: WatchEvent | None = None
        lagged: list[Watcher] | None = None
        pushed = 0
        for bucket, node_guaranteed in buckets:
            for w in bucket:
                f = w.residual if node_guaranteed else w.filter
                if f is None:
                    if shared is None:
                        shared = WatchEvent(change.type, new)  # type: ignore[arg-type]
                    event: WatchEvent | None = shared
                else:
                    event = w.convert(change, f)
                    if event is None:
                        continue
                if w.subscription.push_nowait(event):
                    if w.tracked:
                        w.outstanding += 1
                        pushed += 1
                elif lagged is None:
                    lagged = [w]
                else:
                    lagged.append(w)
        if pushed and self._tracker is not None:
            self._tracker.add(pushed)
        if lagged is not None:
            for w in lagged:
                self.remove(w)

    def bookmark(self, empty_object: Callable[[str], Any]) -> None:
        """Queue a BOOKMARK for every watcher that asked for them;
        ``empty_object(kind)`` makes the event's object."""
        events: dict[str, WatchEvent] = {}
        lagged: list[Watcher] = []
        for w in self._bookmarkers:
            event = events.get(w.kind)
            if event is None:
                event = events[w.kind] = WatchEvent("BOOKMARK", empty_object(w.kind))
            if w.subscription.push_nowait(event):
                if w.tracked:
                    w.outstanding += 1
                    if self._tracker is not None:
                        self._tracker.add(1)
            else:
                lagged.append(w)
        for w in lagged:
            self.remove(w)

    def close_all(self) -> int:
        """End every watch: each reader gets what is queued, then the end of the stream."""
        watchers = [w for kw in self._kinds.values() for w in _all(kw)]
        for w in watchers:
            w.subscription.close()
            kw = self._kinds.get(w.kind)
            if kw is not None:
                kw.discard(w)
        self._kinds.clear()
        self._bookmarkers.clear()
        self.count = 0
        return len(watchers)


def _all(kw: _KindWatchers) -> Iterable[Watcher]:
    yield from kw.everyone
    for bucket in kw.by_namespace.values():
        yield from bucket
    for bucket in kw.by_node.values():
        yield from bucket


class WatchStream:
    """What ``async with store.watch(...) as events`` gives: iterate it for events, or
    call :meth:`receive_batch` to take everything queued in one wake-up.

    The initial events (synthetic ADDED, or the replay from a resourceVersion) come
    first; they are held here rather than in the bounded buffer, so a large initial
    state never counts as lag. Iteration ends when the store closes the watch; a reader
    that fell too far behind gets :class:`actors.Lagged`.
    """

    def __init__(
        self,
        watcher: Watcher,
        initial: list[WatchEvent],
        hub: WatchHub,
        tracker: WorkTracker | None,
    ) -> None:
        self._watcher = watcher
        self._subscription = watcher.subscription
        self._initial = initial
        self._buffer: deque[WatchEvent] = deque()
        self._hub = hub
        self._tracker = tracker

    async def receive_batch(self) -> list[WatchEvent]:
        """Wait for at least one event, then return every event queued, oldest first.

        Raises:
            trio.EndOfChannel: the watch was closed and everything was received.
            actors.Lagged: the reader fell too far behind; the watch is over.
        """
        if self._buffer:
            await trio.lowlevel.checkpoint()
            batch = list(self._buffer)
            self._buffer.clear()
        elif self._initial:
            await trio.lowlevel.checkpoint()
            batch, self._initial = self._initial, []
        else:
            batch = await self._subscription.receive_batch()
        self._delivered(len(batch))
        return batch

    def _delivered(self, n: int) -> None:
        w = self._watcher
        if w.outstanding:
            n = min(n, w.outstanding)
            w.outstanding -= n
            if self._tracker is not None:
                self._tracker.done(n)

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        buffer = self._buffer
        if buffer:
            # Part of a batch already received in one wake-up: hand it out without
            # another trip through the scheduler (but honour cancellation).
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            try:
                if self._initial:
                    await trio.lowlevel.checkpoint()
                    buffer.extend(self._initial)
                    self._initial = []
                else:
                    buffer.extend(await self._subscription.receive_batch())
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        self._delivered(1)
        return buffer.popleft()

    def close(self) -> None:
        """Stop watching (idempotent); what is queued is dropped."""
        self._hub.remove(self._watcher)
        self._subscription.close()
        self._initial = []
        self._buffer.clear()


class WatchContext:
    """The async context manager :meth:`Store.watch` returns; opening it registers the
    watcher, closing it unregisters."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self._stream: WatchStream | None = None

    async def __aenter__(self) -> WatchStream:
        self._stream = await self._opener()
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
