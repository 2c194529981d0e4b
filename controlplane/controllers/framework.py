"""What every controller is built from: shared informers, a work queue, a recorder.

A controller here is what a controller-runtime reconciler is: it registers event handlers
on :class:`SharedInformers` that turn changes into keys on its own
:class:`~controlplane.client.workqueue.WorkQueue`, and a ``sync(key)`` that reads the
caches, decides in a plain function what must change, and writes that through the client.
:func:`run_controller` runs the worker loop around ``sync``:

- ``sync`` returns normally: the key's failure history is forgotten; a float return
  value re-queues the key after that many seconds (a status that must be re-checked
  later: minReadySeconds, a progress deadline);
- ``sync`` raises an ``errors.ApiError`` (a Conflict with a concurrent writer, a
  TooManyRequests from chaos): logged, and the key is re-queued with the queue's rate
  limiter (5 ms doubling to 1000 s, as client-go's default controller rate limiter);
- anything else is a bug: it propagates, and the supervisor restarts the whole
  controller manager (as a panic restarts kube-controller-manager), whose controllers
  re-list and reconcile every object again — they are level-triggered.

One worker per controller: syncs of different keys never interleave, so a run replays
identically from a seed (kube-controller-manager runs 5 per controller; here writes are
in-process and rarely wait, so more workers would buy interleavings, not throughput).

Informers are shared, as client-go's ``SharedInformerFactory``: one Pod informer serves
the ReplicaSet, Job, garbage-collector and quota controllers. Each controller adds the
indexes it reads (``owner_uid`` and ``orphan_namespace`` are built in).
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import attrs
import structlog
import trio

from controlplane import errors
from controlplane.api.kinds import resolve_kind
from controlplane.api.labels import Selector
from controlplane.api.meta import LabelSelector
from controlplane.client.cache import IndexFunc
from controlplane.client.informer import Informer
from controlplane.client.protocol import Client, KindLike
from controlplane.client.workqueue import WorkQueue, WorkTrackerLike
from controlplane.events import EventRecorder

__all__ = [
    "ORPHAN_INDEX",
    "OWNER_UID_INDEX",
    "Controller",
    "ControllerContext",
    "ControllerFactory",
    "SharedInformers",
    "compiled_selector",
    "controller_uid",
    "run_controller",
]

log = structlog.get_logger(__name__)

#: ``metadata.ownerReferences[*].uid`` → keys: what an owner owns (controller or not).
OWNER_UID_INDEX = "owner_uid"
#: ``metadata.namespace`` → keys of objects without a controller (candidates for adoption).
ORPHAN_INDEX = "orphan_namespace"


def owner_uids(obj: Any) -> Iterable[str]:
    return [ref.uid for ref in obj.metadata.owner_references]


def orphan_namespace(obj: Any) -> Iterable[str]:
    return [] if obj.metadata.controller_ref() is not None else [obj.metadata.namespace]


@functools.lru_cache(maxsize=4096)
def compiled_selector(selector: LabelSelector | None) -> Selector:
    """``selector`` compiled once (selectors are frozen, and read on every sync)."""
    return Selector.from_label_selector(selector)


def controller_uid(obj: Any) -> str | None:
    """The uid of ``obj``'s controller (the owner reference with ``controller: true``)."""
    ref = obj.metadata.controller_ref()
    return ref.uid if ref is not None else None


class SharedInformers:
    """One informer per kind, shared by every controller that asks for it.

    Ask for informers (and add handlers and indexes) before :meth:`run`; ``run`` starts
    them all and returns once every cache is synced.
    """

    def __init__(self, client: Client, *, tracker: WorkTrackerLike | None = None) -> None:
        self._client = client
        self._tracker = tracker
        self._informers: dict[str, Informer] = {}
        self._started = False

    def informer(self, kind: KindLike, *, indexers: dict[str, IndexFunc] | None = None) -> Informer:
        """The informer for ``kind`` (all namespaces), with ``indexers`` added.

        Raises:
            RuntimeError: informers are already running (a new one would never start).
            ValueError: an index name is taken by another function.
        """
        name = resolve_kind(kind).kind
        informer = self._informers.get(name)
        if informer is None:
            if self._started:
                raise RuntimeError(f"no informer for {name}: informers are already running")
            informer = Informer(self._client, name, tracker=self._tracker)
            informer.cache.add_indexer(OWNER_UID_INDEX, owner_uids)
            informer.cache.add_indexer(ORPHAN_INDEX, orphan_namespace)
            self._informers[name] = informer
        for index_name, fn in (indexers or {}).items():
            informer.cache.add_indexer(index_name, fn)
        return informer

    def __iter__(self) -> Any:
        return iter(self._informers.values())

    @contextlib.contextmanager
    def replays_deferred(self) -> Iterator[None]:
        """Every informer's :meth:`~controlplane.client.informer.Informer.replays_deferred`
        at once: for building a controller while the informers run."""
        with contextlib.ExitStack() as stack:
            for informer in self._informers.values():
                stack.enter_context(informer.replays_deferred())
            yield

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every informer; ``task_status.started()`` once all are synced."""
        self._started = True
        async with trio.open_nursery() as nursery:
            for informer in self._informers.values():
                await nursery.start(informer.run)
            task_status.started()


@attrs.frozen(kw_only=True)
class ControllerContext:
    """What a controller is built with (the composition root passes it in)."""

    client: Client
    informers: SharedInformers
    queue: WorkQueue[str]
    events: EventRecorder
    rng: random.Random
    log: Any


class Controller(Protocol):
    """A controller: built from a :class:`ControllerContext` (where it registers its
    handlers), then driven by :func:`run_controller`."""

    name: str

    async def sync(self, key: str) -> float | None:
        """Reconcile the object ``key`` names; return seconds to re-check it, or None."""
        ...


#: ``name`` and a constructor taking the context.
ControllerFactory = tuple[str, Callable[[ControllerContext], Controller]]


async def run_controller(controller: Controller, context: ControllerContext) -> None:
    """The worker loop (see the module docstring). Runs until cancelled."""
    queue = context.queue
    logger = context.log
    while True:
        key = await queue.get()
        try:
            try:
                requeue_after = await controller.sync(key)
            except errors.ApiError as exc:
                logger.info("sync_failed", key=key, reason=exc.reason, error=str(exc))
                queue.add_rate_limited(key)
                continue
            queue.forget(key)
            if requeue_after is not None:
                queue.add_after(key, requeue_after)
        finally:
            queue.done(key)
