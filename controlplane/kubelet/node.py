"""The kubelet's own objects: its Node (registration, Ready condition) and its Lease.

Pure builders; the actor writes what they return. Kubernetes' timings: the Lease in
``kube-node-lease`` is renewed every 10 s with ``leaseDurationSeconds`` 40; the node
status (conditions' heartbeats) is reported when it changes and at least every 5 minutes
(``nodeStatusReportFrequency``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from controlplane.api.coordination import Lease, LeaseSpec
from controlplane.api.core_node import Node, NodeAddress, NodeCondition
from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.clock import EPOCH, to_wall
from controlplane.nodes import NodeTemplate, node_object

__all__ = [
    "LEASE_DURATION_SECONDS",
    "LEASE_NAMESPACE",
    "LEASE_RENEW_SECONDS",
    "NODE_STATUS_REPORT_SECONDS",
    "lease_object",
    "merge_registration",
    "micro_time",
    "node_with_ready",
    "registration_node",
    "renewed_lease",
]

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0
NODE_STATUS_REPORT_SECONDS = 300.0

READY_MESSAGE = "kubelet is posting ready status"


def micro_time(t: float) -> datetime:
    """A MicroTime (Lease renewTime) for trio time ``t``."""
    return (EPOCH + timedelta(microseconds=int(t * 1_000_000))).astimezone(UTC)


def registration_node(name: str, template: NodeTemplate, host_ip: str | None, now: float) -> Node:
    """The Node the kubelet registers: the template's capacity, labels and taints, a
    Ready condition, and its addresses."""
    node = node_object(name, template)
    addresses = [NodeAddress(type="Hostname", address=name)]
    if host_ip:
        addresses.insert(0, NodeAddress(type="InternalIP", address=host_ip))
    status = attrs.evolve(node.status, addresses=tuple(addresses))
    return node_with_ready(attrs.evolve(node, status=status), True, now)


def merge_registration(existing: Node, registered: Node) -> Node:
    """An existing Node adopted by a (re)started kubelet: labels from the template are
    added, capacity/allocatable/addresses/conditions become the kubelet's; taints and
    other spec fields others may have set (cordon, controller taints) are kept."""
    labels = {**existing.metadata.labels, **registered.metadata.labels}
    status = attrs.evolve(
        existing.status,
        capacity=registered.status.capacity,
        allocatable=registered.status.allocatable,
        addresses=registered.status.addresses,
        phase=registered.status.phase,
    )
    conditions = registered.status.conditions
    merged = attrs.evolve(existing, metadata=attrs.evolve(existing.metadata, labels=labels))
    return attrs.evolve(merged, status=attrs.evolve(status, conditions=conditions))


def node_with_ready(node: Node, ready: bool, now: float, message: str | None = None) -> Node:
    """``node`` with its Ready condition set (heartbeat now; transition time kept unless
    the status flips)."""
    status = "True" if ready else "False"
    wall = to_wall(now)
    previous = next((c for c in node.status.conditions if c.type == "Ready"), None)
    since = previous.last_transition_time if previous and previous.status == status else wall
    condition = NodeCondition(
        type="Ready",
        status=status,
        reason="KubeletReady" if ready else "KubeletNotReady",
        message=READY_MESSAGE if ready else (message or "kubelet is not ready"),
        last_heartbeat_time=wall,
        last_transition_time=since,
    )
    others = tuple(c for c in node.status.conditions if c.type != "Ready")
    return attrs.evolve(node, status=attrs.evolve(node.status, conditions=(*others, condition)))


def lease_object(node: Node, now: float) -> Lease:
    """A new Lease for ``node``, owned by it (so it goes away with the Node)."""
    owner = OwnerReference(
        api_version="v1", kind="Node", name=node.metadata.name, uid=node.metadata.uid
    )
    return Lease(
        metadata=ObjectMeta(
            name=node.metadata.name,
            namespace=LEASE_NAMESPACE,
            owner_references=(owner,) if node.metadata.uid else (),
        ),
        spec=LeaseSpec(
            holder_identity=node.metadata.name,
            lease_duration_seconds=LEASE_DURATION_SECONDS,
            renew_time=micro_time(now),
        ),
    )


def renewed_lease(lease: Lease, holder: str, now: float) -> Lease:
    spec = attrs.evolve(
        lease.spec,
        holder_identity=holder,
        lease_duration_seconds=LEASE_DURATION_SECONDS,
        renew_time=micro_time(now),
    )
    return attrs.evolve(lease, spec=spec)
