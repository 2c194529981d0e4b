"""NodeAffinity: ``nodeSelector`` and required node affinity (Filter); the summed weights
of matching preferred terms (Score, weight 2, normalised so the best node gets 100)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controlplane.scheduler.interface import SKIP, Code, Status, default_normalize
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.snapshot import NodeInfo, Snapshot

__all__ = ["ERR_REASON", "NodeAffinity"]

ERR_REASON = "node(s) didn't match Pod's node affinity/selector"
_STATUS = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (ERR_REASON,), "NodeAffinity")


class NodeAffinity:
    name = "NodeAffinity"

    def pre_filter(self, pod: PodInfo) -> bool:
        return pod.required is not None

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        required = pod.required
        if required is None or required.matches(node.labels, node.name):
            return None
        return _STATUS

    def filter_many(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[int, Status]:
        required = pod.required
        if required is None:
            return {}
        matches = required.matches
        return {i: _STATUS for i, n in enumerate(nodes) if not matches(n.labels, n.name)}

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> Any:
        return None if pod.preferred else SKIP

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        labels, name = node.labels, node.name
        return sum(weight for weight, term in pod.preferred if term.matches(labels, name))

    def normalize(self, state: Any, scores: list[int]) -> None:
        default_normalize(scores)
