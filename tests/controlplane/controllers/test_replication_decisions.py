"""The pure decisions of the ReplicaSet / ReplicationController core."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.api.core_pod import ContainerStatus, Pod, PodCondition, PodSpec, PodStatus
from controlplane.api.labels import Selector
from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.clock import EPOCH
from controlplane.controllers.replication import (
    BURST_REPLICAS,
    claim_dependents,
    pods_to_delete,
    replica_counts,
    scale_plan,
    slow_start_batches,
)

NOW = EPOCH + timedelta(hours=1)


def pod(
    name: str,
    *,
    node: str | None = "n1",
    phase: str = "Running",
    ready_for: float | None = 600.0,
    restarts: int = 0,
    age: float = 3600.0,
    labels: dict[str, str] | None = None,
    owner: str | None = "rs-uid",
    annotations: dict[str, str] | None = None,
    deleting: bool = False,
) -> Pod:
    conditions = ()
    if ready_for is not None:
        conditions = (
            PodCondition(
                type="Ready",
                status="True",
                last_transition_time=NOW - timedelta(seconds=ready_for),
            ),
        )
    refs = (
        (
            OwnerReference(
                api_version="apps/v1", kind="ReplicaSet", name="rs", uid=owner, controller=True
            ),
        )
        if owner
        else ()
    )
    return Pod(
        metadata=ObjectMeta(
            name=name,
            namespace="default",
            uid=f"uid-{name}",
            labels=labels if labels is not None else {"app": "web"},
            annotations=annotations or {},
            creation_timestamp=NOW - timedelta(seconds=age),
            owner_references=refs,
            deletion_timestamp=NOW if deleting else None,
        ),
        spec=PodSpec(node_name=node),
        status=PodStatus(
            phase=phase,
            conditions=conditions,
            container_statuses=(ContainerStatus(name="app", restart_count=restarts),),
        ),
    )


def names(pods) -> list[str]:
    return [p.metadata.name for p in pods]


def test_slow_start_batches_double_and_end_with_the_rest():
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(15) == [1, 2, 4, 8]
    assert sum(slow_start_batches(500)) == 500


def test_scale_plan_is_capped_at_burst_replicas():
    assert scale_plan(2, 5) == 3
    assert scale_plan(5, 2) == -3
    assert scale_plan(0, 10_000) == BURST_REPLICAS
    assert scale_plan(10_000, 0) == -BURST_REPLICAS


def test_claim_keeps_owned_adopts_matching_orphans_releases_non_matching():
    selector = Selector.from_map({"app": "web"})
    mine = pod("mine")
    stray = pod("stray", labels={"app": "db"})
    orphan = pod("orphan", owner=None)
    other_orphan = pod("other", owner=None, labels={"app": "db"})
    foreign = pod("foreign", owner="someone-else")
    dying_orphan = pod("dying", owner=None, deleting=True)
    claim = claim_dependents(
        "rs-uid",
        "default",
        selector,
        False,
        [mine, stray, orphan, other_orphan, foreign, dying_orphan],
    )
    assert names(claim.owned) == ["mine", "orphan"]
    assert names(claim.adopt) == ["orphan"]
    assert names(claim.release) == ["stray"]
    # an owner being deleted neither adopts nor releases
    claim = claim_dependents("rs-uid", "default", selector, True, [mine, stray, orphan])
    assert (names(claim.owned), claim.adopt, claim.release) == (["mine"], (), ())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pod("a", node=None, phase="Pending", ready_for=None), pod("b")),  # unscheduled
        (pod("a", phase="Pending", ready_for=None), pod("b", phase="Running", ready_for=None)),
        (pod("a", phase="Unknown", ready_for=None), pod("b", phase="Running", ready_for=None)),
        (pod("a", ready_for=None), pod("b")),  # not ready
        (
            pod("a", annotations={"controller.kubernetes.io/pod-deletion-cost": "-5"}),
            pod("b"),
        ),
        (pod("a", ready_for=10), pod("b", ready_for=3000)),  # ready for less time
        (pod("a", restarts=4), pod("b", restarts=1)),  # more restarts
        (pod("a", age=10), pod("b", age=3000)),  # newer
    ],
)
def test_scale_down_order(first, second):
    for order in ([first, second], [second, first]):
        assert names(pods_to_delete(order, 1, [], NOW)) == ["a"]


def test_doubled_up_pods_go_first():
    crowded = [pod(f"c{i}", node="n1") for i in range(3)]
    alone = pod("alone", node="n2")
    victims = pods_to_delete([alone, *crowded], 1, [alone, *crowded], NOW)
    assert victims[0].spec.node_name == "n1"
    assert names(pods_to_delete([alone, *crowded], 3, [alone, *crowded], NOW)) == [
        "c0",
        "c1",
        "c2",
    ]


def test_ready_times_in_the_same_log2_bucket_tie_break_by_uid():
    # 600 s and 610 s ready: same power-of-two bucket of nanoseconds -> uid decides
    a, b = pod("a", ready_for=610), pod("b", ready_for=600)
    assert names(pods_to_delete([b, a], 1, [], NOW)) == ["a"]


def test_delete_all_when_count_covers_every_pod():
    pods = [pod("a"), pod("b")]
    assert names(pods_to_delete(pods, 5, [], NOW)) == ["a", "b"]


def test_replica_counts_availability_needs_min_ready_seconds():
    pods = [pod("a", ready_for=5), pod("b", ready_for=60), pod("c", ready_for=None)]
    counts = replica_counts(pods, lambda p: p.metadata.name != "c", 30, NOW)
    assert (counts.replicas, counts.fully_labeled, counts.ready, counts.available) == (3, 2, 2, 1)
    assert counts.next_available_in == 25  # "a" was ready 5 s ago
    assert replica_counts(pods, lambda p: True, 0, NOW).available == 2
