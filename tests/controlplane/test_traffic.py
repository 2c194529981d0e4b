"""Requests from the harness and from pods, and the load generator, in a real cluster
(virtual time): outcomes, latency under network faults, failures when the backend goes
away, names through a resolver, determinism."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from controlplane import open_cluster
from controlplane.kubelet.dns import cluster_search, pod_dns_search
from controlplane.traffic import (
    LoadGenerator,
    LoadStatistics,
    Response,
    Sample,
    backend_of,
    percentile,
    request,
)
from runtime.network import NameNotFound, Network
from runtime.programs import ProgramContext

SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")


def pod(name: str, *, image: str = "nginx:1.27", namespace: str = "default", **spec: Any) -> Any:
    container = {"name": "main", "image": image, "ports": [{"containerPort": 80}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container], **spec},
    }


async def running_ip(cluster: Any, name: str, namespace: str = "default") -> str:
    def ready() -> str | None:
        p = cluster.get_nowait("Pod", name, namespace=namespace)
        statuses = p.status.container_statuses if p is not None else ()
        return p.status.pod_ip if statuses and statuses[0].ready else None

    return await cluster.wait_for(ready, timeout=60)


def node_ip(cluster: Any, node: str = "node-1") -> str:
    return cluster.network.host(node).ip


def table(records: dict[str, list[str]]) -> Any:
    def resolve(fqdn: str) -> list[str]:
        try:
            return records[fqdn]
        except KeyError:
            raise NameNotFound(f"name not found: {fqdn!r}") from None

    return resolve


# ----- pure parts -----


@pytest.mark.parametrize(
    ("body", "backend"),
    [
        (b"default_web-0_0f2c9a/main", "web-0"),
        (b"team_api-7d9f-x2k4p_1234-abcd/server", "api-7d9f-x2k4p"),
        (b"sandbox-1/main", "sandbox-1"),  # not the kubelet's naming: the sandbox name
        (b"hello", None),
        (b"/main", None),
        (b"web/", None),
        (b"a/b/c", None),
        (b"\xff\xfe/main", None),
        (b"web\n/main", None),
        (b"", None),
    ],
)
def test_backend_is_read_from_the_default_answer(body: bytes, backend: str | None) -> None:
    assert backend_of(body) == backend


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0], 99) == 1.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_pod_dns_search_follows_dns_policy() -> None:
    from controlplane.api import from_dict

    def make(**spec: Any) -> Any:
        return from_dict(pod("p", namespace="team", **spec))

    cluster_first = ("team.svc.cluster.local", "svc.cluster.local", "cluster.local")
    assert pod_dns_search(make()) == cluster_first
    assert pod_dns_search(make(dnsPolicy="ClusterFirst")) == cluster_first
    assert pod_dns_search(make(dnsPolicy="Default")) == ()
    assert pod_dns_search(make(dnsPolicy="None")) == ()
    assert pod_dns_search(make(dnsPolicy="ClusterFirst", hostNetwork=True)) == ()
    assert pod_dns_search(make(dnsPolicy="ClusterFirstWithHostNet", hostNetwork=True)) == (
        cluster_first
    )
    assert cluster_search("default") == SEARCH
    assert pod_dns_search(make(), "corp.example") == (
        "team.svc.corp.example",
        "svc.corp.example",
        "corp.example",
    )


def test_load_generator_rejects_bad_arguments() -> None:
    net = Network(__import__("random").Random(0))
    cases = [
        ({"rate": 0}, r"^rate: must be a positive number of requests per second, got 0$"),
        ({"rate": float("inf")}, r"^rate: must be a positive"),
        ({"rate": 1, "count": -1}, r"^count: must be a non-negative integer, got -1$"),
        ({"rate": 1, "duration": -2}, r"^duration: must be >= 0 seconds, got -2$"),
        ({"rate": 1, "timeout": 0}, r"^timeout: must be > 0 seconds, got 0$"),
        ({"rate": 1, "max_in_flight": 0}, r"^max_in_flight: must be a positive integer, got 0$"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            LoadGenerator(net, "web", 80, src_ip="172.16.0.1", **kwargs)


# ----- single requests from the harness -----


async def test_requests_reach_a_pod_and_say_who_answered(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1) as cluster:
        await cluster.apply(pod("web-0"))
        ip = await running_ip(cluster, "web-0")
        uid = cluster.get_nowait("Pod", "web-0", namespace="default").metadata.uid
        response = await request(cluster.network, ip, 80, b"GET /", src_ip=node_ip(cluster))
        assert response == Response(True, f"default_web-0_{uid}/main".encode(), None, 0.0, "web-0")

        # by name, through a resolver (what ClusterDNS plugs into)
        cluster.network.set_resolver(table({"web.default.svc.cluster.local": [ip]}))
        for host in ("web", "web.default", "web.default.svc.cluster.local."):
            response = await request(
                cluster.network, host, 80, b"", src_ip=node_ip(cluster), search=SEARCH
            )
            assert (response.ok, response.backend) == (True, "web-0"), host


async def test_failed_requests_say_why(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1) as cluster:
        await cluster.apply(pod("web-0"))
        ip = await running_ip(cluster, "web-0")
        node = cluster.get_nowait("Pod", "web-0", namespace="default").spec.node_name
        src = node_ip(cluster, "node-2" if node == "node-1" else "node-1")
        net = cluster.network

        refused = await request(net, ip, 81, b"", src_ip=src)
        assert refused == Response(
            False, None, "ConnectionRefused", 0.0, None, detail=f"connection refused: {ip}:81"
        )
        unreachable = await request(net, "10.244.9.9", 80, b"", src_ip=src)
        assert (unreachable.error, unreachable.detail) == (
            "HostUnreachable",
            "no route to host 10.244.9.9",
        )
        unknown = await request(net, "nope", 80, b"", src_ip=src, search=SEARCH)
        assert (unknown.ok, unknown.error) == (False, "NameNotFound")
        bad = await request(net, "bad..name", 80, b"", src_ip=src, search=SEARCH)
        assert bad.detail == "invalid name 'bad..name': empty label"

        fault = net.partition(node)
        start = trio.current_time()
        lost = await request(net, ip, 80, b"", src_ip=src, timeout=2.5)
        assert (lost.error, lost.latency, trio.current_time() - start) == (
            "NetworkTimeout",
            2.5,
            2.5,
        )
        fault.remove()
        assert (await request(net, ip, 80, b"", src_ip=src)).ok


async def test_a_program_in_a_pod_finds_a_service_in_its_own_namespace(autojump_clock) -> None:
    answers: list[str] = []

    async def client(ctx: ProgramContext) -> None:
        answers.append((await ctx.request("web", 80, b"hi")).decode())
        await ctx.terminating.wait()

    async with open_cluster(nodes=2, seed=1) as cluster:
        cluster.registry.add("client", program=client)
        await cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        await cluster.apply(pod("web-0", namespace="team"))
        ip = await running_ip(cluster, "web-0", namespace="team")
        cluster.network.set_resolver(table({"web.team.svc.cluster.local": [ip]}))
        await cluster.apply(pod("client", image="client", namespace="team"))
        await running_ip(cluster, "client", namespace="team")
        await cluster.wait_for(lambda: answers, timeout=10)
        assert answers[0].startswith("team_web-0_") and answers[0].endswith("/main")
        node = cluster.get_nowait("Pod", "client", namespace="team").spec.node_name
        boxes = cluster.machines.get(node).runtime.list_sandboxes()
        (box,) = [b for b in boxes if b.name.startswith("team_client_")]
        assert box.dns_search == ("team.svc.cluster.local", "svc.cluster.local", "cluster.local")


# ----- the load generator -----


async def test_load_generator_paces_and_records(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1) as cluster:
        await cluster.apply(pod("web-0"))
        ip = await running_ip(cluster, "web-0")
        gen = LoadGenerator(cluster.network, ip, 80, rate=20, count=50, src_ip=node_ip(cluster))
        t0 = trio.current_time()
        await gen.run()
        assert trio.current_time() - t0 == pytest.approx(49 / 20)
        results = gen.results
        assert [s.seq for s in results] == list(range(50))
        assert [s.start - t0 for s in results] == pytest.approx([i / 20 for i in range(50)])
        assert results[3] == Sample(3, results[3].start, True, None, 0.0, "web-0")
        assert gen.statistics() == LoadStatistics(
            sent=50,
            ok=50,
            failed=0,
            in_flight=0,
            late=0,
            errors={},
            backends={"web-0": 50},
            p50=0.0,
            p99=0.0,
        )
        with pytest.raises(RuntimeError, match=r"^this load generator has already run"):
            await gen.run()


async def test_latency_under_a_delay_fault_and_overlapping_requests(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1) as cluster:
        await cluster.apply(pod("web-0"))
        ip = await running_ip(cluster, "web-0")
        node = cluster.get_nowait("Pod", "web-0", namespace="default").spec.node_name
        cluster.network.delay(0.75, dst=node)  # requests in: +0.75 s
        cluster.network.delay(0.25, src=node)  # answers out: +0.25 s
        src = node_ip(cluster, "node-2" if node == "node-1" else "node-1")
        gen = LoadGenerator(cluster.network, ip, 80, rate=10, duration=3, src_ip=src)
        async with trio.open_nursery() as nursery:
            await nursery.start(gen.run)
            await trio.sleep(0.55)
            mid = gen.statistics()
            assert (mid.sent, mid.ok, mid.in_flight) == (6, 0, 6)  # overlapping, none done
        stats = gen.statistics()
        assert (stats.sent, stats.ok, stats.late) == (30, 30, 0)
        assert stats.p50 == pytest.approx(1.0) and stats.p99 == pytest.approx(1.0)

        # with at most 2 open at once, the generator falls behind instead of queueing
        slow = LoadGenerator(
            cluster.network, ip, 80, rate=10, count=10, src_ip=src, max_in_flight=2
        )
        t0 = trio.current_time()
        await slow.run()
        stats = slow.statistics()
        assert (stats.sent, stats.ok, stats.late) == (10, 10, 8)
        # two at a time: the last one is sent at 4.1 s and answered at 5.1 s
        assert trio.current_time() - t0 == pytest.approx(5.1)
        assert [s.start - t0 for s in slow.results][-2:] == pytest.approx([4.0, 4.1])


async def test_deleting_the_backend_mid_run_counts_failures(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1) as cluster:
        await cluster.apply(pod("web-0"))
        ip = await running_ip(cluster, "web-0")
        gen = LoadGenerator(cluster.network, ip, 80, rate=10, duration=60, src_ip=node_ip(cluster))
        async with trio.open_nursery() as nursery:
            await nursery.start(gen.run)
            await trio.sleep(10)
            deleted_at = trio.current_time()
            await cluster.client.delete("Pod", "web-0", namespace="default")
        stats = gen.statistics()
        assert stats.sent == 600 and stats.in_flight == 0
        assert stats.ok >= 100 and stats.failed > 0
        assert set(stats.errors) <= {"ConnectionRefused", "HostUnreachable"}
        assert "HostUnreachable" in stats.errors  # the sandbox and its address are gone
        assert all(s.start <= deleted_at for s in gen.results if s.ok)
        assert stats.backends == {"web-0": stats.ok}


async def test_stop_drains_and_cancel_abandons(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1) as cluster:
        await cluster.apply(pod("web-0"))
        ip = await running_ip(cluster, "web-0")
        cluster.network.delay(1.0)
        gen = LoadGenerator(cluster.network, ip, 80, rate=4, src_ip=node_ip(cluster))
        async with trio.open_nursery() as nursery:
            await nursery.start(gen.run)
            await trio.sleep(0.9)
            gen.stop()
            gen.stop()  # idempotent
        stats = gen.statistics()
        assert (stats.sent, stats.ok, stats.in_flight) == (4, 4, 0)  # in flight finished

        abandoned = LoadGenerator(cluster.network, ip, 80, rate=4, src_ip=node_ip(cluster))
        async with trio.open_nursery() as nursery:
            await nursery.start(abandoned.run)
            await trio.sleep(2.9)
            nursery.cancel_scope.cancel()
        stats = abandoned.statistics()
        assert (stats.sent, stats.ok, stats.in_flight) == (12, 4, 8)


async def _scenario(seed: int) -> tuple[list[Sample], LoadStatistics]:
    """Two pods behind one name (a headless service's answer), lossy network."""
    async with open_cluster(nodes=2, seed=seed) as cluster:
        await cluster.apply(pod("web-0"))
        await cluster.apply(pod("web-1"))
        ips = [await running_ip(cluster, "web-0"), await running_ip(cluster, "web-1")]
        cluster.network.set_resolver(table({"web.default.svc.cluster.local": ips}))
        cluster.network.drop(0.1)
        gen = LoadGenerator(
            cluster.network,
            "web",
            80,
            rate=50,
            count=200,
            timeout=1,
            src_ip=node_ip(cluster),
            search=SEARCH,
        )
        await gen.run()
        assert gen.started_at is not None
        t0 = gen.started_at
        # Relative to the start (each run starts later on the clock), rounded: floats.
        samples = [
            attrs.evolve(s, start=round(s.start - t0, 9), latency=round(s.latency, 9))
            for s in gen.results
        ]
        return samples, gen.statistics()


async def test_same_seed_same_results(autojump_clock) -> None:
    first, stats = await _scenario(1)
    again, _ = await _scenario(1)
    other, _ = await _scenario(2)
    assert first == again
    assert first != other
    assert stats.sent == 200 and set(stats.errors) == {"NetworkTimeout"}
    assert set(stats.backends) == {"web-0", "web-1"}
    assert all(s.latency == 1.0 for s in first if not s.ok)
