"""Turning a pod's container spec into what the runtime runs (``ContainerConfig``)."""

from __future__ import annotations

from controlplane.api.core_pod import Container, Pod
from controlplane.kubelet.labels import container_labels
from runtime.cri import ContainerConfig

__all__ = ["container_config", "container_env"]


def container_env(pod: Pod, container: Container) -> dict[str, str]:
    """The environment: literal ``env`` values, and the downward-API fields programs
    commonly read (pod name, namespace, uid, node name, IPs are not known yet). Values
    from ConfigMaps and Secrets are not resolved (the fake programs do not need them)."""
    env: dict[str, str] = {"HOSTNAME": pod.spec.hostname or pod.metadata.name}
    for var in container.env:
        if var.value_from is None:
            env[var.name] = var.value or ""
            continue
        ref = var.value_from.field_ref
        if ref is None:
            continue
        value = {
            "metadata.name": pod.metadata.name,
            "metadata.namespace": pod.metadata.namespace,
            "metadata.uid": pod.metadata.uid,
            "spec.nodeName": pod.spec.node_name or "",
            "spec.serviceAccountName": pod.spec.service_account_name or "",
        }.get(ref.field_path)
        if value is not None:
            env[var.name] = value
    return env


def container_config(
    pod: Pod, container: Container, *, init: bool, restart_count: int
) -> ContainerConfig:
    """The runtime config for one (re)start of ``container``: command, env, ports,
    limits (memory in bytes, cpu in cores), and the labels that tie it to the pod."""
    limits = container.resources.limits
    memory = limits.get("memory")
    cpu = limits.get("cpu")
    return ContainerConfig(
        name=container.name,
        image=container.image or "",
        command=tuple(container.command),
        args=tuple(container.args),
        env=container_env(pod, container),
        ports=tuple(p.container_port for p in container.ports),
        memory_limit=memory.value() if memory is not None else None,
        cpu_limit=cpu.milli_value() / 1000 if cpu is not None else None,
        labels=container_labels(pod, container, init=init, restart_count=restart_count),
    )
