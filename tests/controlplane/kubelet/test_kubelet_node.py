"""The kubelet's node side: registration, Lease renewal, restarts, pause, store faults."""

from __future__ import annotations

import itertools

import attrs
import trio
import trio.testing
from kubelet_harness import NODE, open_node, simple_pod

from controlplane import errors
from controlplane.api import Node, ObjectMeta
from controlplane.kubelet.node import micro_time
from controlplane.nodes import NodeTemplate


def _phase(env, name):
    pod = env.pod(name)
    return pod is not None and pod.status.phase


async def test_registers_node_from_template(autojump_clock):
    template = NodeTemplate.build(
        cpu="8",
        memory="32Gi",
        pods=50,
        labels={"zone": "a"},
        taints=[{"key": "gpu", "effect": "NoSchedule"}],
    )
    async with open_node(template=template) as env:
        node = env.store.get_nowait("Node", NODE)
        assert str(node.status.capacity["cpu"]) == "8"
        assert str(node.status.allocatable["memory"]) == "32Gi"
        assert node.status.allocatable["pods"].value() == 50
        assert node.metadata.labels["zone"] == "a"
        assert node.metadata.labels["kubernetes.io/hostname"] == NODE
        assert [(t.key, t.effect) for t in node.spec.taints] == [("gpu", "NoSchedule")]
        (ready,) = [c for c in node.status.conditions if c.type == "Ready"]
        assert (ready.status, ready.reason) == ("True", "KubeletReady")
        addresses = {a.type: a.address for a in node.status.addresses}
        assert addresses == {"InternalIP": env.kubelet._host_ip, "Hostname": NODE}


async def test_lease_is_renewed_every_10_seconds(autojump_clock):
    async with open_node() as env:
        lease = await env.wait_for(
            lambda: env.store.get_nowait("Lease", NODE, namespace="kube-node-lease")
        )
        assert lease.spec.holder_identity == NODE
        assert lease.spec.lease_duration_seconds == 40
        node = env.store.get_nowait("Node", NODE)
        assert lease.metadata.owner_references[0].uid == node.metadata.uid
        renewals = []
        for _ in range(3):
            previous = lease.spec.renew_time
            lease = await env.wait_for(
                lambda previous=previous: (
                    (got := env.store.get_nowait("Lease", NODE, namespace="kube-node-lease"))
                    and got.spec.renew_time != previous
                    and got
                )
            )
            renewals.append(trio.current_time())
        assert [round(b - a) for a, b in itertools.pairwise(renewals)] == [10, 10]
        assert lease.spec.renew_time == micro_time(renewals[-1])


async def test_adopts_an_existing_node_object(autojump_clock):
    async with open_node() as env:
        env.kill_kubelet()
        node = env.store.get_nowait("Node", NODE)
        cordoned = attrs.evolve(node, spec=attrs.evolve(node.spec, unschedulable=True))
        await env.client.update(cordoned)
        await env.start_kubelet(env.new_kubelet())
        node = env.store.get_nowait("Node", NODE)
        assert node.spec.unschedulable is True  # what others set is kept


async def test_restarted_kubelet_adopts_containers(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        await env.run_pod(simple_pod("crash", image="busybox:1.36", command=["sh", "-c", "exit 1"]))
        await env.wait_for(lambda: _phase(env, "web") == "Running")
        await env.wait_for(
            lambda: (
                (p := env.pod("crash"))
                and p.status.container_statuses
                and p.status.container_statuses[0].restart_count >= 2
            )
        )
        before = {c.id for c in env.runtime.list_containers()}
        web_cid = env.pod("web").status.container_statuses[0].container_id
        env.kill_kubelet()
        await trio.sleep(1)
        await env.start_kubelet(env.new_kubelet())
        await env.tracker.wait_idle()
        pod = env.pod("web")
        assert pod.status.container_statuses[0].container_id == web_cid
        assert pod.status.container_statuses[0].restart_count == 0
        web_containers = [
            c for c in env.runtime.list_containers() if c.labels["io.kubernetes.pod.name"] == "web"
        ]
        assert len(web_containers) == 1
        assert len(env.runtime.list_sandboxes()) == 2
        crash = env.pod("crash").status.container_statuses[0]
        assert crash.restart_count >= 2  # counts survive the restart
        # nothing was duplicated: at most one new container (the crash loop's next run)
        assert len({c.id for c in env.runtime.list_containers()} - before) <= 1


async def test_machine_crash_and_restart_restarts_containers(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        await env.wait_for(lambda: (p := env.pod("web")) and p.status.phase == "Running")
        env.kill_kubelet()
        env.runtime.crash()
        await trio.sleep(30)
        env.runtime.recover()
        await env.start_kubelet(env.new_kubelet())
        cs = await env.wait_for(
            lambda: (
                (cs := env.pod("web").status.container_statuses[0]).state.running
                and cs.restart_count == 1
                and cs
            )
        )
        assert cs.last_state.terminated.exit_code == 255
        assert len(env.runtime.list_sandboxes()) == 1


async def test_paused_kubelet_stops_renewing_its_lease(autojump_clock):
    async with open_node() as env:
        await env.wait_for(lambda: env.store.get_nowait("Lease", NODE, namespace="kube-node-lease"))
        env.kubelet.pause()
        await trio.sleep(1)
        renewed = env.store.get_nowait("Lease", NODE, namespace="kube-node-lease").spec.renew_time
        await env.run_pod(simple_pod("web"))
        await trio.sleep(60)
        assert (
            env.store.get_nowait("Lease", NODE, namespace="kube-node-lease").spec.renew_time
            == renewed
        )
        assert env.pod("web").status.phase == "Pending"
        with trio.fail_after(1):
            await env.tracker.wait_idle()  # a paused kubelet's backlog does not block settle
        env.kubelet.resume()
        await env.wait_for(lambda: env.pod("web").status.phase == "Running")
        await env.wait_for(
            lambda: (
                env.store.get_nowait("Lease", NODE, namespace="kube-node-lease").spec.renew_time
                != renewed
            )
        )


async def test_store_errors_are_retried(autojump_clock):
    async with open_node() as env:
        fault = env.store.faults.inject(
            kind="Pod", verb="update_status", error=errors.TooManyRequests
        )
        await env.run_pod(simple_pod("web"))
        await trio.sleep(20)
        assert env.pod("web").status.phase == "Pending"
        assert env.kubelet.statistics().syncs > 3
        fault.remove()
        await env.wait_for(lambda: env.pod("web").status.phase == "Running", within=60)


async def test_deleted_node_is_registered_again(autojump_clock):
    async with open_node() as env:
        await env.client.delete("Node", NODE)
        assert env.store.get_nowait("Node", NODE) is None
        await trio.sleep(301)
        assert env.store.get_nowait("Node", NODE) is not None


async def test_status_is_not_rewritten_when_nothing_changes(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        await env.wait_for(
            lambda: (
                (p := env.pod("web"))
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
            )
        )
        rv = env.pod("web").metadata.resource_version
        await trio.sleep(600)
        assert env.pod("web").metadata.resource_version == rv


async def test_node_template_object_has_no_stray_fields(autojump_clock):
    async with open_node() as env:
        node = env.store.get_nowait("Node", NODE)
        assert isinstance(node, Node)
        assert node.metadata == attrs.evolve(node.metadata) and isinstance(
            node.metadata, ObjectMeta
        )


async def test_the_same_kubelet_instance_can_run_again(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        await env.wait_for(lambda: _phase(env, "web") == "Running")
        cid = env.pod("web").status.container_statuses[0].container_id
        env.kill_kubelet()
        await trio.sleep(5)
        await env.start_kubelet()  # same instance: starts over from the runtime's labels
        await env.tracker.wait_idle()
        assert env.pod("web").status.container_statuses[0].container_id == cid
        assert len(env.runtime.list_containers()) == 1


async def test_restarted_kubelet_does_not_over_admit(autojump_clock):
    template = NodeTemplate.build(cpu="2")
    async with open_node(template=template) as env:
        await env.run_pod(simple_pod("first", resources={"requests": {"cpu": "1500m"}}))
        await env.wait_for(lambda: _phase(env, "first") == "Running")
        env.kill_kubelet()
        await env.run_pod(simple_pod("second", resources={"requests": {"cpu": "1"}}))
        await env.start_kubelet(env.new_kubelet())
        pod = await env.wait_for(lambda: _phase(env, "second") == "Failed" and env.pod("second"))
        assert pod.status.reason == "OutOfcpu"
        assert env.pod("first").status.phase == "Running"


async def _history(seed: int) -> str:
    async with open_node(seed) as env:
        await env.run_pod(simple_pod("web"))
        await env.run_pod(simple_pod("crash", image="busybox:1.36", command=["sh", "-c", "exit 1"]))
        env.registry.mark_missing("ghost:1")
        await env.run_pod(simple_pod("ghost", image="ghost:1"))
        await trio.sleep(120)
        await env.client.delete("Pod", "web", namespace="default")
        await trio.sleep(30)
        return env.store.history_digest()


def test_same_seed_same_history():
    from controlplane.determinism import seeded_scheduler

    digests = []
    for seed in (3, 3, 4):
        with seeded_scheduler(seed):
            digests.append(
                trio.run(_history, seed, clock=trio.testing.MockClock(autojump_threshold=0))
            )
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def _ready(env):
    node = env.store.get_nowait("Node", NODE)
    return next(c for c in node.status.conditions if c.type == "Ready")


async def test_runtime_down_makes_the_node_not_ready_until_it_recovers(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        await env.wait_for(lambda: _phase(env, "web") == "Running")
        env.runtime.crash()
        await env.client.delete("Pod", "web", namespace="default")  # a sync hits the runtime
        ready = await env.wait_for(lambda: _ready(env).status == "False" and _ready(env))
        assert (ready.reason, ready.message) == ("KubeletNotReady", "container runtime is down")
        env.runtime.recover()
        await env.wait_for(lambda: _ready(env).status == "True", within=60)
        await env.wait_for(lambda: env.pod("web") is None, within=60)
        assert env.runtime.list_containers() == []
