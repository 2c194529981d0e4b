"""The HPA's scaling decisions after the metrics: stabilisation windows, scale rate
limits (``spec.behavior`` policies or the legacy max(2x, 4) rule) and min/max bounds.

The normalisation half of Kubernetes' ``pkg/controller/podautoscaler/horizontal.go``
(``normalizeDesiredReplicas[WithBehaviors]``, ``stabilizeRecommendation[WithBehaviors]``,
``convertDesiredReplicasWith{Rules,BehaviorRate}``, ``calculateScale{Up,Down}Limit...``,
``storeScaleEvent``), as pure functions: the per-HPA history Kubernetes keeps in maps
behind locks is a frozen :class:`ScalingMemory` passed in and returned. Times are trio
seconds. :mod:`~controlplane.controllers.hpa_algorithm` re-exports these names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from controlplane.api.autoscaling import HPAScalingRules

__all__ = [
    "DOWNSCALE_STABILIZATION_WINDOW",
    "SCALE_UP_LIMIT_FACTOR",
    "SCALE_UP_LIMIT_MINIMUM",
    "Normalized",
    "Recommendation",
    "ScaleEvent",
    "ScalingMemory",
    "convert_desired_replicas_with_behavior_rate",
    "convert_desired_replicas_with_rules",
    "normalize",
    "scale_down_limit",
    "scale_up_limit",
    "stabilize_recommendation",
    "stabilize_with_behaviors",
    "store_scale_event",
]

#: ``--horizontal-pod-autoscaler-downscale-stabilization``.
DOWNSCALE_STABILIZATION_WINDOW = 300.0
#: Without ``spec.behavior``: never more than max(2 x current, 4) in one step.
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


@attrs.frozen
class Recommendation:
    at: float
    replicas: int


@attrs.frozen
class ScaleEvent:
    """A rescale by ``change`` replicas (positive in both directions' lists)."""

    at: float
    change: int
    outdated: bool = False


@attrs.frozen
class ScalingMemory:
    """What the controller remembers per HPA between syncs (lost on restart, as in
    Kubernetes): recent recommendations and, with ``spec.behavior``, recent rescales."""

    recommendations: tuple[Recommendation, ...] = ()
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()

    def with_initial_recommendation(self, current_replicas: int, now: float) -> ScalingMemory:
        """``recordInitialRecommendation``: the first sync counts the current size as a
        recommendation, so a fresh HPA does not scale down at once."""
        if self.recommendations:
            return self
        return attrs.evolve(self, recommendations=(Recommendation(now, current_replicas),))


def _record(
    recs: tuple[Recommendation, ...], old_index: int | None, new: Recommendation
) -> tuple[Recommendation, ...]:
    """Reuse the slot of an expired recommendation, else append (bounded history)."""
    if old_index is None:
        return (*recs, new)
    return (*recs[:old_index], new, *recs[old_index + 1 :])


def stabilize_recommendation(
    recs: tuple[Recommendation, ...], desired: int, now: float, window: float
) -> tuple[int, tuple[Recommendation, ...]]:
    """Without ``spec.behavior``: the highest recommendation of the last ``window``
    seconds (and ``desired``); returns it and the history with ``desired`` recorded."""
    highest = desired
    old_index: int | None = None
    cutoff = now - window
    for i, rec in enumerate(recs):
        if rec.at < cutoff:
            old_index = i
        elif rec.replicas > highest:
            highest = rec.replicas
    return highest, _record(recs, old_index, Recommendation(now, desired))


def stabilize_with_behaviors(
    recs: tuple[Recommendation, ...],
    desired: int,
    current: int,
    now: float,
    *,
    up_window: float,
    down_window: float,
) -> tuple[int, str, str, tuple[Recommendation, ...]]:
    """With ``spec.behavior``: clamp ``current`` between the lowest recommendation of
    the scale-up window and the highest of the scale-down window.

    Returns (recommendation, condition reason, message, history with ``desired``).
    """
    up = down = desired
    up_cutoff, down_cutoff = now - up_window, now - down_window
    old_index: int | None = None
    for i, rec in enumerate(recs):
        if rec.at > up_cutoff:
            up = min(up, rec.replicas)
        if rec.at > down_cutoff:
            down = max(down, rec.replicas)
        if rec.at < up_cutoff and rec.at < down_cutoff:
            old_index = i
    recommendation = max(current, up)
    recommendation = min(recommendation, down)
    history = _record(recs, old_index, Recommendation(now, desired))
    if desired >= current:
        reason = "ScaleUpStabilized"
        message = (
            "recent recommendations were lower than current one, "
            "applying the lowest recent recommendation"
        )
    else:
        reason = "ScaleDownStabilized"
        message = (
            "recent recommendations were higher than current one, "
            "applying the highest recent recommendation"
        )
    return recommendation, reason, message, history


def convert_desired_replicas_with_rules(
    current: int, desired: int, min_replicas: int, max_replicas: int
) -> tuple[int, str, str]:
    """Without ``spec.behavior``: clamp to [min, max] and to max(2 x current, 4);
    returns (replicas, ScalingLimited reason, message)."""
    scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > scale_up_limit:
        maximum = scale_up_limit
        reason = "ScaleUpLimit"
        message = "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum = max_replicas
        reason = "TooManyReplicas"
        message = "the desired replica count is more than the maximum replica count"
    if desired < min_replicas:
        return (
            min_replicas,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    if desired > maximum:
        return maximum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def _change_in_period(period: float, events: Iterable[ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff)


def _policy_limit(
    current: int,
    up_events: Iterable[ScaleEvent],
    down_events: Iterable[ScaleEvent],
    rules: HPAScalingRules,
    now: float,
    *,
    up: bool,
) -> int:
    """The bound the policies of one direction put on the size now. Each policy counts
    from the size at the start of its period; ``selectPolicy`` Max picks the most
    permissive bound, Min the least, Disabled allows no change."""
    up_events, down_events = tuple(up_events), tuple(down_events)
    if rules.select_policy == "Disabled":
        return current
    most_permissive = max if up else min
    least_permissive = min if up else max
    pick = least_permissive if rules.select_policy == "Min" else most_permissive
    result: int | None = None
    for policy in rules.policies:
        start = (
            current
            - _change_in_period(policy.period_seconds, up_events, now)
            + _change_in_period(policy.period_seconds, down_events, now)
        )
        if policy.type == "Pods":
            proposed = start + policy.value if up else start - policy.value
        elif up:
            proposed = math.ceil(start * (1 + policy.value / 100))
        else:
            proposed = int(start * (1 - policy.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_up_limit(
    current: int,
    up_events: Iterable[ScaleEvent],
    down_events: Iterable[ScaleEvent],
    rules: HPAScalingRules,
    now: float,
) -> int:
    """The most replicas the scale-up policies allow now."""
    return _policy_limit(current, up_events, down_events, rules, now, up=True)


def scale_down_limit(
    current: int,
    up_events: Iterable[ScaleEvent],
    down_events: Iterable[ScaleEvent],
    rules: HPAScalingRules,
    now: float,
) -> int:
    """The fewest replicas the scale-down policies allow now."""
    return _policy_limit(current, up_events, down_events, rules, now, up=False)


def convert_desired_replicas_with_behavior_rate(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    scale_up: HPAScalingRules,
    scale_down: HPAScalingRules,
    memory: ScalingMemory,
    now: float,
) -> tuple[int, str, str]:
    """With ``spec.behavior``: limit the step by the policies and by [min, max];
    returns (replicas, ScalingLimited reason, message)."""
    ups, downs = memory.scale_up_events, memory.scale_down_events
    if desired > current:
        limit = max(scale_up_limit(current, ups, downs, scale_up, now), current)
        if max_replicas > limit:
            maximum = limit
            reason = "ScaleUpLimit"
            message = "the desired replica count is increasing faster than the maximum scale rate"
        else:
            maximum = max_replicas
            reason = "TooManyReplicas"
            message = "the desired replica count is more than the maximum replica count"
        if desired > maximum:
            return maximum, reason, message
    elif desired < current:
        limit = min(scale_down_limit(current, ups, downs, scale_down, now), current)
        if min_replicas < limit:
            minimum = limit
            reason = "ScaleDownLimit"
            message = "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            minimum = min_replicas
            reason = "TooFewReplicas"
            message = "the desired replica count is less than the minimum replica count"
        if desired < minimum:
            return minimum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def store_scale_event(
    memory: ScalingMemory, rules: HPAScalingRules, previous: int, new: int, now: float
) -> ScalingMemory:
    """Record a rescale from ``previous`` to ``new`` (``storeScaleEvent``). Events older
    than the longest policy period of ``rules`` (the rules of that direction) are marked
    outdated and their slot reused."""
    longest = max((p.period_seconds for p in rules.policies), default=0)
    cutoff = now - longest
    up = new > previous
    events = memory.scale_up_events if up else memory.scale_down_events
    marked = tuple(attrs.evolve(e, outdated=True) if e.at < cutoff else e for e in events)
    old_index = None
    for i, e in enumerate(marked):
        if e.outdated:
            old_index = i
    event = ScaleEvent(now, abs(new - previous))
    if old_index is None:
        updated = (*marked, event)
    else:
        updated = (*marked[:old_index], event, *marked[old_index + 1 :])
    if up:
        return attrs.evolve(memory, scale_up_events=updated)
    return attrs.evolve(memory, scale_down_events=updated)


@attrs.frozen
class Normalized:
    """The outcome of :func:`normalize`: the size to set and the AbleToScale and
    ScalingLimited conditions (status, reason, message) it implies."""

    replicas: int
    able_to_scale: tuple[str, str, str]
    scaling_limited: tuple[str, str, str]
    memory: ScalingMemory


def normalize(
    *,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    scale_up: HPAScalingRules | None,
    scale_down: HPAScalingRules | None,
    behavior: bool,
    memory: ScalingMemory,
    now: float,
    downscale_window: float = DOWNSCALE_STABILIZATION_WINDOW,
) -> Normalized:
    """Stabilise the metrics' proposal ``desired`` and bound it
    (``normalizeDesiredReplicas`` / ``normalizeDesiredReplicasWithBehaviors``).

    Without ``behavior`` the legacy rules apply: highest recommendation over
    ``downscale_window``, at most max(2 x current, 4). With it, ``scale_up`` and
    ``scale_down`` (defaulted rules; a scale-down window left unset is
    ``downscale_window``).
    """
    if not behavior:
        stabilized, recs = stabilize_recommendation(
            memory.recommendations, desired, now, downscale_window
        )
        if stabilized != desired:
            able = (
                "True",
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, "
                "applying the highest recent recommendation",
            )
        else:
            able = ("True", "ReadyForNewScale", "recommended size matches current size")
        replicas, reason, message = convert_desired_replicas_with_rules(
            current, stabilized, min_replicas, max_replicas
        )
    else:
        assert scale_up is not None and scale_down is not None
        up_window = float(scale_up.stabilization_window_seconds or 0)
        down_window = (
            downscale_window
            if scale_down.stabilization_window_seconds is None
            else float(scale_down.stabilization_window_seconds)
        )
        stabilized, st_reason, st_message, recs = stabilize_with_behaviors(
            memory.recommendations,
            desired,
            current,
            now,
            up_window=up_window,
            down_window=down_window,
        )
        if stabilized != desired:
            able = ("True", st_reason, st_message)
        else:
            able = ("True", "ReadyForNewScale", "recommended size matches current size")
        replicas, reason, message = convert_desired_replicas_with_behavior_rate(
            current,
            stabilized,
            min_replicas,
            max_replicas,
            scale_up,
            scale_down,
            memory,
            now,
        )
    limited = ("False" if replicas == stabilized else "True", reason, message)
    return Normalized(
        replicas=replicas,
        able_to_scale=able,
        scaling_limited=limited,
        memory=attrs.evolve(memory, recommendations=recs),
    )
