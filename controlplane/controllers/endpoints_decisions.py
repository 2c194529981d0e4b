"""What the Endpoints and EndpointSlice controllers decide, as pure functions.

Kubernetes keeps these in ``pkg/controller/endpoint``, ``pkg/controller/util/endpoint``,
``pkg/api/v1/endpoints`` (``RepackSubsets``) and ``pkg/api/v1/pod`` (``FindPort``). The
slice reconciler (which slices to create, fill, update or delete) is in
:mod:`controlplane.controllers.endpointslice_reconciler`; both controllers share what is
here: which pods count, how a Service port resolves on a pod, and when a pod change can
matter to a Service at all.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from controlplane.api import core
from controlplane.api.core_pod import Pod
from controlplane.api.core_service import (
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    ObjectReference,
    Service,
    ServicePort,
)
from controlplane.api.frozen import freeze
from controlplane.api.memo import IdentityMemo
from controlplane.api.meta import ObjectMeta
from controlplane.controllers.pods import is_ready

__all__ = [
    "HEADLESS_LABEL",
    "LEADER_ANNOTATION",
    "MAX_ENDPOINTS_CAPACITY",
    "OVER_CAPACITY_ANNOTATION",
    "SubsetsResult",
    "compute_subsets",
    "desired_endpoints",
    "find_port",
    "is_headless",
    "manages_endpoints",
    "pod_endpoints_changed",
    "pod_ip_for_service",
    "repack_subsets",
    "services_selecting",
    "should_pod_be_in_endpoints",
    "should_set_hostname",
    "truncate_subsets",
    "unresolved_message",
    "unresolved_ports",
]

#: On Endpoints and EndpointSlices of a headless service (``v1.IsHeadlessService``).
HEADLESS_LABEL = "service.kubernetes.io/headless"
#: Set to ``truncated`` when an Endpoints object was cut to ``MAX_ENDPOINTS_CAPACITY``.
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
#: Endpoints objects with this annotation are leader-election locks, not leftovers.
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
#: At most this many addresses in one Endpoints object (``maxCapacity``).
MAX_ENDPOINTS_CAPACITY = 1000

_TERMINAL_PHASES = ("Succeeded", "Failed")


# -- which services and pods count ---------------------------------------------------------


def manages_endpoints(service: Service) -> bool:
    """Whether the controllers compute endpoints for ``service``: it has a selector and
    is not ExternalName. Selector-less services get the Endpoints users write by hand."""
    return bool(service.spec.selector) and service.spec.type != "ExternalName"


def is_headless(service: Service) -> bool:
    return service.spec.cluster_ip == "None"


def should_pod_be_in_endpoints(pod: Pod, include_terminating: bool) -> bool:
    """``ShouldPodBeInEndpoints``: not terminal, has an IP, and (unless
    ``include_terminating``) not being deleted."""
    if pod.status.phase in _TERMINAL_PHASES:
        return False
    if not pod.status.pod_ip and not pod.status.pod_ips:
        return False
    return include_terminating or pod.metadata.deletion_timestamp is None


def _service_family(service: Service) -> int:
    if service.spec.ip_families:
        return 6 if service.spec.ip_families[0] == "IPv6" else 4
    ip = service.spec.cluster_ip
    return (_ip_version(ip) or 4) if ip and ip != "None" else 4


@functools.lru_cache(maxsize=65536)
def _ip_version(ip: str) -> int | None:
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return None


def pod_ip_for_service(pod: Pod, service: Service) -> str | None:
    """The pod IP of the service's IP family (``podToEndpointAddressForService``)."""
    family = _service_family(service)
    status = pod.status
    if not status.pod_ips:
        ip = status.pod_ip
        return ip if ip and _ip_version(ip) == family else None
    for pod_ip in status.pod_ips:
        if _ip_version(pod_ip.ip) == family:
            return pod_ip.ip
    return None


def should_set_hostname(pod: Pod, service: Service) -> bool:
    """A pod's hostname is published when its subdomain names the service."""
    return (
        bool(pod.spec.hostname)
        and pod.spec.subdomain == service.metadata.name
        and pod.metadata.namespace == service.metadata.namespace
    )


def find_port(pod: Pod, port: ServicePort) -> int | None:
    """``FindPort``: the port number ``port.targetPort`` means on ``pod``, or None.

    A number is taken as is; a name is looked up among the pod's container ports (and
    its restartable init containers', the sidecars) with the same protocol.
    """
    target = port.target_port if port.target_port not in (None, "", 0) else port.port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    protocol = port.protocol or "TCP"
    sidecars = [c for c in pod.spec.init_containers if c.restart_policy == "Always"]
    for container in (*pod.spec.containers, *sidecars):
        for container_port in container.ports:
            if container_port.name == target and (container_port.protocol or "TCP") == protocol:
                return container_port.container_port
    return None


def pod_endpoints_changed(old: Pod, new: Pod) -> bool:
    """Whether a pod update can change any endpoint (``podEndpointsChanged`` plus the
    labels): most pod status writes (restart counts, probe times) cannot, and are not
    worth a sync of every service that selects the pod."""
    if old.metadata.resource_version == new.metadata.resource_version:
        return False
    return (
        old.metadata.labels != new.metadata.labels
        or (old.metadata.deletion_timestamp is None) != (new.metadata.deletion_timestamp is None)
        or is_ready(old) != is_ready(new)
        or old.status.pod_ip != new.status.pod_ip
        or old.status.pod_ips != new.status.pod_ips
        or old.status.phase != new.status.phase
        or old.spec.node_name != new.spec.node_name
        or old.spec.hostname != new.spec.hostname
        or old.spec.subdomain != new.spec.subdomain
        or old.metadata.uid != new.metadata.uid
    )


# -- Endpoints ---------------------------------------------------------------------


@attrs.frozen
class SubsetsResult:
    """The subsets of a Service's Endpoints, and the named target ports that no
    selected pod declares (``service port name or number -> target port name``)."""

    subsets: tuple[EndpointSubset, ...]
    unresolved: tuple[tuple[str, str], ...] = ()
    ready: int = 0
    not_ready: int = 0


def _address(pod: Pod, service: Service, ip: str) -> EndpointAddress:
    meta = pod.metadata
    return EndpointAddress(
        ip=ip,
        hostname=pod.spec.hostname if should_set_hostname(pod, service) else None,
        node_name=pod.spec.node_name or None,
        target_ref=ObjectReference(
            kind="Pod", namespace=meta.namespace, name=meta.name, uid=meta.uid
        ),
    )


def unresolved_ports(service: Service, pods: Iterable[Pod]) -> tuple[tuple[str, str], ...]:
    """The Service ports with a named targetPort that none of ``pods`` declares (only
    when there are pods: with none, nothing is known to be wrong)."""
    pods = list(pods)
    if not pods:
        return ()
    out = []
    for port in service.spec.ports:
        target = port.target_port
        named = isinstance(target, str) and target and not target.isdigit()
        if named and all(find_port(pod, port) is None for pod in pods):
            out.append((port.name or str(port.port), target))
    return tuple(out)


def unresolved_message(service: Service, unresolved: Iterable[tuple[str, str]]) -> str:
    parts = ", ".join(f"port {port} -> targetPort {target!r}" for port, target in unresolved)
    return f"no selected pod declares the named target port ({parts}); that port gets no endpoints"


def compute_subsets(service: Service, pods: Iterable[Pod]) -> SubsetsResult:
    """The Endpoints subsets for ``service`` from the pods its selector matches
    (``syncService``): one subset per address and resolved port, then repacked.

    Ready pods (or all, with ``publishNotReadyAddresses``) go to ``addresses``, others to
    ``notReadyAddresses``; terminating pods are left out unless publishNotReadyAddresses.
    A pod that lacks a named port is left out of that port only. A service without ports
    gets addresses only if it is headless.
    """
    publish = bool(service.spec.publish_not_ready_addresses)
    raw: list[EndpointSubset] = []
    included: list[Pod] = []
    ready_count = not_ready_count = 0
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish):
            continue
        memo = _POD_SUBSETS.get(pod)
        if memo is not None and memo[0] is service:
            entry = memo[1]
        else:
            entry = _pod_subsets(pod, service, publish)
            _POD_SUBSETS.put(pod, (service, entry))
        if entry is None:
            continue
        included.append(pod)
        subsets, ready = entry
        raw += subsets
        if ready:
            ready_count += len(subsets)
        else:
            not_ready_count += len(subsets)
    return SubsetsResult(
        repack_subsets(raw), unresolved_ports(service, included), ready_count, not_ready_count
    )


#: Per pod (by identity): the service it was computed for and its subsets. Syncs of a
#: big Service re-read every pod on each change; most pods are the same objects.
_POD_SUBSETS: IdentityMemo[Pod, tuple[Service, Any]] = IdentityMemo()


def _pod_subsets(
    pod: Pod, service: Service, publish: bool
) -> tuple[list[EndpointSubset], bool] | None:
    """One pod's single-address subsets (one per resolved port), and its readiness."""
    ip = pod_ip_for_service(pod, service)
    if ip is None:
        return None
    address = _address(pod, service, ip)
    ready = publish or is_ready(pod)
    if not service.spec.ports:
        return ([_subset(address, ready, ())] if is_headless(service) else []), ready
    out = []
    for service_port in service.spec.ports:
        number = find_port(pod, service_port)
        if number is None:
            continue
        port = EndpointPort(
            name=service_port.name,
            port=number,
            protocol=service_port.protocol or "TCP",
            app_protocol=service_port.app_protocol,
        )
        out.append(_subset(address, ready, (port,)))
    return out, ready


def _subset(address: EndpointAddress, ready: bool, ports: tuple[EndpointPort, ...]) -> Any:
    if ready:
        return EndpointSubset(addresses=(address,), ports=ports)
    return EndpointSubset(not_ready_addresses=(address,), ports=ports)


def _address_key(address: EndpointAddress) -> tuple[str, str]:
    return (address.ip, address.target_ref.uid or "" if address.target_ref else "")


def _port_key(port: EndpointPort) -> tuple[str, int, str, str]:
    return (port.name or "", port.port, port.protocol or "", port.app_protocol or "")


_NO_PORT = EndpointPort(port=-1)


def repack_subsets(subsets: Iterable[EndpointSubset]) -> tuple[EndpointSubset, ...]:
    """``RepackSubsets``: the fewest subsets for the same (address, port) pairs.

    Ports are grouped by the exact set of addresses (and their readiness) behind them;
    an address ready for one port and not ready for another counts as ready (as in
    Kubernetes). The result is sorted: addresses by IP and pod uid, ports by name and
    number, subsets by their first address and ports, so equal content compares equal.
    """
    all_addresses: dict[tuple[str, str], EndpointAddress] = {}
    by_port: dict[EndpointPort, dict[tuple[str, str], bool]] = {}
    for subset in subsets:
        for port in subset.ports or (_NO_PORT,):
            bucket = by_port.setdefault(port, {})
            for addresses, ready in ((subset.addresses, True), (subset.not_ready_addresses, False)):
                for address in addresses:
                    key = _address_key(address)
                    all_addresses.setdefault(key, address)
                    if key not in bucket or ready:
                        bucket[key] = ready
    groups: dict[tuple[tuple[tuple[str, str], bool], ...], list[EndpointPort]] = {}
    for port, bucket in by_port.items():
        group = tuple(sorted(bucket.items()))
        ports = groups.setdefault(group, [])
        if port.port > 0:
            ports.append(port)
    final = []
    for group, ports in groups.items():
        final.append(
            EndpointSubset(
                addresses=tuple(all_addresses[k] for k, ready in group if ready),
                not_ready_addresses=tuple(all_addresses[k] for k, ready in group if not ready),
                ports=tuple(sorted(ports, key=_port_key)),
            )
        )
    return tuple(sorted(final, key=_subset_key))


def _subset_key(subset: EndpointSubset) -> Any:
    first = (subset.addresses or subset.not_ready_addresses or (EndpointAddress(),))[0]
    return (_address_key(first), [_port_key(p) for p in subset.ports])


def truncate_subsets(
    subsets: tuple[EndpointSubset, ...], capacity: int = MAX_ENDPOINTS_CAPACITY
) -> tuple[tuple[EndpointSubset, ...], bool]:
    """``truncateEndpoints``: at most ``capacity`` addresses, not-ready ones dropped
    first, each subset keeping its proportional share (rounded up). Returns the subsets
    and whether anything was cut."""
    total_ready = sum(len(s.addresses) for s in subsets)
    total_not_ready = sum(len(s.not_ready_addresses) for s in subsets)
    if total_ready + total_not_ready <= capacity:
        return subsets, False
    truncate_ready = total_ready > capacity
    limit = capacity if truncate_ready else capacity - total_ready
    total = total_ready if truncate_ready else total_not_ready
    can_add = limit
    out = []
    for subset in subsets:
        count = len(subset.addresses if truncate_ready else subset.not_ready_addresses)
        share = min(math.ceil(count / total * limit), can_add)
        if truncate_ready:
            subset = attrs.evolve(
                subset, addresses=subset.addresses[:share], not_ready_addresses=()
            )
            can_add -= len(subset.addresses)
        else:
            subset = attrs.evolve(subset, not_ready_addresses=subset.not_ready_addresses[:share])
            can_add -= len(subset.not_ready_addresses)
        out.append(subset)
    return tuple(out), True


def desired_endpoints(
    service: Service, current: Endpoints | None, subsets: tuple[EndpointSubset, ...]
) -> Endpoints | None:
    """The Endpoints object to write for ``service``, or None if ``current`` already
    says it: named like the service, the service's labels (plus the headless label for
    a headless service), the subsets (truncated to 1000 addresses with the
    over-capacity annotation). Other annotations of ``current`` are kept."""
    subsets, truncated = truncate_subsets(subsets)
    labels: dict[str, str] = dict(service.metadata.labels)
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    annotations = dict(current.metadata.annotations) if current is not None else {}
    if truncated:
        annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY_ANNOTATION, None)
    if current is not None:
        if (
            current.subsets == subsets
            and current.metadata.labels == labels
            and current.metadata.annotations == annotations
        ):
            return None
        meta = attrs.evolve(current.metadata, labels=freeze(labels), annotations=annotations)
        return attrs.evolve(current, metadata=meta, subsets=subsets)
    meta = ObjectMeta(
        name=service.metadata.name,
        namespace=service.metadata.namespace,
        labels=labels,
        annotations=annotations,
    )
    return core.Endpoints(metadata=meta, subsets=subsets)


def services_selecting(pod: Pod, services: Iterable[Service], selector_of: Any) -> list[str]:
    """Keys of the ``services`` (of the pod's namespace) whose selector matches ``pod``."""
    labels: Mapping[str, str] = pod.metadata.labels
    return [
        f"{s.metadata.namespace}/{s.metadata.name}"
        for s in services
        if manages_endpoints(s) and selector_of(s).matches(labels)
    ]
