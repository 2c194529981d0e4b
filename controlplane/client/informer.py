"""An informer: list, then watch, into an indexed cache, calling handlers on each change.

This is client-go's reflector + shared informer (``tools/cache``) as one trio actor:

1. **list** the kind (with the informer's namespace and selectors), replace the cache,
   and tell the handlers what changed (see *Re-list* below); the first list marks the
   informer *synced*;
2. **watch** from the list's resourceVersion with bookmarks, draining the stream in
   batches (``receive_batch``); each event is applied to the cache and then passed to
   the handlers, and its resourceVersion (bookmarks included) becomes the informer's;
3. when the watch ends:

   - closed by the server (``close_watches``, store restart): re-watch from the last
     resourceVersion, no re-list;
   - ``errors.Gone`` (history compacted past our resourceVersion): re-list;
   - ``actors.Lagged`` (we fell behind the store's buffer): re-watch from the last
     resourceVersion. Every event up to it was applied, so nothing is lost; the store
     replays the rest from its history, and if that is gone too the re-watch gets Gone
     and we re-list. Cheaper than a re-list when the history still covers us;
   - ``errors.TooManyRequests`` / ``errors.Timeout`` (from list or watch): wait, then
     retry the same step. Waits start at 0.8 s and double up to 30 s, starting over once
     the informer ran 2 minutes without such an error (client-go reflector defaults,
     without jitter so runs replay). A Gone right after a fresh list is retried the
     same way (it would otherwise spin);
   - anything else propagates: the supervisor restarts the informer, whose next ``run``
     re-lists against the cache it kept, so handlers still see only the differences.

**Re-list.** The new list replaces the cache in one step; then handlers get the
difference against the previous content: ``on_add`` for new keys, ``on_update(old, new)``
for keys whose resourceVersion changed (also when the object was deleted and re-created
under the same name while we were not watching), and ``on_delete(last_known)`` for keys
that are gone. A deletion seen only through a re-list is reported with the *last object
the informer knew*, not its true final state (client-go wraps it in
``DeletedFinalStateUnknown``; here handlers need no unwrapping, but must not rely on a
deleted object's status being final).

**Handlers** are sync callables, run in registration order, after the cache was updated:
a worker that reads the cache sees at least the state of the event that enqueued it.
They must be cheap (enqueue a key); an exception from a handler crashes the informer.

**Work accounting.** With a ``tracker``, the informer counts one unit of work whenever it
is not waiting on an established watch: while listing, (re)connecting, backing off and
applying a batch. Handlers enqueue into work queues before that unit is released, so the
tracker never reads idle between "event received" and "key queued". Events still sitting
in the watch stream's buffer are not visible to the informer: the store counts those with
the same tracker; events a stream holds outside that buffer (a replay from a
resourceVersion) keep the informer busy only if the stream exposes an optional
``pending`` count (see ``WatchStream`` in ``protocol``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

import attrs
import structlog
import trio

from actors import Backoff, Lagged
from controlplane import errors
from controlplane.api.meta import object_key
from controlplane.client.cache import Cache, IndexFunc
from controlplane.client.protocol import Client, KindLike, WatchEvent
from controlplane.client.workqueue import WorkQueue, WorkTrackerLike

__all__ = ["RELIST_BACKOFF", "EventHandler", "Informer", "InformerStatistics"]

log = structlog.get_logger(__name__)

#: client-go reflector: 800 ms doubling to 30 s, reset after 2 minutes without errors.
RELIST_BACKOFF = Backoff(initial=0.8, factor=2.0, maximum=30.0, reset_after=120.0)

#: Errors worth retrying after a wait; anything else propagates.
TRANSIENT_ERRORS: tuple[type[errors.ApiError], ...] = (errors.TooManyRequests, errors.Timeout)


@attrs.frozen
class EventHandler:
    """A registered set of callbacks; pass it to ``Informer.remove_event_handler``."""

    on_add: Callable[[Any], None] | None = None
    on_update: Callable[[Any, Any], None] | None = None
    on_delete: Callable[[Any], None] | None = None


@attrs.frozen
class InformerStatistics:
    """A snapshot of an informer.

    ``lists``: completed lists (the first one plus re-lists); ``watches``: watches opened;
    ``events``: non-bookmark events applied; ``retries``: waits after transient errors.
    """

    items: int
    synced: bool
    resource_version: str | None
    lists: int
    watches: int
    events: int
    retries: int


class Informer:
    """List-and-watch one kind into a :class:`~controlplane.client.cache.Cache`.

    Args:
        client: anything implementing the ``Client`` protocol.
        kind: a kind class or name (``"Pod"``); passed to the client as given.
        namespace: watch only this namespace (None: all).
        label_selector, field_selector: passed to list and watch.
        indexers: extra cache indexes, ``{name: fn(obj) -> iterable of str}``.
        tracker: optional ``actors.WorkTracker`` (see the module docstring).
        backoff: the transient-error backoff; defaults to :data:`RELIST_BACKOFF`.

    Start it with ``await nursery.start(informer.run)``: that returns once the first list
    is in the cache. Other tasks can ``await informer.wait_synced()``.
    """

    def __init__(
        self,
        client: Client,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        tracker: WorkTrackerLike | None = None,
        backoff: Backoff = RELIST_BACKOFF,
    ) -> None:
        self._client = client
        self.kind = kind
        self.kind_name: str = kind if isinstance(kind, str) else kind.kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache = Cache(indexers)
        self._tracker = tracker
        self._backoff = backoff
        self._handlers: list[EventHandler] = []
        #: handlers whose replay waits for :meth:`replays_deferred` to end
        self._deferred: list[EventHandler] | None = None
        self._synced = trio.Event()
        self._resource_version: str | None = None
        self._running = False
        self._busy = False
        self._delivered = False
        self._lists = 0
        self._watches = 0
        self._events = 0
        self._retries = 0
        self._log = log.bind(component="informer", kind=self.kind_name, namespace=namespace)

    # -- state -----------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """Whether the first list is in the cache (stays true across re-lists)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Wait until the first list is in the cache (returns at once if it is)."""
        await self._synced.wait()

    @property
    def resource_version(self) -> str | None:
        """The resourceVersion the cache reflects (None before the first list)."""
        return self._resource_version

    def statistics(self) -> InformerStatistics:
        return InformerStatistics(
            items=len(self.cache),
            synced=self.has_synced,
            resource_version=self._resource_version,
            lists=self._lists,
            watches=self._watches,
            events=self._events,
            retries=self._retries,
        )

    # -- handlers --------------------------------------------------------------------

    def add_event_handler(
        self,
        on_add: Callable[[Any], None] | None = None,
        on_update: Callable[[Any, Any], None] | None = None,
        on_delete: Callable[[Any], None] | None = None,
    ) -> EventHandler:
        """Register callbacks; they run after every later change, in registration order.

        Like client-go, a handler added after objects are cached first gets ``on_add`` for
        each of them, so it never misses what happened before it registered.
        """
        handler = EventHandler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self._deferred is not None:
            self._deferred.append(handler)
        else:
            self._replay(handler)
        return handler

    def _replay(self, handler: EventHandler) -> None:
        if handler.on_add is not None and handler in self._handlers:
            for obj in self.cache:
                handler.on_add(obj)

    @contextlib.contextmanager
    def replays_deferred(self) -> Iterator[None]:
        """Hold back the adds a new handler gets for cached objects until the block ends.

        For a controller built while the informer already runs (a restart): it registers
        handlers in its constructor, and replaying into a half-built object would fail.
        client-go delivers those adds asynchronously, after the constructor returned,
        which is what this models.
        """
        if self._deferred is not None:
            raise RuntimeError(f"informer for {self.kind_name}: replays are already deferred")
        self._deferred = deferred = []
        try:
            yield
        finally:
            self._deferred = None
        for handler in deferred:
            self._replay(handler)

    @property
    def handlers(self) -> tuple[EventHandler, ...]:
        """The registered handlers, in registration order."""
        return tuple(self._handlers)

    def remove_event_handler(self, handler: EventHandler) -> None:
        """Unregister ``handler`` (no-op if it is not registered)."""
        if handler in self._handlers:
            self._handlers.remove(handler)

    def enqueue_into(
        self, queue: WorkQueue[Any], key_fn: Callable[[Any], Hashable] = object_key
    ) -> EventHandler:
        """Feed ``key_fn(obj)`` of every added, updated (new object) and deleted object
        into ``queue``. The level-triggered way: workers re-read the cache by key."""

        def on_add(obj: Any) -> None:
            queue.add(key_fn(obj))

        def on_update(old: Any, new: Any) -> None:
            queue.add(key_fn(new))

        return self.add_event_handler(on_add, on_update, on_add)

    # -- the actor -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """List and watch until cancelled; ``task_status.started()`` once synced.

        Raises whatever non-transient error the client raises (see the module docstring).

        Raises:
            RuntimeError: the informer is already running.
        """
        if self._running:
            raise RuntimeError(f"informer for {self.kind_name} is already running")
        self._running = True
        self._set_busy(True)
        try:
            await self._run(task_status)
        finally:
            self._set_busy(False)
            self._running = False

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        need_list = True
        # True from a list until the first watch after it delivers something or ends:
        # Gone in that window means the list's own revision is already gone.
        fresh_list = False
        delay: float | None = None
        healthy_since = trio.current_time()
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list, fresh_list = False, True
                    if not started:
                        task_status.started()
                        started = True
                self._delivered = False
                await self._watch()
                fresh_list = False
                self._log.debug(
                    "informer_rewatch",
                    reason="watch_closed",
                    resource_version=self._resource_version,
                )
                continue
            except errors.Gone as exc:
                need_list = True
                if not fresh_list or self._delivered:
                    self._log.info("informer_relist", reason="gone", error=str(exc))
                    continue
                error: errors.ApiError = exc  # Gone right after a list: back off
            except Lagged as exc:
                fresh_list = False
                self._log.info(
                    "informer_rewatch",
                    reason="lagged",
                    error=str(exc),
                    resource_version=self._resource_version,
                )
                continue
            except TRANSIENT_ERRORS as exc:
                error = exc
            now = trio.current_time()
            delay = self._backoff.next_delay(delay, now - healthy_since)
            self._retries += 1
            self._log.info(
                "informer_backoff",
                reason=error.reason,
                error=str(error),
                delay=delay,
                relist=need_list,
            )
            await trio.sleep(delay)
            healthy_since = trio.current_time()

    async def _list(self) -> None:
        result = await self._client.list(
            self.kind,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        first = self._lists == 0
        self._lists += 1
        previous = self.cache.replace(result.items)
        self._resource_version = result.resource_version
        self._synced.set()
        self._log.debug(
            "informer_listed",
            items=len(result.items),
            resource_version=result.resource_version,
            first=first,
        )
        self._notify_replace(previous, result.items)

    async def _watch(self) -> None:
        """Watch from the current resourceVersion; return when the server closes it."""
        async with self._client.watch(
            self.kind,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=self._resource_version,
            allow_bookmarks=True,
        ) as stream:
            self._watches += 1
            while True:
                # Idle only when the stream has nothing in hand. Events in the stream's
                # bounded buffer are counted by the store; a stream that holds events
                # outside it (a replay) may say so with an optional ``pending`` count.
                self._set_busy(getattr(stream, "pending", 0) > 0)
                try:
                    batch = await stream.receive_batch()
                except trio.EndOfChannel:
                    self._set_busy(True)
                    return
                except trio.Cancelled:
                    raise  # stopping: run() releases the count
                except BaseException:
                    self._set_busy(True)  # Lagged, Gone...: the caller recovers
                    raise
                self._set_busy(True)
                self._delivered = True
                self._apply(batch)

    # -- applying changes ------------------------------------------------------------

    def _apply(self, batch: Iterable[WatchEvent]) -> None:
        cache = self.cache
        for event in batch:
            obj = event.object
            rv = obj.metadata.resource_version
            if event.type == "BOOKMARK":
                self._resource_version = rv
                continue
            self._events += 1
            if event.type == "DELETED":
                cache.remove(object_key(obj))
                self._resource_version = rv
                self._notify_delete(obj)
            else:  # ADDED or MODIFIED: a selector watch may turn either into the other
                old = cache.upsert(obj)
                self._resource_version = rv
                if old is None:
                    self._notify_add(obj)
                else:
                    self._notify_update(old, obj)

    def _notify_replace(self, previous: dict[str, Any], items: Iterable[Any]) -> None:
        if not self._handlers:
            return
        for obj in items:
            old = previous.pop(object_key(obj), None)
            if old is None:
                self._notify_add(obj)
            elif old.metadata.resource_version != obj.metadata.resource_version:
                self._notify_update(old, obj)
        for old in previous.values():
            self._notify_delete(old)

    def _notify_add(self, obj: Any) -> None:
        for handler in tuple(self._handlers):
            if handler.on_add is not None:
                handler.on_add(obj)

    def _notify_update(self, old: Any, new: Any) -> None:
        for handler in tuple(self._handlers):
            if handler.on_update is not None:
                handler.on_update(old, new)

    def _notify_delete(self, obj: Any) -> None:
        for handler in tuple(self._handlers):
            if handler.on_delete is not None:
                handler.on_delete(obj)

    # -- accounting ------------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        if busy == self._busy:
            return
        self._busy = busy
        if self._tracker is not None:
            if busy:
                self._tracker.add(1)
            else:
                self._tracker.done(1)
