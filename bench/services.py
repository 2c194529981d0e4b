"""Services at scale: requests routed through Service VIPs, and endpoint propagation.

1. **Routing**: S Services (1,000) with E endpoints each (10; 10,000 in all) spread over
   100 real serving pods on 10 nodes. Requests go from a node through its kube-proxy's
   table to a backend and back, through the simulated network: requests/s (wall), and
   the proxy's table lookup alone.
2. **Propagation**: N nodes (1,000), each with its kube-proxy watching every Service
   and Endpoints; one Endpoints object changes; wall and virtual time until every proxy
   routes to the new backend set (kube-proxy's 1 s minimum sync period applies only to a
   change following another within the second).

Run ``python bench/services.py`` (or ``--quick``). Prints one JSON line, then a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import structlog
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane import open_cluster
from controlplane.controllers.replicaset import ReplicaSetController


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
    }


def endpoints(name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "default"},
        "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 8080}]}],
    }


BACKENDS = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {"name": "backend", "namespace": "default"},
    "spec": {
        "replicas": 100,
        "selector": {"matchLabels": {"app": "backend"}},
        "template": {
            "metadata": {"labels": {"app": "backend"}},
            "spec": {
                "containers": [{"name": "app", "image": "srv", "ports": [{"containerPort": 8080}]}]
            },
        },
    },
}


async def routing(services: int, per_service: int, requests: int) -> dict[str, Any]:
    controllers = [(ReplicaSetController.name, ReplicaSetController)]
    async with open_cluster(nodes=10, seed=1, controllers=controllers) as cluster:
        await cluster.apply(BACKENDS)
        await cluster.wait_for(
            lambda: (
                cluster.get_nowait(
                    "ReplicaSet", "backend", namespace="default"
                ).status.ready_replicas
                == 100
            ),
            timeout=120,
        )
        pod_ips = sorted(p.status.pod_ip for p in cluster.list_nowait("Pod", namespace="default"))
        t0 = time.perf_counter()
        for i in range(services):
            ips = [pod_ips[(i * per_service + j) % len(pod_ips)] for j in range(per_service)]
            await cluster.apply([service(f"s{i}"), endpoints(f"s{i}", ips)])
        await cluster.settle()
        load_wall = time.perf_counter() - t0
        vips = [
            cluster.get_nowait("Service", f"s{i}", namespace="default").spec.cluster_ip
            for i in range(services)
        ]
        src = cluster.network.host("node-1").ip
        network = cluster.network
        t1 = time.perf_counter()
        for k in range(requests):
            await network.request(src, vips[k % services], 80, b"GET /")
        request_wall = time.perf_counter() - t1
        route = network._route  # the translator chain alone (the proxy's table)
        t2 = time.perf_counter()
        for k in range(requests):
            route(src, vips[k % services], 80)
        route_wall = time.perf_counter() - t2
        rules = cluster.machines.get("node-1").proxy.statistics().rules
    return {
        "services": services,
        "endpoints": services * per_service,
        "proxy_rules_per_node": rules,
        "load_and_sync_wall_s": round(load_wall, 2),
        "requests_per_s": round(requests / request_wall),
        "routes_per_s": round(requests / route_wall),
    }


async def propagation(nodes: int) -> dict[str, Any]:
    async with open_cluster(nodes=nodes, seed=2, controllers=()) as cluster:
        await cluster.apply([service("web"), endpoints("web", ["10.244.0.2"])])
        await cluster.settle()
        await trio.sleep(5)  # quiet: the next change syncs at once
        proxies = [cluster.machines.get(name).proxy for name in cluster.machines.names()]
        want = (("10.244.0.3", 8080),)
        t_virtual, t_wall = trio.current_time(), time.perf_counter()
        await cluster.apply(endpoints("web", ["10.244.0.3"]))
        await cluster.settle()  # counts until every proxy has applied what it saw
        wall = time.perf_counter() - t_wall
        assert all(p.backends("default", "web") == want for p in proxies)
        virtual = trio.current_time() - t_virtual
    return {"nodes": nodes, "propagation_wall_s": round(wall, 3), "propagation_virtual_s": virtual}


async def main(quick: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"bench": "services"}
    result.update(await routing(100 if quick else 1000, 10, 2000 if quick else 20_000))
    result.update(await propagation(100 if quick else 1000))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    r = trio.run(main, args.quick, clock=trio.testing.MockClock(autojump_threshold=0))
    print(json.dumps(r))
    rows = [
        ("services / endpoints", f"{r['services']:,} / {r['endpoints']:,}"),
        ("proxy rules per node", f"{r['proxy_rules_per_node']:,}"),
        ("requests/s through a Service VIP (wall)", f"{r['requests_per_s']:,}"),
        ("proxy table lookups/s", f"{r['routes_per_s']:,}"),
        (f"endpoint change -> all {r['nodes']:,} proxies, wall", f"{r['propagation_wall_s']} s"),
        ("same, virtual", f"{r['propagation_virtual_s']} s"),
        ("peak RSS", f"{r['peak_rss_mb']:.0f} MB"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
