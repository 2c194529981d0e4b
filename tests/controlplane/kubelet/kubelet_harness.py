"""A one-node test bed: store, timers, network, FakeRuntime and one Kubelet."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from actors import WorkTracker
from actors.timers import TimerService
from controlplane.api import Namespace, ObjectMeta, Pod, from_dict
from controlplane.client.local import LocalClient
from controlplane.kubelet import Kubelet
from controlplane.nodes import NodeTemplate
from controlplane.store import Store
from runtime.fake import FakeRuntime
from runtime.images import Registry
from runtime.network import Network

NODE = "node-1"


@attrs.define(eq=False)
class Env:
    store: Store
    client: LocalClient
    kubelet: Kubelet
    runtime: FakeRuntime
    registry: Registry
    timers: TimerService
    tracker: WorkTracker
    nursery: trio.Nursery
    kubelet_scope: trio.CancelScope | None = None

    def pod(self, name: str, namespace: str = "default") -> Pod | None:
        return self.store.get_nowait("Pod", name, namespace=namespace)

    async def wait_for(self, predicate: Callable[[], Any], within: float = 120) -> Any:
        """Wait (virtual time) until ``predicate()`` is truthy; re-checked on every store
        change."""
        with trio.fail_after(within):
            return await self.store.wait_until(predicate)

    async def run_pod(self, manifest: dict[str, Any]) -> Pod:
        """Create the pod and bind it to the node."""
        pod = from_dict({"apiVersion": "v1", "kind": "Pod", **manifest})
        meta = attrs.evolve(pod.metadata, namespace=pod.metadata.namespace or "default")
        created = await self.client.create(attrs.evolve(pod, metadata=meta))
        return await self.client.bind(
            created.metadata.name, NODE, namespace=created.metadata.namespace
        )

    def events(self, name: str, reason: str | None = None) -> list[Any]:
        return [
            e
            for e in self.store.list_nowait("Event", namespace="default")
            if e.involved_object.name == name and (reason is None or e.reason == reason)
        ]

    async def start_kubelet(self, kubelet: Kubelet | None = None) -> Kubelet:
        """(Re)start the kubelet in its own cancel scope (as a supervisor would)."""
        kubelet = kubelet or self.kubelet
        self.kubelet = kubelet

        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            with trio.CancelScope() as scope:
                self.kubelet_scope = scope
                await kubelet.run(task_status=task_status)

        await self.nursery.start(run)
        return kubelet

    def kill_kubelet(self) -> None:
        assert self.kubelet_scope is not None
        self.kubelet_scope.cancel()
        self.kubelet_scope = None

    def new_kubelet(self, seed: int = 1) -> Kubelet:
        return Kubelet(
            LocalClient(self.store, track_work=True),
            self.runtime,
            self.timers,
            node_name=NODE,
            rng=random.Random(f"{seed}:kubelet-again"),
            template=self.kubelet._template,
            host_ip=self.kubelet._host_ip,
            tracker=self.tracker,
        )


def simple_pod(name: str, *, image: str = "nginx:1.25", **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image, **container}]},
    }


@asynccontextmanager
async def open_node(
    seed: int = 0,
    *,
    template: NodeTemplate | None = None,
    registry: Registry | None = None,
) -> AsyncIterator[Env]:
    tracker = WorkTracker()
    # history_max_age: the store's expiry loop can spin on float rounding (reported).
    store = Store(random.Random(f"{seed}:store"), work_tracker=tracker, history_max_age=1e7)
    timers = TimerService()
    network = Network(random.Random(f"{seed}:network"))
    host = network.add_host(NODE)
    registry = registry or Registry()
    runtime = FakeRuntime(
        NODE,
        registry=registry,
        network=network,
        timers=timers,
        rng=random.Random(f"{seed}:runtime"),
    )
    client = LocalClient(store)
    kubelet = Kubelet(
        LocalClient(store, track_work=True),
        runtime,
        timers,
        node_name=NODE,
        rng=random.Random(f"{seed}:kubelet"),
        template=template,
        host_ip=host.ip,
        tracker=tracker,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(timers.run)
        await nursery.start(runtime.run)
        for ns in ("default", "kube-node-lease"):
            await client.create(Namespace(metadata=ObjectMeta(name=ns)))
        env = Env(store, client, kubelet, runtime, registry, timers, tracker, nursery)
        await env.start_kubelet()
        yield env
        nursery.cancel_scope.cancel()
