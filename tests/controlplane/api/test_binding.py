from controlplane.api import defaults, validation_pod
from controlplane.api.binding import bound_pod_spec
from controlplane.api.core_pod import Container, PodSpec


def admitted_spec() -> PodSpec:
    spec = defaults.default_pod_spec(PodSpec(containers=(Container(name="c", image="nginx"),)))
    causes: list = []
    validation_pod.check_pod_spec("spec", spec, causes)
    assert causes == []
    return spec


def test_binding_an_admitted_spec_keeps_it_admitted() -> None:
    bound = bound_pod_spec(admitted_spec(), "node-1")
    assert bound.node_name == "node-1"
    assert defaults.is_defaulted(bound) and validation_pod.is_known_valid(bound)
    assert defaults.default_pod_spec(bound) is bound


def test_a_bad_node_name_or_an_unadmitted_spec_is_not_trusted() -> None:
    bad = bound_pod_spec(admitted_spec(), "Not_A_Name")
    assert not validation_pod.is_known_valid(bad)
    causes: list = []
    validation_pod.check_pod_spec("spec", bad, causes)
    assert [c.field for c in causes] == ["spec.nodeName"]
    raw = bound_pod_spec(PodSpec(containers=(Container(name="c", image="nginx"),)), "node-1")
    assert not defaults.is_defaulted(raw) and not validation_pod.is_known_valid(raw)
