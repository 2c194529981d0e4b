"""Convergence after heal-all: desired = observed, and traffic flows again.

:func:`convergence_problems` is a pure function of the stored objects (what is not yet
converged, as short messages). :func:`await_convergence` is the liveness check the
checker runs: whenever the cluster has settled (no component has queued work) it asks
for the problems, then sends one request to each Service port with ready endpoints;
it re-checks after each store change (and retries failed requests once a second, since
traffic is not a store change) until everything holds or the deadline passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from controlplane.controllers.pods import is_active
from controlplane.scheduler.plugins.taint_toleration import tolerates_taint
from controlplane.scheduler.podinfo import InvalidRequests, pod_requests

if TYPE_CHECKING:
    from controlplane.invariants.checker import InvariantChecker

__all__ = ["await_convergence", "convergence_problems", "traffic_problems"]

#: Seconds between request retries once the objects have converged.
TRAFFIC_RETRY = 1.0


def _replicas(obj: Any) -> int:
    return 1 if obj.spec.replicas is None else obj.spec.replicas


def _node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def _fits(pod: Any, node: Any, used: dict[str, list[int]]) -> bool:
    """Whether ``pod`` could run on ``node``: Ready, schedulable, taints tolerated,
    node selector met, and room for its requests next to the pods already there."""
    if not _node_ready(node) or node.spec.unschedulable:
        return False
    for taint in node.spec.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(
            tolerates_taint(t, taint) for t in pod.spec.tolerations
        ):
            return False
    labels = node.metadata.labels
    if any(labels.get(k) != v for k, v in (pod.spec.node_selector or {}).items()):
        return False
    alloc = node.status.allocatable
    cpu, mem, count = used.get(node.metadata.name, [0, 0, 0])
    try:
        req = pod_requests(pod)
    except InvalidRequests:
        return False
    cap_cpu = alloc.get("cpu")
    cap_mem = alloc.get("memory")
    cap_pods = alloc.get("pods")
    return (
        (cap_cpu is None or cpu + req.milli_cpu <= cap_cpu.milli_value())
        and (cap_mem is None or mem + req.memory <= cap_mem.value())
        and (cap_pods is None or count + 1 <= cap_pods.value())
    )


def _usage(pods: Iterable[Any]) -> dict[str, list[int]]:
    used: dict[str, list[int]] = {}
    for pod in pods:
        node = pod.spec.node_name
        if not node or pod.status.phase in ("Succeeded", "Failed"):
            continue
        try:
            req = pod_requests(pod)
        except InvalidRequests:
            continue
        entry = used.setdefault(node, [0, 0, 0])
        entry[0] += req.milli_cpu
        entry[1] += req.memory
        entry[2] += 1
    return used


def convergence_problems(store: Any) -> list[str]:
    """What keeps the cluster from being converged (empty when it is): pending pods a
    Ready node could fit; ReplicaSets/RCs without exactly their replicas, all ready;
    Deployments not complete. Owners of pods that fit nowhere are excused from
    readiness (the cluster is too small, not unconverged). Objects being deleted and
    paused Deployments are skipped."""
    pods = store.list_nowait("Pod")
    nodes = store.list_nowait("Node")
    used = _usage(pods)
    problems: list[str] = []
    excused: set[str] = set()
    for pod in pods:
        if pod.spec.node_name or not is_active(pod):
            continue
        meta = pod.metadata
        if any(_fits(pod, node, used) for node in nodes):
            problems.append(f"pod {meta.namespace}/{meta.name} is pending but would fit")
        for ref in meta.owner_references:
            excused.add(ref.uid)
    for kind in ("ReplicaSet", "ReplicationController"):
        for rs in store.list_nowait(kind):
            meta = rs.metadata
            if meta.deletion_timestamp or meta.uid in excused:
                continue
            status = rs.status
            want = _replicas(rs)
            if (status.observed_generation or 0) < meta.generation:
                problems.append(f"{kind} {meta.namespace}/{meta.name} not observed yet")
            elif (status.replicas or 0) != want or (status.ready_replicas or 0) != want:
                problems.append(
                    f"{kind} {meta.namespace}/{meta.name}: {status.ready_replicas or 0}/"
                    f"{want} ready, {status.replicas or 0} pods"
                )
            for ref in meta.owner_references:
                if ref.uid in excused or meta.uid in excused:
                    excused.add(ref.uid)
    for dep in store.list_nowait("Deployment"):
        meta = dep.metadata
        if meta.deletion_timestamp or dep.spec.paused or meta.uid in excused:
            continue
        status = dep.status
        want = _replicas(dep)
        counts = (status.updated_replicas, status.replicas, status.available_replicas)
        if (status.observed_generation or 0) < meta.generation or any(
            (c or 0) != want for c in counts
        ):
            problems.append(
                f"Deployment {meta.namespace}/{meta.name}: {status.updated_replicas or 0}"
                f" updated, {status.available_replicas or 0} available of {want}"
            )
    return problems


async def traffic_problems(cluster: Any) -> list[str]:
    """One request to each Service port with ready endpoints; the failures (refused
    connections -- nothing listening on that port -- are not failures)."""
    store = cluster.store
    problems: list[str] = []
    for service in store.list_nowait("Service"):
        meta = service.metadata
        ip = service.spec.cluster_ip
        if not ip or ip == "None" or not service.spec.selector:
            continue
        endpoints = store.get_nowait("Endpoints", meta.name, namespace=meta.namespace)
        if endpoints is None or not any(s.addresses for s in endpoints.subsets):
            continue
        host = f"{meta.name}.{meta.namespace}.svc.cluster.local"
        for port in service.spec.ports:
            response = await cluster.request(host, port.port, b"GET /", timeout=5.0)
            if not response.ok and response.error != "ConnectionRefused":
                problems.append(f"request to {host}:{port.port} failed: {response.error}")
    return problems


async def await_convergence(
    checker: InvariantChecker, name: str, deadline: float, traffic: bool
) -> None:
    """The liveness check behind ``expect_convergence``; reports on ``checker``."""
    cluster = checker.cluster
    store = cluster.store
    problems = ["not checked before the deadline"]
    with trio.move_on_at(deadline):
        while True:
            await cluster.settle()
            revision = store.revision
            problems = convergence_problems(store)
            if not problems and traffic:
                problems = await traffic_problems(cluster)
                if problems:
                    with trio.move_on_after(TRAFFIC_RETRY):
                        await store.wait_changed(store.revision)
                    continue
            if not problems:
                checker.resolve(name)
                return
            await store.wait_changed(revision)
    checker.resolve(name)
    shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
    checker.report(name, f"not converged by the deadline: {shown}")
