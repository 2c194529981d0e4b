"""Fault points for chaos scripts: ``cluster.chaos``.

Control-plane faults no real chaos tool offers (RELIABILITY.md): make the store fail or
slow down a fraction of requests, force every watcher to re-watch, force every watcher to
re-list. Machine faults: crash, restart and pause a node, kill a container. Network
faults live on ``cluster.network`` (drop, delay, partition).

The calls are synchronous so a chaos script reads as a list of faults; what they set in
motion (a kubelet restarting, containers exiting) happens as the cluster runs on.
"""

from __future__ import annotations

from typing import Any

import attrs

from controlplane import errors
from controlplane.kubelet.labels import CONTAINER_NAME, CONTAINER_TYPE, POD_UID
from controlplane.machines import Machines
from controlplane.store import Store
from runtime.cri import ContainerState

__all__ = ["Chaos"]


@attrs.define(eq=False)
class Chaos:
    store: Store
    supervisor: Any
    machines: Machines

    def compact(self) -> None:
        """Drop all retained watch history now: watches resuming from an older revision
        get ``Gone`` and must re-list."""
        self.store.compact()

    def close_watches(self) -> None:
        """End every open watch: clients must re-watch (from their last revision)."""
        self.store.close_watches()

    def store_fault(
        self,
        *,
        kind: str | type[Any] | None = None,
        verb: str | None = None,
        error: type[Exception] | None = None,
        latency: float | None = None,
        fraction: float = 1.0,
    ) -> Any:
        """Make a ``fraction`` of matching store requests fail with ``error``
        (``errors.TooManyRequests`` or ``errors.Timeout``) and/or take ``latency`` more
        virtual seconds. ``kind``/``verb`` of None match all. Returns a handle whose
        ``remove()`` lifts the fault; ``self.store.faults.clear()`` lifts all."""
        return self.store.faults.inject(
            kind=kind, verb=verb, error=error, latency=latency, fraction=fraction
        )

    def crash_node(self, name: str) -> None:
        """Power loss on node ``name``: its kubelet stops, its containers exit, its
        Lease is no longer renewed (the node goes NotReady once the lease expires).

        Raises:
            errors.NotFound: no machine of that name.
        """
        self.machines.crash(name)

    def restart_node(self, name: str) -> None:
        """Boot node ``name`` again: the engine comes back with its images and exited
        containers; a fresh kubelet adopts them and restarts pods per restartPolicy.

        Raises:
            errors.NotFound: no machine of that name.
        """
        self.machines.restart(name)

    def pause_node(self, name: str) -> None:
        """Hang node ``name``'s kubelet (no syncs, no lease renewals) and kube-proxy (no
        rule updates: it keeps routing with its last table) until :meth:`resume_node`;
        its containers keep running."""
        self.machines.pause(name)

    def resume_node(self, name: str) -> None:
        self.machines.resume(name)

    def kill_container(self, namespace: str, pod: str, container: str | None = None) -> str:
        """``docker kill`` one running container of pod ``namespace/pod`` (exit 137);
        the kubelet sees it exit and applies the restartPolicy. ``container`` defaults
        to the pod's first container. Returns the runtime id of the killed container.

        Raises:
            errors.NotFound: no such pod, the pod is not on a machine, or no such
                container is running.
        """
        obj = self.store.get_nowait("Pod", pod, namespace=namespace)
        if obj is None:
            raise errors.NotFound(
                f'pods "{pod}" not found in namespace "{namespace}"',
                kind="Pod",
                namespace=namespace,
                name=pod,
            )
        node = obj.spec.node_name
        if not node or node not in self.machines:
            raise errors.NotFound(
                f'pod "{namespace}/{pod}" is not running on any machine',
                kind="Pod",
                namespace=namespace,
                name=pod,
            )
        name = container or obj.spec.containers[0].name
        engine = self.machines.get(node).runtime
        for info in engine.list_containers():
            labels = info.labels
            if (
                labels.get(POD_UID) == obj.metadata.uid
                and labels.get(CONTAINER_NAME) == name
                and labels.get(CONTAINER_TYPE) != "init"
                and info.state is ContainerState.RUNNING
            ):
                engine.kill_container(info.id)
                return info.id
        raise errors.NotFound(
            f'container "{name}" of pod "{namespace}/{pod}" is not running',
            kind="Pod",
            namespace=namespace,
            name=pod,
        )
