"""The invariant checker: each built-in invariant catches a violation built on purpose,
and none fires on a healthy cluster doing a rolling update or losing and regaining a
node."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from controlplane import open_cluster
from controlplane.api import from_dict
from controlplane.api.core_pod import Pod
from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.controllers import default_controllers
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.podgc import PodGarbageCollector
from controlplane.invariants import BUILTIN, InvariantChecker, Violation, convergence_problems
from controlplane.metrics import MetricsStore
from controlplane.store.history import Change

ALL_BUILTIN = {*BUILTIN, "watch-resumable"}


def app(warmup: float = 2.0) -> Any:
    async def program(ctx: Any) -> None:
        await trio.sleep(warmup)
        ctx.listen(8080, lambda payload, src: b"ok")
        await ctx.terminating.wait()
        ctx.set_ready(False)
        await trio.sleep(2)

    return program


def deployment(image: str, replicas: int = 3, **strategy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": image,
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }
                ]
            },
        },
    }
    if strategy:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
}


def ready_pods(cluster: Any) -> int:
    return sum(
        1
        for p in cluster.list_nowait("Pod", namespace="default", label_selector="app=web")
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
    )


async def start_web(cluster: Any, nursery: trio.Nursery, replicas: int = 3, **kw: Any) -> Any:
    for tag in ("1", "2"):
        cluster.registry.add(f"example.com/app:{tag}", program=app())
    checker = InvariantChecker(cluster, **kw)
    await nursery.start(checker.run)
    await cluster.apply([deployment("example.com/app:1", replicas), SERVICE])
    await cluster.wait_for(lambda: ready_pods(cluster) == replicas, timeout=120)
    return checker


def without(*names: str) -> list[Any]:
    return [c for c in default_controllers(MetricsStore()) if c[0] not in names]


def violated(checker: InvariantChecker) -> set[str]:
    return {name for name, ok in checker.held().items() if not ok}


# ----- no false positives ---------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy", [{"maxSurge": 1, "maxUnavailable": 0}, {}, {"maxSurge": "50%", "maxUnavailable": 2}]
)
async def test_a_rolling_update_under_load_violates_nothing(autojump_clock, strategy):
    async with open_cluster(nodes=3, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = await start_web(cluster, nursery, replicas=4)
        web = cluster.get_nowait("Deployment", "web", namespace="default")
        load = cluster.load_generator("web", 80, rate=5, timeout=1)
        await nursery.start(load.run)
        await cluster.apply(deployment("example.com/app:2", 4, **strategy))
        await cluster.wait_for(
            lambda: (
                cluster.get_nowait("Deployment", "web", namespace="default").status.updated_replicas
                == 4
                and ready_pods(cluster) == 4
            ),
            timeout=300,
        )
        checker.expect_convergence(within=120)
        await trio.sleep(130)
        load.stop()
        assert len(cluster.list_nowait("ReplicaSet", namespace="default")) == 2
        assert web.metadata.uid
        assert checker.violations == [], checker.violations
        summary = checker.summary()
        assert summary["held"] and summary["violations"] == 0
        assert set(summary["invariants"]) == ALL_BUILTIN | {"convergence"}
        assert not summary["invariants"]["convergence"]["pending"]
        assert summary["changes_checked"] > 50
        assert checker._auditor.events_checked > 20
        nursery.cancel_scope.cancel()


async def test_a_node_crash_and_recovery_violates_nothing(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = await start_web(cluster, nursery)
        victim = cluster.list_nowait("Pod", namespace="default")[0].spec.node_name
        before = {p.metadata.name for p in cluster.list_nowait("Pod", namespace="default")}
        checker.faults_active(True)
        cluster.chaos.crash_node(victim)
        await trio.sleep(400)  # NotReady at 40 s, pods evicted at 300 s and replaced
        after = {p.metadata.name for p in cluster.list_nowait("Pod", namespace="default")}
        assert after != before and ready_pods(cluster) == 3
        cluster.chaos.restart_node(victim)
        checker.faults_active(False)
        checker.expect_convergence(within=180)
        cluster.chaos.close_watches()  # the auditor must resume its watch
        await trio.sleep(200)
        assert checker.violations == [], checker.violations
        assert checker.held() == dict.fromkeys(ALL_BUILTIN | {"convergence"}, True)
        assert checker._auditor.rewatches >= 1
        assert convergence_problems(cluster.store) == []
        nursery.cancel_scope.cancel()


# ----- each invariant catches a real violation ------------------------------------------


async def test_an_extra_pod_for_a_replicaset_breaks_the_replica_bound(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = await start_web(cluster, nursery)
        rs = cluster.list_nowait("ReplicaSet", namespace="default")[0]
        ref = OwnerReference(
            api_version="apps/v1",
            kind="ReplicaSet",
            name=rs.metadata.name,
            uid=rs.metadata.uid,
            controller=True,
        )

        def extra(name: str) -> Pod:
            meta = ObjectMeta(name=name, namespace="default", owner_references=(ref,))
            return Pod(metadata=meta, spec=rs.spec.template.spec)

        # 3 replicas + maxSurge 1 (25 % rounded up): a fourth pod is still within bounds
        await cluster.client.create(extra("surge"))
        assert checker.held()["replica-bound"]
        stored = await cluster.client.create(extra("intruder"))
        bound = [v for v in checker.violations if v.invariant == "replica-bound"]
        assert len(bound) == 2  # the ReplicaSet's count and the Deployment's total
        first = bound[0]
        assert isinstance(first, Violation)
        assert (first.revision, first.kind, first.name) == (
            int(stored.metadata.resource_version),
            "Pod",
            "default/intruder",
        )
        assert first.at == trio.current_time()
        assert first.message == (
            f"ReplicaSet default/{rs.metadata.name} has 5 active pods after this create,"
            " more than spec.replicas 3 + maxSurge 1"
        )
        assert "more than replicas 3 + maxSurge 1" in bound[1].message
        assert checker.first_violation() == first
        assert checker.summary()["invariants"]["replica-bound"]["violations"] == 2
        nursery.cancel_scope.cancel()


async def test_deleting_ready_pods_below_max_unavailable_breaks_availability(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = await start_web(cluster, nursery, replicas=4)
        pods = cluster.list_nowait("Pod", namespace="default", label_selector="app=web")
        # replicas 4, maxUnavailable 25 % = 1: the second deletion goes below 3
        await cluster.client.delete("Pod", pods[0].metadata.name, namespace="default")
        assert checker.held()["rollout-availability"]
        await cluster.client.delete("Pod", pods[1].metadata.name, namespace="default")
        (v,) = [v for v in checker.violations if v.invariant == "rollout-availability"]
        assert v.name == f"default/{pods[1].metadata.name}"
        assert "down to 2 ready pods" in v.message
        # the same deletion during a declared fault is not held against the rollout
        checker.faults_active(True)
        await cluster.client.delete("Pod", pods[2].metadata.name, namespace="default")
        assert checker.summary()["invariants"]["rollout-availability"]["violations"] == 1
        nursery.cancel_scope.cancel()


async def test_a_pod_bound_to_a_missing_node_is_caught_without_podgc(autojump_clock):
    async with (
        open_cluster(nodes=1, seed=1, controllers=without(PodGarbageCollector.name)) as cluster,
        trio.open_nursery() as nursery,
    ):
        checker = InvariantChecker(cluster)
        await nursery.start(checker.run)
        pod = from_dict(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "lost", "namespace": "default"},
                "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "x"}]},
            }
        )
        await cluster.client.create(pod)
        start = trio.current_time()
        await trio.sleep(119)
        assert checker.held()["pod-node-exists"]
        await trio.sleep(2)
        (v,) = [v for v in checker.violations if v.invariant == "pod-node-exists"]
        assert v.at == start + 120
        assert v.message == "pod default/lost is still bound to missing node ghost 120s later"
        nursery.cancel_scope.cancel()


async def test_podgc_collects_pods_of_a_deleted_node_within_the_bound(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = await start_web(cluster, nursery)
        node = cluster.list_nowait("Pod", namespace="default")[0].spec.node_name
        checker.faults_active(True)
        await cluster.remove_node(node)
        checker.faults_active(False)
        await trio.sleep(200)
        assert checker.held()["pod-node-exists"], checker.violations
        assert not cluster.list_nowait("Pod", field_selector=f"spec.nodeName={node}")
        nursery.cancel_scope.cancel()


async def test_stale_endpoints_are_caught_after_the_bound(autojump_clock):
    async with (
        open_cluster(nodes=2, seed=1, controllers=without(EndpointsController.name)) as cluster,
        trio.open_nursery() as nursery,
    ):
        checker = await start_web(cluster, nursery, replicas=2)
        await trio.sleep(10)
        violations = [v for v in checker.violations if v.invariant == "endpoints-match"]
        assert violations
        assert violations[0].message == (
            "service default/web has no Endpoints 5s after the last change"
        )
        assert (violations[0].kind, violations[0].name) == ("Service", "default/web")
        nursery.cancel_scope.cancel()


async def test_endpoints_that_list_a_pod_that_is_not_ready_are_caught(autojump_clock):
    async with (
        open_cluster(nodes=2, seed=1, controllers=without(EndpointsController.name)) as cluster,
        trio.open_nursery() as nursery,
    ):
        checker = InvariantChecker(cluster, endpoints_bound=3)
        await nursery.start(checker.run)
        await cluster.apply(SERVICE)
        endpoints = from_dict(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "web", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "10.244.9.9"}], "ports": [{"port": 8080}]}],
            }
        )
        await cluster.client.create(endpoints)
        await trio.sleep(4)
        (v,) = checker.violations
        assert v.invariant == "endpoints-match"
        assert "missing [], extra ['10.244.9.9'] 3s after" in v.message
        nursery.cancel_scope.cancel()


async def test_a_renamed_uid_and_a_feed_gap_are_caught(autojump_clock):
    async with open_cluster(nodes=0, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = InvariantChecker(cluster)
        await nursery.start(checker.run)
        ns = cluster.get_nowait("Namespace", "default")
        revision = cluster.store.revision
        # a write the store never made: revision skips ahead, the uid changes in place
        forged = attrs.evolve(
            ns,
            metadata=attrs.evolve(ns.metadata, uid="other", resource_version=str(revision + 2)),
        )
        checker._on_change(Change(revision + 2, "MODIFIED", "Namespace", ns, forged, 0.0))
        got = {v.invariant: v.message for v in checker.violations}
        assert got["watch-order"] == (
            f"revision {revision + 2} follows {revision}: a gap in the change feed"
        )
        assert got["unique-names"].startswith("MODIFIED of uid other but the name belongs to")
        # and a resourceVersion that goes backwards
        back = attrs.evolve(forged, metadata=attrs.evolve(forged.metadata, resource_version="1"))
        checker._on_change(Change(revision + 3, "MODIFIED", "Namespace", forged, back, 0.0))
        assert {v.invariant for v in checker.violations} >= {"resource-version"}
        nursery.cancel_scope.cancel()


async def test_a_watch_that_loses_an_event_is_caught_by_the_auditor(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = InvariantChecker(cluster)
        await nursery.start(checker.run)
        hub = cluster.store._hub
        dispatch = hub.dispatch
        dropped: list[int] = []

        def lossy(change: Change) -> None:  # a watch hub that loses one pod event
            if change.kind == "Pod" and not dropped:
                dropped.append(change.revision)
                return
            dispatch(change)

        hub.dispatch = lossy
        for name in ("a", "b"):
            await cluster.client.create(
                from_dict(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                    }
                )
            )
        hub.dispatch = dispatch
        await cluster.settle()
        await trio.sleep(1)
        (v,) = [v for v in checker.violations if v.invariant == "watch-resumable"]
        assert v.message.startswith(f"watch skipped 1 change(s) (first {dropped[0]})")
        assert checker.held()["watch-order"]  # the feed itself was fine
        nursery.cancel_scope.cancel()


async def test_two_running_incarnations_of_one_pod_name_are_caught(autojump_clock):
    async with open_cluster(nodes=2, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = InvariantChecker(cluster)
        await nursery.start(checker.run)

        def pod(node: str) -> Any:
            return from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "db-0", "namespace": "default"},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
                }
            )

        def running() -> bool:
            p = cluster.get_nowait("Pod", "db-0", namespace="default")
            return p is not None and p.status.phase == "Running"

        await cluster.client.create(pod("node-1"))
        await cluster.wait_for(running, timeout=60)
        # node-1 hangs: its container keeps running; a force delete skips the kubelet
        cluster.chaos.pause_node("node-1")
        await cluster.client.delete("Pod", "db-0", namespace="default", grace_period_seconds=0)
        await cluster.client.create(pod("node-2"))
        await cluster.wait_for(running, timeout=60)
        (v,) = [v for v in checker.violations if v.invariant == "single-incarnation"]
        assert v.message.startswith("pod default/db-0 runs on node-2 (uid ")
        assert v.message.endswith("still runs on node-1")
        nursery.cancel_scope.cancel()


# ----- user invariants and liveness -----------------------------------------------------


async def test_user_invariants_and_eventually(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = InvariantChecker(cluster, builtin=False)
        await nursery.start(checker.run)

        def at_most_two_web_pods(c: Any) -> str | None:
            n = len(c.list_nowait("Pod", label_selector="app=web"))
            return f"{n} web pods" if n > 2 else None

        def broken(c: Any) -> str | None:
            raise KeyError("boom")

        checker.add("at-most-two", at_most_two_web_pods)
        checker.add("broken", broken)
        with pytest.raises(ValueError, match=r"^invariant 'broken' is already registered$"):
            checker.add("broken", broken)
        start = trio.current_time()
        checker.eventually("three-ready", lambda c: ready_pods(c) == 3, within=60)
        checker.eventually("ten-ready", lambda c: ready_pods(c) == 10, within=30)
        checker.eventually(
            "later", lambda c: True, within=5, after=start + 100
        )  # not due before 100 s
        for tag in ("1", "2"):
            cluster.registry.add(f"example.com/app:{tag}", program=app())
        await cluster.apply(deployment("example.com/app:1", 3))
        await trio.sleep(29)
        summary = checker.summary()["invariants"]
        assert summary["three-ready"] == {
            "type": "eventually",
            "held": True,
            "violations": 0,
            "pending": False,
            "first": None,
        }
        assert summary["ten-ready"]["pending"] and summary["later"]["pending"]
        await trio.sleep(2)
        ten = [v for v in checker.violations if v.invariant == "ten-ready"]
        assert [(v.at, v.message) for v in ten] == [(start + 30, "did not hold within 30s")]
        await trio.sleep(100)
        held = checker.held()
        assert held == {"at-most-two": False, "broken": False, "three-ready": True,
                        "ten-ready": False, "later": True}  # fmt: skip
        first_user = next(v for v in checker.violations if v.invariant == "at-most-two")
        assert first_user.message == "3 web pods" and first_user.kind == "Pod"
        assert next(v for v in checker.violations if v.invariant == "broken").message == (
            "check raised KeyError: 'boom'"
        )
        nursery.cancel_scope.cancel()


async def test_convergence_that_never_comes_is_reported_at_its_deadline(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = InvariantChecker(cluster)
        with pytest.raises(RuntimeError, match=r"needs InvariantChecker.run\(\) running"):
            checker.expect_convergence(within=10)
        await nursery.start(checker.run)
        cluster.registry.add("example.com/app:1", program=app())
        await cluster.apply(deployment("example.com/app:1", 2))
        await cluster.wait_for(lambda: ready_pods(cluster) == 2, timeout=60)
        cluster.chaos.pause_node("node-1")  # a fault nobody heals: the scale-up stalls
        web = cluster.get_nowait("Deployment", "web", namespace="default")
        await cluster.client.update(attrs.evolve(web, spec=attrs.evolve(web.spec, replicas=3)))
        start = trio.current_time()
        checker.expect_convergence(within=60, traffic=False)
        assert checker.summary()["invariants"]["convergence"]["pending"]
        await trio.sleep(61)
        (v,) = [v for v in checker.violations if v.invariant == "convergence"]
        assert v.at == pytest.approx(start + 60)
        assert v.message.startswith("not converged by the deadline: ")
        assert "Deployment default/web" in v.message
        nursery.cancel_scope.cancel()


async def test_bad_arguments_are_refused(autojump_clock):
    async with open_cluster(nodes=0, seed=1) as cluster:
        with pytest.raises(ValueError, match=r"must be > 0"):
            InvariantChecker(cluster, endpoints_bound=0)
        checker = InvariantChecker(cluster)
        with pytest.raises(ValueError, match=r"^eventually 'x': within must be >= 0, got -1$"):
            checker.eventually("x", lambda c: True, within=-1)
        with pytest.raises(ValueError, match=r"^invariant 'watch-order' is already registered$"):
            checker.add("watch-order", lambda c: None)
        async with trio.open_nursery() as nursery:
            await nursery.start(checker.run)
            with pytest.raises(RuntimeError, match=r"already running"):
                await checker.run()
            nursery.cancel_scope.cancel()
        assert checker.first_violation() is None


def test_compaction_makes_the_auditor_relist_and_runs_replay():
    async def scenario() -> tuple[str, dict[str, Any], int]:
        async with open_cluster(nodes=2, seed=3) as cluster, trio.open_nursery() as nursery:
            checker = await start_web(cluster, nursery, replicas=2)
            hub = cluster.store._hub
            dispatch = hub.dispatch
            # the auditor's watch misses changes, then the history is compacted: it must
            # get Gone on re-watch and re-list, not report the changes it cannot see
            hub.dispatch = lambda change: None
            cluster.chaos.close_watches()
            web = cluster.get_nowait("Deployment", "web", namespace="default")
            await cluster.client.update(attrs.evolve(web, spec=attrs.evolve(web.spec, replicas=3)))
            cluster.chaos.compact()
            hub.dispatch = dispatch
            await cluster.wait_for(lambda: ready_pods(cluster) == 3, timeout=120)
            await trio.sleep(10)
            relists = checker._auditor.relists
            nursery.cancel_scope.cancel()
            return cluster.history_digest(), checker.summary(), relists

    def run() -> tuple[str, dict[str, Any], int]:
        return trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))

    digest, summary, relists = run()
    assert summary["held"], summary
    assert relists >= 1
    again = run()
    assert again == (digest, summary, relists)  # the checker does not break replay


async def test_a_fault_callable_suspends_the_availability_check(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster, trio.open_nursery() as nursery:
        injected = [True]
        checker = await start_web(cluster, nursery, replicas=2, faults=lambda: bool(injected))
        assert checker.in_fault
        for pod in cluster.list_nowait("Pod", namespace="default"):
            await cluster.client.delete("Pod", pod.metadata.name, namespace="default")
        assert checker.held()["rollout-availability"]
        injected.clear()
        assert not checker.in_fault
        handle = cluster.chaos.store_fault(kind="ConfigMap", latency=1.0)
        assert checker.in_fault  # store faults count by themselves
        handle.remove()
        nursery.cancel_scope.cancel()


async def test_a_replication_controller_gets_no_surge(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster, trio.open_nursery() as nursery:
        checker = InvariantChecker(cluster)
        await nursery.start(checker.run)
        rc = await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "db", "namespace": "default"},
                "spec": {
                    "replicas": 1,
                    "selector": {"app": "db"},
                    "template": {
                        "metadata": {"labels": {"app": "db"}},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                    },
                },
            }
        )
        await cluster.wait_for(lambda: cluster.list_nowait("Pod", label_selector="app=db"))
        assert checker.violations == []
        ref = OwnerReference(
            api_version="v1", kind="ReplicationController", name="db", uid=rc.metadata.uid,
            controller=True,
        )  # fmt: skip
        meta = ObjectMeta(name="twin", namespace="default", owner_references=(ref,))
        await cluster.client.create(Pod(metadata=meta, spec=rc.spec.template.spec))
        (v,) = checker.violations
        assert v.message == (
            "ReplicationController default/db has 2 active pods after this create,"
            " more than spec.replicas 1"
        )
        nursery.cancel_scope.cancel()
