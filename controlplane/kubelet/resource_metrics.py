"""The kubelet's resource metrics: what metrics-server scrapes from ``/metrics/resource``.

Once per resolution period the kubelet lists its runtime's containers, reads the usage
of those that are running, groups them by pod and reports the batch to the metrics sink
(:class:`controlplane.metrics.MetricsStore`). One list call and one ``usage()`` per
running container per period; the pod identity is parsed from a container's labels once
and remembered for as long as the container exists, so a node with many pods pays little
more than the usage reads themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.kubelet.labels import ContainerLabels, parse_container_labels
from controlplane.metrics import ContainerUsage, PodUsage
from runtime.cri import ContainerNotFound, ContainerRuntime, ContainerState

__all__ = ["UsageCollector"]


class UsageCollector:
    """Reads one node's running containers' usage into :class:`PodUsage` samples.

    Args:
        runtime: the node's engine.
        node: the node name (stamped on each sample).
        window: the window each sample covers (the report period).
    """

    def __init__(self, runtime: ContainerRuntime, *, node: str, window: float) -> None:
        self._runtime = runtime
        self._node = node
        self._window = window
        # container id -> its pod identity (None: not a kubelet's container)
        self._identity: dict[str, ContainerLabels | None] = {}

    def collect(self, now: float) -> list[PodUsage]:
        """One scrape at trio time ``now``.

        Raises:
            runtime.cri.RuntimeDown: the engine is down (nothing to report).
        """
        runtime = self._runtime
        previous = self._identity
        identity: dict[str, ContainerLabels | None] = {}
        pods: dict[str, tuple[ContainerLabels, list[ContainerUsage]]] = {}
        for info in runtime.list_containers():
            cid = info.id
            labels = previous[cid] if cid in previous else parse_container_labels(info.labels)
            identity[cid] = labels
            if labels is None or info.state is not ContainerState.RUNNING:
                continue
            try:
                cpu, memory = runtime.usage(cid)
            except ContainerNotFound:
                continue
            entry = pods.get(labels.pod_uid)
            if entry is None:
                entry = pods[labels.pod_uid] = (labels, [])
            entry[1].append(ContainerUsage(labels.name, cpu, memory))
        self._identity = identity  # forget removed containers
        return list(self._samples(pods.values(), now))

    def _samples(
        self, entries: Iterable[tuple[ContainerLabels, list[ContainerUsage]]], now: float
    ) -> Iterable[PodUsage]:
        for labels, containers in entries:
            yield PodUsage(
                namespace=labels.namespace,
                name=labels.pod_name,
                uid=labels.pod_uid,
                node=self._node,
                timestamp=now,
                window=self._window,
                containers=tuple(containers),
            )
