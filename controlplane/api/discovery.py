"""discovery.k8s.io/v1 kinds: EndpointSlice (the scalable successor of Endpoints).

Follows the conventions in ``controlplane.api.core`` (see its module docstring). An
EndpointSlice has no spec or status: ``addressType``, ``endpoints`` and ``ports`` sit at
the top level, as in Kubernetes. The endpoint-slice controller writes one or more slices
per Service (label ``kubernetes.io/service-name``), at most 100 endpoints each by default.
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from typing import ClassVar

import attrs

from controlplane.api.core_pod import as_tuple
from controlplane.api.core_service import ObjectReference
from controlplane.api.frozen import EMPTY, FrozenDict, freeze
from controlplane.api.meta import ObjectMeta

__all__ = [
    "ADDRESS_TYPES",
    "LABEL_MANAGED_BY",
    "LABEL_SERVICE_NAME",
    "Endpoint",
    "EndpointConditions",
    "EndpointHints",
    "EndpointPort",
    "EndpointSlice",
    "ForNode",
    "ForZone",
]

#: The address types a slice may carry (immutable once created).
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
#: The Service a slice belongs to (``discovery.LabelServiceName``).
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
#: The controller (or user) that manages a slice (``discovery.LabelManagedBy``).
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


@attrs.frozen(kw_only=True)
class EndpointConditions:
    """Whether an endpoint takes new traffic (``ready``), passes its readiness checks
    (``serving``, even while terminating) and is shutting down (``terminating``).
    None means unknown, which consumers read as ready / serving / not terminating."""

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@attrs.frozen(kw_only=True)
class ForZone:
    name: str = ""


@attrs.frozen(kw_only=True)
class ForNode:
    name: str = ""


@attrs.frozen(kw_only=True)
class EndpointHints:
    """Topology-aware routing hints (kept as given; this controller writes none)."""

    for_zones: tuple[ForZone, ...] = attrs.field(default=(), converter=as_tuple)
    for_nodes: tuple[ForNode, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class Endpoint:
    """One backend: its addresses (one pod IP for pods), conditions and where it runs."""

    addresses: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    conditions: EndpointConditions = EndpointConditions()
    hostname: str | None = None
    target_ref: ObjectReference | None = None
    deprecated_topology: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    node_name: str | None = None
    zone: str | None = None
    hints: EndpointHints | None = None


@attrs.frozen(kw_only=True)
class EndpointPort:
    """A port every endpoint of the slice serves; ``port`` None means all ports."""

    name: str | None = None
    protocol: str | None = None
    port: int | None = None
    app_protocol: str | None = None


@attrs.frozen(kw_only=True)
class EndpointSlice:
    """A subset of the endpoints behind a Service (no spec or status)."""

    kind: ClassVar[str] = "EndpointSlice"
    api_version: ClassVar[str] = "discovery.k8s.io/v1"

    metadata: ObjectMeta = ObjectMeta()
    address_type: str = ""
    endpoints: tuple[Endpoint, ...] = attrs.field(default=(), converter=as_tuple)
    ports: tuple[EndpointPort, ...] = attrs.field(default=(), converter=as_tuple)
