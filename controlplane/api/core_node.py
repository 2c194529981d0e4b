"""Core v1 Node: spec (podCIDR, taints, unschedulable) and status (capacity, conditions).

Follows the conventions in ``controlplane.api.core`` (see its module docstring).
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import attrs

from controlplane.api.core_pod import as_tuple, freeze_quantities
from controlplane.api.frozen import EMPTY, FrozenDict
from controlplane.api.meta import ObjectMeta
from controlplane.api.quantity import Quantity

__all__ = [
    "ContainerImage",
    "Node",
    "NodeAddress",
    "NodeCondition",
    "NodeSpec",
    "NodeStatus",
    "NodeSystemInfo",
    "Taint",
]


@attrs.frozen(kw_only=True)
class Taint:
    """``effect`` is NoSchedule, PreferNoSchedule or NoExecute."""

    key: str = ""
    value: str | None = None
    effect: str = ""
    time_added: datetime | None = None


@attrs.frozen(kw_only=True)
class NodeSpec:
    pod_cidr: str | None = None
    pod_cidrs: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    provider_id: str | None = None
    unschedulable: bool | None = None
    taints: tuple[Taint, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class NodeCondition:
    type: str = ""
    status: str = ""
    last_heartbeat_time: datetime | None = None
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class NodeAddress:
    """``type`` is Hostname, InternalIP, ExternalIP, InternalDNS or ExternalDNS."""

    type: str = ""
    address: str = ""


@attrs.frozen(kw_only=True)
class NodeSystemInfo:
    machine_id: str | None = None
    system_uuid: str | None = None
    boot_id: str | None = None
    kernel_version: str | None = None
    os_image: str | None = None
    container_runtime_version: str | None = None
    kubelet_version: str | None = None
    kube_proxy_version: str | None = None
    operating_system: str | None = None
    architecture: str | None = None


@attrs.frozen(kw_only=True)
class ContainerImage:
    names: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    size_bytes: int | None = None


@attrs.frozen(kw_only=True)
class NodeStatus:
    capacity: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    allocatable: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    phase: str | None = None
    conditions: tuple[NodeCondition, ...] = attrs.field(default=(), converter=as_tuple)
    addresses: tuple[NodeAddress, ...] = attrs.field(default=(), converter=as_tuple)
    node_info: NodeSystemInfo = NodeSystemInfo()
    images: tuple[ContainerImage, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class Node:
    kind: ClassVar[str] = "Node"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: NodeSpec = NodeSpec()
    status: NodeStatus = NodeStatus()
