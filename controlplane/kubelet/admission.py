"""Node-level pod admission: does a pod fit what is left of the node's allocatable?

The scheduler normally only binds pods that fit, but its view can be stale, and pods can
be bound by hand (``spec.nodeName``), so the kubelet checks again before running a pod,
as Kubernetes' ``predicateAdmitHandler`` does: pods first, then cpu, then memory. A pod
that does not fit is rejected for good (phase Failed, reason ``OutOf<resource>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from controlplane.api.core_pod import Container, Pod
from controlplane.api.quantity import Quantity

__all__ = ["Rejection", "Resources", "admit", "check_fit", "pod_requests"]


@attrs.frozen
class Resources:
    """What pods ask for, in the units Kubernetes' messages use: millicores, bytes, pods."""

    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.milli_cpu - other.milli_cpu, self.memory - other.memory, self.pods - other.pods
        )

    @classmethod
    def of_allocatable(cls, allocatable: Mapping[str, Quantity]) -> Resources:
        cpu = allocatable.get("cpu")
        memory = allocatable.get("memory")
        pods = allocatable.get("pods")
        return cls(
            milli_cpu=cpu.milli_value() if cpu is not None else 0,
            memory=memory.value() if memory is not None else 0,
            pods=pods.value() if pods is not None else 0,
        )


@attrs.frozen
class Rejection:
    """Why a pod was not admitted: ``reason`` and ``message`` go into the pod's status."""

    reason: str
    message: str


def _container_requests(container: Container) -> tuple[int, int]:
    # Kubernetes defaults a missing request to the limit (done by API defaulting; here
    # too, in case a pod skipped it).
    resources = container.resources
    cpu = resources.requests.get("cpu") or resources.limits.get("cpu")
    memory = resources.requests.get("memory") or resources.limits.get("memory")
    return (
        cpu.milli_value() if cpu is not None else 0,
        memory.value() if memory is not None else 0,
    )


def pod_requests(pod: Pod) -> Resources:
    """The pod's effective request: the larger of the sum over its containers and the
    largest init container (init containers run one at a time), per resource."""
    cpu = memory = 0
    for container in pod.spec.containers:
        c, m = _container_requests(container)
        cpu += c
        memory += m
    for container in pod.spec.init_containers:
        c, m = _container_requests(container)
        cpu = max(cpu, c)
        memory = max(memory, m)
    return Resources(milli_cpu=cpu, memory=memory, pods=1)


def admit(pod: Pod, admitted: Iterable[Pod], allocatable: Resources) -> Rejection | None:
    """Whether ``pod`` fits next to the ``admitted`` (still running) pods; None if it
    does, else the rejection for the first resource that does not fit (pods, cpu, memory).

    The message mirrors Kubernetes': ``Pod was rejected: Node didn't have enough
    resource: cpu, requested: 8000, used: 1200, capacity: 4000``.
    """
    used = Resources()
    for other in admitted:
        used = used + pod_requests(other)
    return check_fit(pod_requests(pod), used, allocatable)


def check_fit(wanted: Resources, used: Resources, allocatable: Resources) -> Rejection | None:
    """:func:`admit` given the pod's request (:func:`pod_requests`) and the sum of the
    requests of the pods already admitted (the kubelet keeps that sum as it goes)."""
    checks = (
        ("pods", wanted.pods, used.pods, allocatable.pods),
        ("cpu", wanted.milli_cpu, used.milli_cpu, allocatable.milli_cpu),
        ("memory", wanted.memory, used.memory, allocatable.memory),
    )
    for name, requested, in_use, capacity in checks:
        if requested and requested + in_use > capacity:
            return Rejection(
                reason=f"OutOf{name}",
                message=(
                    f"Pod was rejected: Node didn't have enough resource: {name},"
                    f" requested: {requested}, used: {in_use}, capacity: {capacity}"
                ),
            )
    return None
