"""The node lifecycle controller: its pure decisions, then whole clusters in virtual time
(nodes crash, come back, whole zones fail)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from controlplane import errors, open_cluster
from controlplane.admission.default_tolerations import DefaultTolerationSeconds
from controlplane.api.coordination import Lease, LeaseSpec
from controlplane.api.core_node import Node, NodeCondition, NodeSpec, NodeStatus, Taint
from controlplane.api.core_pod import Pod, PodCondition, PodStatus
from controlplane.api.meta import ObjectMeta
from controlplane.clock import EPOCH, to_wall
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.nodelifecycle_decisions import (
    NOT_READY_TAINT,
    STATE_FULL_DISRUPTION,
    STATE_INITIAL,
    STATE_NORMAL,
    STATE_PARTIAL_DISRUPTION,
    UNREACHABLE_TAINT,
    RateLimitedTimedQueue,
    TokenBucket,
    add_or_update_taint,
    compute_zone_state,
    mark_pod_not_ready,
    no_schedule_taint_diff,
    plan_disruption,
    swap_taints,
    try_update_node_health,
    zone_key,
)
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.taint_eviction import TaintEvictionController

CONTROLLERS = [
    ("node-lifecycle-controller", NodeLifecycleController),
    ("taint-eviction-controller", TaintEvictionController),
]
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"

# -- pure decisions ----------------------------------------------------------------------------


def ready(status: str = "True", *, beat: float = 0.0, since: float = 0.0) -> NodeCondition:
    return NodeCondition(
        type="Ready",
        status=status,
        reason="KubeletReady",
        last_heartbeat_time=to_wall(beat),
        last_transition_time=to_wall(since),
    )


def node(
    name: str = "n1",
    *,
    conditions: tuple[NodeCondition, ...] = (),
    taints: tuple[Taint, ...] = (),
    labels: dict[str, str] | None = None,
    unschedulable: bool | None = None,
) -> Node:
    return Node(
        metadata=ObjectMeta(
            name=name, uid=f"uid-{name}", creation_timestamp=to_wall(0), labels=labels or {}
        ),
        spec=NodeSpec(taints=taints, unschedulable=unschedulable),
        status=NodeStatus(conditions=conditions),
    )


def lease(renewed: float | None) -> Lease:
    renew = None if renewed is None else EPOCH + timedelta(seconds=renewed)
    return Lease(
        metadata=ObjectMeta(name="n1", namespace="kube-node-lease"),
        spec=LeaseSpec(holder_identity="n1", lease_duration_seconds=40, renew_time=renew),
    )


def test_first_sight_of_a_node_starts_its_grace_period_now() -> None:
    update = try_update_node_health(node(conditions=(ready(),)), None, None, 100.0)
    assert update.health.probe_timestamp == 100.0
    assert update.status_to_write is None
    assert update.current_ready == update.observed_ready == ready()


def test_a_renewed_lease_keeps_the_node_alive_without_status_posts() -> None:
    n = node(conditions=(ready(),))
    health = try_update_node_health(n, None, lease(0), 0.0).health
    for t in range(10, 200, 10):
        update = try_update_node_health(n, health, lease(t), float(t))
        assert update.status_to_write is None
        assert update.health.probe_timestamp == float(t)
        health = update.health


def test_silence_past_the_grace_period_makes_conditions_unknown() -> None:
    n = node(
        conditions=(
            ready(),
            NodeCondition(type="MemoryPressure", status="False"),
            NodeCondition(type="NetworkUnavailable", status="False"),
        )
    )
    health = try_update_node_health(n, None, lease(0), 0.0).health
    assert try_update_node_health(n, health, lease(0), 40.0).status_to_write is None
    update = try_update_node_health(n, health, lease(0), 40.5)
    status = update.status_to_write
    assert status is not None
    by_type = {c.type: c for c in status.conditions}
    assert by_type["Ready"].status == "Unknown"
    assert by_type["Ready"].reason == "NodeStatusUnknown"
    assert by_type["Ready"].message == "Kubelet stopped posting node status."
    assert by_type["Ready"].last_transition_time == to_wall(40.5)
    assert by_type["MemoryPressure"].status == "Unknown"
    # The kubelet never posted these: they are added, "never updated".
    assert by_type["DiskPressure"].reason == "NodeStatusNeverUpdated"
    assert by_type["PIDPressure"].message == "Kubelet never posted node status."
    # The network plugin owns NetworkUnavailable.
    assert by_type["NetworkUnavailable"].status == "False"
    assert update.observed_ready.status == "True"
    assert update.current_ready is not None and update.current_ready.status == "Unknown"
    assert update.written_health is not None
    assert update.written_health.ready_transition_timestamp == 40.5


def test_an_unknown_node_is_not_written_again() -> None:
    n = node(conditions=(ready("Unknown"),))
    health = try_update_node_health(n, None, None, 0.0).health
    update = try_update_node_health(n, health, None, 100.0)
    assert update.status_to_write is None
    assert update.observed_ready.status == "Unknown"


def test_a_status_heartbeat_counts_as_a_sign_of_life() -> None:
    health = try_update_node_health(node(conditions=(ready(beat=0),)), None, None, 0.0).health
    later = node(conditions=(ready(beat=30),))
    update = try_update_node_health(later, health, None, 35.0)
    assert update.health.probe_timestamp == 35.0
    assert try_update_node_health(later, update.health, None, 70.0).status_to_write is None


def test_a_node_that_never_posted_status_gets_the_startup_grace() -> None:
    n = node()  # created at 0, no conditions
    first = try_update_node_health(n, None, None, 10.0)
    assert first.grace_period == 60.0
    assert first.observed_ready.status == "Unknown"
    assert first.current_ready is None
    assert try_update_node_health(n, first.health, None, 60.0).status_to_write is None
    update = try_update_node_health(n, first.health, None, 60.5)
    assert update.status_to_write is not None
    assert {c.type: c.reason for c in update.status_to_write.conditions} == dict.fromkeys(
        ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"), "NodeStatusNeverUpdated"
    )


def test_leases_with_missing_renew_times_do_not_crash() -> None:
    n = node(conditions=(ready(),))
    health = try_update_node_health(n, None, lease(None), 0.0).health
    assert try_update_node_health(n, health, lease(None), 10.0).health.probe_timestamp == 0.0
    assert try_update_node_health(n, health, lease(5), 10.0).health.probe_timestamp == 10.0


@pytest.mark.parametrize(
    ("conditions", "unschedulable", "taints", "add", "remove"),
    [
        ((ready("Unknown"),), None, (), [UNREACHABLE], []),
        ((ready("False"),), None, (), [NOT_READY], []),
        ((ready("True"),), None, (Taint(key=UNREACHABLE, effect="NoSchedule"),), [], [UNREACHABLE]),
        ((ready("True"),), True, (), ["node.kubernetes.io/unschedulable"], []),
        (
            (ready("True"), NodeCondition(type="DiskPressure", status="True")),
            None,
            (),
            ["node.kubernetes.io/disk-pressure"],
            [],
        ),
        # Taints owned by others (NoExecute ones, users' ones) are never touched.
        (
            (ready("True"),),
            None,
            (UNREACHABLE_TAINT, Taint(key="dedicated", value="gpu", effect="NoSchedule")),
            [],
            [],
        ),
        ((NodeCondition(type="Ready", status="Maybe"),), None, (), [], []),
    ],
)
def test_no_schedule_taints_follow_conditions(
    conditions: Any, unschedulable: Any, taints: Any, add: list[str], remove: list[str]
) -> None:
    to_add, to_remove = no_schedule_taint_diff(
        node(conditions=conditions, taints=taints, unschedulable=unschedulable)
    )
    assert [(t.key, t.effect) for t in to_add] == [(k, "NoSchedule") for k in add]
    assert [(t.key, t.effect) for t in to_remove] == [(k, "NoSchedule") for k in remove]


def test_swapping_taints_stamps_time_added_and_keeps_an_existing_one() -> None:
    old = Taint(key=UNREACHABLE, effect="NoExecute", time_added=to_wall(5))
    assert swap_taints((old,), (UNREACHABLE_TAINT,), (NOT_READY_TAINT,), 50.0) is None
    swapped = swap_taints((old,), (NOT_READY_TAINT,), (UNREACHABLE_TAINT,), 50.0)
    assert swapped == (Taint(key=NOT_READY, effect="NoExecute", time_added=to_wall(50)),)
    with_value = Taint(key=UNREACHABLE, value="x", effect="NoExecute")
    assert add_or_update_taint((old,), with_value) == (with_value,)


def test_zone_keys_come_from_topology_labels() -> None:
    assert zone_key(node()) == ""
    assert zone_key(node(labels={"topology.kubernetes.io/zone": "a"})) == ":\x00:a"
    beta = {
        "failure-domain.beta.kubernetes.io/zone": "b",
        "topology.kubernetes.io/zone": "a",
        "topology.kubernetes.io/region": "r",
    }
    assert zone_key(node(labels=beta)) == "r:\x00:b"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["True", "True", "True"], (0, STATE_NORMAL)),
        (["Unknown", "Unknown", "Unknown"], (3, STATE_FULL_DISRUPTION)),
        (["Unknown", "Unknown", "True"], (2, STATE_NORMAL)),  # needs more than 2
        (["Unknown", "Unknown", "False", "True", "True"], (3, STATE_PARTIAL_DISRUPTION)),
        (["Unknown", "Unknown", "False", "True", "True", "True"], (3, STATE_NORMAL)),  # 50 %
        ([None, "True"], (1, STATE_NORMAL)),
        ([], (0, STATE_NORMAL)),
    ],
)
def test_zone_states(statuses: list[str | None], expected: tuple[int, str]) -> None:
    conditions = [None if s is None else ready(s) for s in statuses]
    assert compute_zone_state(conditions) == expected


def conds(*statuses: str) -> list[NodeCondition | None]:
    return [ready(s) for s in statuses]


def test_every_zone_fully_disrupted_stops_tainting_and_untaints() -> None:
    plan = plan_disruption({"": conds("Unknown", "Unknown")}, {"": STATE_NORMAL})
    assert plan.mark_all_reachable
    assert plan.limiter_qps == {"": 0.0}
    assert plan.zone_states == {"": STATE_FULL_DISRUPTION}
    # Staying there changes nothing.
    again = plan_disruption({"": conds("Unknown", "Unknown")}, plan.zone_states)
    assert not again.mark_all_reachable and again.limiter_qps == {}
    # One node back: normal rate, and every node's grace period restarts.
    back = plan_disruption({"": conds("True", "Unknown")}, plan.zone_states)
    assert back.reset_probe_timestamps
    assert back.limiter_qps == {"": 0.1}
    assert back.zone_states == {"": STATE_NORMAL}


def test_one_zone_down_among_healthy_ones_is_tainted_at_the_normal_rate() -> None:
    states = {"a": STATE_NORMAL, "b": STATE_NORMAL}
    plan = plan_disruption({"a": conds("Unknown", "Unknown"), "b": conds("True")}, states)
    assert not plan.mark_all_reachable
    assert plan.zone_states == {"a": STATE_FULL_DISRUPTION, "b": STATE_NORMAL}
    assert plan.limiter_qps == {"a": 0.1}


def test_partial_disruption_stops_small_zones_and_slows_large_ones() -> None:
    small = plan_disruption(
        {"a": conds("Unknown", "Unknown", "Unknown", "True")}, {"a": STATE_NORMAL}
    )
    assert small.limiter_qps == {"a": 0.0}
    assert small.zone_states == {"a": STATE_PARTIAL_DISRUPTION}
    large = plan_disruption({"a": conds(*(["Unknown"] * 30 + ["True"] * 21))}, {"a": STATE_NORMAL})
    assert large.limiter_qps == {"a": 0.01}


def test_new_zones_start_initial_and_vanished_zones_are_forgotten() -> None:
    plan = plan_disruption({"a": conds("True")}, {"gone": STATE_NORMAL})
    assert plan.zone_states == {"a": STATE_NORMAL}
    assert plan.limiter_qps == {"a": 0.1}
    assert plan_disruption({}, {}).zone_states == {}
    assert STATE_INITIAL == "Initial"


def test_token_bucket_allows_one_per_ten_seconds() -> None:
    bucket = TokenBucket(0.1, now=0.0)
    assert bucket.try_accept(0.0)
    assert not bucket.try_accept(5.0)
    assert bucket.next_token_at(5.0) == pytest.approx(10.0)
    assert bucket.try_accept(10.0)
    never = TokenBucket(0.0, now=0.0)
    assert not never.try_accept(100.0)
    assert never.next_token_at(0.0) == float("inf")


def test_token_bucket_grants_a_token_at_the_time_it_promised() -> None:
    """Waking at ``next_token_at`` must succeed even when float rounding leaves the refill
    a hair short of a whole token; otherwise the next promise is the same instant and the
    tainting pass spins while virtual time stands still (a chaos run hit this)."""
    rng = random.Random(1)
    for _ in range(5000):
        qps = rng.choice([0.1, 0.01, 0.5, 1 / 3, 0.07])
        now = rng.uniform(0.0, 5000.0)
        bucket = TokenBucket(qps, now)
        assert bucket.try_accept(now)
        for _ in range(3):
            wake = bucket.next_token_at(now)
            later = now + (wake - now)  # as a work queue's add_after computes it
            assert bucket.try_accept(later), (qps, now, wake)
            now = later


def test_the_tainting_queue_is_rate_limited_and_remembers_processed_nodes() -> None:
    queue = RateLimitedTimedQueue(0.1, now=0.0)
    assert queue.add("a", "ua", 0.0) and queue.add("b", "ub", 0.0)
    assert not queue.add("a", "ua", 0.0)
    item = queue.next_due(0.0)
    assert item is not None and item.value == "a"
    queue.finish("a")
    assert queue.next_due(0.0) is None  # no token
    assert queue.wake_at(0.0) == pytest.approx(10.0)
    item = queue.next_due(10.0)
    assert item is not None and item.value == "b"
    queue.retry(item, 10.05)  # failed: try again later
    assert queue.next_due(10.01) is None
    assert queue.wake_at(10.01) == pytest.approx(20.0)
    assert not queue.add("a", "ua", 30.0)  # processed, but still known
    assert queue.remove("a")
    assert queue.add("a", "ua", 30.0)
    queue.swap_limiter(0.0, 30.0)
    assert queue.next_due(30.0) is None
    assert queue.wake_at(30.0) is None


def test_swapping_a_limiter_keeps_an_empty_bucket_empty() -> None:
    queue = RateLimitedTimedQueue(0.1, now=0.0)
    queue.add("a", "", 0.0)
    assert queue.next_due(0.0) is not None  # the token is spent
    queue.swap_limiter(0.01, 1.0)
    assert queue.limiter.qps == 0.01
    assert not queue.limiter.try_accept(1.0)


def test_mark_pod_not_ready_touches_only_the_ready_condition() -> None:
    pod = Pod(
        status=PodStatus(
            conditions=(
                PodCondition(type="Ready", status="True"),
                PodCondition(type="ContainersReady", status="True"),
            )
        )
    )
    marked = mark_pod_not_ready(pod, 12.0)
    assert marked is not None
    assert [(c.type, c.status) for c in marked.status.conditions] == [
        ("Ready", "False"),
        ("ContainersReady", "True"),
    ]
    assert marked.status.conditions[0].last_transition_time == to_wall(12)
    assert mark_pod_not_ready(marked, 13.0) is None
    assert mark_pod_not_ready(Pod(), 13.0) is None


# -- whole clusters ---------------------------------------------------------------------------


def pod_manifest(name: str, node_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "nginx"}], "nodeName": node_name, **spec},
    }


def condition(cluster: Any, name: str, type_: str = "Ready") -> NodeCondition | None:
    n = cluster.get_nowait("Node", name)
    return next((c for c in n.status.conditions if c.type == type_), None)


def taint_keys(cluster: Any, name: str) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in cluster.get_nowait("Node", name).spec.taints}


def pod_ready(cluster: Any, name: str) -> str | None:
    p = cluster.get_nowait("Pod", name, namespace="default")
    return next((c.status for c in p.status.conditions if c.type == "Ready"), None)


def events(cluster: Any, reason: str) -> list[Any]:
    return [e for e in cluster.list_nowait("Event") if e.reason == reason]


async def start_pods(cluster: Any, *pods: dict[str, Any]) -> None:
    for p in pods:
        await cluster.apply(p)

    def all_ready() -> bool:
        return all(pod_ready(cluster, p["metadata"]["name"]) == "True" for p in pods)

    await cluster.wait_for(all_ready, timeout=60)


async def test_a_crashed_node_goes_unknown_after_the_grace_period(autojump_clock):
    async with open_cluster(nodes=3, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        await start_pods(cluster, pod_manifest("web", "node-1"))
        crashed = trio.current_time()
        cluster.chaos.crash_node("node-1")

        def unknown() -> bool:
            c = condition(cluster, "node-1")
            return c is not None and c.status == "Unknown"

        await cluster.wait_for(unknown, timeout=120)
        # Lease renewed every 10 s, checked every 5 s, grace 40 s.
        assert 40 <= trio.current_time() - crashed <= 55
        c = condition(cluster, "node-1")
        assert (c.reason, c.message) == (
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
        assert condition(cluster, "node-1", "MemoryPressure").status == "Unknown"
        assert condition(cluster, "node-2").status == "True"
        await cluster.wait_for(lambda: pod_ready(cluster, "web") == "False", timeout=5)
        p = cluster.get_nowait("Pod", "web", namespace="default")
        assert {c.type: c.status for c in p.status.conditions}["ContainersReady"] == "True"
        await cluster.wait_for(
            lambda: (
                {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
                <= taint_keys(cluster, "node-1")
            ),
            timeout=15,
        )
        noexec = next(
            t for t in cluster.get_nowait("Node", "node-1").spec.taints if t.effect == "NoExecute"
        )
        assert noexec.time_added is not None
        assert taint_keys(cluster, "node-2") == set()
        assert [
            e.message for e in events(cluster, "NodeNotReady") if e.involved_object.kind == "Node"
        ] == ["Node node-1 status is now: NodeNotReady"]
        pod_events = [e for e in events(cluster, "NodeNotReady") if e.involved_object.kind == "Pod"]
        assert [(e.type, e.message) for e in pod_events] == [("Warning", "Node is not ready")]


async def test_pods_of_a_dead_node_are_evicted_by_their_tolerations(autojump_clock):
    async with open_cluster(nodes=3, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        unreachable = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
        await start_pods(
            cluster,
            pod_manifest("web", "node-1"),  # the default: 300 s
            pod_manifest("quick", "node-1", tolerations=[{**unreachable, "tolerationSeconds": 10}]),
            pod_manifest("forever", "node-1", tolerations=[unreachable]),
        )
        cluster.chaos.crash_node("node-1")
        await cluster.wait_for(
            lambda: (UNREACHABLE, "NoExecute") in taint_keys(cluster, "node-1"), timeout=120
        )
        tainted = trio.current_time()

        def deleting(name: str) -> Any:
            return cluster.get_nowait("Pod", name, namespace="default").metadata.deletion_timestamp

        await cluster.wait_for(lambda: deleting("quick"), timeout=60)
        assert 9 <= trio.current_time() - tainted <= 11
        assert not deleting("web")
        await cluster.wait_for(lambda: deleting("web"), timeout=400)
        assert 299 <= trio.current_time() - tainted <= 301
        await cluster.settle()
        assert sorted(e.message for e in events(cluster, "TaintManagerEviction")) == [
            "Marking for deletion Pod default/quick",
            "Marking for deletion Pod default/web",
        ]
        await trio.sleep(3610)  # past the Events' hour
        assert not deleting("forever")
        # Nobody confirms the kill: the pod stays Terminating, as in Kubernetes.
        p = cluster.get_nowait("Pod", "web", namespace="default")
        assert p is not None and p.metadata.deletion_timestamp is not None
        target = next(c for c in p.status.conditions if c.type == "DisruptionTarget")
        assert (target.status, target.reason) == ("True", "DeletionByTaintManager")
        # nothing was marked since (the two Events above expired with the hour)
        assert events(cluster, "TaintManagerEviction") == []


async def test_a_node_restarted_in_time_keeps_its_pods(autojump_clock):
    async with open_cluster(nodes=3, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        await start_pods(cluster, pod_manifest("web", "node-1"))
        cluster.chaos.crash_node("node-1")
        await cluster.wait_for(
            lambda: (UNREACHABLE, "NoExecute") in taint_keys(cluster, "node-1"), timeout=120
        )
        await trio.sleep(100)
        cluster.chaos.restart_node("node-1")
        await cluster.wait_for(lambda: condition(cluster, "node-1").status == "True", timeout=30)
        await cluster.wait_for(lambda: taint_keys(cluster, "node-1") == set(), timeout=10)
        await trio.sleep(600)
        p = cluster.get_nowait("Pod", "web", namespace="default")
        assert p.metadata.deletion_timestamp is None
        assert pod_ready(cluster, "web") == "True"
        assert [e.message for e in events(cluster, "TaintManagerEviction")] == [
            "Cancelling deletion of Pod default/web"
        ]


async def test_a_paused_kubelet_that_resumes_clears_the_taints(autojump_clock):
    async with open_cluster(nodes=3, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        await start_pods(cluster, pod_manifest("web", "node-2"))
        cluster.chaos.pause_node("node-2")
        await cluster.wait_for(
            lambda: (UNREACHABLE, "NoExecute") in taint_keys(cluster, "node-2"), timeout=120
        )
        cluster.chaos.resume_node("node-2")
        await cluster.wait_for(lambda: taint_keys(cluster, "node-2") == set(), timeout=30)
        assert condition(cluster, "node-2").status == "True"
        await trio.sleep(400)
        assert (
            cluster.get_nowait("Pod", "web", namespace="default").metadata.deletion_timestamp
            is None
        )


async def test_taints_in_a_zone_are_rate_limited_to_one_per_ten_seconds(autojump_clock):
    async with open_cluster(nodes=5, seed=1, controllers=CONTROLLERS) as cluster:
        await cluster.settle()
        cluster.chaos.crash_node("node-1")
        cluster.chaos.crash_node("node-2")
        times: dict[str, float] = {}

        def tainted() -> bool:
            for name in ("node-1", "node-2"):
                if name not in times and (UNREACHABLE, "NoExecute") in taint_keys(cluster, name):
                    times[name] = trio.current_time()
            return len(times) == 2

        await cluster.wait_for(tainted, timeout=200)
        first, second = sorted(times.values())
        assert second - first == pytest.approx(10.0, abs=0.5)


async def test_all_nodes_down_is_a_control_plane_problem_no_evictions(autojump_clock):
    async with open_cluster(nodes=3, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        await start_pods(cluster, pod_manifest("web", "node-1"))
        for name in ("node-1", "node-2", "node-3"):
            cluster.chaos.crash_node(name)

        def all_unknown() -> bool:
            return all(condition(cluster, f"node-{i}").status == "Unknown" for i in (1, 2, 3))

        await cluster.wait_for(all_unknown, timeout=120)
        await trio.sleep(600)
        for i in (1, 2, 3):
            # NoSchedule still says the truth; nothing is evicted.
            assert taint_keys(cluster, f"node-{i}") == {(UNREACHABLE, "NoSchedule")}
        assert (
            cluster.get_nowait("Pod", "web", namespace="default").metadata.deletion_timestamp
            is None
        )
        assert pod_ready(cluster, "web") == "False"
        # One node back: the others' grace restarts, then tainting resumes.
        cluster.chaos.restart_node("node-3")
        await cluster.wait_for(
            lambda: (UNREACHABLE, "NoExecute") in taint_keys(cluster, "node-1"), timeout=120
        )


async def test_a_partially_disrupted_small_zone_is_not_tainted(autojump_clock):
    async with open_cluster(nodes=5, seed=1, controllers=CONTROLLERS) as cluster:
        await cluster.settle()
        for name in ("node-1", "node-2", "node-3"):
            cluster.chaos.crash_node(name)
        await cluster.wait_for(
            lambda: all(condition(cluster, f"node-{i}").status == "Unknown" for i in (1, 2, 3)),
            timeout=120,
        )
        await trio.sleep(300)
        for i in (1, 2, 3):
            assert (UNREACHABLE, "NoExecute") not in taint_keys(cluster, f"node-{i}")
        controller = cluster.controller_manager.controllers["node-lifecycle-controller"]
        assert controller.zone_states == {"": STATE_PARTIAL_DISRUPTION}


async def test_a_whole_zone_down_next_to_a_healthy_one_is_tainted(autojump_clock):
    async with open_cluster(nodes=0, seed=1, controllers=CONTROLLERS) as cluster:
        for name, zone in (("a-1", "a"), ("a-2", "a"), ("b-1", "b"), ("b-2", "b")):
            await cluster.add_node(name, labels={"topology.kubernetes.io/zone": zone})
        await cluster.settle()
        cluster.chaos.crash_node("a-1")
        cluster.chaos.crash_node("a-2")
        await cluster.wait_for(
            lambda: all(
                (UNREACHABLE, "NoExecute") in taint_keys(cluster, n) for n in ("a-1", "a-2")
            ),
            timeout=200,
        )
        controller = cluster.controller_manager.controllers["node-lifecycle-controller"]
        assert controller.zone_states[":\x00:a"] == STATE_FULL_DISRUPTION
        assert controller.zone_states[":\x00:b"] == STATE_NORMAL
        assert taint_keys(cluster, "b-1") == set()


async def test_a_replicaset_replaces_pods_evicted_from_a_dead_node(autojump_clock):
    controllers = [*CONTROLLERS, ("replicaset-controller", ReplicaSetController)]
    async with open_cluster(nodes=3, seed=1, controllers=controllers) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        await cluster.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "main", "image": "nginx"}]},
                    },
                },
            }
        )

        def running() -> list[Any]:
            return [
                p
                for p in cluster.list_nowait("Pod", namespace="default")
                if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
            ]

        await cluster.wait_for(lambda: len(running()) == 3, timeout=60)
        victim = running()[0].spec.node_name
        cluster.chaos.crash_node(victim)
        await cluster.wait_for(
            lambda: len([p for p in running() if p.spec.node_name != victim]) == 3, timeout=500
        )
        terminating = [
            p
            for p in cluster.list_nowait("Pod", namespace="default")
            if p.metadata.deletion_timestamp
        ]
        assert terminating and all(p.spec.node_name == victim for p in terminating)


async def test_odd_nodes_and_pods_do_not_crash_the_controller(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        # A Node no kubelet runs, with an odd condition and no Ready one, and one with
        # a Ready condition of an unknown status; a pod bound to a node that does not
        # exist; a Lease without renewTime.
        await cluster.client.create(
            Node(
                metadata=ObjectMeta(name="ghost"),
                status=NodeStatus(conditions=(NodeCondition(type="Weird", status="Maybe"),)),
            )
        )
        await cluster.client.create(
            Node(
                metadata=ObjectMeta(name="odd"),
                status=NodeStatus(conditions=(NodeCondition(type="Ready", status="Maybe"),)),
            )
        )
        await cluster.client.create(
            Lease(metadata=ObjectMeta(name="odd", namespace="kube-node-lease"))
        )
        await cluster.apply(pod_manifest("lost", "nowhere"))
        await trio.sleep(70)
        ghost = {c.type: c for c in cluster.get_nowait("Node", "ghost").status.conditions}
        assert ghost["Ready"].status == "Unknown"
        assert ghost["Ready"].reason == "NodeStatusNeverUpdated"
        await cluster.wait_for(
            lambda: (UNREACHABLE, "NoExecute") in taint_keys(cluster, "ghost"), timeout=30
        )
        await cluster.wait_for(lambda: condition(cluster, "odd").status == "Unknown", timeout=30)
        # Still working for real nodes.
        cluster.chaos.crash_node("node-1")
        await cluster.wait_for(
            lambda: condition(cluster, "node-1").status == "Unknown", timeout=120
        )
        assert cluster.get_nowait("Pod", "lost", namespace="default") is not None
        await cluster.client.delete("Node", "ghost")
        await trio.sleep(10)
        controller = cluster.controller_manager.controllers["node-lifecycle-controller"]
        assert "ghost" not in controller.health


async def _outage(seed: int) -> str:
    async with open_cluster(nodes=3, seed=seed, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        await start_pods(cluster, pod_manifest("a", "node-1"), pod_manifest("b", "node-2"))
        cluster.chaos.crash_node("node-1")
        await trio.sleep(400)
        cluster.chaos.restart_node("node-1")
        await trio.sleep(60)
        return cluster.history_digest()


def test_an_outage_replays_identically_from_its_seed() -> None:
    def run(seed: int) -> str:
        return trio.run(_outage, seed, clock=trio.testing.MockClock(autojump_threshold=0))

    assert run(5) == run(5)


async def test_a_node_reported_not_ready_gets_not_ready_taints_until_it_recovers(autojump_clock):
    async with open_cluster(nodes=3, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        await start_pods(cluster, pod_manifest("web", "node-1"))
        runtime = cluster.machines.get("node-1").runtime
        runtime.crash()  # the kubelet lives on and reports Ready=False
        await cluster.wait_for(lambda: condition(cluster, "node-1").status == "False", timeout=60)
        await cluster.wait_for(
            lambda: (
                taint_keys(cluster, "node-1")
                == {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}
            ),
            timeout=15,
        )
        runtime.recover()
        await cluster.wait_for(lambda: condition(cluster, "node-1").status == "True", timeout=120)
        await cluster.wait_for(lambda: taint_keys(cluster, "node-1") == set(), timeout=15)
        assert (
            cluster.get_nowait("Pod", "web", namespace="default").metadata.deletion_timestamp
            is None
        )


async def test_failing_writes_are_retried_and_the_outage_still_heals(autojump_clock):
    async with open_cluster(nodes=3, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.store.add_admission_step(DefaultTolerationSeconds())
        unreachable = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
        await start_pods(
            cluster,
            pod_manifest("web", "node-1", tolerations=[{**unreachable, "tolerationSeconds": 30}]),
        )
        # Half of the controllers' Node and Pod writes fail (the kubelets' too).
        faults = [
            cluster.chaos.store_fault(
                kind=kind, verb=verb, error=errors.TooManyRequests, fraction=0.5
            )
            for kind in ("Node", "Pod")
            for verb in ("update", "update_status", "delete")
        ]
        cluster.chaos.crash_node("node-1")
        await cluster.wait_for(
            lambda: (UNREACHABLE, "NoExecute") in taint_keys(cluster, "node-1"), timeout=200
        )
        await cluster.wait_for(lambda: pod_ready(cluster, "web") == "False", timeout=60)
        p = await cluster.wait_for(
            lambda: (
                cluster.get_nowait("Pod", "web", namespace="default").metadata.deletion_timestamp
            ),
            timeout=120,
        )
        assert p is not None
        for fault in faults:
            fault.remove()
        cluster.chaos.restart_node("node-1")
        await cluster.wait_for(lambda: taint_keys(cluster, "node-1") == set(), timeout=60)


async def test_a_pod_bound_to_a_node_already_down_is_marked_not_ready(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.chaos.crash_node("node-1")
        await cluster.wait_for(
            lambda: condition(cluster, "node-1").status == "Unknown", timeout=120
        )
        manifest = pod_manifest("late", "node-1")
        del manifest["spec"]["nodeName"]
        manifest["spec"]["schedulerName"] = "nobody"  # bound by hand below
        created = await cluster.apply(manifest)
        ready_status = PodStatus(
            phase="Running", conditions=(PodCondition(type="Ready", status="True"),)
        )
        await cluster.client.update_status(attrs.evolve(created, status=ready_status))
        await cluster.client.bind("late", "node-1")
        await cluster.wait_for(lambda: pod_ready(cluster, "late") == "False", timeout=10)
