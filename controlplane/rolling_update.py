"""The classic rolling update of one ReplicationController to another (``kubectl
rolling-update``, ``pkg/kubectl/rolling_updater.go``), done client-side as kubectl did.

The new controller is created at 0 replicas with the desired count in an annotation, and
the old one is marked with the name of its successor and its original size, so an
interrupted update can be continued (call :func:`rolling_update` again) or undone
(:func:`abort_rolling_update`). Then, until the new one is at the desired size and the
old one at 0:

1. scale the new one up as far as ``maxSurge`` allows (all the way once the old one is
   empty) and wait until its controller has acted on it;
2. wait ``update_period`` (kubectl's ``--update-period``, default 1 minute) for pods to
   become ready;
3. scale the old one down as far as availability allows: the new controller's available
   pods plus the old ones must stay at ``desired - maxUnavailable``.

Defaults as kubectl's: ``maxUnavailable`` 0, ``maxSurge`` 1, a 5-minute timeout without
progress. The progress lines are kubectl's. Cancelling the call (a trio cancel scope)
leaves both controllers annotated and consistent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import attrs
import trio

from controlplane import errors
from controlplane.api.core import ReplicationController
from controlplane.client.protocol import Client
from controlplane.controllers.rollout import scaled_value

__all__ = ["RollingUpdateConfig", "abort_rolling_update", "rolling_update"]

DESIRED_REPLICAS_ANNOTATION = "kubectl.kubernetes.io/desired-replicas"
NEXT_CONTROLLER_ANNOTATION = "kubectl.kubernetes.io/next-controller-id"
ORIGINAL_REPLICAS_ANNOTATION = "kubectl.kubernetes.io/original-replicas"


@attrs.frozen(kw_only=True)
class RollingUpdateConfig:
    """kubectl's flags: ``--update-period``, ``--timeout`` (without progress), and the
    surge and unavailability bounds (a count or a percentage of the desired replicas)."""

    update_period: float = 60.0
    timeout: float = 300.0
    max_unavailable: int | str = 0
    max_surge: int | str = 1
    out: Callable[[str], None] = lambda line: None


def _invalid(name: str, field: str, message: str) -> errors.Invalid:
    return errors.Invalid([errors.Cause(field, message)], kind="ReplicationController", name=name)


def _check(
    old: ReplicationController, new: ReplicationController, surge: int, unavailable: int
) -> None:
    """What kubectl refuses before changing anything."""
    name = new.metadata.name
    if name == old.metadata.name:
        raise _invalid(
            name, "metadata.name", f"must differ from the old controller {old.metadata.name!r}"
        )
    old_selector = old.spec.selector
    new_selector = new.spec.selector or (
        new.spec.template.metadata.labels if new.spec.template else {}
    )
    if not any(old_selector.get(k) not in (None, v) for k, v in new_selector.items()):
        raise _invalid(
            name,
            "spec.selector",
            f"must specify a matching key with non-equal value in Selector for {old.metadata.name}",
        )
    if surge == 0 and unavailable == 0:
        raise _invalid(name, "maxSurge", "maxUnavailable (0) and maxSurge (0) cannot both be zero")


async def rolling_update(
    client: Client,
    old_name: str,
    new: ReplicationController,
    *,
    namespace: str = "default",
    config: RollingUpdateConfig | None = None,
) -> ReplicationController:
    """Replace the pods of ReplicationController ``old_name`` with those of ``new``
    step by step (see the module docstring); return the new controller.

    Raises:
        errors.NotFound: no controller ``old_name``.
        errors.Invalid: same name, a selector that does not tell the two apart, or both
            bounds zero (nothing is changed).
        errors.Timeout: no progress for ``config.timeout`` seconds (both controllers
            are left as they are: continue or abort).
    """
    cfg = config or RollingUpdateConfig()
    old = await client.get(ReplicationController, old_name, namespace=namespace)
    desired = new.spec.replicas if new.spec.replicas is not None else (old.spec.replicas or 0)
    surge = scaled_value(cfg.max_surge, desired, round_up=True)
    unavailable = scaled_value(cfg.max_unavailable, desired, round_up=False)
    new = attrs.evolve(new, metadata=attrs.evolve(new.metadata, namespace=namespace))
    _check(old, new, surge, unavailable)
    new, old = await _start(client, old, new, desired, cfg)
    min_available = max(desired - unavailable, 0)
    cfg.out(
        f"Scaling up {new.metadata.name} from {new.spec.replicas or 0} to {desired}, scaling down"
        f" {old.metadata.name} from {old.spec.replicas or 0} to 0 (keep {min_available} pods"
        f" available, don't exceed {desired + surge} pods)"
    )
    last_progress = trio.current_time()
    while (new.spec.replicas or 0) != desired or (old.spec.replicas or 0) != 0:
        before = (new.spec.replicas, old.spec.replicas)
        new = await _scale_up(client, new, old, desired, surge, cfg)
        await trio.sleep(cfg.update_period)
        new = await client.get(ReplicationController, new.metadata.name, namespace=namespace)
        old = await _scale_down(client, new, old, desired, min_available, cfg)
        if (new.spec.replicas, old.spec.replicas) != before:
            last_progress = trio.current_time()
        elif trio.current_time() - last_progress > cfg.timeout:
            raise errors.Timeout(
                f"timed out waiting for any update progress to be made"
                f" ({old.metadata.name} -> {new.metadata.name})",
                kind="ReplicationController",
                namespace=namespace,
                name=new.metadata.name,
            )
    cfg.out(f"Update succeeded. Deleting {old.metadata.name}")
    await client.delete(
        ReplicationController,
        old.metadata.name,
        namespace=namespace,
        propagation_policy="Background",
    )
    annotations = {
        k: v for k, v in new.metadata.annotations.items() if k != DESIRED_REPLICAS_ANNOTATION
    }
    return await client.update(
        attrs.evolve(new, metadata=attrs.evolve(new.metadata, annotations=annotations))
    )


async def _start(
    client: Client,
    old: ReplicationController,
    new: ReplicationController,
    desired: int,
    cfg: RollingUpdateConfig,
) -> tuple[ReplicationController, ReplicationController]:
    """Create the new controller at 0 (or continue with the one already started) and
    mark the old one with its successor and original size."""
    namespace = old.metadata.namespace
    name = new.metadata.name
    if old.metadata.annotations.get(NEXT_CONTROLLER_ANNOTATION) == name:
        existing = await client.get(ReplicationController, name, namespace=namespace)
        cfg.out(f"Continuing update with existing controller {name}.")
        return existing, old
    annotations = {**new.metadata.annotations, DESIRED_REPLICAS_ANNOTATION: str(desired)}
    created = await client.create(
        attrs.evolve(
            new,
            metadata=attrs.evolve(new.metadata, annotations=annotations, resource_version=""),
            spec=attrs.evolve(new.spec, replicas=0),
        )
    )
    cfg.out(f"Created {name}")
    marks = {
        **old.metadata.annotations,
        NEXT_CONTROLLER_ANNOTATION: name,
        ORIGINAL_REPLICAS_ANNOTATION: str(old.spec.replicas or 0),
    }
    old = await client.update(
        attrs.evolve(old, metadata=attrs.evolve(old.metadata, annotations=marks))
    )
    return created, old


async def _scale_up(
    client: Client,
    new: ReplicationController,
    old: ReplicationController,
    desired: int,
    surge: int,
    cfg: RollingUpdateConfig,
) -> ReplicationController:
    size = new.spec.replicas or 0
    if size == desired:
        return new
    increment = desired + surge - ((old.spec.replicas or 0) + size)
    if (old.spec.replicas or 0) == 0:
        increment = desired - size
    if increment <= 0:
        return new
    target = min(size + increment, desired)
    cfg.out(f"Scaling {new.metadata.name} up to {target}")
    return await _scale_and_wait(client, new, target)


async def _scale_down(
    client: Client,
    new: ReplicationController,
    old: ReplicationController,
    desired: int,
    min_available: int,
    cfg: RollingUpdateConfig,
) -> ReplicationController:
    size = old.spec.replicas or 0
    if size == 0:
        return old
    new_size = new.spec.replicas or 0
    new_available = new.status.available_replicas
    decrement = size + new_size - min_available - (new_size - new_available)
    if decrement <= 0:
        return old
    target = max(size - decrement, 0)
    if new_size == desired and new_available == desired:
        target = 0
    cfg.out(f"Scaling {old.metadata.name} down to {target}")
    return await _scale_and_wait(client, old, target)


async def _scale_and_wait(
    client: Client, rc: ReplicationController, replicas: int
) -> ReplicationController:
    """Set ``spec.replicas`` and wait until the controller has caught up with it (its
    status counts that many pods, as kubectl's ``ScaleCondition``)."""
    fresh = await client.get(
        ReplicationController, rc.metadata.name, namespace=rc.metadata.namespace
    )
    scaled = await client.update(
        attrs.evolve(fresh, spec=attrs.evolve(fresh.spec, replicas=replicas))
    )
    return await _wait(
        client,
        scaled,
        lambda r: (
            r.status.observed_generation >= scaled.metadata.generation
            and r.status.replicas == replicas
        ),
    )


async def _wait(client: Client, rc: ReplicationController, done: Callable[[Any], bool]) -> Any:
    """Watch ``rc`` until ``done(current)``; return that version."""
    name, namespace = rc.metadata.name, rc.metadata.namespace
    current = await client.get(ReplicationController, name, namespace=namespace)
    if done(current):
        return current
    async with client.watch(
        ReplicationController,
        namespace=namespace,
        field_selector=f"metadata.name={name}",
        resource_version=current.metadata.resource_version,
    ) as events:
        async for event in events:
            if event.type in ("ADDED", "MODIFIED") and done(event.object):
                return event.object
            if event.type == "DELETED":
                raise errors.NotFound(
                    f'replicationcontrollers "{name}" was deleted during the update',
                    kind="ReplicationController",
                    namespace=namespace,
                    name=name,
                )
    raise errors.Timeout(f"watch of {name} ended", kind="ReplicationController", name=name)


async def abort_rolling_update(
    client: Client, old_name: str, new_name: str, *, namespace: str = "default"
) -> ReplicationController:
    """Undo an interrupted update (``kubectl rolling-update --rollback``): the old
    controller back to its original size, the new one deleted with its pods; returns
    the old controller.

    Raises:
        errors.NotFound: no controller ``old_name``.
        errors.BadRequest: ``old_name`` is not being updated to ``new_name``.
    """
    old = await client.get(ReplicationController, old_name, namespace=namespace)
    annotations = dict(old.metadata.annotations)
    if annotations.get(NEXT_CONTROLLER_ANNOTATION) != new_name:
        raise errors.BadRequest(
            f"{old_name} is not being updated to {new_name}: nothing to abort",
            kind="ReplicationController",
            namespace=namespace,
            name=old_name,
        )
    original = int(annotations.pop(ORIGINAL_REPLICAS_ANNOTATION, old.spec.replicas or 0))
    annotations.pop(NEXT_CONTROLLER_ANNOTATION)
    restored = await client.update(
        attrs.evolve(
            old,
            metadata=attrs.evolve(old.metadata, annotations=annotations),
            spec=attrs.evolve(old.spec, replicas=original),
        )
    )
    with contextlib.suppress(errors.NotFound):
        await client.delete(
            ReplicationController, new_name, namespace=namespace, propagation_policy="Background"
        )
    return restored
