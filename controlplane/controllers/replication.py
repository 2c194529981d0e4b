"""The decisions a ReplicaSet or ReplicationController makes, as pure functions.

Kubernetes shares one controller between the two kinds (``pkg/controller/replicaset``;
the ReplicationManager wraps ReplicationControllers as ReplicaSets); here both kinds share
these functions and one actor class (:mod:`controlplane.controllers.replicaset`):

- :func:`claim_dependents`: which pods (or, for a Deployment, ReplicaSets) the owner
  keeps, adopts (orphans its selector matches) and releases (those it owns that stopped
  matching) — ``ControllerRefManager.ClaimPods``;
- :func:`scale_plan`: create or delete how many, capped at 500 per sync
  (``burstReplicas``);
- :func:`slow_start_batches`: creations go out in batches of 1, 2, 4 … and stop at the
  first batch with an error, so a quota or admission refusal costs one failed call, not
  500;
- :func:`pods_to_delete`: Kubernetes' scale-down order (``ActivePodsWithRanks``):
  unscheduled before scheduled, Pending < Unknown < Running, not ready before ready,
  lower ``controller.kubernetes.io/pod-deletion-cost``, pods doubled up on a node with
  more of their siblings, ready for less time, more restarts, newer — ready and
  creation times compared in log2 buckets (LogarithmicScaleDown, on by default), ties
  broken by uid;
- :func:`replica_counts`: the status figures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import attrs

from controlplane.api.core_pod import Pod
from controlplane.api.labels import Selector
from controlplane.controllers.pods import is_available, is_ready, ready_since, restart_count

__all__ = [
    "BURST_REPLICAS",
    "DELETION_COST_ANNOTATION",
    "Claim",
    "ReplicaCounts",
    "claim_dependents",
    "pods_to_delete",
    "replica_counts",
    "scale_plan",
    "slow_start_batches",
]

#: ``burstReplicas``: at most this many creations or deletions per sync.
BURST_REPLICAS = 500
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


@attrs.frozen
class Claim:
    """The outcome of :func:`claim_dependents`: ``owned`` includes the pods to ``adopt``."""

    owned: tuple[Pod, ...]
    adopt: tuple[Pod, ...]
    release: tuple[Pod, ...]


def claim_dependents(
    owner_uid: str,
    namespace: str,
    selector: Selector,
    owner_deleting: bool,
    pods: Iterable[Pod],
) -> Claim:
    """Sort candidate dependents (pods of a ReplicaSet, ReplicaSets of a Deployment) into
    what the owner keeps, adopts and releases. An owner being deleted neither adopts nor
    releases."""
    owned: list[Pod] = []
    adopt: list[Pod] = []
    release: list[Pod] = []
    for pod in pods:
        meta = pod.metadata
        ref = meta.controller_ref()
        matches = selector.matches(meta.labels)
        if ref is not None:
            if ref.uid != owner_uid:
                continue
            if matches:
                owned.append(pod)
            elif not owner_deleting:
                release.append(pod)
            continue
        if (
            owner_deleting
            or not matches
            or meta.deletion_timestamp is not None
            or meta.namespace != namespace
        ):
            continue
        adopt.append(pod)
        owned.append(pod)
    return Claim(tuple(owned), tuple(adopt), tuple(release))


def scale_plan(active: int, replicas: int) -> int:
    """Pods to create (> 0) or delete (< 0), at most :data:`BURST_REPLICAS` either way."""
    diff = replicas - active
    return max(-BURST_REPLICAS, min(BURST_REPLICAS, diff))


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes for ``count`` creations: 1, 2, 4 … (the last one what is left)."""
    batches: list[int] = []
    size = min(count, initial)
    remaining = count
    while remaining > 0:
        batches.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return batches


def _deletion_cost(pod: Pod) -> int:
    value = pod.metadata.annotations.get(DELETION_COST_ANNOTATION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0  # Kubernetes ignores an unparsable cost


def _log_rank(t: datetime, now: datetime) -> int:
    nanos = (now - t).total_seconds() * 1e9
    return int(math.log2(nanos)) if nanos > 0 else -1


def _time_less(t1: datetime | None, t2: datetime | None, now: datetime | None) -> int:
    """-1 if the pod with ``t1`` goes first, 1 if the other, 0 if undecided (uid)."""
    if t1 is None or t2 is None or now is None:
        # "afterOrZero": a missing time first, else the later one first
        if t1 is None:
            return -1
        if t2 is None:
            return 1
        return -1 if t1 > t2 else 1
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    return 0 if diff == 0 else (-1 if diff < 0 else 1)


def _compare(a: Pod, b: Pod, rank_a: int, rank_b: int, now: datetime | None) -> int:
    """``ActivePodsWithRanks.Less`` as a three-way comparison (-1: ``a`` goes first)."""
    node_a, node_b = a.spec.node_name or "", b.spec.node_name or ""
    if node_a != node_b and (not node_a or not node_b):
        return -1 if not node_a else 1
    phase_a = _PHASE_ORDINAL.get(a.status.phase or "Pending", 0)
    phase_b = _PHASE_ORDINAL.get(b.status.phase or "Pending", 0)
    if phase_a != phase_b:
        return -1 if phase_a < phase_b else 1
    ready_a, ready_b = is_ready(a), is_ready(b)
    if ready_a != ready_b:
        return -1 if not ready_a else 1
    cost_a, cost_b = _deletion_cost(a), _deletion_cost(b)
    if cost_a != cost_b:
        return -1 if cost_a < cost_b else 1
    if rank_a != rank_b:
        return -1 if rank_a > rank_b else 1
    uid_order = -1 if a.metadata.uid < b.metadata.uid else 1
    if ready_a and ready_b:
        since_a, since_b = ready_since(a), ready_since(b)
        if since_a != since_b:
            decided = _time_less(since_a, since_b, now)
            return decided or uid_order
    restarts_a, restarts_b = restart_count(a), restart_count(b)
    if restarts_a != restarts_b:
        return -1 if restarts_a > restarts_b else 1
    created_a, created_b = a.metadata.creation_timestamp, b.metadata.creation_timestamp
    if created_a != created_b:
        decided = _time_less(created_a, created_b, now)
        return decided or uid_order
    return 0


def pods_to_delete(
    pods: Sequence[Pod], count: int, related: Iterable[Pod], now: datetime | None
) -> list[Pod]:
    """The ``count`` pods of ``pods`` to delete first. ``related`` are the active pods
    of the owner and its siblings (ReplicaSets of the same Deployment): a pod's rank is
    how many of them share its node."""
    if count >= len(pods):
        return list(pods)
    per_node: dict[str, int] = {}
    for pod in related:
        node = pod.spec.node_name
        if node:
            per_node[node] = per_node.get(node, 0) + 1
    ranked = [(pod, per_node.get(pod.spec.node_name or "", 0)) for pod in pods]
    ordered = sorted(
        ranked,
        key=functools.cmp_to_key(lambda x, y: _compare(x[0], y[0], x[1], y[1], now)),
    )
    return [pod for pod, _ in ordered[:count]]


@attrs.frozen
class ReplicaCounts:
    replicas: int
    fully_labeled: int
    ready: int
    available: int
    #: seconds until the next ready pod becomes available (None: none is waiting)
    next_available_in: float | None = None


def replica_counts(
    pods: Sequence[Pod],
    template_labels: Callable[[Pod], bool],
    min_ready_seconds: int,
    now: datetime,
) -> ReplicaCounts:
    """``calculateStatus``: ``pods`` are the owner's active pods; ``template_labels``
    tells whether a pod carries every label of the template. ``now`` at full precision
    (Kubernetes compares the second-truncated lastTransitionTime with ``metav1.Now()``)."""
    fully = ready = available = 0
    waits: list[float] = []
    for pod in pods:
        if template_labels(pod):
            fully += 1
        if is_ready(pod):
            ready += 1
            if is_available(pod, min_ready_seconds, now):
                available += 1
            else:
                since = ready_since(pod)
                if since is not None:
                    waits.append((since - now).total_seconds() + min_ready_seconds)
    next_in = max(min(waits), 0.0) if waits else None
    return ReplicaCounts(len(pods), fully, ready, available, next_in)
