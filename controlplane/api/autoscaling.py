"""autoscaling/v2 kinds: HorizontalPodAutoscaler.

Follows the conventions in ``controlplane.api.core`` (see its module docstring).
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import attrs

from controlplane.api.core_pod import as_tuple, optional_quantity
from controlplane.api.meta import LabelSelector, ObjectMeta
from controlplane.api.quantity import Quantity

__all__ = [
    "ContainerResourceMetricSource",
    "ContainerResourceMetricStatus",
    "CrossVersionObjectReference",
    "ExternalMetricSource",
    "ExternalMetricStatus",
    "HPAScalingPolicy",
    "HPAScalingRules",
    "HorizontalPodAutoscaler",
    "HorizontalPodAutoscalerBehavior",
    "HorizontalPodAutoscalerCondition",
    "HorizontalPodAutoscalerSpec",
    "HorizontalPodAutoscalerStatus",
    "MetricIdentifier",
    "MetricSpec",
    "MetricStatus",
    "MetricTarget",
    "MetricValueStatus",
    "ObjectMetricSource",
    "ObjectMetricStatus",
    "PodsMetricSource",
    "PodsMetricStatus",
    "ResourceMetricSource",
    "ResourceMetricStatus",
]


@attrs.frozen(kw_only=True)
class CrossVersionObjectReference:
    kind: str = ""
    name: str = ""
    api_version: str | None = None


@attrs.frozen(kw_only=True)
class MetricTarget:
    """``type`` is Utilization, Value or AverageValue."""

    type: str = ""
    value: Quantity | None = attrs.field(default=None, converter=optional_quantity)
    average_value: Quantity | None = attrs.field(default=None, converter=optional_quantity)
    average_utilization: int | None = None


@attrs.frozen(kw_only=True)
class MetricValueStatus:
    value: Quantity | None = attrs.field(default=None, converter=optional_quantity)
    average_value: Quantity | None = attrs.field(default=None, converter=optional_quantity)
    average_utilization: int | None = None


@attrs.frozen(kw_only=True)
class MetricIdentifier:
    name: str = ""
    selector: LabelSelector | None = None


@attrs.frozen(kw_only=True)
class ResourceMetricSource:
    name: str = ""
    target: MetricTarget = MetricTarget()


@attrs.frozen(kw_only=True)
class ContainerResourceMetricSource:
    name: str = ""
    target: MetricTarget = MetricTarget()
    container: str = ""


@attrs.frozen(kw_only=True)
class PodsMetricSource:
    metric: MetricIdentifier = MetricIdentifier()
    target: MetricTarget = MetricTarget()


@attrs.frozen(kw_only=True)
class ObjectMetricSource:
    described_object: CrossVersionObjectReference = CrossVersionObjectReference()
    target: MetricTarget = MetricTarget()
    metric: MetricIdentifier = MetricIdentifier()


@attrs.frozen(kw_only=True)
class ExternalMetricSource:
    metric: MetricIdentifier = MetricIdentifier()
    target: MetricTarget = MetricTarget()


@attrs.frozen(kw_only=True)
class MetricSpec:
    """``type`` is Resource, Pods, Object, ContainerResource or External; the matching
    source field is set."""

    type: str = ""
    object: ObjectMetricSource | None = None
    pods: PodsMetricSource | None = None
    resource: ResourceMetricSource | None = None
    container_resource: ContainerResourceMetricSource | None = None
    external: ExternalMetricSource | None = None


@attrs.frozen(kw_only=True)
class HPAScalingPolicy:
    """``type`` is Pods or Percent: at most ``value`` of them per ``period_seconds``."""

    type: str = ""
    value: int = 0
    period_seconds: int = 0


@attrs.frozen(kw_only=True)
class HPAScalingRules:
    stabilization_window_seconds: int | None = None
    #: Max, Min or Disabled.
    select_policy: str | None = None
    policies: tuple[HPAScalingPolicy, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class HorizontalPodAutoscalerBehavior:
    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None


@attrs.frozen(kw_only=True)
class HorizontalPodAutoscalerSpec:
    scale_target_ref: CrossVersionObjectReference = CrossVersionObjectReference()
    min_replicas: int | None = None
    max_replicas: int = 0
    metrics: tuple[MetricSpec, ...] = attrs.field(default=(), converter=as_tuple)
    behavior: HorizontalPodAutoscalerBehavior | None = None


@attrs.frozen(kw_only=True)
class ResourceMetricStatus:
    name: str = ""
    current: MetricValueStatus = MetricValueStatus()


@attrs.frozen(kw_only=True)
class ContainerResourceMetricStatus:
    name: str = ""
    current: MetricValueStatus = MetricValueStatus()
    container: str = ""


@attrs.frozen(kw_only=True)
class PodsMetricStatus:
    metric: MetricIdentifier = MetricIdentifier()
    current: MetricValueStatus = MetricValueStatus()


@attrs.frozen(kw_only=True)
class ObjectMetricStatus:
    metric: MetricIdentifier = MetricIdentifier()
    current: MetricValueStatus = MetricValueStatus()
    described_object: CrossVersionObjectReference = CrossVersionObjectReference()


@attrs.frozen(kw_only=True)
class ExternalMetricStatus:
    metric: MetricIdentifier = MetricIdentifier()
    current: MetricValueStatus = MetricValueStatus()


@attrs.frozen(kw_only=True)
class MetricStatus:
    type: str = ""
    object: ObjectMetricStatus | None = None
    pods: PodsMetricStatus | None = None
    resource: ResourceMetricStatus | None = None
    container_resource: ContainerResourceMetricStatus | None = None
    external: ExternalMetricStatus | None = None


@attrs.frozen(kw_only=True)
class HorizontalPodAutoscalerCondition:
    """``type`` is ScalingActive, AbleToScale or ScalingLimited."""

    type: str = ""
    status: str = ""
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class HorizontalPodAutoscalerStatus:
    observed_generation: int | None = None
    last_scale_time: datetime | None = None
    current_replicas: int = 0
    desired_replicas: int = 0
    current_metrics: tuple[MetricStatus, ...] = attrs.field(default=(), converter=as_tuple)
    conditions: tuple[HorizontalPodAutoscalerCondition, ...] = attrs.field(
        default=(), converter=as_tuple
    )


@attrs.frozen(kw_only=True)
class HorizontalPodAutoscaler:
    kind: ClassVar[str] = "HorizontalPodAutoscaler"
    api_version: ClassVar[str] = "autoscaling/v2"

    metadata: ObjectMeta = ObjectMeta()
    spec: HorizontalPodAutoscalerSpec = HorizontalPodAutoscalerSpec()
    status: HorizontalPodAutoscalerStatus = HorizontalPodAutoscalerStatus()
