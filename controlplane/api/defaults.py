"""Kubernetes API defaulting: ``apply_defaults(obj)`` fills in what the apiserver would.

This follows the ``SetDefaults_*`` functions of ``pkg/apis/core/v1``, ``apps/v1``,
``batch/v1`` and ``autoscaling/v2`` (``restartPolicy: Always``,
``terminationGracePeriodSeconds: 30``, probe timings 10 s / 1 s / 1 / 3, Deployment
``maxSurge``/``maxUnavailable`` 25% ...). Where Go holds a field by value, its zero value
means "unset" and is defaulted too (a probe's ``periodSeconds: 0`` becomes 10), as in
Kubernetes.

Defaulting is pure and cheap on the hot path: every function returns its argument itself
when nothing changes, so an already-defaulted object (a pod stamped from a defaulted
template) comes back as the same instance, and defaulting twice equals defaulting once.
Defaults that need the store (ClusterIP allocation, a Job's generated selector, the
namespace of a request) belong to the store's admission, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from controlplane.api import apps, autoscaling, batch, core, discovery
from controlplane.api.frozen import FrozenDict
from controlplane.api.memo import IdentityMemo

__all__ = [
    "apply_defaults",
    "default_image_pull_policy",
    "default_pod_spec",
    "default_pod_template",
]

T = TypeVar("T")
S = TypeVar("S")


def apply_defaults(obj: T) -> T:
    """Return ``obj`` with Kubernetes' API defaults applied (the same instance if none apply).

    Objects of kinds without defaults (Event, ConfigMap, Lease...) are returned unchanged.
    """
    defaulter = _DEFAULTERS.get(type(obj))
    return obj if defaulter is None else defaulter(obj)


def _evolve(obj: S, changes: dict[str, Any]) -> S:
    return attrs.evolve(obj, **changes) if changes else obj  # type: ignore[misc]


def _each(function: Callable[[S], S], items: tuple[S, ...]) -> tuple[S, ...]:
    """``function`` applied to each item; ``items`` itself if no item changed."""
    result = tuple(function(item) for item in items)
    if all(new is old for new, old in zip(result, items, strict=True)):
        return items
    return result


# -- pods ------------------------------------------------------------------------------


def default_image_pull_policy(image: str | None) -> str:
    """``Always`` for ``:latest`` or untagged images, else ``IfNotPresent``."""
    if not image:
        return "IfNotPresent"
    name, _, digest = image.partition("@")
    last = name.rpartition("/")[2]
    _, colon, tag = last.rpartition(":")
    if not colon:
        tag = "" if digest else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_http_get(action: core.HTTPGetAction | None) -> core.HTTPGetAction | None:
    if action is None:
        return None
    changes: dict[str, Any] = {}
    if not action.path:
        changes["path"] = "/"
    if not action.scheme:
        changes["scheme"] = "HTTP"
    return _evolve(action, changes)


def _default_probe(probe: core.Probe | None) -> core.Probe | None:
    if probe is None:
        return None
    changes: dict[str, Any] = {}
    if not probe.timeout_seconds:
        changes["timeout_seconds"] = 1
    if not probe.period_seconds:
        changes["period_seconds"] = 10
    if not probe.success_threshold:
        changes["success_threshold"] = 1
    if not probe.failure_threshold:
        changes["failure_threshold"] = 3
    http_get = _default_http_get(probe.http_get)
    if http_get is not probe.http_get:
        changes["http_get"] = http_get
    return _evolve(probe, changes)


def _default_handler(handler: core.LifecycleHandler | None) -> core.LifecycleHandler | None:
    if handler is None:
        return None
    http_get = _default_http_get(handler.http_get)
    return handler if http_get is handler.http_get else attrs.evolve(handler, http_get=http_get)


def _default_port(port: core.ContainerPort) -> core.ContainerPort:
    return port if port.protocol else attrs.evolve(port, protocol="TCP")


def _default_env(env: core.EnvVar) -> core.EnvVar:
    source = env.value_from
    if source is None or source.field_ref is None or source.field_ref.api_version:
        return env
    field_ref = attrs.evolve(source.field_ref, api_version="v1")
    return attrs.evolve(env, value_from=attrs.evolve(source, field_ref=field_ref))


def _default_container(container: core.Container) -> core.Container:
    changes: dict[str, Any] = {}
    if not container.image_pull_policy:
        changes["image_pull_policy"] = default_image_pull_policy(container.image)
    if not container.termination_message_path:
        changes["termination_message_path"] = "/dev/termination-log"
    if not container.termination_message_policy:
        changes["termination_message_policy"] = "File"
    ports = _each(_default_port, container.ports)
    if ports is not container.ports:
        changes["ports"] = ports
    env = _each(_default_env, container.env)
    if env is not container.env:
        changes["env"] = env
    for probe_field in ("liveness_probe", "readiness_probe", "startup_probe"):
        probe = getattr(container, probe_field)
        defaulted = _default_probe(probe)
        if defaulted is not probe:
            changes[probe_field] = defaulted
    lifecycle = container.lifecycle
    if lifecycle is not None:
        post_start = _default_handler(lifecycle.post_start)
        pre_stop = _default_handler(lifecycle.pre_stop)
        if post_start is not lifecycle.post_start or pre_stop is not lifecycle.pre_stop:
            changes["lifecycle"] = core.Lifecycle(post_start=post_start, pre_stop=pre_stop)
    resources = container.resources
    missing = [name for name in resources.limits if name not in resources.requests]
    if missing:
        requests = {**resources.requests, **{name: resources.limits[name] for name in missing}}
        changes["resources"] = attrs.evolve(resources, requests=FrozenDict(requests))
    return _evolve(container, changes)


def _host_network_ports(container: core.Container) -> core.Container:
    """With hostNetwork, a container port's hostPort defaults to its containerPort."""

    def default(port: core.ContainerPort) -> core.ContainerPort:
        if port.host_port:
            return port
        return attrs.evolve(port, host_port=port.container_port)

    ports = _each(default, container.ports)
    return container if ports is container.ports else attrs.evolve(container, ports=ports)


def _default_volume(volume: core.Volume) -> core.Volume:
    if (
        volume.empty_dir is None
        and volume.config_map is None
        and volume.secret is None
        and volume.persistent_volume_claim is None
        and volume.host_path is None
        and not volume.other
    ):
        return attrs.evolve(volume, empty_dir=core.EmptyDirVolumeSource())
    if volume.config_map is not None and volume.config_map.default_mode is None:
        return attrs.evolve(volume, config_map=attrs.evolve(volume.config_map, default_mode=0o644))
    if volume.secret is not None and volume.secret.default_mode is None:
        return attrs.evolve(volume, secret=attrs.evolve(volume.secret, default_mode=0o644))
    return volume


#: Defaulted specs by input spec: pods stamped from one template share one spec object.
_DEFAULTED_SPECS: IdentityMemo[core.PodSpec, core.PodSpec] = IdentityMemo()


def default_pod_spec(spec: core.PodSpec) -> core.PodSpec:
    """A PodSpec with defaults (``SetDefaults_PodSpec`` and what it recurses into)."""
    defaulted = _DEFAULTED_SPECS.get(spec)
    if defaulted is None:
        defaulted = _default_pod_spec(spec)
        _DEFAULTED_SPECS.put(spec, defaulted)
        _DEFAULTED_SPECS.put(defaulted, defaulted)
    return defaulted


def is_defaulted(spec: core.PodSpec) -> bool:
    """Whether ``spec`` is known (by identity) to be the result of defaulting."""
    return _DEFAULTED_SPECS.get(spec) is spec


def remember_defaulted(spec: core.PodSpec) -> None:
    """Record that ``spec`` needs no defaulting (it was derived from a defaulted spec by
    a change defaulting does not look at, see :mod:`controlplane.api.binding`)."""
    _DEFAULTED_SPECS.put(spec, spec)


def _default_pod_spec(spec: core.PodSpec) -> core.PodSpec:
    changes: dict[str, Any] = {}
    if not spec.dns_policy:
        changes["dns_policy"] = "ClusterFirst"
    if not spec.restart_policy:
        changes["restart_policy"] = "Always"
    if spec.termination_grace_period_seconds is None:
        changes["termination_grace_period_seconds"] = 30
    if not spec.scheduler_name:
        changes["scheduler_name"] = "default-scheduler"
    if spec.security_context is None:
        changes["security_context"] = core.PodSecurityContext()
    if spec.enable_service_links is None:
        changes["enable_service_links"] = True
    for field in ("containers", "init_containers"):
        containers = getattr(spec, field)
        defaulted = _each(_default_container, containers)
        if spec.host_network:
            defaulted = _each(_host_network_ports, defaulted)
        if defaulted is not containers:
            changes[field] = defaulted
    volumes = _each(_default_volume, spec.volumes)
    if volumes is not spec.volumes:
        changes["volumes"] = volumes
    return _evolve(spec, changes)


def default_pod_template(template: core.PodTemplateSpec) -> core.PodTemplateSpec:
    """A PodTemplateSpec whose spec has pod defaults."""
    spec = default_pod_spec(template.spec)
    return template if spec is template.spec else attrs.evolve(template, spec=spec)


def _pod(pod: core.Pod) -> core.Pod:
    spec = default_pod_spec(pod.spec)
    return pod if spec is pod.spec else attrs.evolve(pod, spec=spec)


# -- other core kinds ------------------------------------------------------------------


def _namespace(namespace: core.Namespace) -> core.Namespace:
    changes: dict[str, Any] = {}
    meta = namespace.metadata
    name_label = "kubernetes.io/metadata.name"
    if meta.name and meta.labels.get(name_label) != meta.name:
        changes["metadata"] = attrs.evolve(meta, labels=meta.labels.set(name_label, meta.name))
    if not namespace.status.phase:
        changes["status"] = attrs.evolve(namespace.status, phase="Active")
    return _evolve(namespace, changes)


def _node(node: core.Node) -> core.Node:
    status = node.status
    if status.allocatable or not status.capacity:
        return node
    return attrs.evolve(node, status=attrs.evolve(status, allocatable=status.capacity))


def _default_service_port(port: core.ServicePort) -> core.ServicePort:
    changes: dict[str, Any] = {}
    if not port.protocol:
        changes["protocol"] = "TCP"
    if port.target_port is None or port.target_port in (0, ""):
        changes["target_port"] = port.port
    return _evolve(port, changes)


def _service(service: core.Service) -> core.Service:
    spec = service.spec
    changes: dict[str, Any] = {}
    if not spec.session_affinity:
        changes["session_affinity"] = "None"
    service_type = spec.type or "ClusterIP"
    if not spec.type:
        changes["type"] = service_type
    ports = _each(_default_service_port, spec.ports)
    if ports is not spec.ports:
        changes["ports"] = ports
    if service_type in ("NodePort", "LoadBalancer") and not spec.external_traffic_policy:
        changes["external_traffic_policy"] = "Cluster"
    if service_type != "ExternalName" and not spec.internal_traffic_policy:
        changes["internal_traffic_policy"] = "Cluster"
    if service_type == "LoadBalancer" and spec.allocate_load_balancer_node_ports is None:
        changes["allocate_load_balancer_node_ports"] = True
    if not changes:
        return service
    return attrs.evolve(service, spec=attrs.evolve(spec, **changes))


def _endpoints(endpoints: core.Endpoints) -> core.Endpoints:
    def default_subset(subset: core.EndpointSubset) -> core.EndpointSubset:
        def default_port(port: core.EndpointPort) -> core.EndpointPort:
            return port if port.protocol else attrs.evolve(port, protocol="TCP")

        ports = _each(default_port, subset.ports)
        return subset if ports is subset.ports else attrs.evolve(subset, ports=ports)

    subsets = _each(default_subset, endpoints.subsets)
    return endpoints if subsets is endpoints.subsets else attrs.evolve(endpoints, subsets=subsets)


def _endpoint_slice(slice_: discovery.EndpointSlice) -> discovery.EndpointSlice:
    """``SetDefaults_EndpointPort``: a port's protocol defaults to TCP."""

    def default_port(port: discovery.EndpointPort) -> discovery.EndpointPort:
        return port if port.protocol else attrs.evolve(port, protocol="TCP")

    ports = _each(default_port, slice_.ports)
    return slice_ if ports is slice_.ports else attrs.evolve(slice_, ports=ports)


def _secret(secret: core.Secret) -> core.Secret:
    return secret if secret.type else attrs.evolve(secret, type="Opaque")


def _limit_range(limit_range: core.LimitRange) -> core.LimitRange:
    def default_item(item: core.LimitRangeItem) -> core.LimitRangeItem:
        if item.type != "Container":
            return item
        default = {**item.max, **item.default}
        default_request = {**item.min, **default, **item.default_request}
        if default == item.default and default_request == item.default_request:
            return item
        return attrs.evolve(item, default=default, default_request=default_request)

    limits = _each(default_item, limit_range.spec.limits)
    if limits is limit_range.spec.limits:
        return limit_range
    return attrs.evolve(limit_range, spec=attrs.evolve(limit_range.spec, limits=limits))


def _replication_controller(rc: core.ReplicationController) -> core.ReplicationController:
    spec = rc.spec
    changes: dict[str, Any] = {}
    metadata = rc.metadata
    if spec.template is not None:
        template = default_pod_template(spec.template)
        if template is not spec.template:
            changes["template"] = template
        labels = spec.template.metadata.labels
        if not spec.selector and labels:
            changes["selector"] = labels
        if not metadata.labels and labels:
            metadata = attrs.evolve(metadata, labels=labels)
    if spec.replicas is None:
        changes["replicas"] = 1
    if not changes and metadata is rc.metadata:
        return rc
    return attrs.evolve(rc, metadata=metadata, spec=_evolve(spec, changes))


# -- apps, batch, autoscaling ----------------------------------------------------------


def _replica_set(rs: apps.ReplicaSet) -> apps.ReplicaSet:
    spec = rs.spec
    changes: dict[str, Any] = {}
    if spec.replicas is None:
        changes["replicas"] = 1
    template = default_pod_template(spec.template)
    if template is not spec.template:
        changes["template"] = template
    return rs if not changes else attrs.evolve(rs, spec=attrs.evolve(spec, **changes))


def _deployment(deployment: apps.Deployment) -> apps.Deployment:
    spec = deployment.spec
    changes: dict[str, Any] = {}
    if spec.replicas is None:
        changes["replicas"] = 1
    strategy = spec.strategy
    if not strategy.type:
        strategy = attrs.evolve(strategy, type="RollingUpdate")
    if strategy.type == "RollingUpdate":
        rolling = strategy.rolling_update or apps.RollingUpdateDeployment()
        if rolling.max_unavailable is None:
            rolling = attrs.evolve(rolling, max_unavailable="25%")
        if rolling.max_surge is None:
            rolling = attrs.evolve(rolling, max_surge="25%")
        if rolling is not strategy.rolling_update:
            strategy = attrs.evolve(strategy, rolling_update=rolling)
    if strategy is not spec.strategy:
        changes["strategy"] = strategy
    if spec.revision_history_limit is None:
        changes["revision_history_limit"] = 10
    if spec.progress_deadline_seconds is None:
        changes["progress_deadline_seconds"] = 600
    template = default_pod_template(spec.template)
    if template is not spec.template:
        changes["template"] = template
    if not changes:
        return deployment
    return attrs.evolve(deployment, spec=attrs.evolve(spec, **changes))


def _job(job: batch.Job) -> batch.Job:
    spec = job.spec
    changes: dict[str, Any] = {}
    if spec.completions is None and spec.parallelism is None:
        changes["completions"] = 1
    if spec.parallelism is None:
        changes["parallelism"] = 1
    if spec.backoff_limit is None:
        changes["backoff_limit"] = 6
    if not spec.completion_mode:
        changes["completion_mode"] = "NonIndexed"
    if spec.suspend is None:
        changes["suspend"] = False
    template = default_pod_template(spec.template)
    if template is not spec.template:
        changes["template"] = template
    metadata = job.metadata
    if not metadata.labels and spec.template.metadata.labels:
        metadata = attrs.evolve(metadata, labels=spec.template.metadata.labels)
    if not changes and metadata is job.metadata:
        return job
    return attrs.evolve(job, metadata=metadata, spec=_evolve(spec, changes))


def _cron_job(cron_job: batch.CronJob) -> batch.CronJob:
    spec = cron_job.spec
    changes: dict[str, Any] = {}
    if not spec.concurrency_policy:
        changes["concurrency_policy"] = "Allow"
    if spec.suspend is None:
        changes["suspend"] = False
    if spec.successful_jobs_history_limit is None:
        changes["successful_jobs_history_limit"] = 3
    if spec.failed_jobs_history_limit is None:
        changes["failed_jobs_history_limit"] = 1
    job_spec = spec.job_template.spec
    template = default_pod_template(job_spec.template)
    if template is not job_spec.template:
        job_template = attrs.evolve(
            spec.job_template, spec=attrs.evolve(job_spec, template=template)
        )
        changes["job_template"] = job_template
    if not changes:
        return cron_job
    return attrs.evolve(cron_job, spec=attrs.evolve(spec, **changes))


_SCALE_UP_RULES = autoscaling.HPAScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(
        autoscaling.HPAScalingPolicy(type="Pods", value=4, period_seconds=15),
        autoscaling.HPAScalingPolicy(type="Percent", value=100, period_seconds=15),
    ),
)
_SCALE_DOWN_RULES = autoscaling.HPAScalingRules(
    select_policy="Max",
    policies=(autoscaling.HPAScalingPolicy(type="Percent", value=100, period_seconds=15),),
)
_DEFAULT_METRICS = (
    autoscaling.MetricSpec(
        type="Resource",
        resource=autoscaling.ResourceMetricSource(
            name="cpu",
            target=autoscaling.MetricTarget(type="Utilization", average_utilization=80),
        ),
    ),
)


def _scaling_rules(
    rules: autoscaling.HPAScalingRules | None, default: autoscaling.HPAScalingRules
) -> autoscaling.HPAScalingRules:
    if rules is None:
        return default
    changes: dict[str, Any] = {}
    if rules.select_policy is None:
        changes["select_policy"] = default.select_policy
    if not rules.policies:
        changes["policies"] = default.policies
    window = default.stabilization_window_seconds
    if rules.stabilization_window_seconds is None and window is not None:
        changes["stabilization_window_seconds"] = window
    return _evolve(rules, changes)


def _hpa(hpa: autoscaling.HorizontalPodAutoscaler) -> autoscaling.HorizontalPodAutoscaler:
    spec = hpa.spec
    changes: dict[str, Any] = {}
    if spec.min_replicas is None:
        changes["min_replicas"] = 1
    if not spec.metrics:
        changes["metrics"] = _DEFAULT_METRICS
    behavior = spec.behavior
    if behavior is not None:
        scale_up = _scaling_rules(behavior.scale_up, _SCALE_UP_RULES)
        scale_down = _scaling_rules(behavior.scale_down, _SCALE_DOWN_RULES)
        if scale_up is not behavior.scale_up or scale_down is not behavior.scale_down:
            changes["behavior"] = autoscaling.HorizontalPodAutoscalerBehavior(
                scale_up=scale_up, scale_down=scale_down
            )
    if not changes:
        return hpa
    return attrs.evolve(hpa, spec=attrs.evolve(spec, **changes))


_DEFAULTERS: dict[type[Any], Callable[[Any], Any]] = {
    core.Pod: _pod,
    core.Namespace: _namespace,
    core.Node: _node,
    core.Service: _service,
    core.Endpoints: _endpoints,
    discovery.EndpointSlice: _endpoint_slice,
    core.Secret: _secret,
    core.LimitRange: _limit_range,
    core.ReplicationController: _replication_controller,
    apps.ReplicaSet: _replica_set,
    apps.Deployment: _deployment,
    batch.Job: _job,
    batch.CronJob: _cron_job,
    autoscaling.HorizontalPodAutoscaler: _hpa,
}
