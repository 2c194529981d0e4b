"""PodTopologySpread with the system default constraints (Score, weight 2): spread the
pods of one controller over nodes (``kubernetes.io/hostname``, maxSkew 3) and zones
(``topology.kubernetes.io/zone``, maxSkew 5), both ``ScheduleAnyway``.

Kubernetes selects "the pods of the same workload" with the label selectors of the
Services, ReplicationControllers, ReplicaSets and StatefulSets that match the pod. Here
they are the pods with the same controller ownerReference (uid) in the same namespace,
which is what those selectors pick in practice, without watching four more kinds. A pod
without a controller is not scored (as a pod without a default selector is skipped).

Scoring follows ``podtopologyspread/scoring.go``: per constraint, a node scores
``count * log(domains + 2) + (maxSkew - 1)``, where count is the controller's pods on the
node (hostname) or in its zone, and domains the number of candidate nodes (hostname) or
of zones among them; the raw score is rounded; normalisation gives 100 to the node with
the fewest (``100 * (max + min - s) // max``), and 100 to all if every score is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from controlplane.scheduler.interface import MAX_NODE_SCORE, SKIP
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.snapshot import ZONE_LABEL, NodeInfo, Snapshot

__all__ = ["HOSTNAME_MAX_SKEW", "ZONE_MAX_SKEW", "DefaultPodTopologySpread", "SpreadState"]

HOSTNAME_MAX_SKEW = 3
ZONE_MAX_SKEW = 5


@attrs.frozen
class SpreadState:
    host_weight: float
    zone_weight: float
    #: zone value ("" for nodes without the label) -> controller's pods in it
    zone_counts: dict[str, int]
    #: whether any candidate node has a zone label (else the zone constraint is moot)
    zoned: bool = True


class DefaultPodTopologySpread:
    name = "PodTopologySpread"

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot) -> Any:
        key = pod.spread_key
        if key is None or not nodes:
            return SKIP
        # (a cluster without zone labels at all needs no look at each node for them)
        present = {n.zone for n in nodes} if snapshot is None or snapshot.zoned else {None}
        zoned = present != {None}
        zones: dict[str, int] = {}
        if zoned:
            zones = {zone or "": 0 for zone in sorted(present, key=lambda z: z or "")}
            required = pod.required
            for name, count in snapshot.spread_nodes(key).items():
                info = snapshot.get(name)
                if info is None:
                    continue
                if required is not None and not required.matches(info.labels, name):
                    continue
                zone = info.labels.get(ZONE_LABEL, "")
                if zone in zones:
                    zones[zone] += count
        return SpreadState(
            host_weight=math.log(len(nodes) + 2),
            zone_weight=math.log(len(zones) + 2),
            zone_counts=zones,
            zoned=zoned,
        )

    def score(self, state: SpreadState, pod: PodInfo, node: NodeInfo) -> int:
        count = node.spread_counts.get(pod.spread_key, 0)  # type: ignore[arg-type]
        score = count * state.host_weight + (HOSTNAME_MAX_SKEW - 1)
        zone = node.labels.get(ZONE_LABEL)
        if zone is not None:
            score += state.zone_counts[zone] * state.zone_weight + (ZONE_MAX_SKEW - 1)
        return math.floor(score + 0.5)  # Go's math.Round: halves away from zero

    def score_many(self, state: SpreadState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        if state.zoned:
            score = self.score
            return [score(state, pod, n) for n in nodes]
        key = pod.spread_key
        weight = state.host_weight
        base = HOSTNAME_MAX_SKEW - 1 + 0.5  # int() floors non-negative values: math.Round
        empty = int(base)  # most nodes hold none of the controller's pods
        return [
            int(c * weight + base) if (sc := n.spread_counts) and (c := sc.get(key)) else empty  # type: ignore[arg-type]
            for n in nodes
        ]

    def normalize(self, state: SpreadState, scores: list[int]) -> None:
        if not scores:
            return
        highest = max(scores)
        if highest == 0:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
            return
        lowest = min(scores)
        # scores take few distinct values (pod counts): normalise each once
        table = {s: MAX_NODE_SCORE * (highest + lowest - s) // highest for s in set(scores)}
        scores[:] = map(table.__getitem__, scores)
