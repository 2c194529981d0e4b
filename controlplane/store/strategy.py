"""Per-kind rules of the registry: what create resets, what bumps ``generation``, and
how a delete plays out (graceful pods, finalizers, terminating namespaces).

Pure functions, no I/O and no store state: the store calls them with the stored object
and the current wall-clock time and performs the result. They mirror Kubernetes'
``registry/rest`` (``BeforeCreate``, ``BeforeDelete``), the generic registry store's
``deletionFinalizersForGarbageCollection`` and ``shouldDeleteDuringUpdate``, and the pod
and namespace strategies.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs

from controlplane import errors
from controlplane.api.binding import bound_pod_spec

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "FOREGROUND",
    "ORPHAN",
    "ORPHAN_BY_DEFAULT",
    "KindTraits",
    "plan_delete",
    "should_remove_after_update",
    "traits",
]

#: ``metav1.FinalizerDeleteDependents`` / ``metav1.FinalizerOrphanDependents``.
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
#: The namespace finalizer the apiserver adds on create (``api.FinalizerKubernetes``).
NAMESPACE_FINALIZER = "kubernetes"
#: A pod's terminationGracePeriodSeconds when its spec leaves it unset.
DEFAULT_GRACE_SECONDS = 30
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")


@attrs.frozen
class KindTraits:
    """What the store needs to know about a kind's class."""

    #: Top-level fields besides metadata whose change bumps ``generation``: ``("spec",)``
    #: for kinds with a spec, else every field but metadata and status (ConfigMap's data).
    generation_fields: tuple[str, ...]
    has_spec: bool
    #: The status every new object starts with, as Kubernetes resets status on create
    #: (pods ``Pending``, namespaces ``Active``); ``None``: keep what the client sent
    #: (nodes, kinds without status).
    initial_status: Any


@functools.cache
def traits(cls: type[Any]) -> KindTraits:
    fields = attrs.fields_dict(cls)
    has_spec = "spec" in fields
    if has_spec:
        generation_fields: tuple[str, ...] = ("spec",)
    else:
        generation_fields = tuple(n for n in fields if n not in ("metadata", "status"))
    initial_status: Any = None
    if "status" in fields and cls.kind != "Node":  # nodes may set status on create
        default = fields["status"].default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if cls.kind == "Pod":
            # podStrategy.PrepareForCreate: status = {phase: Pending}.
            initial_status = attrs.evolve(default, phase="Pending")
        elif cls.kind == "Namespace":
            initial_status = attrs.evolve(default, phase="Active")
        else:
            initial_status = default
    return KindTraits(generation_fields, has_spec, initial_status)


def prepare_namespace(obj: Any) -> Any:
    """The namespace strategy on create: every new namespace gets the ``kubernetes``
    finalizer, so that deleting it waits for the namespace controller to empty it."""
    if NAMESPACE_FINALIZER in obj.spec.finalizers:
        return obj
    spec = attrs.evolve(obj.spec, finalizers=(*obj.spec.finalizers, NAMESPACE_FINALIZER))
    return attrs.evolve(obj, spec=spec)


def bind_pod(pod: Any, node_name: str, now: datetime) -> Any:
    """The binding subresource: ``spec.nodeName`` set and a ``PodScheduled=True``
    condition, as ``assignPod`` / ``setPodHostAndAnnotations`` do.

    Raises:
        errors.Conflict: the pod is already assigned, or is being deleted.
    """
    meta = pod.metadata
    prefix = f'Operation cannot be fulfilled on pods/binding "{meta.name}": '
    if pod.spec.node_name:
        raise errors.Conflict(
            f'{prefix}pod {meta.name} is already assigned to node "{pod.spec.node_name}"',
            kind="Pod",
            namespace=meta.namespace,
            name=meta.name,
        )
    if meta.deletion_timestamp is not None:
        raise errors.Conflict(
            f"{prefix}pod {meta.name} is being deleted, cannot be assigned to a host",
            kind="Pod",
            namespace=meta.namespace,
            name=meta.name,
        )
    conditions = [c for c in pod.status.conditions if c.type != "PodScheduled"]
    scheduled = _pod_condition_cls()(type="PodScheduled", status="True", last_transition_time=now)
    status = attrs.evolve(pod.status, conditions=(*conditions, scheduled))
    return attrs.evolve(pod, spec=bound_pod_spec(pod.spec, node_name), status=status)


@functools.cache
def _pod_condition_cls() -> type[Any]:
    from controlplane.api.core_pod import PodCondition

    return PodCondition


def generation_changed(new: Any, old: Any) -> bool:
    for name in traits(type(new)).generation_fields:
        a = getattr(new, name)
        b = getattr(old, name)
        if a is not b and a != b:
            return True
    return False


def _all_finalizers(obj: Any) -> tuple[str, ...]:
    finalizers = obj.metadata.finalizers
    if type(obj).kind == "Namespace":
        return finalizers + obj.spec.finalizers
    return finalizers


def should_remove_after_update(new: Any, old: Any) -> bool:
    """Whether an update removes the object: the last finalizer went away from an object
    being deleted whose grace period is over (``shouldDeleteDuringUpdate``)."""
    meta = old.metadata
    if meta.deletion_timestamp is None or _all_finalizers(new):
        return False
    if not _all_finalizers(old):
        return False
    return not meta.deletion_grace_period_seconds


#: Kinds whose registry strategy's ``DefaultGarbageCollectionPolicy`` is
#: ``OrphanDependents`` at the apiVersion kubetrio serves, kept for backward compatibility:
#: core/v1 ReplicationController and batch/v1 Job (``kubectl delete`` still cascades: it
#: sends ``propagationPolicy=Background``). Every other kind defaults to Background.
ORPHAN_BY_DEFAULT = frozenset({"ReplicationController", "Job"})


def _gc_finalizers(finalizers: tuple[str, ...], policy: str | None, kind: str) -> tuple[str, ...]:
    """``deletionFinalizersForGarbageCollection``: the finalizers after a delete with
    ``policy`` (Foreground adds ``foregroundDeletion``, Orphan adds ``orphan``).

    Without a policy a GC finalizer already on the object decides; failing that the
    kind's default (``shouldOrphanDependents``): ``orphan`` for :data:`ORPHAN_BY_DEFAULT`.
    """
    if policy is None:
        if kind not in ORPHAN_BY_DEFAULT or FOREGROUND in finalizers or ORPHAN in finalizers:
            return finalizers
        return (*finalizers, ORPHAN)
    kept = tuple(f for f in finalizers if f not in (FOREGROUND, ORPHAN))
    if policy == "Orphan":
        return (*kept, ORPHAN)
    if policy == "Foreground":
        return (*kept, FOREGROUND)
    return kept


def _pod_grace(pod: Any, grace: int | None) -> int:
    """``podStrategy.CheckGracefulDelete``: the grace period a pod delete gets."""
    if grace is None:
        grace = getattr(pod.spec, "termination_grace_period_seconds", None)
        if grace is None:
            grace = DEFAULT_GRACE_SECONDS
    if not getattr(pod.spec, "node_name", None):
        return 0  # never scheduled: nothing to stop
    if getattr(pod.status, "phase", None) in ("Succeeded", "Failed"):
        return 0  # already terminated
    return grace


DeleteAction = Literal["remove", "mark", "none"]


def plan_delete(
    stored: Any,
    *,
    grace_period_seconds: int | None,
    propagation_policy: str | None,
    now: datetime,
) -> tuple[DeleteAction, Any]:
    """What a delete of ``stored`` does: ``("remove", stored)``, ``("mark", new)`` (the
    object stays, with ``deletionTimestamp`` set or shortened, or finalizers changed), or
    ``("none", stored)`` (already being deleted; nothing changes).

    Raises:
        errors.BadRequest: unknown propagation policy.
    """
    if propagation_policy is not None and propagation_policy not in PROPAGATION_POLICIES:
        raise errors.BadRequest(
            f'unknown propagationPolicy "{propagation_policy}"; expected one of'
            f" {', '.join(PROPAGATION_POLICIES)}"
        )
    if grace_period_seconds is not None and grace_period_seconds < 0:
        grace_period_seconds = 1  # as the apiserver: negative means "soon"
    meta = stored.metadata
    kind = type(stored).kind
    finalizers = _gc_finalizers(meta.finalizers, propagation_policy, kind)
    changes: dict[str, Any] = {}
    if finalizers != meta.finalizers:
        changes["finalizers"] = finalizers
    pending = bool(finalizers) or (kind == "Namespace" and bool(stored.spec.finalizers))

    if meta.deletion_timestamp is not None:
        # Already being deleted: only a shorter grace period (or GC finalizers) may change.
        current = meta.deletion_grace_period_seconds or 0
        if kind == "Pod" and grace_period_seconds is not None and grace_period_seconds < current:
            start = meta.deletion_timestamp - timedelta(seconds=current)
            changes["deletion_timestamp"] = start + timedelta(seconds=grace_period_seconds)
            changes["deletion_grace_period_seconds"] = grace_period_seconds
            current = grace_period_seconds
        if current == 0 and not pending:
            return "remove", stored
        if not changes:
            return "none", stored
        return "mark", attrs.evolve(stored, metadata=attrs.evolve(meta, **changes))

    if kind == "Namespace":
        if not pending:
            return "remove", stored
        # The namespace REST's Delete: mark it and switch the phase to Terminating.
        new_meta = attrs.evolve(meta, deletion_timestamp=now, **changes)
        status = attrs.evolve(stored.status, phase="Terminating")
        return "mark", attrs.evolve(stored, metadata=new_meta, status=status)

    grace = _pod_grace(stored, grace_period_seconds) if kind == "Pod" else 0
    if grace == 0 and not pending:
        return "remove", stored
    changes["deletion_timestamp"] = now + timedelta(seconds=grace)
    changes["deletion_grace_period_seconds"] = grace
    if meta.generation > 0:
        changes["generation"] = meta.generation + 1  # the deletionTimestamp changed
    return "mark", attrs.evolve(stored, metadata=attrs.evolve(meta, **changes))
