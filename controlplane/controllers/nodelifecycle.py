"""The node lifecycle controller (``node-lifecycle-controller``): notices nodes whose
kubelet went silent or not-ready, says so on the Node, and taints it so that the taint
eviction controller moves its pods away.

What it does, as Kubernetes' ``pkg/controller/nodelifecycle`` does it (decisions in
:mod:`~controlplane.controllers.nodelifecycle_decisions`):

- **health monitor** (key ``@monitor``, every ``--node-monitor-period`` 5 s, a work
  queue timer): for every node, the Ready condition's heartbeat and the Lease in
  ``kube-node-lease`` are its signs of life. One not seen for
  ``--node-monitor-grace-period`` (40 s) gets Ready, MemoryPressure, DiskPressure and
  PIDPressure ``Unknown`` ("Kubelet stopped posting node status."). On that transition
  its pods get Ready=False (``MarkPodsNotReady``; ContainersReady is left alone) and a
  NodeNotReady event is recorded;
- **NoSchedule taints** (key ``node:<name>``, on every Node change): each condition maps
  to a taint -- Ready=Unknown to ``node.kubernetes.io/unreachable:NoSchedule``,
  Ready=False to ``node.kubernetes.io/not-ready:NoSchedule``, pressure conditions to
  theirs, a cordon to ``node.kubernetes.io/unschedulable`` (TaintNodesByCondition);
- **NoExecute taints** (key ``@noexecute``): a node seen Unknown (or False) on a pass is
  queued in its zone's :class:`RateLimitedTimedQueue`; the queue hands nodes out at
  ``--node-eviction-rate`` 0.1 per second per zone (burst 1), and each gets
  ``node.kubernetes.io/unreachable:NoExecute`` (or ``not-ready``, the two are kept
  mutually exclusive) with ``timeAdded`` now. Instead of Kubernetes' 100 ms polling, the
  key is re-queued for the moment the next token or retry is due;
- **zones** (``handleDisruption``): nodes are grouped by their
  ``topology.kubernetes.io/region``/``zone`` labels. A zone where at least
  ``--unhealthy-zone-threshold`` 55 % of more than 2 nodes are not Ready is *partially
  disrupted*: it is tainted at ``--secondary-node-eviction-rate`` 0.01/s if it has more
  than ``--large-cluster-size-threshold`` 50 nodes, else not at all. A zone with no Ready
  node is *fully disrupted* and is tainted at the normal rate -- unless every zone is:
  then the controller assumes the fault is its own (or the network's), removes every
  NoExecute taint it placed and stops tainting until some node is Ready again, which
  restarts every node's grace period. This is the current Kubernetes behaviour: the
  rate limits apply to *tainting nodes*; the pods themselves are then deleted by the taint
  eviction controller without a rate limit, each after its tolerationSeconds;
- **recovery**: a node seen Ready loses both NoExecute taints (and leaves the queue), and
  the NoSchedule pass removes the condition taint once the kubelet posts Ready=True;
- **new pods** (key ``pod:<ns>/<name>``): a pod bound to a node already not Ready is
  marked not Ready too.

Differences from Kubernetes, on purpose: a node's health record is dropped when the Node
is deleted (Kubernetes keeps it forever); the health record keeps the last Lease when the
kubelet's status heartbeat changes (Kubernetes drops it for one pass); API errors on one
node are logged and retried on the next pass, as Kubernetes does, but via typed
``errors.ApiError`` only. The DaemonSet and label-reconciling duties are not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from controlplane import errors
from controlplane.api.core_node import Node, NodeCondition, Taint
from controlplane.api.core_pod import Pod
from controlplane.api.meta import object_key
from controlplane.client.cache import NODE_NAME_INDEX
from controlplane.controllers.framework import ControllerContext
from controlplane.controllers.nodelifecycle_decisions import (
    LARGE_CLUSTER_SIZE_THRESHOLD,
    NODE_EVICTION_RATE,
    NODE_MONITOR_GRACE_PERIOD,
    NODE_MONITOR_PERIOD,
    NODE_STARTUP_GRACE_PERIOD,
    NOT_READY_TAINT,
    SECONDARY_NODE_EVICTION_RATE,
    STATE_INITIAL,
    TAINT_RETRY_SECONDS,
    UNHEALTHY_ZONE_THRESHOLD,
    UNREACHABLE_TAINT,
    NodeHealth,
    RateLimitedTimedQueue,
    excluded_from_disruption,
    get_condition,
    mark_pod_not_ready,
    no_schedule_taint_diff,
    plan_disruption,
    swap_taints,
    taint_exists,
    try_update_node_health,
    zone_key,
)

__all__ = ["NodeLifecycleController"]

LEASE_NAMESPACE = "kube-node-lease"
MONITOR_KEY = "@monitor"
NO_EXECUTE_KEY = "@noexecute"
NODE_PREFIX = "node:"
POD_PREFIX = "pod:"
#: ``NodeHealthUpdateRetry`` / ``UpdateTaintBackoff.Steps``: tries of a conflicting write.
UPDATE_RETRIES = 5


class NodeLifecycleController:
    """``node-lifecycle-controller`` (see the module docstring).

    Args:
        context: from the controller manager.
        node_monitor_period, node_monitor_grace_period, node_startup_grace_period,
        eviction_rate, secondary_eviction_rate, large_cluster_threshold,
        unhealthy_zone_threshold: the kube-controller-manager flags, defaulted as there.
    """

    name = "node-lifecycle-controller"

    def __init__(
        self,
        context: ControllerContext,
        *,
        node_monitor_period: float = NODE_MONITOR_PERIOD,
        node_monitor_grace_period: float = NODE_MONITOR_GRACE_PERIOD,
        node_startup_grace_period: float = NODE_STARTUP_GRACE_PERIOD,
        eviction_rate: float = NODE_EVICTION_RATE,
        secondary_eviction_rate: float | None = None,
        large_cluster_threshold: int | None = None,
        unhealthy_zone_threshold: float | None = None,
    ) -> None:
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self.monitor_period = node_monitor_period
        self.grace_period = node_monitor_grace_period
        self.startup_grace_period = node_startup_grace_period
        self.eviction_rate = eviction_rate
        self.secondary_eviction_rate = (
            SECONDARY_NODE_EVICTION_RATE
            if secondary_eviction_rate is None
            else secondary_eviction_rate
        )
        self.large_cluster_threshold = (
            LARGE_CLUSTER_SIZE_THRESHOLD
            if large_cluster_threshold is None
            else large_cluster_threshold
        )
        self.unhealthy_zone_threshold = (
            UNHEALTHY_ZONE_THRESHOLD
            if unhealthy_zone_threshold is None
            else unhealthy_zone_threshold
        )
        #: what the controller last saw of each node (``nodeHealthMap``)
        self.health: dict[str, NodeHealth] = {}
        self.zone_states: dict[str, str] = {}
        #: per zone: nodes waiting for their NoExecute taint (``zoneNoExecuteTainter``)
        self.tainters: dict[str, RateLimitedTimedQueue] = {}
        self._known: dict[str, Node] = {}
        self._nodes_to_retry: dict[str, None] = {}

        self._nodes = context.informers.informer("Node")
        self._nodes.add_event_handler(self._node_added, self._node_updated, None)
        self._pods = context.informers.informer("Pod")
        self._pods.add_event_handler(self._pod_added, self._pod_updated, None)
        self._leases = context.informers.informer("Lease")
        self._queue.add(MONITOR_KEY)

    # -- informer handlers -----------------------------------------------------------------

    def _node_added(self, node: Node) -> None:
        self._queue.add(NODE_PREFIX + node.metadata.name)

    def _node_updated(self, old: Node, new: Node) -> None:
        self._queue.add(NODE_PREFIX + new.metadata.name)

    def _pod_added(self, pod: Pod) -> None:
        if pod.spec.node_name:
            self._queue.add(POD_PREFIX + object_key(pod))

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        if new.spec.node_name and new.spec.node_name != old.spec.node_name:
            self._queue.add(POD_PREFIX + object_key(new))

    # -- the worker --------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        """Dispatch on the key's kind (see the module docstring)."""
        if key == MONITOR_KEY:
            await self.monitor_node_health()
            return self.monitor_period
        if key == NO_EXECUTE_KEY:
            return await self.no_execute_tainting_pass()
        if key.startswith(NODE_PREFIX):
            await self._no_schedule_tainting_pass(key[len(NODE_PREFIX) :])
            return None
        if key.startswith(POD_PREFIX):
            await self._process_pod(key[len(POD_PREFIX) :])
            return None
        self._log.warning("unknown_key", key=key)
        return None

    # -- NoSchedule taints -------------------------------------------------------------------

    async def _no_schedule_tainting_pass(self, name: str) -> None:
        node = self._nodes.cache.get(name)
        if node is None:
            return
        to_add, to_remove = no_schedule_taint_diff(node)
        if to_add or to_remove:
            await self._swap_taints(node, to_add, to_remove)

    async def _swap_taints(self, node: Node, add: Sequence[Taint], remove: Sequence[Taint]) -> bool:
        """``SwapNodeControllerTaint``: add (stamped now), remove; read-modify-write with
        retries on Conflict. Returns whether the node changed.

        Raises:
            errors.ApiError: the write failed (or kept conflicting).
        """

        def mutate(current: Node) -> tuple[Taint, ...] | None:
            return swap_taints(current.spec.taints, add, remove, trio.current_time())

        return await self._update_taints(node.metadata.name, mutate)

    async def _update_taints(
        self, name: str, mutate: Callable[[Node], tuple[Taint, ...] | None]
    ) -> bool:
        for attempt in range(UPDATE_RETRIES):
            try:
                current = await self._client.get(Node, name)
            except errors.NotFound:
                return False
            taints = mutate(current)
            if taints is None:
                return False
            updated = attrs.evolve(current, spec=attrs.evolve(current.spec, taints=taints))
            try:
                await self._client.update(updated)
            except errors.Conflict:
                if attempt == UPDATE_RETRIES - 1:
                    raise
                continue
            except errors.NotFound:
                return False
            self._log.info(
                "node_taints_updated",
                node=name,
                taints=[f"{t.key}:{t.effect}" for t in taints],
            )
            return True
        return False  # pragma: no cover - the loop returns or raises

    async def _remove_no_execute_taints(self, node: Node) -> bool:
        """``markNodeAsReachable``: both NoExecute taints off, and out of the queue."""
        changed = False
        if taint_exists(node.spec.taints, UNREACHABLE_TAINT) or taint_exists(
            node.spec.taints, NOT_READY_TAINT
        ):
            changed = await self._swap_taints(node, (), (UNREACHABLE_TAINT, NOT_READY_TAINT))
        tainter = self.tainters.get(zone_key(node))
        if tainter is not None:
            tainter.remove(node.metadata.name)
        return changed

    # -- NoExecute taints --------------------------------------------------------------------

    def _tainter(self, node: Node) -> RateLimitedTimedQueue:
        zone = zone_key(node)
        tainter = self.tainters.get(zone)
        if tainter is None:
            tainter = self.tainters[zone] = RateLimitedTimedQueue(
                self.eviction_rate, trio.current_time()
            )
            self.zone_states.setdefault(zone, STATE_INITIAL)
        return tainter

    def _mark_for_tainting(self, node: Node, status: str) -> bool:
        """``markNodeForTainting``: queue the node (again, if its taint went missing)."""
        tainter = self._tainter(node)
        name = node.metadata.name
        wanted = NOT_READY_TAINT if status == "False" else UNREACHABLE_TAINT
        if not taint_exists(node.spec.taints, wanted):
            tainter.remove(name)
        added = tainter.add(name, node.metadata.uid, trio.current_time())
        if added:
            self._queue.add(NO_EXECUTE_KEY)
        return added

    async def no_execute_tainting_pass(self) -> float | None:
        """``doNoExecuteTaintingPass``: taint the nodes each zone's limiter lets through.
        Returns when to run again (the next token or retry), None if nothing waits."""
        for tainter in list(self.tainters.values()):
            while (item := tainter.next_due(trio.current_time())) is not None:
                ok, wait = await self._taint_no_execute(item.value)
                if ok:
                    tainter.finish(item.value)
                else:
                    tainter.retry(item, trio.current_time() + wait + 1e-9)
        now = trio.current_time()
        wakes = [w for t in self.tainters.values() if (w := t.wake_at(now)) is not None]
        return max(min(wakes) - now, 0.0) if wakes else None

    async def _taint_no_execute(self, name: str) -> tuple[bool, float]:
        node = self._nodes.cache.get(name)
        if node is None:
            return True, 0.0  # gone
        ready = get_condition(node.status, "Ready")
        if ready is None:
            return False, TAINT_RETRY_SECONDS
        if ready.status == "False":
            add, opposite = NOT_READY_TAINT, UNREACHABLE_TAINT
        elif ready.status == "Unknown":
            add, opposite = UNREACHABLE_TAINT, NOT_READY_TAINT
        else:
            return True, 0.0  # Ready again: nothing to do
        try:
            await self._swap_taints(node, (add,), (opposite,))
        except errors.ApiError as exc:
            self._log.info("taint_failed", node=name, reason=exc.reason, error=str(exc))
            return False, 0.0
        self._log.info("node_tainted", node=name, taint=f"{add.key}:{add.effect}")
        return True, 0.0

    async def _process_taint_based_eviction(self, node: Node, observed: NodeCondition) -> None:
        """``processTaintBaseEviction``: queue a not-Ready node for its NoExecute taint
        (or swap the taint at once when it flipped between Unknown and False); take the
        taints off a Ready one."""
        status = observed.status
        if status == "False":
            if taint_exists(node.spec.taints, UNREACHABLE_TAINT):
                await self._swap_taints(node, (NOT_READY_TAINT,), (UNREACHABLE_TAINT,))
            elif self._mark_for_tainting(node, "False"):
                self._log.info("node_not_ready_queued_for_taint", node=node.metadata.name)
        elif status == "Unknown":
            if taint_exists(node.spec.taints, NOT_READY_TAINT):
                await self._swap_taints(node, (UNREACHABLE_TAINT,), (NOT_READY_TAINT,))
            elif self._mark_for_tainting(node, "Unknown"):
                self._log.info("node_unreachable_queued_for_taint", node=node.metadata.name)
        elif status == "True" and await self._remove_no_execute_taints(node):
            self._log.info("node_healthy_taints_removed", node=node.metadata.name)

    # -- the health monitor ------------------------------------------------------------------

    async def monitor_node_health(self) -> None:
        """``monitorNodeHealth``: one pass over every node (see the module docstring)."""
        nodes = list(self._nodes.cache)
        names = {n.metadata.name for n in nodes}
        for node in nodes:
            name = node.metadata.name
            if name not in self._known:
                self._known[name] = node
                self._tainter(node)
                self._events.record(
                    node,
                    "Normal",
                    "RegisteredNode",
                    f"Node {name} event: Registered Node {name} in Controller",
                )
                await self._guarded(name, self._remove_no_execute_taints(node))
            elif zone_key(node) not in self.zone_states:
                self._tainter(node)
        for name in [n for n in self._known if n not in names]:
            gone = self._known.pop(name)
            self.health.pop(name, None)
            self._nodes_to_retry.pop(name, None)
            self._events.record(
                gone,
                "Normal",
                "RemovingNode",
                f"Node {name} event: Removing Node {name} from Controller",
            )

        zone_conditions: dict[str, list[NodeCondition | None]] = {}
        for node in nodes:
            updated, current = await self._update_node(node)
            if not updated:
                continue
            if not excluded_from_disruption(node):
                zone_conditions.setdefault(zone_key(node), []).append(current)
        await self._handle_disruption(zone_conditions, nodes)

    async def _update_node(self, node: Node) -> tuple[bool, NodeCondition | None]:
        """One node of the pass: (whether its health could be updated -- if not it is
        skipped this pass, as Kubernetes does --, its current Ready condition)."""
        name = node.metadata.name
        now = trio.current_time()
        update = None
        for attempt in range(UPDATE_RETRIES):
            lease = self._leases.cache.get(name, LEASE_NAMESPACE)
            update = try_update_node_health(
                node,
                self.health.get(name),
                lease,
                now,
                grace_period=self.grace_period,
                startup_grace_period=self.startup_grace_period,
            )
            self.health[name] = update.health
            if update.status_to_write is None:
                break
            try:
                await self._client.update_status(attrs.evolve(node, status=update.status_to_write))
            except errors.ApiError as exc:
                self._log.info("node_status_update_failed", node=name, error=str(exc))
                if attempt == UPDATE_RETRIES - 1 or isinstance(exc, errors.NotFound):
                    return False, None
                try:
                    node = await self._client.get(Node, name)
                except errors.ApiError:
                    return False, None
                continue
            assert update.written_health is not None
            self.health[name] = update.written_health
            self._log.info("node_status_unknown", node=name)
            break
        assert update is not None
        current, observed = update.current_ready, update.observed_ready
        if current is None:
            self._nodes_to_retry.pop(name, None)
            return True, current
        await self._guarded(name, self._process_taint_based_eviction(node, observed))
        retry = name in self._nodes_to_retry
        transitioned = current.status != "True" and observed.status == "True"
        if transitioned:
            self._events.record(
                node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
            )
        mark = transitioned or (retry and observed.status != "True")
        if mark and await self._mark_pods_not_ready(self._pods_on(name), name) is not None:
            self._nodes_to_retry[name] = None
            return True, current
        self._nodes_to_retry.pop(name, None)
        return True, current

    async def _guarded(self, name: str, step: Any) -> None:
        """Run a write step for one node; an API error is logged and retried next pass."""
        try:
            await step
        except errors.ApiError as exc:
            self._log.info("node_step_failed", node=name, reason=exc.reason, error=str(exc))

    def _pods_on(self, node_name: str) -> list[Pod]:
        return self._pods.cache.by_index(NODE_NAME_INDEX, node_name)

    async def _mark_pods_not_ready(
        self, pods: Sequence[Pod], node_name: str
    ) -> errors.ApiError | None:
        """``MarkPodsNotReady``; returns the first write error (the caller retries)."""
        failed: errors.ApiError | None = None
        for pod in pods:
            if pod.spec.node_name != node_name:
                continue
            updated = mark_pod_not_ready(pod, trio.current_time())
            if updated is None:
                continue
            try:
                await self._client.update_status(updated)
            except errors.NotFound:
                continue
            except errors.ApiError as exc:
                self._log.info("mark_pod_not_ready_failed", pod=object_key(pod), error=str(exc))
                failed = failed or exc
                continue
            self._events.record(pod, "Warning", "NodeNotReady", "Node is not ready")
        return failed

    async def _handle_disruption(
        self, zone_conditions: dict[str, list[NodeCondition | None]], nodes: Sequence[Node]
    ) -> None:
        plan = plan_disruption(
            zone_conditions,
            self.zone_states,
            eviction_qps=self.eviction_rate,
            secondary_qps=self.secondary_eviction_rate,
            large_cluster_threshold=self.large_cluster_threshold,
            unhealthy_threshold=self.unhealthy_zone_threshold,
        )
        now = trio.current_time()
        if plan.mark_all_reachable:
            self._log.warning("all_nodes_not_ready_entering_disruption_mode")
            for node in nodes:
                await self._guarded(node.metadata.name, self._remove_no_execute_taints(node))
        if plan.reset_probe_timestamps:
            self._log.info("some_nodes_ready_leaving_disruption_mode")
            for name, health in list(self.health.items()):
                self.health[name] = attrs.evolve(
                    health, probe_timestamp=now, ready_transition_timestamp=now
                )
        for zone, state in plan.zone_states.items():
            if self.zone_states.get(zone) != state:
                self._log.info("zone_state_changed", zone=zone, state=state)
        self.zone_states = plan.zone_states
        swapped = False
        for zone, qps in plan.limiter_qps.items():
            tainter = self.tainters.get(zone)
            if tainter is None:
                tainter = self.tainters[zone] = RateLimitedTimedQueue(qps, now)
            if tainter.limiter.qps != qps:
                tainter.swap_limiter(qps, now)
                swapped = True
        if swapped:
            self._queue.add(NO_EXECUTE_KEY)

    # -- pods bound to not-Ready nodes -------------------------------------------------------

    async def _process_pod(self, key: str) -> None:
        """``processPod``: a pod newly bound to a node that is not Ready is marked not
        Ready. Raises ``errors.ApiError`` to be retried."""
        pod = self._pods.cache.get_by_key(key)
        if pod is None or not pod.spec.node_name:
            return
        node_name = pod.spec.node_name
        health = self.health.get(node_name)
        if health is None or self._nodes.cache.get(node_name) is None:
            return
        ready = get_condition(health.status, "Ready")
        if ready is None or ready.status == "True":
            return
        failed = await self._mark_pods_not_ready([pod], node_name)
        if failed is not None:
            raise failed
