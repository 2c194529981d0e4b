"""Core v1 Pod and what it is made of: PodSpec, Container, probes, affinity, PodStatus.

Follows the conventions in ``controlplane.api.core`` (see its module docstring). Structs
that Go embeds by value (``Container.resources``, ``ContainerStatus.state``) default to an
empty instance, because Kubernetes treats absent and empty alike; structs Go holds by
pointer (probes, ``affinity``, ``securityContext``, volume sources) default to ``None``.
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import attrs

from controlplane.api.frozen import EMPTY, FrozenDict, freeze
from controlplane.api.meta import LabelSelector, ObjectMeta
from controlplane.api.quantity import Quantity

__all__ = [
    "Affinity",
    "Capabilities",
    "ConfigMapEnvSource",
    "ConfigMapKeySelector",
    "ConfigMapVolumeSource",
    "Container",
    "ContainerPort",
    "ContainerState",
    "ContainerStateRunning",
    "ContainerStateTerminated",
    "ContainerStateWaiting",
    "ContainerStatus",
    "EmptyDirVolumeSource",
    "EnvFromSource",
    "EnvVar",
    "EnvVarSource",
    "ExecAction",
    "GRPCAction",
    "HTTPGetAction",
    "HTTPHeader",
    "HostAlias",
    "HostIP",
    "HostPathVolumeSource",
    "KeyToPath",
    "Lifecycle",
    "LifecycleHandler",
    "LocalObjectReference",
    "NodeAffinity",
    "NodeSelector",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "ObjectFieldSelector",
    "PersistentVolumeClaimVolumeSource",
    "Pod",
    "PodAffinity",
    "PodAffinityTerm",
    "PodAntiAffinity",
    "PodCondition",
    "PodIP",
    "PodSecurityContext",
    "PodSpec",
    "PodStatus",
    "PodTemplateSpec",
    "PreferredSchedulingTerm",
    "Probe",
    "ResourceFieldSelector",
    "ResourceRequirements",
    "SeccompProfile",
    "SecretEnvSource",
    "SecretKeySelector",
    "SecretVolumeSource",
    "SecurityContext",
    "SleepAction",
    "TCPSocketAction",
    "Toleration",
    "TopologySpreadConstraint",
    "Volume",
    "VolumeMount",
    "WeightedPodAffinityTerm",
    "as_tuple",
    "freeze_json",
    "freeze_quantities",
    "optional_quantity",
]


def freeze_quantities(
    mapping: Mapping[str, Quantity | str | int | float] | None,
) -> FrozenDict[str, Quantity]:
    """Converter for resource maps: freeze, parsing values that are not yet Quantities.

    ``ResourceRequirements(limits={"cpu": "500m"})`` is thus accepted.

    Raises:
        QuantityError: a value is not a quantity.
    """
    if not mapping:
        return EMPTY
    if isinstance(mapping, FrozenDict) and all(isinstance(v, Quantity) for v in mapping.values()):
        return mapping
    return FrozenDict({k: Quantity.parse(v) for k, v in mapping.items()})


def optional_quantity(value: Quantity | str | int | float | None) -> Quantity | None:
    """Converter for a single optional quantity field."""
    return None if value is None else Quantity.parse(value)


def freeze_json(value: Any) -> Any:
    """Deep-freeze plain JSON: dicts become FrozenDicts and lists tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze_json(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze_json(v) for v in value)
    return value


def as_tuple(value: Iterable[Any] | None) -> tuple[Any, ...]:
    return () if value is None else tuple(value)


# -- references and selectors ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class LocalObjectReference:
    name: str | None = None


@attrs.frozen(kw_only=True)
class ObjectFieldSelector:
    field_path: str = ""
    api_version: str | None = None


@attrs.frozen(kw_only=True)
class ResourceFieldSelector:
    resource: str = ""
    container_name: str | None = None
    divisor: Quantity | None = attrs.field(default=None, converter=optional_quantity)


@attrs.frozen(kw_only=True)
class ConfigMapKeySelector:
    key: str = ""
    name: str | None = None
    optional: bool | None = None


@attrs.frozen(kw_only=True)
class SecretKeySelector:
    key: str = ""
    name: str | None = None
    optional: bool | None = None


# -- containers ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EnvVarSource:
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: ConfigMapKeySelector | None = None
    secret_key_ref: SecretKeySelector | None = None


@attrs.frozen(kw_only=True)
class EnvVar:
    name: str = ""
    value: str | None = None
    value_from: EnvVarSource | None = None


@attrs.frozen(kw_only=True)
class ConfigMapEnvSource:
    name: str | None = None
    optional: bool | None = None


@attrs.frozen(kw_only=True)
class SecretEnvSource:
    name: str | None = None
    optional: bool | None = None


@attrs.frozen(kw_only=True)
class EnvFromSource:
    prefix: str | None = None
    config_map_ref: ConfigMapEnvSource | None = None
    secret_ref: SecretEnvSource | None = None


@attrs.frozen(kw_only=True)
class ContainerPort:
    container_port: int = 0
    name: str | None = None
    host_port: int | None = None
    host_ip: str | None = None
    protocol: str | None = None


@attrs.frozen(kw_only=True)
class ResourceRequirements:
    """Requests and limits by resource name (``cpu``, ``memory``...); values are Quantities."""

    limits: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    requests: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)


@attrs.frozen(kw_only=True)
class VolumeMount:
    name: str = ""
    mount_path: str = ""
    read_only: bool | None = None
    sub_path: str | None = None
    sub_path_expr: str | None = None
    mount_propagation: str | None = None


@attrs.frozen(kw_only=True)
class ExecAction:
    command: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class HTTPHeader:
    name: str = ""
    value: str = ""


@attrs.frozen(kw_only=True)
class HTTPGetAction:
    path: str | None = None
    #: A port number or the name of a container port (IntOrString).
    port: int | str = 0
    host: str | None = None
    scheme: str | None = None
    http_headers: tuple[HTTPHeader, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class TCPSocketAction:
    port: int | str = 0
    host: str | None = None


@attrs.frozen(kw_only=True)
class GRPCAction:
    port: int = 0
    service: str | None = None


@attrs.frozen(kw_only=True)
class SleepAction:
    seconds: int = 0


@attrs.frozen(kw_only=True)
class Probe:
    """A liveness, readiness or startup probe: one handler plus timings."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: int | None = None
    timeout_seconds: int | None = None
    period_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None
    termination_grace_period_seconds: int | None = None


@attrs.frozen(kw_only=True)
class LifecycleHandler:
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


@attrs.frozen(kw_only=True)
class Lifecycle:
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None


@attrs.frozen(kw_only=True)
class Capabilities:
    add: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    drop: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class SeccompProfile:
    type: str = ""
    localhost_profile: str | None = None


@attrs.frozen(kw_only=True)
class SecurityContext:
    """A container's security context (a minimal subset of Kubernetes' fields)."""

    capabilities: Capabilities | None = None
    privileged: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    seccomp_profile: SeccompProfile | None = None


@attrs.frozen(kw_only=True)
class Container:
    name: str = ""
    image: str | None = None
    command: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    args: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    working_dir: str | None = None
    ports: tuple[ContainerPort, ...] = attrs.field(default=(), converter=as_tuple)
    env_from: tuple[EnvFromSource, ...] = attrs.field(default=(), converter=as_tuple)
    env: tuple[EnvVar, ...] = attrs.field(default=(), converter=as_tuple)
    resources: ResourceRequirements = ResourceRequirements()
    #: Only for init containers: ``Always`` makes it a sidecar.
    restart_policy: str | None = None
    volume_mounts: tuple[VolumeMount, ...] = attrs.field(default=(), converter=as_tuple)
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None
    image_pull_policy: str | None = None
    security_context: SecurityContext | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None


# -- volumes ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class KeyToPath:
    key: str = ""
    path: str = ""
    mode: int | None = None


@attrs.frozen(kw_only=True)
class EmptyDirVolumeSource:
    medium: str | None = None
    size_limit: Quantity | None = attrs.field(default=None, converter=optional_quantity)


@attrs.frozen(kw_only=True)
class ConfigMapVolumeSource:
    name: str | None = None
    items: tuple[KeyToPath, ...] = attrs.field(default=(), converter=as_tuple)
    default_mode: int | None = None
    optional: bool | None = None


@attrs.frozen(kw_only=True)
class SecretVolumeSource:
    secret_name: str | None = None
    items: tuple[KeyToPath, ...] = attrs.field(default=(), converter=as_tuple)
    default_mode: int | None = None
    optional: bool | None = None


@attrs.frozen(kw_only=True)
class PersistentVolumeClaimVolumeSource:
    claim_name: str = ""
    read_only: bool | None = None


@attrs.frozen(kw_only=True)
class HostPathVolumeSource:
    path: str = ""
    type: str | None = None


@attrs.frozen(kw_only=True)
class Volume:
    """A pod volume: ``name`` plus one source.

    The common sources are typed; any other source (``projected``, ``downwardAPI``, ``nfs``
    ...) is kept as read-only JSON in ``other`` (camelCase keys) and written back unchanged,
    so manifests using them load and round-trip.
    """

    name: str = ""
    empty_dir: EmptyDirVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    other: FrozenDict[str, Any] = attrs.field(default=EMPTY, converter=freeze_json)


# -- scheduling ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NodeSelectorRequirement:
    """``operator`` is In, NotIn, Exists, DoesNotExist, Gt or Lt."""

    key: str = ""
    operator: str = ""
    values: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class NodeSelectorTerm:
    match_expressions: tuple[NodeSelectorRequirement, ...] = attrs.field(
        default=(), converter=as_tuple
    )
    match_fields: tuple[NodeSelectorRequirement, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class NodeSelector:
    node_selector_terms: tuple[NodeSelectorTerm, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class PreferredSchedulingTerm:
    weight: int = 0
    preference: NodeSelectorTerm = NodeSelectorTerm()


@attrs.frozen(kw_only=True)
class NodeAffinity:
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: tuple[PreferredSchedulingTerm, ...] = (
        attrs.field(default=(), converter=as_tuple)
    )


@attrs.frozen(kw_only=True)
class PodAffinityTerm:
    topology_key: str = ""
    label_selector: LabelSelector | None = None
    namespaces: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    namespace_selector: LabelSelector | None = None
    match_label_keys: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    mismatch_label_keys: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class WeightedPodAffinityTerm:
    weight: int = 0
    pod_affinity_term: PodAffinityTerm = PodAffinityTerm()


@attrs.frozen(kw_only=True)
class PodAffinity:
    required_during_scheduling_ignored_during_execution: tuple[PodAffinityTerm, ...] = attrs.field(
        default=(), converter=as_tuple
    )
    preferred_during_scheduling_ignored_during_execution: tuple[WeightedPodAffinityTerm, ...] = (
        attrs.field(default=(), converter=as_tuple)
    )


@attrs.frozen(kw_only=True)
class PodAntiAffinity:
    required_during_scheduling_ignored_during_execution: tuple[PodAffinityTerm, ...] = attrs.field(
        default=(), converter=as_tuple
    )
    preferred_during_scheduling_ignored_during_execution: tuple[WeightedPodAffinityTerm, ...] = (
        attrs.field(default=(), converter=as_tuple)
    )


@attrs.frozen(kw_only=True)
class Affinity:
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAntiAffinity | None = None


@attrs.frozen(kw_only=True)
class Toleration:
    """``operator`` is Exists or Equal (default); an empty ``effect`` matches all effects."""

    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


@attrs.frozen(kw_only=True)
class TopologySpreadConstraint:
    max_skew: int = 0
    topology_key: str = ""
    when_unsatisfiable: str = ""
    label_selector: LabelSelector | None = None
    min_domains: int | None = None
    node_affinity_policy: str | None = None
    node_taints_policy: str | None = None
    match_label_keys: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


# -- the pod ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PodSecurityContext:
    """A pod's security context (a minimal subset of Kubernetes' fields)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = attrs.field(default=(), converter=as_tuple)
    seccomp_profile: SeccompProfile | None = None


@attrs.frozen(kw_only=True)
class HostAlias:
    ip: str = ""
    hostnames: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class PodSpec:
    volumes: tuple[Volume, ...] = attrs.field(default=(), converter=as_tuple)
    init_containers: tuple[Container, ...] = attrs.field(default=(), converter=as_tuple)
    containers: tuple[Container, ...] = attrs.field(default=(), converter=as_tuple)
    restart_policy: str | None = None
    termination_grace_period_seconds: int | None = None
    active_deadline_seconds: int | None = None
    dns_policy: str | None = None
    node_selector: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    node_name: str | None = None
    host_network: bool | None = None
    host_pid: bool | None = None
    host_ipc: bool | None = None
    security_context: PodSecurityContext | None = None
    image_pull_secrets: tuple[LocalObjectReference, ...] = attrs.field(
        default=(), converter=as_tuple
    )
    hostname: str | None = None
    subdomain: str | None = None
    affinity: Affinity | None = None
    scheduler_name: str | None = None
    tolerations: tuple[Toleration, ...] = attrs.field(default=(), converter=as_tuple)
    host_aliases: tuple[HostAlias, ...] = attrs.field(default=(), converter=as_tuple)
    priority_class_name: str | None = None
    priority: int | None = None
    runtime_class_name: str | None = None
    enable_service_links: bool | None = None
    preemption_policy: str | None = None
    topology_spread_constraints: tuple[TopologySpreadConstraint, ...] = attrs.field(
        default=(), converter=as_tuple
    )


@attrs.frozen(kw_only=True)
class PodCondition:
    type: str = ""
    status: str = ""
    last_probe_time: datetime | None = None
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class ContainerStateWaiting:
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class ContainerStateRunning:
    started_at: datetime | None = None


@attrs.frozen(kw_only=True)
class ContainerStateTerminated:
    exit_code: int = 0
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    container_id: str | None = None


@attrs.frozen(kw_only=True)
class ContainerState:
    """At most one of waiting, running and terminated is set."""

    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


@attrs.frozen(kw_only=True)
class ContainerStatus:
    name: str = ""
    state: ContainerState = ContainerState()
    last_state: ContainerState = ContainerState()
    ready: bool = False
    restart_count: int = 0
    image: str = ""
    image_id: str = ""
    container_id: str | None = None
    started: bool | None = None


@attrs.frozen(kw_only=True)
class HostIP:
    ip: str = ""


@attrs.frozen(kw_only=True)
class PodIP:
    ip: str = ""


@attrs.frozen(kw_only=True)
class PodStatus:
    phase: str | None = None
    conditions: tuple[PodCondition, ...] = attrs.field(default=(), converter=as_tuple)
    message: str | None = None
    reason: str | None = None
    nominated_node_name: str | None = None
    host_ip: str | None = None
    host_ips: tuple[HostIP, ...] = attrs.field(default=(), converter=as_tuple)
    pod_ip: str | None = None
    pod_ips: tuple[PodIP, ...] = attrs.field(default=(), converter=as_tuple)
    start_time: datetime | None = None
    init_container_statuses: tuple[ContainerStatus, ...] = attrs.field(
        default=(), converter=as_tuple
    )
    container_statuses: tuple[ContainerStatus, ...] = attrs.field(default=(), converter=as_tuple)
    qos_class: str | None = None


@attrs.frozen(kw_only=True)
class Pod:
    kind: ClassVar[str] = "Pod"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: PodSpec = PodSpec()
    status: PodStatus = PodStatus()


@attrs.frozen(kw_only=True)
class PodTemplateSpec:
    """The pod a workload stamps out: metadata (labels) and spec."""

    metadata: ObjectMeta = ObjectMeta()
    spec: PodSpec = PodSpec()
