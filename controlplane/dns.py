"""Cluster DNS: the names CoreDNS's ``kubernetes`` plugin serves, read from informers.

Records (A records only; ``domain`` is ``cluster.local`` by default):

- ``<service>.<namespace>.svc.<domain>``: the ClusterIP of a ClusterIP, NodePort or
  LoadBalancer Service; for a headless Service (``clusterIP: None``) the ready
  addresses of its Endpoints (``subsets[].addresses[].ip``, sorted, each once) -- the
  endpoints controller already counts not-ready pods as ready when the Service says
  ``publishNotReadyAddresses``. No ready address: the name does not resolve.
- ``<hostname>.<service>.<namespace>.svc.<domain>``: the address of a headless
  Service's endpoint with that ``hostname`` (a StatefulSet's pods).
- ``<a>-<b>-<c>-<d>.<namespace>.pod.<domain>``: ``a.b.c.d`` (CoreDNS's ``pods
  insecure`` mode, kubeadm's default).
- An ExternalName Service is a CNAME: it resolves if its ``externalName`` is itself a
  name in the cluster domain (followed up to 8 hops); the simulated network has no
  outside world, so any other external name does not resolve.

Short names are not expanded here: the caller asks for fully qualified names, trying a
pod's search list (:meth:`ClusterDNS.search_domains`, what the kubelet writes into
``resolv.conf``) as a stub resolver does. A trailing dot is accepted, case is ignored.
Unknown or malformed names raise :class:`runtime.network.NameNotFound` (NXDOMAIN).

Like CoreDNS, every answer is read from the informers' caches at query time, so a name
follows its Service as soon as the watch event arrives, and ``resolve`` never blocks.
"""

from __future__ import annotations

import ipaddress
import re

import structlog
import trio

from controlplane.client.informer import Informer
from controlplane.client.protocol import Client
from controlplane.client.workqueue import WorkTrackerLike
from runtime.network import NameNotFound

__all__ = ["ClusterDNS"]

log = structlog.get_logger(__name__)

MAX_NAME_LENGTH = 253
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
#: ExternalName CNAME chains longer than this are refused (CoreDNS gives up as well).
MAX_CNAME_HOPS = 8


def _ip_key(ip: str) -> tuple[int, int]:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0)
    return (addr.version, int(addr))


class ClusterDNS:
    """The cluster's DNS server (see the module docstring).

    Args:
        client: what the informers list and watch Services and Endpoints through.
        domain: the cluster domain (kubelet ``--cluster-domain``).
        tracker: optional work tracker for the informers (a harness's ``settle()``).

    Start it with ``await nursery.start(dns.run)``; names resolve from then on.
    """

    def __init__(
        self,
        client: Client,
        *,
        domain: str = "cluster.local",
        tracker: WorkTrackerLike | None = None,
    ) -> None:
        self.domain = domain.strip(".").lower()
        self._services = Informer(client, "Service", tracker=tracker)
        self._endpoints = Informer(client, "Endpoints", tracker=tracker)
        self._log = log.bind(component="cluster-dns", domain=self.domain)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch Services and Endpoints until cancelled; ``task_status.started()`` once
        both are listed.

        Raises:
            errors.ApiError: a non-transient error from listing or watching.
        """
        async with trio.open_nursery() as nursery:
            await nursery.start(self._services.run)
            await nursery.start(self._endpoints.run)
            self._log.info("dns_started", services=len(self._services.cache))
            task_status.started()

    def search_domains(self, namespace: str) -> tuple[str, ...]:
        """The ``search`` line of a pod's ``resolv.conf`` in ``namespace``."""
        d = self.domain
        return (f"{namespace}.svc.{d}", f"svc.{d}", d)

    def resolve(self, fqdn: str) -> list[str]:
        """The addresses ``fqdn`` resolves to, in a stable order.

        Raises:
            NameNotFound: no such record (NXDOMAIN), or ``fqdn`` is not a valid name
                (a label that is empty, over 63 characters or not letters, digits and
                inner ``-``; more than 253 characters).
        """
        name = fqdn.lower()
        if name.endswith("."):
            name = name[:-1]
        labels = self._parse(fqdn, name)
        return self._answer(fqdn, labels, MAX_CNAME_HOPS)

    # -- internals -------------------------------------------------------------------

    def _parse(self, fqdn: str, name: str) -> list[str]:
        if not name:
            raise NameNotFound(f"invalid name {fqdn!r}: empty")
        if len(name) > MAX_NAME_LENGTH:
            raise NameNotFound(
                f"invalid name {fqdn[:40]!r}...: longer than {MAX_NAME_LENGTH} characters"
            )
        labels = name.split(".")
        for label in labels:
            if not _LABEL.match(label):
                raise NameNotFound(
                    f"invalid name {fqdn!r}: label {label!r} must be 1-63 letters, digits"
                    " or '-', starting and ending with a letter or digit"
                )
        return labels

    def _answer(self, fqdn: str, labels: list[str], hops: int) -> list[str]:
        zone = self.domain.split(".")
        if labels[-len(zone) :] != zone or len(labels) <= len(zone):
            raise NameNotFound(f"{fqdn!r} is not in the cluster domain {self.domain}")
        rest = labels[: -len(zone)]
        if rest[-1] == "pod" and len(rest) == 3:
            return self._pod(fqdn, rest[0])
        if rest[-1] != "svc" or len(rest) not in (3, 4):
            raise NameNotFound(f"{fqdn!r}: no such name")
        namespace, service_name = rest[-2], rest[-3]
        service = self._services.cache.get(service_name, namespace)
        if service is None:
            raise NameNotFound(f"{fqdn!r}: no service {namespace}/{service_name}")
        spec = service.spec
        if len(rest) == 4:
            if spec.cluster_ip != "None":
                raise NameNotFound(f"{fqdn!r}: service {namespace}/{service_name} is not headless")
            return self._endpoint_ips(fqdn, namespace, service_name, hostname=rest[0])
        if spec.type == "ExternalName":
            return self._cname(fqdn, spec.external_name or "", hops)
        if spec.cluster_ip == "None":
            return self._endpoint_ips(fqdn, namespace, service_name, hostname=None)
        if not spec.cluster_ip:
            raise NameNotFound(f"{fqdn!r}: service {namespace}/{service_name} has no cluster IP")
        return [spec.cluster_ip]

    def _endpoint_ips(
        self, fqdn: str, namespace: str, service_name: str, *, hostname: str | None
    ) -> list[str]:
        endpoints = self._endpoints.cache.get(service_name, namespace)
        ips: set[str] = set()
        if endpoints is not None:
            for subset in endpoints.subsets:
                for address in subset.addresses:
                    if hostname is None or (address.hostname or "").lower() == hostname:
                        ips.add(address.ip)
        if not ips:
            raise NameNotFound(
                f"{fqdn!r}: service {namespace}/{service_name} has no ready endpoints"
            )
        return sorted(ips, key=_ip_key)

    def _cname(self, fqdn: str, target: str, hops: int) -> list[str]:
        if hops <= 0:
            raise NameNotFound(f"{fqdn!r}: too many CNAME hops")
        name = target.lower().rstrip(".")
        try:
            labels = self._parse(target, name)
            return self._answer(target, labels, hops - 1)
        except NameNotFound as exc:
            raise NameNotFound(f"{fqdn!r} is an alias for {target!r}: {exc}") from None

    @staticmethod
    def _pod(fqdn: str, label: str) -> list[str]:
        try:
            addr = ipaddress.IPv4Address(label.replace("-", "."))
        except ValueError:
            raise NameNotFound(f"{fqdn!r}: {label!r} is not a dashed IPv4 address") from None
        return [str(addr)]
