"""A small world of machines sharing one network, for the runtime tests."""

from __future__ import annotations

import random
from collections.abc import Sequence

from actors.timers import TimerService
from runtime.cri import ContainerConfig
from runtime.fake import FakeRuntime
from runtime.images import Registry
from runtime.network import Network


class World:
    """Two machines, ``a`` and ``b``, a registry, a network and a running timer service."""

    def __init__(self, seed: int = 1, hosts: Sequence[str] = ("a", "b")) -> None:
        self.rng = random.Random(seed)
        self.timers = TimerService()
        self.registry = Registry()
        self.network = Network(self.rng)
        self.runtimes: dict[str, FakeRuntime] = {}
        for host in hosts:
            self.network.add_host(host)
            self.runtimes[host] = FakeRuntime(
                host,
                registry=self.registry,
                network=self.network,
                timers=self.timers,
                rng=self.rng,
            )

    @property
    def a(self) -> FakeRuntime:
        return self.runtimes["a"]

    @property
    def b(self) -> FakeRuntime:
        return self.runtimes["b"]

    async def start(
        self,
        runtime: FakeRuntime,
        image: str = "app",
        command: Sequence[str] = (),
        args: Sequence[str] = (),
        *,
        name: str = "main",
        sandbox: str = "pod",
        **config: object,
    ) -> tuple[str, str]:
        """Pull, make a sandbox, create and start one container; returns
        ``(sandbox_id, container_id)``."""
        await runtime.pull_image(image)
        box = await runtime.create_sandbox(sandbox, {})
        cid = await runtime.create_container(
            box.id,
            ContainerConfig(
                name=name, image=image, command=tuple(command), args=tuple(args), **config
            ),  # type: ignore[arg-type]
        )
        await runtime.start_container(cid)
        return box.id, cid
