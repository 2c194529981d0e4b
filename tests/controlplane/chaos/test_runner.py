"""The runner in a real cluster (3 nodes, a Deployment of 3 behind a Service): each
fault has its effect while it lasts and is healed after; replays are exact."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from controlplane import errors, open_cluster
from controlplane.api.core import ConfigMap
from controlplane.api.meta import ObjectMeta
from controlplane.chaos import ChaosRunner, Fault, Schedule, Target, generate_schedule
from runtime.network import NetworkTimeout

IMAGE = "example.com/app:1"


async def server(ctx: Any) -> None:
    ctx.listen(8080, lambda payload, src: f"{ctx.sandbox}".encode())
    await trio.sleep_forever()


def deployment(replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": IMAGE,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ]
                },
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
}


def ready_endpoints(cluster: Any) -> int:
    e = cluster.get_nowait("Endpoints", "web", namespace="default")
    return sum(len(s.addresses) for s in e.subsets) if e is not None else 0


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def web_pods(cluster: Any) -> list[Any]:
    return [
        p
        for p in cluster.list_nowait("Pod", namespace="default", label_selector="app=web")
        if p.metadata.deletion_timestamp is None
    ]


def node_ready(cluster: Any, node: str) -> str:
    obj = cluster.get_nowait("Node", node)
    return next(c.status for c in obj.status.conditions if c.type == "Ready")


async def start_web(cluster: Any) -> None:
    cluster.registry.add(IMAGE, program=server)
    await cluster.apply([deployment(), SERVICE])
    await cluster.wait_for(lambda: ready_endpoints(cluster) == 3, timeout=120)
    await cluster.settle()


def schedule(*faults: Fault, end: float = 300.0) -> Schedule:
    return Schedule(faults=(*faults, Fault(at=end, kind="heal-all")))


async def test_a_node_crash_lasts_its_duration_and_the_workload_recovers(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        node = web_pods(cluster)[0].spec.node_name
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(at=10, kind="node-crash", target=Target(names=(node,)), duration=60),
                end=200,
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            start = runner.started_at
            await trio.sleep_until(start + 11)
            assert not cluster.machines.get(node).runtime.up
            assert runner.outstanding()[0].targets == (node,)
            # the lease stops being renewed: the node goes Unknown after the grace period
            await cluster.wait_for(lambda: node_ready(cluster, node) == "Unknown", timeout=55)
            await trio.sleep_until(start + 70.5)
            assert cluster.machines.get(node).runtime.up
            await cluster.wait_for(lambda: node_ready(cluster, node) == "True", timeout=60)
            await cluster.wait_for(lambda: ready_endpoints(cluster) == 3, timeout=120)
        crash, heal_all = runner.injected
        assert (crash.at, crash.healed_at, crash.outcome) == (start + 10, start + 70, "injected")
        assert (heal_all.at, heal_all.healed_at) == (start + 200, start + 200)


async def test_a_partition_cuts_traffic_until_healed(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        pod = web_pods(cluster)[0]
        node = pod.spec.node_name
        other = next(n for n in cluster.machines.names() if n != node)
        src = cluster.network.host(other).ip
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(at=5, kind="network-partition", target=Target(names=(node,)), duration=30)
            ),
        )

        async def call() -> bytes:
            return await cluster.network.request(src, pod.status.pod_ip, 8080, b"", timeout=2)

        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            start = runner.started_at
            assert await call()
            await trio.sleep_until(start + 6)
            with pytest.raises(NetworkTimeout):
                await call()
            await trio.sleep_until(start + 36)
            assert await call()
            nursery.cancel_scope.cancel()


async def test_pod_network_faults_act_on_the_pods_ips(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(
                    at=5,
                    kind="network-delay",
                    target=Target(namespace="default", selector="app=web", mode="all"),
                    params={"latency": 0.5, "direction": "from"},
                    duration=30,
                )
            ),
        )
        pod = web_pods(cluster)[0]
        src = cluster.network.host("node-1").ip
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await trio.sleep_until(runner.started_at + 6)
            began = trio.current_time()
            await cluster.network.request(src, pod.status.pod_ip, 8080, b"")
            assert trio.current_time() - began == pytest.approx(0.5)
            response = await cluster.request("web", 80, b"")  # through the service VIP
            assert response.ok and response.latency == pytest.approx(0.5)
            await trio.sleep_until(runner.started_at + 36)
            began = trio.current_time()
            await cluster.network.request(src, pod.status.pod_ip, 8080, b"")
            assert trio.current_time() == began
            nursery.cancel_scope.cancel()


async def test_a_failing_readiness_probe_takes_the_pod_out_of_the_endpoints(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(
                    at=5,
                    kind="probe-failure",
                    target=Target(namespace="default", selector="app=web"),
                    params={"probe": "readiness"},
                    duration=30,
                )
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await cluster.wait_for(lambda: ready_endpoints(cluster) == 2, timeout=20)
            (key,) = runner.injected[0].targets
            name = key.split("/")[1]
            assert not ready(cluster.get_nowait("Pod", name, namespace="default"))
            await trio.sleep_until(runner.started_at + 35)
            await cluster.wait_for(lambda: ready_endpoints(cluster) == 3, timeout=10)
            assert trio.current_time() - runner.started_at < 40
            nursery.cancel_scope.cancel()
        assert runner.injected[0].healed_at == runner.started_at + 35


async def test_a_crashed_scheduler_binds_nothing_until_restarted(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        runner = ChaosRunner(cluster, schedule(Fault(at=5, kind="scheduler-crash", duration=60)))
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await trio.sleep_until(runner.started_at + 6)
            supervisor = cluster.chaos.supervisor
            assert not supervisor.is_running("scheduler")
            await cluster.apply(deployment(replicas=4))
            await trio.sleep_until(runner.started_at + 60)
            assert sum(1 for p in web_pods(cluster) if not p.spec.node_name) == 1
            await trio.sleep_until(runner.started_at + 66)
            assert supervisor.is_running("scheduler")
            await cluster.wait_for(lambda: ready_endpoints(cluster) == 4, timeout=60)
            nursery.cancel_scope.cancel()


async def test_a_crashed_controller_stops_alone_and_catches_up_when_restarted(autojump_clock):
    """One controller down (the ReplicaSet controller): the Deployment controller still
    scales the ReplicaSet, but no pod is made until the fault ends and a fresh
    ReplicaSet controller reconciles what it missed."""
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        manager = cluster.controller_manager
        handlers = sum(len(i.handlers) for i in manager.contexts["deployment-controller"].informers)
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(
                    at=5,
                    kind="controller-crash",
                    params={"controller": "replicaset-controller"},
                    duration=60,
                )
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await trio.sleep_until(runner.started_at + 6)
            assert cluster.chaos.controller_stopped("replicaset-controller")
            assert "replicaset-controller" not in manager.controllers
            informers = manager.contexts["deployment-controller"].informers
            assert sum(len(i.handlers) for i in informers) < handlers  # its handlers are off
            await cluster.apply(deployment(replicas=5))
            await trio.sleep_until(runner.started_at + 60)
            [rs] = cluster.list_nowait("ReplicaSet", namespace="default")
            assert rs.spec.replicas == 5  # the Deployment controller runs on
            assert len(web_pods(cluster)) == 3  # nobody makes the pods
            await trio.sleep_until(runner.started_at + 66)
            assert not cluster.chaos.controller_stopped("replicaset-controller")
            await cluster.wait_for(lambda: ready_endpoints(cluster) == 5, timeout=60)
            assert sum(len(i.handlers) for i in informers) == handlers
            nursery.cancel_scope.cancel()


async def test_heal_all_restarts_a_crashed_controller(autojump_clock):
    async with open_cluster(nodes=2, seed=1) as cluster:
        await start_web(cluster)
        cluster.chaos.crash_controller("endpoint-controller")
        await trio.sleep(1)
        assert cluster.chaos.controller_stopped("endpoint-controller")
        with pytest.raises(KeyError, match="no such child 'no-such-controller'"):
            cluster.chaos.crash_controller("no-such-controller")
        await cluster.chaos.heal_all()
        await trio.sleep(1)
        assert not cluster.chaos.controller_stopped("endpoint-controller")
        assert "endpoint-controller" in cluster.controller_manager.controllers


async def test_store_errors_and_conflict_storms_fail_requests_until_healed(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(
                    at=5,
                    kind="store-errors",
                    params={"error": "Timeout", "fraction": 1.0, "verb": "create"},
                    duration=20,
                ),
                Fault(
                    at=30,
                    kind="conflict-storm",
                    params={"fraction": 1.0, "resource": "ConfigMap"},
                    duration=20,
                ),
            ),
        )
        config = ConfigMap(metadata=ObjectMeta(name="c", namespace="default"))
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await trio.sleep_until(runner.started_at + 6)
            with pytest.raises(errors.Timeout, match=r"^injected fault: create configmaps"):
                await cluster.client.create(config)
            await trio.sleep_until(runner.started_at + 26)
            stored = await cluster.client.create(config)
            await trio.sleep_until(runner.started_at + 31)
            with pytest.raises(errors.Conflict):
                await cluster.client.update(stored)
            await trio.sleep_until(runner.started_at + 51)
            await cluster.client.update(stored)
            nursery.cancel_scope.cancel()


async def test_drain_taint_oom_kubelet_crash_and_clock_skew(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        pod = web_pods(cluster)[0]
        node = pod.spec.node_name
        on_node = Target(names=(node,))
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(
                    at=5,
                    kind="container-oom",
                    target=Target(namespace="default", names=(pod.metadata.name,)),
                ),
                Fault(
                    at=20, kind="clock-skew", target=on_node, params={"offset": -30}, duration=30
                ),
                Fault(at=20, kind="kubelet-crash", target=on_node, duration=30),
                Fault(at=60, kind="node-taint", target=on_node, params={"key": "k"}, duration=30),
                Fault(at=100, kind="node-drain", target=on_node, duration=60),
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            start = runner.started_at

            def oom_killed() -> bool:
                p = cluster.get_nowait("Pod", pod.metadata.name, namespace="default")
                status = p.status.container_statuses[0]
                terminated = status.last_state.terminated if status.last_state else None
                return terminated is not None and terminated.reason == "OOMKilled"

            await cluster.wait_for(oom_killed, timeout=10)
            await trio.sleep_until(start + 21)
            supervisor = cluster.chaos.supervisor
            assert not supervisor.is_running(f"kubelet/{node}")
            assert cluster.machines.get(node).runtime.up  # containers keep running
            assert cluster.machines.get(node).kubelet.clock_skew == -30
            await trio.sleep_until(start + 51)
            assert supervisor.is_running(f"kubelet/{node}")
            assert cluster.machines.get(node).kubelet.clock_skew == 0
            await trio.sleep_until(start + 61)
            assert [t.key for t in cluster.get_nowait("Node", node).spec.taints] == ["k"]
            await trio.sleep_until(start + 91)
            assert cluster.get_nowait("Node", node).spec.taints == ()
            await trio.sleep_until(start + 101)
            assert cluster.get_nowait("Node", node).spec.unschedulable
            await cluster.wait_for(
                lambda: (
                    len(web_pods(cluster)) == 3
                    and all(p.spec.node_name not in ("", None, node) for p in web_pods(cluster))
                ),
                timeout=30,
            )
            await trio.sleep_until(start + 161)
            assert not cluster.get_nowait("Node", node).spec.unschedulable
            nursery.cancel_scope.cancel()
        assert [e.outcome for e in runner.injected] == ["injected"] * 5


async def test_a_skewed_clock_stamps_the_lease(autojump_clock):
    async with open_cluster(nodes=2, seed=1) as cluster:
        cluster.chaos.set_clock_skew("node-1", 3600)
        await trio.sleep(11)  # a lease renewal (every 10 s)
        leases = {
            lease.metadata.name: lease.spec.renew_time
            for lease in cluster.list_nowait("Lease", namespace="kube-node-lease")
        }
        assert (leases["node-1"] - leases["node-2"]).total_seconds() > 3500


async def test_heal_all_heals_every_outstanding_fault(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        faults = [
            Fault(at=1, kind="node-pause", target=Target(names=("node-1",))),
            Fault(at=1, kind="node-crash", target=Target(names=("node-2",))),
            Fault(at=1, kind="network-loss", params={"fraction": 1.0}),
            Fault(at=1, kind="store-latency", params={"latency": 2.0}),
            Fault(at=1, kind="controller-manager-crash"),
            Fault(at=1, kind="image-pull-failure", params={"image": "busybox"}),
            Fault(
                at=1,
                kind="probe-failure",
                target=Target(namespace="default", mode="all"),
                params={"probe": "liveness"},
            ),
            Fault(at=1, kind="node-taint", target=Target(names=("node-3",)), params={"key": "x"}),
        ]
        runner = ChaosRunner(cluster, schedule(*faults, end=30))
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await trio.sleep_until(runner.started_at + 29)
            assert len(runner.outstanding()) == len(faults)
            assert cluster.store.faults.active
            assert cluster.registry.spec("busybox").missing
        assert runner.outstanding() == []
        assert all(e.healed_at == runner.started_at + 30 for e in runner.injected)
        assert not cluster.store.faults.active
        assert not cluster.registry.spec("busybox").missing
        assert not cluster.machines.get("node-1").kubelet.paused
        assert cluster.machines.get("node-2").runtime.up
        assert cluster.get_nowait("Node", "node-3").spec.taints == ()
        await cluster.wait_for(
            lambda: cluster.chaos.supervisor.is_running("controller-manager"), timeout=5
        )
        await cluster.wait_for(lambda: ready_endpoints(cluster) == 3, timeout=300)


async def test_no_target_and_refused_faults_are_recorded_not_raised(autojump_clock):
    async with open_cluster(nodes=2, seed=1) as cluster:
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(at=1, kind="container-kill", target=Target(namespace="default")),
                Fault(at=2, kind="node-crash", target=Target(selector="role=db")),
                Fault(at=3, kind="store-errors", params={"fraction": 1.0, "verb": "update"}),
                Fault(at=4, kind="node-taint", target=Target(names=("node-1",))),
                end=10,
            ),
        )
        await runner.run()
        kill, crash, store, taint, heal = runner.injected
        assert (kill.outcome, kill.targets, kill.healed_at) == ("no-target", (), kill.at)
        assert crash.outcome == "no-target"
        assert store.outcome == "injected" and store.healed_at == heal.at
        assert taint.outcome == "failed"
        assert taint.message.startswith("injected fault: update nodes")


async def chaos_digest(seed: int) -> str:
    async with open_cluster(nodes=3, seed=seed) as cluster:
        await start_web(cluster)
        plan = generate_schedule(seed=seed, duration=600, intensity=3)
        await ChaosRunner(cluster, plan).run()
        await cluster.wait_for(lambda: ready_endpoints(cluster) == 3, timeout=600)
        await cluster.settle()
        return cluster.history_digest()


def replay(seed: int) -> str:
    """One chaos run in a fresh trio run (virtual time starts at 0 each time)."""
    return trio.run(chaos_digest, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_same_seed_replays_the_same_history_and_another_seed_differs():
    first = replay(1)
    assert replay(1) == first
    assert replay(2) != first


@pytest.mark.parametrize(
    ("kind", "params"),
    [("network-partition", {}), ("node-store-errors", {"error": "TooManyRequests"})],
)
async def test_a_node_cut_off_from_the_store_goes_unknown_and_comes_back(
    autojump_clock, kind, params
):
    async with open_cluster(nodes=3, seed=1) as cluster:
        await start_web(cluster)
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(at=5, kind=kind, target=Target(names=("node-1",)), params=params, duration=90)
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await cluster.wait_for(lambda: node_ready(cluster, "node-1") == "Unknown", timeout=70)
            assert node_ready(cluster, "node-2") == node_ready(cluster, "node-3") == "True"
            assert cluster.chaos.supervisor.is_running("kubelet/node-1")  # it retries
            await trio.sleep_until(runner.started_at + 95)
            await cluster.wait_for(lambda: node_ready(cluster, "node-1") == "True", timeout=15)
            nursery.cancel_scope.cancel()


async def test_store_latency_compact_and_close_watches(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster:
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(
                    at=5, kind="store-latency", params={"latency": 2.0, "verb": "get"}, duration=10
                ),
                Fault(at=20, kind="close-watches"),
                Fault(at=21, kind="compact"),
                end=30,
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            start = runner.started_at
            async with cluster.client.watch("ConfigMap", namespace="default") as events:
                await trio.sleep_until(start + 6)
                began = trio.current_time()
                await cluster.client.get("Namespace", "default")
                assert trio.current_time() - began == 2.0
                await trio.sleep_until(start + 16)
                began = trio.current_time()
                await cluster.client.get("Namespace", "default")
                assert trio.current_time() == began
                with pytest.raises(trio.EndOfChannel):
                    await events.receive_batch()  # closed at 20
            await trio.sleep_until(start + 22)
            with pytest.raises(errors.Gone):
                async with cluster.client.watch("ConfigMap", resource_version="1"):
                    pass


async def test_a_clock_set_back_stops_the_lease_looking_renewed(autojump_clock):
    # the node lifecycle controller counts a lease as renewed only when its renewTime
    # moves forward (Kubernetes' RenewTime.Before): a clock set back 2 minutes looks
    # like a silent kubelet until the clock is right again
    async with open_cluster(nodes=2, seed=1) as cluster:
        runner = ChaosRunner(
            cluster,
            schedule(
                Fault(
                    at=5,
                    kind="clock-skew",
                    target=Target(names=("node-1",)),
                    params={"offset": -120},
                    duration=90,
                ),
                end=200,
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await cluster.wait_for(lambda: node_ready(cluster, "node-1") == "Unknown", timeout=70)
            assert node_ready(cluster, "node-2") == "True"
            await trio.sleep_until(runner.started_at + 95)
            await cluster.wait_for(lambda: node_ready(cluster, "node-1") == "True", timeout=15)
            nursery.cancel_scope.cancel()
