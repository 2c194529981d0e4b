"""A pod's request vector and its digest for the plugins (scheduler/podinfo.py)."""

import pytest
from scheduler_builders import GI, container, make_pod

from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.scheduler.podinfo import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    InvalidRequests,
    PodInfo,
    Requests,
    pod_requests,
)

MI = 1024**2


def test_containers_add_up():
    pod = make_pod(containers=[container("250m", "1Gi"), container("1", "512Mi")])
    assert pod_requests(pod) == Requests(1250, GI + 512 * MI, 1250, GI + 512 * MI)


def test_missing_requests_count_as_zero_but_nonzero_defaults_apply_per_container():
    pod = make_pod(containers=[container("200m"), container(memory="1Gi")])
    r = pod_requests(pod)
    assert (r.milli_cpu, r.memory) == (200, GI)
    assert r.nz_milli_cpu == 200 + DEFAULT_MILLI_CPU_REQUEST
    assert r.nz_memory == DEFAULT_MEMORY_REQUEST + GI


def test_init_containers_take_the_max_rule():
    pod = make_pod(
        containers=[container("500m", "1Gi"), container("500m", "1Gi")],
        init_containers=[container("2", "1Gi"), container("100m", "4Gi")],
    )
    r = pod_requests(pod)
    assert (r.milli_cpu, r.memory) == (2000, 4 * GI)


def test_sidecars_run_alongside_and_add_up():
    sidecar = container("300m", "100Mi", restart_policy="Always")
    pod = make_pod(
        containers=[container("1", "1Gi")],
        init_containers=[sidecar, container("1", "1Gi")],
    )
    # app 1 + sidecar 0.3 = 1.3; the later init container runs next to the sidecar: 1.3
    r = pod_requests(pod)
    assert (r.milli_cpu, r.memory) == (1300, GI + 100 * MI)


def test_negative_requests_make_the_pod_invalid_not_an_exception():
    from controlplane.api.quantity import Quantity

    pod = make_pod(cpu="1")
    bad = container()
    import attrs

    bad = attrs.evolve(
        bad,
        resources=attrs.evolve(bad.resources, requests={"cpu": Quantity.parse("-1")}),
    )
    pod = attrs.evolve(pod, spec=attrs.evolve(pod.spec, containers=(bad,)))
    with pytest.raises(
        InvalidRequests,
        match=r"^spec\.containers\[0\]\.resources\.requests\.cpu: must be non-negative$",
    ):
        pod_requests(pod)
    info = PodInfo.from_pod(pod)
    assert info.invalid == "spec.containers[0].resources.requests.cpu: must be non-negative"
    assert info.requests == Requests()


def test_absurd_but_valid_requests_are_kept():
    info = PodInfo.from_pod(make_pod(cpu="1e30"))
    assert info.invalid is None
    assert info.requests.milli_cpu == 10**33


def test_spread_key_is_the_controller_owner():
    import attrs

    pod = make_pod(owner_uid="rs-1")
    assert PodInfo.from_pod(pod).spread_key == "default/rs-1"
    not_controller = OwnerReference(api_version="v1", kind="ConfigMap", name="x", uid="u")
    other = attrs.evolve(
        pod, metadata=ObjectMeta(name="q", namespace="default", owner_references=(not_controller,))
    )
    assert PodInfo.from_pod(other).spread_key is None


def test_priority_absent_is_zero():
    assert PodInfo.from_pod(make_pod()).priority == 0
    assert PodInfo.from_pod(make_pod(priority=1000)).priority == 1000


def test_requests_of_pods_sharing_containers_are_computed_once_and_stay_right():
    import attrs

    a = make_pod("a", cpu="250m", memory="1Gi")
    b = make_pod("b", cpu="1", memory="2Gi")
    bound_a = attrs.evolve(a, spec=attrs.evolve(a.spec, node_name="n1"))  # shares containers
    first = pod_requests(a)
    assert pod_requests(bound_a) is first  # the same container tuples: memoised
    assert pod_requests(b) == Requests(1000, 2 * GI, 1000, 2 * GI)
    assert pod_requests(a) == first == Requests(250, GI, 250, GI)
    bad = make_pod("c", cpu="-1")
    for _ in range(2):  # an invalid pod is never remembered as valid
        with pytest.raises(InvalidRequests):
            pod_requests(bad)
