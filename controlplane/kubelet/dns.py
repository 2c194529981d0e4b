"""A pod's DNS search list, as the kubelet writes it into the sandbox's ``resolv.conf``.

Mirrors ``pkg/kubelet/network/dns/dns.go`` (``getPodDNSType``,
``generateSearchesForDNSClusterFirst``): ``ClusterFirst`` pods search ``<ns>.svc.<domain>``,
``svc.<domain>`` and ``<domain>`` (so ``web`` finds the Service ``web`` in the pod's own
namespace); a ``hostNetwork`` pod with ``ClusterFirst`` falls back to ``Default``, the
node's own ``resolv.conf`` (empty here: the simulated machines have no search domains);
``None`` uses ``dnsConfig``, which this API does not model (so: no search domains).
"""

from __future__ import annotations

from controlplane.api.core_pod import Pod

__all__ = ["CLUSTER_DOMAIN", "cluster_search", "pod_dns_search"]

CLUSTER_DOMAIN = "cluster.local"
"""The kubelet's ``--cluster-domain`` default."""


def pod_dns_search(pod: Pod, cluster_domain: str = CLUSTER_DOMAIN) -> tuple[str, ...]:
    """The search domains for ``pod``'s sandbox, by its ``dnsPolicy`` (unset counts as
    ``ClusterFirst``, the API default)."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    if policy == "ClusterFirst" and pod.spec.host_network:
        policy = "Default"
    if policy not in ("ClusterFirst", "ClusterFirstWithHostNet"):
        return ()
    return cluster_search(pod.metadata.namespace or "default", cluster_domain)


def cluster_search(namespace: str, cluster_domain: str = CLUSTER_DOMAIN) -> tuple[str, ...]:
    """The cluster search domains of a client in ``namespace``: where a short Service
    name resolves in that namespace (also what the harness uses for ``default``)."""
    return (f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain)
