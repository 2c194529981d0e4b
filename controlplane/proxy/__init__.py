"""kube-proxy: per-node service routing onto ready backends (see ``proxy`` and ``table``)."""

from controlplane.proxy.proxy import REJECT_PORT, Proxy, ProxyConfig, ProxyRouter, ProxyStatistics
from controlplane.proxy.table import DEFAULT_AFFINITY_TIMEOUT, REFUSED, BackendMemo, ProxyTable

__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT",
    "REFUSED",
    "REJECT_PORT",
    "BackendMemo",
    "Proxy",
    "ProxyConfig",
    "ProxyRouter",
    "ProxyStatistics",
    "ProxyTable",
]
