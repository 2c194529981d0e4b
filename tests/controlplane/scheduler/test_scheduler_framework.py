"""The framework: sampling, rotation, filters then scores, host selection, FitError."""

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduler_builders import expr, info, make_node, make_pod, snapshot_of, term

from controlplane.api.core import Toleration
from controlplane.scheduler.framework import (
    FitError,
    Framework,
    ScheduleResult,
    num_feasible_nodes_to_find,
    select_host,
)
from controlplane.scheduler.interface import Code, Status
from controlplane.scheduler.messages import fit_error_message
from controlplane.scheduler.plugins import default_filters, default_scorers


def framework(**kw):
    return Framework(default_filters(), default_scorers(), **kw)


@pytest.mark.parametrize(
    ("nodes", "percentage", "expected"),
    [
        (0, 0, 0),
        (50, 0, 50),
        (99, 0, 99),
        (100, 0, 100),  # 100 * 50% = 50 -> at least 100
        (250, 0, 120),  # 50 - 2 = 48%
        (500, 0, 230),  # 50 - 4 = 46%
        (1000, 0, 420),  # 50 - 8 = 42%
        (5000, 0, 500),  # 50 - 40 = 10%
        (6000, 0, 300),  # 50 - 48 = 2% -> floor 5%
        (15000, 0, 750),  # 5%
        (5000, 1, 100),  # 1% = 50 -> at least 100
        (5000, 100, 5000),
    ],
)
def test_num_feasible_nodes_to_find(nodes, percentage, expected):
    assert num_feasible_nodes_to_find(nodes, percentage) == expected


def test_fit_error_message_counts_and_sorts_reasons_like_go():
    statuses = [Status(Code.UNSCHEDULABLE, ("Insufficient cpu",))] * 3 + [
        Status(
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("node(s) had untolerated taint {dedicated: gpu}",)
        )
    ] * 2
    # Sorted as strings (Go's sort.Strings), so "2 node(s)..." comes before "3 Insufficient".
    assert fit_error_message(5, statuses) == (
        "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu},"
        " 3 Insufficient cpu."
    )
    # sorted as strings: "10 ..." before "2 ...", a node short of both counts twice
    statuses = [Status(Code.UNSCHEDULABLE, ("Insufficient cpu", "Insufficient memory"))] * 2 + [
        Status(Code.UNSCHEDULABLE, ("Too many pods",))
    ] * 10
    assert (
        fit_error_message(12, statuses)
        == "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu, 2 Insufficient memory."
    )
    assert fit_error_message(3, [], "bad pod") == "0/3 nodes are available: bad pod."


def test_schedule_returns_fit_error_with_the_message():
    nodes = [make_node(f"n{i}", cpu="1") for i in range(3)] + [
        make_node(
            "gpu-1", cpu="8", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
        ),
        make_node(
            "gpu-2", cpu="8", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
        ),
    ]
    result = framework().schedule(info(cpu="2"), snapshot_of(nodes), random.Random(0))
    assert isinstance(result, FitError)
    assert result.message == (
        "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu},"
        " 3 Insufficient cpu."
    )


def test_no_nodes_and_invalid_pods():
    result = framework().schedule(info(), snapshot_of([]), random.Random(0))
    assert result.message == "no nodes available to schedule pods"
    import attrs

    bad = attrs.evolve(
        info(), invalid="spec.containers[0].resources.requests.cpu: must be non-negative"
    )
    result = framework().schedule(
        bad, snapshot_of([make_node("a"), make_node("b")]), random.Random(0)
    )
    assert result.message == (
        "0/2 nodes are available: spec.containers[0].resources.requests.cpu: must be non-negative."
    )


def test_one_feasible_node_is_chosen_without_scoring():
    nodes = [make_node("small", cpu="1"), make_node("big", cpu="8")]
    result = framework().schedule(info(cpu="4"), snapshot_of(nodes), random.Random(0))
    assert result == ScheduleResult("big", 2, 1)


def test_highest_score_wins():
    busy = make_pod("x", cpu="3", node_name="busy")
    nodes = [make_node("busy"), make_node("idle")]
    for seed in range(5):
        result = framework().schedule(
            info(cpu="500m"), snapshot_of(nodes, [busy]), random.Random(seed)
        )
        assert result.node_name == "idle"


def test_ties_are_broken_uniformly_and_reproducibly_by_the_rng():
    nodes = [make_node(f"n{i}") for i in range(4)]
    snap = snapshot_of(nodes)
    picks = [
        framework().schedule(info(), snap, random.Random(seed)).node_name for seed in range(400)
    ]
    counts = Counter(picks)
    assert set(counts) == {"n0", "n1", "n2", "n3"}
    assert all(70 < c < 130 for c in counts.values()), counts
    again = [
        framework().schedule(info(), snap, random.Random(seed)).node_name for seed in range(400)
    ]
    assert again == picks


def test_select_host_draws_only_for_ties():
    class NoDraws(random.Random):
        def randrange(self, *a, **k):
            raise AssertionError("no tie, no draw")

    nodes = ["a", "b", "c"]
    assert select_host(nodes, [1, 5, 3], NoDraws()) == "b"


def test_sampling_stops_at_enough_feasible_nodes_and_rotates():
    nodes = [make_node(f"n{i:03}") for i in range(200)]  # 49% = 98 -> at least 100
    snap = snapshot_of(nodes)
    fw = framework()
    wanted = num_feasible_nodes_to_find(200)
    assert wanted == 100
    first = fw.schedule(info(), snap, random.Random(0))
    assert (first.evaluated_nodes, first.feasible_nodes) == (100, 100)
    assert fw.next_start_node_index == 100
    fw.schedule(info(), snap, random.Random(0))
    assert fw.next_start_node_index == 0
    feasible, _ = fw.find_feasible(info(), snap.nodes)
    assert [n.name for n in feasible] == [f"n{i:03}" for i in range(100)]
    feasible, _ = fw.find_feasible(info(), snap.nodes)
    assert [n.name for n in feasible] == [f"n{i:03}" for i in range(100, 200)]


def test_infeasible_nodes_are_counted_as_processed():
    nodes = [make_node(f"n{i:03}", cpu="1" if i % 2 else "8") for i in range(300)]
    snap = snapshot_of(nodes)
    fw = framework()
    feasible, statuses = fw.find_feasible(info(cpu="2"), snap.nodes)
    assert len(feasible) == num_feasible_nodes_to_find(300) == 144
    # even nodes fit: the 144th feasible is n286, after 143 odd ones were rejected
    assert feasible[-1].name == "n286"
    assert len(statuses) == 143
    assert fw.next_start_node_index == 287


def reference_find_feasible(fw, pod, nodes):
    """Node by node, as kube-scheduler's findNodesThatPassFilters does."""
    n = len(nodes)
    wanted = num_feasible_nodes_to_find(n, fw.percentage_of_nodes_to_score)
    start = fw.next_start_node_index % n
    feasible, statuses = [], {}
    processed = 0
    for i in range(n):
        node = nodes[(start + i) % n]
        processed += 1
        for f in fw.filters:
            if f.pre_filter(pod) and (s := f.filter(pod, node)) is not None:
                statuses[node.name] = s
                break
        else:
            feasible.append(node)
            if len(feasible) >= wanted:
                break
    return feasible, statuses, (start + processed) % n


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    small=st.sets(st.integers(0, 399)),
    start=st.integers(0, 1000),
    percentage=st.sampled_from([0, 1, 30, 100]),
)
def test_chunked_filtering_equals_node_by_node(n, small, start, percentage):
    nodes = [make_node(f"n{i}", cpu="1" if i in small else "4") for i in range(n)]
    snap = snapshot_of(nodes)
    fw = framework(percentage_of_nodes_to_score=percentage)
    fw.next_start_node_index = start
    feasible, statuses, next_index = reference_find_feasible(fw, info(cpu="2"), snap.nodes)
    got_feasible, got_statuses = fw.find_feasible(info(cpu="2"), snap.nodes)
    assert [x.name for x in got_feasible] == [x.name for x in feasible]
    assert got_statuses == statuses
    assert fw.next_start_node_index == next_index


@st.composite
def fast_path_cases(draw):
    """A cluster (nodes of a few shapes, some pods on them, maybe a cordoned or tainted
    node) and a stream of pods to schedule one after another."""
    n = draw(st.integers(1, 260))
    shapes = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["1", "2", "4"]),
                st.sampled_from(["1Gi", "4Gi"]),
                st.sampled_from([1, 3, 110]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    zoned = draw(st.booleans())
    # cordoned / tainted nodes: none, or every ``every``-th node from ``first``, of one kind
    special = draw(st.sampled_from([None, "cordon", "taint", "prefer", "mixed"]))
    first, every = draw(st.integers(0, 5)), draw(st.sampled_from([1, 3, 50, 1000]))
    nodes = []
    for i in range(n):
        cpu, memory, pods = shapes[i % len(shapes)]
        kw = {}
        kind = special
        if special == "mixed":
            kind = ("cordon", "taint", "prefer")[i % 3]
        if special is None or i < first or (i - first) % every:
            pass
        elif kind == "cordon":
            kw["unschedulable"] = True
        else:
            effect = "NoSchedule" if kind == "taint" else "PreferNoSchedule"
            kw["taints"] = [{"key": "k", "value": "v", "effect": effect}]
        labels = {"topology.kubernetes.io/zone": f"z{i % 3}"} if zoned else {}
        labels["disk"] = "ssd" if i % 2 else "hdd"
        nodes.append(make_node(f"n{i}", cpu=cpu, memory=memory, pods=pods, labels=labels, **kw))
    placed = [
        make_pod(f"b{j}", cpu="500m", node_name=f"n{draw(st.integers(0, n - 1))}", owner_uid="rs")
        for j in range(draw(st.integers(0, 20)))
    ]
    kinds = st.sampled_from(
        ["plain", "best-effort", "big", "huge", "rs", "preferred", "selector", "tolerant"]
    )
    stream = draw(st.lists(kinds, min_size=1, max_size=25))
    return nodes, placed, stream, draw(st.sampled_from([0, 1, 30, 100])), draw(st.integers(0, 99))


def _stream_pod(kind, i):
    if kind == "plain":
        return info(name=f"s{i}", cpu="300m", memory="100Mi")
    if kind == "best-effort":
        return info(make_pod(f"s{i}", containers=[]))
    if kind == "big":
        return info(name=f"s{i}", cpu="1500m", memory="1Gi")
    if kind == "huge":
        return info(name=f"s{i}", cpu="64", memory="1Gi")
    if kind == "rs":
        return info(name=f"s{i}", cpu="200m", owner_uid="rs")
    if kind == "preferred":
        return info(name=f"s{i}", cpu="100m", preferred=[(5, term(expr("disk", "In", "ssd")))])
    if kind == "tolerant":
        return info(
            name=f"s{i}",
            cpu="100m",
            tolerations=[Toleration(key="k", operator="Exists")],
            owner_uid="rs",
        )
    return info(name=f"s{i}", cpu="100m", node_selector={"disk": "ssd"})


@settings(max_examples=150, deadline=None)
@given(fast_path_cases())
def test_fast_path_schedules_exactly_like_the_general_path(case):
    """Same choices, same counts, same rotation, same random draws, same FitErrors."""
    from controlplane.scheduler.snapshot import PodUsage

    nodes, placed, stream, percentage, seed = case
    runs = []
    for fast in (True, False):
        snap = snapshot_of(nodes, placed)
        fw = framework(percentage_of_nodes_to_score=percentage, fast_path=fast)
        rng = random.Random(seed)
        out = []
        for i, kind in enumerate(stream):
            pod = _stream_pod(kind, i)
            result = fw.schedule(pod, snap, rng)
            if isinstance(result, FitError):
                out.append(("fit-error", result.message, sorted(result.statuses)))
            else:
                out.append(result)
                snap.assume(pod.key, result.node_name, PodUsage(pod.requests, pod.spread_key))
            out.append((fw.next_start_node_index, rng.random()))
        runs.append(out)
    assert runs[0] == runs[1]


def test_fast_path_is_taken_for_pods_without_node_name_or_required_affinity():
    snap = snapshot_of([make_node(f"n{i}") for i in range(300)])
    fw = framework()
    assert fw._fast is not None and fw._fast.applies(info(cpu="1"), snap)
    assert not fw._fast.applies(info(cpu="1", node_selector={"a": "b"}), snap)
    # cordoned and tainted nodes are tracked by position, for the whole filter chain
    snap.set_node(make_node("n7", unschedulable=True))
    snap.set_node(make_node("n3", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    assert snap.special_slots() == [3, 7] and snap.prefer_tainted and not snap.plain
    snap.set_node(make_node("n7"))
    snap.remove_node("n0")
    assert snap.special_slots() == [2]
    snap.set_node(make_node("n3"))
    assert snap.special_slots() == [] and not snap.prefer_tainted and snap.plain
    # a profile with a filter the fast path does not know has no fast path
    from controlplane.scheduler.plugins import NodeResourcesFit

    class Extra(NodeResourcesFit):
        pass

    assert Framework([*default_filters(), Extra()], default_scorers())._fast is None


def test_snapshot_resource_keys_follow_the_nodes():
    from controlplane.scheduler.podinfo import Requests
    from controlplane.scheduler.snapshot import PodUsage

    snap = snapshot_of([make_node(f"n{i}") for i in range(5)])
    assert snap.resource_keys == [n.resource_key for n in snap.nodes]
    snap.assume("default/a", "n2", PodUsage(Requests(100, 1, 100, 1), None))
    snap.set_pod(make_pod("b", cpu="1", node_name="n4"))
    snap.set_pod(make_pod("c", cpu="1", node_name="ghost"))  # a node not seen yet
    assert snap.resource_keys == [n.resource_key for n in snap.nodes]
    snap.remove_node("n1")
    snap.set_node(make_node("ghost"))
    snap.forget("default/a")
    assert [n.name for n in snap.nodes] == ["n0", "n2", "n3", "n4", "ghost"]
    assert snap.resource_keys == [n.resource_key for n in snap.nodes]
    snap.remove_pod(make_pod("b", node_name="n4"))
    assert snap.resource_keys == [n.resource_key for n in snap.nodes]


def test_confirming_an_assumed_pod_keeps_its_usage_and_later_changes_apply():
    import datetime

    import attrs

    from controlplane.scheduler.snapshot import usage_of

    snap = snapshot_of([make_node("n1"), make_node("n2")])
    pod = make_pod("a", cpu="1", owner_uid="rs")
    snap.assume("default/a", "n1", usage_of(pod))
    before = snap.get("n1").resource_key
    bound_pod = attrs.evolve(pod, spec=attrs.evolve(pod.spec, node_name="n1"))
    snap.set_pod(bound_pod)  # the bind, seen by the informer
    assert not snap.assumed and snap.node_of("default/a") == "n1"
    assert snap.get("n1").resource_key == before and snap.get("n1").req_milli_cpu == 1000
    assert snap.spread_nodes("default/rs") == {"n1": 1}
    leaving = attrs.evolve(
        bound_pod,
        metadata=attrs.evolve(
            pod.metadata, deletion_timestamp=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
        ),
    )
    snap.set_pod(leaving)  # terminating: still uses resources, no longer spread
    assert snap.spread_nodes("default/rs") == {} and snap.get("n1").req_milli_cpu == 1000
    moved = attrs.evolve(bound_pod, spec=attrs.evolve(pod.spec, node_name="n2"))
    snap.set_pod(moved)
    assert snap.get("n1").req_milli_cpu == 0 and snap.get("n2").req_milli_cpu == 1000
    assert snap.resource_keys == [n.resource_key for n in snap.nodes]
