"""What the kubelet writes on runtime objects so that it can find them again.

The runtime knows nothing of pods: it keeps opaque labels on sandboxes and containers.
Like the real kubelet (``io.kubernetes.pod.uid``, ``io.kubernetes.container.name`` and the
``restartCount`` annotation), we label every sandbox and container with the pod it
belongs to, and every container with its name, kind (init or regular) and restart count.
A restarted kubelet rebuilds its view of the node from these labels alone, so it adopts
the containers that survived instead of starting duplicates, and keeps restart counts.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from controlplane.api.core_pod import Container, Pod

__all__ = [
    "CONTAINER_NAME",
    "CONTAINER_TYPE",
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_UID",
    "RESTART_COUNT",
    "ContainerLabels",
    "container_labels",
    "parse_container_labels",
    "pod_key_of",
    "sandbox_labels",
]

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_TYPE = "io.kubernetes.container.type"  # "init" or "regular"
RESTART_COUNT = "io.kubernetes.container.restartCount"


@attrs.frozen
class ContainerLabels:
    """The pod-level identity a runtime container carries."""

    namespace: str
    pod_name: str
    pod_uid: str
    name: str
    init: bool
    restart_count: int

    @property
    def pod_key(self) -> str:
        return f"{self.namespace}/{self.pod_name}"


def sandbox_labels(pod: Pod) -> dict[str, str]:
    meta = pod.metadata
    return {POD_NAME: meta.name, POD_NAMESPACE: meta.namespace, POD_UID: meta.uid}


def container_labels(
    pod: Pod, container: Container, *, init: bool, restart_count: int
) -> dict[str, str]:
    return {
        **sandbox_labels(pod),
        CONTAINER_NAME: container.name,
        CONTAINER_TYPE: "init" if init else "regular",
        RESTART_COUNT: str(restart_count),
    }


def pod_key_of(labels: Mapping[str, str]) -> str | None:
    """``namespace/name`` of the pod a sandbox or container belongs to, or None if it
    was not created by a kubelet."""
    name = labels.get(POD_NAME)
    namespace = labels.get(POD_NAMESPACE)
    if name is None or namespace is None or POD_UID not in labels:
        return None
    return f"{namespace}/{name}"


def parse_container_labels(labels: Mapping[str, str]) -> ContainerLabels | None:
    """The identity in a container's labels, or None if they are not a kubelet's."""
    try:
        restart_count = int(labels.get(RESTART_COUNT, "0"))
        return ContainerLabels(
            namespace=labels[POD_NAMESPACE],
            pod_name=labels[POD_NAME],
            pod_uid=labels[POD_UID],
            name=labels[CONTAINER_NAME],
            init=labels.get(CONTAINER_TYPE) == "init",
            restart_count=restart_count,
        )
    except (KeyError, ValueError):
        return None
