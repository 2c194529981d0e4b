"""apps/v1 kinds: Deployment and ReplicaSet.

Follows the conventions in ``controlplane.api.core`` (see its module docstring).
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import attrs

from controlplane.api.core_pod import PodTemplateSpec, as_tuple
from controlplane.api.meta import LabelSelector, ObjectMeta

__all__ = [
    "Deployment",
    "DeploymentCondition",
    "DeploymentSpec",
    "DeploymentStatus",
    "DeploymentStrategy",
    "ReplicaSet",
    "ReplicaSetCondition",
    "ReplicaSetSpec",
    "ReplicaSetStatus",
    "RollingUpdateDeployment",
]


@attrs.frozen(kw_only=True)
class RollingUpdateDeployment:
    #: A count or a percentage (``"25%"``) of the desired replicas (IntOrString).
    max_unavailable: int | str | None = None
    max_surge: int | str | None = None


@attrs.frozen(kw_only=True)
class DeploymentStrategy:
    """``type`` is RollingUpdate or Recreate."""

    type: str | None = None
    rolling_update: RollingUpdateDeployment | None = None


@attrs.frozen(kw_only=True)
class DeploymentSpec:
    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = PodTemplateSpec()
    strategy: DeploymentStrategy = DeploymentStrategy()
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    paused: bool | None = None
    progress_deadline_seconds: int | None = None


@attrs.frozen(kw_only=True)
class DeploymentCondition:
    type: str = ""
    status: str = ""
    last_update_time: datetime | None = None
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class DeploymentStatus:
    observed_generation: int = 0
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    unavailable_replicas: int = 0
    conditions: tuple[DeploymentCondition, ...] = attrs.field(default=(), converter=as_tuple)
    collision_count: int | None = None


@attrs.frozen(kw_only=True)
class Deployment:
    kind: ClassVar[str] = "Deployment"
    api_version: ClassVar[str] = "apps/v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: DeploymentSpec = DeploymentSpec()
    status: DeploymentStatus = DeploymentStatus()


@attrs.frozen(kw_only=True)
class ReplicaSetSpec:
    replicas: int | None = None
    min_ready_seconds: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = PodTemplateSpec()


@attrs.frozen(kw_only=True)
class ReplicaSetCondition:
    type: str = ""
    status: str = ""
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class ReplicaSetStatus:
    replicas: int = 0
    fully_labeled_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    observed_generation: int = 0
    conditions: tuple[ReplicaSetCondition, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class ReplicaSet:
    kind: ClassVar[str] = "ReplicaSet"
    api_version: ClassVar[str] = "apps/v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: ReplicaSetSpec = ReplicaSetSpec()
    status: ReplicaSetStatus = ReplicaSetStatus()
