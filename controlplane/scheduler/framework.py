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

**Fast path** (:class:`_FastPath`): with the default plugins, a pod without nodeName,
nodeSelector or required node affinity can only be told apart from node to node by its
resources, except on the (usually few) cordoned or tainted nodes. NodeResourcesFit,
LeastAllocated and BalancedAllocation depend only on the pod's request vector and the
node's resource state, so one memo per request vector maps a node's ``resource_key`` to
one int: the weighted sum of the two scores if the pod fits, else a negative code naming
the NodeResourcesFit status. Filtering a window of nodes is then a slice of the
snapshot's ``resource_keys`` and one ``map`` over the memo; the cordoned or tainted
nodes in the window (the snapshot keeps their positions) go through the whole filter
chain in profile order. The other scorers (spreading, preferred affinity, and
TaintToleration once some node has a PreferNoSchedule taint) run as in the general path
over the feasible nodes and add to the totals. A sum of scores picks the same best
nodes, in the same order, as the general path's sum that leaves out plugins scoring
every node the same (a constant does not change which node is highest), so the choice,
the random draws, the rotation and the FitError are exactly those of the general path;
tests check this on random clusters.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import compress, count, islice, repeat
from operator import add, gt, mul
from typing import Any

import attrs

from controlplane.scheduler.interface import SKIP, FilterPlugin, ScorePlugin, Status
from controlplane.scheduler.messages import NO_NODES_AVAILABLE, fit_error_message
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
from controlplane.scheduler.podinfo import PodInfo, Requests
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

    The only state is the rotating start index (and the fast path's memo, which holds
    results, not decisions); ``schedule`` is otherwise pure. ``fast_path=False`` turns
    the fast path off (tests compare the two).
    """

    def __init__(
        self,
        filters: Sequence[FilterPlugin],
        scorers: Sequence[tuple[ScorePlugin, int]],
        *,
        percentage_of_nodes_to_score: int = 0,
        fast_path: bool = True,
    ) -> None:
        self.filters = tuple(filters)
        self.scorers = tuple(scorers)
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.next_start_node_index = 0
        self._fast = _FastPath.build(self.filters, self.scorers) if fast_path else None

    def schedule(
        self, pod: PodInfo, snapshot: Snapshot, rng: random.Random
    ) -> ScheduleResult | FitError:
        """Pick a node for ``pod``, or say why none fits. Never raises for bad input."""
        nodes = snapshot.nodes
        if pod.invalid is not None:
            return FitError(len(nodes), pre_filter_message=pod.invalid)
        if not nodes:
            return FitError(0)
        fast = self._fast
        if fast is not None and fast.applies(pod, snapshot):
            return self._schedule_fast(fast, pod, snapshot, nodes, rng)
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
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        pos = 0
        while pos < n and len(feasible) < wanted:
            chunk = _window(nodes, start + pos, min(max(wanted - len(feasible), CHUNK), n - pos))
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

    def _schedule_fast(
        self,
        fast: _FastPath,
        pod: PodInfo,
        snapshot: Snapshot,
        nodes: list[NodeInfo],
        rng: random.Random,
    ) -> ScheduleResult | FitError:
        """:meth:`schedule` when :meth:`_FastPath.applies` (see the module docstring)."""
        n = len(nodes)
        keys = snapshot.resource_keys
        wanted = num_feasible_nodes_to_find(n, self.percentage_of_nodes_to_score)
        start = self.next_start_node_index % n
        table = fast.table(pod)
        get = table.get
        special = () if snapshot.plain else snapshot.special_slots()
        chain: list[FilterPlugin] | None = None  # the pod's filters, for special nodes

        def lookup(offset: int, size: int) -> tuple[list[int], bool]:
            """Values for ``size`` nodes from ``start + offset`` on, and whether a
            special node among them was rejected."""
            nonlocal chain
            window = _window(keys, start + offset, size)
            try:
                values = list(map(table.__getitem__, window))
            except KeyError:  # resource states not seen yet with these requests
                values = fast.fill(table, pod, snapshot, start + offset, list(map(get, window)))
            rejected = False
            if special:  # cordoned or tainted: every filter judges these, in profile order
                first = (start + offset) % n
                for slot in _slots_in(special, first, size, n):
                    if chain is None:
                        chain = [f for f in self.filters if f.pre_filter(pod)]
                    status = _first_rejection(chain, pod, nodes[slot])
                    if status is not None:
                        values[(slot - first) % n] = fast.code(status)
                        rejected = True
            return values, rejected

        values, rejected_special = lookup(0, wanted)
        if not rejected_special and (REJECTS not in table or min(values) >= 0):
            # the common case: the first ``wanted`` nodes all fit
            self.next_start_node_index = (start + wanted) % n
            totals = values
            indices: list[int] | None = None  # identity: feasible j is node start + j
            evaluated = wanted
        else:
            # Node by node, this keeps the fitting nodes until ``wanted`` are found and
            # counts the rejected ones before the last of them; chunk by chunk here.
            # Positions are ``start + pos + j``, taken mod n where nodes are read.
            totals, indices = [], []
            rejected: list[tuple[int, int]] = []
            pos = 0
            while pos < n and len(totals) < wanted:
                if pos:  # (the first chunk is the window already looked up)
                    values, _ = lookup(pos, min(max(wanted - len(totals), CHUNK), n - pos))
                size = len(values)
                base = start + pos
                need = wanted - len(totals)
                # the runs of fitting nodes between the (usually few) rejected ones
                bad = list(compress(range(size), map(gt, repeat(0), values)))  # value < 0
                bad.append(size)
                prev = 0
                for b in bad:
                    if b - prev >= need:  # the last node needed is in this run
                        b = prev + need
                        size = b  # the rest of the chunk is not looked at
                    totals.extend(values[prev:b])
                    indices.extend(range(base + prev, base + b))
                    need -= b - prev
                    if b == size:
                        break
                    rejected.append((base + b, values[b]))
                    prev = b + 1
                pos += size
            self.next_start_node_index = (start + pos) % n
            if not totals:
                statuses = fast.statuses
                return FitError(n, {nodes[i % n].name: statuses[-1 - v] for i, v in rejected})
            evaluated = len(totals) + len(rejected)
        feasible_count = len(totals)
        if feasible_count == 1:
            i = start if indices is None else indices[0]
            return ScheduleResult(nodes[i % n].name, evaluated, 1)
        scorers = fast.other_scorers(pod, snapshot)
        if scorers:
            if indices is None:
                feasible = _window(nodes, start, feasible_count)
            else:
                feasible = [nodes[i % n] for i in indices]
            for _, weight, scores in self._weighted_scores(scorers, pod, feasible, snapshot):
                if weight != 1:
                    scores = list(map(mul, scores, repeat(weight)))
                totals = list(map(add, totals, scores))
        best = max(totals)
        tied = totals.count(best)
        if tied == 1:
            j = totals.index(best)
        elif tied == len(totals):
            j = rng.randrange(tied)
        else:  # the position of the chosen tie, as ``[j for j... if total == best][r]``
            chosen = rng.randrange(tied)
            j = next(islice(compress(count(), map(best.__eq__, totals)), chosen, None))
        i = start + j if indices is None else indices[j]
        return ScheduleResult(nodes[i % n].name, evaluated, feasible_count)

    def _weighted_scores(
        self,
        scorers: Sequence[tuple[ScorePlugin, int]],
        pod: PodInfo,
        nodes: Sequence[NodeInfo],
        snapshot: Snapshot,
    ) -> list[tuple[ScorePlugin, int, list[int]]]:
        """(plugin, weight, normalised scores) of each plugin in ``scorers`` that can tell
        ``nodes`` apart (see :meth:`score`)."""
        out = []
        for plugin, weight in scorers:
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
            out.append((plugin, weight, scores))
        return out

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> list[int]:
        """Weighted totals per node (same order as ``nodes``), up to a constant: a plugin
        that gives every node the same score is left out, since it cannot change which
        node wins."""
        totals = [0] * len(nodes)
        for _, weight, scores in self._weighted_scores(self.scorers, pod, nodes, snapshot):
            if weight == 1:
                totals = [t + s for t, s in zip(totals, scores)]
            else:
                totals = [t + weight * s for t, s in zip(totals, scores)]
        return totals


#: The smallest chunk of nodes filtered at once (see ``Framework.find_feasible``).
CHUNK = 64


def _window(items: list[Any], start: int, size: int) -> list[Any]:
    """``size`` items from ``start`` (mod ``len(items)``) on, wrapping around once;
    ``size <= len(items)``."""
    n = len(items)
    start %= n
    end = start + size
    if end <= n:
        return items[start:end]
    return items[start:] + items[: end - n]


def _slots_in(slots: list[int], first: int, size: int, n: int) -> list[int]:
    """The ``slots`` (ascending) within ``size`` positions from ``first``, mod ``n``."""
    end = first + size
    if end <= n:
        return slots[bisect_left(slots, first) : bisect_left(slots, end)]
    return slots[bisect_left(slots, first) :] + slots[: bisect_left(slots, end - n)]


def _first_rejection(chain: list[FilterPlugin], pod: PodInfo, node: NodeInfo) -> Status | None:
    for plugin in chain:
        status = plugin.filter(pod, node)
        if status is not None:
            return status
    return None


#: A key no NodeInfo has (resource keys start at 1): in a fast-path memo, it says that
#: some value in it is a rejection code.
REJECTS = 0

#: Filters that, for a pod :meth:`_FastPath.applies` to, reject no node (NodeResourcesFit
#: is the one that can, and the fast path's memo holds its verdicts).
_NEUTRAL_FILTERS = (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity)


class _FastPath:
    """The default profile's resource plugins folded into one memo (module docstring).

    Built only when the profile has exactly one NodeResourcesFit filter and no filters
    but the default ones. LeastAllocated and BalancedAllocation (their ``normalize``
    does nothing, so the fold is exact) are folded into the memo; TaintToleration's
    score, all zeros without PreferNoSchedule taints, runs only when some node has one;
    the other scorers run over the feasible nodes.
    """

    TABLES = 64
    ENTRIES = 65_536

    def __init__(
        self,
        fit: NodeResourcesFit,
        folded: list[tuple[ScorePlugin, int]],
        others: list[tuple[ScorePlugin, int]],
        taints: list[tuple[ScorePlugin, int]],
    ) -> None:
        self.fit = fit
        self.folded = folded
        self.others = tuple(others)
        #: TaintToleration's score: it can only matter with PreferNoSchedule taints about
        self.taints = tuple(taints)
        self._others_by_case = [self._others_for(case) for case in range(8)]
        self._tables: dict[Requests, dict[int, int]] = {}
        #: NodeResourcesFit's statuses; code ``-1 - i`` in a memo names ``statuses[i]``
        self.statuses: list[Status] = []
        self._codes: dict[Status, int] = {}
        self._by_id: dict[int, tuple[Status, int]] = {}

    @classmethod
    def build(
        cls, filters: Sequence[FilterPlugin], scorers: Sequence[tuple[ScorePlugin, int]]
    ) -> _FastPath | None:
        fits = [f for f in filters if type(f) is NodeResourcesFit]
        if len(fits) != 1:
            return None
        if any(f is not fits[0] and type(f) not in _NEUTRAL_FILTERS for f in filters):
            return None
        folded: list[tuple[ScorePlugin, int]] = []
        others: list[tuple[ScorePlugin, int]] = []
        taints: list[tuple[ScorePlugin, int]] = []
        for plugin, weight in scorers:
            if type(plugin) in (LeastAllocated, BalancedAllocation):
                folded.append((plugin, weight))
            elif type(plugin) is TaintToleration:
                taints.append((plugin, weight))
            else:
                others.append((plugin, weight))
        return cls(fits[0], folded, others, taints)

    def applies(self, pod: PodInfo, snapshot: Snapshot) -> bool:
        """Whether the fast path can schedule ``pod`` (valid): NodeName and NodeAffinity
        pass every node for it, so (but for the few cordoned or tainted nodes, which the
        whole filter chain judges) only resources tell the nodes apart."""
        return pod.node_name is None and pod.required is None

    def code(self, status: Status) -> int:
        """The negative int standing for ``status`` in a list of values."""
        # Plugins hand out a few memoised Status objects: look them up by identity
        # first (hashing a Status hashes its enum code, in Python).
        seen = self._by_id.get(id(status))
        if seen is not None and seen[0] is status:
            return seen[1]
        value = self._codes.get(status)
        if value is None:
            self.statuses.append(status)
            value = self._codes[status] = -len(self.statuses)
        if len(self._by_id) >= 4096:
            self._by_id.clear()
        self._by_id[id(status)] = (status, value)
        return value

    def other_scorers(
        self, pod: PodInfo, snapshot: Snapshot
    ) -> tuple[tuple[ScorePlugin, int], ...]:
        """The scorers the memo does not fold, less those that skip ``pod`` anyway."""
        case = (
            (pod.spread_key is not None)
            | (bool(pod.preferred) << 1)
            | (snapshot.prefer_tainted << 2)
        )
        return self._others_by_case[case]

    def _others_for(self, case: int) -> tuple[tuple[ScorePlugin, int], ...]:
        """:meth:`other_scorers` for a pod with a controller (``case`` bit 0), with
        preferred node affinity (bit 1), on a cluster with PreferNoSchedule taints
        (bit 2)."""
        spread, preferred, prefer_tainted = case & 1, case & 2, case & 4
        others = (*self.others, *self.taints) if prefer_tainted else self.others
        return tuple(
            (plugin, weight)
            for plugin, weight in others
            if not (
                (type(plugin) is DefaultPodTopologySpread and not spread)
                or (type(plugin) is NodeAffinity and not preferred)
            )
        )

    def table(self, pod: PodInfo) -> dict[int, int]:
        """The memo for ``pod``'s request vector: resource key -> total or code, and
        :data:`REJECTS` present once any code is (so all-fit windows skip a ``min``)."""
        table = self._tables.get(pod.requests)
        if table is None:
            if len(self._tables) >= self.TABLES:
                self._tables.clear()
            table = self._tables[pod.requests] = {}
        elif len(table) >= self.ENTRIES:
            table.clear()
        return table

    def fill(
        self,
        table: dict[int, int],
        pod: PodInfo,
        snapshot: Snapshot,
        start: int,
        values: list[Any],
    ) -> list[int]:
        """``values`` (memo lookups for the snapshot's nodes from ``start`` on, None for a
        miss) with the misses computed and remembered."""
        nodes = snapshot.nodes
        n = len(nodes)
        # LeastAllocated's and BalancedAllocation's pre_score look at the pod's requests
        # only, which all pods sharing this memo have in common.
        folded = [
            (plugin, weight, state)
            for plugin, weight in self.folded
            if (state := plugin.pre_score(pod, (), snapshot)) is not SKIP
        ]
        out: list[int] = []
        for j, value in enumerate(values):
            if value is None:
                node = nodes[(start + j) % n]
                status = self.fit.filter(pod, node)
                if status is None:
                    value = sum(w * p.score(state, pod, node) for p, w, state in folded)
                else:
                    value = self.code(status)
                    table[REJECTS] = 1
                table[node.resource_key] = value
            out.append(value)
        return out


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
