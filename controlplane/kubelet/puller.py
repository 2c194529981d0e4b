"""``ImagePuller``: one node's image pulls, one at a time, off the kubelet's worker.

Kubernetes pulls images serially by default (``serializeImagePulls: true``); here that
also keeps slow pulls (about a second each, more for big images) from blocking the
kubelet's single worker task. Requests for an image already queued or being pulled
join it: every waiter is told the outcome of the one pull.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio

from runtime.cri import ContainerRuntime, ImagePullError, RuntimeDown

__all__ = ["ImagePuller", "PullDone"]

#: ``done(uid, container_name, image, error_or_None, seconds_taken)``
PullDone = Callable[[str, str, str, Exception | None, float], None]


class ImagePuller:
    """Pulls images for one kubelet.

    Args:
        runtime: the node's container engine.
        on_done: called (sync) for every waiter when its image's pull ends.
        on_busy / on_idle: called when an image is queued / when its pull ended (the
            kubelet counts pulls as outstanding work).

    Start :meth:`run` in the kubelet's nursery.
    """

    def __init__(
        self,
        runtime: ContainerRuntime,
        *,
        on_done: PullDone,
        on_busy: Callable[[], None],
        on_idle: Callable[[], None],
    ) -> None:
        self._runtime = runtime
        self._on_done = on_done
        self._on_busy = on_busy
        self._on_idle = on_idle
        # Images in the order asked for, and who waits for each (dicts as ordered sets).
        # Unbounded on purpose: at most one entry per container on this node.
        self._queue: deque[str] = deque()
        self._waiters: dict[str, dict[tuple[str, str], None]] = {}
        self._wakeup = trio.Event()

    def request(self, uid: str, container_name: str, image: str) -> None:
        """Queue a pull of ``image`` for container ``container_name`` of pod ``uid``."""
        waiters = self._waiters.get(image)
        if waiters is None:
            waiters = self._waiters[image] = {}
            self._queue.append(image)
            self._on_busy()
            self._wakeup.set()
        waiters[(uid, container_name)] = None

    async def run(self) -> None:
        """Pull queued images one at a time, forever (until cancelled)."""
        while True:
            while not self._queue:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            image = self._queue[0]
            began = trio.current_time()
            error: Exception | None = None
            try:
                await self._runtime.pull_image(image)
            except (ImagePullError, RuntimeDown) as exc:
                error = exc
            self._queue.popleft()
            waiters = self._waiters.pop(image, {})
            took = trio.current_time() - began
            for uid, name in waiters:
                self._on_done(uid, name, image, error, took)
            self._on_idle()
