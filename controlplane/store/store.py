"""The store: the apiserver and etcd in one object.

CRUD calls are direct method calls: each async method passes one checkpoint (through
the fault points when faults are injected) and then does its work synchronously, so a
write is atomic -- the revision, the stored object, the history, the digest and every
watcher's buffer change together or not at all. :meth:`Store.run` is the actor that owns
the periodic work (bookmarks, age-based history compaction).

**Checkpoints.** Every request is a cancellation point, but only one request in
:data:`SCHEDULE_EVERY` is also a schedule point (yields to other tasks). A full trio
checkpoint costs ~10 µs on these machines -- half the 20 µs budget of a write at 50,000
creates/s -- while a cancellation check costs ~0.6 µs. A caller in a tight write loop
still lets every other task run after at most ``SCHEDULE_EVERY`` requests, and the
choice depends on nothing but the count of requests, so runs replay exactly. (This
bends trio's "every async call is a schedule point" convention on purpose; under
injected faults every request yields.)

Kubernetes behaviour kept here (see also ``strategy`` and ``admission``):

- a namespaced object whose ``metadata.namespace`` is empty is put in ``"default"``
  (kubectl and client-go default it; the store does it so every caller agrees); the
  same for ``get``/``update``/``delete`` with ``namespace=""``. For ``list`` and
  ``watch``, ``None`` and ``""`` both mean all namespaces (client-go's ``NamespaceAll``);
- create ignores a client-set ``resourceVersion``/``uid``/``creationTimestamp`` and
  resets status for kinds with a status subresource (pods start ``Pending``; nodes keep
  theirs); namespaces get the ``kubernetes`` finalizer;
- ``update`` keeps the stored status (status subresource), uid, creationTimestamp,
  generation and deletion fields; ``update_status`` changes only status; an update that
  changes nothing writes no revision and returns the stored object;
- a namespace's ``spec.finalizers`` change only through :meth:`Store.finalize_namespace`
  (the ``/finalize`` subresource); once a terminating namespace has no finalizers left it
  is removed;
- a watch from a resourceVersion newer than the store's fails at once with Timeout (the
  apiserver waits up to 3 s first).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import attrs
import structlog
import trio

from actors import Subscription, WorkTracker
from controlplane import errors
from controlplane.api.fields import FieldSelector, parse_field_selector
from controlplane.api.kinds import KINDS, KindInfo, resolve_kind
from controlplane.api.labels import Selector, SelectorError, parse_selector
from controlplane.api.meta import ObjectMeta
from controlplane.client.protocol import ObjectList, WatchEvent
from controlplane.clock import to_wall
from controlplane.errors import Cause
from controlplane.store import strategy
from controlplane.store._copy import replacer
from controlplane.store.admission import Admission, AdmissionStep
from controlplane.store.digest import HistoryDigest
from controlplane.store.faults import Faults
from controlplane.store.history import Change, History
from controlplane.store.naming import generate_name, new_uid
from controlplane.store.watch import (
    NODE_FIELD,
    WatchContext,
    Watcher,
    WatchHub,
    WatchStream,
    node_of,
    stamp,
)

__all__ = ["Store", "StoreStatistics"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
KindLike = str | type[Any]

_CREATE_META = (
    "name",
    "namespace",
    "uid",
    "resource_version",
    "creation_timestamp",
    "generation",
    "deletion_timestamp",
    "deletion_grace_period_seconds",
)
# What an update keeps from the stored object whatever the client sent.
_UPDATE_META = (
    "name",
    "namespace",
    "uid",
    "resource_version",
    "creation_timestamp",
    "generation",
    "deletion_timestamp",
    "deletion_grace_period_seconds",
)
_STAMP_META = ("resource_version", "generation")


#: One request in this many yields to the scheduler (see "Checkpoints" above).
SCHEDULE_EVERY = 16


@attrs.frozen
class StoreStatistics:
    revision: int
    objects: int
    watchers: int
    history: int
    history_floor: int


class Store:
    """The in-process apiserver + etcd.

    Args:
        rng: the store's random stream (generated names, uids).
        fault_rng: the stream for fault draws (default: one derived from ``rng``).
        history_limit: how many changes the watch history keeps (etcd keeps ~5 min).
        history_max_age: seconds a change is kept for watches that resume.
        watch_capacity: events a watcher may fall behind before it is closed with
            ``actors.Lagged``.
        bookmark_interval: seconds between BOOKMARK events to watchers that asked.
        event_ttl: seconds an Event lives after its last write (the apiserver's
            ``--event-ttl``, 1 h), so a long run's Events do not pile up forever.
        admission_steps: pluggable :class:`AdmissionStep` s, run after validation.
        work_tracker: if given, every queued watch event counts as outstanding work
            until the watcher has received it (for a harness's ``settle()``).
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        fault_rng: random.Random | None = None,
        history_limit: int = 50_000,
        history_max_age: float = 300.0,
        watch_capacity: int = 10_000,
        bookmark_interval: float = 60.0,
        event_ttl: float = 3600.0,
        admission_steps: Sequence[AdmissionStep] = (),
        work_tracker: WorkTracker | None = None,
    ) -> None:
        self._rng = rng
        self.faults = Faults(fault_rng or random.Random(rng.getrandbits(64)))
        self._history = History(limit=history_limit, max_age=history_max_age)
        self._watch_capacity = watch_capacity
        self.bookmark_interval = bookmark_interval
        self._tracker = work_tracker
        self._hub = WatchHub(tracker=work_tracker)
        self._admission = Admission(self._namespace_phase, admission_steps)
        self._digest = HistoryDigest()
        self._revision = 0
        #: kind -> namespace ("" if cluster-scoped) -> name -> object
        self._objects: dict[str, dict[str, dict[str, Any]]] = {i.kind: {} for i in KINDS}
        #: node name ("" = unscheduled) -> (namespace, name) -> pod
        self._pods_by_node: dict[str, dict[tuple[str, str], Any]] = {}
        self._changed: trio.Event | None = None
        #: called synchronously with every Change after it is committed (see add_observer)
        self._observers: list[Callable[[Change], None]] = []
        #: (expiry, namespace, name, resourceVersion) per Event write, in expiry order
        self.event_ttl = event_ttl
        self._event_expiry: deque[tuple[float, str, str, str]] = deque()
        self._event_written = trio.Event()
        self._requests = 0
        self._wall_second = -1
        self._wall: datetime = to_wall(0)
        self._log = log.bind(component="store")

    # ----- the actor -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the store's timers (bookmarks, history expiry) until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._bookmark_loop)
            nursery.start_soon(self._expiry_loop)
            nursery.start_soon(self._event_ttl_loop)
            task_status.started()

    async def _bookmark_loop(self) -> None:
        # One timer for every watcher, not a sleep per watcher.
        while True:
            await trio.sleep(self.bookmark_interval)
            self.bookmark_now()

    async def _expiry_loop(self) -> None:
        history = self._history
        while True:
            now = trio.current_time()
            next_expiry = history.expire(now)
            await trio.sleep_until(
                next_expiry if next_expiry is not None else now + history.max_age
            )

    async def _event_ttl_loop(self) -> None:
        """Delete each Event ``event_ttl`` seconds after its last write (etcd leases in
        Kubernetes). One timer for all Events: writes come in expiry order, since the TTL
        is the same for every one; an entry superseded by a later write is skipped."""
        queue = self._event_expiry
        while True:
            if not queue:
                self._event_written = trio.Event()
                await self._event_written.wait()
                continue
            expiry, namespace, name, resource_version = queue[0]
            await trio.sleep_until(expiry)
            queue.popleft()
            stored = self._objects["Event"].get(namespace, {}).get(name)
            if stored is not None and stored.metadata.resource_version == resource_version:
                now, _ = self._now()
                revision = self._revision = self._revision + 1
                self._remove(
                    "Event", namespace, stored, stamp(stored, str(revision)), revision, now
                )

    # ----- reads ---------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision of the latest write (0 before any)."""
        return self._revision

    async def get(self, kind: KindLike, name: str, *, namespace: str = "") -> Any:
        """The stored object.

        Raises:
            errors.NotFound: there is none. errors.BadRequest: unknown kind.
        """
        await self._checkpoint("get", kind, name, namespace)
        info = resolve_kind(kind)
        ns = self._namespace_of(info, namespace)
        obj = self._objects[info.kind].get(ns, {}).get(name)
        if obj is None:
            raise self._not_found(info, name, ns)
        return obj

    def get_nowait(self, kind: KindLike, name: str, *, namespace: str = "") -> Any | None:
        """The stored object, or None. Does not block (for harnesses and tests)."""
        info = resolve_kind(kind)
        ns = self._namespace_of(info, namespace)
        return self._objects[info.kind].get(ns, {}).get(name)

    async def list(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        """The matching objects sorted by namespace and name, and the revision they were
        read at (watch from it to see every later change).

        Raises:
            errors.BadRequest: unknown kind or a selector that does not parse.
        """
        await self._checkpoint("list", kind, "", namespace or "")
        items = self._select(kind, namespace, label_selector, field_selector)
        return ObjectList(tuple(items), str(self._revision))

    def list_nowait(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Any]:
        """Like :meth:`list`, without blocking and without the revision."""
        return self._select(kind, namespace, label_selector, field_selector)

    async def wait_changed(self, after_revision: int) -> int:
        """Wait until the store's revision is past ``after_revision``; return it.

        Returns at once (after a checkpoint) if it already is. No polling: every write
        wakes the waiters.
        """
        if self._revision > after_revision:
            await trio.lowlevel.checkpoint()
            return self._revision
        while self._revision <= after_revision:
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()
        return self._revision

    async def wait_until(self, predicate: Callable[[], T]) -> T:
        """Wait until ``predicate()`` returns something truthy; return it. It is checked
        now and after every write -- never on a timer -- so it should read current state
        (``get_nowait``, ``list_nowait``). Bound the wait with a trio cancel scope."""
        while True:
            revision = self._revision
            result = predicate()
            if result:
                return result
            await self.wait_changed(revision)

    # ----- writes --------------------------------------------------------------------

    async def create(self, obj: T) -> T:
        """Store a new object; return it as stored (name, uid, resourceVersion...).

        Raises:
            errors.AlreadyExists, errors.Invalid, errors.NotFound (namespace),
            errors.Forbidden (terminating namespace), errors.BadRequest, or what an
            admission step raises. A refused create changes nothing.
        """
        meta = obj.metadata  # type: ignore[attr-defined]
        await self._checkpoint("create", type(obj), meta.name or meta.generate_name, meta.namespace)
        return self._create(obj)  # type: ignore[no-any-return]

    async def update(self, obj: T) -> T:
        """Replace an object's spec and metadata (its status too for kinds without a
        status subresource). A non-empty ``metadata.resource_version`` must be the
        stored one; an empty one updates unconditionally.

        Raises:
            errors.NotFound, errors.Conflict (stale resourceVersion or other uid),
            errors.Invalid, or what an admission step raises.
        """
        meta = obj.metadata  # type: ignore[attr-defined]
        await self._checkpoint("update", type(obj), meta.name, meta.namespace)
        return self._update(obj, "update")  # type: ignore[no-any-return]

    async def update_status(self, obj: T) -> T:
        """Replace only an object's status (the ``/status`` subresource).

        Raises: as :meth:`update`; errors.NotFound for a kind without status.
        """
        meta = obj.metadata  # type: ignore[attr-defined]
        await self._checkpoint("update_status", type(obj), meta.name, meta.namespace)
        return self._update(obj, "update_status")  # type: ignore[no-any-return]

    async def bind(
        self,
        name: str,
        node_name: str,
        *,
        namespace: str = "default",
        uid: str | None = None,
    ) -> Any:
        """Assign a pod to a node (the ``pods/binding`` subresource the scheduler uses):
        sets ``spec.nodeName`` and the ``PodScheduled`` condition. Pod spec updates may
        not change ``nodeName``; this is the only way to bind.

        Raises:
            errors.NotFound; errors.Conflict if the pod is already assigned, is being
            deleted, or its uid is not ``uid``.
        """
        await self._checkpoint("bind", "Pod", name, namespace)
        info = resolve_kind("Pod")
        ns, stored = self._stored(info, name, namespace)
        self._check_preconditions(info, stored, uid, None)
        now, wall = self._now()
        new = strategy.bind_pod(stored, node_name, wall)
        return self._commit_update(info, ns, stored, new, stored.metadata.generation, now)

    async def finalize_namespace(self, namespace: Any) -> Any:
        """Set a namespace's ``spec.finalizers`` (the ``/finalize`` subresource).

        A terminating namespace left with no finalizers is removed (DELETED); the
        removed state is returned.

        Raises: as :meth:`update`.
        """
        await self._checkpoint("finalize", "Namespace", namespace.metadata.name, "")
        return self._update(namespace, "finalize")

    async def delete(
        self,
        kind: KindLike,
        name: str,
        *,
        namespace: str = "",
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions_uid: str | None = None,
        preconditions_resource_version: str | None = None,
    ) -> Any:
        """Delete an object, as Kubernetes does: remove it, or only mark it.

        Marked (``deletionTimestamp`` set, MODIFIED) when it has finalizers (including
        those ``propagation_policy`` adds: Foreground -> ``foregroundDeletion``, Orphan
        -> ``orphan``), when it is a pod bound to a node and not terminated (grace from
        the call, else ``spec.terminationGracePeriodSeconds``, else 30 s; a later
        delete may only shorten it, and grace 0 removes it), or a namespace (phase
        Terminating until its finalizers are gone). Otherwise removed (DELETED).

        Returns the object as it now stands, or its last state if removed.

        Raises:
            errors.NotFound; errors.Conflict if a precondition fails;
            errors.BadRequest for an unknown propagation policy.
        """
        await self._checkpoint("delete", kind, name, namespace)
        return self._delete(
            kind,
            name,
            namespace,
            grace_period_seconds,
            propagation_policy,
            preconditions_uid,
            preconditions_resource_version,
        )

    # ----- watch ---------------------------------------------------------------------

    def watch(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
        track_work: bool = False,
    ) -> WatchContext:
        """``async with store.watch("Pod") as events:`` -- every later change, in order.

        ``resource_version`` None or ``"0"``: first a synthetic ADDED for every matching
        object, then live changes. A revision: the retained changes after it, then live
        changes, with nothing missed or repeated in between.

        Raises (on entering):
            errors.Gone: the revision is older than the retained history (re-list).
            errors.Timeout: the revision is newer than the store's.
            errors.BadRequest: unknown kind, bad selector or resourceVersion.

        ``track_work``: events queued for this watch count on the store's work tracker
        until read (what ``cluster.settle()`` waits on); components set it.
        """

        async def open_() -> WatchStream:
            await self._checkpoint("watch", kind, "", namespace or "")
            return self._open_watch(
                kind,
                namespace,
                label_selector,
                field_selector,
                resource_version,
                allow_bookmarks,
                track_work,
            )

        return WatchContext(open_)

    def bookmark_now(self) -> None:
        """Send a BOOKMARK at the current revision to every watcher that asked."""
        revision = str(self._revision)

        def empty(kind: str) -> Any:
            return resolve_kind(kind).cls(metadata=ObjectMeta(resource_version=revision))

        self._hub.bookmark(empty)

    def close_watches(self) -> int:
        """End every open watch (each drains what is queued, then iteration ends);
        return how many. Clients re-watch from their last resourceVersion."""
        closed = self._hub.close_all()
        self._log.debug("watches_closed", count=closed)
        return closed

    def compact(self) -> None:
        """Forget all retained history: a watch from any older revision gets Gone."""
        self._history.compact(self._revision)
        self._log.debug("history_compacted", revision=self._revision)

    # ----- admission and introspection -----------------------------------------------

    def update_status_nowait(self, obj: T) -> T:
        """:meth:`update_status` without the checkpoint, for an admission step that must
        change another object in the same atomic write (ResourceQuota charging
        ``status.used`` from its ``committed`` hook). Raises as :meth:`update_status`."""
        return self._update(obj, "update_status")  # type: ignore[no-any-return]

    def add_admission_step(self, step: AdmissionStep) -> None:
        """Run ``step`` on every later create and update, after validation."""
        self._admission.add_step(step)

    def add_observer(self, observer: Callable[[Change], None]) -> None:
        """Call ``observer(change)`` synchronously after every committed write, in
        revision order, after the watchers got it (for invariant checkers). It runs
        inside the write path: it must be cheap, must not block, and must not raise --
        an exception would escape from the write that triggered it."""
        self._observers.append(observer)

    def remove_observer(self, observer: Callable[[Change], None]) -> None:
        """Stop calling ``observer``; a no-op if it was not added."""
        if observer in self._observers:
            self._observers.remove(observer)

    def history_digest(self) -> str:
        """Hex digest of every write so far: same seed + workload, same digest."""
        return self._digest.hexdigest()

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            revision=self._revision,
            objects=sum(len(b) for kind in self._objects.values() for b in kind.values()),
            watchers=self._hub.count,
            history=len(self._history),
            history_floor=self._history.floor,
        )

    # ----- internals: the synchronous write path -------------------------------------

    async def _checkpoint(self, verb: str, kind: KindLike, name: str, namespace: str) -> None:
        if not self.faults.active:
            self._requests += 1
            if self._requests % SCHEDULE_EVERY:
                await trio.lowlevel.checkpoint_if_cancelled()
            else:
                await trio.lowlevel.checkpoint()
            return
        try:
            info = resolve_kind(kind)
        except errors.BadRequest:
            await trio.lowlevel.checkpoint()
            return  # the request itself fails next
        if info.namespaced and not namespace and verb not in ("list", "watch"):
            namespace = "default"
        await self.faults.hit(verb, info.kind, info.plural, name, namespace)

    def _now(self) -> tuple[float, datetime]:
        t = trio.current_time()
        second = int(t)
        if second != self._wall_second:
            self._wall_second = second
            self._wall = to_wall(second)
        return t, self._wall

    def _namespace_of(self, info: KindInfo, namespace: str) -> str:
        if info.namespaced:
            return namespace or "default"
        if namespace:
            raise errors.BadRequest(
                f"{info.plural} is cluster-scoped: namespace must be empty, not {namespace!r}",
                kind=info.kind,
            )
        return ""

    def _namespace_phase(self, name: str) -> str | None:
        ns = self._objects["Namespace"].get("", {}).get(name)
        if ns is None:
            return None
        if ns.metadata.deletion_timestamp is not None:
            return "Terminating"
        return ns.status.phase or "Active"

    @staticmethod
    def _not_found(info: KindInfo, name: str, namespace: str) -> errors.NotFound:
        return errors.NotFound(
            f'{info.plural} "{name}" not found', kind=info.kind, namespace=namespace, name=name
        )

    def _create(self, obj: Any) -> Any:
        cls = type(obj)
        info = resolve_kind(cls)
        kind = info.kind
        meta = obj.metadata
        name = meta.name
        if info.namespaced:
            ns = meta.namespace or "default"
            self._admission.check_namespace(info.plural, ns, name or meta.generate_name)
        elif meta.namespace:
            raise errors.Invalid(
                [
                    Cause(
                        "metadata.namespace",
                        "Forbidden: not allowed on this type",
                        "FieldValueForbidden",
                    )
                ],
                kind=kind,
                name=name,
            )
        else:
            ns = ""
        objects = self._objects[kind]
        bucket = objects.get(ns)
        if not name:
            if not meta.generate_name:
                raise errors.Invalid(
                    [
                        Cause(
                            "metadata.name",
                            "Required value: name or generateName is required",
                            "FieldValueRequired",
                        )
                    ],
                    kind=kind,
                    namespace=ns,
                )
            name = generate_name(self._rng, meta.generate_name)
            while bucket is not None and name in bucket:
                name = generate_name(self._rng, meta.generate_name)
        elif bucket is not None and name in bucket:
            raise errors.AlreadyExists(
                f'{info.plural} "{name}" already exists', kind=kind, namespace=ns, name=name
            )
        revision = self._revision + 1
        t = strategy.traits(cls)
        now, wall = self._now()
        new_meta = replacer(type(meta), _CREATE_META)(
            meta,
            name,
            ns,
            new_uid(self._rng),
            str(revision),
            wall,
            1 if t.has_spec else 0,
            None,
            None,
        )
        if t.initial_status is not None:
            obj = replacer(cls, ("metadata", "status"))(obj, new_meta, t.initial_status)
        else:
            obj = replacer(cls, ("metadata",))(obj, new_meta)
        if kind == "Namespace":
            obj = strategy.prepare_namespace(obj)
        admission = self._admission
        obj = admission.default_and_validate(kind, obj, None, "create")
        obj = admission.run_steps("create", obj, None)
        # -- commit: nothing below can fail --
        if bucket is None:
            bucket = objects[ns] = {}
        bucket[name] = obj
        if kind == "Pod":
            self._index_pod(None, obj)
        self._revision = revision
        self._record(Change(revision, "ADDED", kind, None, obj, now))
        admission.run_committed("create", obj, None)
        return obj

    def _stored(self, info: KindInfo, name: str, namespace: str) -> tuple[str, Any]:
        ns = self._namespace_of(info, namespace)
        stored = self._objects[info.kind].get(ns, {}).get(name)
        if stored is None:
            raise self._not_found(info, name, ns)
        return ns, stored

    @staticmethod
    def _check_preconditions(
        info: KindInfo, stored: Any, uid: str | None, resource_version: str | None
    ) -> None:
        meta = stored.metadata
        prefix = f'Operation cannot be fulfilled on {info.plural} "{meta.name}": '
        if uid and uid != meta.uid:
            raise errors.Conflict(
                f"{prefix}Precondition failed: UID in precondition: {uid},"
                f" UID in object meta: {meta.uid}",
                kind=info.kind,
                namespace=meta.namespace,
                name=meta.name,
            )
        if resource_version and resource_version != meta.resource_version:
            raise errors.Conflict(
                f"{prefix}the object has been modified; please apply your changes to the"
                " latest version and try again",
                kind=info.kind,
                namespace=meta.namespace,
                name=meta.name,
            )

    def _update(self, obj: Any, op: str) -> Any:
        cls = type(obj)
        info = resolve_kind(cls)
        kind = info.kind
        meta = obj.metadata
        ns, stored = self._stored(info, meta.name, meta.namespace)
        self._check_preconditions(info, stored, meta.uid, meta.resource_version)
        smeta = stored.metadata
        if op == "update":
            new_meta = replacer(type(meta), _UPDATE_META)(
                meta,
                smeta.name,
                ns,
                smeta.uid,
                smeta.resource_version,
                smeta.creation_timestamp,
                smeta.generation,
                smeta.deletion_timestamp,
                smeta.deletion_grace_period_seconds,
            )
            if info.has_status and hasattr(stored, "status"):
                new = replacer(cls, ("metadata", "status"))(obj, new_meta, stored.status)
            else:
                new = replacer(cls, ("metadata",))(obj, new_meta)
            if kind == "Namespace" and new.spec.finalizers != stored.spec.finalizers:
                new = attrs.evolve(
                    new, spec=attrs.evolve(new.spec, finalizers=stored.spec.finalizers)
                )
        elif op == "update_status":
            if not info.has_status or not hasattr(stored, "status"):
                raise errors.NotFound(
                    f"{info.plural} have no status subresource", kind=kind, namespace=ns
                )
            new = replacer(cls, ("status",))(stored, obj.status)
        else:  # finalize
            spec = attrs.evolve(stored.spec, finalizers=obj.spec.finalizers)
            new = replacer(cls, ("spec",))(stored, spec)
        admission = self._admission
        admission_op = "update_status" if op == "update_status" else "update"
        # /finalize takes only spec.finalizers; defaulting would put "kubernetes" back.
        new = admission.default_and_validate(
            kind,
            new,
            stored,
            None if op == "finalize" else admission_op,  # type: ignore[arg-type]
        )
        generation = smeta.generation
        if op == "update" and strategy.generation_changed(new, stored):
            generation += 1
        elif new == stored:
            return stored  # a no-op update writes nothing
        new = admission.run_steps(admission_op, new, stored)  # type: ignore[arg-type]
        new = self._commit_update(info, ns, stored, new, generation, trio.current_time())
        admission.run_committed(admission_op, new, stored)  # type: ignore[arg-type]
        return new

    def _commit_update(
        self, info: KindInfo, ns: str, stored: Any, new: Any, generation: int, now: float
    ) -> Any:
        kind = info.kind
        revision = self._revision + 1
        new_meta = replacer(type(new.metadata), _STAMP_META)(
            new.metadata, str(revision), generation
        )
        new = replacer(type(new), ("metadata",))(new, new_meta)
        self._revision = revision
        if strategy.should_remove_after_update(new, stored):
            self._remove(kind, ns, stored, new, revision, now)
            return new
        self._objects[kind][ns][new_meta.name] = new
        if kind == "Pod":
            self._index_pod(stored, new)
        self._record(Change(revision, "MODIFIED", kind, stored, new, now))
        return new

    def _delete(
        self,
        kind_like: KindLike,
        name: str,
        namespace: str,
        grace_period_seconds: int | None,
        propagation_policy: str | None,
        uid: str | None,
        resource_version: str | None,
    ) -> Any:
        info = resolve_kind(kind_like)
        kind = info.kind
        ns, stored = self._stored(info, name, namespace)
        self._check_preconditions(info, stored, uid, resource_version)
        now, wall = self._now()
        action, new = strategy.plan_delete(
            stored,
            grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            now=wall,
        )
        if action == "none":
            return stored
        revision = self._revision + 1
        self._revision = revision
        if action == "remove":
            last = stamp(stored, str(revision))
            self._remove(kind, ns, stored, last, revision, now)
            return last
        new = stamp(new, str(revision))
        self._objects[kind][ns][name] = new
        if kind == "Pod":
            self._index_pod(stored, new)
        self._record(Change(revision, "MODIFIED", kind, stored, new, now))
        return new

    def _remove(
        self, kind: str, ns: str, stored: Any, last: Any, revision: int, now: float
    ) -> None:
        bucket = self._objects[kind][ns]
        del bucket[stored.metadata.name]
        if not bucket:
            del self._objects[kind][ns]
        if kind == "Pod":
            self._index_pod(stored, None)
        self._record(Change(revision, "DELETED", kind, stored, last, now))
        self._admission.run_removed(last)

    def _index_pod(self, old: Any, new: Any) -> None:
        index = self._pods_by_node
        if old is not None:
            node = node_of(old)
            if new is not None and node_of(new) == node:
                index[node][(new.metadata.namespace, new.metadata.name)] = new
                return
            pods = index[node]
            del pods[(old.metadata.namespace, old.metadata.name)]
            if not pods:
                del index[node]
        if new is not None:
            node = node_of(new)
            pods = index.get(node)
            if pods is None:
                pods = index[node] = {}
            pods[(new.metadata.namespace, new.metadata.name)] = new

    def _record(self, change: Change) -> None:
        if change.kind == "Event" and change.type != "DELETED":
            meta = change.new.metadata
            self._event_expiry.append(
                (change.time + self.event_ttl, meta.namespace, meta.name, meta.resource_version)
            )
            self._event_written.set()
        self._history.append(change)
        self._digest.record(change.revision, change.type, change.kind, change.new)
        self._hub.dispatch(change)
        for observer in self._observers:
            observer(change)
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    # ----- internals: selection and watches ------------------------------------------

    @staticmethod
    def _selectors(
        info: KindInfo, label_selector: str | None, field_selector: str | None
    ) -> tuple[Selector | None, FieldSelector | None]:
        try:
            labels = parse_selector(label_selector) if label_selector else None
            fields = parse_field_selector(field_selector, info.kind) if field_selector else None
        except SelectorError as e:
            raise errors.BadRequest(str(e), kind=info.kind) from None
        if labels is not None and labels.empty:
            labels = None
        if fields is not None and fields.empty:
            fields = None
        return labels, fields

    def _select(
        self,
        kind: KindLike,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> list[Any]:
        info = resolve_kind(kind)
        if not info.namespaced and namespace:
            self._namespace_of(info, namespace)  # raises
        labels, fields = self._selectors(info, label_selector, field_selector)
        checks: list[Callable[[Any], bool]] = []
        if labels is not None:
            match = labels.matches
            checks.append(lambda obj: match(obj.metadata.labels))
        if fields is not None:
            checks.append(fields.matches)
        node = fields.requires_exact_match(NODE_FIELD) if fields and info.kind == "Pod" else None
        if node is not None:
            pods = self._pods_by_node.get(node, {})
            keys: Iterable[tuple[str, str]] = sorted(
                k for k in pods if not namespace or k[0] == namespace
            )
            candidates: Iterable[Any] = [pods[k] for k in keys]
            return [o for o in candidates if all(c(o) for c in checks)]
        objects = self._objects[info.kind]
        spaces = [namespace] if namespace else sorted(objects)
        result: list[Any] = []
        for ns in spaces:
            bucket = objects.get(ns)
            if not bucket:
                continue
            if not checks:
                matched = list(bucket.values())
            elif len(checks) == 1:
                check = checks[0]
                matched = [o for o in bucket.values() if check(o)]
            else:
                matched = [o for o in bucket.values() if all(c(o) for c in checks)]
            matched.sort(key=_name_of)
            result.extend(matched)
        return result

    def _open_watch(
        self,
        kind: KindLike,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        resource_version: str | None,
        allow_bookmarks: bool,
        track_work: bool = False,
    ) -> WatchStream:
        info = resolve_kind(kind)
        if not info.namespaced and namespace:
            self._namespace_of(info, namespace)  # raises
        ns = namespace or None
        labels, fields = self._selectors(info, label_selector, field_selector)
        node = fields.requires_exact_match(NODE_FIELD) if fields and info.kind == "Pod" else None
        changes: Iterable[Change] | None = None
        if resource_version not in (None, "", "0"):
            try:
                since = int(resource_version)  # type: ignore[arg-type]
            except ValueError:
                raise errors.BadRequest(
                    f"invalid resourceVersion {resource_version!r}", kind=info.kind
                ) from None
            if since > self._revision:
                raise errors.Timeout(
                    f"Too large resource version: {since}, current: {self._revision}",
                    kind=info.kind,
                )
            changes = self._history.since(since, self._revision)  # may raise Gone
        where = f" in namespace {ns}" if ns else ""
        subscription: Subscription[WatchEvent] = Subscription(
            self._watch_capacity, name=f"watch {info.plural}{where}"
        )
        watcher = Watcher(
            info.kind,
            namespace=ns,
            label_selector=labels,
            field_selector=fields,
            node=node,
            bookmarks=allow_bookmarks,
            subscription=subscription,
            tracked=track_work and self._tracker is not None,
        )
        initial: list[WatchEvent] = []
        if changes is None:
            for obj in self._select(info.kind, ns, label_selector, field_selector):
                initial.append(WatchEvent("ADDED", obj))
        else:
            for change in changes:
                if change.kind != info.kind:
                    continue
                if ns is not None and change.new.metadata.namespace != ns:
                    continue
                event = watcher.convert(change, watcher.filter)
                if event is not None:
                    initial.append(event)
        if initial and watcher.tracked:
            watcher.outstanding = len(initial)
            self._tracker.add(len(initial))  # type: ignore[union-attr]
        self._hub.add(watcher)
        return WatchStream(watcher, initial, self._hub, self._tracker)


def _name_of(obj: Any) -> str:
    return obj.metadata.name  # type: ignore[no-any-return]
