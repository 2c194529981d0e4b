"""Node selectors and node affinity terms, compiled (scheduler/affinity.py)."""

import pytest
from scheduler_builders import expr, term

from controlplane.api.core import NodeSelector
from controlplane.scheduler.affinity import compile_node_selector, compile_term

LABELS = {"zone": "a", "gpu": "true", "cores": "16", "weird": "x1"}


@pytest.mark.parametrize(
    ("requirement", "matches"),
    [
        (expr("zone", "In", "a", "b"), True),
        (expr("zone", "In", "b"), False),
        (expr("missing", "In", "a"), False),
        (expr("zone", "NotIn", "b"), True),
        (expr("zone", "NotIn", "a"), False),
        (expr("missing", "NotIn", "a"), True),
        (expr("gpu", "Exists"), True),
        (expr("missing", "Exists"), False),
        (expr("gpu", "DoesNotExist"), False),
        (expr("missing", "DoesNotExist"), True),
        (expr("cores", "Gt", "8"), True),
        (expr("cores", "Gt", "16"), False),
        (expr("cores", "Lt", "32"), True),
        (expr("cores", "Lt", "16"), False),
        # "-1" parses as an integer but is not a valid label value, and the scheduler
        # builds label requirements (NewRequirement): the term matches nothing
        # (kubernetes/kubernetes#128212).
        (expr("cores", "Gt", "-1"), False),
        (expr("zone", "NotIn"), False),  # NotIn needs values: term invalid
        (expr("missing", "Gt", "1"), False),
        (expr("weird", "Gt", "1"), False),  # label not an integer
        (expr("cores", "Gt", "x"), False),  # value not an integer: term invalid
        (expr("cores", "Gt", "1", "2"), False),  # Gt needs exactly one value
        (expr("gpu", "Exists", "true"), False),  # Exists takes no values
        (expr("zone", "Like", "a"), False),  # unknown operator
    ],
)
def test_match_expression_operators(requirement, matches):
    assert compile_term(term(requirement)).matches(LABELS, "node-1") is matches


@pytest.mark.parametrize(
    ("field", "matches"),
    [
        (expr("metadata.name", "In", "node-1", "node-2"), True),
        (expr("metadata.name", "In", "node-2"), False),
        (expr("metadata.name", "NotIn", "node-2"), True),
        (expr("metadata.name", "NotIn", "node-1"), False),
        (expr("metadata.name", "Exists"), False),  # only In / NotIn on fields
        (expr("metadata.uid", "In", "node-1"), False),  # only metadata.name
    ],
)
def test_match_fields_on_the_node_name(field, matches):
    assert compile_term(term(fields=[field])).matches(LABELS, "node-1") is matches


def test_expressions_and_fields_in_a_term_are_anded():
    t = term(expr("zone", "In", "a"), fields=[expr("metadata.name", "In", "node-2")])
    assert not compile_term(t).matches(LABELS, "node-1")
    assert compile_term(t).matches(LABELS, "node-2")


def test_terms_are_ored_and_an_empty_term_matches_nothing():
    sel = compile_node_selector(
        {}, NodeSelector(node_selector_terms=(term(), term(expr("zone", "In", "a"))))
    )
    assert sel.matches(LABELS, "n")
    assert not compile_node_selector({}, NodeSelector(node_selector_terms=(term(),))).matches(
        LABELS, "n"
    )
    assert not compile_node_selector({}, NodeSelector(node_selector_terms=())).matches(LABELS, "n")


def test_node_selector_and_affinity_must_both_match():
    required = NodeSelector(node_selector_terms=(term(expr("gpu", "Exists")),))
    assert compile_node_selector({"zone": "a"}, required).matches(LABELS, "n")
    assert not compile_node_selector({"zone": "b"}, required).matches(LABELS, "n")
    assert not compile_node_selector(
        {"zone": "a"}, NodeSelector(node_selector_terms=(term(expr("ssd", "Exists")),))
    ).matches(LABELS, "n")


def test_no_selector_compiles_to_none():
    assert compile_node_selector({}, None) is None
