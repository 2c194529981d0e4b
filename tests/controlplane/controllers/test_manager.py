"""The controller manager supervises each controller on its own: one that raises is
rebuilt from its factory (fresh state, fresh handlers, a replay of the caches) while the
others keep their state and keep working."""

from __future__ import annotations

from typing import Any

import trio
from structlog.testing import capture_logs

from controlplane import open_cluster
from controlplane.api.core import ConfigMap
from controlplane.api.meta import ObjectMeta
from controlplane.controllers.framework import ControllerContext


class Counting:
    """Counts the ConfigMaps it syncs; ``explode_on`` makes one sync raise (once per
    cluster, not per incarnation)."""

    builds: list[str] = []

    def __init__(self, context: ControllerContext, name: str, explode_on: str | None) -> None:
        self.name = name
        self.synced: list[str] = []
        self._explode_on = explode_on
        Counting.builds.append(name)
        context.informers.informer("ConfigMap").enqueue_into(context.queue)

    async def sync(self, key: str) -> float | None:
        await trio.lowlevel.checkpoint()
        if key == self._explode_on and Counting.builds.count(self.name) == 1:
            raise RuntimeError("bug in the controller")
        self.synced.append(key)
        return None


def factory(name: str, explode_on: str | None = None) -> tuple[str, Any]:
    return name, lambda context: Counting(context, name, explode_on)


async def test_a_controller_that_raises_is_rebuilt_alone(autojump_clock):
    Counting.builds = []
    controllers = [factory("fragile", explode_on="default/boom"), factory("steady")]
    with capture_logs() as logs:
        async with open_cluster(nodes=1, seed=1, controllers=controllers) as cluster:
            manager = cluster.controller_manager
            steady = manager.controllers["steady"]
            await cluster.client.create(
                ConfigMap(metadata=ObjectMeta(name="a", namespace="default"))
            )
            await cluster.settle()
            await cluster.client.create(
                ConfigMap(metadata=ObjectMeta(name="boom", namespace="default"))
            )
            await trio.sleep(5)
            await cluster.settle()
            fragile = manager.controllers["fragile"]
            # rebuilt once, and its fresh handlers replayed every cached ConfigMap
            assert Counting.builds == ["fragile", "steady", "fragile"]
            assert sorted(fragile.synced) == ["default/a", "default/boom"]
            assert manager.controllers["steady"] is steady
            assert steady.synced == ["default/a", "default/boom"]
            assert cluster.chaos.supervisor.is_running("controller-manager")
    crashed = [e for e in logs if e["event"] == "child_crashed"]
    assert [(e["child"], e["supervisor"]) for e in crashed] == [("fragile", "controller-manager")]
