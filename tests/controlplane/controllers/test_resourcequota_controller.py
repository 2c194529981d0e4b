"""The resource quota controller in a whole cluster (virtual time), with the LimitRanger
and ResourceQuota admission steps: status.hard follows spec, status.used is the true
usage after creates, deletes, completions, lost nodes and the periodic resync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from controlplane import errors, open_cluster, quota
from controlplane.api import from_dict
from controlplane.api.quantity import Quantity
from controlplane.clock import to_wall
from controlplane.controllers.resourcequota import (
    RESYNC_PERIOD,
    ResourceQuotaController,
    next_grace_expiry,
)

CONTROLLERS = [("resourcequota-controller", ResourceQuotaController)]


@asynccontextmanager
async def quota_cluster(*, admission: bool = True, nodes: int = 2) -> AsyncIterator[Any]:
    # the default admission chain has LimitRanger and ResourceQuota
    steps = None if admission else (lambda store: ())
    async with open_cluster(
        nodes=nodes, seed=1, controllers=CONTROLLERS, admission=steps
    ) as cluster:
        yield cluster


def pod(name: str, cpu: str | None = "100m", **spec: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": spec.pop("image", "nginx")}
    if "command" in spec:
        c["command"] = spec.pop("command")
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [c], **spec},
    }


def resource_quota(hard: dict[str, str], name: str = "compute") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hard": hard},
    }


def used(cluster: Any, name: str = "compute") -> dict[str, str]:
    q = cluster.get_nowait("ResourceQuota", name, namespace="default")
    return {k: str(v) for k, v in q.status.used.items()}


def truth(cluster: Any) -> dict[str, str]:
    """Usage counted by hand from the stored pods (not through controlplane.quota)."""
    pods = cluster.list_nowait("Pod", namespace="default")
    live = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
    cpu = sum(
        (c.resources.requests["cpu"] for p in live for c in p.spec.containers),
        Quantity(0),
    )
    return {"pods": str(len(live)), "count/pods": str(len(pods)), "requests.cpu": str(cpu)}


async def synced(cluster: Any, name: str = "compute") -> Any:
    def done() -> Any:
        q = cluster.get_nowait("ResourceQuota", name, namespace="default")
        return q if q is not None and q.status.hard == q.spec.hard and q.status.used else None

    return await cluster.wait_for(done, timeout=10)


HARD = {"pods": "3", "count/pods": "10", "requests.cpu": "1"}


async def test_status_follows_spec_and_third_pod_is_forbidden(autojump_clock):
    async with quota_cluster() as cluster:
        await cluster.apply(resource_quota(HARD))
        q = await synced(cluster)
        assert used(cluster) == {"pods": "0", "count/pods": "0", "requests.cpu": "0"}
        assert {k: str(v) for k, v in q.status.hard.items()} == HARD
        for name in ("a", "b", "c"):
            await cluster.apply(pod(name))
        with pytest.raises(errors.Forbidden) as exc:
            await cluster.apply(pod("d"))
        assert str(exc.value) == (
            'pods "d" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=3,'
            " limited: pods=3"
        )
        await cluster.settle()
        assert (
            used(cluster)
            == truth(cluster)
            == {
                "pods": "3",
                "count/pods": "3",
                "requests.cpu": "300m",
            }
        )
        # raising the limit: status.hard follows, and the pod fits now
        stored = cluster.get_nowait("ResourceQuota", "compute", namespace="default")
        spec = attrs.evolve(stored.spec, hard={**stored.spec.hard, "pods": Quantity.parse("4")})
        await cluster.client.update(attrs.evolve(stored, spec=spec))
        await cluster.wait_for(
            lambda: (
                str(
                    cluster.get_nowait("ResourceQuota", "compute", namespace="default").status.hard[
                        "pods"
                    ]
                )
                == "4"
            ),
            timeout=10,
        )
        await cluster.apply(pod("d"))
        await cluster.settle()
        assert used(cluster) == truth(cluster)


async def test_deleting_a_pod_releases_its_usage_promptly(autojump_clock):
    async with quota_cluster() as cluster:
        await cluster.apply(resource_quota(HARD))
        await synced(cluster)
        for name in ("a", "b", "c"):
            await cluster.apply(pod(name))
        await cluster.wait_for(
            lambda: all(
                p.status.phase == "Running" for p in cluster.list_nowait("Pod", namespace="default")
            ),
            timeout=30,
        )
        start = trio.current_time()
        await cluster.client.delete("Pod", "a", namespace="default")
        await cluster.wait_for(lambda: used(cluster)["pods"] == "2", timeout=60)
        assert trio.current_time() - start < 35  # graceful stop, then replenishment
        assert cluster.get_nowait("Pod", "a", namespace="default") is None
        assert used(cluster) == truth(cluster)
        await cluster.apply(pod("d"))  # the freed unit is usable again
        await cluster.settle()
        assert used(cluster) == truth(cluster)


async def test_a_completed_pod_stops_counting_but_stays_an_object(autojump_clock):
    async with quota_cluster() as cluster:
        await cluster.apply(resource_quota(HARD))
        await synced(cluster)
        await cluster.apply(
            pod(
                "job",
                image="busybox:1.36",
                command=["sh", "-c", "sleep 5; exit 0"],
                restartPolicy="Never",
            )
        )
        assert used(cluster) == {"pods": "1", "count/pods": "1", "requests.cpu": "100m"}
        await cluster.wait_for(
            lambda: (
                cluster.get_nowait("Pod", "job", namespace="default").status.phase == "Succeeded"
            ),
            timeout=60,
        )
        await cluster.wait_for(lambda: used(cluster)["pods"] == "0", timeout=5)
        assert (
            used(cluster)
            == truth(cluster)
            == {
                "pods": "0",
                "count/pods": "1",
                "requests.cpu": "0",
            }
        )


async def test_usage_stays_exact_under_concurrent_creates_and_deletes(autojump_clock):
    async with quota_cluster() as cluster:
        await cluster.apply(resource_quota({"pods": "6", "requests.cpu": "2"}))
        await synced(cluster)
        outcomes: list[str] = []

        async def churn(i: int) -> None:
            try:
                await cluster.client.create(from_dict(pod(f"p{i}", cpu="250m")))
                outcomes.append("created")
            except errors.Forbidden:
                outcomes.append("forbidden")
                return
            if i % 3 == 0:
                await trio.sleep(i)
                await cluster.client.delete(
                    "Pod", f"p{i}", namespace="default", grace_period_seconds=0
                )

        async with trio.open_nursery() as nursery:
            for i in range(16):
                nursery.start_soon(churn, i)
        assert "forbidden" in outcomes
        await cluster.settle()
        await cluster.wait_for(
            lambda: used(cluster) == {k: v for k, v in truth(cluster).items() if k != "count/pods"},
            timeout=10,
        )
        pods = cluster.list_nowait("Pod", namespace="default")
        assert len(pods) <= 6
        cpu = sum(
            c.resources.requests["cpu"].milli_value() for p in pods for c in p.spec.containers
        )
        assert cpu <= 2000


async def test_a_quota_created_later_counts_existing_pods(autojump_clock):
    async with quota_cluster() as cluster:
        for name in ("a", "b"):
            await cluster.apply(pod(name, cpu="200m"))
        await cluster.apply(resource_quota(HARD))
        await synced(cluster)
        assert (
            used(cluster)
            == truth(cluster)
            == {
                "pods": "2",
                "count/pods": "2",
                "requests.cpu": "400m",
            }
        )


async def test_without_admission_the_periodic_resync_catches_up(autojump_clock):
    async with quota_cluster(admission=False) as cluster:
        await cluster.apply(resource_quota(HARD))
        await synced(cluster)
        synced_at = trio.current_time()
        await cluster.apply(pod("a"))
        await cluster.settle()
        assert used(cluster)["pods"] == "0"  # creates are charged by admission, not here
        await cluster.wait_for(lambda: used(cluster)["pods"] == "1", timeout=RESYNC_PERIOD + 5)
        assert RESYNC_PERIOD - 1 <= trio.current_time() - synced_at <= RESYNC_PERIOD + 1
        assert used(cluster) == truth(cluster)


async def test_a_pod_stuck_terminating_on_a_lost_node_stops_counting_after_grace(
    autojump_clock,
):
    async with quota_cluster() as cluster:
        await cluster.apply(resource_quota(HARD))
        await synced(cluster)
        await cluster.apply(pod("a"))
        running = await cluster.wait_for(
            lambda: (
                (p := cluster.get_nowait("Pod", "a", namespace="default"))
                and p.status.phase == "Running"
                and p
            ),
            timeout=30,
        )
        cluster.chaos.crash_node(running.spec.node_name)
        await cluster.client.delete("Pod", "a", namespace="default", grace_period_seconds=20)
        start = trio.current_time()
        await cluster.wait_for(lambda: used(cluster)["pods"] == "0", timeout=60)
        # deletionTimestamp is "now + grace", and QuotaV1Pod charges until
        # deletionTimestamp + grace: 2 x 20 s after the delete, as in Kubernetes
        assert 40 <= trio.current_time() - start <= 43
        p = cluster.get_nowait("Pod", "a", namespace="default")
        assert p is not None and p.metadata.deletion_timestamp is not None  # still stored
        assert used(cluster) == {"pods": "0", "count/pods": "1", "requests.cpu": "0"}


def test_next_grace_expiry_is_the_first_pod_to_stop_counting():
    now = to_wall(100)
    base = from_dict(pod("a"))
    assert next_grace_expiry([base], now) is None

    def terminating(seconds_ago: int, grace: int) -> Any:
        meta = attrs.evolve(
            base.metadata,
            deletion_timestamp=to_wall(100 - seconds_ago),
            deletion_grace_period_seconds=grace,
        )
        return attrs.evolve(base, metadata=meta)

    pods = [terminating(0, 30), terminating(10, 30), terminating(60, 30)]
    assert next_grace_expiry(pods, now) == 21.0
    # expired grace (60 s ago, 30 s grace) no longer counts; unknown names are dropped
    status = quota.sync_status(
        from_dict(resource_quota({"pods": "5", "foo": "1"})), {"Pod": pods}, now
    )
    assert {k: str(v) for k, v in status.used.items()} == {"pods": "2"}


async def test_limit_range_defaults_are_charged_and_recomputed_alike(autojump_clock):
    async with quota_cluster() as cluster:
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": {"name": "defaults", "namespace": "default"},
                "spec": {
                    "limits": [
                        {"type": "Container", "default": {"cpu": "300m"}, "max": {"cpu": "1"}}
                    ]
                },
            }
        )
        await cluster.apply(resource_quota({"requests.cpu": "1", "limits.cpu": "1"}))
        await synced(cluster)
        for name in ("a", "b", "c"):
            await cluster.apply(pod(name, cpu=None))  # no resources: defaulted to 300m
        assert used(cluster) == {"requests.cpu": "900m", "limits.cpu": "900m"}
        with pytest.raises(errors.Forbidden, match=r"exceeded quota: compute, requested:"):
            await cluster.apply(pod("d", cpu=None))
        too_big = pod("e", cpu=None)
        too_big["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}}
        with pytest.raises(errors.Forbidden) as exc:
            await cluster.apply(too_big)
        assert str(exc.value) == (
            'pods "e" is forbidden: maximum cpu usage per Container is 1, but limit is 2.'
        )
        stored = cluster.get_nowait("Pod", "a", namespace="default")
        assert str(stored.spec.containers[0].resources.limits["cpu"]) == "300m"
        await cluster.client.delete("Pod", "b", namespace="default", grace_period_seconds=0)
        await cluster.wait_for(lambda: used(cluster)["requests.cpu"] == "600m", timeout=5)
        assert used(cluster) == {"requests.cpu": "600m", "limits.cpu": "600m"}


async def test_deleting_services_and_other_objects_replenishes(autojump_clock):
    async with quota_cluster() as cluster:
        await cluster.apply(
            resource_quota(
                {"services": "2", "services.nodeports": "2", "count/configmaps": "1"},
                name="objects",
            )
        )
        await synced(cluster, "objects")
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "NodePort", "ports": [{"port": 80}]},
            }
        )
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cfg", "namespace": "default"},
            }
        )
        # default/kubernetes counts too, as in Kubernetes
        assert used(cluster, "objects") == {
            "services": "2",
            "services.nodeports": "1",
            "count/configmaps": "1",
        }
        await cluster.client.delete("Service", "web", namespace="default")
        await cluster.client.delete("ConfigMap", "cfg", namespace="default")
        await cluster.wait_for(
            lambda: (
                used(cluster, "objects")
                == {"services": "1", "services.nodeports": "0", "count/configmaps": "0"}
            ),
            timeout=5,
        )


def test_sync_status_counts_only_pods_in_the_quotas_scopes():
    now = to_wall(0)
    q = from_dict(resource_quota({"pods": "5", "count/pods": "5"}))
    q = attrs.evolve(q, spec=attrs.evolve(q.spec, scopes=("BestEffort",)))
    pods = [
        from_dict(pod("guaranteed")),
        from_dict(pod("be1", cpu=None)),
        from_dict(pod("be2", cpu=None)),
    ]
    status = quota.sync_status(q, {"Pod": pods}, now)
    assert {k: str(v) for k, v in status.used.items()} == {"pods": "2", "count/pods": "2"}
    assert status.hard == q.spec.hard
