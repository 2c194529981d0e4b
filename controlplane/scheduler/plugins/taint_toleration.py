"""TaintToleration: NoSchedule/NoExecute taints a pod does not tolerate rule the node out
(Filter); untolerated PreferNoSchedule taints count against it (Score, weight 3).

The filter reports the first untolerated taint, as ``FindMatchingUntoleratedTaint`` does:
``node(s) had untolerated taint {dedicated: gpu}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controlplane.api.core_node import Taint
from controlplane.api.core_pod import Toleration
from controlplane.scheduler.interface import Code, Status, default_normalize
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.snapshot import NodeInfo, Snapshot

__all__ = ["TaintToleration", "tolerates_taint", "untolerated_reason"]


def tolerates_taint(toleration: Toleration, taint: Taint) -> bool:
    """``Toleration.ToleratesTaint``: effect (empty matches all), key (empty matches all,
    only with Exists), then Exists matches any value, Equal (the default) the same value."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    operator = toleration.operator or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.value or "") == (taint.value or "")
    return False


def _tolerated(tolerations: Sequence[Toleration], taint: Taint) -> bool:
    return any(tolerates_taint(t, taint) for t in tolerations)


_STATUSES: dict[tuple[str, str], Status] = {}


def untolerated_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value or ''}}}"


def _status(taint: Taint) -> Status:
    key = (taint.key, taint.value or "")
    status = _STATUSES.get(key)
    if status is None:
        if len(_STATUSES) > 4096:  # taints are few; bound the memo anyway
            _STATUSES.clear()
        status = _STATUSES[key] = Status(
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (untolerated_reason(taint),), "TaintToleration"
        )
    return status


class TaintToleration:
    name = "TaintToleration"

    def pre_filter(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        taints = node.hard_taints
        if not taints:
            return None
        tolerations = pod.tolerations
        for taint in taints:
            if not _tolerated(tolerations, taint):
                return _status(taint)
        return None

    def filter_many(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[int, Status]:
        out: dict[int, Status] = {}
        for i in [i for i, n in enumerate(nodes) if n.hard_taints]:
            status = self.filter(pod, nodes[i])
            if status is not None:
                out[i] = status
        return out

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> Any:
        return None

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        """The number of PreferNoSchedule taints the pod does not tolerate."""
        taints = node.prefer_taints
        if not taints:
            return 0
        tolerations = pod.prefer_tolerations
        return sum(1 for taint in taints if not _tolerated(tolerations, taint))

    def score_many(self, state: Any, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        score = self.score
        return [score(state, pod, n) if n.prefer_taints else 0 for n in nodes]

    def normalize(self, state: Any, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
