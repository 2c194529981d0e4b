"""Node selectors compiled for matching: ``nodeSelector``, required and preferred node
affinity terms (``k8s.io/component-helpers/scheduling/corev1/nodeaffinity``).

A pod is matched against thousands of nodes, so its selectors are compiled once into
small closures. Semantics, as in Kubernetes:

- ``nodeSelector``: every ``key: value`` must be a node label;
- ``nodeSelectorTerms`` are ORed; inside a term, ``matchExpressions`` and ``matchFields``
  are ANDed; a term with neither matches nothing, and so does an empty list of terms;
- operators: ``In`` (label present, value listed), ``NotIn`` (absent, or value not
  listed), ``Exists``, ``DoesNotExist``, ``Gt`` / ``Lt`` (label present and, read as an
  integer, greater / less than the single integer value);
- ``matchFields`` supports ``metadata.name`` with ``In`` / ``NotIn``.

A malformed requirement (unknown operator or field, ``Gt`` without exactly one integer)
makes its term match nothing instead of raising, like ``LazyErrorNodeSelector``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from controlplane.api.core_pod import NodeSelector, NodeSelectorRequirement, NodeSelectorTerm
from controlplane.api.labels import Operator, Requirement, SelectorError

__all__ = ["CompiledSelector", "compile_node_selector", "compile_term"]

#: (node labels, node name) -> matches
Matcher = Callable[[Mapping[str, str], str], bool]

#: Node-affinity operators as label-selector operators (Kubernetes converts them the
#: same way, ``nodeSelectorRequirementsAsSelector``, and builds ``labels.Requirement``).
_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}


def _never(labels: Mapping[str, str], name: str) -> bool:
    return False


def _expression(req: NodeSelectorRequirement) -> Matcher | None:
    operator = _OPERATORS.get(req.operator)
    if operator is None:
        return None
    try:
        requirement = Requirement.create(req.key, operator, req.values)
    except SelectorError:
        return None  # the term matches nothing (LazyErrorNodeSelector)
    match = requirement.matches
    return lambda labels, name: match(labels)


def _field(req: NodeSelectorRequirement) -> Matcher | None:
    if req.key != "metadata.name":
        return None
    values = frozenset(req.values)
    if req.operator == "In":
        return lambda labels, name: name in values
    if req.operator == "NotIn":
        return lambda labels, name: name not in values
    return None


def compile_term(term: NodeSelectorTerm) -> CompiledSelector:
    """One term as a selector (used for preferred terms)."""
    return CompiledSelector((), (_compile_term(term),))


def _compile_term(term: NodeSelectorTerm) -> tuple[Matcher, ...]:
    if not term.match_expressions and not term.match_fields:
        return (_never,)
    matchers: list[Matcher] = []
    for req in term.match_expressions:
        m = _expression(req)
        if m is None:
            return (_never,)
        matchers.append(m)
    for req in term.match_fields:
        m = _field(req)
        if m is None:
            return (_never,)
        matchers.append(m)
    return tuple(matchers)


def compile_node_selector(
    node_selector: Mapping[str, str], required: NodeSelector | None
) -> CompiledSelector | None:
    """``nodeSelector`` AND the required affinity, or None when the pod has neither."""
    if not node_selector and required is None:
        return None
    terms = None
    if required is not None:
        terms = tuple(_compile_term(t) for t in required.node_selector_terms)
    return CompiledSelector(tuple(node_selector.items()), terms)


class CompiledSelector:
    """A compiled selector: ``labels`` pairs that must all be present, then ``terms``
    (None: no terms required; otherwise at least one must match, each term a tuple of
    matchers that must all match)."""

    __slots__ = ("labels", "terms")

    def __init__(
        self,
        labels: tuple[tuple[str, str], ...],
        terms: tuple[tuple[Matcher, ...], ...] | None,
    ) -> None:
        self.labels = labels
        self.terms = terms

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        for key, value in self.labels:
            if labels.get(key) != value:
                return False
        terms = self.terms
        if terms is None:
            return True
        for term in terms:
            for matcher in term:
                if not matcher(labels, name):
                    break
            else:
                return True
        return False

    def __repr__(self) -> str:
        return f"CompiledSelector(labels={self.labels!r}, terms={self.terms is not None})"
