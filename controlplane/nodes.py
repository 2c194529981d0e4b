"""Node templates: the shape of the machines a cluster starts with or adds.

Until kubelets register their own Nodes (the nodes-run-pods milestone), the harness
registers Node objects from a template directly, like KWOK's fake nodes: capacity,
allocatable, the standard labels, taints and a Ready condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from controlplane import errors
from controlplane.api.core_node import Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, Taint
from controlplane.api.frozen import EMPTY, FrozenDict, freeze
from controlplane.api.meta import ObjectMeta
from controlplane.api.quantity import Quantity, QuantityError
from controlplane.clock import wall_now

__all__ = ["NodeTemplate", "node_object"]


def _taint(value: Taint | Mapping[str, Any], index: int) -> Taint:
    if isinstance(value, Taint):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"key", "value", "effect"}
        if not unknown:
            return Taint(**value)
        field = f"taints[{index}].{sorted(unknown)[0]}"
        raise errors.Invalid([errors.Cause(field, "unknown field")], kind="NodeTemplate")
    raise errors.Invalid(
        [
            errors.Cause(
                f"taints[{index}]", f"expected a Taint or a mapping, got {type(value).__name__}"
            )
        ],
        kind="NodeTemplate",
    )


_DEFAULT_CPU = Quantity.parse("4")
_DEFAULT_MEMORY = Quantity.parse("16Gi")


@attrs.frozen(kw_only=True)
class NodeTemplate:
    """Capacity, labels and taints for new nodes. Build one with :meth:`build` to get
    quantities checked; the defaults are Kubernetes' common test node (4 CPU, 16 Gi,
    110 pods)."""

    cpu: Quantity = _DEFAULT_CPU
    memory: Quantity = _DEFAULT_MEMORY
    pods: int = 110
    labels: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    taints: tuple[Taint, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        cpu: str | int | float = "4",
        memory: str | int = "16Gi",
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
        taints: Iterable[Taint | Mapping[str, Any]] = (),
    ) -> NodeTemplate:
        """A template from user-friendly values.

        Raises:
            errors.Invalid: a bad quantity, a negative pod count or a malformed taint;
                the cause names the field (``cpu: invalid quantity "4x"``).
        """
        causes: list[errors.Cause] = []
        parsed: dict[str, Quantity] = {}
        for field, raw in (("cpu", cpu), ("memory", memory)):
            try:
                parsed[field] = Quantity.parse(raw)
            except QuantityError as exc:
                causes.append(errors.Cause(field, str(exc)))
                continue
            if parsed[field] < Quantity.from_int(0):
                causes.append(errors.Cause(field, f"must be non-negative, got {raw!r}"))
        if isinstance(pods, bool) or not isinstance(pods, int) or pods < 0:
            causes.append(errors.Cause("pods", f"must be a non-negative integer, got {pods!r}"))
        if causes:
            raise errors.Invalid(causes, kind="NodeTemplate")
        return cls(
            cpu=parsed["cpu"],
            memory=parsed["memory"],
            pods=pods,
            labels=labels,
            taints=tuple(_taint(t, i) for i, t in enumerate(taints)),
        )


def node_object(name: str, template: NodeTemplate) -> Node:
    """The Node a kubelet with ``template``'s machine would register as ``name``."""
    resources = FrozenDict(
        {"cpu": template.cpu, "memory": template.memory, "pods": Quantity.from_int(template.pods)}
    )
    now = wall_now()
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **template.labels,
    }
    return Node(
        metadata=ObjectMeta(name=name, labels=labels),
        spec=NodeSpec(taints=template.taints),
        status=NodeStatus(
            capacity=resources,
            allocatable=resources,
            phase="Running",
            conditions=(
                NodeCondition(
                    type="Ready",
                    status="True",
                    reason="KubeletReady",
                    message="kubelet is posting ready status",
                    last_heartbeat_time=now,
                    last_transition_time=now,
                ),
            ),
            addresses=(NodeAddress(type="Hostname", address=name),),
        ),
    )
