"""The scheduling framework: filter the nodes, score the feasible ones, pick the best.

One synchronous call per pod (:meth:`Framework.schedule`), over the snapshot as it is, so
the cycle sees a consistent cluster (nothing awaits in between). It follows
``schedule_one.go``:

- **sampling** (``numFeasibleNodesToFind``): with fewer than 100 nodes every node is
  checked; otherwise filtering stops once ``max(5, 50 - nodes/125)`` percent of the
  nodes (at least 100) were found feasible. Each cycle starts where the last one stopped
  (``nextStartNodeIndex``), so the load is spread over the whole node list;
- **filters** run in profile order and stop at the first that rejects a node; a filter
  whose ``pre_filter`` says so is skipped for the pod;
- **scores**: each plugin scores the feasible nodes, normalises to 0..100, and its
  weight multiplies the result; the totals are summed. With one feasible node scoring is
  skipped;
- **selectHost**: the highest total wins; ties are broken by reservoir sampling with the
  scheduler's seeded ``random.Random`` (each of ``k`` tied nodes replaces the choice with
  probability ``1/k``), so the choice is uniform and reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import attrs

from controlplane.scheduler.interface import SKIP, FilterPlugin, ScorePlugin, Status
from controlplane.scheduler.messages import NO_NODES_AVAILABLE, fit_error_message
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.snapshot import NodeInfo, Snapshot

__all__ = [
    "MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND",
    "MIN_FEASIBLE_NODES_TO_FIND",
    "FitError",
    "Framework",
    "ScheduleResult",
    "num_feasible_nodes_to_find",
]

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


def num_feasible_nodes_to_find(num_all_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes a cycle looks for (``numFeasibleNodesToFind``).

    ``percentage`` is ``percentageOfNodesToScore``; 0 selects the adaptive default
    ``max(5, 50 - num_all_nodes // 125)``.
    """
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage <= 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    found = num_all_nodes * percentage // 100
    return max(found, MIN_FEASIBLE_NODES_TO_FIND)


@attrs.frozen
class ScheduleResult:
    """The chosen node, and how many nodes were evaluated / found feasible."""

    node_name: str
    evaluated_nodes: int
    feasible_nodes: int


@attrs.frozen
class FitError:
    """No node fits: the per-node rejections, or a reason that holds for every node."""

    num_all_nodes: int
    statuses: dict[str, Status] = attrs.field(factory=dict)
    pre_filter_message: str | None = None

    @property
    def message(self) -> str:
        if self.num_all_nodes == 0 and not self.pre_filter_message:
            return NO_NODES_AVAILABLE
        return fit_error_message(
            self.num_all_nodes, self.statuses.values(), self.pre_filter_message
        )


class Framework:
    """A profile: filter plugins in order, score plugins with weights.

    Args:
        filters: run in this order; the first rejection counts.
        scorers: ``(plugin, weight)`` pairs.
        percentage_of_nodes_to_score: 0 for the adaptive default (see the module docstring).

    The only state is the rotating start index; ``schedule`` is otherwise pure.
    """

    def __init__(
        self,
        filters: Sequence[FilterPlugin],
        scorers: Sequence[tuple[ScorePlugin, int]],
        *,
        percentage_of_nodes_to_score: int = 0,
    ) -> None:
        self.filters = tuple(filters)
        self.scorers = tuple(scorers)
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.next_start_node_index = 0

    def schedule(
        self, pod: PodInfo, snapshot: Snapshot, rng: random.Random
    ) -> ScheduleResult | FitError:
        """Pick a node for ``pod``, or say why none fits. Never raises for bad input."""
        nodes = snapshot.nodes
        if pod.invalid is not None:
            return FitError(len(nodes), pre_filter_message=pod.invalid)
        if not nodes:
            return FitError(0)
        feasible, statuses = self.find_feasible(pod, nodes)
        if not feasible:
            return FitError(len(nodes), statuses)
        evaluated = len(feasible) + len(statuses)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1)
        totals = self.score(pod, feasible, snapshot)
        chosen = select_host(feasible, totals, rng)
        return ScheduleResult(chosen.name, evaluated, len(feasible))

    def find_feasible(
        self, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[list[NodeInfo], dict[str, Status]]:
        """Filter nodes from the rotating start index until enough are feasible.

        Works in chunks (as many nodes as feasible ones are still wanted, at least
        :data:`CHUNK`), each filter judging the chunk's remaining candidates at once; the
        outcome is exactly that of judging node by node and stopping at the last node
        needed (nodes judged beyond it are neither feasible nor counted as processed).
        """
        n = len(nodes)
        wanted = num_feasible_nodes_to_find(n, self.percentage_of_nodes_to_score)
        start = self.next_start_node_index % n
        filters = [_many_filter(f) for f in self.filters if f.pre_filter(pod)]
        order = nodes[start:] + nodes[:start] if start else nodes
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        pos = 0
        while pos < n and len(feasible) < wanted:
            chunk = order[pos : pos + max(wanted - len(feasible), CHUNK)]
            rejected = _reject(filters, pod, chunk)
            if not rejected:
                need = wanted - len(feasible)
                feasible.extend(chunk[:need])
                pos += min(need, len(chunk))
                break
            for j, node in enumerate(chunk):
                status = rejected.get(j)
                if status is None:
                    feasible.append(node)
                    if len(feasible) >= wanted:
                        pos += j + 1
                        break
                else:
                    statuses[node.name] = status
            else:
                pos += len(chunk)
        self.next_start_node_index = (start + pos) % n
        return feasible, statuses

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> list[int]:
        """Weighted totals per node (same order as ``nodes``), up to a constant: a plugin
        that gives every node the same score is left out, since it cannot change which
        node wins."""
        totals = [0] * len(nodes)
        for plugin, weight in self.scorers:
            state = plugin.pre_score(pod, nodes, snapshot)
            if state is SKIP:
                continue
            many = getattr(plugin, "score_many", None)
            if many is not None:
                scores = many(state, pod, nodes)
            else:
                score = plugin.score
                scores = [score(state, pod, node) for node in nodes]
            plugin.normalize(state, scores)
            if scores.count(scores[0]) == len(scores):
                continue  # the same for every node: cannot change the choice
            if weight == 1:
                totals = [t + s for t, s in zip(totals, scores)]
            else:
                totals = [t + weight * s for t, s in zip(totals, scores)]
        return totals


#: The smallest chunk of nodes filtered at once (see ``Framework.find_feasible``).
CHUNK = 64

ManyFilter = Callable[[PodInfo, Sequence[NodeInfo]], dict[int, Status]]


def _many_filter(plugin: FilterPlugin) -> ManyFilter:
    many = getattr(plugin, "filter_many", None)
    if many is not None:
        return many  # type: ignore[no-any-return]
    check = plugin.filter

    def filter_many(pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[int, Status]:
        out = {}
        for i, node in enumerate(nodes):
            status = check(pod, node)
            if status is not None:
                out[i] = status
        return out

    return filter_many


def _reject(filters: list[ManyFilter], pod: PodInfo, chunk: list[NodeInfo]) -> dict[int, Status]:
    """Index in ``chunk`` -> the status of the first filter that rejects that node."""
    rejected: dict[int, Status] = {}
    candidates = chunk
    index: list[int] | None = None  # candidates[i] is chunk[index[i]] (None: identity)
    for filter_many in filters:
        if not candidates:
            break
        out = filter_many(pod, candidates)
        if not out:
            continue
        for i, status in out.items():
            rejected[i if index is None else index[i]] = status
        keep = [i for i in range(len(candidates)) if i not in out]
        candidates = [candidates[i] for i in keep]
        index = keep if index is None else [index[i] for i in keep]
    return rejected


def select_host(nodes: Sequence[NodeInfo], totals: Sequence[int], rng: random.Random) -> NodeInfo:
    """The node with the highest total; among ties, each equally likely.

    kube-scheduler's reservoir sampling (the k-th tie replaces the choice with
    probability 1/k) picks uniformly among the tied nodes; one draw among them gives
    the same distribution with one call to ``rng`` instead of one per tie.
    """
    best = max(totals)
    tied = [i for i, total in enumerate(totals) if total == best]
    if len(tied) == 1:
        return nodes[tied[0]]
    return nodes[tied[rng.randrange(len(tied))]]
