"""The HorizontalPodAutoscaler's decisions, as pure functions of their inputs and ``now``.

A transcription of Kubernetes' ``pkg/controller/podautoscaler/replica_calculator.go``
(how many replicas a metric asks for); the normalisation half of ``horizontal.go``
(stabilisation windows, scale rate limits, min/max) is in
:mod:`~controlplane.controllers.hpa_scaling` and re-exported here, so this module is the
one entry point to every HPA decision. The actor in
:mod:`~controlplane.controllers.hpa` reads the caches and the metrics store, calls these,
and writes the result.

Units follow Kubernetes: metric values and requests are *milli*-units (millicores,
millibytes), utilisations are integer percentages, times are trio seconds.

Not transcribed: restartable init containers (sidecars) in the requests sum, the
configurable per-HPA tolerance (alpha ``HPAConfigurableTolerance``) and the
``max(100, target)`` fallback of the newest releases for missing pods on scale-down
(100 % of the request here, as up to 1.32).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from controlplane.controllers.hpa_scaling import (
    DOWNSCALE_STABILIZATION_WINDOW,
    Normalized,
    Recommendation,
    ScaleEvent,
    ScalingMemory,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    normalize,
    scale_down_limit,
    scale_up_limit,
    stabilize_recommendation,
    stabilize_with_behaviors,
    store_scale_event,
)

__all__ = [
    "CPU_INITIALIZATION_PERIOD",
    "DOWNSCALE_STABILIZATION_WINDOW",
    "INITIAL_READINESS_DELAY",
    "SYNC_PERIOD",
    "TOLERANCE",
    "MetricsError",
    "Normalized",
    "PodGroups",
    "PodInfo",
    "PodMetric",
    "Recommendation",
    "ScaleEvent",
    "ScalingMemory",
    "calculate_pod_requests",
    "convert_desired_replicas_with_behavior_rate",
    "convert_desired_replicas_with_rules",
    "group_pods",
    "normalize",
    "raw_resource_replicas",
    "resource_replicas",
    "scale_down_limit",
    "scale_up_limit",
    "stabilize_recommendation",
    "stabilize_with_behaviors",
    "store_scale_event",
]

#: ``--horizontal-pod-autoscaler-sync-period``.
SYNC_PERIOD = 15.0
#: ``--horizontal-pod-autoscaler-tolerance``.
TOLERANCE = 0.1
#: ``--horizontal-pod-autoscaler-cpu-initialization-period``.
CPU_INITIALIZATION_PERIOD = 300.0
#: ``--horizontal-pod-autoscaler-initial-readiness-delay``.
INITIAL_READINESS_DELAY = 30.0


class MetricsError(Exception):
    """A replica count could not be computed from a metric; ``str()`` says why in the
    words of the Kubernetes controller."""


# -- inputs --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PodInfo:
    """What the replica calculator needs of one pod (built from the Pod by the actor).

    ``ready`` is the Ready condition's status (None: no such condition);
    ``ready_since`` its lastTransitionTime and ``start_time`` the pod's startTime, as trio
    times. ``requests`` are ``(container, resource) -> milli-value`` for the regular
    containers, ``containers`` their names in spec order.
    """

    name: str
    phase: str | None = "Running"
    deleting: bool = False
    ready: str | None = "True"
    ready_since: float | None = 0.0
    start_time: float | None = 0.0
    containers: tuple[str, ...] = ()
    requests: Mapping[tuple[str, str], int] = attrs.field(factory=dict)

    def request(self, resource: str, container: str | None) -> int:
        """The sum of the containers' (or one container's) requests of ``resource``.

        Raises:
            MetricsError: a container has no such request.
        """
        total = 0
        for name in self.containers:
            if container is not None and name != container:
                continue
            value = self.requests.get((name, resource))
            if value is None:
                raise MetricsError(
                    f"missing request for {resource} in container {name} of Pod {self.name}"
                )
            total += value
        return total


@attrs.frozen
class PodMetric:
    """One pod's usage (milli-units) at ``timestamp`` over ``window`` seconds."""

    value: int
    timestamp: float = 0.0
    window: float = 15.0


@attrs.frozen
class PodGroups:
    ready_count: int
    unready: tuple[str, ...]
    missing: tuple[str, ...]
    ignored: tuple[str, ...]


# -- the replica calculator ----------------------------------------------------------


def group_pods(
    pods: Iterable[PodInfo],
    metrics: Mapping[str, PodMetric],
    resource: str,
    now: float,
    *,
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    initial_readiness_delay: float = INITIAL_READINESS_DELAY,
) -> PodGroups:
    """Sort pods into ready (counted), unready, missing (no metric) and ignored
    (deleted or failed), as ``groupPods`` does.

    For cpu, a pod is unready while it is within ``cpu_initialization_period`` of its
    start and either not Ready or its sample predates one window after it became Ready
    (the burst of a starting process must not trigger a scale-up); after that, only if it
    is not Ready and has never been Ready (its Ready condition last changed within
    ``initial_readiness_delay`` of its start).
    """
    ready_count = 0
    unready: list[str] = []
    missing: list[str] = []
    ignored: list[str] = []
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.append(pod.name)
            continue
        if pod.phase == "Pending":
            unready.append(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            missing.append(pod.name)
            continue
        if resource == "cpu":
            if pod.ready is None or pod.start_time is None or pod.ready_since is None:
                is_unready = True
            elif pod.start_time + cpu_initialization_period > now:
                is_unready = pod.ready == "False" or (
                    metric.timestamp < pod.ready_since + metric.window
                )
            else:
                is_unready = (
                    pod.ready == "False"
                    and pod.start_time + initial_readiness_delay > pod.ready_since
                )
            if is_unready:
                unready.append(pod.name)
                continue
        ready_count += 1
    return PodGroups(ready_count, tuple(unready), tuple(missing), tuple(ignored))


def calculate_pod_requests(
    pods: Iterable[PodInfo], container: str | None, resource: str
) -> dict[str, int]:
    """Each pod's request of ``resource`` (milli), by pod name.

    Raises:
        MetricsError: some container lacks the request (utilisation is undefined).
    """
    return {pod.name: pod.request(resource, container) for pod in pods}


def _utilization_ratio(
    metrics: Mapping[str, int], requests: Mapping[str, int], target: int
) -> tuple[float, int, int]:
    """(usage / target ratio, utilisation %, raw average milli-value) over the pods that
    have both a metric and a request (``GetResourceUtilizationRatio``)."""
    metrics_total = requests_total = entries = 0
    for name, value in metrics.items():
        request = requests.get(name)
        if request is None:
            continue
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricsError("no metrics returned matched known pods")
    utilization = metrics_total * 100 // requests_total
    return utilization / target, utilization, metrics_total // entries


def _within(ratio: float, tolerance: float) -> bool:
    return abs(1.0 - ratio) <= tolerance


def _check_pods(pods: Sequence[PodInfo], metrics: Mapping[str, PodMetric], resource: str) -> None:
    if not metrics:
        raise MetricsError(
            f"unable to get metrics for resource {resource}: "
            "no metrics returned from resource metrics API"
        )
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")


def resource_replicas(
    current_replicas: int,
    target_utilization: int,
    resource: str,
    pods: Sequence[PodInfo],
    metrics: Mapping[str, PodMetric],
    now: float,
    *,
    container: str | None = None,
    tolerance: float = TOLERANCE,
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    initial_readiness_delay: float = INITIAL_READINESS_DELAY,
) -> tuple[int, int, int]:
    """Replicas for a Utilization target: ``(replicas, utilization %, raw average)``
    (``GetResourceReplicas``).

    ``ceil(ready pods x usage/target)`` unless within ``tolerance``; with missing or
    unready pods the ratio is recomputed assuming missing pods use 100 % of their request
    on a scale-down and 0 % on a scale-up, unready pods 0 % on a scale-up, and no change
    if that flips the direction.

    Raises:
        MetricsError: no metrics, no pods, no ready pod with a metric, missing requests.
    """
    _check_pods(pods, metrics, resource)
    groups = group_pods(
        pods,
        metrics,
        resource,
        now,
        cpu_initialization_period=cpu_initialization_period,
        initial_readiness_delay=initial_readiness_delay,
    )
    dropped = {*groups.ignored, *groups.unready}
    values = {name: m.value for name, m in metrics.items() if name not in dropped}
    if not values:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    requests = calculate_pod_requests(pods, container, resource)
    ratio, utilization, raw = _utilization_ratio(values, requests, target_utilization)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if _within(ratio, tolerance):
            return current_replicas, utilization, raw
        return math.ceil(ratio * groups.ready_count), utilization, raw

    if groups.missing:
        if ratio < 1.0:
            for name in groups.missing:
                values[name] = requests[name]
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0

    new_ratio, _, _ = _utilization_ratio(values, requests, target_utilization)
    if _within(new_ratio, tolerance) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current_replicas, utilization, raw
    new_replicas = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return current_replicas, utilization, raw
    return new_replicas, utilization, raw


def raw_resource_replicas(
    current_replicas: int,
    target_value: int,
    resource: str,
    pods: Sequence[PodInfo],
    metrics: Mapping[str, PodMetric],
    now: float,
    *,
    tolerance: float = TOLERANCE,
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    initial_readiness_delay: float = INITIAL_READINESS_DELAY,
) -> tuple[int, int]:
    """Replicas for an AverageValue target (milli): ``(replicas, average usage)``
    (``GetRawResourceReplicas`` / ``calcPlainMetricReplicas``). Missing pods count as
    using exactly the target on a scale-down.

    Raises:
        MetricsError: as :func:`resource_replicas`.
    """
    _check_pods(pods, metrics, resource)
    groups = group_pods(
        pods,
        metrics,
        resource,
        now,
        cpu_initialization_period=cpu_initialization_period,
        initial_readiness_delay=initial_readiness_delay,
    )
    dropped = {*groups.ignored, *groups.unready}
    values = {name: m.value for name, m in metrics.items() if name not in dropped}
    if not values:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")

    def usage_ratio(vals: Mapping[str, int]) -> tuple[float, int]:
        average = sum(vals.values()) // len(vals)
        return average / target_value, average

    ratio, usage = usage_ratio(values)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if _within(ratio, tolerance):
            return current_replicas, usage
        return math.ceil(ratio * groups.ready_count), usage
    if groups.missing:
        fill = target_value if ratio < 1.0 else 0
        for name in groups.missing:
            values[name] = fill
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0
    new_ratio, _ = usage_ratio(values)
    if _within(new_ratio, tolerance) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current_replicas, usage
    new_replicas = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return current_replicas, usage
    return new_replicas, usage
