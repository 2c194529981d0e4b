"""The LimitRanger admission plugin: default a new pod's container resources from the
namespace's LimitRanges, then enforce their min, max and maxLimitRequestRatio.

As Kubernetes (``plugin/pkg/admission/limitranger``), on pod create only (containers are
immutable afterwards):

1. **defaults** -- every ``type: Container`` item's ``default`` (limits) and
   ``defaultRequest`` (requests) fill the resources a container (or init container) does
   not state. LimitRange defaulting already made ``defaultRequest`` fall back to
   ``default`` and ``default`` to ``max``, so a container with no request gets the
   default limit as its request when no defaultRequest is given. The pod is annotated
   ``kubernetes.io/limit-ranger: LimitRanger plugin set: cpu request for container app``.
2. it is a mutating step, so the store validates the defaulted pod afterwards: a
   defaulted request above the container's own limit is ``Invalid``, as Kubernetes
   reports it;
3. **constraints** -- ``type: Container`` items judge each container, ``type: Pod``
   items the pod's effective requests and limits. The first LimitRange (by name) that is
   violated refuses with Kubernetes' words, several problems as ``[a, b]``::

       pods "web" is forbidden: maximum cpu usage per Container is 2, but limit is 3.

Runs before ResourceQuota, so quota charges the defaulted requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from controlplane import errors
from controlplane.api.frozen import FrozenDict
from controlplane.api.quantity import Quantity
from controlplane.quota import pod_limits, pod_requests

__all__ = ["ANNOTATION", "LimitRangeAdmission", "apply_defaults", "check_pod"]

ANNOTATION = "kubernetes.io/limit-ranger"

Res = Mapping[str, Quantity]

#: ``resource.MaxMilliValue``: beyond it Kubernetes compares whole units, not milli.
_MAX_MILLI = (2**63 - 1) // 1000


def _values(*quantities: Quantity | None) -> list[int]:
    """``requestLimitEnforcedValues``: milli-units when every value fits, else units."""
    present = [q for q in quantities if q is not None]
    if all(q.value() <= _MAX_MILLI for q in present):
        return [q.milli_value() if q is not None else 0 for q in quantities]
    return [q.value() if q is not None else 0 for q in quantities]


def _min(kind: str, name: str, enforced: Quantity, requests: Res, limits: Res) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    req_v, lim_v, enf_v = _values(req, lim, enforced)
    if req is None:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified."
    if req_v < enf_v:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {req}."
    if lim is not None and lim_v < enf_v:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {lim}."
    return None


def _max(kind: str, name: str, enforced: Quantity, requests: Res, limits: Res) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    req_v, lim_v, enf_v = _values(req, lim, enforced)
    if lim is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified."
    if lim_v > enf_v:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {lim}."
    if req is not None and req_v > enf_v:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}."
    return None


def _ratio(kind: str, name: str, enforced: Quantity, requests: Res, limits: Res) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    req_v, lim_v, _ = _values(req, lim, enforced)
    prefix = f"{name} max limit to request ratio per {kind} is {enforced}"
    if req is None or req_v == 0:
        return f"{prefix}, but no request is specified or request is 0."
    if lim is None or lim_v == 0:
        return f"{prefix}, but no limit is specified or limit is 0."
    observed = lim_v / req_v
    shown = observed
    allowed = float(enforced.value())
    if enforced.value() <= _MAX_MILLI:
        observed *= 1000
        allowed = float(enforced.milli_value())
    if observed > allowed:
        return f"{prefix}, but provided ratio is {shown:f}."
    return None


def _judge(
    item: Any, requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]
) -> list[str]:
    problems: list[str] = []
    for table, check in (
        (item.min, _min),
        (item.max, _max),
        (item.max_limit_request_ratio, _ratio),
    ):
        for name in sorted(table):
            problem = check(item.type, name, table[name], requests, limits)
            if problem is not None:
                problems.append(problem)
    return problems


def apply_defaults(limit_range: Any, pod: Any) -> Any:
    """``PodMutateLimitFunc``: ``pod`` with the Container defaults of ``limit_range``
    filled in where a container states nothing, and the ``kubernetes.io/limit-ranger``
    annotation saying what was set (the same ``pod`` if nothing was)."""
    default_requests: dict[str, Quantity] = {}
    default_limits: dict[str, Quantity] = {}
    for item in limit_range.spec.limits:
        if item.type == "Container":
            default_requests.update(item.default_request)
            default_limits.update(item.default)
    if not default_requests and not default_limits:
        return pod
    notes: list[str] = []

    def merge(container: Any, label: str) -> Any:
        res = container.resources
        set_limits = sorted(k for k in default_limits if k not in res.limits)
        set_requests = sorted(k for k in default_requests if k not in res.requests)
        if set_requests:
            notes.append(f"{', '.join(set_requests)} request for {label} {container.name}")
        if set_limits:
            notes.append(f"{', '.join(set_limits)} limit for {label} {container.name}")
        if not set_limits and not set_requests:
            return container
        resources = attrs.evolve(
            res,
            limits=FrozenDict({**res.limits, **{k: default_limits[k] for k in set_limits}}),
            requests=FrozenDict({**res.requests, **{k: default_requests[k] for k in set_requests}}),
        )
        return attrs.evolve(container, resources=resources)

    containers = tuple(merge(c, "container") for c in pod.spec.containers)
    init_containers = tuple(merge(c, "init container") for c in pod.spec.init_containers)
    if not notes:
        return pod
    spec = attrs.evolve(pod.spec, containers=containers, init_containers=init_containers)
    annotations = FrozenDict(
        {**pod.metadata.annotations, ANNOTATION: "LimitRanger plugin set: " + "; ".join(notes)}
    )
    return attrs.evolve(
        pod, metadata=attrs.evolve(pod.metadata, annotations=annotations), spec=spec
    )


def check_pod(limit_range: Any, pod: Any) -> list[str]:
    """``PodValidateLimitFunc``: every way ``pod`` violates ``limit_range`` (messages in
    Kubernetes' words), empty if none."""
    problems: list[str] = []
    for item in limit_range.spec.limits:
        if item.type == "Container":
            for container in (*pod.spec.containers, *pod.spec.init_containers):
                res = container.resources
                problems.extend(_judge(item, res.requests, res.limits))
        elif item.type == "Pod":
            problems.extend(_judge(item, pod_requests(pod), pod_limits(pod)))
    return problems


def _aggregate(problems: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message, or ``[a, b]`` deduplicated."""
    unique = list(dict.fromkeys(problems))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


class LimitRangeAdmission:
    """The admission step (see the module docstring).

    Args:
        store: the store it reads the namespace's LimitRanges from (``list_nowait``).
    """

    #: runs before validation (it changes the object)
    mutating = True

    def __init__(self, store: Any) -> None:
        self._store = store

    def admit(self, op: str, obj: Any, old: Any | None) -> Any:
        if op != "create" or type(obj).kind != "Pod":
            return obj
        meta = obj.metadata
        ranges = self._store.list_nowait("LimitRange", namespace=meta.namespace)
        if not ranges:
            return obj
        pod = obj
        for limit_range in ranges:
            pod = apply_defaults(limit_range, pod)
        for limit_range in ranges:
            problems = check_pod(limit_range, pod)
            if problems:
                raise errors.Forbidden(
                    f'pods "{meta.name}" is forbidden: {_aggregate(problems)}',
                    kind="Pod",
                    namespace=meta.namespace,
                    name=meta.name,
                )
        return pod
