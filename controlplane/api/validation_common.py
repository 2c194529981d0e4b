"""Shared pieces of API validation: Kubernetes-style messages, name rules, metadata.

See ``controlplane.api.validation`` for the conventions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from controlplane.api import core
from controlplane.api.frozen import FrozenDict
from controlplane.api.labels import (
    Selector,
    SelectorError,
    validate_label_key,
    validate_label_value,
)
from controlplane.api.memo import IdentityMemo
from controlplane.api.meta import LabelSelector, ObjectMeta
from controlplane.api.quantity import Quantity
from controlplane.errors import Cause

Causes = list[Cause]


# -- messages --------------------------------------------------------------------------


def value_repr(value: Any) -> str:
    """A value as Kubernetes prints it in ``Invalid value: ...`` (Go's ``%#v``-ish)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Quantity):
        return f'"{value}"'
    if isinstance(value, Mapping):
        items = ",".join(f"{json.dumps(str(k))}:{json.dumps(str(v))}" for k, v in value.items())
        return f"map[string]string{{{items}}}"
    return str(value)


def required(path: str, detail: str = "") -> Cause:
    message = f"Required value: {detail}" if detail else "Required value"
    return Cause(path, message, "FieldValueRequired")


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, f"Invalid value: {value_repr(value)}: {detail}", "FieldValueInvalid")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    values = ", ".join(json.dumps(v) for v in sorted(supported))
    return Cause(
        path,
        f"Unsupported value: {value_repr(value)}: supported values: {values}",
        "FieldValueNotSupported",
    )


def duplicate(path: str, value: Any) -> Cause:
    return Cause(path, f"Duplicate value: {value_repr(value)}", "FieldValueDuplicate")


def forbidden(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", "FieldValueForbidden")


def not_found(path: str, value: Any) -> Cause:
    return Cause(path, f"Not found: {value_repr(value)}", "FieldValueNotFound")


def too_long(path: str, limit: int) -> Cause:
    return Cause(path, f"Too long: must have at most {limit} bytes", "FieldValueTooLong")


def immutable(path: str, value: Any) -> Cause:
    return invalid(path, value, "field is immutable")


# -- names -----------------------------------------------------------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = rf"{_DNS1123_LABEL_FMT}(\.{_DNS1123_LABEL_FMT})*"
_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{_DNS1123_LABEL_FMT}')"
)
_SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_DNS1123_SUBDOMAIN_FMT}')"
)
_IANA_SVC_NAME = re.compile("[-a-z0-9]+")
CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
PERCENT = re.compile(r"[0-9]+%")


def dns1123_label(value: str) -> list[str]:
    """Why ``value`` is not a DNS-1123 label (empty if it is)."""
    if len(value) <= 63 and _DNS1123_LABEL.fullmatch(value):
        return []  # the common case, checked on every write: one match, no more
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.fullmatch(value):
        problems.append(_LABEL_ERROR)
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    """Why ``value`` is not a DNS-1123 subdomain (empty if it is)."""
    if len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value):
        return []
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        problems.append(_SUBDOMAIN_ERROR)
    return problems


def iana_svc_name(value: str) -> list[str]:
    problems = []
    if len(value) > 15:
        problems.append("must be no more than 15 characters")
    if not _IANA_SVC_NAME.fullmatch(value):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        problems.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    if not any(c.isalpha() for c in value):
        problems.append("must contain at least one letter (a-z)")
    return problems


_LABEL = dns1123_label
_SUBDOMAIN = dns1123_subdomain


def check_name(path: str, value: str, rule: Callable[[str], list[str]], out: Causes) -> None:
    problems = rule(value)
    if problems:
        out.extend(invalid(path, value, problem) for problem in problems)


def check_port(path: str, port: int, out: Causes) -> None:
    if not 1 <= port <= 65535:
        out.append(invalid(path, port, "must be between 1 and 65535, inclusive"))


def check_non_negative(path: str, value: int | None, out: Causes) -> None:
    if value is not None and value < 0:
        out.append(invalid(path, value, "must be greater than or equal to 0"))


def check_at_least(path: str, value: int | None, minimum: int, out: Causes) -> None:
    if value is not None and value < minimum:
        out.append(invalid(path, value, f"must be greater than or equal to {minimum}"))


def check_one_of(path: str, value: str | None, supported: Iterable[str], out: Causes) -> None:
    if value is not None and value not in supported:
        out.append(not_supported(path, value, supported))


#: Label maps found valid (pods of one template share theirs).
_VALID_LABELS: IdentityMemo[Mapping[str, str], bool] = IdentityMemo()


def check_labels(path: str, labels: Mapping[str, str], out: Causes) -> None:
    if not labels or _VALID_LABELS.get(labels):
        return
    before = len(out)
    for key, value in labels.items():
        problem = validate_label_key(key)
        if problem is not None:
            out.append(invalid(path, key, problem))
        problem = validate_label_value(value)
        if problem is not None:
            out.append(invalid(path, value, problem))
    if len(out) == before and type(labels) is FrozenDict:
        _VALID_LABELS.put(labels, True)  # a plain dict may change under us


_ANNOTATIONS_MAX_BYTES = 256 * 1024


def check_annotations(path: str, annotations: Mapping[str, str], out: Causes) -> None:
    size = 0
    for key, value in annotations.items():
        problem = validate_label_key(key.lower())
        if problem is not None:
            out.append(invalid(path, key, problem))
        size += len(key.encode()) + len(value.encode())
    if size > _ANNOTATIONS_MAX_BYTES:
        out.append(too_long(path, _ANNOTATIONS_MAX_BYTES))


# -- metadata --------------------------------------------------------------------------


def validate_metadata(
    meta: ObjectMeta, namespaced: bool, name_rule: Callable[[str], list[str]], out: Causes
) -> None:
    if not meta.name:
        if not meta.generate_name:
            out.append(required("metadata.name", "name or generateName is required"))
    else:
        check_name("metadata.name", meta.name, name_rule, out)
    if meta.generate_name:
        check_name("metadata.generateName", meta.generate_name.rstrip("-") or "-", name_rule, out)
    if namespaced:
        if not meta.namespace:
            out.append(required("metadata.namespace"))
        else:
            check_name("metadata.namespace", meta.namespace, dns1123_label, out)
    elif meta.namespace:
        out.append(forbidden("metadata.namespace", "not allowed on this type"))
    check_non_negative("metadata.generation", meta.generation, out)
    check_labels("metadata.labels", meta.labels, out)
    check_annotations("metadata.annotations", meta.annotations, out)
    controllers = 0
    for i, ref in enumerate(meta.owner_references):
        path = f"metadata.ownerReferences[{i}]"
        for field, value in (
            ("apiVersion", ref.api_version),
            ("kind", ref.kind),
            ("name", ref.name),
            ("uid", ref.uid),
        ):
            if not value:
                out.append(required(f"{path}.{field}", f"{field} must not be empty"))
        controllers += bool(ref.controller)
    if controllers > 1:
        out.append(
            invalid(
                "metadata.ownerReferences",
                controllers,
                "Only one reference can have Controller set to true",
            )
        )


def validate_metadata_update(meta: ObjectMeta, old: ObjectMeta, out: Causes) -> None:
    if meta.name != old.name:
        out.append(immutable("metadata.name", meta.name))
    if meta.namespace != old.namespace:
        out.append(immutable("metadata.namespace", meta.namespace))
    if old.uid and meta.uid != old.uid:
        out.append(immutable("metadata.uid", meta.uid))
    if old.creation_timestamp is not None and meta.creation_timestamp != old.creation_timestamp:
        out.append(immutable("metadata.creationTimestamp", str(meta.creation_timestamp)))


# -- resources -------------------------------------------------------------------------


def check_quantities(path: str, resources: Mapping[str, Quantity], out: Causes) -> None:
    for name, quantity in resources.items():
        problem = validate_label_key(name)
        if problem is not None:
            out.append(invalid(path, name, problem))
        if quantity < ZERO:
            out.append(invalid(f"{path}.{name}", quantity, "must be greater than or equal to 0"))


ZERO = Quantity.from_int(0)


def check_resources(path: str, resources: core.ResourceRequirements, out: Causes) -> None:
    check_quantities(f"{path}.limits", resources.limits, out)
    check_quantities(f"{path}.requests", resources.requests, out)
    for name, request in resources.requests.items():
        limit = resources.limits.get(name)
        if limit is not None and request > limit:
            out.append(
                invalid(
                    f"{path}.requests.{name}",
                    request,
                    f"must be less than or equal to {name} limit of {limit}",
                )
            )


# -- shared by several kinds ----------------------------------------------------------

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


def check_handler_port(path: str, port: int | str, out: Causes) -> None:
    if isinstance(port, int):
        check_port(path, port, out)
    elif not port:
        out.append(required(path))
    else:
        out.extend(invalid(path, port, problem) for problem in iana_svc_name(port))


def json_field(attribute: str) -> str:
    first, *rest = attribute.split("_")
    return first + "".join(word.capitalize() for word in rest)


def check_label_selector(path: str, selector: LabelSelector | None, out: Causes) -> None:
    if selector is None:
        return
    try:
        Selector.from_label_selector(selector)
    except SelectorError as exc:
        field = f"{path}.{exc.field}" if exc.field else path
        out.append(Cause(field, exc.detail))
