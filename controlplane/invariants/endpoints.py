"""What a Service's Endpoints should say, judged independently of the controller that
writes them: the IPs of the ready pods its selector matches (``endpoints-match``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.controllers.endpoints_decisions import (
    OVER_CAPACITY_ANNOTATION,
    find_port,
    is_headless,
    manages_endpoints,
    should_pod_be_in_endpoints,
)
from controlplane.controllers.pods import is_ready

__all__ = ["endpoints_mismatch", "expected_endpoint_ips", "selects"]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a Service's equality selector matches ``labels``."""
    return all(labels.get(k) == v for k, v in selector.items())


def expected_endpoint_ips(service: Any, pods: list[Any]) -> set[str]:
    """The IPs a Service's Endpoints should list as ready addresses: its selected pods
    that have an IP, are neither terminal nor being deleted, are ready (any of them with
    ``publishNotReadyAddresses``) and resolve at least one of its ports."""
    publish = bool(service.spec.publish_not_ready_addresses)
    ports = service.spec.ports
    if not ports and not is_headless(service):
        return set()  # a service without ports gets addresses only if it is headless
    selector = service.spec.selector
    ips: set[str] = set()
    for pod in pods:
        if not selects(selector, pod.metadata.labels):
            continue
        if not should_pod_be_in_endpoints(pod, publish) or not (publish or is_ready(pod)):
            continue
        if ports and not any(find_port(pod, port) is not None for port in ports):
            continue
        ip = pod.status.pod_ip or (pod.status.pod_ips[0].ip if pod.status.pod_ips else "")
        if ip:
            ips.add(ip)
    return ips


def endpoints_mismatch(store: Any, namespace: str, name: str) -> str | None:
    """What is wrong with Service ``namespace/name``'s Endpoints, or None."""
    service = store.get_nowait("Service", name, namespace=namespace)
    if service is None or not manages_endpoints(service):
        return None
    expected = expected_endpoint_ips(service, store.list_nowait("Pod", namespace=namespace))
    endpoints = store.get_nowait("Endpoints", name, namespace=namespace)
    if endpoints is None:
        return f"service {namespace}/{name} has no Endpoints" if expected else None
    if OVER_CAPACITY_ANNOTATION in endpoints.metadata.annotations:
        return None  # truncated to 1000 addresses on purpose
    actual = {a.ip for subset in endpoints.subsets for a in subset.addresses}
    if actual == expected:
        return None
    missing = sorted(expected - actual)
    extra = sorted(actual - expected)
    return (
        f"service {namespace}/{name} endpoints differ from its ready pods:"
        f" missing {missing}, extra {extra}"
    )
