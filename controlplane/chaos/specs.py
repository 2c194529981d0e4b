"""What each fault kind is, as data: its parameters, what it targets, whether it lasts.

The schedule validates against this table before a run starts (unknown kinds, bad or
missing parameters, a target where none is taken); :mod:`~controlplane.chaos.kinds`
implements each kind under the same name. Keeping the table free of behaviour lets a
schedule be checked without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs

from controlplane.store.faults import VERBS

__all__ = ["DEFAULT_CONTROLLER_NAMES", "KIND_SPECS", "KindSpec", "Param", "TargetKind"]

TargetKind = Literal["none", "nodes", "pods", "nodes-or-pods"]
"""What a kind acts on: nothing (cluster-wide), nodes, pods (the target names a
namespace; None: every namespace), or either (a target with a namespace selects pods,
one without selects nodes)."""

_DIRECTIONS = ("both", "to", "from")

DEFAULT_CONTROLLER_NAMES = (
    "replicaset-controller",
    "replicationcontroller",
    "deployment-controller",
    "endpoint-controller",
    "endpointslice-controller",
    "job-controller",
    "garbage-collector",
    "namespace-controller",
    "resourcequota-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector",
    "horizontal-pod-autoscaler",
)
"""The controllers a default cluster runs (what the generator picks ``controller-crash``
targets from; a test keeps it equal to ``default_controllers``). A schedule may name any
controller of the cluster it runs on: that is checked against the cluster, before the
run."""


@attrs.frozen
class Param:
    """One parameter of a fault kind: ``type`` is "number", "string" or "strings" (a
    list of strings); ``choices`` limits a string; ``min``/``max`` bound a number."""

    name: str
    type: Literal["number", "string", "strings"]
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"must be a number, got {value!r}"
            if self.min is not None:
                if self.min_exclusive and value <= self.min:
                    return f"must be > {self.min:g}, got {value!r}"
                if value < self.min:
                    return f"must be >= {self.min:g}, got {value!r}"
            if self.max is not None and value > self.max:
                return f"must be <= {self.max:g}, got {value!r}"
            return None
        if self.type == "strings":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                return f"must be a list of strings, got {value!r}"
            return None
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}; got {value!r}"
        return None


@attrs.frozen
class KindSpec:
    """A fault kind: ``instant`` kinds happen once (a kill) and take no duration; the
    others last ``duration`` seconds, or until a heal-all when it is None."""

    name: str
    target: TargetKind
    params: tuple[Param, ...] = ()
    instant: bool = False
    summary: str = ""

    def param(self, name: str) -> Param | None:
        for param in self.params:
            if param.name == name:
                return param
        return None

    def resolved(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with defaults filled in (assumes they were validated)."""
        return {p.name: params.get(p.name, p.default) for p in self.params}


def _fraction(default: float | None = None) -> Param:
    return Param("fraction", "number", default is None, default, min=0.0, max=1.0)


_DIRECTION = Param("direction", "string", default="both", choices=_DIRECTIONS)
_PEERS = Param("peers", "strings")
_CONTAINER = Param("container", "string")
_VERB = Param("verb", "string", choices=tuple(sorted(VERBS)))
_RESOURCE = Param("resource", "string")

_SPECS = (
    KindSpec("node-crash", "nodes", summary="power loss; restarted (empty runtime) on heal"),
    KindSpec("node-restart", "nodes", instant=True, summary="crash and boot again at once"),
    KindSpec("node-pause", "nodes", summary="kubelet and kube-proxy hang until healed"),
    KindSpec(
        "node-drain",
        "nodes",
        summary="cordon, then evict every pod but DaemonSet and mirror pods; uncordon on heal",
    ),
    KindSpec(
        "node-taint",
        "nodes",
        (
            Param("key", "string", default="chaos.kubetrio.io/taint"),
            Param("value", "string", default=""),
            Param(
                "effect",
                "string",
                default="NoSchedule",
                choices=("NoSchedule", "PreferNoSchedule", "NoExecute"),
            ),
        ),
        summary="add a taint; removed on heal",
    ),
    KindSpec(
        "network-partition",
        "nodes-or-pods",
        (_DIRECTION, _PEERS),
        summary="cut targets off from peers (default: everyone else, and for nodes the store"
        " too); direction to/from is one-way",
    ),
    KindSpec(
        "network-delay",
        "nodes-or-pods",
        (
            Param("latency", "number", True, min=0.0),
            Param("jitter", "number", default=0.0, min=0.0),
            _DIRECTION,
            _PEERS,
        ),
        summary="each message to/from targets takes latency ± jitter seconds longer",
    ),
    KindSpec(
        "network-loss",
        "nodes-or-pods",
        (_fraction(), _DIRECTION, _PEERS),
        summary="a fraction of messages to/from targets is lost",
    ),
    KindSpec(
        "network-duplicate",
        "nodes-or-pods",
        (_fraction(), _DIRECTION, _PEERS),
        summary="a fraction of requests to/from targets reaches the handler twice",
    ),
    KindSpec(
        "container-kill", "pods", (_CONTAINER,), instant=True, summary="docker kill (exit 137)"
    ),
    KindSpec(
        "container-oom",
        "pods",
        (_CONTAINER,),
        instant=True,
        summary="the OOM killer (exit 137, OOMKilled)",
    ),
    KindSpec(
        "probe-failure",
        "pods",
        (
            Param(
                "probe", "string", default="readiness", choices=("liveness", "readiness", "startup")
            ),
            _CONTAINER,
        ),
        summary="the probe fails for the duration",
    ),
    KindSpec(
        "image-pull-failure",
        "none",
        (Param("image", "string", True),),
        summary="pulls of the image fail (NotFound) for the duration",
    ),
    KindSpec(
        "scheduler-crash", "none", summary="the scheduler stops; restarted after the duration"
    ),
    KindSpec(
        "controller-manager-crash",
        "none",
        summary="the controller manager stops; restarted after the duration",
    ),
    KindSpec(
        "controller-crash",
        "none",
        (Param("controller", "string", True),),
        summary="one controller in the manager stops (the others run on); restarted fresh",
    ),
    KindSpec(
        "kubelet-crash",
        "nodes",
        summary="the kubelet stops (containers keep running); restarted after the duration",
    ),
    KindSpec(
        "store-latency",
        "none",
        (
            Param("latency", "number", True, min=0.0, min_exclusive=True),
            _fraction(1.0),
            _VERB,
            _RESOURCE,
        ),
        summary="store requests take latency seconds longer",
    ),
    KindSpec(
        "store-errors",
        "none",
        (
            Param(
                "error", "string", default="TooManyRequests", choices=("TooManyRequests", "Timeout")
            ),
            _fraction(0.5),
            _VERB,
            _RESOURCE,
        ),
        summary="a fraction of store requests fail with 429 or 504",
    ),
    KindSpec(
        "node-store-latency",
        "nodes",
        (
            Param("latency", "number", True, min=0.0, min_exclusive=True),
            _fraction(1.0),
            _VERB,
            _RESOURCE,
        ),
        summary="the targets' kubelet and proxy requests to the store take latency s longer",
    ),
    KindSpec(
        "node-store-errors",
        "nodes",
        (
            Param("error", "string", default="Timeout", choices=("TooManyRequests", "Timeout")),
            _fraction(1.0),
            _VERB,
            _RESOURCE,
        ),
        summary="a fraction of the targets' kubelet and proxy requests to the store fail",
    ),
    KindSpec(
        "conflict-storm",
        "none",
        (_fraction(0.5), _RESOURCE),
        summary="a fraction of updates (and status updates) fail with Conflict",
    ),
    KindSpec("close-watches", "none", instant=True, summary="every watch ends; clients re-watch"),
    KindSpec("compact", "none", instant=True, summary="history dropped; watches re-list on Gone"),
    KindSpec(
        "clock-skew",
        "nodes",
        (Param("offset", "number", True),),
        summary="the kubelet's heartbeats and lease renewTime are offset seconds off",
    ),
    KindSpec("heal-all", "none", instant=True, summary="heal every outstanding fault"),
)

KIND_SPECS: Mapping[str, KindSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""Every fault kind by name, in a stable order."""
