"""Validation of Service, Endpoints, Node, ConfigMap, Secret, ResourceQuota, LimitRange
and Lease.

See ``controlplane.api.validation`` for the conventions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controlplane.api import coordination, core
from controlplane.api.labels import (
    validate_label_key,
    validate_label_value,
)
from controlplane.api.quantity import Quantity
from controlplane.api.validation_common import (
    CONFIG_KEY,
    PROTOCOLS,
    TAINT_EFFECTS,
    Causes,
    check_handler_port,
    check_labels,
    check_name,
    check_non_negative,
    check_one_of,
    check_port,
    check_quantities,
    dns1123_label,
    dns1123_subdomain,
    duplicate,
    forbidden,
    immutable,
    invalid,
    required,
)

# -- services and endpoints ------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def validate_service(service: core.Service, out: Causes) -> None:
    spec = service.spec
    check_one_of("spec.type", spec.type, _SERVICE_TYPES, out)
    headless = spec.cluster_ip == "None"
    if spec.type == "ExternalName":
        if not spec.external_name:
            out.append(required("spec.externalName"))
        else:
            check_name("spec.externalName", spec.external_name.rstrip("."), dns1123_subdomain, out)
    elif not spec.ports and not headless:
        out.append(required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(spec.ports):
        path = f"spec.ports[{i}]"
        if len(spec.ports) > 1 and not port.name:
            out.append(required(f"{path}.name"))
        elif port.name:
            check_name(f"{path}.name", port.name, dns1123_label, out)
            if port.name in names:
                out.append(duplicate(f"{path}.name", port.name))
            names.add(port.name)
        check_port(f"{path}.port", port.port, out)
        check_one_of(f"{path}.protocol", port.protocol, PROTOCOLS, out)
        if port.target_port is not None and port.target_port != 0:
            check_handler_port(f"{path}.targetPort", port.target_port, out)
        if port.node_port is not None:
            if spec.type in ("ClusterIP", "ExternalName", None):
                out.append(
                    forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'")
                )
            else:
                check_port(f"{path}.nodePort", port.node_port, out)
    check_one_of("spec.sessionAffinity", spec.session_affinity, ("ClientIP", "None"), out)
    _check_affinity_config(spec, out)
    check_labels("spec.selector", spec.selector, out)
    for field, value in (
        ("externalTrafficPolicy", spec.external_traffic_policy),
        ("internalTrafficPolicy", spec.internal_traffic_policy),
    ):
        check_one_of(f"spec.{field}", value, ("Cluster", "Local"), out)
    check_one_of(
        "spec.ipFamilyPolicy",
        spec.ip_family_policy,
        ("SingleStack", "PreferDualStack", "RequireDualStack"),
        out,
    )
    for i, family in enumerate(spec.ip_families):
        check_one_of(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6"), out)


def _check_affinity_config(spec: core.ServiceSpec, out: Causes) -> None:
    """``sessionAffinityConfig.clientIP.timeoutSeconds``: 1..86400, and only with
    ``sessionAffinity: ClientIP`` (Kubernetes' rules)."""
    config = spec.session_affinity_config
    if config is None or config.client_ip is None:
        return
    path = "spec.sessionAffinityConfig"
    if spec.session_affinity != "ClientIP":
        out.append(forbidden(path, "must not be set when `sessionAffinity` is None"))
        return
    seconds = config.client_ip.timeout_seconds
    if seconds is not None and not 0 < seconds <= 86400:
        out.append(invalid(f"{path}.clientIP.timeoutSeconds", seconds, "must be > 0 and <= 86400"))


def validate_service_update(service: core.Service, old: core.Service, out: Causes) -> None:
    before = old.spec.cluster_ip
    if before and service.spec.type != "ExternalName" and service.spec.cluster_ip != before:
        out.append(immutable("spec.clusterIP", service.spec.cluster_ip or ""))


def validate_endpoints(endpoints: core.Endpoints, out: Causes) -> None:
    for i, subset in enumerate(endpoints.subsets):
        path = f"subsets[{i}]"
        for field, addresses in (
            ("addresses", subset.addresses),
            ("notReadyAddresses", subset.not_ready_addresses),
        ):
            for j, address in enumerate(addresses):
                if not address.ip:
                    out.append(required(f"{path}.{field}[{j}].ip"))
        for j, port in enumerate(subset.ports):
            check_port(f"{path}.ports[{j}].port", port.port, out)
            check_one_of(f"{path}.ports[{j}].protocol", port.protocol, PROTOCOLS, out)


# -- nodes, namespaces, config, policy -------------------------------------------------


def validate_node(node: core.Node, out: Causes) -> None:
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(node.spec.taints):
        path = f"spec.taints[{i}]"
        problem = validate_label_key(taint.key)
        if problem is not None:
            out.append(invalid(f"{path}.key", taint.key, problem))
        if taint.value:
            problem = validate_label_value(taint.value)
            if problem is not None:
                out.append(invalid(f"{path}.value", taint.value, problem))
        if not taint.effect:
            out.append(required(f"{path}.effect"))
        else:
            check_one_of(f"{path}.effect", taint.effect, TAINT_EFFECTS, out)
        if (taint.key, taint.effect) in seen:
            out.append(duplicate(path, f"{taint.key}={taint.value or ''}:{taint.effect}"))
        seen.add((taint.key, taint.effect))
    check_quantities("status.capacity", node.status.capacity, out)
    check_quantities("status.allocatable", node.status.allocatable, out)


def check_config_keys(path: str, keys: Iterable[str], out: Causes) -> None:
    for key in keys:
        if len(key) > 253 or not CONFIG_KEY.fullmatch(key) or key in (".", ".."):
            out.append(
                invalid(
                    path,
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or "
                    "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                    "validation is '[-._a-zA-Z0-9]+')",
                )
            )


def validate_config_map(config_map: core.ConfigMap, out: Causes) -> None:
    check_config_keys("data", config_map.data, out)
    check_config_keys("binaryData", config_map.binary_data, out)
    for key in config_map.data.keys() & config_map.binary_data.keys():
        out.append(invalid("data", key, "duplicate of key present in binaryData"))


def validate_immutable_data(obj: Any, old: Any, out: Causes) -> None:
    if old.immutable:
        if obj.data != old.data:
            out.append(forbidden("data", "field is immutable when `immutable` is set"))
        if not obj.immutable:
            out.append(forbidden("immutable", "field is immutable when `immutable` is set"))


def validate_secret(secret: core.Secret, out: Causes) -> None:
    check_config_keys("data", secret.data, out)
    check_config_keys("stringData", secret.string_data, out)


def validate_secret_update(secret: core.Secret, old: core.Secret, out: Causes) -> None:
    if (secret.type or "Opaque") != (old.type or "Opaque"):
        out.append(immutable("type", secret.type or ""))
    validate_immutable_data(secret, old, out)


_QUOTA_SCOPES = (
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
)


def validate_resource_quota(quota: core.ResourceQuota, out: Causes) -> None:
    check_quantities("spec.hard", quota.spec.hard, out)
    for i, scope in enumerate(quota.spec.scopes):
        check_one_of(f"spec.scopes[{i}]", scope, _QUOTA_SCOPES, out)
    check_quantities("status.hard", quota.status.hard, out)
    check_quantities("status.used", quota.status.used, out)


def validate_limit_range(limit_range: core.LimitRange, out: Causes) -> None:
    for i, item in enumerate(limit_range.spec.limits):
        path = f"spec.limits[{i}]"
        check_one_of(f"{path}.type", item.type, ("Container", "Pod", "PersistentVolumeClaim"), out)
        for field, values in (
            ("max", item.max),
            ("min", item.min),
            ("default", item.default),
            ("defaultRequest", item.default_request),
            ("maxLimitRequestRatio", item.max_limit_request_ratio),
        ):
            check_quantities(f"{path}.{field}", values, out)
        if item.type == "Pod" and (item.default or item.default_request):
            out.append(forbidden(f"{path}.default", "may not be specified when `type` is 'Pod'"))
        for name, low in item.min.items():
            high = item.max.get(name)
            if high is not None and low > high:
                out.append(
                    invalid(
                        f"{path}.min.{name}",
                        low,
                        f"min value {low} is greater than max value {high}",
                    )
                )
        for name, ratio in item.max_limit_request_ratio.items():
            if ratio < Quantity.from_int(1):
                out.append(
                    invalid(
                        f"{path}.maxLimitRequestRatio.{name}",
                        ratio,
                        "ratio must be greater than or equal to 1",
                    )
                )


def validate_lease(lease: coordination.Lease, out: Causes) -> None:
    spec = lease.spec
    if spec.lease_duration_seconds is not None and spec.lease_duration_seconds <= 0:
        out.append(
            invalid(
                "spec.leaseDurationSeconds",
                spec.lease_duration_seconds,
                "must be greater than 0",
            )
        )
    check_non_negative("spec.leaseTransitions", spec.lease_transitions, out)
