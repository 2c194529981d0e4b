"""Filter and score plugins against hand-built snapshots, one rule per test, with the
numbers worked out from the Kubernetes formulas; batch methods equal per-node ones."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduler_builders import container, expr, info, make_node, make_pod, snapshot_of, term

from controlplane.api.core import Taint, Toleration
from controlplane.scheduler.interface import SKIP, Code, default_normalize
from controlplane.scheduler.plugins import (
    BalancedAllocation,
    DefaultPodTopologySpread,
    LeastAllocated,
    NodeAffinity,
    NodeName,
    NodeResourcesFit,
    NodeUnschedulable,
    TaintToleration,
)
from controlplane.scheduler.snapshot import NodeInfo, ResourceKeys


def node_info(node, *pods):
    snap = snapshot_of([node], [p for p in pods])
    return snap.get(node.metadata.name)


def bound(name, node, **kw):
    return make_pod(name, node_name=node, **kw)


# -- NodeResourcesFit ------------------------------------------------------------------


def test_fit_passes_when_requests_fit_exactly():
    n = node_info(make_node("n", cpu="2", memory="4Gi"), bound("a", "n", cpu="1", memory="2Gi"))
    assert NodeResourcesFit().filter(info(cpu="1", memory="2Gi"), n) is None


@pytest.mark.parametrize(
    ("cpu", "memory", "reasons"),
    [
        ("1500m", "1Gi", ("Insufficient cpu",)),
        ("500m", "3Gi", ("Insufficient memory",)),
        ("2", "3Gi", ("Insufficient cpu", "Insufficient memory")),
    ],
)
def test_fit_reports_each_insufficient_resource(cpu, memory, reasons):
    n = node_info(make_node("n", cpu="2", memory="4Gi"), bound("a", "n", cpu="1", memory="2Gi"))
    status = NodeResourcesFit().filter(info(cpu=cpu, memory=memory), n)
    assert status.reasons == reasons
    assert status.code is Code.UNSCHEDULABLE
    assert status.plugin == "NodeResourcesFit"


def test_fit_counts_pods_and_ignores_zero_requests_for_resources():
    n = node_info(make_node("n", cpu="1", pods=2), bound("a", "n", cpu="1"), bound("b", "n"))
    status = NodeResourcesFit().filter(info(), n)  # requests nothing: only the pod count
    assert status.reasons == ("Too many pods",)
    roomy = node_info(make_node("m", cpu="1", pods=3), bound("a", "m", cpu="1"))
    assert NodeResourcesFit().filter(info(), roomy) is None


def test_terminal_pods_free_their_resources():
    import attrs

    done = bound("a", "n", cpu="2")
    done = attrs.evolve(done, status=attrs.evolve(done.status, phase="Succeeded"))
    n = node_info(make_node("n", cpu="2"), done)
    assert NodeResourcesFit().filter(info(cpu="2"), n) is None


# -- NodeUnschedulable, NodeName ---------------------------------------------------------


def test_unschedulable_node_rejects_unless_tolerated():
    n = node_info(make_node("n", unschedulable=True))
    status = NodeUnschedulable().filter(info(), n)
    assert status.reasons == ("node(s) were unschedulable",)
    tolerates = Toleration(
        key="node.kubernetes.io/unschedulable", operator="Exists", effect="NoSchedule"
    )
    assert NodeUnschedulable().filter(info(tolerations=[tolerates]), n) is None
    assert NodeUnschedulable().filter(info(), node_info(make_node("m"))) is None


def test_node_name():
    p = info(node_name="n2")
    assert NodeName().pre_filter(p)
    assert NodeName().filter(p, node_info(make_node("n2"))) is None
    status = NodeName().filter(p, node_info(make_node("n1")))
    assert status.reasons == ("node(s) didn't match the requested node name",)
    assert not NodeName().pre_filter(info())


# -- TaintToleration ---------------------------------------------------------------------

GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        (Toleration(key="dedicated", operator="Equal", value="gpu", effect="NoSchedule"), True),
        (Toleration(key="dedicated", value="gpu"), True),  # Equal by default, any effect
        (Toleration(key="dedicated", operator="Equal", value="cpu"), False),
        (Toleration(key="dedicated", operator="Exists"), True),
        (Toleration(operator="Exists"), True),  # empty key + Exists tolerates everything
        (Toleration(key="dedicated", operator="Exists", effect="NoExecute"), False),
        (Toleration(key="other", operator="Exists"), False),
        (Toleration(key="dedicated", operator="Gt", value="gpu"), False),
    ],
)
def test_tolerations(toleration, tolerated):
    n = node_info(make_node("n", taints=[GPU]))
    status = TaintToleration().filter(info(tolerations=[toleration]), n)
    assert (status is None) is tolerated


def test_untolerated_taint_message_names_the_first_one():
    n = node_info(make_node("n", taints=[{"key": "a", "effect": "NoExecute"}, GPU]))
    status = TaintToleration().filter(info(), n)
    assert status.reasons == ("node(s) had untolerated taint {a: }",)
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    status = TaintToleration().filter(info(tolerations=[Toleration(key="a", operator="Exists")]), n)
    assert status.reasons == ("node(s) had untolerated taint {dedicated: gpu}",)


def test_prefer_no_schedule_does_not_filter_but_scores():
    soft = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    nodes = [
        node_info(make_node("a")),
        node_info(make_node("b", taints=[soft])),
        node_info(make_node("c", taints=[soft, {"key": "x", "effect": "PreferNoSchedule"}])),
    ]
    plugin = TaintToleration()
    p = info()
    assert [plugin.filter(p, n) for n in nodes] == [None, None, None]
    scores = [plugin.score(None, p, n) for n in nodes]
    assert scores == [0, 1, 2]
    plugin.normalize(None, scores)
    assert scores == [100, 50, 0]
    # A NoSchedule-only toleration does not help against PreferNoSchedule taints.
    p = info(tolerations=[Toleration(key="spot", operator="Exists", effect="NoSchedule")])
    assert [plugin.score(None, p, n) for n in nodes] == [0, 1, 2]
    p = info(tolerations=[Toleration(key="spot", operator="Exists")])
    assert [plugin.score(None, p, n) for n in nodes] == [0, 0, 1]


# -- NodeAffinity ------------------------------------------------------------------------


def test_node_affinity_filter_and_selector():
    n = node_info(make_node("n", labels={"zone": "a"}))
    plugin = NodeAffinity()
    assert not plugin.pre_filter(info())
    assert plugin.filter(info(node_selector={"zone": "a"}), n) is None
    status = plugin.filter(info(node_selector={"zone": "b"}), n)
    assert status.reasons == ("node(s) didn't match Pod's node affinity/selector",)
    p = info(required=[term(expr("zone", "NotIn", "a"))])
    assert plugin.filter(p, n) is status


def test_preferred_affinity_scores_sum_weights_normalised_to_100():
    nodes = [
        node_info(make_node("a", labels={"zone": "a", "gpu": "1"})),
        node_info(make_node("b", labels={"zone": "a"})),
        node_info(make_node("c")),
    ]
    p = info(preferred=[(10, term(expr("zone", "In", "a"))), (5, term(expr("gpu", "Exists")))])
    plugin = NodeAffinity()
    assert plugin.pre_score(p, nodes, None) is not SKIP
    scores = [plugin.score(None, p, n) for n in nodes]
    assert scores == [15, 10, 0]
    plugin.normalize(None, scores)
    assert scores == [100, 66, 0]
    assert plugin.pre_score(info(), nodes, None) is SKIP


# -- resource scores ---------------------------------------------------------------------


def test_least_allocated_and_balanced_worked_examples():
    n = node_info(make_node("n", cpu="4", memory="16Gi"), bound("a", "n", cpu="1", memory="4Gi"))
    p = info(cpu="500m", memory="2Gi")
    # cpu (4000-1500)*100//4000 = 62, memory (16-6)*100//16 = 62 -> 62
    assert LeastAllocated().score(None, p, n) == 62
    # both 37.5% used: no deviation
    assert BalancedAllocation().score(None, p, n) == 100
    empty = node_info(make_node("e", cpu="4", memory="16Gi"))
    p = info(cpu="2", memory="1Gi")
    # cpu 50, memory (16-1)*100//16 = 93 -> (50+93)//2 = 71
    assert LeastAllocated().score(None, p, empty) == 71
    # fractions 0.5 and 0.0625: std 0.21875 -> int(78.125) = 78
    assert BalancedAllocation().score(None, p, empty) == 78


def test_least_allocated_uses_nonzero_defaults_balanced_does_not():
    empty = node_info(make_node("e", cpu="4", memory="16Gi"))
    p = info()
    # cpu (4000-100)*100//4000 = 97, memory (16384-200)*100//16384 = 98 -> 97
    assert LeastAllocated().score(None, p, empty) == 97
    assert BalancedAllocation().score(None, p, empty) == 100
    assert BalancedAllocation().pre_score(p, [empty], None) is SKIP  # best effort: skipped
    assert BalancedAllocation().pre_score(info(cpu="1m"), [empty], None) is not SKIP


def test_over_committed_scores_zero_for_that_resource():
    n = node_info(make_node("n", cpu="1", memory="16Gi"))
    p = info(cpu="2", memory="8Gi")
    assert LeastAllocated().score(None, p, n) == (0 + 50) // 2
    # cpu fraction capped at 1, memory 0.5 -> std 0.25 -> 75
    assert BalancedAllocation().score(None, p, n) == 75


# -- spreading ---------------------------------------------------------------------------


def test_spread_prefers_nodes_with_fewer_pods_of_the_controller():
    pods = [
        bound("a1", "a", owner_uid="rs"),
        bound("a2", "a", owner_uid="rs"),
        bound("b1", "b", owner_uid="rs"),
        bound("c1", "c", owner_uid="other"),
    ]
    snap = snapshot_of([make_node(x) for x in "abc"], pods)
    nodes = snap.nodes
    plugin = DefaultPodTopologySpread()
    p = info(owner_uid="rs")
    state = plugin.pre_score(p, nodes, snap)
    assert state.host_weight == pytest.approx(math.log(5))
    raw = [plugin.score(state, p, n) for n in nodes]
    assert raw == [round(2 * math.log(5) + 2), round(math.log(5) + 2), 2] == [5, 4, 2]
    plugin.normalize(state, raw)
    assert raw == [40, 60, 100]  # 100 * (max + min - s) // max
    assert plugin.pre_score(info(), nodes, snap) is SKIP  # no controller: not scored


def test_spread_counts_zones_too():
    nodes = [
        make_node("a", labels={"topology.kubernetes.io/zone": "z1"}),
        make_node("b", labels={"topology.kubernetes.io/zone": "z1"}),
        make_node("c", labels={"topology.kubernetes.io/zone": "z2"}),
    ]
    snap = snapshot_of(nodes, [bound("a1", "a", owner_uid="rs")])
    plugin = DefaultPodTopologySpread()
    p = info(owner_uid="rs")
    state = plugin.pre_score(p, snap.nodes, snap)
    assert state.zone_counts == {"z1": 1, "z2": 0}
    raw = [plugin.score(state, p, n) for n in snap.nodes]
    host, zone = math.log(5), math.log(4)
    assert raw == [
        math.floor(host + 2 + zone + 4 + 0.5),
        math.floor(2 + zone + 4 + 0.5),
        math.floor(2 + 4 + 0.5),
    ]
    plugin.normalize(state, raw)
    assert raw[2] == 100 and raw[0] < raw[1] < raw[2]


def test_terminating_pods_do_not_count_for_spreading():
    import datetime

    import attrs

    leaving = bound("a1", "a", owner_uid="rs")
    leaving = attrs.evolve(
        leaving,
        metadata=attrs.evolve(
            leaving.metadata, deletion_timestamp=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
        ),
    )
    snap = snapshot_of([make_node("a")], [leaving])
    assert snap.get("a").spread_counts == {}
    assert snap.get("a").req_milli_cpu == 0 and len(snap.get("a").pods) == 1


# -- normalisation -----------------------------------------------------------------------


def test_default_normalize():
    scores = [0, 5, 10]
    default_normalize(scores)
    assert scores == [0, 50, 100]
    scores = [0, 0]
    default_normalize(scores)
    assert scores == [0, 0]
    default_normalize(scores, reverse=True)
    assert scores == [100, 100]
    scores = [1, 3]
    default_normalize(scores, reverse=True)
    assert scores == [67, 0]


# -- batch methods equal per-node ones -------------------------------------------------

quantity_cpu = st.sampled_from(["0", "100m", "250m", "1", "2", "3500m", "8"])
quantity_mem = st.sampled_from(["0", "128Mi", "1Gi", "3Gi", "16Gi"])
taints = st.lists(
    st.builds(
        Taint,
        key=st.sampled_from(["a", "b"]),
        value=st.sampled_from(["", "x"]),
        effect=st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"]),
    ),
    max_size=2,
)
tolerations = st.lists(
    st.builds(
        Toleration,
        key=st.sampled_from([None, "a", "b"]),
        operator=st.sampled_from([None, "Exists", "Equal"]),
        value=st.sampled_from([None, "x"]),
        effect=st.sampled_from([None, "NoSchedule", "PreferNoSchedule"]),
    ),
    max_size=2,
)


@st.composite
def clusters(draw):
    keys = ResourceKeys()
    nodes = []
    for i in range(draw(st.integers(1, 8))):
        node = make_node(
            f"n{i}",
            cpu=draw(st.sampled_from(["0", "1", "4"])),
            memory=draw(st.sampled_from(["0", "2Gi", "16Gi"])),
            pods=draw(st.integers(0, 3)),
            labels={"zone": draw(st.sampled_from(["a", "b"]))},
            taints=draw(taints),
            unschedulable=draw(st.booleans()),
        )
        ni = NodeInfo(node.metadata.name, keys if draw(st.booleans()) else None)
        ni.set_node(node)
        for j in range(draw(st.integers(0, 2))):
            usage_pod = bound(
                f"p{i}-{j}", node.metadata.name, cpu=draw(quantity_cpu), memory=draw(quantity_mem)
            )
            from controlplane.scheduler.snapshot import usage_of

            ni.add(f"default/p{i}-{j}", usage_of(usage_pod))
        nodes.append(ni)
    pod = make_pod(
        containers=[container(draw(quantity_cpu), draw(quantity_mem))],
        tolerations=draw(tolerations),
        node_selector=draw(st.sampled_from([None, {"zone": "a"}])),
    )
    return nodes, info(pod)


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(0, 20), min_size=1, max_size=12),
    zones=st.lists(st.sampled_from([None, "z1", "z2"]), min_size=12, max_size=12),
)
def test_spread_batch_scores_equal_per_node_scores(counts, zones):
    nodes, pods = [], []
    for i, count in enumerate(counts):
        labels = {"topology.kubernetes.io/zone": zones[i]} if zones[i] else {}
        nodes.append(make_node(f"n{i}", labels=labels))
        pods += [bound(f"p{i}-{j}", f"n{i}", owner_uid="rs") for j in range(count)]
    snap = snapshot_of(nodes, pods)
    plugin = DefaultPodTopologySpread()
    p = info(owner_uid="rs")
    state = plugin.pre_score(p, snap.nodes, snap)
    assert plugin.score_many(state, p, snap.nodes) == [
        plugin.score(state, p, n) for n in snap.nodes
    ]


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_batch_methods_equal_per_node_methods(cluster):
    nodes, p = cluster
    for plugin in (NodeResourcesFit(), NodeUnschedulable(), TaintToleration(), NodeAffinity()):
        expected = {i: s for i, n in enumerate(nodes) if (s := plugin.filter(p, n)) is not None}
        assert plugin.filter_many(p, nodes) == expected
        assert plugin.filter_many(p, nodes) == expected  # memoised the second time
    for plugin in (LeastAllocated(), BalancedAllocation(), TaintToleration()):
        expected = [plugin.score(None, p, n) for n in nodes]
        assert plugin.score_many(None, p, nodes) == expected
        assert plugin.score_many(None, p, nodes) == expected
        assert all(0 <= s <= 100 for s in expected) or isinstance(plugin, TaintToleration)
