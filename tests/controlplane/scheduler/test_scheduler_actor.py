"""The scheduler actor end to end: a Store, a LocalClient and the Scheduler, in virtual
time. Each test states one behaviour a user of the cluster relies on."""

from __future__ import annotations

import random
from contextlib import asynccontextmanager

import attrs
import structlog
import structlog.testing
import trio
from scheduler_builders import make_node, make_pod

from actors import WorkTracker
from controlplane import errors
from controlplane.api.core import Namespace
from controlplane.api.meta import ObjectMeta
from controlplane.client.local import LocalClient
from controlplane.scheduler import Scheduler, SchedulerConfig
from controlplane.store import Store

TAINT_GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@attrs.define
class Env:
    store: Store
    client: LocalClient
    scheduler: Scheduler
    tracker: WorkTracker

    async def settle(self) -> None:
        await self.tracker.wait_idle()

    async def wait_for(self, predicate, within=60):
        with trio.fail_after(within):
            return await self.store.wait_until(predicate)

    def pod(self, name, namespace="default"):
        return self.store.get_nowait("Pod", name, namespace=namespace)

    def events(self, name, reason=None):
        return [
            e
            for e in self.store.list_nowait("Event", namespace="default")
            if e.involved_object.name == name and (reason is None or e.reason == reason)
        ]

    async def add_nodes(self, *nodes):
        for node in nodes:
            await self.client.create(node)


@asynccontextmanager
async def open_env(nodes=(), *, seed=1, client_cls=LocalClient, config=None):
    tracker = WorkTracker()
    store = Store(random.Random(f"{seed}:store"), work_tracker=tracker)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        client = client_cls(store, track_work=True)
        await client.create(Namespace(metadata=ObjectMeta(name="default")))
        for node in nodes:
            await client.create(node)
        scheduler = Scheduler(client, rng=random.Random(seed), tracker=tracker, config=config)
        await nursery.start(scheduler.run)
        try:
            yield Env(store, client, scheduler, tracker)
        finally:
            nursery.cancel_scope.cancel()


def small_nodes(n, **kw):
    return [make_node(f"node-{i}", **kw) for i in range(1, n + 1)]


async def test_pending_pods_get_bound_with_a_scheduled_event(autojump_clock):
    async with open_env(small_nodes(3)) as env:
        for i in range(6):
            await env.client.create(make_pod(f"web-{i}", cpu="500m", uid=""))
        await env.settle()
        placed = {env.pod(f"web-{i}").spec.node_name for i in range(6)}
        assert placed == {"node-1", "node-2", "node-3"}
        pod = env.pod("web-1")
        (condition,) = pod.status.conditions
        assert (condition.type, condition.status) == ("PodScheduled", "True")
        (event,) = env.events("web-1")
        assert (event.type, event.reason) == ("Normal", "Scheduled")
        assert event.message == f"Successfully assigned default/web-1 to {pod.spec.node_name}"
        assert event.source.component == "default-scheduler"
        assert env.scheduler.statistics().scheduled == 6


async def test_unschedulable_pod_says_why_then_lands_on_a_new_node(autojump_clock):
    nodes = [
        *small_nodes(3, cpu="1"),
        make_node("gpu-1", cpu="8", taints=[TAINT_GPU]),
        make_node("gpu-2", cpu="8", taints=[TAINT_GPU]),
    ]
    async with open_env(nodes) as env:
        created = await env.client.create(make_pod("big", cpu="2", uid=""))
        await env.settle()
        message = (
            "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu},"
            " 3 Insufficient cpu."
        )
        pod = env.pod("big")
        assert pod.spec.node_name is None
        (condition,) = pod.status.conditions
        assert (condition.type, condition.status, condition.reason, condition.message) == (
            "PodScheduled",
            "False",
            "Unschedulable",
            message,
        )
        (event,) = env.events("big")
        assert (event.type, event.reason, event.message, event.count) == (
            "Warning",
            "FailedScheduling",
            message,
            1,
        )
        assert event.involved_object.kind == "Pod"
        assert event.involved_object.uid == created.metadata.uid
        assert event.source.component == "default-scheduler"
        assert event.first_timestamp == event.last_timestamp is not None

        # Nothing changes: no retries, no new events, however long we wait.
        await trio.sleep(120)
        assert env.events("big")[0].count == 1

        await env.add_nodes(make_node("node-9", cpu="4"))
        await env.wait_for(lambda: env.pod("big").spec.node_name == "node-9", within=15)
        (scheduled,) = await env.wait_for(lambda: env.events("big", "Scheduled"))
        assert scheduled.message == "Successfully assigned default/big to node-9"


async def test_failed_attempts_update_one_event_with_a_count(autojump_clock):
    async with open_env(small_nodes(1, cpu="1")) as env:
        await env.client.create(make_pod("big", cpu="2", uid=""))
        await env.settle()
        for i in range(3):  # each new node is a reason to retry; none has room
            await env.add_nodes(make_node(f"tiny-{i}", cpu="1"))
            await trio.sleep(20)
        events = env.events("big")
        assert len(events) == 4  # one per distinct message (the node count changes)
        await env.client.update(
            attrs.evolve(
                env.store.get_nowait("Node", "tiny-2"),
                metadata=attrs.evolve(
                    env.store.get_nowait("Node", "tiny-2").metadata, labels={"x": "y"}
                ),
            )
        )
        await trio.sleep(20)
        (last,) = [e for e in env.events("big") if e.message.startswith("0/4 ")]
        assert last.count == 2
        assert last.last_timestamp > last.first_timestamp


async def test_pods_of_a_replicaset_spread_over_nodes(autojump_clock):
    async with open_env(small_nodes(3)) as env:
        for i in range(6):
            await env.client.create(make_pod(f"rs-{i}", owner_uid="rs-uid", uid=""))
        await env.settle()
        per_node = {}
        for i in range(6):
            node = env.pod(f"rs-{i}").spec.node_name
            per_node[node] = per_node.get(node, 0) + 1
        assert per_node == {"node-1": 2, "node-2": 2, "node-3": 2}


async def test_spreading_beats_packing_onto_the_emptier_node(autojump_clock):
    # node-1 is bigger, so resource scores favour it; spreading still sends the second
    # replica elsewhere.
    nodes = [make_node("node-1", cpu="64", memory="256Gi"), make_node("node-2")]
    async with open_env(nodes) as env:
        await env.client.create(make_pod("rs-0", owner_uid="rs", uid="", cpu="100m"))
        await env.settle()
        assert env.pod("rs-0").spec.node_name == "node-1"
        await env.client.create(make_pod("rs-1", owner_uid="rs", uid="", cpu="100m"))
        await env.client.create(make_pod("lone", uid="", cpu="100m"))
        await env.settle()
        assert env.pod("rs-1").spec.node_name == "node-2"
        assert env.pod("lone").spec.node_name == "node-1"


async def placements(seed):
    async with open_env(small_nodes(8), seed=seed) as env:
        for i in range(8):
            await env.client.create(make_pod(f"p{i}", uid=""))
            await env.settle()
        return [env.pod(f"p{i}").spec.node_name for i in range(8)]


async def test_choices_are_deterministic_for_a_seed(autojump_clock):
    first = await placements(7)
    assert await placements(7) == first
    others = [await placements(seed) for seed in (1, 2, 3)]
    assert any(o != first for o in others)


async def test_fast_path_binds_exactly_like_the_general_path(autojump_clock):
    """End to end, on a cluster big enough to sample (120 nodes, 100 looked at per pod)
    with a cordoned and a tainted node: the same pods land on the same nodes."""
    from controlplane.scheduler import Framework
    from controlplane.scheduler.plugins import default_filters, default_scorers

    nodes = [
        make_node(f"node-{i}", cpu="2" if i % 3 else "4", unschedulable=i == 5) for i in range(120)
    ]
    nodes[9] = make_node("node-9", taints=[{"key": "k", "effect": "PreferNoSchedule"}])
    nodes[11] = make_node("node-11", taints=[TAINT_GPU])
    results = []
    for fast in (True, False):
        async with open_env(nodes, seed=3) as env:
            env.scheduler.framework = Framework(
                default_filters(), default_scorers(), fast_path=fast
            )
            for i in range(60):
                owner = "rs" if i % 2 else None
                await env.client.create(make_pod(f"p{i}", cpu="700m", owner_uid=owner, uid=""))
                if i % 7 == 0:
                    await env.settle()
            await env.settle()
            results.append([env.pod(f"p{i}").spec.node_name for i in range(60)])
    assert results[0] == results[1]
    assert all(results[0]) and not {"node-5", "node-11"} & set(results[0])
    assert len(set(results[0])) > 30  # spread out, not piled up


async def test_back_to_back_pods_see_each_others_usage(autojump_clock):
    # Created in one go, before the scheduler sees any bind come back: without the
    # assume cache all four would pick the same empty node.
    async with open_env(small_nodes(2, cpu="2")) as env:
        for i in range(4):
            await env.client.create(make_pod(f"p{i}", cpu="1", uid=""))
        await env.settle()
        nodes = sorted(env.pod(f"p{i}").spec.node_name for i in range(4))
        assert nodes == ["node-1", "node-1", "node-2", "node-2"]


class RacingClient(LocalClient):
    """Someone else binds ``raced`` to node-2 just before our bind goes through."""

    async def bind(self, name, node_name, *, namespace="default", uid=None):
        if name == "raced":
            await self._store.bind(name, "node-2", namespace=namespace)
        return await super().bind(name, node_name, namespace=namespace, uid=uid)


async def test_bind_conflict_is_handled(autojump_clock):
    async with open_env(small_nodes(2), client_cls=RacingClient) as env:
        with structlog.testing.capture_logs() as logs:
            await env.client.create(make_pod("raced", cpu="1", uid=""))
            await env.settle()
        (failed,) = [e for e in logs if e["event"] == "pod_bind_failed"]
        assert failed["component"] == "scheduler"
        assert (failed["name"], failed["reason"]) == ("raced", "Conflict")
        assert env.pod("raced").spec.node_name == "node-2"
        assert env.scheduler.statistics().errors == 1
        assert env.scheduler.snapshot.assumed == {}
        assert env.scheduler.snapshot.node_of("default/raced") == "node-2"
        assert env.scheduler.snapshot.get("node-2").req_milli_cpu == 1000
        assert env.scheduler.snapshot.get("node-1").req_milli_cpu == 0
        await env.client.create(make_pod("next", cpu="1", uid=""))
        await env.settle()
        assert env.pod("next").spec.node_name is not None


async def test_store_errors_on_bind_are_retried_with_backoff(autojump_clock):
    async with open_env(small_nodes(1)) as env:
        fault = env.store.faults.inject(verb="bind", error=errors.TooManyRequests)
        start = trio.current_time()
        await env.client.create(make_pod("p", uid=""))
        await env.wait_for(lambda: env.events("p", "FailedScheduling"))
        pod = env.pod("p")
        condition = pod.status.conditions[0]
        assert condition.reason == "SchedulerError"
        assert condition.message.startswith("binding rejected: injected fault: bind pods")
        await trio.sleep(6)  # attempts at 0, 1, 3 (+1, +2), next at 7 (+4)
        assert env.scheduler.statistics().errors == 3
        assert env.scheduler.snapshot.get("node-1").req_milli_cpu == 0  # assumption undone
        fault.remove()
        await env.wait_for(lambda: env.pod("p").spec.node_name == "node-1")
        assert trio.current_time() - start == 7
        (event,) = env.events("p", "FailedScheduling")
        assert event.count == 3


async def test_a_pod_preset_to_a_missing_node_is_left_alone(autojump_clock):
    async with open_env(small_nodes(1)) as env:
        await env.client.create(make_pod("pinned", node_name="no-such-node", uid=""))
        await env.settle()
        pod = env.pod("pinned")
        assert pod.spec.node_name == "no-such-node"
        assert pod.status.conditions == ()
        assert env.events("pinned") == []
        assert env.scheduler.snapshot.get("no-such-node") is None


async def test_absurd_requests_stay_pending_with_a_reason(autojump_clock):
    async with open_env(small_nodes(2)) as env:
        await env.client.create(make_pod("huge", cpu="1e30", memory="1e40", uid=""))
        await env.client.create(make_pod("fine", cpu="1", uid=""))
        await env.settle()
        assert env.pod("fine").spec.node_name is not None
        pod = env.pod("huge")
        assert pod.spec.node_name is None
        assert pod.status.conditions[0].message == (
            "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."
        )


async def test_a_pod_for_another_scheduler_or_terminating_is_ignored(autojump_clock):
    async with open_env(small_nodes(1)) as env:
        other = make_pod("other", uid="")
        other = attrs.evolve(other, spec=attrs.evolve(other.spec, scheduler_name="custom"))
        await env.client.create(other)
        await env.settle()
        assert env.pod("other").spec.node_name is None
        assert env.events("other") == []


async def test_deleting_a_pod_frees_room_for_an_unschedulable_one(autojump_clock):
    async with open_env(small_nodes(1, cpu="1")) as env:
        await env.client.create(make_pod("first", cpu="1", uid=""))
        await env.settle()
        await env.client.create(make_pod("second", cpu="1", uid=""))
        await env.settle()
        assert env.pod("second").spec.node_name is None
        assert env.scheduler.statistics().pending_unschedulable == 1
        await env.client.delete("Pod", "first", namespace="default", grace_period_seconds=0)
        await env.wait_for(lambda: env.pod("second").spec.node_name == "node-1", within=15)


async def test_deleting_an_unschedulable_pod_drops_it(autojump_clock):
    async with open_env(small_nodes(1, cpu="1")) as env:
        await env.client.create(make_pod("big", cpu="2", uid=""))
        await env.settle()
        await env.client.delete("Pod", "big", namespace="default")
        await env.settle()
        assert len(env.scheduler.queue) == 0


async def test_cordoned_node_is_skipped_and_uncordoning_reschedules(autojump_clock):
    async with open_env(small_nodes(1, unschedulable=True)) as env:
        await env.client.create(make_pod("p", uid=""))
        await env.settle()
        assert env.pod("p").status.conditions[0].message == (
            "0/1 nodes are available: 1 node(s) were unschedulable."
        )
        node = env.store.get_nowait("Node", "node-1")
        await env.client.update(
            attrs.evolve(node, spec=attrs.evolve(node.spec, unschedulable=False))
        )
        await env.wait_for(lambda: env.pod("p").spec.node_name == "node-1", within=15)


async def test_no_nodes(autojump_clock):
    async with open_env(config=SchedulerConfig()) as env:
        await env.client.create(make_pod("p", uid=""))
        await env.settle()
        assert env.pod("p").status.conditions[0].message == "no nodes available to schedule pods"
        await env.add_nodes(make_node("node-1"))
        await env.wait_for(lambda: env.pod("p").spec.node_name == "node-1", within=15)


async def test_chaos_faults_and_closed_watches_do_not_stop_scheduling(autojump_clock):
    async with open_env(small_nodes(4)) as env:
        faults = [
            env.store.faults.inject(verb="bind", error=errors.Timeout, fraction=0.3),
            env.store.faults.inject(
                verb="update_status", error=errors.TooManyRequests, fraction=0.5
            ),
            env.store.faults.inject(
                kind="Event", verb="create", error=errors.TooManyRequests, fraction=0.5
            ),
        ]
        for i in range(60):
            await env.client.create(make_pod(f"p{i}", cpu="100m", uid=""))
            if i % 20 == 0:
                env.store.close_watches()
        await env.client.create(make_pod("huge", cpu="64", uid=""))
        await env.wait_for(
            lambda: all(env.pod(f"p{i}").spec.node_name for i in range(60)), within=120
        )
        for fault in faults:
            fault.remove()
        await env.settle()
        assert env.scheduler.statistics().errors > 0
        events = env.scheduler.events.statistics()
        assert events.retries > 0
        assert events.pending == 0
        # retried until written: every bound pod has its Scheduled event
        assert all(env.events(f"p{i}", "Scheduled") for i in range(60))
        assert env.pod("huge").spec.node_name is None
        # the scheduler's view matches the store's
        for node in env.scheduler.snapshot.nodes:
            on_node = [p for p in env.store.list_nowait("Pod") if p.spec.node_name == node.name]
            assert len(node.pods) == len(on_node)
            assert node.req_milli_cpu == 100 * len(on_node)
        assert env.scheduler.snapshot.assumed == {}
