"""Core v1 Service and Endpoints.

Follows the conventions in ``controlplane.api.core`` (see its module docstring).
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from typing import ClassVar

import attrs

from controlplane.api.core_pod import as_tuple
from controlplane.api.frozen import EMPTY, FrozenDict, freeze
from controlplane.api.meta import ObjectMeta

__all__ = [
    "ClientIPConfig",
    "EndpointAddress",
    "EndpointPort",
    "EndpointSubset",
    "Endpoints",
    "LoadBalancerIngress",
    "LoadBalancerStatus",
    "ObjectReference",
    "Service",
    "ServicePort",
    "ServiceSpec",
    "ServiceStatus",
    "SessionAffinityConfig",
]


@attrs.frozen(kw_only=True)
class ObjectReference:
    """A reference to any object (Event.involvedObject, EndpointAddress.targetRef)."""

    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


@attrs.frozen(kw_only=True)
class ServicePort:
    port: int = 0
    name: str | None = None
    protocol: str | None = None
    app_protocol: str | None = None
    #: A port number or the name of a container port (IntOrString); defaults to ``port``.
    target_port: int | str | None = None
    node_port: int | None = None


@attrs.frozen(kw_only=True)
class ClientIPConfig:
    #: How long a client stays pinned to its backend after its last connection
    #: (default 10800 s, at most 86400).
    timeout_seconds: int | None = None


@attrs.frozen(kw_only=True)
class SessionAffinityConfig:
    client_ip: ClientIPConfig | None = None


@attrs.frozen(kw_only=True)
class ServiceSpec:
    ports: tuple[ServicePort, ...] = attrs.field(default=(), converter=as_tuple)
    selector: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    cluster_ip: str | None = None
    cluster_ips: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    type: str | None = None
    external_ips: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    session_affinity: str | None = None
    session_affinity_config: SessionAffinityConfig | None = None
    load_balancer_ip: str | None = None
    load_balancer_source_ranges: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    external_name: str | None = None
    external_traffic_policy: str | None = None
    health_check_node_port: int | None = None
    publish_not_ready_addresses: bool | None = None
    ip_families: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    ip_family_policy: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    load_balancer_class: str | None = None
    internal_traffic_policy: str | None = None


@attrs.frozen(kw_only=True)
class LoadBalancerIngress:
    ip: str | None = None
    hostname: str | None = None


@attrs.frozen(kw_only=True)
class LoadBalancerStatus:
    ingress: tuple[LoadBalancerIngress, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class ServiceStatus:
    load_balancer: LoadBalancerStatus = LoadBalancerStatus()


@attrs.frozen(kw_only=True)
class Service:
    kind: ClassVar[str] = "Service"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: ServiceSpec = ServiceSpec()
    status: ServiceStatus = ServiceStatus()


@attrs.frozen(kw_only=True)
class EndpointAddress:
    ip: str = ""
    hostname: str | None = None
    node_name: str | None = None
    target_ref: ObjectReference | None = None


@attrs.frozen(kw_only=True)
class EndpointPort:
    port: int = 0
    name: str | None = None
    protocol: str | None = None
    app_protocol: str | None = None


@attrs.frozen(kw_only=True)
class EndpointSubset:
    addresses: tuple[EndpointAddress, ...] = attrs.field(default=(), converter=as_tuple)
    not_ready_addresses: tuple[EndpointAddress, ...] = attrs.field(default=(), converter=as_tuple)
    ports: tuple[EndpointPort, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class Endpoints:
    """The ready and not-ready addresses behind a Service (no spec or status)."""

    kind: ClassVar[str] = "Endpoints"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    subsets: tuple[EndpointSubset, ...] = attrs.field(default=(), converter=as_tuple)
