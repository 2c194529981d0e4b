"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take only pods that
tolerate the ``node.kubernetes.io/unschedulable:NoSchedule`` taint."""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.api.core_node import Taint
from controlplane.scheduler.interface import Code, Status
from controlplane.scheduler.plugins.taint_toleration import tolerates_taint
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.snapshot import NodeInfo

__all__ = ["ERR_REASON", "NodeUnschedulable"]

ERR_REASON = "node(s) were unschedulable"
_STATUS = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (ERR_REASON,), "NodeUnschedulable")
_TAINT = Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule")


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def pre_filter(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.unschedulable:
            return None
        for toleration in pod.tolerations:
            if tolerates_taint(toleration, _TAINT):
                return None
        return _STATUS

    def filter_many(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[int, Status]:
        out: dict[int, Status] = {}
        for i in [i for i, n in enumerate(nodes) if n.unschedulable]:
            status = self.filter(pod, nodes[i])
            if status is not None:
                out[i] = status
        return out
