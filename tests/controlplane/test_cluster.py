"""The harness through its public API: apply, reads, wait_for, settle, nodes, chaos."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from controlplane import errors, open_cluster
from controlplane.api import ConfigMap, ObjectMeta

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
"""


async def test_system_namespaces_and_nodes_exist(autojump_clock):
    async with open_cluster(nodes=3, seed=1) as cluster:
        names = sorted(ns.metadata.name for ns in cluster.list_nowait("Namespace"))
        assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
        nodes = cluster.list_nowait("Node")
        assert [n.metadata.name for n in nodes] == ["node-1", "node-2", "node-3"]
        assert str(nodes[0].status.allocatable["cpu"]) == "4"
        assert str(nodes[0].status.allocatable["memory"]) == "16Gi"
        assert nodes[0].status.allocatable["pods"].value() == 110


async def test_apply_creates_then_updates(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        created = await cluster.apply(DEPLOYMENT)
        assert created.metadata.namespace == "default"
        assert created.metadata.generation == 1
        assert created.spec.replicas == 2

        updated = await cluster.apply(DEPLOYMENT.replace("replicas: 2", "replicas: 5"))
        assert updated.metadata.uid == created.metadata.uid
        assert updated.metadata.generation == 2
        assert cluster.get_nowait("Deployment", "web", namespace="default").spec.replicas == 5

        again = await cluster.apply(DEPLOYMENT.replace("replicas: 2", "replicas: 5"))
        assert again.metadata.resource_version == updated.metadata.resource_version


async def test_apply_accepts_dicts_objects_and_lists(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        as_dict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
        as_object = ConfigMap(metadata=ObjectMeta(name="b", namespace="default"))
        stored = await cluster.apply([as_dict, as_object])
        assert [o.metadata.name for o in stored] == ["a", "b"]
        assert sorted(c.metadata.name for c in cluster.list_nowait("ConfigMap")) == ["a", "b"]


async def test_apply_bad_input_changes_nothing(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        before = cluster.store.revision
        with pytest.raises(errors.BadRequest, match="Gizmo"):
            await cluster.apply({"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "x"}})
        with pytest.raises(errors.Invalid, match=r"invalid quantity \"5x\""):
            await cluster.apply(
                DEPLOYMENT.replace(
                    "image: nginx:1.14.2", "image: nginx\n        resources: {limits: {cpu: 5x}}"
                )
            )
        with pytest.raises(TypeError, match="cannot apply int"):
            await cluster.apply(42)
        assert cluster.store.revision == before
        assert cluster.get_nowait("Deployment", "web", namespace="default") is None


async def test_list_nowait_filters_by_label(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        for name, app in (("a", "web"), ("b", "db"), ("c", "web")):
            await cluster.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "labels": {"app": app}},
                }
            )
        web = cluster.list_nowait("ConfigMap", namespace="default", label_selector="app=web")
        assert sorted(c.metadata.name for c in web) == ["a", "c"]


async def test_wait_for_rechecks_on_each_change_not_on_a_timer(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        calls = 0

        def configmap_exists():
            nonlocal calls
            calls += 1
            return cluster.get_nowait("ConfigMap", "late", namespace="default")

        async def create_later():
            await trio.sleep(30)
            await cluster.apply(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(create_later)
            start = trio.current_time()
            found = await cluster.wait_for(configmap_exists, timeout=60)
        assert found.metadata.name == "late"
        assert trio.current_time() - start == pytest.approx(30)
        assert calls == 2  # once at the start, once after the one change


async def test_wait_for_timeout_says_what_was_awaited(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        start = trio.current_time()
        with pytest.raises(
            TimeoutError, match=r"^timed out after 5s waiting for pod web to exist$"
        ):
            await cluster.wait_for(lambda: False, timeout=5, description="pod web to exist")
        assert trio.current_time() - start == pytest.approx(5)


async def test_settle_returns_when_idle(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        await cluster.apply(DEPLOYMENT)
        await cluster.settle()


async def test_add_and_remove_node(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster:
        node = await cluster.add_node(
            "node-9",
            cpu="8",
            memory="32Gi",
            labels={"zone": "b"},
            taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
        )
        assert node.metadata.labels["zone"] == "b"
        assert node.spec.taints[0].key == "dedicated"
        assert str(cluster.get_nowait("Node", "node-9").status.capacity["cpu"]) == "8"
        await cluster.remove_node("node-9")
        assert cluster.get_nowait("Node", "node-9") is None

        before = cluster.store.revision
        with pytest.raises(
            errors.Invalid, match=r'^NodeTemplate is invalid: cpu: invalid quantity "8x"$'
        ):
            await cluster.add_node("node-10", cpu="8x")
        assert cluster.store.revision == before


async def test_chaos_compact_forces_gone(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        listed = await cluster.client.list("ConfigMap", namespace="default")
        await cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        cluster.chaos.compact()
        with pytest.raises(errors.Gone):
            async with cluster.client.watch(
                "ConfigMap", namespace="default", resource_version=listed.resource_version
            ) as events:
                async for _ in events:
                    pass


async def test_chaos_close_watches_ends_streams(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        received = []
        async with cluster.client.watch("ConfigMap", namespace="default") as events:
            await cluster.apply(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
            )
            cluster.chaos.close_watches()
            async for event in events:
                received.append(event.type)
        assert received == ["ADDED"]


async def test_chaos_store_fault(autojump_clock):
    async with open_cluster(seed=1) as cluster:
        fault = cluster.chaos.store_fault(
            kind="ConfigMap", verb="create", error=errors.TooManyRequests
        )
        with pytest.raises(errors.TooManyRequests):
            await cluster.apply(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
            )
        fault.remove()
        await cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


async def test_cluster_fixture_runs_in_virtual_time(cluster):
    # the plugin supplies the autojumping clock although the test did not ask for it
    assert isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    start = trio.current_time()
    await trio.sleep(3600)
    assert trio.current_time() - start == 3600


async def test_cluster_fixture_from_the_plugin(cluster):
    assert len(cluster.list_nowait("Node")) == 3
    await cluster.apply(DEPLOYMENT)
    assert cluster.get_nowait("Deployment", "web", namespace="default") is not None
