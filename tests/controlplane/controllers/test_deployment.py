"""Deployments roll out, roll back, pause, scale and time out, through the public API."""

from __future__ import annotations

import attrs
import pytest
import trio

from controlplane import errors, open_cluster, rollouts
from controlplane.controllers.rollout import REVISION_ANNOTATION


def deployment(
    image="nginx:1",
    replicas=10,
    *,
    name="web",
    strategy=None,
    history=None,
    deadline=None,
    paused=None,
):
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image}]},
        },
    }
    if strategy is not None:
        spec["strategy"] = strategy
    if history is not None:
        spec["revisionHistoryLimit"] = history
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    if paused is not None:
        spec["paused"] = paused
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def get(cluster, kind="Deployment", name="web"):
    return cluster.get_nowait(kind, name, namespace="default")


def image_of(obj):
    spec = obj.spec.template.spec if hasattr(obj.spec, "template") else obj.spec
    return spec.containers[0].image


def rollout_done(cluster, name="web"):
    def check():
        d = get(cluster, name=name)
        s = d.status
        want = d.spec.replicas
        return (
            s.observed_generation >= d.metadata.generation
            and s.updated_replicas == s.replicas == s.available_replicas == want
            and d
        )

    return check


def replica_sets(cluster):
    return {rs.metadata.name: rs for rs in cluster.list_nowait("ReplicaSet", namespace="default")}


class PodWatch:
    """Replays every pod change in order and checks the rollout bounds after each one."""

    def __init__(self, cluster, *, most: int, least: int) -> None:
        self.cluster = cluster
        self.most = most
        self.least = least
        self.pods: dict[str, object] = {}
        self.checking = False
        self.violations: list[str] = []
        self.changes = 0
        self.peak = 0
        self.low = None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        listed = await self.cluster.client.list("Pod", namespace="default")
        self.pods = {p.metadata.name: p for p in listed.items}
        async with self.cluster.client.watch(
            "Pod", namespace="default", resource_version=listed.resource_version
        ) as events:
            task_status.started()
            async for event in events:
                if event.type == "BOOKMARK":
                    continue
                if event.type == "DELETED":
                    self.pods.pop(event.object.metadata.name, None)
                else:
                    self.pods[event.object.metadata.name] = event.object
                self.changes += 1
                if self.checking:
                    self._check()

    def _check(self):
        active = [
            p
            for p in self.pods.values()
            if p.metadata.deletion_timestamp is None
            and p.status.phase not in ("Succeeded", "Failed")
        ]
        available = [
            p
            for p in active
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
        ]
        self.peak = max(self.peak, len(active))
        self.low = len(available) if self.low is None else min(self.low, len(available))
        if len(active) > self.most:
            self.violations.append(f"{len(active)} pods > {self.most}")
        if len(available) < self.least:
            self.violations.append(f"{len(available)} available < {self.least}")


async def test_rolling_update_stays_within_surge_and_unavailability_then_rolls_back(
    autojump_clock,
):
    async with open_cluster(nodes=4, seed=11) as cluster, trio.open_nursery() as nursery:
        await cluster.apply(deployment("nginx:1"))
        await cluster.wait_for(rollout_done(cluster))
        # 10 replicas, 25 % / 25 %: surge rounds up (3), unavailability down (2)
        watch = PodWatch(cluster, most=13, least=8)
        await nursery.start(watch.run)
        watch.checking = True
        await cluster.apply(deployment("nginx:2"))
        await cluster.wait_for(rollout_done(cluster))
        await cluster.wait_for(lambda: all(image_of(p) == "nginx:2" for p in watch.pods.values()))
        assert watch.violations == []
        assert watch.peak > 10 and watch.low < 10  # it did surge and did go unavailable
        d = get(cluster)
        assert d.metadata.annotations[REVISION_ANNOTATION] == "2"
        revisions = await rollouts.history(cluster.client, "web")
        assert [rev for rev, _ in revisions] == [1, 2]
        assert [rs.spec.replicas for _, rs in revisions] == [0, 10]
        assert all(rs.metadata.name.startswith("web-") for _, rs in revisions)
        available = next(c for c in d.status.conditions if c.type == "Available")
        progressing = next(c for c in d.status.conditions if c.type == "Progressing")
        assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
        assert (progressing.status, progressing.reason) == ("True", "NewReplicaSetAvailable")

        # roll back: the template of revision 1 comes back as revision 3
        await rollouts.undo(cluster.client, "web")
        await cluster.wait_for(rollout_done(cluster))
        await cluster.wait_for(lambda: all(image_of(p) == "nginx:1" for p in watch.pods.values()))
        assert image_of(get(cluster)) == "nginx:1"
        assert watch.violations == []
        revisions = await rollouts.history(cluster.client, "web")
        assert [rev for rev, _ in revisions] == [2, 3]
        assert image_of(revisions[-1][1]) == "nginx:1"
        assert get(cluster).metadata.annotations[REVISION_ANNOTATION] == "3"
        scaling = [e for e in cluster.list_nowait("Event") if e.reason == "ScalingReplicaSet"]
        assert scaling and all(e.involved_object.name == "web" for e in scaling)
        nursery.cancel_scope.cancel()


async def test_recreate_removes_every_old_pod_before_creating_new_ones(autojump_clock):
    async with open_cluster(nodes=2, seed=12) as cluster, trio.open_nursery() as nursery:
        await cluster.apply(deployment("nginx:1", 4, strategy={"type": "Recreate"}))
        await cluster.wait_for(rollout_done(cluster))
        watch = PodWatch(cluster, most=4, least=0)
        await nursery.start(watch.run)
        watch.checking = True
        mixed = []

        async def check_never_mixed():
            revision = cluster.store.revision
            while True:
                revision = await cluster.store.wait_changed(revision)
                images = {image_of(p) for p in watch.pods.values()}
                if len(images) > 1:
                    mixed.append(images)

        nursery.start_soon(check_never_mixed)
        await cluster.apply(deployment("nginx:2", 4, strategy={"type": "Recreate"}))
        await cluster.wait_for(rollout_done(cluster))
        assert mixed == []  # old pods were gone (not just terminating) before new ones
        assert watch.violations == []
        assert {image_of(p) for p in watch.pods.values()} == {"nginx:2"}
        nursery.cancel_scope.cancel()


async def test_revision_history_limit_deletes_the_oldest_replica_sets(autojump_clock):
    async with open_cluster(nodes=2, seed=13) as cluster:
        for version in range(1, 6):
            await cluster.apply(deployment(f"nginx:{version}", 2, history=2))
            await cluster.wait_for(rollout_done(cluster))
        await cluster.settle()
        revisions = await rollouts.history(cluster.client, "web")
        assert [rev for rev, _ in revisions] == [3, 4, 5]
        with pytest.raises(errors.NotFound, match="revision 1"):
            await rollouts.undo(cluster.client, "web", to_revision=1)
        assert image_of(get(cluster)) == "nginx:5"
        await rollouts.undo(cluster.client, "web", to_revision=3)
        await cluster.wait_for(rollout_done(cluster))
        assert image_of(get(cluster)) == "nginx:3"


async def test_paused_deployment_scales_but_does_not_roll_out_until_resumed(cluster):
    await cluster.apply(deployment("nginx:1", 3))
    await cluster.wait_for(rollout_done(cluster))
    await rollouts.pause(cluster.client, "web")
    with pytest.raises(errors.BadRequest, match="already paused"):
        await rollouts.pause(cluster.client, "web")
    d = get(cluster)
    await cluster.client.update(
        attrs.evolve(
            d,
            spec=attrs.evolve(
                d.spec,
                replicas=5,
                template=attrs.evolve(
                    d.spec.template,
                    spec=attrs.evolve(
                        d.spec.template.spec,
                        containers=(
                            attrs.evolve(d.spec.template.spec.containers[0], image="nginx:2"),
                        ),
                    ),
                ),
            ),
        )
    )
    await cluster.wait_for(lambda: get(cluster).status.available_replicas == 5)
    await cluster.settle()
    assert len(replica_sets(cluster)) == 1  # no new ReplicaSet while paused
    progressing = next(c for c in get(cluster).status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("Unknown", "DeploymentPaused")
    with pytest.raises(errors.BadRequest, match="paused"):
        await rollouts.undo(cluster.client, "web")
    await rollouts.resume(cluster.client, "web")
    await cluster.wait_for(rollout_done(cluster))
    await cluster.wait_for(
        lambda: (
            {image_of(p) for p in cluster.list_nowait("Pod", namespace="default")} == {"nginx:2"}
        )
    )
    assert len(replica_sets(cluster)) == 2


async def test_scaling_mid_rollout_is_proportional(autojump_clock):
    async with open_cluster(nodes=4, seed=14) as cluster:
        cluster.registry.mark_missing("nginx:broken")
        await cluster.apply(deployment("nginx:1", 10))
        await cluster.wait_for(rollout_done(cluster))
        await cluster.apply(deployment("nginx:broken", 10))  # never becomes ready: stuck
        await cluster.settle()
        sizes = sorted(rs.spec.replicas for rs in replica_sets(cluster).values())
        # 10 + surge 3 = 13 pods, of which 10 - 2 = 8 must be available: old ones
        assert sizes == [5, 8]
        await cluster.apply(deployment("nginx:broken", 20))
        await cluster.settle()
        sets = replica_sets(cluster)
        old = next(rs for rs in sets.values() if image_of(rs) == "nginx:1")
        new = next(rs for rs in sets.values() if image_of(rs) == "nginx:broken")
        # 20 + surge 5 = 25, shared in proportion to 8 and 5 of the 13 (max-replicas)
        assert (old.spec.replicas, new.spec.replicas) == (15, 10)
        for rs in (old, new):
            assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "20"
            assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "25"


async def test_a_stuck_rollout_exceeds_its_progress_deadline(autojump_clock):
    async with open_cluster(nodes=2, seed=15) as cluster:
        cluster.registry.mark_missing("nginx:broken")
        await cluster.apply(deployment("nginx:1", 2, deadline=60))
        await cluster.wait_for(rollout_done(cluster))
        start = trio.current_time()
        await cluster.apply(deployment("nginx:broken", 2, deadline=60))

        def timed_out():
            cond = next(c for c in get(cluster).status.conditions if c.type == "Progressing")
            return cond.status == "False" and cond

        cond = await cluster.wait_for(timed_out, timeout=600)
        assert cond.reason == "ProgressDeadlineExceeded"
        assert cond.message.endswith("has timed out progressing.")
        assert 60 <= trio.current_time() - start <= 75
        # the old pods kept serving
        assert get(cluster).status.available_replicas >= 1


@pytest.mark.parametrize(
    ("strategy", "field"),
    [
        (
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}},
            "spec.strategy.rollingUpdate.maxUnavailable",
        ),
        (
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "5x"}},
            "spec.strategy.rollingUpdate.maxSurge",
        ),
    ],
)
async def test_bad_strategies_are_rejected_and_change_nothing(cluster, strategy, field):
    revision = cluster.store.revision
    with pytest.raises(errors.Invalid) as info:
        await cluster.apply(deployment(strategy=strategy))
    assert field in {c.field for c in info.value.causes}
    assert cluster.store.revision == revision


async def test_selector_must_match_the_template(cluster):
    bad = deployment()
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(errors.Invalid) as info:
        await cluster.apply(bad)
    assert "spec.template.metadata.labels" in {c.field for c in info.value.causes}
    assert get(cluster) is None


async def test_deleting_a_deployment_removes_its_replica_sets_and_pods(cluster):
    await cluster.apply(deployment("nginx:1", 3))
    await cluster.wait_for(rollout_done(cluster))
    await cluster.apply(deployment("nginx:2", 3))
    await cluster.wait_for(rollout_done(cluster))
    assert len(replica_sets(cluster)) == 2
    await cluster.client.delete("Deployment", "web", namespace="default")  # background
    await cluster.wait_for(
        lambda: not replica_sets(cluster) and not cluster.list_nowait("Pod", namespace="default"),
        timeout=120,
    )
    assert get(cluster) is None


async def test_orphan_deletion_keeps_the_replica_sets_running(cluster):
    await cluster.apply(deployment("nginx:1", 2))
    await cluster.wait_for(rollout_done(cluster))
    await cluster.client.delete(
        "Deployment", "web", namespace="default", propagation_policy="Orphan"
    )
    await cluster.wait_for(lambda: get(cluster) is None)
    await cluster.settle()
    (rs,) = replica_sets(cluster).values()
    assert rs.metadata.owner_references == ()
    assert rs.status.ready_replicas == 2
