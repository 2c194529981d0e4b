"""The plugin contract (``kube-scheduler/framework/interface.go``, reduced).

A plugin judges a pod against one node from the snapshot it is handed; "does not fit" is
a returned :class:`Status`, never an exception. Filter plugins implement
:class:`FilterPlugin`, score plugins :class:`ScorePlugin`; one class may be both, like
Kubernetes' NodeAffinity or TaintToleration.

A plugin may also offer the same judgement over many nodes at once, which the framework
then prefers — a Python call per node and plugin is most of the cost of a cycle at 5,000
nodes (see ``bench/scheduler.py``):

- ``filter_many(pod, nodes) -> dict[int, Status]``: the rejected nodes by index, exactly
  ``{i: s for i, n in enumerate(nodes) if (s := filter(pod, n)) is not None}``;
- ``score_many(state, pod, nodes) -> list[int]``: exactly
  ``[score(state, pod, n) for n in nodes]``.

The per-node methods stay the specification; tests check the batch ones against them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from controlplane.scheduler.podinfo import PodInfo
    from controlplane.scheduler.snapshot import NodeInfo, Snapshot

__all__ = ["MAX_NODE_SCORE", "SKIP", "Code", "FilterPlugin", "ScorePlugin", "Status"]

#: Scores are normalised to 0..MAX_NODE_SCORE before weights apply (``framework.MaxNodeScore``).
MAX_NODE_SCORE = 100


class Code(enum.Enum):
    """Why a node was rejected. Without preemption the two unschedulable codes behave
    alike here; they are kept for the statuses' sake."""

    UNSCHEDULABLE = "Unschedulable"
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"


@attrs.frozen
class Status:
    """A node rejected by ``plugin``, with the reasons the FailedScheduling message counts."""

    code: Code
    reasons: tuple[str, ...]
    plugin: str = ""


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


#: Returned by :meth:`ScorePlugin.pre_score` when the plugin has nothing to say about a pod
#: (all nodes score 0 for it), like a PreScore ``Skip`` status.
SKIP: Any = _Skip()


class FilterPlugin(Protocol):
    name: str

    def pre_filter(self, pod: PodInfo) -> bool:
        """Whether :meth:`filter` must run for this pod (False: it passes every node)."""
        ...

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None if ``pod`` fits ``node`` as far as this plugin is concerned."""
        ...


class ScorePlugin(Protocol):
    name: str

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> Any:
        """Per-cycle state for :meth:`score` and :meth:`normalize`, or :data:`SKIP`."""
        ...

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        """The raw score of ``node`` (any non-negative scale)."""
        ...

    def normalize(self, state: Any, scores: list[int]) -> None:
        """Rescale ``scores`` in place to 0..:data:`MAX_NODE_SCORE`."""
        ...


def default_normalize(scores: list[int], *, reverse: bool = False) -> None:
    """``helper.DefaultNormalizeScore``: scale so the highest becomes 100 (``reverse``:
    then flip, so the lowest raw score gets 100). All zero stays 0 (reverse: all 100)."""
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    if reverse:
        scores[:] = [MAX_NODE_SCORE - MAX_NODE_SCORE * s // highest for s in scores]
    else:
        scores[:] = [MAX_NODE_SCORE * s // highest for s in scores]
