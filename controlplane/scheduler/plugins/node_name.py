"""NodeName: a pod that names its node fits only that node.

Pods the scheduler sees are unbound, so this only bites for pods built by hand and fed to
the framework; it is kept for parity with the default profile.
"""

from __future__ import annotations

from controlplane.scheduler.interface import Code, Status
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.snapshot import NodeInfo

__all__ = ["ERR_REASON", "NodeName"]

ERR_REASON = "node(s) didn't match the requested node name"
_STATUS = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (ERR_REASON,), "NodeName")


class NodeName:
    name = "NodeName"

    def pre_filter(self, pod: PodInfo) -> bool:
        return pod.node_name is not None

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.node_name is None or pod.node_name == node.name:
            return None
        return _STATUS
