"""``PodInfo``: what the scheduler needs to know about a pod, computed once per version.

Every filter and score plugin runs once per node, so anything derived from the pod alone
(its resource request vector, its compiled node selector, its tolerations split by effect,
its controller) is worked out here, once, and not again on each of thousands of nodes.

Requests follow ``k8s.io/component-helpers/resource.PodRequests``: the sum over app
containers, then the *init container max rule* (an init container runs alone, so the pod
needs the larger of the app sum and the largest init container, where sidecars
-- ``restartPolicy: Always`` init containers -- keep running and add up). The "non-zero"
variant substitutes 100m CPU / 200 Mi memory for a container that sets no request, so
best-effort pods still spread (``schedutil.DefaultMilliCPURequest`` and
``DefaultMemoryRequest``); only the LeastAllocated score uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from controlplane.api.core_pod import Container, Pod, Toleration
from controlplane.scheduler.affinity import CompiledSelector, compile_node_selector, compile_term

__all__ = [
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "PodInfo",
    "Requests",
    "pod_requests",
]

#: ``schedutil.DefaultMilliCPURequest``: 0.1 core for a container without a cpu request.
DEFAULT_MILLI_CPU_REQUEST = 100
#: ``schedutil.DefaultMemoryRequest``: 200 MiB for a container without a memory request.
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


class InvalidRequests(ValueError):
    """A pod's resource requests cannot be used (negative, or not quantities)."""


@attrs.frozen
class Requests:
    """A pod's request vector: ``milli_cpu``/``memory`` as requested, ``nz_*`` with the
    non-zero defaults applied per container (see the module docstring)."""

    milli_cpu: int = 0
    memory: int = 0
    nz_milli_cpu: int = 0
    nz_memory: int = 0


def _container_requests(container: Container, field: str, index: int) -> tuple[int, int, int, int]:
    requests: Mapping[str, Any] = container.resources.requests
    cpu_q = requests.get("cpu")
    mem_q = requests.get("memory")
    try:
        cpu = 0 if cpu_q is None else cpu_q.milli_value()
        mem = 0 if mem_q is None else mem_q.value()
    except AttributeError:
        raise InvalidRequests(f"spec.{field}[{index}].resources.requests: not a quantity") from None
    for name, value in (("cpu", cpu), ("memory", mem)):
        if value < 0:
            raise InvalidRequests(
                f"spec.{field}[{index}].resources.requests.{name}: must be non-negative"
            )
    nz_cpu = DEFAULT_MILLI_CPU_REQUEST if cpu_q is None else cpu
    nz_mem = DEFAULT_MEMORY_REQUEST if mem_q is None else mem
    return cpu, mem, nz_cpu, nz_mem


#: ``(containers, init_containers, requests)`` of the last valid pod_requests call: pods
#: stamped from one template (and their bound copies) share these tuples.
_last: tuple[Any, Any, Requests] = ((), (), Requests())


def pod_requests(pod: Pod) -> Requests:
    """The pod's effective requests (sum of containers, init container max rule).

    Raises:
        InvalidRequests: a request is negative or not a quantity; the message names the
            field (``spec.containers[0].resources.requests.cpu: must be non-negative``).
    """
    global _last
    spec = pod.spec
    containers, init_containers = spec.containers, spec.init_containers
    last = _last
    if containers is last[0] and init_containers is last[1]:
        return last[2]
    requests = _pod_requests(pod)
    if type(containers) is tuple and type(init_containers) is tuple:  # immutable: safe
        _last = (containers, init_containers, requests)
    return requests


def _pod_requests(pod: Pod) -> Requests:
    total = [0, 0, 0, 0]
    for i, container in enumerate(pod.spec.containers):
        for j, v in enumerate(_container_requests(container, "containers", i)):
            total[j] += v
    if pod.spec.init_containers:
        sidecars = [0, 0, 0, 0]
        init_max = [0, 0, 0, 0]
        for i, container in enumerate(pod.spec.init_containers):
            own = _container_requests(container, "initContainers", i)
            if container.restart_policy == "Always":
                for j in range(4):
                    total[j] += own[j]
                    sidecars[j] += own[j]
                need = sidecars
            else:
                need = [own[j] + sidecars[j] for j in range(4)]
            for j in range(4):
                init_max[j] = max(init_max[j], need[j])
        total = [max(total[j], init_max[j]) for j in range(4)]
    return Requests(*total)


def _split_tolerations(tolerations: tuple[Toleration, ...]) -> tuple[Toleration, ...]:
    """The tolerations that can tolerate a PreferNoSchedule taint (effect empty or
    PreferNoSchedule), as ``getAllTolerationPreferNoSchedule`` picks them."""
    return tuple(t for t in tolerations if not t.effect or t.effect == "PreferNoSchedule")


@attrs.frozen(kw_only=True)
class PodInfo:
    """One version of a pending pod, pre-digested for the plugins.

    Build with :meth:`from_pod`; ``invalid`` carries the reason the pod can never be
    scheduled as it stands (bad requests), in which case the request fields are zero.
    """

    pod: Pod
    key: str
    namespace: str
    name: str
    uid: str
    priority: int
    requests: Requests
    invalid: str | None = None
    node_name: str | None = None
    #: nodeSelector plus required node affinity; None when the pod has neither.
    required: CompiledSelector | None = None
    #: (weight, term) for each preferred node affinity term with a non-zero weight.
    preferred: tuple[tuple[int, CompiledSelector], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    prefer_tolerations: tuple[Toleration, ...] = ()
    #: ``namespace/uid`` of the controller owner: the pods to spread this one from.
    spread_key: str | None = None

    @classmethod
    def from_pod(cls, pod: Pod) -> PodInfo:
        """Digest ``pod``. Never raises for bad input: see ``invalid``."""
        meta = pod.metadata
        spec = pod.spec
        invalid = None
        try:
            requests = pod_requests(pod)
        except InvalidRequests as exc:
            requests = Requests()
            invalid = str(exc)
        affinity = spec.affinity.node_affinity if spec.affinity is not None else None
        try:
            required = compile_node_selector(
                spec.node_selector,
                affinity.required_during_scheduling_ignored_during_execution
                if affinity is not None
                else None,
            )
            preferred = tuple(
                (term.weight, compile_term(term.preference))
                for term in (
                    affinity.preferred_during_scheduling_ignored_during_execution
                    if affinity is not None
                    else ()
                )
                if term.weight
            )
        except (TypeError, ValueError, AttributeError) as exc:
            required, preferred = None, ()
            invalid = invalid or f"spec.affinity.nodeAffinity: {exc}"
        owner = meta.controller_ref()
        return cls(
            pod=pod,
            key=f"{meta.namespace}/{meta.name}",
            namespace=meta.namespace,
            name=meta.name,
            uid=meta.uid,
            priority=spec.priority or 0,
            requests=requests,
            invalid=invalid,
            node_name=spec.node_name or None,
            required=required,
            preferred=preferred,
            tolerations=spec.tolerations,
            prefer_tolerations=_split_tolerations(spec.tolerations),
            spread_key=f"{meta.namespace}/{owner.uid}" if owner is not None else None,
        )
