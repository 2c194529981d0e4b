"""The decisions of a Deployment rollout, as pure functions (``pkg/controller/deployment``).

A Deployment owns ReplicaSets: the *new* one, whose template equals the Deployment's
(ignoring the ``pod-template-hash`` label), and *old* ones. Everything here reads
ReplicaSets and the Deployment and returns numbers or new objects; the actor
(:mod:`controlplane.controllers.deployment`) writes them.

- :func:`fenceposts`: maxSurge rounds up, maxUnavailable down; both 0 → unavailable 1;
- :func:`new_rs_replicas` / :func:`old_rs_scale_down`: one step of a rolling update,
  never above ``replicas + maxSurge`` pods nor below ``replicas - maxUnavailable``
  available ones (``NewRSNewReplicas``, ``reconcileOldReplicaSets`` with its clean-up of
  unhealthy replicas first). Kubernetes counts ReplicaSets by ``spec.replicas`` there,
  so for a moment after an old ReplicaSet is scaled down (its pods not yet deleted) the
  new one may already grow: more pods than the bound exist. Here a ReplicaSet counts for
  the larger of its spec and its status (pods it still has), and toward availability for
  at most its spec, so the bounds hold for the pods themselves, at every store change;
- :func:`proportional_scale`: a scaling event in mid-rollout spreads the change over the
  active ReplicaSets in proportion to their size (``scale``);
- :func:`deployment_status` and :func:`rollout_conditions`: status and the Available /
  Progressing conditions, with the progress deadline;
- :func:`pod_template_hash`: the ReplicaSet name suffix. Kubernetes hashes its Go struct
  dump with FNV-32a; this hashes the canonical JSON of the template the same way (same
  format and alphabet, different values for the same template).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from controlplane.api.apps import Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet
from controlplane.api.core_pod import PodTemplateSpec

__all__ = [
    "DESIRED_REPLICAS_ANNOTATION",
    "HASH_LABEL",
    "MAX_REPLICAS_ANNOTATION",
    "REVISION_ANNOTATION",
    "deployment_status",
    "fenceposts",
    "find_new_rs",
    "max_revision",
    "new_rs_replicas",
    "old_rs_scale_down",
    "pod_template_hash",
    "proportional_scale",
    "revision_of",
    "rollout_conditions",
    "scaled_value",
    "template_without_hash",
]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
#: Deployment annotations not copied onto its ReplicaSets (``annotationsToSkip``).
SKIPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        "deprecated.deployment.rollback.to",
    }
)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Condition reasons (deployment/util).
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


# -- numbers ---------------------------------------------------------------------------


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"25%"`` of ``total`` rounded."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    scaled = int(value[:-1]) * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def fenceposts(deployment: Deployment) -> tuple[int, int]:
    """``(maxSurge, maxUnavailable)`` resolved against ``spec.replicas``
    (``ResolveFenceposts``); both 0 for Recreate."""
    strategy = deployment.spec.strategy
    if strategy.type != "RollingUpdate" or strategy.rolling_update is None:
        return 0, 0
    desired = deployment.spec.replicas or 0
    rolling = strategy.rolling_update
    surge = scaled_value(rolling.max_surge, desired, round_up=True)
    unavailable = scaled_value(rolling.max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(deployment: Deployment) -> int:
    desired = deployment.spec.replicas or 0
    if desired == 0:
        return 0
    return min(fenceposts(deployment)[1], desired)


def max_surge(deployment: Deployment) -> int:
    return fenceposts(deployment)[0]


def _replicas(rs: ReplicaSet) -> int:
    return rs.spec.replicas or 0


def _spec_total(sets: Iterable[ReplicaSet]) -> int:
    return sum(_replicas(rs) for rs in sets)


def _pods_total(sets: Iterable[ReplicaSet]) -> int:
    """An upper bound on the pods that exist: a ReplicaSet just scaled down still has
    its old pods until its controller deletes them (and reports so in status)."""
    return sum(max(_replicas(rs), rs.status.replicas) for rs in sets)


def _counted_available(sets: Iterable[ReplicaSet]) -> int:
    """A lower bound on available pods: those beyond a ReplicaSet's spec are about to
    be deleted, whatever its (older) status says."""
    return sum(min(rs.status.available_replicas, _replicas(rs)) for rs in sets)


def _available_total(sets: Iterable[ReplicaSet]) -> int:
    return sum(rs.status.available_replicas for rs in sets)


def _by_creation(sets: Iterable[ReplicaSet]) -> list[ReplicaSet]:
    """Oldest first, names breaking ties (``ReplicaSetsByCreationTimestamp``)."""
    return sorted(
        sets,
        key=lambda rs: (rs.metadata.creation_timestamp or datetime.min, rs.metadata.name),
    )


# -- templates, hashes, revisions ------------------------------------------------------


def template_without_hash(template: PodTemplateSpec) -> PodTemplateSpec:
    labels = template.metadata.labels
    if HASH_LABEL not in labels:
        return template
    stripped = {k: v for k, v in labels.items() if k != HASH_LABEL}
    return attrs.evolve(template, metadata=attrs.evolve(template.metadata, labels=stripped))


def pod_template_hash(template: PodTemplateSpec, collision_count: int | None) -> str:
    """``ComputeHash``: FNV-32a of the template (and the collision count), its decimal
    digits mapped onto Kubernetes' safe alphabet."""
    from controlplane.api.serialization import to_dict

    data = json.dumps(to_dict(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(h))


def revision_of(rs: ReplicaSet) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def max_revision(sets: Iterable[ReplicaSet]) -> int:
    return max((revision_of(rs) for rs in sets), default=0)


def find_new_rs(deployment: Deployment, sets: Sequence[ReplicaSet]) -> ReplicaSet | None:
    """The oldest ReplicaSet whose template equals the Deployment's, hash aside
    (``FindNewReplicaSet``)."""
    wanted = template_without_hash(deployment.spec.template)
    for rs in _by_creation(sets):
        if template_without_hash(rs.spec.template) == wanted:
            return rs
    return None


def replica_annotations(deployment: Deployment, annotations: Any) -> dict[str, str]:
    """``annotations`` with desired-replicas and max-replicas set
    (``SetReplicasAnnotations``)."""
    desired = deployment.spec.replicas or 0
    return {
        **annotations,
        DESIRED_REPLICAS_ANNOTATION: str(desired),
        MAX_REPLICAS_ANNOTATION: str(desired + max_surge(deployment)),
    }


def copied_annotations(deployment: Deployment) -> dict[str, str]:
    """The Deployment's annotations a ReplicaSet inherits."""
    return {
        k: v for k, v in deployment.metadata.annotations.items() if k not in SKIPPED_ANNOTATIONS
    }


# -- one rolling-update step -----------------------------------------------------------


def new_rs_replicas(
    deployment: Deployment, all_sets: Sequence[ReplicaSet], new_rs: ReplicaSet
) -> int:
    """What the new ReplicaSet scales to now (``NewRSNewReplicas``)."""
    desired = deployment.spec.replicas or 0
    if deployment.spec.strategy.type != "RollingUpdate":
        return desired
    current = _pods_total(all_sets)
    max_total = desired + max_surge(deployment)
    if current >= max_total:
        return _replicas(new_rs)
    scale_up = min(max_total - current, desired - _replicas(new_rs))
    return _replicas(new_rs) + scale_up


def old_rs_scale_down(
    deployment: Deployment, old_sets: Sequence[ReplicaSet], new_rs: ReplicaSet
) -> dict[str, int]:
    """New sizes of old ReplicaSets (``reconcileOldReplicaSets``): first unhealthy
    replicas (those not available), then healthy ones while availability stays at or
    above ``replicas - maxUnavailable``; oldest ReplicaSets first."""
    if _spec_total(old_sets) == 0:
        return {}
    all_sets = [*old_sets, new_rs]
    desired = deployment.spec.replicas or 0
    min_available = desired - max_unavailable(deployment)
    new_unavailable = _replicas(new_rs) - new_rs.status.available_replicas
    max_scaled_down = _spec_total(all_sets) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    sizes = {rs.metadata.name: _replicas(rs) for rs in old_sets}
    cleaned = 0
    for rs in _by_creation(old_sets):
        if cleaned >= max_scaled_down:
            break
        size = sizes[rs.metadata.name]
        if size == 0 or rs.status.available_replicas >= size:
            continue  # healthy (or about to shed pods it still counts as available)
        down = min(max_scaled_down - cleaned, size - rs.status.available_replicas)
        sizes[rs.metadata.name] = size - down
        cleaned += down
    # healthy ones, keeping minAvailable
    available = _counted_available(all_sets)
    if available > min_available:
        budget = available - min_available
        done = 0
        for rs in _by_creation(old_sets):
            if done >= budget:
                break
            size = sizes[rs.metadata.name]
            if size == 0:
                continue
            down = min(size, budget - done)
            sizes[rs.metadata.name] = size - down
            done += down
    return {name: size for name, size in sizes.items() if size != _replicas(_named(old_sets, name))}


def _named(sets: Iterable[ReplicaSet], name: str) -> ReplicaSet:
    return next(rs for rs in sets if rs.metadata.name == name)


# -- proportional scaling --------------------------------------------------------------


def _annotated_max(rs: ReplicaSet) -> int | None:
    value = rs.metadata.annotations.get(MAX_REPLICAS_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _fraction(rs: ReplicaSet, deployment: Deployment) -> int:
    """``getReplicaSetFraction``."""
    desired = deployment.spec.replicas or 0
    if desired == 0:
        return -_replicas(rs)
    allowed = desired + max_surge(deployment)
    annotated = _annotated_max(rs)
    if annotated is None:
        annotated = deployment.status.replicas
    if annotated == 0:
        return 0
    size = _replicas(rs) * allowed / annotated
    return math.floor(size + 0.5) - _replicas(rs)  # RoundToInt32: half away from zero


def proportional_scale(
    deployment: Deployment, new_rs: ReplicaSet | None, old_sets: Sequence[ReplicaSet]
) -> dict[str, int]:
    """New sizes after a change of ``spec.replicas`` (``DeploymentController.scale``):
    the ReplicaSets to scale (to the same size, in the proportional case, where they still
    get the new desired/max-replicas annotations)."""
    desired = deployment.spec.replicas or 0
    every = [*old_sets, *([new_rs] if new_rs is not None else [])]
    active = [rs for rs in every if _replicas(rs) > 0]
    if len(active) <= 1:
        target = active[0] if active else (new_rs or (_by_creation(every)[-1] if every else None))
        if target is None or _replicas(target) == desired:
            return {}
        return {target.metadata.name: desired}
    if new_rs is not None and _saturated(deployment, new_rs):
        return {rs.metadata.name: 0 for rs in old_sets if _replicas(rs) > 0}
    if deployment.spec.strategy.type != "RollingUpdate":
        return {}
    allowed = desired + max_surge(deployment) if desired > 0 else 0
    to_add = allowed - _spec_total(active)
    if to_add == 0:
        return {}
    newer_first = to_add > 0

    def size_order(rs: ReplicaSet) -> tuple[Any, ...]:
        created = rs.metadata.creation_timestamp or datetime.min
        stamp = created.timestamp() if created != datetime.min else float("-inf")
        # bigger first; among equals newer first (scaling up) or older first (down)
        return (-_replicas(rs), -stamp if newer_first else stamp, rs.metadata.name)

    ordered = sorted(active, key=size_order)
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = 0
        if _replicas(rs) and to_add != added:
            fraction = _fraction(rs, deployment)
            left = to_add - added
            proportion = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs.metadata.name] = _replicas(rs) + proportion
        added += proportion
    first = ordered[0].metadata.name
    sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes  # every active one: each gets the new replica annotations too


def _saturated(deployment: Deployment, rs: ReplicaSet) -> bool:
    desired = deployment.spec.replicas or 0
    annotated = rs.metadata.annotations.get(DESIRED_REPLICAS_ANNOTATION)
    return (
        _replicas(rs) == desired
        and annotated == str(desired)
        and rs.status.available_replicas == desired
    )


def is_scaling_event(deployment: Deployment, sets: Iterable[ReplicaSet]) -> bool:
    """An active ReplicaSet was sized for another ``spec.replicas`` (``isScalingEvent``)."""
    desired = str(deployment.spec.replicas or 0)
    for rs in sets:
        if _replicas(rs) <= 0:
            continue
        annotated = rs.metadata.annotations.get(DESIRED_REPLICAS_ANNOTATION)
        if annotated is not None and annotated != desired:
            return True
    return False


def history_to_clean(deployment: Deployment, old_sets: Sequence[ReplicaSet]) -> list[ReplicaSet]:
    """Old ReplicaSets past ``revisionHistoryLimit``, lowest revision first, that are
    scaled to zero and settled (``cleanupDeployment``)."""
    limit = deployment.spec.revision_history_limit
    if limit is None:
        return []
    alive = [rs for rs in old_sets if rs.metadata.deletion_timestamp is None]
    excess = len(alive) - limit
    if excess <= 0:
        return []
    ordered = sorted(alive, key=lambda rs: (revision_of(rs), rs.metadata.name))
    return [
        rs
        for rs in ordered[:excess]
        if rs.status.replicas == 0
        and _replicas(rs) == 0
        and rs.metadata.generation <= rs.status.observed_generation
    ]


# -- status ----------------------------------------------------------------------------


def deployment_status(
    deployment: Deployment, all_sets: Sequence[ReplicaSet], new_rs: ReplicaSet | None, now: datetime
) -> DeploymentStatus:
    """``calculateStatus``: counts, and the Available condition."""
    available = _available_total(all_sets)
    total = _spec_total(all_sets)
    status = attrs.evolve(
        deployment.status,
        observed_generation=deployment.metadata.generation,
        replicas=sum(rs.status.replicas for rs in all_sets),
        updated_replicas=new_rs.status.replicas if new_rs is not None else 0,
        ready_replicas=sum(rs.status.ready_replicas for rs in all_sets),
        available_replicas=available,
        unavailable_replicas=max(total - available, 0),
    )
    desired = deployment.spec.replicas or 0
    if available >= desired - max_unavailable(deployment):
        condition = new_condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    else:
        condition = new_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    return set_condition(status, condition)


def new_condition(
    type_: str, status: str, reason: str, message: str, now: datetime
) -> DeploymentCondition:
    return DeploymentCondition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_update_time=now,
        last_transition_time=now,
    )


def get_condition(status: DeploymentStatus, type_: str) -> DeploymentCondition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def set_condition(status: DeploymentStatus, condition: DeploymentCondition) -> DeploymentStatus:
    """``SetDeploymentCondition``: no change if status and reason are the same; the
    transition time kept while the status is."""
    current = get_condition(status, condition.type)
    if (
        current is not None
        and current.status == condition.status
        and current.reason == condition.reason
    ):
        return status
    if current is not None and current.status == condition.status:
        condition = attrs.evolve(condition, last_transition_time=current.last_transition_time)
    kept = tuple(c for c in status.conditions if c.type != condition.type)
    return attrs.evolve(status, conditions=(*kept, condition))


def remove_condition(status: DeploymentStatus, type_: str) -> DeploymentStatus:
    kept = tuple(c for c in status.conditions if c.type != type_)
    return status if len(kept) == len(status.conditions) else attrs.evolve(status, conditions=kept)


def has_progress_deadline(deployment: Deployment) -> bool:
    deadline = deployment.spec.progress_deadline_seconds
    return deadline is not None and deadline != 2**31 - 1


def is_complete(deployment: Deployment, status: DeploymentStatus) -> bool:
    desired = deployment.spec.replicas or 0
    return (
        status.updated_replicas == desired
        and status.replicas == desired
        and status.available_replicas == desired
        and status.observed_generation >= deployment.metadata.generation
    )


def _progressing(deployment: Deployment, new: DeploymentStatus) -> bool:
    old = deployment.status
    return (
        new.updated_replicas > old.updated_replicas
        or (new.replicas - new.updated_replicas) < (old.replicas - old.updated_replicas)
        or new.ready_replicas > old.ready_replicas
        or new.available_replicas > old.available_replicas
    )


def _timed_out(deployment: Deployment, status: DeploymentStatus, now: datetime) -> bool:
    condition = get_condition(status, "Progressing")
    if condition is None or condition.reason == NEW_RS_AVAILABLE:
        return False
    if condition.reason == TIMED_OUT:
        return True
    deadline = timedelta(seconds=deployment.spec.progress_deadline_seconds or 0)
    since = condition.last_update_time or condition.last_transition_time
    return since is not None and since + deadline < now


def rollout_conditions(
    deployment: Deployment,
    status: DeploymentStatus,
    new_rs: ReplicaSet | None,
    failure: Any,
    now: datetime,
) -> DeploymentStatus:
    """``syncRolloutStatus``: Progressing (complete, progressing, timed out) and
    ReplicaFailure (copied from a ReplicaSet that cannot create pods)."""
    if not has_progress_deadline(deployment):
        status = remove_condition(status, "Progressing")
    current = get_condition(deployment.status, "Progressing")
    complete_before = (
        status.replicas == status.updated_replicas
        and current is not None
        and current.reason == NEW_RS_AVAILABLE
    )
    what = (
        f'ReplicaSet "{new_rs.metadata.name}"'
        if new_rs is not None
        else (f'Deployment "{deployment.metadata.name}"')
    )
    if has_progress_deadline(deployment) and not complete_before:
        if is_complete(deployment, status):
            status = set_condition(
                status,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_AVAILABLE,
                    f"{what} has successfully progressed.",
                    now,
                ),
            )
        elif _progressing(deployment, status):
            condition = new_condition(
                "Progressing", "True", RS_UPDATED, f"{what} is progressing.", now
            )
            if current is not None and current.status == "True":
                condition = attrs.evolve(
                    condition, last_transition_time=current.last_transition_time
                )
            status = set_condition(remove_condition(status, "Progressing"), condition)
        elif _timed_out(deployment, status, now):
            status = set_condition(
                status,
                new_condition(
                    "Progressing", "False", TIMED_OUT, f"{what} has timed out progressing.", now
                ),
            )
    if failure is not None:
        status = set_condition(
            status,
            new_condition(
                "ReplicaFailure", failure.status, failure.reason or "", failure.message or "", now
            ),
        )
    else:
        status = remove_condition(status, "ReplicaFailure")
    return status


def seconds_until_deadline(
    deployment: Deployment, status: DeploymentStatus, now: datetime
) -> float | None:
    """When a stuck rollout must be re-checked for its deadline (``requeueStuckDeployment``)."""
    condition = get_condition(status, "Progressing")
    if (
        not has_progress_deadline(deployment)
        or condition is None
        or condition.status != "True"
        or condition.reason != RS_UPDATED
        or is_complete(deployment, status)
        or condition.last_update_time is None
    ):
        return None
    deadline = condition.last_update_time + timedelta(
        seconds=deployment.spec.progress_deadline_seconds or 0
    )
    return max((deadline - now).total_seconds(), 0.0) + 1.0


def paused_condition(deployment: Deployment, now: datetime) -> DeploymentStatus | None:
    """``checkPausedConditions``: the status with Progressing Unknown/DeploymentPaused (or
    DeploymentResumed), or None if nothing changes."""
    if not has_progress_deadline(deployment):
        return None
    current = get_condition(deployment.status, "Progressing")
    if current is not None and current.reason == TIMED_OUT:
        return None
    paused_now = current is not None and current.reason == PAUSED
    if deployment.spec.paused and not paused_now:
        condition = new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused", now)
    elif not deployment.spec.paused and paused_now:
        condition = new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed", now)
    else:
        return None
    return set_condition(deployment.status, condition)
