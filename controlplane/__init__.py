"""kubetrio's Kubernetes layer: objects, store, clients, components and the harness.

The public API (stable names, see DESIGN.md): ``open_cluster``, ``Cluster``, ``errors``,
and ``controlplane.api``'s ``load_yaml``/``dump_yaml``/``to_dict``/``from_dict``.
"""

from __future__ import annotations

from controlplane import errors
from controlplane.cluster import Cluster, open_cluster

__all__ = ["Cluster", "errors", "open_cluster"]
