"""Validation of discovery.k8s.io/v1 EndpointSlice (``pkg/apis/discovery/validation``).

See ``controlplane.api.validation`` for the conventions.
"""

from __future__ import annotations

import functools
import ipaddress

from controlplane.api import discovery
from controlplane.api.validation_common import (
    PROTOCOLS,
    Causes,
    check_labels,
    check_name,
    check_one_of,
    check_port,
    dns1123_label,
    dns1123_subdomain,
    duplicate,
    immutable,
    invalid,
    not_supported,
    required,
)
from controlplane.errors import Cause

__all__ = [
    "MAX_ADDRESSES",
    "MAX_ENDPOINTS",
    "MAX_PORTS",
    "validate_endpoint_slice",
    "validate_endpoint_slice_update",
]

#: Kubernetes' limits: endpoints per slice, addresses per endpoint, ports per slice.
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 20000


def _too_many(path: str, count: int, limit: int) -> Cause:
    return Cause(path, f"Too many: {count}: must have at most {limit} items", "FieldValueTooMany")


@functools.lru_cache(maxsize=65536)
def _ip_version(address: str) -> int | None:
    """4, 6, or None if ``address`` is no IP (cached: slices are re-validated whole on
    every update, with mostly the same addresses)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


def _check_address(path: str, address: str, address_type: str, out: Causes) -> None:
    if address_type == "FQDN":
        check_name(path, address, dns1123_subdomain, out)
        return
    version = 4 if address_type == "IPv4" else 6
    if _ip_version(address) != version:
        out.append(invalid(path, address, f"must be a valid IPv{version} address"))


def validate_endpoint_slice(slice_: discovery.EndpointSlice, out: Causes) -> None:
    address_type = slice_.address_type
    if not address_type:
        out.append(required("addressType"))
    elif address_type not in discovery.ADDRESS_TYPES:
        out.append(not_supported("addressType", address_type, discovery.ADDRESS_TYPES))
        address_type = ""
    if len(slice_.endpoints) > MAX_ENDPOINTS:
        out.append(_too_many("endpoints", len(slice_.endpoints), MAX_ENDPOINTS))
    for i, endpoint in enumerate(slice_.endpoints):
        path = f"endpoints[{i}]"
        if not endpoint.addresses:
            out.append(required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(endpoint.addresses) > MAX_ADDRESSES:
            out.append(_too_many(f"{path}.addresses", len(endpoint.addresses), MAX_ADDRESSES))
        if address_type:
            for j, address in enumerate(endpoint.addresses):
                _check_address(f"{path}.addresses[{j}]", address, address_type, out)
        if endpoint.hostname:
            check_name(f"{path}.hostname", endpoint.hostname, dns1123_label, out)
        if endpoint.node_name:
            check_name(f"{path}.nodeName", endpoint.node_name, dns1123_subdomain, out)
        check_labels(f"{path}.deprecatedTopology", endpoint.deprecated_topology, out)
    if len(slice_.ports) > MAX_PORTS:
        out.append(_too_many("ports", len(slice_.ports), MAX_PORTS))
    names: set[str] = set()
    for i, port in enumerate(slice_.ports):
        path = f"ports[{i}]"
        name = port.name or ""
        if name:
            check_name(f"{path}.name", name, dns1123_label, out)
        if name in names:
            out.append(duplicate(f"{path}.name", name))
        names.add(name)
        if not port.protocol:
            out.append(required(f"{path}.protocol"))
        else:
            check_one_of(f"{path}.protocol", port.protocol, PROTOCOLS, out)
        if port.port is not None:
            check_port(f"{path}.port", port.port, out)


def validate_endpoint_slice_update(
    slice_: discovery.EndpointSlice, old: discovery.EndpointSlice, out: Causes
) -> None:
    if old.address_type and slice_.address_type != old.address_type:
        out.append(immutable("addressType", slice_.address_type))
