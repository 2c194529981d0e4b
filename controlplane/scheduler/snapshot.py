"""The scheduler's view of the cluster: one ``NodeInfo`` per node, kept incrementally.

Kubernetes' scheduler cache (``pkg/scheduler/backend/cache``) aggregates, per node, the
requests and the pods assigned to it, and *assumes* a pod on its node as soon as the
scheduler picked it, before the bind is confirmed by the watch, so the next pod already
sees the usage. This is that cache. In one trio task a scheduling cycle runs without
awaiting, so the plugins read it directly: it cannot change under them, and no per-cycle
copy is needed.

``NodeInfo`` is mutable on purpose (the cache's private state, like the Go one); plugins
only read it. API objects inside stay frozen. Pods in phase Succeeded or Failed use no
resources; terminating pods still do, but are not counted for spreading (as
``countPodsMatchSelector`` skips them).

Each NodeInfo carries a ``resource_key`` naming its resource state (equal states, equal
keys): nodes stamped from one template with the same pods on them share it, and the
resource plugins compute once per state. The snapshot also keeps these keys as one flat
list parallel to ``nodes`` (``resource_keys``), so the framework's fast path reads a
window of 500 nodes as one slice of ints instead of 500 attribute lookups.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import attrs

from controlplane.api.core_node import Node, Taint
from controlplane.api.core_pod import Pod
from controlplane.scheduler.podinfo import InvalidRequests, Requests, pod_requests

__all__ = ["NodeInfo", "PodUsage", "Snapshot"]

#: The zone label PodTopologySpread's system default constraint spreads over.
ZONE_LABEL = "topology.kubernetes.io/zone"


def _milli(resources: Any, name: str) -> int:
    q = resources.get(name)
    return 0 if q is None else max(q.milli_value(), 0)


def _value(resources: Any, name: str) -> int:
    q = resources.get(name)
    return 0 if q is None else max(q.value(), 0)


#: Resource keys are unique in the process, so memos keyed by them never mix up two
#: states, whichever snapshot (or test) made the NodeInfos.
_KEY_IDS = itertools.count(1)


class ResourceKeys:
    """Interns resource states: the same state gets the same key while remembered."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._keys: dict[tuple[int, ...], int] = {}

    def key(self, state: tuple[int, ...]) -> int:
        key = self._keys.get(state)
        if key is None:
            if len(self._keys) >= self.LIMIT:
                self._keys.clear()  # old keys stay valid, they just stop being shared
            key = self._keys[state] = next(_KEY_IDS)
        return key


@attrs.frozen
class PodUsage:
    """What one assigned pod adds to its node."""

    requests: Requests
    #: ``namespace/controller uid`` when the pod counts for spreading, else None.
    spread_key: str | None


class NodeInfo:
    """Aggregated state of one node: allocatable, requested, pods, taints by effect.

    ``node`` is None for a node we know pods of but whose Node object we have not seen
    (or that was deleted while pods remain); such nodes are not schedulable.
    """

    __slots__ = (
        "_column",
        "_keys",
        "_slot",
        "alloc_memory",
        "alloc_milli_cpu",
        "alloc_pods",
        "hard_taints",
        "labels",
        "name",
        "node",
        "nz_memory",
        "nz_milli_cpu",
        "pods",
        "prefer_taints",
        "req_memory",
        "req_milli_cpu",
        "resource_key",
        "spread_counts",
        "unschedulable",
        "zone",
    )

    def __init__(self, name: str, keys: ResourceKeys | None = None) -> None:
        self.name = name
        self._keys = keys
        self.node: Node | None = None
        self.labels: Any = {}
        self.zone: str | None = None
        self.alloc_milli_cpu = 0
        self.alloc_memory = 0
        self.alloc_pods = 0
        self.unschedulable = False
        #: NoSchedule and NoExecute taints (the Filter's), PreferNoSchedule (the Score's).
        self.hard_taints: tuple[Taint, ...] = ()
        self.prefer_taints: tuple[Taint, ...] = ()
        self.req_milli_cpu = 0
        self.req_memory = 0
        self.nz_milli_cpu = 0
        self.nz_memory = 0
        #: pod key -> usage
        self.pods: dict[str, PodUsage] = {}
        #: spread key -> non-terminating pods of that controller on this node
        self.spread_counts: dict[str, int] = {}
        #: Names the node's resource state (allocatable, requested, pod count): equal
        #: keys mean equal states, so resource plugins memoise results by it.
        self.resource_key = 0
        #: the snapshot's ``resource_keys`` list this node's key is mirrored into, at
        #: ``_slot`` (None while the node is not in a snapshot's node list)
        self._column: list[int] | None = None
        self._slot = 0
        self._rekey()

    def _attach(self, column: list[int] | None, slot: int = 0) -> None:
        self._column = column
        self._slot = slot

    def _rekey(self) -> None:
        state = (
            self.alloc_milli_cpu,
            self.alloc_memory,
            self.alloc_pods,
            self.req_milli_cpu,
            self.req_memory,
            self.nz_milli_cpu,
            self.nz_memory,
            len(self.pods),
        )
        keys = self._keys
        self.resource_key = key = next(_KEY_IDS) if keys is None else keys.key(state)
        column = self._column
        if column is not None:
            column[self._slot] = key

    @classmethod
    def build(cls, node: Node, pods: tuple[tuple[str, PodUsage], ...] = ()) -> NodeInfo:
        """A NodeInfo for ``node`` with ``pods`` (key, usage) on it; for tests."""
        info = cls(node.metadata.name)
        info.set_node(node)
        for key, usage in pods:
            info.add(key, usage)
        return info

    def set_node(self, node: Node | None) -> None:
        self.node = node
        if node is None:
            self.labels = {}
            self.zone = None
            self.alloc_milli_cpu = self.alloc_memory = self.alloc_pods = 0
            self.unschedulable = False
            self.hard_taints = self.prefer_taints = ()
            self._rekey()
            return
        alloc = node.status.allocatable or node.status.capacity
        self.labels = node.metadata.labels
        self.zone = self.labels.get(ZONE_LABEL)
        self.alloc_milli_cpu = _milli(alloc, "cpu")
        self.alloc_memory = _value(alloc, "memory")
        self.alloc_pods = _value(alloc, "pods")
        self.unschedulable = bool(node.spec.unschedulable)
        taints = node.spec.taints
        self.hard_taints = tuple(t for t in taints if t.effect in ("NoSchedule", "NoExecute"))
        self.prefer_taints = tuple(t for t in taints if t.effect == "PreferNoSchedule")
        self._rekey()

    def add(self, key: str, usage: PodUsage) -> None:
        old = self.pods.get(key)
        if old is not None:
            self.remove(key)
        self.pods[key] = usage
        r = usage.requests
        self.req_milli_cpu += r.milli_cpu
        self.req_memory += r.memory
        self.nz_milli_cpu += r.nz_milli_cpu
        self.nz_memory += r.nz_memory
        self._rekey()
        if usage.spread_key is not None:
            counts = self.spread_counts
            counts[usage.spread_key] = counts.get(usage.spread_key, 0) + 1

    def remove(self, key: str) -> PodUsage | None:
        usage = self.pods.pop(key, None)
        if usage is None:
            return None
        r = usage.requests
        self.req_milli_cpu -= r.milli_cpu
        self.req_memory -= r.memory
        self.nz_milli_cpu -= r.nz_milli_cpu
        self.nz_memory -= r.nz_memory
        self._rekey()
        if usage.spread_key is not None:
            counts = self.spread_counts
            left = counts[usage.spread_key] - 1
            if left:
                counts[usage.spread_key] = left
            else:
                del counts[usage.spread_key]
        return usage

    @property
    def pod_count(self) -> int:
        return len(self.pods)

    def __repr__(self) -> str:
        return (
            f"<NodeInfo {self.name} cpu {self.req_milli_cpu}/{self.alloc_milli_cpu}m"
            f" mem {self.req_memory}/{self.alloc_memory} pods {len(self.pods)}/{self.alloc_pods}>"
        )


def usage_of(pod: Pod) -> PodUsage:
    """The usage an assigned pod adds to its node (zero for bad requests: the pod is
    already bound, and the kubelet, not the scheduler, must refuse it)."""
    try:
        requests = pod_requests(pod)
    except InvalidRequests:
        requests = Requests()
    meta = pod.metadata
    owner = meta.controller_ref()
    spread = None
    if owner is not None and meta.deletion_timestamp is None:
        spread = f"{meta.namespace}/{owner.uid}"
    return PodUsage(requests, spread)


def _counts(pod: Pod) -> bool:
    """Whether an assigned pod uses node resources (terminal pods do not)."""
    return pod.status.phase not in ("Succeeded", "Failed")


class Snapshot:
    """Node infos by name, the schedulable node list, and the assume bookkeeping.

    ``nodes`` is the list of NodeInfos with a Node object, in the order nodes were added
    (a rotating start index walks it, like ``nextStartNodeIndex``).
    """

    def __init__(self) -> None:
        self._keys = ResourceKeys()
        self._infos: dict[str, NodeInfo] = {}
        self._nodes: list[NodeInfo] | None = []
        #: ``resource_key`` of each of ``_nodes``, kept up to date by the NodeInfos
        self._resource_keys: list[int] = []
        #: names of nodes that are cordoned or have taints (see ``special_slots``), and
        #: of those with PreferNoSchedule taints
        self._special: set[str] = set()
        self._prefer: set[str] = set()
        #: names of nodes with a zone label (see ``zoned``)
        self._zoned: set[str] = set()
        self._special_slots: list[int] | None = []
        #: pod key -> node name, for every pod counted on a node (bound or assumed)
        self._pod_node: dict[str, str] = {}
        #: pod key -> node name, for pods assumed and not yet seen bound
        self.assumed: dict[str, str] = {}
        #: spread key -> node name -> count (nodes holding pods of that controller)
        self._spread: dict[str, dict[str, int]] = {}

    # -- reads -----------------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeInfo]:
        """The schedulable node infos (those with a Node object), in a stable order."""
        nodes = self._nodes
        if nodes is None:
            nodes = self._rebuild()
        return nodes

    @property
    def resource_keys(self) -> list[int]:
        """``[n.resource_key for n in nodes]``, maintained incrementally; read only."""
        if self._nodes is None:
            self._rebuild()
        return self._resource_keys

    @property
    def plain(self) -> bool:
        """Whether no node is cordoned or tainted (so NodeUnschedulable and the
        TaintToleration filter and score cannot tell any two nodes apart)."""
        return not self._special

    @property
    def zoned(self) -> bool:
        """Whether some node has a zone label (``topology.kubernetes.io/zone``)."""
        return bool(self._zoned)

    @property
    def prefer_tainted(self) -> bool:
        """Whether some node has a PreferNoSchedule taint (else TaintToleration scores
        every node alike)."""
        return bool(self._prefer)

    def special_slots(self) -> list[int]:
        """Indices in ``nodes`` of the cordoned or tainted nodes, ascending."""
        slots = self._special_slots
        if slots is None or self._nodes is None:
            self.nodes  # noqa: B018 (rebuilds the slots)
            infos = self._infos
            slots = self._special_slots = sorted(infos[name]._slot for name in self._special)
        return slots

    def _rebuild(self) -> list[NodeInfo]:
        self._special_slots = None
        for info in self._infos.values():
            info._attach(None)
        nodes = self._nodes = [i for i in self._infos.values() if i.node is not None]
        column = self._resource_keys = [i.resource_key for i in nodes]
        for slot, info in enumerate(nodes):
            info._attach(column, slot)
        return nodes

    def get(self, name: str) -> NodeInfo | None:
        info = self._infos.get(name)
        return info if info is not None and info.node is not None else None

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self.nodes)

    def node_of(self, pod_key: str) -> str | None:
        """The node a pod is counted on (bound or assumed), or None."""
        return self._pod_node.get(pod_key)

    def spread_nodes(self, spread_key: str) -> dict[str, int]:
        """Node name -> count of the controller's (non-terminating) pods there."""
        return self._spread.get(spread_key, {})

    # -- nodes -----------------------------------------------------------------------

    def set_node(self, node: Node) -> None:
        """Add or update a Node."""
        name = node.metadata.name
        info = self._infos.get(name)
        if info is None:
            info = self._infos[name] = NodeInfo(name, self._keys)
        if info.node is None:
            self._nodes = None
        info.set_node(node)
        special = self._special
        was = name in special
        if info.unschedulable or info.hard_taints or info.prefer_taints:
            special.add(name)
        else:
            special.discard(name)
        if was != (name in special):
            self._special_slots = None
        if info.prefer_taints:
            self._prefer.add(name)
        else:
            self._prefer.discard(name)
        if info.zone is not None:
            self._zoned.add(name)
        else:
            self._zoned.discard(name)

    def remove_node(self, name: str) -> None:
        """Forget a Node; its pods stay counted until they are deleted."""
        info = self._infos.get(name)
        if info is None:
            return
        info.set_node(None)
        self._special.discard(name)
        self._prefer.discard(name)
        self._zoned.discard(name)
        self._nodes = None
        if not info.pods:
            info._attach(None)
            del self._infos[name]

    # -- pods ------------------------------------------------------------------------

    def _place(self, key: str, node_name: str, usage: PodUsage) -> None:
        self._unplace(key)
        info = self._infos.get(node_name)
        if info is None:
            info = self._infos[node_name] = NodeInfo(node_name, self._keys)
        info.add(key, usage)
        self._pod_node[key] = node_name
        if usage.spread_key is not None:
            by_node = self._spread.setdefault(usage.spread_key, {})
            by_node[node_name] = by_node.get(node_name, 0) + 1

    def _unplace(self, key: str) -> None:
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return
        info = self._infos[node_name]
        usage = info.remove(key)
        if usage is not None and usage.spread_key is not None:
            by_node = self._spread[usage.spread_key]
            left = by_node[node_name] - 1
            if left:
                by_node[node_name] = left
            else:
                del by_node[node_name]
                if not by_node:
                    del self._spread[usage.spread_key]
        if info.node is None and not info.pods:
            info._attach(None)
            del self._infos[node_name]

    def set_pod(self, pod: Pod) -> None:
        """Record an assigned pod as the store has it (add, update, confirm an assume)."""
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.assumed.pop(key, None)
        if not pod.spec.node_name or not _counts(pod):
            self._unplace(key)
            return
        node_name = pod.spec.node_name
        usage = usage_of(pod)
        if self._pod_node.get(key) == node_name and self._infos[node_name].pods[key] == usage:
            return  # already counted so (the bind of a pod we assumed, confirmed)
        self._place(key, node_name, usage)

    def remove_pod(self, pod: Pod) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.assumed.pop(key, None)
        self._unplace(key)

    def assume(self, key: str, node_name: str, usage: PodUsage) -> None:
        """Count a pod on ``node_name`` before its bind is seen (the "assume" cache)."""
        self.assumed[key] = node_name
        self._place(key, node_name, usage)

    def forget(self, key: str) -> None:
        """Undo :meth:`assume` (the bind failed); a no-op if the pod was seen bound."""
        if self.assumed.pop(key, None) is not None:
            self._unplace(key)
