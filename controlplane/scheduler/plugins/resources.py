"""NodeResourcesFit (Filter, and its LeastAllocated score) and
NodeResourcesBalancedAllocation (Score), over cpu (millicores), memory (bytes) and pods.

Filter (``fitsRequest``): ``Too many pods`` when the node already runs its allocatable
pod count; ``Insufficient cpu`` / ``Insufficient memory`` when a non-zero request exceeds
allocatable minus what the node's pods request. A node short of several reports each.

LeastAllocated (``leastRequestedScore``, cpu and memory weight 1 each): per resource
``(allocatable - requested) * 100 // allocatable`` where requested includes this pod,
with the non-zero defaults (100m, 200 Mi) for containers that request nothing; 0 if it
does not fit; the weighted mean of the resources whose allocatable is not zero.

BalancedAllocation (``balancedResourceScorer``): with the actual requests, fractions
``requested / allocatable`` (capped at 1); score ``int((1 - std) * 100)`` where std is
``|cpu - memory| / 2`` for the two resources. Both are already 0..100 (no normalise).

All three depend only on the pod's request vector and the node's resource state, so the
batch methods memoise by ``(pod.requests, node.resource_key)``: nodes in the same state
(a template's nodes with the same pods) are computed once, not once per cycle and node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from controlplane.scheduler.interface import MAX_NODE_SCORE, SKIP, Code, Status
from controlplane.scheduler.podinfo import PodInfo, Requests
from controlplane.scheduler.snapshot import NodeInfo, Snapshot

__all__ = ["BalancedAllocation", "LeastAllocated", "NodeResourcesFit", "least_requested_score"]

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"

_STATUSES: dict[tuple[bool, bool, bool], Status] = {}
for _pods in (False, True):
    for _cpu in (False, True):
        for _mem in (False, True):
            _reasons = tuple(
                r
                for r, on in (
                    (TOO_MANY_PODS, _pods),
                    (INSUFFICIENT_CPU, _cpu),
                    (INSUFFICIENT_MEMORY, _mem),
                )
                if on
            )
            if _reasons:
                _STATUSES[(_pods, _cpu, _mem)] = Status(
                    Code.UNSCHEDULABLE, _reasons, "NodeResourcesFit"
                )


class _Memo:
    """Results by pod request vector, then by node resource key (bounded)."""

    TABLES = 64
    ENTRIES = 65_536

    def __init__(self) -> None:
        self._tables: dict[Requests, dict[int, Any]] = {}

    def table(self, requests: Requests) -> dict[int, Any]:
        table = self._tables.get(requests)
        if table is None:
            if len(self._tables) >= self.TABLES:
                self._tables.clear()
            table = self._tables[requests] = {}
        elif len(table) >= self.ENTRIES:
            table.clear()
        return table


class NodeResourcesFit:
    name = "NodeResourcesFit"

    def __init__(self) -> None:
        self._memo = _Memo()

    def pre_filter(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        r = pod.requests
        too_many = len(node.pods) + 1 > node.alloc_pods
        cpu = r.milli_cpu > 0 and r.milli_cpu > node.alloc_milli_cpu - node.req_milli_cpu
        mem = r.memory > 0 and r.memory > node.alloc_memory - node.req_memory
        if too_many or cpu or mem:
            return _STATUSES[(too_many, cpu, mem)]
        return None

    def filter_many(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[int, Status]:
        table = self._memo.table(pod.requests)
        get = table.get
        results = [
            f if (f := get(n.resource_key)) is not None else self._fill(table, pod, n)
            for n in nodes
        ]
        return {i: f for i, f in enumerate(results) if f is not True}

    def _fill(self, table: dict[int, Any], pod: PodInfo, node: NodeInfo) -> Status | bool:
        result = self.filter(pod, node)
        table[node.resource_key] = stored = True if result is None else result
        return stored


def least_requested_score(requested: int, allocatable: int) -> int:
    """One resource's LeastAllocated score (0..100)."""
    if allocatable == 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


class LeastAllocated:
    """NodeResourcesFit's default scoring strategy (LeastAllocated, cpu:1 memory:1)."""

    name = "NodeResourcesFit"

    def __init__(self) -> None:
        self._memo = _Memo()

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> Any:
        return None

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        r = pod.requests
        total = weights = 0
        if node.alloc_milli_cpu:
            total += least_requested_score(node.nz_milli_cpu + r.nz_milli_cpu, node.alloc_milli_cpu)
            weights += 1
        if node.alloc_memory:
            total += least_requested_score(node.nz_memory + r.nz_memory, node.alloc_memory)
            weights += 1
        return total // weights if weights else 0

    def score_many(self, state: Any, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        return _memoised(self._memo.table(pod.requests), self.score, state, pod, nodes)

    def normalize(self, state: Any, scores: list[int]) -> None:
        pass


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"

    def __init__(self) -> None:
        self._memo = _Memo()

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> Any:
        """Skip best-effort pods (no cpu or memory requested), as newer kube-schedulers
        do (kubernetes#129138): "balancing" them would pile them onto one node."""
        r = pod.requests
        return SKIP if not r.milli_cpu and not r.memory else None

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        r = pod.requests
        cpu_alloc = node.alloc_milli_cpu
        mem_alloc = node.alloc_memory
        if not cpu_alloc or not mem_alloc:
            return MAX_NODE_SCORE  # fewer than two resources: std is 0
        cpu = (node.req_milli_cpu + r.milli_cpu) / cpu_alloc
        mem = (node.req_memory + r.memory) / mem_alloc
        if cpu > 1:
            cpu = 1.0
        if mem > 1:
            mem = 1.0
        return int((1 - abs(cpu - mem) / 2) * MAX_NODE_SCORE)

    def score_many(self, state: Any, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        return _memoised(self._memo.table(pod.requests), self.score, state, pod, nodes)

    def normalize(self, state: Any, scores: list[int]) -> None:
        pass


def _memoised(
    table: dict[int, int],
    score: Callable[[Any, PodInfo, NodeInfo], int],
    state: Any,
    pod: PodInfo,
    nodes: Sequence[NodeInfo],
) -> list[int]:
    get = table.get

    def fill(node: NodeInfo) -> int:
        table[node.resource_key] = value = score(state, pod, node)
        return value

    return [s if (s := get(n.resource_key)) is not None else fill(n) for n in nodes]
