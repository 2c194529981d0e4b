"""The namespace controller: empties a terminating namespace, then lets it go.

Deleting a Namespace only marks it (``deletionTimestamp``, phase ``Terminating``) while
its ``spec.finalizers`` hold the ``kubernetes`` finalizer, and from then on the store
refuses creates in it. This controller, as Kubernetes' ``NamespacedResourcesDeleter``:

1. reads the namespace from the API (not a cache): absent, not terminating, or already
   finalized — nothing to do;
2. deletes its content with ``propagationPolicy: Background``, **pods first**
   (``OrderedNamespaceDeletion``, GA and locked on since Kubernetes 1.34): while pods
   remain, nothing else is deleted, so a pod never outlives the Services, ConfigMaps
   and Secrets it uses; then every other namespaced kind;
3. lists what remains (from the API) and writes the status conditions Kubernetes writes
   (:data:`CONDITION_TYPES`: ``NamespaceContentRemaining`` "Some resources are
   remaining: pods. has 2 resource instances", ``NamespaceFinalizersRemaining``,
   ``NamespaceDeletionContentFailure``... each with its "ok" variant once resolved);
4. while content remains, re-checks after ``estimate // 2 + 1`` seconds, the estimate
   being the longest ``terminationGracePeriodSeconds`` of the live pods (counted from
   the namespace's deletion), or 15 s while finalizers hold objects. It also re-checks
   as soon as an object of the namespace goes away (informers), so a namespace whose
   pods stop early is removed at once rather than at the next estimate;
5. once empty, removes ``kubernetes`` from ``spec.finalizers`` through the ``/finalize``
   subresource (``client.finalize_namespace``); the store then removes the namespace.

Items that remain with no finalizer after the estimate ran out (a pod on a dead node) are
a content failure, as in Kubernetes: the condition says so and the key is retried with
backoff.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from controlplane import errors
from controlplane.api.core import NamespaceCondition
from controlplane.api.kinds import KINDS, KindInfo
from controlplane.clock import wall_now
from controlplane.controllers.framework import ControllerContext
from controlplane.store.strategy import (
    DEFAULT_GRACE_SECONDS,
    FOREGROUND,
    NAMESPACE_FINALIZER,
    ORPHAN,
)

__all__ = [
    "CONDITION_TYPES",
    "FINALIZER_ESTIMATE_SECONDS",
    "ContentTotals",
    "NamespaceController",
    "deletion_conditions",
    "pod_termination_estimate",
    "requeue_delay",
    "resource_label",
]

#: The conditions the namespace deleter maintains, in Kubernetes' order.
CONDITION_TYPES: tuple[str, ...] = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)
_OK: dict[str, tuple[str, str]] = {
    "NamespaceDeletionDiscoveryFailure": (
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    "NamespaceDeletionGroupVersionParsingFailure": (
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    "NamespaceDeletionContentFailure": (
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": (
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
}

#: The estimate while objects with finalizers remain (``finalizerEstimateSeconds``).
FINALIZER_ESTIMATE_SECONDS = 15

#: Every namespaced kind, pods first (they are deleted first).
NAMESPACED_KINDS: tuple[KindInfo, ...] = tuple(
    sorted((i for i in KINDS if i.namespaced), key=lambda i: i.kind != "Pod")
)


def resource_label(info: KindInfo) -> str:
    """``<resource>.<group>`` as the conditions print a GroupVersionResource
    (``pods.``, ``replicasets.apps``)."""
    return f"{info.plural}.{info.group}"


@attrs.frozen
class ContentTotals:
    """What remains in a namespace: instances per resource label, and per finalizer."""

    remaining: Mapping[str, int] = attrs.field(factory=dict)
    finalizers: Mapping[str, int] = attrs.field(factory=dict)

    @staticmethod
    def count(content: Iterable[tuple[KindInfo, Sequence[Any]]]) -> ContentTotals:
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for info, objs in content:
            if not objs:
                continue
            remaining[resource_label(info)] = len(objs)
            for obj in objs:
                for finalizer in obj.metadata.finalizers:
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        return ContentTotals(remaining, finalizers)


def pod_termination_estimate(pods: Iterable[Any], deleted_at: datetime, now: datetime) -> int:
    """Seconds the namespace's pods may still take to terminate
    (``estimateGracefulTermination``): the longest grace period of the pods that are not
    terminal, or 0 once that much time has passed since the namespace was deleted."""
    estimate = 0
    for pod in pods:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        grace = pod.spec.termination_grace_period_seconds
        estimate = max(estimate, DEFAULT_GRACE_SECONDS if grace is None else grace)
    if (now - deleted_at).total_seconds() >= estimate:
        return 0
    return estimate


def requeue_delay(estimate: int) -> float:
    """When to look again while content remains: ``estimate/2 + 1`` seconds."""
    return float(estimate // 2 + 1)


def deletion_conditions(
    current: Sequence[NamespaceCondition],
    totals: ContentTotals,
    failures: Sequence[str],
    now: datetime,
) -> tuple[NamespaceCondition, ...]:
    """The namespace's conditions after a deletion pass (``updateConditions``).

    Every type of :data:`CONDITION_TYPES` is present (existing ones in their place, new
    ones appended); a condition that did not change keeps its instance, and
    ``lastTransitionTime`` moves only when the status flips. Conditions of other types
    are kept as they are.
    """
    wanted: dict[str, tuple[str, str, str]] = {}
    if failures:
        msgs = sorted(failures)
        wanted["NamespaceDeletionContentFailure"] = (
            "True",
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(msgs)} remaining: {', '.join(msgs)}",
        )
    if totals.remaining:
        parts = sorted(
            f"{label} has {n} resource instances" for label, n in totals.remaining.items() if n
        )
        wanted["NamespaceContentRemaining"] = (
            "True",
            "SomeResourcesRemain",
            f"Some resources are remaining: {', '.join(parts)}",
        )
    if totals.finalizers:
        parts = sorted(f"{f} in {n} resource instances" for f, n in totals.finalizers.items() if n)
        wanted["NamespaceFinalizersRemaining"] = (
            "True",
            "SomeFinalizersRemain",
            f"Some content in the namespace has finalizers remaining: {', '.join(parts)}",
        )

    def updated(old: NamespaceCondition) -> NamespaceCondition:
        status, reason, message = wanted.get(old.type, ("False", *_OK[old.type]))
        if (old.status, old.reason, old.message) == (status, reason, message):
            return old
        moved = now if old.status != status else old.last_transition_time
        return attrs.evolve(
            old, status=status, reason=reason, message=message, last_transition_time=moved
        )

    # Existing conditions keep their place; missing ones are appended in order.
    result = [updated(c) if c.type in _OK else c for c in current]
    present = {c.type for c in current}
    for ctype in CONDITION_TYPES:
        if ctype not in present:
            status, reason, message = wanted.get(ctype, ("False", *_OK[ctype]))
            result.append(
                NamespaceCondition(
                    type=ctype,
                    status=status,
                    last_transition_time=now,
                    reason=reason,
                    message=message,
                )
            )
    return tuple(result)


@attrs.frozen
class _Pass:
    """The outcome of one deletion pass over a namespace's content."""

    totals: ContentTotals
    estimate: int
    failures: tuple[str, ...]
    errors: tuple[errors.ApiError, ...]


class NamespaceController:
    """Deletes the content of terminating namespaces, then finalizes them."""

    name = "namespace-controller"

    def __init__(self, context: ControllerContext) -> None:
        self._client = context.client
        self._queue = context.queue
        self._log = context.log
        self._namespaces = context.informers.informer("Namespace")
        self._namespaces.add_event_handler(self._namespace_added, self._namespace_updated)
        for info in NAMESPACED_KINDS:
            if info.kind == "Event":
                continue  # removed at once when deleted: nothing to wait for
            context.informers.informer(info.kind).add_event_handler(
                None, self._content_updated, self._content_deleted
            )

    # -- handlers ---------------------------------------------------------------------

    def _namespace_added(self, ns: Any) -> None:
        if ns.metadata.deletion_timestamp is not None:
            self._queue.add(ns.metadata.name)

    def _namespace_updated(self, old: Any, new: Any) -> None:
        self._namespace_added(new)

    def _terminating(self, namespace: str) -> bool:
        ns = self._namespaces.cache.get(namespace)
        return ns is not None and ns.metadata.deletion_timestamp is not None

    def _content_updated(self, old: Any, new: Any) -> None:
        om, nm = old.metadata, new.metadata
        if om.finalizers != nm.finalizers and self._terminating(nm.namespace):
            self._queue.add(nm.namespace)

    def _content_deleted(self, obj: Any) -> None:
        if self._terminating(obj.metadata.namespace):
            self._queue.add(obj.metadata.namespace)

    # -- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        """Advance the deletion of namespace ``key``; seconds to re-check, or None.

        Raises:
            errors.ApiError: a read or write failed, or content the store should have
                removed is still there; retried with backoff.
        """
        try:
            ns = await self._client.get("Namespace", key)
        except errors.NotFound:
            return None
        meta = ns.metadata
        if meta.deletion_timestamp is None or NAMESPACE_FINALIZER not in ns.spec.finalizers:
            return None
        logger = self._log.bind(namespace=key)
        result = await self._delete_content(key, meta.deletion_timestamp)
        conditions = deletion_conditions(
            ns.status.conditions, result.totals, result.failures, wall_now()
        )
        if conditions != ns.status.conditions:
            ns = await self._client.update_status(
                attrs.evolve(ns, status=attrs.evolve(ns.status, conditions=conditions))
            )
        if result.errors:
            raise result.errors[0]
        if result.totals.remaining:
            logger.debug(
                "namespace_content_remaining",
                remaining=dict(result.totals.remaining),
                estimate=result.estimate,
            )
            return requeue_delay(result.estimate)
        finalizers = tuple(f for f in ns.spec.finalizers if f != NAMESPACE_FINALIZER)
        await self._client.finalize_namespace(
            attrs.evolve(ns, spec=attrs.evolve(ns.spec, finalizers=finalizers))
        )
        logger.info("namespace_finalized")
        return None

    async def _delete_content(self, namespace: str, deleted_at: datetime) -> _Pass:
        content: list[tuple[KindInfo, Sequence[Any]]] = []
        estimate = 0
        failures: list[str] = []
        raised: list[errors.ApiError] = []
        for info in NAMESPACED_KINDS:
            try:
                remaining, kind_estimate = await self._delete_kind(info, namespace, deleted_at)
            except errors.ApiError as exc:
                failures.append(str(exc))
                raised.append(exc)
                if info.kind == "Pod":
                    break  # ordered deletion: nothing else goes before the pods
                continue
            estimate = max(estimate, kind_estimate)
            if remaining:
                content.append((info, remaining))
                if kind_estimate == 0:
                    if not any(obj.metadata.finalizers for obj in remaining):
                        message = (
                            f"unexpected items still remain in namespace: {namespace} for gvr:"
                            f" {_gvr(info)}"
                        )
                        failures.append(message)
                        raised.append(errors.ApiError(message, kind="Namespace", name=namespace))
                    else:
                        estimate = max(estimate, FINALIZER_ESTIMATE_SECONDS)
            if info.kind == "Pod" and remaining:
                break  # ordered deletion: nothing else goes while pods remain
        totals = ContentTotals.count(content)
        return _Pass(totals, estimate, tuple(failures), tuple(raised))

    async def _delete_kind(
        self, info: KindInfo, namespace: str, deleted_at: datetime
    ) -> tuple[Sequence[Any], int]:
        """Delete every ``info`` object in ``namespace``; return what is still there and
        the kind's estimate of how long it takes to go."""
        client = self._client
        listed = await client.list(info.kind, namespace=namespace)
        if not listed.items:
            return (), 0
        estimate = 0
        if info.kind == "Pod":
            estimate = pod_termination_estimate(listed.items, deleted_at, wall_now())
        for obj in listed.items:
            if _delete_is_noop(obj):
                continue
            with contextlib.suppress(errors.NotFound):  # gone meanwhile: fine
                await client.delete(
                    info.kind,
                    obj.metadata.name,
                    namespace=namespace,
                    propagation_policy="Background",
                )
        remaining = (await client.list(info.kind, namespace=namespace)).items
        return remaining, estimate


def _delete_is_noop(obj: Any) -> bool:
    """Whether a Background delete would change nothing: the object is being deleted
    already and carries no GC finalizer for the policy to strip (each pass would
    otherwise re-send one delete per terminating pod)."""
    meta = obj.metadata
    return meta.deletion_timestamp is not None and not (
        ORPHAN in meta.finalizers or FOREGROUND in meta.finalizers
    )


def _gvr(info: KindInfo) -> str:
    """A GroupVersionResource as Go prints it: ``/v1, Resource=pods``."""
    return f"{info.group}/{info.api_version.rpartition('/')[2]}, Resource={info.plural}"
