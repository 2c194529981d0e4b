"""``ControllerManager``: kube-controller-manager as one actor.

It builds each controller from a :class:`~controlplane.controllers.framework.ControllerContext`
(its own work queue, event recorder and RNG, the shared informers and the client), starts
the informers, waits until every cache is synced (a controller deciding from a half-filled
cache would delete what it has not seen yet), then runs each controller's worker and its
queue's timer. One actor for all controllers: chaos stops, kills or restarts it as one
component, and a restarted manager re-lists and reconciles everything.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import structlog
import trio

from controlplane.client.protocol import Client
from controlplane.client.workqueue import WorkQueue, WorkTrackerLike
from controlplane.controllers.framework import (
    Controller,
    ControllerContext,
    ControllerFactory,
    SharedInformers,
    run_controller,
)
from controlplane.events import EventRecorder

__all__ = ["ControllerManager"]

log = structlog.get_logger(__name__)


class ControllerManager:
    """Runs ``controllers`` (``(name, factory)`` pairs) against ``client``.

    Args:
        seed: each controller's RNG is ``Random(f"{seed}:{name}")``, so adding a
            controller does not change what the others draw.
        tracker: the cluster's work tracker (informers, queues and recorders count).
    """

    def __init__(
        self,
        client: Client,
        controllers: Sequence[ControllerFactory],
        *,
        seed: int = 0,
        tracker: WorkTrackerLike | None = None,
    ) -> None:
        self._client = client
        self._factories = list(controllers)
        self._seed = seed
        self._tracker = tracker
        #: the controllers of the current run, by name (for tests and statistics)
        self.controllers: dict[str, Controller] = {}
        self.contexts: dict[str, ControllerContext] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Build, sync and run every controller until cancelled; ``started`` once synced."""
        informers = SharedInformers(self._client, tracker=self._tracker)
        self.controllers, self.contexts = {}, {}
        for name, factory in self._factories:
            queue: WorkQueue[str] = WorkQueue(tracker=self._tracker, name=name)
            rng = random.Random(f"{self._seed}:{name}")
            context = ControllerContext(
                client=self._client,
                informers=informers,
                queue=queue,
                events=EventRecorder(
                    self._client,
                    component=name,
                    rng=random.Random(f"{self._seed}:{name}:events"),
                    tracker=self._tracker,
                ),
                rng=rng,
                log=log.bind(component=name),
            )
            self.controllers[name] = factory(context)
            self.contexts[name] = context
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(informers.run)
                for name, controller in self.controllers.items():
                    context = self.contexts[name]
                    await nursery.start(context.queue.run)
                    await nursery.start(context.events.run)
                    nursery.start_soon(run_controller, controller, context)
                log.info("controller_manager_started", controllers=list(self.controllers))
                task_status.started()
                await trio.sleep_forever()  # an actor: lives until the cluster stops it
        finally:
            for context in self.contexts.values():
                context.queue.shut_down()
