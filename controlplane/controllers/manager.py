"""``ControllerManager``: kube-controller-manager as one actor.

It builds each controller from a :class:`~controlplane.controllers.framework.ControllerContext`
(its own work queue, event recorder and RNG, the shared informers and the client), starts
the informers, waits until every cache is synced (a controller deciding from a half-filled
cache would delete what it has not seen yet), then runs each controller's worker and its
queue's timer. Chaos stops, kills or restarts the manager as one component (a restarted
manager re-lists and reconciles everything), or one controller inside it.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

import structlog
import trio

from actors import ChildState, Supervisor
from controlplane.client.informer import EventHandler, Informer
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

    Each controller is a child of the manager's own supervisor, named by the controller:
    :meth:`crash_controller` kills one (its queue, its in-memory state and its handlers on
    the shared informers go with it) while the others keep working, and
    :meth:`restart_controller` builds it afresh from its factory -- the new handlers get
    an add for every cached object, the in-process equivalent of a re-list, so it
    reconciles everything it missed. A controller that raises is restarted the same way,
    with the supervisor's backoff.

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
        self._factories = dict(controllers)
        self._seed = seed
        self._tracker = tracker
        self._supervisor: Supervisor | None = None
        self._informers: SharedInformers | None = None
        #: per controller, the informer handlers it registered (removed when it stops)
        self._handlers: dict[str, list[tuple[Informer, EventHandler]]] = {}
        #: the controllers of the current run, by name (for tests and statistics)
        self.controllers: dict[str, Controller] = {}
        self.contexts: dict[str, ControllerContext] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Every controller's name, in start order."""
        return tuple(self._factories)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Build, sync and run every controller until cancelled; ``started`` once synced."""
        informers = self._informers = SharedInformers(self._client, tracker=self._tracker)
        self.controllers, self.contexts, self._handlers = {}, {}, {}
        # Every controller is built before the informers start: that is when it asks for
        # the informers (and indexes) it needs.
        for name in self._factories:
            self._build(name)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(informers.run)
                supervisor = self._supervisor = Supervisor(name="controller-manager")
                await nursery.start(supervisor.run)
                for name in self._factories:
                    await supervisor.start_child(name, functools.partial(self._run_one, name))
                log.info("controller_manager_started", controllers=list(self.controllers))
                task_status.started()
                await trio.sleep_forever()  # an actor: lives until the cluster stops it
        finally:
            self._supervisor = None
            for context in self.contexts.values():
                context.queue.shut_down()

    def crash_controller(self, name: str) -> None:
        """Kill controller ``name`` now; it stays down until :meth:`restart_controller`.

        Raises:
            actors.NoSuchChild: no controller of that name.
            RuntimeError: the manager is not running.
        """
        self._running_supervisor().kill_child(name)

    def restart_controller(self, name: str) -> None:
        """Start controller ``name`` again, from scratch, soon (not waiting for it).

        Raises:
            actors.NoSuchChild: no controller of that name.
            RuntimeError: the manager is not running.
        """
        self._running_supervisor().restart_child_soon(name)

    def controller_stopped(self, name: str) -> bool:
        """Whether controller ``name`` was crashed and not started again in this run of
        the manager (False while the manager itself is down: a new run starts them all)."""
        if self._supervisor is None:
            return False
        return any(
            c.name == name and c.state is ChildState.STOPPED for c in self._supervisor.children()
        )

    def _running_supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise RuntimeError("the controller manager is not running")
        return self._supervisor

    def _build(self, name: str) -> None:
        """A fresh context (queue, recorder, RNG) and controller; remembers the handlers
        it registered on the shared informers."""
        assert self._informers is not None
        before = {id(h) for informer in self._informers for h in informer.handlers}
        queue: WorkQueue[str] = WorkQueue(tracker=self._tracker, name=name)
        context = ControllerContext(
            client=self._client,
            informers=self._informers,
            queue=queue,
            events=EventRecorder(
                self._client,
                component=name,
                rng=random.Random(f"{self._seed}:{name}:events"),
                tracker=self._tracker,
            ),
            rng=random.Random(f"{self._seed}:{name}"),
            log=log.bind(component=name),
        )
        with self._informers.replays_deferred():  # its handlers see it fully built
            self.controllers[name] = self._factories[name](context)
        self.contexts[name] = context
        self._handlers[name] = [
            (informer, h)
            for informer in self._informers
            for h in informer.handlers
            if id(h) not in before
        ]

    async def _run_one(
        self, name: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """One controller's worker, queue timer and event flusher; on the way out its
        handlers come off the informers, so the next incarnation starts clean."""
        if name not in self.controllers:
            self._build(name)  # a restart: built now, against the synced caches
        controller, context = self.controllers[name], self.contexts[name]
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(context.queue.run)
                await nursery.start(context.events.run)
                task_status.started()
                await run_controller(controller, context)
        finally:
            for informer, handler in self._handlers.pop(name, ()):
                informer.remove_event_handler(handler)
            context.queue.shut_down()
            self.controllers.pop(name, None)
            self.contexts.pop(name, None)
