"""Generate a chaos schedule from a seed: Poisson arrivals, kinds drawn by weight.

Faults arrive as a Poisson process of ``intensity`` faults per minute (exponential gaps
drawn from ``Random(f"{seed}:schedule")``), each kind drawn by its weight in ``mix``,
each lasting 10 to 120 s (instant kinds: no duration) with parameters drawn in sensible
ranges; the schedule ends with a heal-all at ``duration``. Times are rounded to 0.1 s so
the YAML reads well; the same seed gives the same schedule.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from controlplane.chaos.schedule import Fault, Schedule, Target
from controlplane.chaos.specs import DEFAULT_CONTROLLER_NAMES, KIND_SPECS

__all__ = ["DEFAULT_MIX", "DURATION_RANGE", "generate_schedule"]

DURATION_RANGE = (10.0, 120.0)
"""How long a generated fault lasts, drawn uniformly (seconds)."""

DEFAULT_MIX: Mapping[str, float] = MappingProxyType(
    {
        "node-crash": 2.0,
        "node-restart": 1.0,
        "node-pause": 1.0,
        "network-partition": 2.0,
        "network-delay": 1.0,
        "network-loss": 1.0,
        "container-kill": 2.0,
        "container-oom": 1.0,
        "probe-failure": 1.0,
        "scheduler-crash": 1.0,
        "controller-manager-crash": 1.0,
        "controller-crash": 1.0,
        "kubelet-crash": 1.0,
        "store-latency": 1.0,
        "store-errors": 1.0,
        "node-store-errors": 0.5,
        "conflict-storm": 1.0,
        "close-watches": 1.0,
        "compact": 0.5,
    }
)
"""A mix of node, network, container and control-plane faults (weights)."""

_Draw = Callable[[random.Random], dict[str, Any]]


def _none(rng: random.Random) -> dict[str, Any]:
    return {}


_PARAMS: Mapping[str, _Draw] = {
    "node-taint": lambda rng: {"effect": rng.choice(("NoSchedule", "NoExecute"))},
    "network-partition": lambda rng: {"direction": rng.choice(("both", "to", "from"))},
    "network-delay": lambda rng: {
        "latency": round(rng.uniform(0.05, 2.0), 2),
        "jitter": round(rng.uniform(0.0, 0.5), 2),
    },
    "network-loss": lambda rng: {"fraction": round(rng.uniform(0.1, 0.9), 2)},
    "network-duplicate": lambda rng: {"fraction": round(rng.uniform(0.1, 0.9), 2)},
    "probe-failure": lambda rng: {"probe": rng.choice(("liveness", "readiness"))},
    "store-latency": lambda rng: {"latency": round(rng.uniform(0.05, 2.0), 2)},
    "store-errors": lambda rng: {
        "error": rng.choice(("TooManyRequests", "Timeout")),
        "fraction": round(rng.uniform(0.05, 0.5), 2),
    },
    "node-store-latency": lambda rng: {"latency": round(rng.uniform(0.5, 10.0), 1)},
    "node-store-errors": lambda rng: {
        "error": rng.choice(("TooManyRequests", "Timeout")),
        "fraction": round(rng.uniform(0.2, 1.0), 2),
    },
    "conflict-storm": lambda rng: {"fraction": round(rng.uniform(0.1, 0.8), 2)},
    "clock-skew": lambda rng: {"offset": round(rng.uniform(-120.0, 120.0), 1)},
    "controller-crash": lambda rng: {"controller": rng.choice(DEFAULT_CONTROLLER_NAMES)},
}

_NOT_GENERATED = {
    "image-pull-failure": "it needs an image name",
    "heal-all": "it ends every schedule",
}


def generate_schedule(
    *,
    seed: int,
    duration: float,
    mix: Mapping[str, float] | None = None,
    intensity: float = 1.0,
    namespace: str = "default",
) -> Schedule:
    """A schedule of faults over ``duration`` seconds, ending with heal-all there.

    Args:
        seed: the schedule's own seed (draws from ``Random(f"{seed}:schedule")``).
        duration: virtual seconds; the heal-all is at exactly this time.
        mix: kind -> weight (default :data:`DEFAULT_MIX`); weights need not sum to 1.
        intensity: mean faults per minute.
        namespace: where pod faults pick their pods.

    Raises:
        ValueError: a negative duration, a non-positive intensity, an unknown kind or
            one that cannot be generated (``image-pull-failure``, ``heal-all``), or
            weights that are negative or all zero.
    """
    if duration < 0:
        raise ValueError(f"duration: must be >= 0, got {duration!r}")
    if intensity <= 0:
        raise ValueError(f"intensity: must be > 0 faults per minute, got {intensity!r}")
    weights = dict(DEFAULT_MIX if mix is None else mix)
    for kind, weight in weights.items():
        if kind not in KIND_SPECS:
            raise ValueError(f"mix.{kind}: unknown fault kind; known: {', '.join(KIND_SPECS)}")
        if kind in _NOT_GENERATED:
            raise ValueError(f"mix.{kind}: not generated: {_NOT_GENERATED[kind]}")
        if weight < 0:
            raise ValueError(f"mix.{kind}: weight must be >= 0, got {weight!r}")
    kinds = [kind for kind, weight in weights.items() if weight > 0]
    if not kinds:
        raise ValueError("mix: at least one kind needs a positive weight")
    rng = random.Random(f"{seed}:schedule")
    faults = []
    at = 0.0
    while True:
        at += rng.expovariate(intensity / 60.0)
        when = round(at, 1)
        if when >= duration:
            break
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        faults.append(_fault(kind, when, rng, namespace))
    faults.append(Fault(at=float(duration), kind="heal-all"))
    return Schedule(faults=tuple(faults), seed=seed, duration=float(duration))


def _fault(kind: str, at: float, rng: random.Random, namespace: str) -> Fault:
    spec = KIND_SPECS[kind]
    target = None
    if spec.target == "pods":
        target = Target(namespace=namespace, mode="one")
    elif spec.target in ("nodes", "nodes-or-pods"):
        target = Target(mode="one")
    params = _PARAMS.get(kind, _none)(rng)
    length = None if spec.instant else round(rng.uniform(*DURATION_RANGE), 1)
    return Fault(at=at, kind=kind, target=target, params=params, duration=length)
