"""The garbage collector's decisions, as plain functions (no I/O, no clock).

Kubernetes' garbage collector (``pkg/controller/garbagecollector``) keeps an owner graph
built from ``metadata.ownerReferences`` and works two queues: *attempt to delete* (is
this object garbage? then delete it; is it waiting for its dependents? then see whether
they are gone) and *attempt to orphan* (strip the owner from its dependents, then drop
the ``orphan`` finalizer). This module holds the judgement part of both, so it can be
tested without a cluster:

- :func:`resolve_owner` — where an ownerReference points (kind and namespace), or why
  it cannot point anywhere (unknown kind, a cluster-scoped object naming a namespaced
  owner);
- :func:`owner_state` — what a fetched owner means for its dependent: absent (gone, or
  another object under the same name: the uid differs), solid, or waiting for its
  dependents (foreground deletion);
- :func:`decide_dependent` — ``attemptToDeleteItem``'s switch: keep the object, patch
  out dangling / waiting references, or delete it (Foreground if it has dependents and
  an owner waits for it, else by its own GC finalizers, else Background);
- :func:`blocking_dependents`, :func:`without_owner_references`,
  :func:`without_finalizer`, :func:`unblocked` — the rest of the bookkeeping.

The actor in :mod:`controlplane.controllers.garbagecollector` reads caches, fetches
owners from the API to verify an absence before it deletes anything, and performs what
these functions return.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import attrs

from controlplane import errors
from controlplane.api.kinds import KindInfo, kind_for_api_version
from controlplane.api.meta import OwnerReference
from controlplane.store.strategy import FOREGROUND, ORPHAN

__all__ = [
    "DeleteDependent",
    "Keep",
    "OwnerState",
    "RemoveOwnerReferences",
    "ResolvedOwner",
    "Unresolvable",
    "blocking_dependents",
    "decide_dependent",
    "deleting_dependents",
    "describe_reference",
    "owner_state",
    "resolve_owner",
    "unblocked",
    "without_finalizer",
    "without_owner_references",
]


class OwnerState(enum.Enum):
    """What an ownerReference's target is, seen from the dependent
    (``classifyReferences``: solid, dangling, waitingForDependentsDeletion)."""

    #: No object of that kind, name and uid exists: the reference dangles.
    ABSENT = "absent"
    #: The owner exists and is not deleting its dependents.
    SOLID = "solid"
    #: The owner is being deleted in the foreground: it waits for its dependents.
    WAITING = "waiting"
    #: The reference names no kind we serve, or a namespaced owner of a cluster-scoped
    #: object: nothing can be decided about it.
    UNRESOLVABLE = "unresolvable"


@attrs.frozen
class ResolvedOwner:
    """Where an ownerReference points: look up ``name`` of ``info`` in ``namespace``."""

    info: KindInfo
    namespace: str
    name: str
    uid: str


@attrs.frozen
class Unresolvable:
    """Why an ownerReference cannot be resolved; ``invalid_namespace``: the dependent is
    cluster-scoped and names a namespaced kind (Kubernetes reports that with an
    ``OwnerRefInvalidNamespace`` event)."""

    reason: str
    invalid_namespace: bool = False


def resolve_owner(ref: OwnerReference, dependent_namespace: str) -> ResolvedOwner | Unresolvable:
    """Resolve ``ref`` of an object in ``dependent_namespace`` (``""``: cluster-scoped).

    A namespaced owner is looked up in the dependent's own namespace (owner references
    never cross namespaces); a cluster-scoped owner without a namespace. The apiVersion
    must be the one kubetrio serves the kind at, as the apiserver's REST mapping needs.
    """
    if not ref.kind or not ref.uid or not ref.name:
        return Unresolvable("owner reference has no kind, name or uid")
    try:
        info = kind_for_api_version(ref.api_version, ref.kind)
    except errors.BadRequest as exc:
        return Unresolvable(str(exc))
    if not info.namespaced:
        return ResolvedOwner(info, "", ref.name, ref.uid)
    if not dependent_namespace:
        return Unresolvable(
            "cluster-scoped objects cannot refer to namespaced owners", invalid_namespace=True
        )
    return ResolvedOwner(info, dependent_namespace, ref.name, ref.uid)


def deleting_dependents(obj: Any) -> bool:
    """Whether ``obj`` is being deleted in the foreground (waits for its dependents)."""
    meta = obj.metadata
    return meta.deletion_timestamp is not None and FOREGROUND in meta.finalizers


def owner_state(uid: str, owner: Any | None) -> OwnerState:
    """The state of the owner with ``uid`` given the object found under its name
    (``None``: nothing there). Another uid under the same name is a different object:
    the real owner is gone."""
    if owner is None or owner.metadata.uid != uid:
        return OwnerState.ABSENT
    return OwnerState.WAITING if deleting_dependents(owner) else OwnerState.SOLID


@attrs.frozen
class Keep:
    """Leave the dependent alone (``reason`` for the log)."""

    reason: str


@attrs.frozen
class RemoveOwnerReferences:
    """Patch the references to these owner uids out of the dependent (it has another,
    solid owner; the others dangle or wait for it)."""

    uids: tuple[str, ...]


@attrs.frozen
class DeleteDependent:
    """Delete the dependent with ``policy``. ``unblock_first``: first set
    ``blockOwnerDeletion: false`` on its references, to break a foreground cycle."""

    policy: str
    unblock_first: bool = False


Decision = Keep | RemoveOwnerReferences | DeleteDependent


def decide_dependent(
    obj: Any,
    states: Sequence[tuple[OwnerReference, OwnerState]],
    *,
    has_dependents: bool,
    a_dependent_deletes_dependents: bool,
) -> Decision:
    """``attemptToDeleteItem`` for an object that is not being deleted.

    Args:
        obj: the dependent.
        states: each of its owner references with the state of its owner.
        has_dependents: whether ``obj`` itself owns something.
        a_dependent_deletes_dependents: whether one of ``obj``'s dependents is itself
            being deleted in the foreground (a possible cycle).
    """
    if not states:
        return Keep("no owner references")
    if any(state is OwnerState.UNRESOLVABLE for _, state in states):
        return Keep("an owner reference cannot be resolved")
    solid = [ref for ref, state in states if state is OwnerState.SOLID]
    dangling = [ref.uid for ref, state in states if state is OwnerState.ABSENT]
    waiting = [ref.uid for ref, state in states if state is OwnerState.WAITING]
    if solid:
        if not dangling and not waiting:
            return Keep("an owner exists")
        # Waiting owners must lose this reference, or they would wait for it forever.
        return RemoveOwnerReferences(tuple(dict.fromkeys((*dangling, *waiting))))
    if waiting and has_dependents:
        return DeleteDependent("Foreground", unblock_first=a_dependent_deletes_dependents)
    finalizers = obj.metadata.finalizers
    if ORPHAN in finalizers:
        return DeleteDependent("Orphan")
    if FOREGROUND in finalizers:
        return DeleteDependent("Foreground")
    return DeleteDependent("Background")


def blocking_dependents(owner_uid: str, dependents: Iterable[Any]) -> list[Any]:
    """The dependents whose reference to ``owner_uid`` has ``blockOwnerDeletion: true``:
    a foreground deletion of the owner waits until they are gone."""
    return [
        dep
        for dep in dependents
        if any(
            ref.uid == owner_uid and ref.block_owner_deletion
            for ref in dep.metadata.owner_references
        )
    ]


def without_owner_references(obj: Any, uids: Collection[str]) -> Any:
    """``obj`` without its references to ``uids`` (``obj`` itself if it has none)."""
    meta = obj.metadata
    kept = tuple(ref for ref in meta.owner_references if ref.uid not in uids)
    if len(kept) == len(meta.owner_references):
        return obj
    return attrs.evolve(obj, metadata=attrs.evolve(meta, owner_references=kept))


def unblocked(obj: Any) -> Any:
    """``obj`` with ``blockOwnerDeletion: false`` on every reference that blocked
    (``unblockOwnerReferences``); ``obj`` itself if none did."""
    meta = obj.metadata
    if not any(ref.block_owner_deletion for ref in meta.owner_references):
        return obj
    refs = tuple(
        attrs.evolve(ref, block_owner_deletion=False) if ref.block_owner_deletion else ref
        for ref in meta.owner_references
    )
    return attrs.evolve(obj, metadata=attrs.evolve(meta, owner_references=refs))


def without_finalizer(obj: Any, finalizer: str) -> Any:
    """``obj`` without ``finalizer`` in ``metadata.finalizers`` (``obj`` if absent)."""
    meta = obj.metadata
    if finalizer not in meta.finalizers:
        return obj
    kept = tuple(f for f in meta.finalizers if f != finalizer)
    return attrs.evolve(obj, metadata=attrs.evolve(meta, finalizers=kept))


def describe_reference(ref: OwnerReference, namespace: str) -> str:
    """An owner reference as the garbage collector prints it in events
    (``objectReference.String()``)."""
    return (
        f"[{ref.api_version}/{ref.kind}, namespace: {namespace}, name: {ref.name}, uid: {ref.uid}]"
    )
