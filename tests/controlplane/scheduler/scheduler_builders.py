"""Builders for scheduler tests: nodes, pods and snapshots in one line each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.api.core import (
    Affinity,
    Container,
    Node,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeSpec,
    NodeStatus,
    Pod,
    PodSpec,
    PreferredSchedulingTerm,
    Taint,
    Toleration,
)
from controlplane.api.core_pod import ResourceRequirements
from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.nodes import NodeTemplate
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.snapshot import Snapshot

GI = 1024**3


def make_node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "16Gi",
    pods: int = 110,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Taint | Mapping[str, Any]] = (),
    unschedulable: bool = False,
) -> Node:
    """A Node like the harness registers (without timestamps, so no trio needed)."""
    template = NodeTemplate.build(cpu=cpu, memory=memory, pods=pods, labels=labels, taints=taints)
    resources = {"cpu": template.cpu, "memory": template.memory, "pods": str(pods)}
    return Node(
        metadata=ObjectMeta(name=name, labels={"kubernetes.io/hostname": name, **template.labels}),
        spec=NodeSpec(taints=template.taints, unschedulable=unschedulable or None),
        status=NodeStatus(capacity=resources, allocatable=resources),
    )


def container(cpu: str | None = None, memory: str | None = None, **kw: Any) -> Container:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    return Container(
        name=kw.pop("name", "c"),
        image="app:1",
        resources=ResourceRequirements(requests=requests),
        **kw,
    )


def make_pod(
    name: str = "p",
    *,
    cpu: str | None = None,
    memory: str | None = None,
    namespace: str = "default",
    containers: Iterable[Container] | None = None,
    init_containers: Iterable[Container] = (),
    tolerations: Iterable[Toleration] = (),
    node_selector: Mapping[str, str] | None = None,
    required: Iterable[NodeSelectorTerm] | None = None,
    preferred: Iterable[tuple[int, NodeSelectorTerm]] = (),
    owner_uid: str | None = None,
    labels: Mapping[str, str] | None = None,
    priority: int | None = None,
    uid: str = "",
    node_name: str | None = None,
) -> Pod:
    node_affinity = None
    if required is not None or preferred:
        node_affinity = NodeAffinity(
            required_during_scheduling_ignored_during_execution=(
                NodeSelector(node_selector_terms=tuple(required)) if required is not None else None
            ),
            preferred_during_scheduling_ignored_during_execution=tuple(
                PreferredSchedulingTerm(weight=w, preference=t) for w, t in preferred
            ),
        )
    owners = ()
    if owner_uid is not None:
        owners = (
            OwnerReference(
                api_version="apps/v1", kind="ReplicaSet", name="rs", uid=owner_uid, controller=True
            ),
        )
    return Pod(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            uid=uid or f"uid-{name}",
            labels=labels,
            owner_references=owners,
        ),
        spec=PodSpec(
            containers=tuple(containers) if containers is not None else (container(cpu, memory),),
            init_containers=tuple(init_containers),
            tolerations=tuple(tolerations),
            node_selector=node_selector,
            affinity=Affinity(node_affinity=node_affinity) if node_affinity else None,
            priority=priority,
            node_name=node_name,
        ),
    )


def info(pod: Pod | None = None, **kw: Any) -> PodInfo:
    return PodInfo.from_pod(pod if pod is not None else make_pod(**kw))


def expr(key: str, operator: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key=key, operator=operator, values=values)


def term(*expressions: NodeSelectorRequirement, fields: Iterable[NodeSelectorRequirement] = ()):
    return NodeSelectorTerm(match_expressions=expressions, match_fields=tuple(fields))


def snapshot_of(nodes: Iterable[Node], pods: Iterable[Pod] = ()) -> Snapshot:
    snap = Snapshot()
    for node in nodes:
        snap.set_node(node)
    for pod in pods:
        snap.set_pod(pod)
    return snap
