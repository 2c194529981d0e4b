"""Field selectors (``spec.nodeName=node-1,status.phase!=Failed``), as Kubernetes' ``fields``.

A field selector is an AND of terms ``field=value`` (``==`` is a synonym) or
``field!=value``, separated by commas. Values are compared as strings; in a value, ``\\``,
``,`` and ``=`` are escaped with a backslash (`escape_value`). An empty selector matches
everything; empty terms (``a=b,,c=d``, a trailing comma) are skipped, as in Kubernetes.
Nothing is trimmed: ``status.phase = Running`` names the field ``"status.phase "``.

Which fields may be selected depends on the kind, exactly like the apiserver's
per-resource field label conversion: ``metadata.name`` and ``metadata.namespace`` for every
kind, plus a table per kind (`SELECTABLE_FIELDS`). Getters read the object's snake_case
attributes (``obj.spec.node_name``) and treat a missing attribute or ``None`` as ``""``,
so ``spec.nodeName=`` selects unscheduled pods; booleans read ``"true"``/``"false"``.
To make another field selectable, add a getter to the kind's table.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from controlplane.api.labels import SelectorError

__all__ = [
    "SELECTABLE_FIELDS",
    "FieldOperator",
    "FieldRequirement",
    "FieldSelector",
    "SelectorError",
    "escape_value",
    "parse_field_selector",
    "selectable_fields",
]

FieldGetter = Callable[[Any], str]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _text(value.value)
    return value if isinstance(value, str) else str(value)


def _attribute(*names: str) -> FieldGetter:
    """A getter reading ``obj.<names[0]>.<names[1]>...`` as text (missing or None: "")."""

    def get(obj: Any) -> str:
        for name in names:
            obj = getattr(obj, name, None)
            if obj is None:
                return ""
        return _text(obj)

    get.__qualname__ = f"get_{'_'.join(names)}"
    return get


def _boolean(*names: str) -> FieldGetter:
    """Like `_attribute` for a boolean that Kubernetes never leaves unset: None is false."""
    read = _attribute(*names)

    def get(obj: Any) -> str:
        return read(obj) or "false"

    return get


_COMMON: dict[str, FieldGetter] = {
    "metadata.name": _attribute("metadata", "name"),
    "metadata.namespace": _attribute("metadata", "namespace"),
}


def _table(**fields: FieldGetter) -> Mapping[str, FieldGetter]:
    return MappingProxyType({**_COMMON, **fields})


#: Selectable fields per kind: field label -> getter. Kinds not listed select only on
#: ``metadata.name`` and ``metadata.namespace``.
SELECTABLE_FIELDS: Mapping[str, Mapping[str, FieldGetter]] = MappingProxyType(
    {
        "Pod": _table(
            **{
                "spec.nodeName": _attribute("spec", "node_name"),
                "spec.restartPolicy": _attribute("spec", "restart_policy"),
                "spec.schedulerName": _attribute("spec", "scheduler_name"),
                "spec.serviceAccountName": _attribute("spec", "service_account_name"),
                "spec.hostNetwork": _boolean("spec", "host_network"),
                "status.phase": _attribute("status", "phase"),
                "status.podIP": _attribute("status", "pod_ip"),
                "status.nominatedNodeName": _attribute("status", "nominated_node_name"),
            }
        ),
        "Node": _table(**{"spec.unschedulable": _boolean("spec", "unschedulable")}),
        "Event": _table(
            **{
                "involvedObject.kind": _attribute("involved_object", "kind"),
                "involvedObject.namespace": _attribute("involved_object", "namespace"),
                "involvedObject.name": _attribute("involved_object", "name"),
                "involvedObject.uid": _attribute("involved_object", "uid"),
                "involvedObject.apiVersion": _attribute("involved_object", "api_version"),
                "involvedObject.resourceVersion": _attribute("involved_object", "resource_version"),
                "involvedObject.fieldPath": _attribute("involved_object", "field_path"),
                "reason": _attribute("reason"),
                "reportingComponent": _attribute("reporting_component"),
                "source": _attribute("source", "component"),
                "type": _attribute("type"),
            }
        ),
        "Namespace": _table(**{"status.phase": _attribute("status", "phase")}),
        "Secret": _table(type=_attribute("type")),
        "Service": _table(
            **{
                "spec.clusterIP": _attribute("spec", "cluster_ip"),
                "spec.type": _attribute("spec", "type"),
            }
        ),
        "ReplicaSet": _table(**{"status.replicas": _attribute("status", "replicas")}),
        "ReplicationController": _table(**{"status.replicas": _attribute("status", "replicas")}),
        "Job": _table(**{"status.successful": _attribute("status", "succeeded")}),
    }
)
_DEFAULT_FIELDS: Mapping[str, FieldGetter] = _table()


def selectable_fields(kind: str) -> Mapping[str, FieldGetter]:
    """The field labels ``kind`` can be selected on, each with its getter."""
    return SELECTABLE_FIELDS.get(kind, _DEFAULT_FIELDS)


def escape_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` in a field selector value (``fields.EscapeValue``)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


class FieldOperator(enum.StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="


@attrs.frozen
class FieldRequirement:
    """One term: the field label, ``=`` or ``!=``, the value, and the getter it reads."""

    field: str
    operator: FieldOperator
    value: str
    getter: FieldGetter = attrs.field(eq=False, hash=False, repr=False)

    def matches(self, obj: object) -> bool:
        """Whether ``obj``'s field satisfies this term."""
        if self.operator is FieldOperator.EQUALS:
            return self.getter(obj) == self.value
        return self.getter(obj) != self.value

    def sort_key(self) -> tuple[str, str, str]:
        return (self.field, self.operator.value, self.value)

    def __str__(self) -> str:
        return f"{self.field}{self.operator.value}{escape_value(self.value)}"


def _sorted_requirements(
    requirements: Iterable[FieldRequirement],
) -> tuple[FieldRequirement, ...]:
    return tuple(sorted(requirements, key=FieldRequirement.sort_key))


@attrs.frozen
class FieldSelector:
    """A compiled field selector for one kind: the AND of ``requirements`` (kept sorted).

    ``str()`` is the canonical string form (terms sorted, ``==`` printed as ``=``,
    values escaped), so ``parse_field_selector(str(s), s.kind) == s``.
    """

    kind: str
    requirements: tuple[FieldRequirement, ...] = attrs.field(
        default=(), converter=_sorted_requirements
    )

    @staticmethod
    def everything(kind: str) -> FieldSelector:
        """The selector that matches every object of ``kind``."""
        return FieldSelector(kind)

    @property
    def empty(self) -> bool:
        """Whether this selector has no terms (and so matches everything)."""
        return not self.requirements

    def matches(self, obj: object) -> bool:
        """Whether ``obj`` satisfies every term."""
        for requirement in self.requirements:
            value = requirement.getter(obj)
            if requirement.operator is FieldOperator.EQUALS:
                if value != requirement.value:
                    return False
            elif value == requirement.value:
                return False
        return True

    def requires_exact_match(self, field: str) -> str | None:
        """The value ``field`` must have to match (a ``field=value`` term), else None.

        The store uses this to route ``spec.nodeName=<node>`` watches through an index.
        """
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator is FieldOperator.EQUALS:
                return requirement.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_terms(text: str) -> list[str]:
    """Split on commas not escaped by a backslash (``fields.splitTerms``)."""
    terms: list[str] = []
    start = 0
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """``(field, operator, raw value)`` at the first ``!=``, ``==`` or ``=``."""
    for index in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator) :]
    return None


def _unescape(text: str, raw: str) -> str:
    if "\\" not in raw and "," not in raw and "=" not in raw:
        return raw
    out: list[str] = []
    escaped = False
    for char in raw:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(
                    f'invalid field selector "{text}": invalid escape sequence "\\{char}"'
                )
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(
                f'invalid field selector "{text}": unescaped "{char}" in value "{raw}"'
            )
        else:
            out.append(char)
    if escaped:
        raise SelectorError(f'invalid field selector "{text}": invalid escape sequence "\\"')
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def parse_field_selector(text: str, kind: str) -> FieldSelector:
    """Parse a field selector for objects of ``kind`` (``"Pod"``, ``"Node"``...).

    Results are cached: the same text and kind give the same (immutable) selector.

    Raises:
        SelectorError: if a term has no operator, a value has a bad escape or an
            unescaped ``,``/``=``, or a field is not selectable for ``kind``:
            ``field label not supported: spec.foo (Pod supports: metadata.name, ...)``.
    """
    fields = selectable_fields(kind)
    requirements: list[FieldRequirement] = []
    for term in _split_terms(text):
        if not term:
            continue
        parts = _split_term(term)
        if parts is None:
            raise SelectorError(
                f'invalid field selector "{text}": expected "field=value" or'
                f' "field!=value", found "{term}"'
            )
        field, operator, raw = parts
        getter = fields.get(field)
        if getter is None:
            raise SelectorError(
                f"field label not supported: {field} ({kind or 'this kind'} supports:"
                f" {', '.join(fields)})"
            )
        value = _unescape(text, raw)
        op = FieldOperator.NOT_EQUALS if operator == "!=" else FieldOperator.EQUALS
        requirements.append(FieldRequirement(field, op, value, getter))
    return FieldSelector(kind, requirements)
