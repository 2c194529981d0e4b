"""The pure decisions of a Deployment rollout."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from controlplane.api import from_dict
from controlplane.api.apps import Deployment, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus
from controlplane.api.meta import ObjectMeta
from controlplane.clock import EPOCH
from controlplane.controllers import rollout


def make_deployment(replicas=10, surge="25%", unavailable="25%", strategy="RollingUpdate"):
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": strategy},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        },
        "revisionHistoryLimit": 2,
    }
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return from_dict(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}
    )


def rs(
    name, replicas, available=None, *, age=0, revision=1, annotations=None, status_replicas=None
):
    return ReplicaSet(
        metadata=ObjectMeta(
            name=name,
            uid=f"uid-{name}",
            creation_timestamp=EPOCH + timedelta(seconds=age),
            annotations={rollout.REVISION_ANNOTATION: str(revision), **(annotations or {})},
        ),
        spec=ReplicaSetSpec(replicas=replicas),
        status=ReplicaSetStatus(
            replicas=replicas if status_replicas is None else status_replicas,
            available_replicas=replicas if available is None else available,
        ),
    )


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailability down
        (4, "25%", "25%", (1, 1)),
        (1, "25%", "25%", (1, 0)),
        (3, "10%", "10%", (1, 0)),
        (10, 0, "0%", (0, 1)),  # both zero after rounding: one may be unavailable
        (10, 2, 5, (2, 5)),
    ],
)
def test_fenceposts(replicas, surge, unavailable, expected):
    assert rollout.fenceposts(make_deployment(replicas, surge, unavailable)) == expected


def test_recreate_has_no_fenceposts_and_scales_new_to_full():
    d = make_deployment(strategy="Recreate")
    assert rollout.fenceposts(d) == (0, 0)
    new = rs("new", 0)
    assert rollout.new_rs_replicas(d, [rs("old", 10), new], new) == 10


def test_new_replica_set_grows_within_surge():
    d = make_deployment(10)
    new = rs("new", 0)
    assert rollout.new_rs_replicas(d, [rs("old", 10), new], new) == 3
    new = rs("new", 5, 0)
    assert rollout.new_rs_replicas(d, [rs("old", 8), new], new) == 5  # 13 already
    assert rollout.new_rs_replicas(d, [rs("old", 4), new], new) == 9


def test_old_replica_sets_shrink_unhealthy_first_then_keep_min_available():
    d = make_deployment(10)
    new = rs("new", 3, 0, age=100)
    assert rollout.old_rs_scale_down(d, [rs("old", 10)], new) == {"old": 8}
    # unavailable replicas go first, and count against what may go at all (2 here)
    older = rs("older", 4, 1, age=0)
    old = rs("old", 6, 6, age=50)
    assert rollout.old_rs_scale_down(d, [older, old], new) == {"older": 2}
    # then healthy ones, oldest first, while 8 stay available
    older = rs("older", 1, 0, age=0)
    old = rs("old", 9, 9, age=50)
    assert rollout.old_rs_scale_down(d, [older, old], new) == {"older": 0, "old": 8}
    # nothing more while the new pods are not available
    assert rollout.old_rs_scale_down(d, [rs("old", 8)], rs("new", 5, 0, age=100)) == {}


def test_proportional_scale_shares_by_size_and_gives_the_rest_to_the_largest():
    d = make_deployment(20)
    marks = {rollout.MAX_REPLICAS_ANNOTATION: "13", rollout.DESIRED_REPLICAS_ANNOTATION: "10"}
    old = rs("old", 8, annotations=marks, age=0)
    new = rs("new", 5, 0, annotations=marks, age=10)
    assert rollout.proportional_scale(d, new, [old]) == {"old": 15, "new": 10}
    old = rs("old", 8, annotations=marks, age=0)
    new = rs("new", 3, 0, annotations=marks, age=10)
    # 8 and 3 of 13 over 25: 15 and 6 (rounded), 4 more to the largest
    assert rollout.proportional_scale(d, new, [old]) == {"old": 19, "new": 6}
    # scaling down to 0 empties everything
    zero = make_deployment(0)
    assert rollout.proportional_scale(zero, new, [old]) == {"old": 0, "new": 0}
    # one active ReplicaSet simply takes the new size
    assert rollout.proportional_scale(d, rs("new", 10, age=10), [rs("old", 0)]) == {"new": 20}


def test_history_to_clean_keeps_the_limit_and_only_settled_empty_sets():
    d = make_deployment()  # revisionHistoryLimit 2
    sets = [rs(f"r{i}", 0, revision=i) for i in range(1, 6)]
    assert [s.metadata.name for s in rollout.history_to_clean(d, sets)] == ["r1", "r2", "r3"]
    sets[0] = rs("r1", 1, revision=1)  # still has a replica: kept
    assert [s.metadata.name for s in rollout.history_to_clean(d, sets)] == ["r2", "r3"]


def test_pod_template_hash_is_stable_safe_and_changes_with_collisions():
    d = make_deployment()
    first = rollout.pod_template_hash(d.spec.template, None)
    assert first == rollout.pod_template_hash(d.spec.template, None)
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(first) <= 10
    assert rollout.pod_template_hash(d.spec.template, 1) != first
    other = attrs.evolve(
        d.spec.template, metadata=attrs.evolve(d.spec.template.metadata, labels={"app": "x"})
    )
    assert rollout.pod_template_hash(other, None) != first


def test_find_new_replica_set_ignores_the_hash_label():
    d = make_deployment()
    template = d.spec.template
    hashed = attrs.evolve(
        template,
        metadata=attrs.evolve(template.metadata, labels={"app": "web", rollout.HASH_LABEL: "abc"}),
    )
    match = attrs.evolve(rs("match", 1), spec=ReplicaSetSpec(replicas=1, template=hashed))
    assert rollout.find_new_rs(d, [rs("other", 1), match]) is match
    assert rollout.find_new_rs(d, [rs("other", 1)]) is None


def test_deployment_type_is_what_the_decisions_read():
    assert isinstance(make_deployment(), Deployment)


def test_pods_not_yet_deleted_count_against_the_surge_and_not_toward_availability():
    d = make_deployment(10)  # surge 3, unavailable 2
    # the old ReplicaSet was just scaled 10 -> 8 but still reports 10 pods
    old = rs("old", 8, 10, age=0, status_replicas=10)
    new = rs("new", 3, 0, age=100)
    assert rollout.new_rs_replicas(d, [old, new], new) == 3  # 10 + 3 pods exist already
    # scaled 10 -> 9, still 10 available in status: only 9 count, so 4 more may go
    # (counting 10 would let 5 go and leave 7 available)
    old = rs("old", 9, 10, age=0, status_replicas=10)
    assert rollout.old_rs_scale_down(d, [old], rs("new", 3, 3, age=100)) == {"old": 5}
