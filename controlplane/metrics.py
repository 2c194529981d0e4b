"""The resource metrics pipeline: what metrics-server is to a Kubernetes cluster.

Kubernetes' metrics-server scrapes every kubelet's resource metrics endpoint
(``/metrics/resource``) every ``--metric-resolution`` (15 s), keeps only the latest
scrape per node, and serves ``metrics.k8s.io`` PodMetrics (per container cpu and memory
usage, a timestamp and a window) to the HPA and ``kubectl top``. Here the direction is
reversed, to keep one timer per node and no task per pod: each kubelet *pushes* one batch
per resolution period (:meth:`MetricsStore.report`), and the :class:`MetricsStore` keeps
the latest batch per node, in memory, like metrics-server (nothing is written to the
store; PodMetrics are not API objects here).

Staleness: metrics-server drops a node's pods from what it serves as soon as a scrape of
that node fails. A push has no failed scrape to observe, so a sample here is served only
while it is younger than ``max_age`` (two resolutions by default: one missed push). A
crashed, paused or partitioned kubelet stops pushing, and its pods' metrics go missing
-- which is what the HPA's missing-pod rules are for.

The usage figures are the fake runtime's instantaneous ``usage()`` readings (cores,
bytes); the real kubelet derives CPU from a cumulative counter over the window, which is
why metrics-server needs two scrapes before it reports a pod. An instantaneous reading is
valid after one, so a pod is served from its first report on.

Everything is synchronous and in-process: one composition root (the cluster harness)
builds one store and hands it to the kubelets (which report) and to the HPA controller
(which reads). Time is trio time (virtual under a mock clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs
import structlog

__all__ = [
    "DEFAULT_METRIC_RESOLUTION",
    "ContainerUsage",
    "MetricsSink",
    "MetricsStore",
    "MetricsStoreStatistics",
    "PodUsage",
]

log = structlog.get_logger(__name__)

#: metrics-server's default ``--metric-resolution``: how often each kubelet reports.
DEFAULT_METRIC_RESOLUTION = 15.0


@attrs.frozen
class ContainerUsage:
    """One running container's usage: ``cpu`` in cores, ``memory`` in bytes."""

    name: str
    cpu: float
    memory: int


@attrs.frozen(kw_only=True)
class PodUsage:
    """One pod's sample (a ``metrics.k8s.io`` PodMetrics): the containers that were
    running when the kubelet read them, when (``timestamp``, trio time) and over which
    ``window`` (seconds) the figures hold."""

    namespace: str
    name: str
    uid: str
    node: str
    timestamp: float
    window: float
    containers: tuple[ContainerUsage, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def milli_value(self, resource: str, container: str | None = None) -> int | None:
        """The pod's usage of ``resource`` (``cpu`` or ``memory``) in milli-units, as
        the HPA's metrics client sums it (``resValue.MilliValue()``): millicores for
        cpu, millibytes for memory. ``container`` limits it to one container (None if
        that container has no sample). None if the pod has no containers or the
        resource is neither cpu nor memory (metrics-server serves only those two)."""
        if resource not in ("cpu", "memory") or not self.containers:
            return None
        total = 0
        found = False
        for c in self.containers:
            if container is not None and c.name != container:
                continue
            found = True
            total += round(c.cpu * 1000) if resource == "cpu" else c.memory * 1000
        return total if found else None


class MetricsSink:
    """What a kubelet reports to (a protocol in spirit; :class:`MetricsStore` is the one
    implementation). Kept as a base class so the kubelet depends on this small surface
    only."""

    def report(self, node: str, pods: Iterable[PodUsage], now: float) -> None:
        raise NotImplementedError


@attrs.frozen
class MetricsStoreStatistics:
    nodes: int
    pods: int
    reports: int


class MetricsStore(MetricsSink):
    """The latest usage sample of every pod, as the kubelets last reported them.

    Args:
        resolution: how often kubelets report (seconds, > 0); also each sample's window.
        max_age: a sample older than this is not served (default ``2 * resolution``).

    Raises:
        ValueError: ``resolution`` or ``max_age`` is not positive.
    """

    def __init__(
        self, *, resolution: float = DEFAULT_METRIC_RESOLUTION, max_age: float | None = None
    ) -> None:
        if not resolution > 0:
            raise ValueError(f"resolution: must be > 0, got {resolution!r}")
        if max_age is None:
            max_age = 2 * resolution
        if not max_age > 0:
            raise ValueError(f"max_age: must be > 0, got {max_age!r}")
        self.resolution = resolution
        self.max_age = max_age
        self._pods: dict[str, PodUsage] = {}  # pod key -> latest sample
        self._by_node: dict[str, dict[str, None]] = {}  # node -> pod keys of its last batch
        self._reports = 0

    def report(self, node: str, pods: Iterable[PodUsage], now: float) -> None:
        """Replace everything ``node`` reported before with ``pods`` (one scrape).

        A pod missing from the batch (stopped, deleted, moved) is no longer served for
        this node. A pod reported by two nodes (a name reused on another node) is served
        from the latest report.
        """
        self._reports += 1
        old = self._by_node.get(node, {})
        fresh: dict[str, None] = {}
        for sample in pods:
            key = sample.key
            self._pods[key] = sample
            fresh[key] = None
        for key in old:
            if key not in fresh:
                current = self._pods.get(key)
                if current is not None and current.node == node:
                    del self._pods[key]
        if fresh:
            self._by_node[node] = fresh
        else:
            self._by_node.pop(node, None)

    def forget_node(self, node: str) -> None:
        """Drop ``node``'s samples now (a machine removed from the cluster)."""
        self.report(node, (), 0.0)

    def pod_usage(self, namespace: str, name: str, now: float) -> PodUsage | None:
        """The pod's latest sample if it is fresh at ``now`` (trio time), else None."""
        sample = self._pods.get(f"{namespace}/{name}")
        if sample is None or now - sample.timestamp > self.max_age:
            return None
        return sample

    def pods_usage(
        self, namespace: str, names: Iterable[str], now: float
    ) -> Mapping[str, PodUsage]:
        """Fresh samples of the pods ``names`` in ``namespace``, by pod name (the pods
        without a fresh sample are absent: the HPA treats them as missing)."""
        out: dict[str, PodUsage] = {}
        for name in names:
            sample = self.pod_usage(namespace, name, now)
            if sample is not None:
                out[name] = sample
        return out

    def statistics(self) -> MetricsStoreStatistics:
        return MetricsStoreStatistics(
            nodes=len(self._by_node), pods=len(self._pods), reports=self._reports
        )
