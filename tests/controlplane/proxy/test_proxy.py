"""kube-proxy in a real cluster: requests to a Service's clusterIP or a nodePort reach
ready pods, fail over when endpoints change, are refused without endpoints, and keep
following a paused node's stale table. Services and Endpoints are written by hand (the
tests run without controllers), clusterIPs are given explicitly."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import structlog.testing
import trio

from actors import ChildState
from controlplane import open_cluster
from controlplane.proxy import REJECT_PORT, ProxyConfig
from runtime.network import ConnectionRefused, HostUnreachable

VIP = "10.96.0.10"


def pod(name: str, *, port: int = 8080) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "nginx:1.27", "ports": [{"containerPort": port}]}
            ]
        },
    }


def service(
    name: str = "web", *, cluster_ip: str = VIP, type_: str = "ClusterIP", **spec: Any
) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "targetPort": 8080}
    if type_ == "NodePort":
        port["nodePort"] = 30080
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "type": type_, "ports": [port], **spec},
    }


def endpoints(
    ips: list[str], *, name: str = "web", not_ready: tuple[str, ...] = (), port_name: str = ""
) -> dict[str, Any]:
    subset: dict[str, Any] = {
        "ports": [{"port": 8080, **({"name": port_name} if port_name else {})}]
    }
    if ips:
        subset["addresses"] = [{"ip": ip} for ip in ips]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "default"},
        "subsets": [subset] if ips or not_ready else [],
    }


async def start_pods(cluster: Any, names: list[str]) -> dict[str, str]:
    """Run the pods; return ``{pod ip: pod name}``."""
    await cluster.apply([pod(n) for n in names])

    def all_running() -> Any:
        pods = [cluster.get_nowait("Pod", n, namespace="default") for n in names]
        if all(p is not None and p.status.phase == "Running" and p.status.pod_ip for p in pods):
            return {p.status.pod_ip: p.metadata.name for p in pods}
        return None

    return await cluster.wait_for(all_running, timeout=60)


def answered_by(response: bytes) -> str:
    """The pod that answered (the fake runtime answers ``<sandbox>/<container>``)."""
    sandbox = response.decode().split("/")[0]
    return next(part for part in ("web-0", "web-1", "web-2") if part in sandbox)


def host_ip(cluster: Any, node: str) -> str:
    return cluster.network.host(node).ip


async def spread(cluster: Any, src: str, n: int, *, dst: str = VIP, port: int = 80) -> Counter:
    return Counter(
        [answered_by(await cluster.network.request(src, dst, port, b"GET /")) for _ in range(n)]
    )


async def web_service(cluster: Any, names: list[str], **spec: Any) -> dict[str, str]:
    ips = await start_pods(cluster, names)
    await cluster.apply([service(**spec), endpoints(list(ips))])
    await cluster.settle()
    return ips


async def test_requests_to_the_cluster_ip_reach_every_ready_backend(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        ips = await web_service(cluster, ["web-0", "web-1", "web-2"])
        pod_on_node_1 = next(
            p.status.pod_ip
            for p in cluster.list_nowait("Pod", namespace="default")
            if p.spec.node_name == "node-1"
        )
        # from a pod and from each node's own address
        for src in (pod_on_node_1, host_ip(cluster, "node-1"), host_ip(cluster, "node-2")):
            counts = await spread(cluster, src, 300)
            assert set(counts) == set(ips.values())
            assert all(70 <= n <= 130 for n in counts.values())
        for node in ("node-1", "node-2"):
            stats = cluster.machines.get(node).proxy.statistics()
            # web (a jump, 3 backends) and default/kubernetes (a jump and a REJECT: the
            # apiserver's endpoints are not modelled)
            assert stats.services == 2 and stats.rules == 1 + 3 + 2
            assert stats.syncs >= 1 and stats.last_sync is not None and stats.pending == 0
            assert cluster.machines.get(node).proxy.backends("default", "web") == tuple(
                (ip, 8080) for ip in ips
            )


async def test_a_removed_endpoint_gets_no_more_requests(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        ips = await web_service(cluster, ["web-0", "web-1", "web-2"])
        gone = next(ip for ip, name in ips.items() if name == "web-1")
        await cluster.apply(endpoints([ip for ip in ips if ip != gone]))
        await cluster.settle()
        counts = await spread(cluster, host_ip(cluster, "node-1"), 200)
        assert set(counts) == {"web-0", "web-2"}


async def test_no_ready_endpoint_refuses_and_a_ready_one_is_used_at_once(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        ips = await start_pods(cluster, ["web-0"])
        (ip,) = ips
        await cluster.apply([service(), endpoints([], not_ready=(ip,))])
        await cluster.settle()
        src = host_ip(cluster, "node-2")
        with pytest.raises(ConnectionRefused):
            await cluster.network.request(src, VIP, 80, b"x")
        # the harness sees the same REJECT through route()
        proxy = cluster.machines.get("node-2").proxy
        assert proxy.route("203.0.113.5", VIP, 80) == (src, REJECT_PORT)
        await cluster.apply(endpoints([ip]))
        await cluster.settle()
        assert answered_by(await cluster.network.request(src, VIP, 80, b"x")) == "web-0"
        # the service is deleted: its address is no longer anything
        await cluster.client.delete("Service", "web", namespace="default")
        await cluster.settle()
        with pytest.raises(HostUnreachable):
            await cluster.network.request(src, VIP, 80, b"x")
        assert proxy.statistics().services == 1  # default/kubernetes


async def test_node_port_is_served_on_every_node_from_outside(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        ips = await web_service(cluster, ["web-0", "web-1"], type_="NodePort")
        outside = "203.0.113.5"  # not on any host
        for node in ("node-1", "node-2"):
            counts = await spread(cluster, outside, 100, dst=host_ip(cluster, node), port=30080)
            assert set(counts) == set(ips.values())
        # the clusterIP is not routable from outside the nodes (no node's proxy sees it)
        with pytest.raises(HostUnreachable):
            await cluster.network.request(outside, VIP, 80, b"x")
        # ... unless the harness routes it through a node's proxy
        backend = cluster.machines.get("node-1").proxy.route(outside, VIP, 80)
        assert backend is not None and backend[0] in ips
        # a port that is no nodePort on a node IP is left alone
        assert (
            cluster.machines.get("node-1").proxy.route(outside, host_ip(cluster, "node-1"), 30081)
            is None
        )


async def test_client_ip_affinity_pins_each_client(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        await web_service(cluster, ["web-0", "web-1", "web-2"], sessionAffinity="ClientIP")
        for node in ("node-1", "node-2"):
            counts = await spread(cluster, host_ip(cluster, node), 50)
            assert len(counts) == 1


async def test_round_robin_mode_is_exactly_even(autojump_clock):
    async with open_cluster(nodes=0, seed=1, controllers=[]) as cluster:
        cluster.machines.proxy_config = ProxyConfig(mode="round-robin")
        await cluster.add_node("node-1")
        await cluster.add_node("node-2")
        await web_service(cluster, ["web-0", "web-1", "web-2"])
        counts = await spread(cluster, host_ip(cluster, "node-1"), 300)
        assert counts == Counter({"web-0": 100, "web-1": 100, "web-2": 100})


async def test_a_paused_node_keeps_routing_with_its_stale_table(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        ips = await web_service(cluster, ["web-0", "web-1", "web-2"])
        gone = next(ip for ip, name in ips.items() if name == "web-1")
        cluster.chaos.pause_node("node-1")
        await cluster.apply(endpoints([ip for ip in ips if ip != gone]))
        await cluster.settle()
        paused = cluster.machines.get("node-1").proxy
        assert paused.statistics().paused and paused.statistics().pending == 1
        # node-1 still sends to web-1 (its pod still serves); node-2 no longer does
        assert "web-1" in await spread(cluster, host_ip(cluster, "node-1"), 100)
        assert "web-1" not in await spread(cluster, host_ip(cluster, "node-2"), 100)
        await trio.sleep(600)  # however long it hangs
        assert "web-1" in await spread(cluster, host_ip(cluster, "node-1"), 100)
        cluster.chaos.resume_node("node-1")
        await cluster.settle()
        assert "web-1" not in await spread(cluster, host_ip(cluster, "node-1"), 100)
        assert paused.statistics().pending == 0


async def test_changes_are_applied_at_most_once_per_min_sync_period(autojump_clock):
    async with open_cluster(nodes=1, seed=1, controllers=[]) as cluster:
        ips = await web_service(cluster, ["web-0", "web-1"])
        proxy = cluster.machines.get("node-1").proxy
        first, second = list(ips)
        await trio.sleep(5)
        await cluster.apply(endpoints([first]))
        await trio.testing.wait_all_tasks_blocked()
        applied = proxy.statistics().last_sync
        assert proxy.backends("default", "web") == ((first, 8080),)  # at once after quiet
        await cluster.apply(endpoints([second]))
        await trio.testing.wait_all_tasks_blocked()
        assert proxy.backends("default", "web") == ((first, 8080),)  # within 1 s: held
        await cluster.settle()
        assert proxy.backends("default", "web") == ((second, 8080),)
        assert proxy.statistics().last_sync == pytest.approx(applied + 1.0)


async def test_a_crashed_node_loses_its_rules_and_rebuilds_them_on_restart(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        ips = await web_service(cluster, ["web-0", "web-1"])
        proxy = cluster.machines.get("node-1").proxy
        cluster.chaos.crash_node("node-1")
        await trio.testing.wait_all_tasks_blocked()
        state = {c.name: c.state for c in cluster.chaos.supervisor.children()}
        assert state["proxy/node-1"] is ChildState.STOPPED
        assert proxy.statistics().services == 0 and proxy.route("c", VIP, 80) is None
        cluster.chaos.restart_node("node-1")
        # web and default/kubernetes
        await cluster.wait_for(lambda: proxy.statistics().services == 2, timeout=30)
        await cluster.settle()
        # the table is rebuilt from what the (hand-written) Endpoints say
        assert proxy.backends("default", "web") == tuple((ip, 8080) for ip in ips)
        assert cluster.chaos.supervisor.is_running("proxy/node-1")


async def test_odd_services_and_endpoints_never_crash_the_proxy(autojump_clock):
    async with open_cluster(nodes=1, seed=1, controllers=[]) as cluster:
        ips = await start_pods(cluster, ["web-0"])
        (ip,) = ips
        await cluster.apply(
            [
                # headless: not proxied
                service("headless", cluster_ip="None"),
                endpoints([ip], name="headless"),
                # ExternalName: not proxied
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "ext", "namespace": "default"},
                    "spec": {"type": "ExternalName", "externalName": "db.example.com"},
                },
                # selector-less service whose hand-made Endpoints name an unknown port
                service("byhand", cluster_ip="10.96.0.11"),
                endpoints([ip], name="byhand", port_name="nope"),
                # Endpoints without a Service
                endpoints([ip], name="orphan"),
                # a good one
                service("web"),
                endpoints([ip]),
            ]
        )
        await cluster.settle()
        proxy = cluster.machines.get("node-1").proxy
        src = host_ip(cluster, "node-1")
        with pytest.raises(ConnectionRefused):
            await cluster.network.request(src, "10.96.0.11", 80, b"x")
        assert answered_by(await cluster.network.request(src, VIP, 80, b"x")) == "web-0"
        assert proxy.statistics().services == 3  # byhand, web and default/kubernetes
        (child,) = [c for c in cluster.chaos.supervisor.children() if c.name == "proxy/node-1"]
        assert child.state is ChildState.RUNNING and child.restarts == 0


def test_proxy_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"^mode: must be 'random' or 'round-robin', got 'ipvs'$"):
        ProxyConfig(mode="ipvs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^min_sync_period: must be >= 0, got -1$"):
        ProxyConfig(min_sync_period=-1)


async def test_each_sync_is_logged_and_waitable(autojump_clock):
    async with open_cluster(nodes=1, seed=1, controllers=[]) as cluster:
        proxy = cluster.machines.get("node-1").proxy
        await proxy.wait_synced()  # synced at start: returns at once
        before = proxy.statistics().syncs
        with structlog.testing.capture_logs() as logs:
            await cluster.apply([service(), endpoints(["10.244.0.99"])])
            await cluster.settle()
        synced = [e for e in logs if e["event"] == "proxy_synced"]
        # web: a jump and a backend; default/kubernetes: a jump and a REJECT (no endpoints)
        assert synced and synced[-1]["node"] == "node-1" and synced[-1]["rules"] == 4
        assert proxy.statistics().syncs > before


async def test_a_removed_node_stops_serving_its_node_port(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=[]) as cluster:
        await web_service(cluster, ["web-0", "web-1"], type_="NodePort")
        node_2 = host_ip(cluster, "node-2")
        proxy = cluster.machines.get("node-2").proxy
        assert proxy.route("203.0.113.5", node_2, 30080) is not None
        await cluster.remove_node("node-2")
        assert proxy.statistics().services == 0
        assert "proxy/node-2" not in cluster.chaos.supervisor.child_names()
        with pytest.raises(HostUnreachable):
            await cluster.network.request("203.0.113.5", node_2, 30080, b"x")


async def test_with_the_endpoints_controller_a_deleted_pod_leaves_the_rotation(autojump_clock):
    from controlplane.controllers.endpoints import EndpointsController

    controllers = [("endpoint-controller", EndpointsController)]
    async with open_cluster(nodes=2, seed=1, controllers=controllers) as cluster:
        await start_pods(cluster, ["web-0", "web-1", "web-2"])
        await cluster.apply(service(selector={"app": "web"}))
        await cluster.settle()
        counts = await spread(cluster, host_ip(cluster, "node-1"), 300)
        assert set(counts) == {"web-0", "web-1", "web-2"}
        await cluster.client.delete("Pod", "web-1", namespace="default")
        await cluster.settle()
        counts = await spread(cluster, host_ip(cluster, "node-2"), 300)
        assert set(counts) == {"web-0", "web-2"}
