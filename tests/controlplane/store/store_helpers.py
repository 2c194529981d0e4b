"""Object builders shared by the store tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api.core import Container, Namespace, Pod, PodSpec
from controlplane.api.meta import ObjectMeta


def make_pod(
    name: str = "web",
    *,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    node: str | None = None,
    generate_name: str = "",
    finalizers: tuple[str, ...] = (),
    **spec: Any,
) -> Pod:
    return Pod(
        metadata=ObjectMeta(
            name=name,
            generate_name=generate_name,
            namespace=namespace,
            labels=labels or {},
            finalizers=finalizers,
        ),
        spec=PodSpec(containers=[Container(name="c", image="nginx")], node_name=node, **spec),
    )


def make_namespace(name: str) -> Namespace:
    return Namespace(metadata=ObjectMeta(name=name))
