"""The taint eviction controller: its deadline rule, then pods on tainted nodes in a
cluster (virtual time)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from controlplane import open_cluster
from controlplane.api.core_node import Node, NodeSpec, Taint
from controlplane.api.core_pod import Pod, PodCondition, PodStatus, Toleration
from controlplane.clock import to_wall
from controlplane.controllers.taint_eviction import (
    EVICT_NOW,
    NEVER,
    TaintEvictionController,
    eviction_deadline,
    matching_tolerations,
    no_execute_taints,
    with_disruption_target,
)

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def taint(
    key: str = UNREACHABLE, *, added: float | None = 100.0, value: str | None = None
) -> Taint:
    return Taint(
        key=key,
        value=value,
        effect="NoExecute",
        time_added=None if added is None else to_wall(added),
    )


def tol(
    key: str | None = UNREACHABLE,
    seconds: int | None = None,
    *,
    operator: str | None = "Exists",
    effect: str | None = "NoExecute",
    value: str | None = None,
) -> Toleration:
    return Toleration(
        key=key, operator=operator, effect=effect, value=value, toleration_seconds=seconds
    )


@pytest.mark.parametrize(
    ("taints", "tolerations", "expected"),
    [
        ([], [], NEVER),
        ([taint()], [], EVICT_NOW),
        ([taint()], [tol(NOT_READY, 300)], EVICT_NOW),
        ([taint()], [tol(UNREACHABLE, 300)], 400.0),
        ([taint()], [tol(UNREACHABLE)], NEVER),
        ([taint()], [tol(None, operator="Exists", effect=None)], NEVER),  # tolerates all
        ([taint()], [tol(UNREACHABLE, 0)], 100.0),
        ([taint()], [tol(UNREACHABLE, -5)], 100.0),
        # The first matching toleration counts, as GetMatchingTolerations.
        ([taint()], [tol(UNREACHABLE, 10), tol(UNREACHABLE, 600)], 110.0),
        # Two taints: the earliest deadline; one tolerated forever does not extend it.
        ([taint(), taint(NOT_READY, added=150)], [tol(UNREACHABLE), tol(NOT_READY, 30)], 180.0),
        ([taint(), taint("other")], [tol(UNREACHABLE, 300)], EVICT_NOW),
        # Equal operator needs the value.
        ([taint("k", value="v")], [tol("k", 5, operator="Equal", value="v")], 105.0),
        ([taint("k", value="v")], [tol("k", 5, operator="Equal", value="w")], EVICT_NOW),
        ([taint("k", value="v")], [tol("k", 5, operator="Lt")], EVICT_NOW),
        # A taint without timeAdded counts from when it was first seen.
        ([taint(added=None)], [tol(UNREACHABLE, 300)], 450.0),
        # A timeAdded in the future (a skewed writer) counts from now.
        ([taint(added=900)], [tol(UNREACHABLE, 300)], 800.0),
    ],
)
def test_eviction_deadline(taints: Any, tolerations: Any, expected: float) -> None:
    assert eviction_deadline(taints, tolerations, now=500.0, first_seen=150.0) == expected


def test_matching_tolerations_pairs_each_taint_with_its_toleration() -> None:
    ok, used = matching_tolerations([taint()], [tol(NOT_READY), tol(UNREACHABLE, 5)])
    assert ok and used == [(taint(), tol(UNREACHABLE, 5))]
    assert matching_tolerations([taint()], []) == (False, [])


def test_only_no_execute_taints_count() -> None:
    node = Node(
        spec=NodeSpec(
            taints=(
                Taint(key=UNREACHABLE, effect="NoSchedule"),
                taint(),
                Taint(key="x", effect="PreferNoSchedule"),
            )
        )
    )
    assert no_execute_taints(node) == (taint(),)
    assert no_execute_taints(None) == ()


def test_disruption_target_condition_is_added_once() -> None:
    pod = Pod(status=PodStatus(conditions=(PodCondition(type="Ready", status="True"),)))
    marked = with_disruption_target(pod, 7.0)
    assert marked is not None
    target = marked.status.conditions[-1]
    assert (target.type, target.status, target.reason) == (
        "DisruptionTarget",
        "True",
        "DeletionByTaintManager",
    )
    assert target.message == "Taint manager: deleting due to NoExecute taint"
    assert with_disruption_target(marked, 8.0) is None
    stale = Pod(
        status=PodStatus(conditions=(PodCondition(type="DisruptionTarget", status="False"),))
    )
    replaced = with_disruption_target(stale, 8.0)
    assert replaced is not None and [c.status for c in replaced.status.conditions] == ["True"]


# -- in a cluster: taints put on by hand, no node lifecycle controller -------------------------

CONTROLLERS = [("taint-eviction-controller", TaintEvictionController)]


def pod_manifest(name: str, node_name: str = "node-1", tolerations: Any = ()) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": [{"name": "main", "image": "nginx"}],
            "nodeName": node_name,
            "tolerations": list(tolerations),
        },
    }


def toleration(key: str, seconds: int | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"key": key, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


def deleting(cluster: Any, name: str) -> bool:
    p = cluster.get_nowait("Pod", name, namespace="default")
    return p is None or p.metadata.deletion_timestamp is not None


async def set_taints(cluster: Any, node: str, *taints: Taint) -> None:
    current = await cluster.client.get("Node", node)
    await cluster.client.update(
        attrs.evolve(current, spec=attrs.evolve(current.spec, taints=taints))
    )


async def running(cluster: Any, *names: str) -> None:
    def all_running() -> bool:
        pods = [cluster.get_nowait("Pod", n, namespace="default") for n in names]
        return all(p is not None and p.status.phase == "Running" for p in pods)

    await cluster.wait_for(all_running, timeout=60)


async def test_pods_leave_a_tainted_node_by_their_tolerations(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        await cluster.apply(pod_manifest("intolerant"))
        await cluster.apply(pod_manifest("ten", tolerations=[toleration("maintenance", 10)]))
        await cluster.apply(pod_manifest("forever", tolerations=[toleration("maintenance")]))
        await cluster.apply(pod_manifest("elsewhere", node_name="node-2"))
        await running(cluster, "intolerant", "ten", "forever", "elsewhere")
        tainted = trio.current_time()
        await set_taints(
            cluster,
            "node-1",
            Taint(key="maintenance", effect="NoExecute", time_added=to_wall(tainted)),
        )
        await cluster.wait_for(lambda: deleting(cluster, "intolerant"), timeout=5)
        assert trio.current_time() - tainted < 1
        assert not deleting(cluster, "ten")
        await cluster.wait_for(lambda: deleting(cluster, "ten"), timeout=30)
        assert 9 <= trio.current_time() - tainted <= 11

        def marked() -> list[str]:
            return sorted(
                e.message
                for e in cluster.list_nowait("Event", namespace="default")
                if e.reason == "TaintManagerEviction"
            )

        await cluster.settle()
        assert marked() == [
            "Marking for deletion Pod default/intolerant",
            "Marking for deletion Pod default/ten",
        ]
        await trio.sleep(3610)  # past the Events' hour
        assert not deleting(cluster, "forever")
        assert not deleting(cluster, "elsewhere")
        assert marked() == []  # nothing marked since (those two expired with the hour)


async def test_removing_the_taint_cancels_the_eviction(autojump_clock):
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        await cluster.apply(pod_manifest("web", tolerations=[toleration("maintenance", 60)]))
        await running(cluster, "web")
        await set_taints(
            cluster,
            "node-1",
            Taint(key="maintenance", effect="NoExecute", time_added=to_wall(trio.current_time())),
        )
        await trio.sleep(30)
        await set_taints(cluster, "node-1")
        await trio.sleep(120)
        assert not deleting(cluster, "web")
        messages = [
            e.message
            for e in cluster.list_nowait("Event", namespace="default")
            if e.reason == "TaintManagerEviction"
        ]
        assert messages == ["Cancelling deletion of Pod default/web"]


async def test_a_taint_without_time_added_counts_from_when_it_was_seen(autojump_clock):
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        await cluster.apply(pod_manifest("web", tolerations=[toleration("maintenance", 20)]))
        await running(cluster, "web")
        seen = trio.current_time()
        await set_taints(cluster, "node-1", Taint(key="maintenance", effect="NoExecute"))
        await cluster.wait_for(lambda: deleting(cluster, "web"), timeout=60)
        assert 19 <= trio.current_time() - seen <= 21


async def test_a_pod_bound_to_an_already_tainted_node_is_evicted(autojump_clock):
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        await set_taints(
            cluster, "node-1", Taint(key="gone", effect="NoExecute", time_added=to_wall(0))
        )
        await cluster.apply(pod_manifest("late"))
        await cluster.wait_for(lambda: deleting(cluster, "late"), timeout=10)


async def test_a_controller_restart_does_not_reset_the_countdown(autojump_clock):
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        await cluster.apply(pod_manifest("web", tolerations=[toleration("maintenance", 100)]))
        await running(cluster, "web")
        tainted = trio.current_time()
        await set_taints(
            cluster,
            "node-1",
            Taint(key="maintenance", effect="NoExecute", time_added=to_wall(tainted)),
        )
        await trio.sleep(60)
        manager = cluster.controller_manager
        before = manager.controllers["taint-eviction-controller"]
        cluster.chaos.supervisor.restart_child_soon("controller-manager")
        await trio.sleep(1)
        assert manager.controllers["taint-eviction-controller"] is not before
        assert not deleting(cluster, "web")
        await cluster.wait_for(lambda: deleting(cluster, "web"), timeout=200)
        assert trio.current_time() - tainted <= 101
