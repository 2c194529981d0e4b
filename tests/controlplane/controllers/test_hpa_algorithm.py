"""The HPA's pure decisions (replica_calculator.go and the normalisation of
horizontal.go): table-driven, no actors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.autoscaling import HPAScalingPolicy, HPAScalingRules
from controlplane.controllers import hpa_algorithm as algo
from controlplane.controllers.hpa_algorithm import (
    MetricsError,
    PodInfo,
    PodMetric,
    Recommendation,
    ScaleEvent,
    ScalingMemory,
)

NOW = 10_000.0
#: Kubernetes' defaulted behavior rules (autoscaling/v2 SetDefaults).
UP = HPAScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(
        HPAScalingPolicy(type="Pods", value=4, period_seconds=15),
        HPAScalingPolicy(type="Percent", value=100, period_seconds=15),
    ),
)
DOWN = HPAScalingRules(
    select_policy="Max",
    policies=(HPAScalingPolicy(type="Percent", value=100, period_seconds=15),),
)


def pod(name: str, cpu_request: int = 100, **kw) -> PodInfo:
    """A pod that started and became Ready long ago, requesting ``cpu_request`` m."""
    return PodInfo(
        name=name,
        containers=("main",),
        requests={("main", "cpu"): cpu_request, ("main", "memory"): 64_000},
        **kw,
    )


def usage(**values: int) -> dict[str, PodMetric]:
    return {name: PodMetric(v, timestamp=NOW - 5) for name, v in values.items()}


def replicas(current: int, target: int, pods, metrics, **kw) -> int:
    return algo.resource_replicas(current, target, "cpu", pods, metrics, NOW, **kw)[0]


# -- the replica calculator ----------------------------------------------------------


def test_ceil_of_ready_pods_times_usage_ratio() -> None:
    pods = [pod("a"), pod("b"), pod("c")]
    count, utilization, raw = algo.resource_replicas(
        3, 50, "cpu", pods, usage(a=75, b=75, c=75), NOW
    )
    # 75 % against 50 %: ratio 1.5, ceil(3 x 1.5) = 5
    assert (count, utilization, raw) == (5, 75, 75)
    assert replicas(3, 50, pods, usage(a=10, b=10, c=11)) == 1  # ceil(3 x 0.2)


@pytest.mark.parametrize(
    ("used", "expected"),
    [(54, 10), (46, 10), (56, 12), (44, 9), (100, 20)],
    ids=["+8%", "-8%", "+12%", "-12%", "x2"],
)
def test_ten_percent_tolerance(used: int, expected: int) -> None:
    pods = [pod(f"p{i}") for i in range(10)]
    metrics = usage(**{p.name: used for p in pods})
    assert replicas(10, 50, pods, metrics) == expected


def test_utilization_is_sum_of_usage_over_sum_of_requests() -> None:
    pods = [pod("a", 100), pod("b", 300)]
    _, utilization, raw = algo.resource_replicas(2, 50, "cpu", pods, usage(a=100, b=100), NOW)
    assert (utilization, raw) == (50, 100)


def test_missing_pods_count_as_full_request_on_scale_down() -> None:
    pods = [pod("a"), pod("b"), pod("c"), pod("d")]
    # ready a, b at 10 %; c, d missing -> (10+10+100+100)/400 = 55 % of 50 %: no change
    assert replicas(4, 50, pods, usage(a=10, b=10)) == 4
    # with a 90 % target: 0.61 ratio -> ceil(0.61 x 4) = 3
    assert replicas(4, 90, pods, usage(a=10, b=10)) == 3


def test_missing_pods_count_as_zero_on_scale_up() -> None:
    pods = [pod("a"), pod("b"), pod("c"), pod("d")]
    # a, b at 200 %, c, d missing as 0 -> 100 % of 50 %: ratio 2, ceil(2 x 4) = 8
    assert replicas(4, 50, pods, usage(a=200, b=200)) == 8


def test_unready_pods_count_as_zero_on_scale_up_only() -> None:
    starting = dict(start_time=NOW - 60, ready="False", ready_since=NOW - 60)
    pods = [pod("a"), pod("b"), pod("c", **starting), pod("d", **starting)]
    # without the unready pods' (hot) samples: (200+200+0+0)/400 = 100 % -> 8
    assert replicas(4, 50, pods, usage(a=200, b=200, c=900, d=900)) == 8
    # a scale-down ignores unready pods: 10 % of 50 over the two ready ones -> ceil(0.4)
    assert replicas(4, 50, pods, usage(a=10, b=10, c=900, d=900)) == 1


def test_no_change_when_the_missing_pods_flip_the_direction() -> None:
    pods = [pod("a"), pod("b"), pod("c")]
    # a at 45 % of 50 (scale down), b, c missing as 100 %: now above -> keep 3
    assert replicas(3, 50, pods, usage(a=45)) == 3


def test_pending_failed_and_deleted_pods() -> None:
    pods = [
        pod("a"),
        pod("pending", phase="Pending"),
        pod("failed", phase="Failed"),
        pod("gone", deleting=True),
    ]
    groups = algo.group_pods(pods, usage(a=10, failed=10, gone=10), "cpu", NOW)
    assert groups == algo.PodGroups(1, ("pending",), (), ("failed", "gone"))


def test_cpu_initialization_period_and_initial_readiness_delay() -> None:
    metric = usage(x=50)
    fresh = dict(start_time=NOW - 100, ready="True", ready_since=NOW - 10)
    # within 5 min of start, a sample from less than a window after readiness is ignored
    assert algo.group_pods([pod("x", **fresh)], metric, "cpu", NOW).unready == ("x",)
    settled = dict(start_time=NOW - 100, ready="True", ready_since=NOW - 30)
    assert algo.group_pods([pod("x", **settled)], metric, "cpu", NOW).ready_count == 1
    # after 5 min: unready only if it never became ready (transition within 30 s of start)
    never = dict(start_time=NOW - 600, ready="False", ready_since=NOW - 590)
    assert algo.group_pods([pod("x", **never)], metric, "cpu", NOW).unready == ("x",)
    lapsed = dict(start_time=NOW - 600, ready="False", ready_since=NOW - 100)
    assert algo.group_pods([pod("x", **lapsed)], metric, "cpu", NOW).ready_count == 1
    # no Ready condition at all: unready; memory ignores readiness
    bare = dict(ready=None, ready_since=None)
    assert algo.group_pods([pod("x", **bare)], metric, "cpu", NOW).unready == ("x",)
    assert algo.group_pods([pod("x", **fresh)], metric, "memory", NOW).ready_count == 1


@pytest.mark.parametrize(
    ("pods", "metrics", "message"),
    [
        (
            [pod("a")],
            {},
            "unable to get metrics for resource cpu: no metrics returned from resource metrics API",
        ),
        ([], usage(a=1), "no pods returned by selector while calculating replica count"),
        (
            [pod("a", phase="Pending")],
            usage(a=1),
            "did not receive metrics for targeted pods (pods might be unready)",
        ),
        (
            [PodInfo(name="a", containers=("main",))],
            usage(a=1),
            "missing request for cpu in container main of Pod a",
        ),
    ],
    ids=["no-metrics", "no-pods", "all-unready", "no-request"],
)
def test_errors(pods, metrics, message: str) -> None:
    with pytest.raises(MetricsError, match=f"^{re.escape(message)}$"):
        algo.resource_replicas(1, 50, "cpu", pods, metrics, NOW)


def test_container_resource_uses_one_containers_request() -> None:
    two = PodInfo(
        name="a",
        containers=("main", "side"),
        requests={("main", "cpu"): 100, ("side", "cpu"): 900},
    )
    count, utilization, _ = algo.resource_replicas(
        1, 50, "cpu", [two], usage(a=100), NOW, container="main"
    )
    assert (count, utilization) == (2, 100)


def test_average_value_target() -> None:
    pods = [pod("a"), pod("b")]
    # 300m average against 100m: 3x -> 6
    assert algo.raw_resource_replicas(2, 100, "cpu", pods, usage(a=200, b=400), NOW) == (6, 300)
    assert algo.raw_resource_replicas(2, 100, "cpu", pods, usage(a=95, b=105), NOW) == (2, 100)
    # missing pods count as exactly the target on a scale-down: (20 + 100) / 2 = 0.6 -> 2
    assert algo.raw_resource_replicas(2, 100, "cpu", pods, usage(a=20), NOW) == (2, 20)


# -- stabilisation and limits --------------------------------------------------------


def test_scale_down_takes_the_highest_recommendation_in_the_window() -> None:
    recs = (Recommendation(NOW - 400, 9), Recommendation(NOW - 200, 5), Recommendation(NOW, 3))
    value, history = algo.stabilize_recommendation(recs, 2, NOW, 300)
    assert value == 5
    # the expired sample's slot is reused, so the history stays bounded
    assert history == (Recommendation(NOW, 2), recs[1], recs[2])
    value, _ = algo.stabilize_recommendation(recs, 2, NOW + 101, 300)
    assert value == 3


def test_behavior_stabilization_clamps_between_the_windows() -> None:
    recs = (Recommendation(NOW - 60, 8), Recommendation(NOW - 30, 4))
    # scale-up window 120 s: the lowest recent (4) bounds a rise from 3 to 10
    value, reason, _, _ = algo.stabilize_with_behaviors(
        recs, 10, 3, NOW, up_window=120, down_window=300
    )
    assert (value, reason) == (4, "ScaleUpStabilized")
    value, reason, _, _ = algo.stabilize_with_behaviors(
        recs, 1, 6, NOW, up_window=0, down_window=300
    )
    # the highest of the scale-down window (8) caps nothing here: current 6 stays
    assert (value, reason) == (6, "ScaleDownStabilized")
    value, _, _, _ = algo.stabilize_with_behaviors(recs, 1, 9, NOW, up_window=0, down_window=300)
    assert value == 8


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        (3, 1, (2, "TooFewReplicas")),
        (3, 5, (5, "DesiredWithinRange")),
        (3, 7, (6, "ScaleUpLimit")),  # max(2 x 3, 4)
        (1, 9, (4, "ScaleUpLimit")),
        (8, 30, (10, "TooManyReplicas")),
    ],
)
def test_legacy_bounds(current: int, desired: int, expected: tuple[int, str]) -> None:
    count, reason, _ = algo.convert_desired_replicas_with_rules(current, desired, 2, 10)
    assert (count, reason) == expected


def test_default_scale_up_policies_are_4_pods_or_100_percent_per_15_seconds() -> None:
    assert algo.scale_up_limit(3, (), (), UP, NOW) == 7
    assert algo.scale_up_limit(10, (), (), UP, NOW) == 20
    # 5 pods were added 10 s ago: the period started at 5 -> max(9, 10)
    recent = (ScaleEvent(NOW - 10, 5),)
    assert algo.scale_up_limit(10, recent, (), UP, NOW) == 10
    assert algo.scale_up_limit(10, (ScaleEvent(NOW - 16, 5),), (), UP, NOW) == 20
    minimal = HPAScalingRules(select_policy="Min", policies=UP.policies)
    assert algo.scale_up_limit(10, (), (), minimal, NOW) == 14
    disabled = HPAScalingRules(select_policy="Disabled", policies=UP.policies)
    assert algo.scale_up_limit(10, (), (), disabled, NOW) == 10


def test_scale_down_policies() -> None:
    assert algo.scale_down_limit(10, (), (), DOWN, NOW) == 0
    slow = HPAScalingRules(
        select_policy="Max",
        policies=(
            HPAScalingPolicy(type="Pods", value=2, period_seconds=60),
            HPAScalingPolicy(type="Percent", value=10, period_seconds=60),
        ),
    )
    assert algo.scale_down_limit(10, (), (), slow, NOW) == 8  # the bigger change
    # 2 removed 30 s ago: the period started at 10 -> still 8 from 8 now
    assert algo.scale_down_limit(8, (), (ScaleEvent(NOW - 30, 2),), slow, NOW) == 8
    count, reason, _ = algo.convert_desired_replicas_with_behavior_rate(
        8, 1, 1, 10, UP, slow, ScalingMemory(scale_down_events=(ScaleEvent(NOW - 30, 2),)), NOW
    )
    assert (count, reason) == (8, "ScaleDownLimit")


def test_store_scale_event_reuses_outdated_slots() -> None:
    memory = ScalingMemory(scale_up_events=(ScaleEvent(NOW - 100, 2), ScaleEvent(NOW - 5, 1)))
    stored = algo.store_scale_event(memory, UP, 3, 6, NOW)
    assert stored.scale_up_events == (ScaleEvent(NOW, 3), ScaleEvent(NOW - 5, 1))
    down = algo.store_scale_event(stored, DOWN, 6, 2, NOW)
    assert down.scale_down_events == (ScaleEvent(NOW, 4),)


def test_normalize_with_default_behavior_keeps_scaling_down_for_300_seconds() -> None:
    memory = ScalingMemory().with_initial_recommendation(6, NOW - 100)
    out = algo.normalize(
        current=6,
        desired=2,
        min_replicas=1,
        max_replicas=10,
        scale_up=UP,
        scale_down=DOWN,  # no window given: the controller's 300 s
        behavior=True,
        memory=memory,
        now=NOW,
    )
    assert out.replicas == 6
    assert out.able_to_scale[1] == "ScaleDownStabilized"
    later = algo.normalize(
        current=6,
        desired=2,
        min_replicas=1,
        max_replicas=10,
        scale_up=UP,
        scale_down=DOWN,
        behavior=True,
        memory=out.memory,
        now=NOW + 201,
    )
    assert later.replicas == 2
    assert later.able_to_scale == (
        "True",
        "ReadyForNewScale",
        "recommended size matches current size",
    )
    assert later.scaling_limited[:2] == ("False", "DesiredWithinRange")


def test_normalize_without_behavior() -> None:
    out = algo.normalize(
        current=2,
        desired=50,
        min_replicas=1,
        max_replicas=10,
        scale_up=None,
        scale_down=None,
        behavior=False,
        memory=ScalingMemory(),
        now=NOW,
    )
    assert (out.replicas, out.scaling_limited[:2]) == (4, ("True", "ScaleUpLimit"))
    assert out.memory.recommendations == (Recommendation(NOW, 50),)


@given(
    current=st.integers(1, 50),
    desired=st.integers(0, 200),
    bounds=st.tuples(st.integers(1, 20), st.integers(0, 30)),
    behavior=st.booleans(),
)
def test_normalized_size_stays_within_min_and_max(current, desired, bounds, behavior) -> None:
    minimum, extra = bounds
    maximum = minimum + extra
    current = min(max(current, minimum), maximum)  # the controller handles out-of-range
    out = algo.normalize(
        current=current,
        desired=desired,
        min_replicas=minimum,
        max_replicas=maximum,
        scale_up=UP,
        scale_down=DOWN,
        behavior=behavior,
        memory=ScalingMemory(),
        now=NOW,
    )
    assert minimum <= out.replicas <= maximum
