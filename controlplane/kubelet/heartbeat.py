"""``NodeHeartbeat``: the kubelet's writes about its node -- registration, the Node's Ready
condition, and the Lease in ``kube-node-lease``.

The kubelet's worker calls these when its ``@node`` / ``@lease`` keys come up; the
builders in :mod:`~controlplane.kubelet.node` decide what to write.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from controlplane import errors
from controlplane.api.coordination import Lease
from controlplane.api.core_node import Node
from controlplane.client.protocol import Client
from controlplane.kubelet.node import (
    LEASE_NAMESPACE,
    lease_object,
    merge_registration,
    node_with_ready,
    registration_node,
    renewed_lease,
)
from controlplane.nodes import NodeTemplate

__all__ = ["LeaseMissing", "NodeHeartbeat"]

log = structlog.get_logger(__name__)


class LeaseMissing(Exception):
    """The Lease could not be written now (deleted meanwhile, or its namespace does not
    exist yet); retry later."""


class NodeHeartbeat:
    """Registers a Node and keeps its Ready condition and Lease current.

    Args:
        client: the API.
        node_name, template, host_ip: what to register.
    """

    def __init__(
        self, client: Client, *, node_name: str, template: NodeTemplate, host_ip: str
    ) -> None:
        self._client = client
        self.node_name = node_name
        self._template = template
        self._host_ip = host_ip
        self.node: Node | None = None
        self._lease: Lease | None = None
        #: seconds this node's clock is ahead of (negative: behind) the cluster's; the
        #: Node heartbeat and the Lease renewTime are stamped with the skewed time
        #: (chaos TimeChaos)
        self.clock_skew = 0.0
        self._log = log.bind(component="kubelet", node=node_name)

    async def register(self) -> Node:
        """Create the Node, or adopt the existing one (labels merged, capacity and
        conditions ours, taints and cordon kept). Returns it as stored.

        Raises: store errors (the caller retries transient ones).
        """
        now = trio.current_time() + self.clock_skew
        wanted = registration_node(self.node_name, self._template, self._host_ip, now)
        try:
            self.node = await self._client.create(wanted)
            self._log.info("node_registered")
        except errors.AlreadyExists:
            existing = await self._client.get(Node, self.node_name)
            merged = merge_registration(existing, wanted)
            meta = attrs.evolve(merged.metadata, resource_version="")
            updated = await self._client.update(attrs.evolve(merged, metadata=meta))
            self.node = await self._client.update_status(
                attrs.evolve(updated, status=merged.status)
            )
            self._log.info("node_adopted")
        assert self.node is not None
        return self.node

    async def report(self, *, ready: bool, message: str | None = None) -> None:
        """Write the Node's Ready condition (heartbeat now); registers the Node again if
        someone deleted it."""
        node = self.node
        if node is None:
            await self.register()
            return
        updated = node_with_ready(node, ready, trio.current_time() + self.clock_skew, message)
        meta = attrs.evolve(updated.metadata, resource_version="")
        try:
            self.node = await self._client.update_status(attrs.evolve(updated, metadata=meta))
        except errors.NotFound:
            self._log.info("node_missing_registering_again")
            await self.register()

    async def renew_lease(self) -> None:
        """Create or renew the Lease (renewTime now, holder this node, 40 s).

        Raises:
            LeaseMissing: it was deleted, or its namespace does not exist; retry.
        """
        now = trio.current_time() + self.clock_skew
        lease = self._lease
        if lease is None:
            try:
                lease = await self._client.get("Lease", self.node_name, namespace=LEASE_NAMESPACE)
            except errors.NotFound:
                assert self.node is not None
                try:
                    self._lease = await self._client.create(lease_object(self.node, now))
                except errors.NotFound:
                    raise LeaseMissing(f"namespace {LEASE_NAMESPACE} does not exist") from None
                return
        renewed = renewed_lease(lease, self.node_name, now)
        meta = attrs.evolve(renewed.metadata, resource_version="")
        try:
            self._lease = await self._client.update(attrs.evolve(renewed, metadata=meta))
        except errors.NotFound:
            self._lease = None
            raise LeaseMissing("lease was deleted") from None
