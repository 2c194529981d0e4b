"""The kubelet: the node agent that registers its Node, renews its Lease and runs the pods
bound to it through a container runtime (``runtime.cri``).

``Kubelet`` is the actor; ``plan``, ``status``, ``probes``, ``backoff`` and ``admission``
are its pure decisions, testable without anything running.
"""

from controlplane.kubelet.kubelet import Kubelet, KubeletStatistics

__all__ = ["Kubelet", "KubeletStatistics"]
