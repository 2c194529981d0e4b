"""Scenarios: traffic to a Service through DNS, kube-proxy and the simulated network."""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio

from controlplane import open_cluster
from controlplane.proxy import ProxyConfig


def app(warmup: float = 0.0, drain: float = 5.0) -> Any:
    """A server that listens only ``warmup`` seconds after it starts (a readiness probe
    fails until then), and on SIGTERM says it is not ready but keeps serving for
    ``drain`` seconds (a graceful shutdown), answering ``<sandbox>/<container>``."""

    async def program(ctx: Any) -> None:
        await trio.sleep(warmup)
        answer = f"{ctx.sandbox}/{ctx.name}".encode()
        ctx.listen(8080, lambda payload, src: answer)
        await ctx.terminating.wait()
        ctx.set_ready(False)
        await trio.sleep(drain)

    return program


def deployment(image: str, replicas: int = 3, *, probe: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": image,
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    if probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
        },
    }


def service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            **spec,
        },
    }


def ready_endpoints(cluster: Any) -> int:
    e = cluster.get_nowait("Endpoints", "web", namespace="default")
    return sum(len(s.addresses) for s in e.subsets) if e is not None else 0


async def serve(cluster: Any, replicas: int = 3, **service_spec: Any) -> Any:
    for tag in ("1", "2"):
        cluster.registry.add(f"example.com/app:{tag}", program=app(warmup=5))
    await cluster.apply([deployment("example.com/app:1", replicas), service(**service_spec)])
    await cluster.wait_for(lambda: ready_endpoints(cluster) == replicas, timeout=120)
    await cluster.settle()  # every proxy has the endpoints
    return cluster.get_nowait("Service", "web", namespace="default")


def unchanged(cluster: Any, before: Any) -> bool:
    now = cluster.get_nowait("Service", "web", namespace="default")
    return (now.metadata.uid, now.spec.cluster_ip) == (before.metadata.uid, before.spec.cluster_ip)


async def test_random_balancing_spreads_3000_requests_within_ten_percent(autojump_clock):
    async with open_cluster(nodes=3, seed=61) as cluster:
        svc = await serve(cluster)
        counts = Counter()
        for _ in range(3000):
            response = await cluster.request("web", 80, b"GET /")
            assert response.ok, response
            counts[response.backend] += 1
        assert len(counts) == 3 and all(900 <= n <= 1100 for n in counts.values()), counts
        assert unchanged(cluster, svc)


async def test_round_robin_is_exactly_even_and_client_ip_affinity_pins(autojump_clock):
    config = ProxyConfig(mode="round-robin")
    async with open_cluster(nodes=3, seed=62, proxy_config=config) as cluster:
        await serve(cluster)
        counts = Counter()
        for _ in range(3000):
            counts[(await cluster.request("web.default.svc.cluster.local", 80, b"x")).backend] += 1
        assert sorted(counts.values()) == [1000, 1000, 1000]
    async with open_cluster(nodes=3, seed=63) as cluster:
        await serve(cluster, sessionAffinity="ClientIP")
        from_node_1 = {
            (await cluster.request("web", 80, b"x", via="node-1")).backend for _ in range(200)
        }
        from_node_2 = {
            (await cluster.request("web", 80, b"x", via="node-2")).backend for _ in range(200)
        }
        assert len(from_node_1) == 1 and len(from_node_2) == 1


async def rollout_under_load(seed: int, *, probe: bool) -> tuple[Any, Any, bool]:
    async with open_cluster(nodes=3, seed=seed) as cluster, trio.open_nursery() as nursery:
        for tag in ("1", "2"):
            cluster.registry.add(f"example.com/app:{tag}", program=app(warmup=5))
        await cluster.apply([deployment("example.com/app:1", probe=probe), service()])
        await cluster.wait_for(
            lambda: (
                ready_endpoints(cluster) == 3
                and all(
                    p.status.phase == "Running"
                    for p in cluster.list_nowait("Pod", namespace="default")
                )
            ),
            timeout=120,
        )
        await trio.sleep(10)  # warmed up
        await cluster.settle()
        svc = cluster.get_nowait("Service", "web", namespace="default")
        load = cluster.load_generator("web", 80, rate=20, timeout=2)
        await nursery.start(load.run)
        await trio.sleep(5)
        await cluster.apply(deployment("example.com/app:2", probe=probe))

        def rolled_out() -> bool:
            d = cluster.get_nowait("Deployment", "web", namespace="default")
            return (
                d.status.updated_replicas == d.status.replicas == d.status.available_replicas == 3
            )

        await cluster.wait_for(rolled_out, timeout=300)
        await trio.sleep(30)  # the old pods drain and go
        load.stop()
        stats = load.statistics()
        nursery.cancel_scope.cancel()
        return stats, load.results, unchanged(cluster, svc)


async def test_a_rolling_update_with_readiness_probes_loses_no_request(autojump_clock):
    stats, results, same = await rollout_under_load(64, probe=True)
    assert stats.sent > 500 and stats.failed == 0, stats
    assert len({r.backend for r in results}) == 6  # three old pods, then three new
    assert same


async def test_without_readiness_probes_the_rollout_fails_requests(autojump_clock):
    # new pods count as ready while they are still warming up: the proxies send them
    # requests they refuse
    stats, _, same = await rollout_under_load(64, probe=False)
    assert stats.failed > 0 and set(stats.errors) == {"ConnectionRefused"}, stats
    assert same


async def test_a_dead_backend_node_fails_requests_until_endpoints_drop_its_pod(autojump_clock):
    async with open_cluster(nodes=3, seed=65) as cluster, trio.open_nursery() as nursery:
        svc = await serve(cluster)
        pods = cluster.list_nowait("Pod", namespace="default")
        assert len({p.spec.node_name for p in pods}) == 3  # spread over the nodes
        load = cluster.load_generator("web", 80, rate=10, timeout=1, via="node-1")
        await nursery.start(load.run)
        await trio.sleep(10)
        killed_at = trio.current_time()
        cluster.chaos.crash_node("node-3")
        await cluster.wait_for(lambda: ready_endpoints(cluster) == 2, timeout=120)
        await trio.sleep(60)
        load.stop()
        failures = [r for r in load.results if not r.ok]
        assert failures and all(r.start >= killed_at for r in failures)
        last_failure = max(r.start for r in failures)
        recovery = last_failure - killed_at
        # the node is Unknown after 40 s and its pods leave the endpoints then
        assert 40 <= recovery <= 50, recovery
        assert all(r.ok for r in load.results if r.start > last_failure + 1)
        print(f"time to recover after the node died: {recovery:.1f} s")
        assert unchanged(cluster, svc)
        nursery.cancel_scope.cancel()


async def test_a_headless_service_resolves_to_its_ready_pods(autojump_clock):
    async with open_cluster(nodes=2, seed=66) as cluster:
        await serve(cluster, replicas=2, clusterIP="None")
        svc = cluster.get_nowait("Service", "web", namespace="default")
        assert svc.spec.cluster_ip == "None"
        pod_ips = sorted(p.status.pod_ip for p in cluster.list_nowait("Pod", namespace="default"))
        assert sorted(cluster.dns.resolve("web.default.svc.cluster.local")) == pod_ips
        # no proxy involved: the name resolves straight to a pod, on its container port
        response = await cluster.request("web", 8080, b"x")
        assert response.ok and response.backend.startswith("web-")
        unknown = await cluster.request("missing", 80, b"x")
        assert (unknown.ok, unknown.error) == (False, "NameNotFound")


async def test_bad_session_affinity_config_is_invalid(cluster):
    import pytest

    from controlplane import errors

    for spec, field in (
        (
            {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}},
            },
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        ),
        (
            {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}},
            "spec.sessionAffinityConfig",
        ),
    ):
        with pytest.raises(errors.Invalid) as info:
            await cluster.apply(service(**spec))
        assert [c.field for c in info.value.causes] == [field]
    assert cluster.get_nowait("Service", "web", namespace="default") is None
