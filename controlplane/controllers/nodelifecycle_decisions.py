"""The node lifecycle controller's decisions, as plain functions and small sync classes.

Everything here takes ``now`` (trio time, seconds) and returns what to do; nothing does
I/O. The actor in :mod:`controlplane.controllers.nodelifecycle` reads its caches, calls
these and writes the result. The names follow Kubernetes'
``pkg/controller/nodelifecycle/node_lifecycle_controller.go`` and
``.../scheduler/rate_limited_queue.go`` so the two can be read side by side:

- :func:`try_update_node_health` is ``tryUpdateNodeHealth``: the node's health signals
  (its Ready condition's heartbeat and its Lease's renewTime) are compared with what was
  seen before; a node silent for longer than the grace period gets Ready (and
  MemoryPressure, DiskPressure, PIDPressure) ``Unknown``;
- :func:`no_schedule_taint_diff` is ``doNoScheduleTaintingPass`` (TaintNodesByCondition);
- :func:`compute_zone_state` and :func:`plan_disruption` are ``ComputeZoneState`` and
  ``handleDisruption``;
- :class:`RateLimitedTimedQueue` is the per-zone queue of nodes waiting for their
  NoExecute taint, behind a token bucket (``--node-eviction-rate``, burst 1);
- :func:`mark_pod_not_ready` is one step of ``MarkPodsNotReady``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import attrs

from controlplane.api.coordination import Lease
from controlplane.api.core_node import Node, NodeCondition, NodeStatus, Taint
from controlplane.api.core_pod import Pod
from controlplane.clock import EPOCH, to_wall

__all__ = [
    "CONDITION_TAINT_KEYS",
    "LARGE_CLUSTER_SIZE_THRESHOLD",
    "NODE_EVICTION_RATE",
    "NODE_MONITOR_GRACE_PERIOD",
    "NODE_MONITOR_PERIOD",
    "NODE_STARTUP_GRACE_PERIOD",
    "NOT_READY_TAINT",
    "SECONDARY_NODE_EVICTION_RATE",
    "STATE_FULL_DISRUPTION",
    "STATE_INITIAL",
    "STATE_NORMAL",
    "STATE_PARTIAL_DISRUPTION",
    "TAINT_NODE_NOT_READY",
    "TAINT_NODE_UNREACHABLE",
    "UNHEALTHY_ZONE_THRESHOLD",
    "UNREACHABLE_TAINT",
    "DisruptionPlan",
    "HealthUpdate",
    "NodeHealth",
    "RateLimitedTimedQueue",
    "TokenBucket",
    "add_or_update_taint",
    "compute_zone_state",
    "get_condition",
    "mark_pod_not_ready",
    "no_schedule_taint_diff",
    "plan_disruption",
    "remove_taints",
    "taint_exists",
    "trio_time",
    "try_update_node_health",
    "zone_key",
]

# -- kube-controller-manager defaults ---------------------------------------------------

#: ``--node-monitor-period``: how often node health is checked.
NODE_MONITOR_PERIOD = 5.0
#: ``--node-monitor-grace-period``: silence after which a node is Unknown (40 s; 50 s
#: from v1.32 -- DESIGN.md pins 40).
NODE_MONITOR_GRACE_PERIOD = 40.0
#: Grace for a node whose kubelet never posted a Ready condition.
NODE_STARTUP_GRACE_PERIOD = 60.0
#: ``--node-eviction-rate``: NoExecute taints per second per zone.
NODE_EVICTION_RATE = 0.1
#: ``--secondary-node-eviction-rate``: in a partially disrupted large zone.
SECONDARY_NODE_EVICTION_RATE = 0.01
#: ``--unhealthy-zone-threshold``: share of not-ready nodes that disrupts a zone.
UNHEALTHY_ZONE_THRESHOLD = 0.55
#: ``--large-cluster-size-threshold``: a zone with more nodes keeps tainting (slowly)
#: when partially disrupted; a smaller one stops.
LARGE_CLUSTER_SIZE_THRESHOLD = 50
#: ``scheduler.EvictionRateLimiterBurst``.
EVICTION_RATE_LIMITER_BURST = 1
#: How soon a failed taint attempt is retried (``doNoExecuteTaintingPass``: 50 ms).
TAINT_RETRY_SECONDS = 0.05

# -- taints -----------------------------------------------------------------------------

TAINT_NODE_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_NODE_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NODE_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_NODE_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_NODE_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_NODE_PID_PRESSURE = "node.kubernetes.io/pid-pressure"

UNREACHABLE_TAINT = Taint(key=TAINT_NODE_UNREACHABLE, effect="NoExecute")
NOT_READY_TAINT = Taint(key=TAINT_NODE_NOT_READY, effect="NoExecute")

#: ``nodeConditionToTaintKeyStatusMap``: (condition type, status) -> NoSchedule taint key.
CONDITION_TAINT_KEYS: Mapping[tuple[str, str], str] = {
    ("Ready", "False"): TAINT_NODE_NOT_READY,
    ("Ready", "Unknown"): TAINT_NODE_UNREACHABLE,
    ("MemoryPressure", "True"): TAINT_NODE_MEMORY_PRESSURE,
    ("DiskPressure", "True"): TAINT_NODE_DISK_PRESSURE,
    ("NetworkUnavailable", "True"): TAINT_NODE_NETWORK_UNAVAILABLE,
    ("PIDPressure", "True"): TAINT_NODE_PID_PRESSURE,
}
#: ``taintKeyToNodeConditionMap``'s keys: the taints this controller owns.
_CONDITION_TAINT_KEY_SET = frozenset(CONDITION_TAINT_KEYS.values())

#: Conditions set Unknown when the kubelet goes silent (NetworkUnavailable is left
#: alone: the network plugin owns it).
UNKNOWN_CONDITION_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

#: Nodes with this label are left out of zone disruption counting.
LABEL_EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"

ZONE_LABELS = (
    ("failure-domain.beta.kubernetes.io/zone", "topology.kubernetes.io/zone"),
    ("failure-domain.beta.kubernetes.io/region", "topology.kubernetes.io/region"),
)


def trio_time(wall: datetime | None, default: float) -> float:
    """The trio time of a wall-clock timestamp (see :mod:`controlplane.clock`), or
    ``default`` when there is none."""
    if wall is None:
        return default
    try:
        return (wall - EPOCH).total_seconds()
    except TypeError:  # a naive datetime from a hand-written object
        return default


def zone_key(node: Node) -> str:
    """``GetZoneKey``: ``region:\\x00:zone`` from the (beta, else GA) topology labels;
    ``""`` for a node without either."""
    labels = node.metadata.labels
    beta_zone, ga_zone = ZONE_LABELS[0]
    beta_region, ga_region = ZONE_LABELS[1]
    zone = labels[beta_zone] if beta_zone in labels else labels.get(ga_zone, "")
    region = labels[beta_region] if beta_region in labels else labels.get(ga_region, "")
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


def excluded_from_disruption(node: Node) -> bool:
    return LABEL_EXCLUDE_DISRUPTION in node.metadata.labels


def get_condition(status: NodeStatus | None, type_: str) -> NodeCondition | None:
    if status is None:
        return None
    for condition in status.conditions:
        if condition.type == type_:
            return condition
    return None


# -- taint sets ---------------------------------------------------------------------------


def _matches(a: Taint, b: Taint) -> bool:
    """``Taint.MatchTaint``: same key and effect."""
    return a.key == b.key and a.effect == b.effect


def taint_exists(taints: Iterable[Taint], template: Taint) -> bool:
    return any(_matches(t, template) for t in taints)


def add_or_update_taint(taints: Sequence[Taint], taint: Taint) -> tuple[Taint, ...] | None:
    """``AddOrUpdateTaint``: ``taints`` with ``taint`` added (or replacing one with its
    key and effect but another value); None if an equal one is there already -- its
    ``timeAdded`` is kept, so eviction deadlines do not move."""
    out: list[Taint] = []
    replaced = False
    for existing in taints:
        if _matches(existing, taint):
            if (existing.value or "") == (taint.value or ""):
                return None
            out.append(taint)
            replaced = True
        else:
            out.append(existing)
    if not replaced:
        out.append(taint)
    return tuple(out)


def remove_taints(taints: Sequence[Taint], templates: Iterable[Taint]) -> tuple[Taint, ...] | None:
    """``taints`` without those matching any of ``templates``; None if none matched."""
    templates = tuple(templates)
    kept = tuple(t for t in taints if not any(_matches(t, r) for r in templates))
    return None if len(kept) == len(taints) else kept


def swap_taints(
    taints: Sequence[Taint], add: Iterable[Taint], remove: Iterable[Taint], now: float
) -> tuple[Taint, ...] | None:
    """``SwapNodeControllerTaint`` on a taint list: ``add`` (stamped ``timeAdded`` now)
    then ``remove``. None if nothing changes."""
    current = tuple(taints)
    changed = False
    wall = to_wall(now)
    for taint in add:
        updated = add_or_update_taint(current, attrs.evolve(taint, time_added=wall))
        if updated is not None:
            current, changed = updated, True
    removed = remove_taints(current, remove)
    if removed is not None:
        current, changed = removed, True
    return current if changed else None


def no_schedule_taint_diff(node: Node) -> tuple[tuple[Taint, ...], tuple[Taint, ...]]:
    """``doNoScheduleTaintingPass``: the NoSchedule taints to add and to remove so that
    the node's condition taints (and ``node.kubernetes.io/unschedulable`` for a cordoned
    node) match its conditions. Taints other components own are never touched."""
    wanted: list[Taint] = []
    for condition in node.status.conditions:
        key = CONDITION_TAINT_KEYS.get((condition.type, condition.status))
        if key is not None:
            wanted.append(Taint(key=key, effect="NoSchedule"))
    if node.spec.unschedulable:
        wanted.append(Taint(key=TAINT_NODE_UNSCHEDULABLE, effect="NoSchedule"))
    have = [
        t
        for t in node.spec.taints
        if t.effect == "NoSchedule"
        and (t.key == TAINT_NODE_UNSCHEDULABLE or t.key in _CONDITION_TAINT_KEY_SET)
    ]
    to_add = tuple(t for t in wanted if not taint_exists(have, t))
    to_remove = tuple(t for t in have if not taint_exists(wanted, t))
    return to_add, to_remove


# -- node health ---------------------------------------------------------------------------


@attrs.frozen
class NodeHealth:
    """``nodeHealthData``: what the controller last saw of a node, with the local times
    it saw a change (so the kubelet's clock never matters)."""

    probe_timestamp: float
    ready_transition_timestamp: float
    status: NodeStatus
    lease: Lease | None = None


@attrs.frozen
class HealthUpdate:
    """The result of :func:`try_update_node_health`.

    ``health`` is what to remember; if ``status_to_write`` is set, write it as the node's
    status and, once written, remember ``written_health`` instead.
    ``observed_ready`` is the Ready condition as the node had it; ``current_ready`` the
    one after this update (None: the node has none).
    """

    health: NodeHealth
    observed_ready: NodeCondition
    current_ready: NodeCondition | None
    grace_period: float
    status_to_write: NodeStatus | None = None
    written_health: NodeHealth | None = None


def _renew_time(lease: Lease | None) -> datetime | None:
    return lease.spec.renew_time if lease is not None else None


def _lease_renewed(saved: Lease | None, observed: Lease | None) -> bool:
    """``savedLease == nil || savedLease.RenewTime.Before(observedLease.RenewTime)``."""
    if observed is None:
        return False
    if saved is None:
        return True
    before, after = _renew_time(saved), _renew_time(observed)
    if after is None:
        return False
    if before is None:
        return True
    try:
        return before < after
    except TypeError:  # naive vs aware timestamps on hand-made objects
        return False


def try_update_node_health(
    node: Node,
    saved: NodeHealth | None,
    lease: Lease | None,
    now: float,
    *,
    grace_period: float = NODE_MONITOR_GRACE_PERIOD,
    startup_grace_period: float = NODE_STARTUP_GRACE_PERIOD,
) -> HealthUpdate:
    """``tryUpdateNodeHealth``: compare the node's health signals with ``saved``.

    The probe timestamp moves to ``now`` whenever the Ready condition's heartbeat changed
    or the Lease was renewed since last seen. If it is older than the grace period (40 s;
    60 s for a node that never posted a Ready condition), the node's Ready,
    MemoryPressure, DiskPressure and PIDPressure conditions become ``Unknown`` (reason
    NodeStatusUnknown, "Kubelet stopped posting node status.") and the new status is to
    be written -- only if the Ready condition really changes.
    """
    status = node.status
    current_ready = get_condition(status, "Ready")
    created = trio_time(node.metadata.creation_timestamp, now)
    if current_ready is None:
        observed_ready = NodeCondition(
            type="Ready",
            status="Unknown",
            last_heartbeat_time=node.metadata.creation_timestamp,
            last_transition_time=node.metadata.creation_timestamp,
        )
        grace = startup_grace_period
        if saved is not None:
            saved = attrs.evolve(saved, status=status)
        else:
            saved = NodeHealth(
                probe_timestamp=created, ready_transition_timestamp=created, status=status
            )
    else:
        observed_ready = current_ready
        grace = grace_period

    saved_ready = get_condition(saved.status, "Ready") if saved is not None else None
    saved_lease = saved.lease if saved is not None else None
    health: NodeHealth
    if saved is None:
        health = NodeHealth(probe_timestamp=now, ready_transition_timestamp=now, status=status)
    elif (saved_ready is None and current_ready is not None) or (
        saved_ready is not None and current_ready is None
    ):
        # Newly observed with a Ready condition, or the condition vanished: start afresh.
        health = NodeHealth(probe_timestamp=now, ready_transition_timestamp=now, status=status)
    elif (
        saved_ready is not None
        and current_ready is not None
        and saved_ready.last_heartbeat_time != current_ready.last_heartbeat_time
    ):
        transition = (
            now
            if saved_ready.last_transition_time != current_ready.last_transition_time
            else saved.ready_transition_timestamp
        )
        health = NodeHealth(
            probe_timestamp=now, ready_transition_timestamp=transition, status=status
        )
    else:
        health = saved
    # The Lease is the cheap heartbeat: a renewal counts as a sign of life.
    if _lease_renewed(saved_lease, lease):
        health = attrs.evolve(health, lease=lease, probe_timestamp=now)
    elif saved_lease is not None and health.lease is None:
        health = attrs.evolve(health, lease=saved_lease)

    if not now > health.probe_timestamp + grace:
        return HealthUpdate(health, observed_ready, current_ready, grace)

    wall = to_wall(now)
    conditions = list(status.conditions)
    for type_ in UNKNOWN_CONDITION_TYPES:
        index = next((i for i, c in enumerate(conditions) if c.type == type_), None)
        if index is None:
            conditions.append(
                NodeCondition(
                    type=type_,
                    status="Unknown",
                    reason="NodeStatusNeverUpdated",
                    message="Kubelet never posted node status.",
                    last_heartbeat_time=node.metadata.creation_timestamp,
                    last_transition_time=wall,
                )
            )
        elif conditions[index].status != "Unknown":
            conditions[index] = attrs.evolve(
                conditions[index],
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
                last_transition_time=wall,
            )
    new_status = attrs.evolve(status, conditions=tuple(conditions))
    new_ready = get_condition(new_status, "Ready")
    if new_ready == observed_ready:
        return HealthUpdate(health, observed_ready, current_ready, grace)
    written = NodeHealth(
        probe_timestamp=health.probe_timestamp,
        ready_transition_timestamp=now,
        status=new_status,
        lease=lease,
    )
    return HealthUpdate(
        health,
        observed_ready,
        new_ready,
        grace,
        status_to_write=new_status,
        written_health=written,
    )


def mark_pod_not_ready(pod: Pod, now: float) -> Pod | None:
    """One pod of ``MarkPodsNotReady``: its Ready condition set to False (transition time
    now); None if it has no Ready condition or it is False already. ContainersReady and
    the container statuses are left alone, as Kubernetes does."""
    conditions = pod.status.conditions
    for i, condition in enumerate(conditions):
        if condition.type != "Ready":
            continue
        if condition.status == "False":
            return None
        updated = attrs.evolve(condition, status="False", last_transition_time=to_wall(now))
        new = (*conditions[:i], updated, *conditions[i + 1 :])
        return attrs.evolve(pod, status=attrs.evolve(pod.status, conditions=new))
    return None


# -- zones and disruption ------------------------------------------------------------------

STATE_INITIAL = "Initial"
STATE_NORMAL = "Normal"
STATE_FULL_DISRUPTION = "FullDisruption"
STATE_PARTIAL_DISRUPTION = "PartialDisruption"


def compute_zone_state(
    ready_conditions: Sequence[NodeCondition | None],
    unhealthy_threshold: float = UNHEALTHY_ZONE_THRESHOLD,
) -> tuple[int, str]:
    """``ComputeZoneState``: (not-ready nodes, state). Fully disrupted when no node is
    Ready; partially when more than 2 nodes and at least ``unhealthy_threshold`` of them
    are not Ready."""
    ready = sum(1 for c in ready_conditions if c is not None and c.status == "True")
    not_ready = len(ready_conditions) - ready
    if ready == 0 and not_ready > 0:
        return not_ready, STATE_FULL_DISRUPTION
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return not_ready, STATE_PARTIAL_DISRUPTION
    return not_ready, STATE_NORMAL


@attrs.frozen
class DisruptionPlan:
    """What ``handleDisruption`` decided: the zone states to keep, the zones whose taint
    rate changes (``zone -> qps``), whether every node's NoExecute taints come off
    (entering "master disruption": no zone has a Ready node, so the fault is more likely
    the control plane's than every node's), and whether every node's probe timestamps
    restart (leaving it)."""

    zone_states: dict[str, str]
    limiter_qps: dict[str, float]
    mark_all_reachable: bool = False
    reset_probe_timestamps: bool = False


def _zone_qps(
    state: str, size: int, eviction_qps: float, secondary_qps: float, large_cluster: int
) -> float | None:
    """``setLimiterInZone``; None for Initial (the limiter stays as it is)."""
    if state == STATE_NORMAL:
        return eviction_qps
    if state == STATE_PARTIAL_DISRUPTION:
        return secondary_qps if size > large_cluster else 0.0  # ReducedQPSFunc
    if state == STATE_FULL_DISRUPTION:
        return eviction_qps  # HealthyQPSFunc
    return None


def plan_disruption(
    zone_conditions: Mapping[str, Sequence[NodeCondition | None]],
    zone_states: Mapping[str, str],
    *,
    eviction_qps: float = NODE_EVICTION_RATE,
    secondary_qps: float = SECONDARY_NODE_EVICTION_RATE,
    large_cluster_threshold: int = LARGE_CLUSTER_SIZE_THRESHOLD,
    unhealthy_threshold: float = UNHEALTHY_ZONE_THRESHOLD,
) -> DisruptionPlan:
    """``handleDisruption``: from the Ready conditions per zone (after this pass) and the
    zone states so far, the new states and taint rates.

    - a zone partially disrupted taints at the secondary rate if it has more than
      ``large_cluster_threshold`` nodes, else not at all;
    - a zone fully disrupted taints at the normal rate -- unless *every* zone is fully
      disrupted: then tainting stops everywhere and existing NoExecute taints come off;
    - leaving that state restarts every node's grace period.
    """
    new_states: dict[str, str] = {}
    all_are_full = True
    states = dict(zone_states)
    for zone, conditions in zone_conditions.items():
        _, state = compute_zone_state(conditions, unhealthy_threshold)
        if state != STATE_FULL_DISRUPTION:
            all_are_full = False
        new_states[zone] = state
        states.setdefault(zone, STATE_INITIAL)
    states = {z: s for z, s in states.items() if z in zone_conditions}
    all_were_full = all(s == STATE_FULL_DISRUPTION for s in states.values())

    def qps(zone: str, state: str) -> float | None:
        size = len(zone_conditions[zone])
        return _zone_qps(state, size, eviction_qps, secondary_qps, large_cluster_threshold)

    if all_are_full and all_were_full:
        return DisruptionPlan(states, {})
    if all_are_full:
        return DisruptionPlan(
            dict.fromkeys(states, STATE_FULL_DISRUPTION),
            dict.fromkeys(states, 0.0),
            mark_all_reachable=True,
        )
    limits: dict[str, float] = {}
    if all_were_full:
        for zone in states:
            rate = qps(zone, new_states[zone])
            if rate is not None:
                limits[zone] = rate
        return DisruptionPlan(dict(new_states), limits, reset_probe_timestamps=True)
    for zone, state in states.items():
        new = new_states[zone]
        if new == state:
            continue
        rate = qps(zone, new)
        if rate is not None:
            limits[zone] = rate
        states[zone] = new
    return DisruptionPlan(states, limits)


# -- the rate-limited tainting queue -------------------------------------------------------


# A token this close to whole counts as whole. ``next_token_at`` answers ``now + (1 -
# tokens) / qps``; when the virtual clock reaches that float, the refill can come out a
# hair short of 1.0 (rounding), and the next answer is ``now`` plus less than one ulp of
# the clock -- the same instant. Without the tolerance the tainting pass re-runs at that
# instant forever and virtual time stops (found by a chaos run at t ~ 1030 s).
TOKEN_EPSILON = 1e-9


class TokenBucket:
    """client-go's token bucket rate limiter (``golang.org/x/time/rate``): ``burst``
    tokens, refilled at ``qps``; starts full. ``qps <= 0`` never accepts
    (``NewFakeNeverRateLimiter``)."""

    def __init__(self, qps: float, now: float, burst: int = EVICTION_RATE_LIMITER_BURST) -> None:
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if self.qps > 0 and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = max(self._last, now)

    def try_accept(self, now: float) -> bool:
        if self.qps <= 0:
            return False
        self._refill(now)
        if self._tokens >= 1.0 - TOKEN_EPSILON:
            self._tokens = max(self._tokens - 1.0, 0.0)
            return True
        return False

    def drain(self) -> None:
        self._tokens = 0.0

    def next_token_at(self, now: float) -> float:
        """When a token will be there (``inf`` for a limiter that never accepts)."""
        if self.qps <= 0:
            return math.inf
        self._refill(now)
        if self._tokens >= 1.0 - TOKEN_EPSILON:
            return now
        return now + (1.0 - self._tokens) / self.qps


@attrs.define
class TimedValue:
    value: str
    uid: str
    added_at: float
    process_at: float


class RateLimitedTimedQueue:
    """``RateLimitedTimedQueue``: node names waiting for their NoExecute taint, earliest
    ``process_at`` first, each taken only when the zone's token bucket allows.

    A value stays known after it was processed (``finish``) until :meth:`remove`: a node
    is tainted once per outage, not once per pass.
    """

    def __init__(self, qps: float, now: float) -> None:
        self.limiter = TokenBucket(qps, now)
        self._heap: list[tuple[float, int, str]] = []
        self._values: dict[str, TimedValue] = {}  # queued
        self._known: dict[str, None] = {}  # queued or processed, until removed
        self._seq = 0

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._known

    def add(self, value: str, uid: str, now: float) -> bool:
        """Queue ``value`` unless it is known already. Returns whether it was added."""
        if value in self._known:
            return False
        self._known[value] = None
        self._push(TimedValue(value, uid, now, now))
        return True

    def _push(self, item: TimedValue) -> None:
        self._values[item.value] = item
        self._seq += 1
        heapq.heappush(self._heap, (item.process_at, self._seq, item.value))

    def remove(self, value: str) -> bool:
        """Forget ``value`` (it may be added again). Returns whether it was known."""
        if value not in self._known:
            return False
        del self._known[value]
        self._values.pop(value, None)
        return True

    def _head(self) -> TimedValue | None:
        heap = self._heap
        while heap:
            process_at, _, value = heap[0]
            item = self._values.get(value)
            if item is not None and item.process_at == process_at:
                return item
            heapq.heappop(heap)  # removed or re-queued later: a stale entry
        return None

    def next_due(self, now: float) -> TimedValue | None:
        """One step of ``Try``: the head if the limiter grants a token and it is due.

        As in Kubernetes, a token is spent on the check even when the head is not due yet.
        Call :meth:`finish` or :meth:`retry` with what it returns.
        """
        head = self._head()
        if head is None or not self.limiter.try_accept(now):
            return None
        if now < head.process_at:
            return None
        return head

    def finish(self, value: str) -> None:
        """Processed: out of the queue, but still known."""
        self._values.pop(value, None)

    def retry(self, item: TimedValue, process_at: float) -> None:
        if item.value in self._values:
            self._push(attrs.evolve(item, process_at=process_at))

    def wake_at(self, now: float) -> float | None:
        """When a :meth:`next_due` could next succeed; None if never without a change."""
        head = self._head()
        if head is None:
            return None
        token = self.limiter.next_token_at(now)
        if math.isinf(token):
            return None
        return max(head.process_at, token)

    def swap_limiter(self, qps: float, now: float) -> None:
        """``SwapLimiter``: a new bucket at ``qps``; if the old one had no token now, the
        new one starts empty too (burst 1)."""
        if self.limiter.qps == qps:
            return
        old = self.limiter
        new = TokenBucket(qps, now)
        if qps > 0 and not old.try_accept(now):
            new.drain()
        self.limiter = new
