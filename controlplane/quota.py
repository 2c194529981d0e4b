"""What objects count against a ResourceQuota: the usage evaluators, as pure functions.

This is Kubernetes' quota registry (``pkg/quota/v1/evaluator/core`` and
``apiserver/pkg/quota/v1/generic``) without I/O. Both sides of quota use it: the
ResourceQuota admission plugin charges one object's usage against ``status.used`` when
it is created, and the resource quota controller recomputes ``status.used`` from every
object in the namespace. Sharing one definition is what keeps the two in agreement.

Resource names, per kind:

- Pod: ``count/pods`` (every pod in storage), and, while the pod is not terminal
  (phase Succeeded/Failed) and not past its deletion grace period: ``pods``, ``cpu`` /
  ``requests.cpu``, ``limits.cpu``, ``memory`` / ``requests.memory``, ``limits.memory``,
  ``ephemeral-storage`` / ``requests.ephemeral-storage``, ``limits.ephemeral-storage``.
  Requests and limits are the pod's effective ones: the sum over containers (sidecars
  included), or the largest init container if that is more (``PodRequests``/``PodLimits``).
- Service: ``services``, ``count/services``, ``services.loadbalancers``,
  ``services.nodeports``.
- every other namespaced kind but Event: ``count/<plural>[.<group>]``
  (``count/deployments.apps``, ``count/jobs.batch``, ``count/configmaps``), plus the
  legacy aliases ``configmaps``, ``secrets``, ``replicationcontrollers``,
  ``resourcequotas``.

Scopes (``spec.scopes``) select pods only: ``Terminating`` (``activeDeadlineSeconds``
set), ``NotTerminating``, ``BestEffort`` (no cpu/memory request or limit anywhere),
``NotBestEffort``, ``PriorityClass`` (a priorityClassName is set),
``CrossNamespacePodAffinity``. A quota with scopes never matches other kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from controlplane.api.frozen import FrozenDict
from controlplane.api.kinds import KINDS, KindInfo
from controlplane.api.quantity import Quantity

__all__ = [
    "CONSTRAINED",
    "Evaluator",
    "Usage",
    "add",
    "calculate_usage",
    "compute_usage",
    "counted_kinds",
    "evaluator_for",
    "is_best_effort",
    "mask",
    "missing_requirements",
    "object_count_name",
    "pod_charged",
    "pod_limits",
    "pod_matches_scope",
    "pod_requests",
    "pod_usage",
    "pretty",
    "quota_kinds",
    "service_usage",
    "sync_status",
]

#: resource name -> quantity; plain dicts while computing, FrozenDicts once stored.
Usage = Mapping[str, Quantity]

ZERO = Quantity(0)
ONE = Quantity.from_int(1)

#: The compute resources a pod is charged for; ``cpu``/``memory`` mean requests.
_COMPUTE = ("cpu", "memory", "ephemeral-storage")

#: If a quota limits one of these, every container must state it (Kubernetes keeps this
#: "mistake" for backward compatibility: ``validationSet`` in the pod evaluator).
CONSTRAINED = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)

#: Kinds quota never counts (Kubernetes' ignored resources): events would cost a write
#: of the quota per event.
_IGNORED_KINDS = frozenset({"Event"})

_LEGACY_ALIASES = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "ReplicationController": "replicationcontrollers",
    "ResourceQuota": "resourcequotas",
}


def object_count_name(info: KindInfo) -> str:
    """``count/<resource>.<group>`` (``count/<resource>`` for the core group)."""
    return f"count/{info.plural}.{info.group}" if info.group else f"count/{info.plural}"


# -- arithmetic on resource lists -------------------------------------------------------


def add(a: Usage, b: Usage) -> dict[str, Quantity]:
    """``a + b`` key by key (a key in only one of them keeps its value)."""
    result = dict(a)
    for key, value in b.items():
        current = result.get(key)
        result[key] = value if current is None else current + value
    return result


def mask(usage: Usage, names: Iterable[str]) -> dict[str, Quantity]:
    """Only the entries of ``usage`` named in ``names``."""
    keep = set(names)
    return {k: v for k, v in usage.items() if k in keep}


def pretty(usage: Usage) -> str:
    """``requests.cpu=500m,pods=1`` with names sorted, as Kubernetes prints quota errors."""
    return ",".join(f"{k}={usage[k]}" for k in sorted(usage))


# -- pods -------------------------------------------------------------------------------


def _effective(pod: Any, field: str) -> dict[str, Quantity]:
    """Kubernetes' ``PodRequests``/``PodLimits``: the sum over containers and sidecars
    (restartable init containers), or the peak of the init phase if that is larger."""
    total: dict[str, Quantity] = {}
    for container in pod.spec.containers:
        total = add(total, getattr(container.resources, field))
    if not pod.spec.init_containers:
        return total
    sidecars: dict[str, Quantity] = {}
    init_peak: dict[str, Quantity] = {}
    for container in pod.spec.init_containers:
        own = getattr(container.resources, field)
        if container.restart_policy == "Always":
            total = add(total, own)
            sidecars = add(sidecars, own)
            need = sidecars
        else:
            need = add(own, sidecars)
        for key, value in need.items():
            if key not in init_peak or value > init_peak[key]:
                init_peak[key] = value
    for key, value in init_peak.items():
        if key not in total or value > total[key]:
            total[key] = value
    return total


def pod_requests(pod: Any) -> dict[str, Quantity]:
    """The pod's effective requests by resource name."""
    return _effective(pod, "requests")


def pod_limits(pod: Any) -> dict[str, Quantity]:
    """The pod's effective limits by resource name."""
    return _effective(pod, "limits")


def compute_usage(requests: Usage, limits: Usage) -> dict[str, Quantity]:
    """``podComputeUsageHelper``: ``pods=1`` plus the quota names of the requests and
    limits given (``requests.cpu`` and ``cpu`` for a cpu request ...)."""
    result: dict[str, Quantity] = {"pods": ONE}
    for name in _COMPUTE:
        request = requests.get(name)
        if request is not None:
            result[name] = request
            result[f"requests.{name}"] = request
        limit = limits.get(name)
        if limit is not None:
            result[f"limits.{name}"] = limit
    return result


def pod_charged(pod: Any, now: datetime) -> bool:
    """``QuotaV1Pod``: whether a pod's compute resources count. Terminal pods do not, nor
    pods whose deletion grace period has run out (a lost node must not hold quota)."""
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    meta = pod.metadata
    if meta.deletion_timestamp is not None and meta.deletion_grace_period_seconds is not None:
        expiry = meta.deletion_timestamp + timedelta(seconds=meta.deletion_grace_period_seconds)
        if now > expiry:
            return False
    return True


def pod_usage(pod: Any, now: datetime) -> dict[str, Quantity]:
    """What ``pod`` counts: ``count/pods`` always, the rest while it is charged."""
    result: dict[str, Quantity] = {"count/pods": ONE}
    if not pod_charged(pod, now):
        return result
    return add(result, compute_usage(pod_requests(pod), pod_limits(pod)))


def is_best_effort(pod: Any) -> bool:
    """QoS class BestEffort: no container states a cpu or memory request or limit."""
    for container in (*pod.spec.init_containers, *pod.spec.containers):
        res = container.resources
        for name in ("cpu", "memory"):
            if name in res.requests or name in res.limits:
                return False
    return True


def _cross_namespace_affinity(pod: Any) -> bool:
    affinity = pod.spec.affinity
    if affinity is None:
        return False
    for group in (affinity.pod_affinity, affinity.pod_anti_affinity):
        if group is None:
            continue
        terms = [
            *group.required_during_scheduling_ignored_during_execution,
            *(
                w.pod_affinity_term
                for w in group.preferred_during_scheduling_ignored_during_execution
            ),
        ]
        if any(t.namespaces or t.namespace_selector is not None for t in terms):
            return True
    return False


def pod_matches_scope(scope: str, pod: Any) -> bool:
    """``podMatchesScopeFunc`` for the scope names of ``spec.scopes``."""
    if scope in ("Terminating", "NotTerminating"):
        deadline = pod.spec.active_deadline_seconds
        terminating = deadline is not None and deadline >= 0
        return terminating if scope == "Terminating" else not terminating
    if scope == "BestEffort":
        return is_best_effort(pod)
    if scope == "NotBestEffort":
        return not is_best_effort(pod)
    if scope == "PriorityClass":
        return bool(pod.spec.priority_class_name)
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(pod)
    return False


def missing_requirements(pod: Any, required: Iterable[str]) -> dict[str, list[str]]:
    """The pod evaluator's ``Constraints``: for each of ``required`` that quota insists
    on (see :data:`CONSTRAINED`), the containers that do not state it."""
    wanted = set(required) & CONSTRAINED
    missing: dict[str, set[str]] = {}
    if not wanted:
        return {}
    for container in (*pod.spec.containers, *pod.spec.init_containers):
        res = container.resources
        have = compute_usage(res.requests, res.limits)
        for name in wanted - have.keys():
            missing.setdefault(name, set()).add(container.name)
    return {name: sorted(names) for name, names in sorted(missing.items())}


# -- services ---------------------------------------------------------------------------


def service_usage(service: Any, now: datetime | None = None) -> dict[str, Quantity]:
    """What a Service counts; node ports by intent (they may not be allocated yet)."""
    spec = service.spec
    ports = len(spec.ports)
    result = {
        "count/services": ONE,
        "services": ONE,
        "services.loadbalancers": ZERO,
        "services.nodeports": ZERO,
    }
    if spec.type == "NodePort":
        result["services.nodeports"] = Quantity.from_int(ports)
    elif spec.type == "LoadBalancer":
        if spec.allocate_load_balancer_node_ports is False:
            explicit = sum(1 for p in spec.ports if p.node_port)
            result["services.nodeports"] = Quantity.from_int(explicit)
        else:
            result["services.nodeports"] = Quantity.from_int(ports)
        result["services.loadbalancers"] = ONE
    return result


# -- evaluators -------------------------------------------------------------------------


def _no_scope(scope: str, obj: Any) -> bool:
    return False


@attrs.frozen
class Evaluator:
    """How quota measures one kind.

    ``resources``: the quota names it can measure; ``operations``: the admission
    operations that can change its usage (create; update too for services);
    ``usage(obj, now)``; ``scope(scope_name, obj)``: whether ``obj`` is in a scope.
    """

    kind: str
    resources: frozenset[str]
    operations: frozenset[str]
    usage: Callable[[Any, datetime], dict[str, Quantity]]
    scope: Callable[[str, Any], bool] = _no_scope

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        """The names in ``names`` this evaluator measures, sorted."""
        return sorted(n for n in names if n in self.resources)

    def matches(self, quota: Any, obj: Any, hard: Usage | None = None) -> bool:
        """``generic.Matches``: the quota limits something this kind uses (in
        ``hard``, default ``status.hard``) and ``obj`` is in all the quota's scopes."""
        names = quota.status.hard if hard is None else hard
        if not self.matching_resources(names):
            return False
        return all(self.scope(s, obj) for s in quota.spec.scopes)


_POD_RESOURCES = frozenset(
    {
        "count/pods",
        "pods",
        *_COMPUTE,
        *(f"requests.{n}" for n in _COMPUTE),
        *(f"limits.{n}" for n in _COMPUTE),
    }
)
_SERVICE_RESOURCES = frozenset(
    {"count/services", "services", "services.loadbalancers", "services.nodeports"}
)


def _object_count(name: str, alias: str | None) -> Callable[[Any, datetime], dict[str, Quantity]]:
    def usage(obj: Any, now: datetime) -> dict[str, Quantity]:
        return {name: ONE} if alias is None else {name: ONE, alias: ONE}

    return usage


def _build_evaluators() -> dict[str, Evaluator]:
    result: dict[str, Evaluator] = {}
    for info in KINDS:
        if not info.namespaced or info.kind in _IGNORED_KINDS:
            continue
        if info.kind == "Pod":
            result["Pod"] = Evaluator(
                "Pod", _POD_RESOURCES, frozenset({"create"}), pod_usage, pod_matches_scope
            )
        elif info.kind == "Service":
            result["Service"] = Evaluator(
                "Service", _SERVICE_RESOURCES, frozenset({"create", "update"}), service_usage
            )
        else:
            name = object_count_name(info)
            alias = _LEGACY_ALIASES.get(info.kind)
            names = frozenset({name} if alias is None else {name, alias})
            result[info.kind] = Evaluator(
                info.kind, names, frozenset({"create"}), _object_count(name, alias)
            )
    return result


_EVALUATORS = _build_evaluators()


def evaluator_for(kind: str) -> Evaluator | None:
    """The evaluator for ``kind`` (a kind name), None if quota does not count it."""
    return _EVALUATORS.get(kind)


def quota_kinds(names: Iterable[str]) -> list[str]:
    """The kinds whose objects a quota limiting ``names`` must look at, sorted."""
    names = list(names)
    return sorted(k for k, e in _EVALUATORS.items() if e.matching_resources(names))


def counted_kinds() -> list[str]:
    """Every kind quota counts (what the quota controller monitors)."""
    return sorted(_EVALUATORS)


# -- the controller's computation ------------------------------------------------------


def calculate_usage(
    quota: Any, objects: Mapping[str, Iterable[Any]], now: datetime
) -> dict[str, Quantity]:
    """``quota.CalculateUsage``: the usage of everything ``quota.spec.hard`` limits.

    ``objects`` maps a kind name to all objects of that kind in the quota's namespace
    (at least the kinds :func:`quota_kinds` names). Every measured resource appears,
    zero if nothing uses it; names no evaluator measures are left out.
    """
    hard = list(quota.spec.hard)
    scopes = quota.spec.scopes
    result: dict[str, Quantity] = {}
    for kind in quota_kinds(hard):
        evaluator = _EVALUATORS[kind]
        wanted = evaluator.matching_resources(hard)
        used: dict[str, Quantity] = dict.fromkeys(wanted, ZERO)
        for obj in objects.get(kind, ()):
            if all(evaluator.scope(s, obj) for s in scopes):
                used = add(used, mask(evaluator.usage(obj, now), wanted))
        result = add(result, used)
    return result


def sync_status(quota: Any, objects: Mapping[str, Iterable[Any]], now: datetime) -> Any:
    """The status the quota controller writes: ``hard`` = ``spec.hard``, ``used`` =
    the observed usage, keeping earlier observations of names nothing measures, masked
    to the names in ``hard`` (``syncResourceQuota``)."""
    hard = quota.spec.hard
    used = dict(quota.status.used)
    used.update(calculate_usage(quota, objects, now))
    used = mask(used, hard)
    return attrs.evolve(quota.status, hard=hard, used=FrozenDict(used))
