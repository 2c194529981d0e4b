"""The HorizontalPodAutoscaler controller (``autoscaling/v2``, Resource and
ContainerResource metrics for cpu and memory).

Kubernetes' ``pkg/controller/podautoscaler/horizontal.go`` as a thin actor around
:mod:`~controlplane.controllers.hpa_algorithm`. Every 15 s per HPA (the sync period; an
HPA change is picked up at the next one, as with Kubernetes' fixed-interval queue) it:

1. reads the scale target (``spec.scaleTargetRef``: a Deployment, ReplicaSet or
   ReplicationController) with a GET -- its ``spec.replicas`` and selector. This code
   base has no ``/scale`` subresource, so the target is read whole and written back with
   ``client.update`` (a Conflict with a concurrent writer is a FailedRescale retried at
   the next sync, like a failed scale update in Kubernetes);
2. lists the target's pods from the shared Pod informer, reads their usage from the
   :class:`~controlplane.metrics.MetricsStore` (metrics-server), and asks the replica
   calculator for a proposal per metric; the largest wins;
3. stabilises and bounds the proposal (scale-down window 300 s, scale rate policies,
   min/max), writes ``spec.replicas`` if it changed, records ``SuccessfulRescale``, and
   writes the status (current/desired replicas, current metrics, lastScaleTime, the
   AbleToScale / ScalingActive / ScalingLimited conditions) if it changed.

Failures follow Kubernetes: a missing target sets AbleToScale=False (FailedGetScale)
and records a Warning, touching nothing else; metrics that cannot be read set
ScalingActive=False (FailedGetResourceMetric) and record a Warning. Pods, Object and
External metrics need a custom metrics API this cluster does not serve: they fail the
same way (FailedGetPodsMetric...). Not implemented: the AmbiguousSelector check (two
HPAs on one target), ``status.observedGeneration``.

The recommendation and scale-event history lives in memory, per HPA, and is lost when
the controller restarts -- as in kube-controller-manager.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
import structlog
import trio

from controlplane import errors
from controlplane.api.autoscaling import (
    ContainerResourceMetricStatus,
    HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition,
    MetricSpec,
    MetricStatus,
    MetricValueStatus,
    ResourceMetricStatus,
)
from controlplane.api.core_pod import Pod
from controlplane.api.labels import Selector
from controlplane.api.meta import object_key
from controlplane.api.quantity import Quantity
from controlplane.clock import EPOCH, wall_now
from controlplane.controllers import hpa_algorithm as algo
from controlplane.controllers.framework import ControllerContext
from controlplane.metrics import MetricsStore

__all__ = [
    "SCALABLE_KINDS",
    "HPAControllerStatistics",
    "HorizontalPodAutoscalerController",
    "hpa_controller",
]

log = structlog.get_logger(__name__)

#: What ``scaleTargetRef.kind`` may name (the kinds with ``spec.replicas`` and a selector).
SCALABLE_KINDS = ("Deployment", "ReplicaSet", "ReplicationController")


class _MetricFailure(Exception):
    """One metric could not be computed: ``reason`` is the condition/event reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@attrs.frozen
class HPAControllerStatistics:
    #: HPAs with an in-memory history (recommendations, scale events)
    tracked: int
    rescales: int
    failed_rescales: int


@attrs.frozen
class _Proposal:
    replicas: int
    metric: str
    status: MetricStatus


def _seconds(t: datetime | None) -> float | None:
    """A wall-clock timestamp on an object as trio time (see :mod:`controlplane.clock`)."""
    return None if t is None else (t - EPOCH).total_seconds()


def pod_info(pod: Pod) -> algo.PodInfo:
    """What the replica calculator reads of ``pod``."""
    status = pod.status
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    requests: dict[tuple[str, str], int] = {}
    for container in pod.spec.containers:
        for resource, quantity in container.resources.requests.items():
            requests[(container.name, resource)] = quantity.milli_value()
    return algo.PodInfo(
        name=pod.metadata.name,
        phase=status.phase,
        deleting=pod.metadata.deletion_timestamp is not None,
        ready=None if ready is None else ready.status,
        ready_since=None if ready is None else _seconds(ready.last_transition_time),
        start_time=_seconds(status.start_time),
        containers=tuple(c.name for c in pod.spec.containers),
        requests=requests,
    )


def set_condition(
    conditions: Sequence[HorizontalPodAutoscalerCondition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
) -> tuple[HorizontalPodAutoscalerCondition, ...]:
    """``setConditionInList``: replace or append; the transition time moves only when
    the status changes."""
    out = list(conditions)
    for i, existing in enumerate(out):
        if existing.type == type_:
            moved = existing.status != status
            out[i] = attrs.evolve(
                existing,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if moved else existing.last_transition_time,
            )
            return tuple(out)
    out.append(
        HorizontalPodAutoscalerCondition(
            type=type_, status=status, reason=reason, message=message, last_transition_time=now
        )
    )
    return tuple(out)


def _selector_of(target: Any) -> Selector | None:
    """The target's pod selector (None if it has none)."""
    selector = target.spec.selector
    if selector is None:
        return None
    if type(target).kind == "ReplicationController":
        return Selector.from_map(selector) if selector else None
    compiled = Selector.from_label_selector(selector)
    return None if compiled.empty else compiled


class HorizontalPodAutoscalerController:
    """The HPA controller. Build it with :func:`hpa_controller` (a factory bound to a
    metrics store) or ``functools.partial(HorizontalPodAutoscalerController,
    metrics=store)``.

    Args:
        ctx: the controller context.
        metrics: where the kubelets' usage samples are read.
        sync_period, tolerance, downscale_window, cpu_initialization_period,
        initial_readiness_delay: kube-controller-manager's ``--horizontal-pod-autoscaler-*``
            flags (Kubernetes defaults).
    """

    name = "horizontal-pod-autoscaler"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        metrics: MetricsStore,
        sync_period: float = algo.SYNC_PERIOD,
        tolerance: float = algo.TOLERANCE,
        downscale_window: float = algo.DOWNSCALE_STABILIZATION_WINDOW,
        cpu_initialization_period: float = algo.CPU_INITIALIZATION_PERIOD,
        initial_readiness_delay: float = algo.INITIAL_READINESS_DELAY,
    ) -> None:
        self._ctx = ctx
        self._client = ctx.client
        self._events = ctx.events
        self._metrics = metrics
        self._sync_period = sync_period
        self._tolerance = tolerance
        self._downscale_window = downscale_window
        self._cpu_init = cpu_initialization_period
        self._readiness_delay = initial_readiness_delay
        self._log = ctx.log
        self._memory: dict[str, algo.ScalingMemory] = {}
        self._rescales = 0
        self._failed_rescales = 0
        self._hpas = ctx.informers.informer(HorizontalPodAutoscaler)
        self._pods = ctx.informers.informer(Pod)
        queue = ctx.queue

        def later(obj: Any) -> None:
            # Kubernetes adds every HPA change with the resync delay: one sync per
            # period, whatever changes (our own status writes included).
            queue.add_after(object_key(obj), sync_period)

        self._hpas.add_event_handler(
            later, lambda old, new: later(new), lambda obj: queue.add(object_key(obj))
        )

    def statistics(self) -> HPAControllerStatistics:
        return HPAControllerStatistics(
            tracked=len(self._memory),
            rescales=self._rescales,
            failed_rescales=self._failed_rescales,
        )

    # -- the sync -----------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        """Reconcile one HPA; returns the sync period (the next look), or None when the
        HPA is gone (its history is dropped)."""
        hpa = self._hpas.cache.get_by_key(key)
        if hpa is None:
            self._memory.pop(key, None)
            return None
        log = self._log.bind(namespace=hpa.metadata.namespace, name=hpa.metadata.name)
        try:
            await self._reconcile(key, hpa, log)
        except errors.ApiError as exc:
            # Kubernetes re-queues with the fixed resync interval whatever went wrong.
            log.info("hpa_sync_failed", reason=exc.reason, error=str(exc))
        return self._sync_period

    async def _reconcile(self, key: str, hpa: HorizontalPodAutoscaler, log: Any) -> None:
        spec = hpa.spec
        ref = spec.scale_target_ref
        namespace = hpa.metadata.namespace
        now = trio.current_time()
        wall = wall_now()
        conditions = hpa.status.conditions

        def condition(type_: str, status: str, reason: str, message: str) -> None:
            nonlocal conditions
            conditions = set_condition(conditions, type_, status, reason, message, wall)

        # 1. the scale target
        try:
            if ref.kind not in SCALABLE_KINDS:
                raise errors.NotFound(
                    f'no matches for kind "{ref.kind}": the scale target must be one of '
                    + ", ".join(SCALABLE_KINDS),
                    kind=ref.kind,
                    name=ref.name,
                )
            target = await self._client.get(ref.kind, ref.name, namespace=namespace)
        except errors.ApiError as exc:
            self._events.record(hpa, "Warning", "FailedGetScale", str(exc))
            condition(
                "AbleToScale",
                "False",
                "FailedGetScale",
                f"the HPA controller was unable to get the target's current scale: {exc}",
            )
            await self._write_status(hpa, attrs.evolve(hpa.status, conditions=conditions))
            log.info("hpa_failed_get_scale", error=str(exc))
            return
        condition(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        current = target.spec.replicas if target.spec.replicas is not None else 1
        memory = self._memory.get(key, algo.ScalingMemory()).with_initial_recommendation(
            current, now
        )
        min_replicas = spec.min_replicas if spec.min_replicas is not None else 1

        # 2. the desired size
        statuses: tuple[MetricStatus, ...] = ()
        rescale = True
        reason = ""
        desired = 0
        if current == 0 and min_replicas != 0:
            rescale = False
            condition(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > spec.max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", spec.max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            proposal, statuses, failure = self._compute_replicas(hpa, target, current, now)
            if failure is not None:
                type_, status, f_reason, message = failure
                condition(type_, status, f_reason, message)
            if proposal is None:
                status_now = attrs.evolve(
                    hpa.status,
                    current_replicas=current,
                    current_metrics=statuses,
                    conditions=conditions,
                )
                self._memory[key] = memory
                await self._write_status(hpa, status_now)
                return
            replicas, metric_name = proposal
            if replicas > desired:
                desired = replicas
            if desired > current:
                reason = f"{metric_name} above target"
            if desired < current:
                reason = "All metrics below target"
            behavior = spec.behavior
            normalized = algo.normalize(
                current=current,
                desired=desired,
                min_replicas=min_replicas,
                max_replicas=spec.max_replicas,
                scale_up=behavior.scale_up if behavior is not None else None,
                scale_down=behavior.scale_down if behavior is not None else None,
                behavior=behavior is not None,
                memory=memory,
                now=now,
                downscale_window=self._downscale_window,
            )
            memory = normalized.memory
            condition("AbleToScale", *normalized.able_to_scale)
            condition("ScalingLimited", *normalized.scaling_limited)
            desired = normalized.replicas
            rescale = desired != current

        # 3. act
        last_scale_time = hpa.status.last_scale_time
        if rescale:
            try:
                await self._client.update(
                    attrs.evolve(target, spec=attrs.evolve(target.spec, replicas=desired))
                )
            except errors.ApiError as exc:
                self._failed_rescales += 1
                self._events.record(
                    hpa,
                    "Warning",
                    "FailedRescale",
                    f"New size: {desired}; reason: {reason}; error: {exc}",
                )
                condition(
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    f"the HPA controller was unable to update the target scale: {exc}",
                )
                self._memory[key] = memory
                await self._write_status(
                    hpa,
                    attrs.evolve(
                        hpa.status,
                        current_replicas=current,
                        current_metrics=statuses,
                        conditions=conditions,
                    ),
                )
                return
            condition(
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            self._events.record(
                hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}"
            )
            if spec.behavior is not None:
                rules = spec.behavior.scale_up if desired > current else spec.behavior.scale_down
                if rules is not None:
                    memory = algo.store_scale_event(memory, rules, current, desired, now)
            last_scale_time = wall
            self._rescales += 1
            log.info("hpa_rescaled", current=current, desired=desired, reason=reason)
        else:
            desired = current
        self._memory[key] = memory
        await self._write_status(
            hpa,
            attrs.evolve(
                hpa.status,
                current_replicas=current,
                desired_replicas=desired,
                current_metrics=statuses,
                last_scale_time=last_scale_time,
                conditions=conditions,
            ),
        )

    async def _write_status(self, hpa: HorizontalPodAutoscaler, status: Any) -> None:
        """``updateStatusIfNeeded``: write only a changed status."""
        if status == hpa.status:
            return
        await self._client.update_status(attrs.evolve(hpa, status=status))

    # -- metrics ------------------------------------------------------------------------

    def _compute_replicas(
        self, hpa: HorizontalPodAutoscaler, target: Any, current: int, now: float
    ) -> tuple[tuple[int, str] | None, tuple[MetricStatus, ...], tuple[str, str, str, str] | None]:
        """``computeReplicasForMetrics``: the largest proposal over the metrics, their
        statuses (an empty status for a failed metric, as Kubernetes reports it) and the
        ScalingActive condition to set. The proposal is None when no metric worked, or
        when some failed and the rest would scale down (acting on partial data only ever
        scales up)."""
        specs = hpa.spec.metrics
        selector = _selector_of(target)
        if selector is None:
            message = "the HPA target's scale is missing a selector"
            self._events.record(hpa, "Warning", "SelectorRequired", message)
            return None, (), ("ScalingActive", "False", "InvalidSelector", message)
        pods = self._pods.cache.list(hpa.metadata.namespace, selector)
        infos = [pod_info(p) for p in pods]
        statuses: list[MetricStatus] = []
        best: _Proposal | None = None
        first_failure: _MetricFailure | None = None
        failures = 0
        for spec in specs:
            try:
                proposal = self._compute_metric(hpa, spec, current, infos, now)
            except _MetricFailure as failure:
                self._events.record(hpa, "Warning", failure.reason, str(failure))
                statuses.append(MetricStatus())
                failures += 1
                first_failure = first_failure or failure
                continue
            statuses.append(proposal.status)
            if best is None or proposal.replicas > best.replicas:
                best = proposal
        replicas = best.replicas if best is not None else 0
        if failures >= len(specs) or (failures and replicas < current):
            assert first_failure is not None
            self._events.record(
                hpa,
                "Warning",
                "FailedComputeMetricsReplicas",
                f"invalid metrics ({failures} invalid out of {len(specs)}), "
                f"first error is: {first_failure}",
            )
            message = f"the HPA was unable to compute the replica count: {first_failure}"
            return (
                None,
                tuple(statuses),
                ("ScalingActive", "False", first_failure.reason, message),
            )
        assert best is not None
        condition = (
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {best.metric}",
        )
        return (best.replicas, best.metric), tuple(statuses), condition

    def _compute_metric(
        self,
        hpa: HorizontalPodAutoscaler,
        spec: MetricSpec,
        current: int,
        pods: list[algo.PodInfo],
        now: float,
    ) -> _Proposal:
        if spec.type == "Resource" and spec.resource is not None:
            source, container, reason = spec.resource, None, "FailedGetResourceMetric"
        elif spec.type == "ContainerResource" and spec.container_resource is not None:
            source = spec.container_resource
            container = source.container
            reason = "FailedGetContainerResourceMetric"
        elif spec.type in ("Pods", "Object", "External"):
            raise _MetricFailure(
                f"FailedGet{spec.type}Metric",
                f"unable to get {spec.type.lower()} metric: "
                "no custom or external metrics API is served by this cluster",
            )
        else:
            raise _MetricFailure(
                "InvalidMetricSourceType", f'unknown metric source type "{spec.type}"'
            )
        resource = source.name
        target = source.target
        samples = self._metrics.pods_usage(hpa.metadata.namespace, (p.name for p in pods), now)
        metrics: dict[str, algo.PodMetric] = {}
        for name, sample in samples.items():
            value = sample.milli_value(resource, container)
            if value is not None:
                metrics[name] = algo.PodMetric(value, sample.timestamp, sample.window)
        options = {
            "tolerance": self._tolerance,
            "cpu_initialization_period": self._cpu_init,
            "initial_readiness_delay": self._readiness_delay,
        }
        kind = "container resource" if container is not None else "resource"
        try:
            if target.average_value is not None:
                replicas, usage = algo.raw_resource_replicas(
                    current,
                    target.average_value.milli_value(),
                    resource,
                    pods,
                    metrics,
                    now,
                    **options,
                )
                current_value = MetricValueStatus(average_value=Quantity.from_milli(usage))
                name = f"{resource} resource"
            elif target.average_utilization is not None:
                replicas, utilization, raw = algo.resource_replicas(
                    current,
                    target.average_utilization,
                    resource,
                    pods,
                    metrics,
                    now,
                    container=container,
                    **options,
                )
                current_value = MetricValueStatus(
                    average_utilization=utilization, average_value=Quantity.from_milli(raw)
                )
                name = f"{resource} {kind} utilization (percentage of request)"
            else:
                raise algo.MetricsError(
                    f"invalid {kind} metric source: neither an average utilization target "
                    "nor an average value (usage) target was set"
                )
        except algo.MetricsError as exc:
            what = "usage" if target.average_value is not None else "utilization"
            raise _MetricFailure(reason, f"failed to get {resource} {what}: {exc}") from None
        if container is not None:
            status = MetricStatus(
                type="ContainerResource",
                container_resource=ContainerResourceMetricStatus(
                    name=resource, container=container, current=current_value
                ),
            )
        else:
            status = MetricStatus(
                type="Resource",
                resource=ResourceMetricStatus(name=resource, current=current_value),
            )
        return _Proposal(replicas, name, status)


def hpa_controller(metrics: MetricsStore, **options: Any) -> Any:
    """The ``(name, factory)`` factory half for the controller manager:
    ``("horizontal-pod-autoscaler", hpa_controller(metrics))``."""
    return functools.partial(HorizontalPodAutoscalerController, metrics=metrics, **options)
