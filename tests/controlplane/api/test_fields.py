"""Field selectors, matched against small stand-in objects (the real kinds have the same
snake_case attributes)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.fields import (
    FieldOperator,
    FieldSelector,
    SelectorError,
    escape_value,
    parse_field_selector,
    selectable_fields,
)

POD_FIELDS = (
    "metadata.name, metadata.namespace, spec.nodeName, spec.restartPolicy, "
    "spec.schedulerName, spec.serviceAccountName, spec.hostNetwork, status.phase, "
    "status.podIP, status.nominatedNodeName"
)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def pod(
    name: str = "web-0",
    namespace: str = "default",
    node_name: str | None = None,
    phase: str | None = "Pending",
    **spec: Any,
) -> SimpleNamespace:
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, namespace=namespace),
        spec=SimpleNamespace(node_name=node_name, **spec),
        status=SimpleNamespace(phase=phase, pod_ip=None),
    )


def test_matches_pods() -> None:
    running = pod(node_name="node-1", phase="Running")
    pending = pod(name="web-1", phase="Pending")
    on_node = parse_field_selector("spec.nodeName=node-1", "Pod")
    assert on_node.matches(running) and not on_node.matches(pending)
    unscheduled = parse_field_selector("spec.nodeName=", "Pod")
    assert unscheduled.matches(pending) and not unscheduled.matches(running)
    both = parse_field_selector("status.phase!=Failed,metadata.namespace==default", "Pod")
    assert both.matches(running) and both.matches(pending)
    assert not both.matches(pod(phase="Failed"))
    assert not both.matches(pod(namespace="kube-system"))
    named = parse_field_selector("metadata.name=web-1", "Pod")
    assert named.matches(pending) and not named.matches(running)


def test_missing_attributes_and_none_read_as_empty() -> None:
    bare = SimpleNamespace(metadata=SimpleNamespace(name="x", namespace=""))
    assert parse_field_selector("status.podIP=,spec.nodeName=", "Pod").matches(bare)
    assert parse_field_selector("spec.hostNetwork=false", "Pod").matches(bare)
    assert parse_field_selector("spec.hostNetwork=true", "Pod").matches(pod(host_network=True))
    no_spec = SimpleNamespace(metadata=SimpleNamespace(name="x", namespace=""), spec=None)
    assert parse_field_selector("spec.nodeName=", "Pod").matches(no_spec)


def test_other_kinds() -> None:
    node = SimpleNamespace(
        metadata=SimpleNamespace(name="node-1", namespace=""),
        spec=SimpleNamespace(unschedulable=None),
    )
    assert parse_field_selector("spec.unschedulable=false", "Node").matches(node)
    assert parse_field_selector("metadata.name=node-1", "Node").matches(node)
    event = SimpleNamespace(
        metadata=SimpleNamespace(name="web-0.1", namespace="default"),
        involved_object=SimpleNamespace(kind="Pod", name="web-0", namespace="default", uid="u1"),
        reason="Scheduled",
        type="Normal",
        source=SimpleNamespace(component="default-scheduler"),
    )
    selector = parse_field_selector(
        "involvedObject.kind=Pod,involvedObject.name=web-0,involvedObject.namespace=default,"
        "involvedObject.uid=u1,reason=Scheduled,type=Normal,source=default-scheduler",
        "Event",
    )
    assert selector.matches(event)
    assert not parse_field_selector("type=Warning", "Event").matches(event)
    replicas = SimpleNamespace(status=SimpleNamespace(replicas=3))
    assert parse_field_selector("status.replicas=3", "ReplicaSet").matches(replicas)
    # Kinds without a table select on metadata only.
    assert set(selectable_fields("ConfigMap")) == {"metadata.name", "metadata.namespace"}
    assert set(selectable_fields("Node")) == {
        "metadata.name",
        "metadata.namespace",
        "spec.unschedulable",
    }


def test_print_and_round_trip() -> None:
    selector = parse_field_selector("status.phase!=Failed,spec.nodeName==node-1,,", "Pod")
    assert str(selector) == "spec.nodeName=node-1,status.phase!=Failed"
    assert parse_field_selector(str(selector), "Pod") == selector
    assert [r.operator for r in selector.requirements] == [
        FieldOperator.EQUALS,
        FieldOperator.NOT_EQUALS,
    ]
    escaped = parse_field_selector(r"metadata.name=a\,b\=c\\d", "Pod")
    assert escaped.requirements[0].value == "a,b=c\\d"
    assert str(escaped) == r"metadata.name=a\,b\=c\\d"


def test_empty_selector_matches_everything() -> None:
    selector = parse_field_selector("", "Pod")
    assert selector.empty
    assert selector == FieldSelector.everything("Pod")
    assert selector.matches(pod())
    assert str(selector) == ""
    assert parse_field_selector(",", "Pod").empty


def test_requires_exact_match() -> None:
    selector = parse_field_selector("spec.nodeName=node-1,status.phase!=Failed", "Pod")
    assert selector.requires_exact_match("spec.nodeName") == "node-1"
    assert selector.requires_exact_match("status.phase") is None
    assert selector.requires_exact_match("metadata.name") is None
    assert parse_field_selector("spec.nodeName=", "Pod").requires_exact_match("spec.nodeName") == ""


def test_kind_is_part_of_the_selector() -> None:
    assert parse_field_selector("metadata.name=a", "Pod") != parse_field_selector(
        "metadata.name=a", "Node"
    )


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (
            "spec.foo=bar",
            "Pod",
            f"field label not supported: spec.foo (Pod supports: {POD_FIELDS})",
        ),
        (
            "spec.nodeName=x",
            "Node",
            "field label not supported: spec.nodeName (Node supports: metadata.name, "
            "metadata.namespace, spec.unschedulable)",
        ),
        (
            "status.phase = Running",
            "Pod",
            f"field label not supported: status.phase  (Pod supports: {POD_FIELDS})",
        ),
        (
            "spec.nodeName",
            "Pod",
            'invalid field selector "spec.nodeName": expected "field=value" or'
            ' "field!=value", found "spec.nodeName"',
        ),
        (
            "metadata.name=a,b",
            "Pod",
            'invalid field selector "metadata.name=a,b": expected "field=value" or'
            ' "field!=value", found "b"',
        ),
        (
            "metadata.name=a=b",
            "Pod",
            'invalid field selector "metadata.name=a=b": unescaped "=" in value "a=b"',
        ),
        (
            r"metadata.name=a\b",
            "Pod",
            r'invalid field selector "metadata.name=a\b": invalid escape sequence "\b"',
        ),
        (
            "metadata.name=a\\",
            "Pod",
            'invalid field selector "metadata.name=a\\": invalid escape sequence "\\"',
        ),
        (
            "reason=x",
            "Widget",
            "field label not supported: reason (Widget supports: metadata.name, "
            "metadata.namespace)",
        ),
    ],
)
def test_rejects(text: str, kind: str, message: str) -> None:
    with pytest.raises(SelectorError, match=exactly(message)):
        parse_field_selector(text, kind)


def test_escape_value() -> None:
    assert escape_value("plain") == "plain"
    assert escape_value("a,b=c\\") == "a\\,b\\=c\\\\"


# -- properties -------------------------------------------------------------------------

POD_FIELD_NAMES = list(selectable_fields("Pod"))
values = st.text(alphabet="ab=,\\!- ", max_size=6)
terms = st.tuples(st.sampled_from(POD_FIELD_NAMES), st.sampled_from(["=", "==", "!="]), values)


@given(st.lists(terms, max_size=5))
def test_round_trip(parts: list[tuple[str, str, str]]) -> None:
    text = ",".join(f"{field}{op}{escape_value(value)}" for field, op, value in parts)
    selector = parse_field_selector(text, "Pod")
    assert len(selector.requirements) == len(parts)
    assert parse_field_selector(str(selector), "Pod") == selector
    assert str(parse_field_selector(str(selector), "Pod")) == str(selector)
    assert sorted((r.field, r.value) for r in selector.requirements) == sorted(
        (field, value) for field, _, value in parts
    )


@given(st.lists(terms, max_size=4), st.sampled_from(["", "a", "b=", "node-1"]))
def test_matches_agrees_with_naive_reference(
    parts: list[tuple[str, str, str]], node_name: str
) -> None:
    obj = pod(node_name=node_name, phase=node_name, restart_policy="a")
    text = ",".join(f"{field}{op}{escape_value(value)}" for field, op, value in parts)
    selector = parse_field_selector(text, "Pod")
    getters = selectable_fields("Pod")
    expected = all((getters[field](obj) == value) is (op != "!=") for field, op, value in parts)
    assert selector.matches(obj) is expected
    assert all(r.matches(obj) for r in selector.requirements) is expected
