"""The namespace controller: a deleted namespace is emptied (pods first), its conditions
say what remains, then it is finalized and removed. Virtual time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import trio
from gc_builders import (
    CONTROLLERS,
    config_map,
    namespace,
    owner_ref,
    pod,
    replica_set,
    replication_controller,
    service,
)

from controlplane import errors, open_cluster
from controlplane.api.core import NamespaceCondition
from controlplane.api.kinds import resolve_kind
from controlplane.controllers.namespace import (
    CONDITION_TYPES,
    ContentTotals,
    deletion_conditions,
    pod_termination_estimate,
    requeue_delay,
    resource_label,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


# -- pure parts ---------------------------------------------------------------------------


def test_resource_labels_as_kubernetes_prints_them() -> None:
    assert resource_label(resolve_kind("Pod")) == "pods."
    assert resource_label(resolve_kind("ReplicaSet")) == "replicasets.apps"
    assert resource_label(resolve_kind("HorizontalPodAutoscaler")) == (
        "horizontalpodautoscalers.autoscaling"
    )


def test_content_totals_count_instances_and_finalizers() -> None:
    cms = [config_map("a", finalizers=["x/y"]), config_map("b", finalizers=["x/y", "z"])]
    totals = ContentTotals.count(
        [
            (resolve_kind("ConfigMap"), cms),
            (resolve_kind("Pod"), [pod("p")]),
            (resolve_kind("Secret"), []),
        ]
    )
    assert totals.remaining == {"configmaps.": 2, "pods.": 1}
    assert totals.finalizers == {"x/y": 2, "z": 1}


def test_pod_termination_estimate() -> None:
    pods = [pod("a", grace=10), pod("b", grace=45), pod("c")]
    assert pod_termination_estimate(pods, T0, T0) == 45
    assert pod_termination_estimate(pods[:1], T0, T0) == 10
    assert pod_termination_estimate([pod("c")], T0, T0) == 30  # the default grace
    # Terminal pods need no time; once the estimate has passed, nothing is expected.
    done = attrs.evolve(pods[1], status=attrs.evolve(pods[1].status, phase="Succeeded"))
    assert pod_termination_estimate([pods[0], done], T0, T0) == 10
    assert pod_termination_estimate(pods, T0, T0 + timedelta(seconds=45)) == 0
    assert pod_termination_estimate([], T0, T0) == 0


def test_requeue_delay_is_half_the_estimate_plus_one() -> None:
    assert [requeue_delay(e) for e in (0, 15, 30, 45)] == [1.0, 8.0, 16.0, 23.0]


def test_deletion_conditions_report_and_resolve() -> None:
    totals = ContentTotals({"pods.": 2, "configmaps.": 1}, {"example.com/hold": 1})
    first = deletion_conditions((), totals, [], T0)
    assert [c.type for c in first] == list(CONDITION_TYPES)
    by_type = {c.type: c for c in first}
    remaining = by_type["NamespaceContentRemaining"]
    assert (remaining.status, remaining.reason, remaining.message) == (
        "True",
        "SomeResourcesRemain",
        "Some resources are remaining: configmaps. has 1 resource instances,"
        " pods. has 2 resource instances",
    )
    fin = by_type["NamespaceFinalizersRemaining"]
    assert (fin.status, fin.reason, fin.message) == (
        "True",
        "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining:"
        " example.com/hold in 1 resource instances",
    )
    content = by_type["NamespaceDeletionContentFailure"]
    assert (content.status, content.reason, content.message) == (
        "False",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    )
    # The same pass again changes nothing (no status write).
    assert deletion_conditions(first, totals, [], T0 + timedelta(seconds=5)) == first
    # Fewer pods: the message changes, the transition time does not (status unchanged).
    later = T0 + timedelta(seconds=9)
    fewer = deletion_conditions(first, ContentTotals({"pods.": 1}, {}), [], later)
    by_type = {c.type: c for c in fewer}
    assert by_type["NamespaceContentRemaining"].message == (
        "Some resources are remaining: pods. has 1 resource instances"
    )
    assert by_type["NamespaceContentRemaining"].last_transition_time == T0
    # Finalizers gone: back to the ok variant, with a new transition time.
    assert by_type["NamespaceFinalizersRemaining"] == NamespaceCondition(
        type="NamespaceFinalizersRemaining",
        status="False",
        reason="ContentHasNoFinalizers",
        message="All content-preserving finalizers finished",
        last_transition_time=later,
    )
    failed = deletion_conditions(fewer, ContentTotals(), ["b broke", "a broke"], later)
    failure = {c.type: c for c in failed}["NamespaceDeletionContentFailure"]
    assert (failure.status, failure.reason, failure.message) == (
        "True",
        "ContentDeletionFailed",
        "Failed to delete all resource types, 2 remaining: a broke, b broke",
    )


def test_deletion_conditions_keep_foreign_conditions() -> None:
    other = NamespaceCondition(type="SomethingElse", status="True")
    assert deletion_conditions((other,), ContentTotals(), [], T0)[0] is other


# -- in a cluster -------------------------------------------------------------------------


def _condition(cluster: Any, name: str, ctype: str) -> NamespaceCondition | None:
    ns = cluster.get_nowait("Namespace", name)
    if ns is None:
        return None
    return next((c for c in ns.status.conditions if c.type == ctype), None)


def _content(cluster: Any, ns: str) -> dict[str, int]:
    kinds = ("Pod", "ConfigMap", "Service", "ReplicaSet", "ReplicationController", "Event")
    counts = {k: len(cluster.list_nowait(k, namespace=ns)) for k in kinds}
    return {k: n for k, n in counts.items() if n}


async def test_deleting_a_namespace_removes_its_content_pods_first(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        await client.create(namespace("team"))
        for i in range(2):
            await client.create(pod(f"web-{i}", namespace="team", grace=10, slow_stop=True))
        await client.create(config_map("cfg", namespace="team"))
        await client.create(service("web", namespace="team"))
        await cluster.wait_for(
            lambda: all(
                p.status.phase == "Running" for p in cluster.list_nowait("Pod", namespace="team")
            )
        )
        deleted_at = trio.current_time()
        marked = await client.delete("Namespace", "team")
        assert marked.status.phase == "Terminating"
        assert marked.spec.finalizers == ("kubernetes",)
        # Nothing new gets in while it terminates.
        with pytest.raises(errors.Forbidden) as refused:
            await client.create(config_map("late", namespace="team"))
        assert str(refused.value) == (
            'configmaps "late" is forbidden: unable to create new content in namespace team'
            " because it is being terminated"
        )
        remaining = await cluster.wait_for(
            lambda: (
                (c := _condition(cluster, "team", "NamespaceContentRemaining"))
                and c.status == "True"
                and c
            ),
            timeout=5,
        )
        assert remaining.message == "Some resources are remaining: pods. has 2 resource instances"
        # Pods go first: the Service and ConfigMap stay while the pods terminate (10 s).
        await trio.sleep(5)
        content = _content(cluster, "team")
        assert (content["Pod"], content["ConfigMap"], content["Service"]) == (2, 1, 1)
        await cluster.wait_for(lambda: cluster.get_nowait("Namespace", "team") is None, timeout=60)
        assert trio.current_time() - deleted_at >= 9.9
        assert _content(cluster, "team") == {}
        # The name is free again.
        await client.create(namespace("team"))


async def test_a_finalizer_holds_the_namespace_until_it_is_removed(autojump_clock) -> None:
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        await client.create(namespace("team"))
        await client.create(config_map("held", namespace="team", finalizers=["example.com/hold"]))
        await client.create(config_map("free", namespace="team"))
        await client.delete("Namespace", "team")
        fin = await cluster.wait_for(
            lambda: (
                (c := _condition(cluster, "team", "NamespaceFinalizersRemaining"))
                and c.status == "True"
                and c
            ),
            timeout=5,
        )
        assert fin.message == (
            "Some content in the namespace has finalizers remaining:"
            " example.com/hold in 1 resource instances"
        )
        assert _condition(cluster, "team", "NamespaceContentRemaining").message == (
            "Some resources are remaining: configmaps. has 1 resource instances"
        )
        await trio.sleep(120)  # re-checked every 8 s; it stays
        assert cluster.get_nowait("Namespace", "team") is not None
        assert cluster.get_nowait("ConfigMap", "free", namespace="team") is None
        held = cluster.get_nowait("ConfigMap", "held", namespace="team")
        assert held.metadata.deletion_timestamp is not None
        released_at = trio.current_time()
        await client.update(attrs.evolve(held, metadata=attrs.evolve(held.metadata, finalizers=())))
        await cluster.wait_for(lambda: cluster.get_nowait("Namespace", "team") is None, timeout=30)
        assert trio.current_time() - released_at < 1  # woken by the deletion, not the timer


async def test_namespace_deletion_cascades_through_owners(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        await client.create(namespace("team"))
        rc = await client.create(replication_controller("legacy", namespace="team"))
        rs = await client.create(replica_set("web", namespace="team"))
        await client.create(pod("legacy-0", namespace="team", owners=[owner_ref(rc)]))
        await client.create(pod("web-0", namespace="team", owners=[owner_ref(rs)]))
        await client.create(config_map("cfg", namespace="team", owners=[owner_ref(rs)]))
        await client.delete("Namespace", "team")
        await cluster.wait_for(lambda: cluster.get_nowait("Namespace", "team") is None, timeout=120)
        assert _content(cluster, "team") == {}


async def test_a_pod_stuck_on_a_dead_node_is_reported_then_forced_out(autojump_clock) -> None:
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        await client.create(namespace("team"))
        await client.create(pod("stuck", namespace="team", grace=10))
        await cluster.wait_for(
            lambda: (
                (p := cluster.get_nowait("Pod", "stuck", namespace="team"))
                and p.status.phase == "Running"
            )
        )
        cluster.chaos.crash_node("node-1")  # nobody will confirm the pod's termination
        await client.delete("Namespace", "team")
        failure = await cluster.wait_for(
            lambda: (
                (c := _condition(cluster, "team", "NamespaceDeletionContentFailure"))
                and c.status == "True"
                and c
            ),
            timeout=60,
        )
        assert failure.message == (
            "Failed to delete all resource types, 1 remaining: unexpected items still remain"
            " in namespace: team for gvr: /v1, Resource=pods"
        )
        assert cluster.get_nowait("Namespace", "team") is not None
        await client.delete("Pod", "stuck", namespace="team", grace_period_seconds=0)
        await cluster.wait_for(lambda: cluster.get_nowait("Namespace", "team") is None, timeout=60)


async def test_restarted_controller_finishes_a_namespace(autojump_clock) -> None:
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        await client.create(namespace("team"))
        await client.create(pod("slow", namespace="team", grace=20, slow_stop=True))
        await client.create(config_map("cfg", namespace="team"))
        await cluster.wait_for(
            lambda: (
                (p := cluster.get_nowait("Pod", "slow", namespace="team"))
                and p.status.phase == "Running"
            )
        )
        await client.delete("Namespace", "team")
        await cluster.wait_for(
            lambda: (
                (p := cluster.get_nowait("Pod", "slow", namespace="team"))
                and p.metadata.deletion_timestamp is not None
            ),
            timeout=5,
        )
        await cluster.chaos.supervisor.restart_child("controller-manager")
        await cluster.wait_for(lambda: cluster.get_nowait("Namespace", "team") is None, timeout=60)
        assert _content(cluster, "team") == {}
