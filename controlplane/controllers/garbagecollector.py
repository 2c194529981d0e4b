"""The garbage collector (kube-controller-manager's ``garbagecollector``).

It deletes objects whose owners are gone and carries out the two deletion modes the
store only starts (see ``controlplane.store.strategy.plan_delete``):

- **Background** (the default, apps/v1 and most kinds): the store removes the owner at
  once; the collector then deletes every dependent whose owners are *all* gone. A
  dependent with another live owner only loses the dead reference.
- **Foreground**: the store marks the owner (``deletionTimestamp`` and the
  ``foregroundDeletion`` finalizer); the collector deletes its dependents (those that
  own something themselves in the foreground too, recursively), waits until the ones
  whose reference says ``blockOwnerDeletion: true`` are gone, then removes the
  finalizer and the store removes the owner.
- **Orphan** (the default for v1 ReplicationControllers and batch/v1 Jobs): the store
  adds the ``orphan`` finalizer; the collector removes the references to the owner from
  every dependent, then the finalizer.

The owner graph is not a structure of its own: it is the shared informers' caches of
every kind that can own or be owned (all kinds but Events), joined by the built-in
``owner_uid`` index (owner uid → dependents). Work items are the keys
``"<Kind>:<namespace>/<name>"`` (``"<Kind>:<name>"`` if cluster-scoped) of observed
objects; a sync re-reads the object and decides with the pure functions of
:mod:`controlplane.controllers.ownergraph`.

**Nothing is deleted on the word of a cache.** An owner the cache shows alive counts as
alive; one it shows missing (or deleting its dependents) is fetched from the API by name
and its uid compared, as ``isDangling`` does — a cache that lags behind a fresh owner
never costs its dependents. Deletes carry the dependent's uid and resourceVersion as
preconditions; on a Conflict whose cause left the ownerReferences as they were (a pod
status write), the delete is retried with the uid alone (``deleteObject``).

Events: like Kubernetes, the collector records only ``OwnerRefInvalidNamespace``
(Warning, on the dependent) for a reference whose uid belongs to an object in another
namespace, or a namespaced kind named by a cluster-scoped object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from controlplane import errors
from controlplane.api.kinds import KINDS, resolve_kind
from controlplane.api.meta import OwnerReference, object_key
from controlplane.client.informer import Informer
from controlplane.controllers.framework import OWNER_UID_INDEX, ControllerContext
from controlplane.controllers.ownergraph import (
    DeleteDependent,
    Keep,
    OwnerState,
    RemoveOwnerReferences,
    ResolvedOwner,
    blocking_dependents,
    decide_dependent,
    deleting_dependents,
    describe_reference,
    owner_state,
    resolve_owner,
    unblocked,
    without_finalizer,
    without_owner_references,
)
from controlplane.store.strategy import FOREGROUND, ORPHAN

__all__ = ["GC_KINDS", "GarbageCollector", "gc_key"]

#: Every kind the collector watches: all that can own or be owned. Events are left out:
#: they are the most numerous objects, nothing owns them and they own nothing, so
#: watching them would cost a cache of every Event for no decision.
GC_KINDS: tuple[str, ...] = tuple(info.kind for info in KINDS if info.kind != "Event")

#: ``metadata.uid`` → key: finds an owner's object whatever namespace it is in (for the
#: ``OwnerRefInvalidNamespace`` check).
UID_INDEX = "gc_uid"


def _uid_values(obj: Any) -> tuple[str, ...]:
    return (obj.metadata.uid,)


def gc_key(kind: str, obj: Any) -> str:
    """The collector's work-queue key for ``obj`` of ``kind``."""
    return f"{kind}:{object_key(obj)}"


def _gc_finalizer_pending(obj: Any) -> bool:
    meta = obj.metadata
    return meta.deletion_timestamp is not None and (
        ORPHAN in meta.finalizers or FOREGROUND in meta.finalizers
    )


class GarbageCollector:
    """Deletes dependents of deleted owners; runs foreground and orphan deletions."""

    name = "garbage-collector"

    def __init__(self, context: ControllerContext) -> None:
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self._informers: dict[str, Informer] = {}
        for kind in GC_KINDS:
            informer = context.informers.informer(kind, indexers={UID_INDEX: _uid_values})
            self._informers[kind] = informer
            informer.add_event_handler(*self._handlers(kind))

    # -- informer handlers: map changes to keys ---------------------------------------

    def _handlers(self, kind: str) -> tuple[Any, Any, Any]:
        queue = self._queue

        def on_add(obj: Any) -> None:
            # A new object may name owners that do not exist (or no longer do); a
            # restarted collector re-lists and so re-checks every dependent.
            if _gc_finalizer_pending(obj) or self._owners_in_doubt(obj):
                queue.add(gc_key(kind, obj))

        def on_update(old: Any, new: Any) -> None:
            om, nm = old.metadata, new.metadata
            refs_changed = om.owner_references != nm.owner_references
            if _gc_finalizer_pending(new):
                queue.add(gc_key(kind, new))
                if FOREGROUND in nm.finalizers and not deleting_dependents(old):
                    self._enqueue_dependents(nm.uid)  # its dependents go first
            elif refs_changed and self._owners_in_doubt(new):
                queue.add(gc_key(kind, new))
            if refs_changed:
                # A removed or unblocked reference may be what a foreground owner waits on.
                self._enqueue_waiting_owners(old)

        def on_delete(obj: Any) -> None:
            self._enqueue_dependents(obj.metadata.uid)
            self._enqueue_waiting_owners(obj)

        return on_add, on_update, on_delete

    def _dependents(self, uid: str) -> Iterator[tuple[str, Any]]:
        """``(kind, object)`` for every cached object with a reference to ``uid``."""
        for kind, informer in self._informers.items():
            for dep in informer.cache.by_index(OWNER_UID_INDEX, uid):
                yield kind, dep

    def _enqueue_dependents(self, uid: str) -> None:
        for kind, dep in self._dependents(uid):
            self._queue.add(gc_key(kind, dep))

    def _cached_owner(self, ref: OwnerReference, namespace: str) -> tuple[str, Any] | None:
        resolved = resolve_owner(ref, namespace)
        if not isinstance(resolved, ResolvedOwner):
            return None
        informer = self._informers.get(resolved.info.kind)
        if informer is None:
            return None
        owner = informer.cache.get(resolved.name, resolved.namespace)
        if owner is None or owner.metadata.uid != ref.uid:
            return None
        return resolved.info.kind, owner

    def _owners_in_doubt(self, obj: Any) -> bool:
        """Whether some owner of ``obj`` is not cached as alive: then ``obj`` must be
        checked. Owners the caches show alive need no work now; if one of them goes,
        its delete event queues ``obj`` (the graph builder's virtual nodes, in short)."""
        meta = obj.metadata
        for ref in meta.owner_references:
            found = self._cached_owner(ref, meta.namespace)
            if found is None or deleting_dependents(found[1]):
                return True
        return False

    def _enqueue_waiting_owners(self, obj: Any) -> None:
        meta = obj.metadata
        for ref in meta.owner_references:
            found = self._cached_owner(ref, meta.namespace)
            if found is not None and deleting_dependents(found[1]):
                self._queue.add(gc_key(*found))

    # -- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        """Process the object ``key`` names (see the module docstring).

        Raises:
            errors.ApiError: a read or write failed; the key is retried with backoff.
        """
        kind, _, obj_key = key.partition(":")
        informer = self._informers.get(kind)
        obj = informer.cache.get_by_key(obj_key) if informer is not None else None
        if obj is None:
            return None  # gone: its delete event queued its dependents
        meta = obj.metadata
        if meta.deletion_timestamp is not None:
            if ORPHAN in meta.finalizers:
                await self._orphan_dependents(kind, obj)
            elif FOREGROUND in meta.finalizers:
                await self._process_deleting_dependents(kind, obj)
            # Otherwise being deleted is a one-way trip: wait for it to go.
            return None
        if meta.owner_references:
            await self._attempt_to_delete(kind, obj)
        return None

    # -- is this object garbage? ------------------------------------------------------

    async def _attempt_to_delete(self, kind: str, obj: Any) -> None:
        meta = obj.metadata
        logger = self._log.bind(kind=kind, namespace=meta.namespace, name=meta.name)
        states = [(ref, await self._owner_state(kind, obj, ref)) for ref in meta.owner_references]
        # Only an owner waiting for this object makes its own dependents matter.
        waited_on = any(state is OwnerState.WAITING for _, state in states)
        dependents = [dep for _, dep in self._dependents(meta.uid)] if waited_on else []
        decision = decide_dependent(
            obj,
            states,
            has_dependents=bool(dependents),
            a_dependent_deletes_dependents=any(deleting_dependents(d) for d in dependents),
        )
        if isinstance(decision, Keep):
            return
        if isinstance(decision, RemoveOwnerReferences):
            logger.info("gc_removing_owner_references", owners=list(decision.uids))
            await self._patch(kind, obj, lambda o: without_owner_references(o, decision.uids))
            return
        assert isinstance(decision, DeleteDependent)
        if decision.unblock_first:
            logger.info("gc_unblocking_owner_references")
            obj = await self._patch(kind, obj, unblocked)
            if obj is None:
                return
        logger.info("gc_deleting_object", propagation_policy=decision.policy)
        await self._delete(kind, obj, decision.policy)

    async def _owner_state(self, kind: str, dependent: Any, ref: OwnerReference) -> OwnerState:
        """The state of ``ref``'s owner; anything but SOLID is verified with a GET."""
        meta = dependent.metadata
        resolved = resolve_owner(ref, meta.namespace)
        if not isinstance(resolved, ResolvedOwner):
            self._log.warning(
                "gc_owner_unresolvable",
                kind=kind,
                namespace=meta.namespace,
                name=meta.name,
                owner_kind=ref.kind,
                owner_api_version=ref.api_version,
                reason=resolved.reason,
            )
            if resolved.invalid_namespace:
                self._report_invalid_namespace(dependent, ref)
            return OwnerState.UNRESOLVABLE
        informer = self._informers.get(resolved.info.kind)
        if informer is not None:
            cached = informer.cache.get(resolved.name, resolved.namespace)
            if owner_state(ref.uid, cached) is OwnerState.SOLID:
                return OwnerState.SOLID
        try:
            live = await self._client.get(
                resolved.info.kind, resolved.name, namespace=resolved.namespace
            )
        except errors.NotFound:
            live = None
        state = owner_state(ref.uid, live)
        if state is OwnerState.ABSENT and informer is not None and meta.namespace:
            elsewhere = informer.cache.by_index(UID_INDEX, ref.uid)
            if any(o.metadata.namespace != meta.namespace for o in elsewhere):
                self._report_invalid_namespace(dependent, ref)
        return state

    def _report_invalid_namespace(self, dependent: Any, ref: OwnerReference) -> None:
        namespace = dependent.metadata.namespace
        self._events.record(
            dependent,
            "Warning",
            "OwnerRefInvalidNamespace",
            f"ownerRef {describe_reference(ref, namespace)} does not exist in namespace"
            f' "{namespace}"',
        )

    # -- foreground: wait for the blocking dependents ---------------------------------

    async def _process_deleting_dependents(self, kind: str, owner: Any) -> None:
        uid = owner.metadata.uid
        dependents = list(self._dependents(uid))
        blocking = blocking_dependents(uid, (dep for _, dep in dependents))
        if not blocking:
            self._log.info(
                "gc_removing_finalizer",
                kind=kind,
                namespace=owner.metadata.namespace,
                name=owner.metadata.name,
                finalizer=FOREGROUND,
            )
            await self._patch(kind, owner, lambda o: without_finalizer(o, FOREGROUND))
            return
        # Every dependent not yet on its way out is checked for deletion (a dependent
        # deleting its own dependents is already handled through its own key).
        for dep_kind, dep in dependents:
            if not deleting_dependents(dep):
                self._queue.add(gc_key(dep_kind, dep))

    # -- orphan: strip the owner from its dependents ----------------------------------

    async def _orphan_dependents(self, kind: str, owner: Any) -> None:
        meta = owner.metadata
        uids = (meta.uid,)
        dependents = list(self._dependents(meta.uid))
        self._log.info(
            "gc_orphaning_dependents",
            kind=kind,
            namespace=meta.namespace,
            name=meta.name,
            dependents=len(dependents),
        )
        for dep_kind, dep in dependents:
            await self._patch(dep_kind, dep, lambda o: without_owner_references(o, uids))
        await self._patch(kind, owner, lambda o: without_finalizer(o, ORPHAN))

    # -- writes -----------------------------------------------------------------------

    async def _patch(self, kind: str, obj: Any, change: Any) -> Any | None:
        """Apply ``change`` to the live object (same uid) and write it; return what was
        written, the live object if nothing changed, or None if it is gone.

        Raises:
            errors.ApiError: the write failed (a Conflict is retried by the queue).
        """
        meta = obj.metadata
        try:
            live = await self._client.get(kind, meta.name, namespace=meta.namespace)
        except errors.NotFound:
            return None
        if live.metadata.uid != meta.uid:
            return None
        new = change(live)
        if new is live:
            return live
        try:
            return await self._client.update(new)
        except errors.NotFound:
            return None

    async def _delete(self, kind: str, obj: Any, policy: str) -> None:
        meta = obj.metadata
        try:
            await self._client.delete(
                kind,
                meta.name,
                namespace=meta.namespace,
                propagation_policy=policy,
                preconditions_uid=meta.uid,
                preconditions_resource_version=meta.resource_version,
            )
            return
        except errors.NotFound:
            return
        except errors.Conflict:
            pass
        try:
            live = await self._client.get(kind, meta.name, namespace=meta.namespace)
        except errors.NotFound:
            return  # gone already: done
        if live.metadata.uid != meta.uid:
            return
        if live.metadata.owner_references != meta.owner_references:
            raise errors.Conflict(
                f"{resolve_kind(kind).plural} {meta.name!r}: ownerReferences changed;"
                " garbage collection re-checks it",
                kind=kind,
                namespace=meta.namespace,
                name=meta.name,
            )
        # Something else changed (a status write): the decision stands.
        try:
            await self._client.delete(
                kind,
                meta.name,
                namespace=meta.namespace,
                propagation_policy=policy,
                preconditions_uid=meta.uid,
            )
        except errors.NotFound:
            return
