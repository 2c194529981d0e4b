"""The default plugins, one module per Kubernetes plugin, and the default profile."""

from __future__ import annotations

from controlplane.scheduler.interface import FilterPlugin, ScorePlugin
from controlplane.scheduler.plugins.node_affinity import NodeAffinity
from controlplane.scheduler.plugins.node_name import NodeName
from controlplane.scheduler.plugins.node_unschedulable import NodeUnschedulable
from controlplane.scheduler.plugins.resources import (
    BalancedAllocation,
    LeastAllocated,
    NodeResourcesFit,
)
from controlplane.scheduler.plugins.spread import DefaultPodTopologySpread
from controlplane.scheduler.plugins.taint_toleration import TaintToleration

__all__ = [
    "BalancedAllocation",
    "DefaultPodTopologySpread",
    "LeastAllocated",
    "NodeAffinity",
    "NodeName",
    "NodeResourcesFit",
    "NodeUnschedulable",
    "TaintToleration",
    "default_filters",
    "default_scorers",
]


def default_filters() -> list[FilterPlugin]:
    """Filters in the default profile's order (``default_plugins.go``)."""
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodeResourcesFit()]


def default_scorers() -> list[tuple[ScorePlugin, int]]:
    """Score plugins with their default weights."""
    return [
        (TaintToleration(), 3),
        (NodeAffinity(), 2),
        (LeastAllocated(), 1),
        (DefaultPodTopologySpread(), 2),
        (BalancedAllocation(), 1),
    ]
