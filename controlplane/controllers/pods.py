"""What workload controllers read off pods and how they stamp them from a template.

Kubernetes keeps these in ``pkg/api/v1/pod`` and ``pkg/controller/controller_utils.go``;
they are pure functions of a pod (and the time, where availability is concerned).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from controlplane.api.core_pod import Pod, PodTemplateSpec
from controlplane.api.meta import ObjectMeta, OwnerReference

__all__ = [
    "is_active",
    "is_available",
    "is_ready",
    "owner_reference",
    "pod_from_template",
    "ready_since",
    "restart_count",
    "with_owner_references",
]


def is_active(pod: Pod) -> bool:
    """Counts toward a workload's replicas: not terminal and not being deleted."""
    return pod.metadata.deletion_timestamp is None and pod.status.phase not in (
        "Succeeded",
        "Failed",
    )


def _ready_condition(pod: Pod) -> Any:
    for condition in pod.status.conditions:
        if condition.type == "Ready":
            return condition
    return None


def is_ready(pod: Pod) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.status == "True"


def ready_since(pod: Pod) -> datetime | None:
    """When the pod last became Ready (its Ready condition's lastTransitionTime)."""
    condition = _ready_condition(pod)
    if condition is None or condition.status != "True":
        return None
    return condition.last_transition_time


def is_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for ``min_ready_seconds`` (``podutil.IsPodAvailable``). Go compares with a
    strict ``Before``; in virtual time the two instants are often exactly equal, and a
    strict test would make a controller re-check at the very instant it was woken for."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds == 0 or since + timedelta(seconds=min_ready_seconds) <= now


def restart_count(pod: Pod) -> int:
    return sum(s.restart_count for s in pod.status.container_statuses)


def owner_reference(owner: Any) -> OwnerReference:
    """A controller reference to ``owner`` that blocks its foreground deletion."""
    cls = type(owner)
    return OwnerReference(
        api_version=cls.api_version,
        kind=cls.kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


def pod_from_template(
    template: PodTemplateSpec,
    owner: Any,
    *,
    generate_name: str | None = None,
    labels: Any = None,
) -> Pod:
    """The pod ``owner`` creates from ``template`` (``GetPodFromTemplate``): the
    template's labels (or ``labels``), annotations and finalizers, ``generateName``
    ``<owner>-``, a controller reference. The spec object is the template's own, shared
    (frozen), so 10,000 replicas cost one spec."""
    meta = template.metadata
    return Pod(
        metadata=ObjectMeta(
            generate_name=generate_name or f"{owner.metadata.name}-",
            namespace=owner.metadata.namespace,
            labels=meta.labels if labels is None else labels,
            annotations=meta.annotations,
            finalizers=meta.finalizers,
            owner_references=(owner_reference(owner),),
        ),
        spec=template.spec,
    )


def with_owner_references(obj: Any, refs: tuple[OwnerReference, ...]) -> Any:
    return attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, owner_references=refs))
