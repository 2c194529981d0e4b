"""``kubectl rollout`` for Deployments: history, undo, pause, resume, restart.

These are client-side in Kubernetes too (apps/v1 has no rollback subresource): undo
copies the pod template of an older ReplicaSet back into the Deployment, and the
controller rolls it out like any other change — as a new revision.
"""

from __future__ import annotations

from typing import Any

import attrs

from controlplane import errors
from controlplane.api.apps import Deployment, ReplicaSet
from controlplane.client.protocol import Client
from controlplane.clock import to_wall
from controlplane.controllers.rollout import revision_of, template_without_hash

__all__ = ["history", "pause", "restart", "resume", "undo"]

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"


async def history(
    client: Client, name: str, *, namespace: str = "default"
) -> list[tuple[int, ReplicaSet]]:
    """``(revision, ReplicaSet)`` for each revision of Deployment ``name``, oldest first.

    Raises:
        errors.NotFound: no such Deployment.
    """
    deployment = await client.get(Deployment, name, namespace=namespace)
    listed = await client.list("ReplicaSet", namespace=namespace)
    owned = [
        rs
        for rs in listed.items
        if (ref := rs.metadata.controller_ref()) is not None and ref.uid == deployment.metadata.uid
    ]
    return sorted(((revision_of(rs), rs) for rs in owned), key=lambda item: item[0])


async def undo(
    client: Client, name: str, *, namespace: str = "default", to_revision: int = 0
) -> Deployment:
    """Roll Deployment ``name`` back to ``to_revision`` (0: the previous one); return the
    Deployment as written (unchanged if it already runs that template).

    Raises:
        errors.NotFound: no such Deployment, or no such revision in its history
            (nothing is changed).
        errors.BadRequest: the Deployment is paused (kubectl refuses too: resume first).
    """
    deployment = await client.get(Deployment, name, namespace=namespace)
    if deployment.spec.paused:
        raise errors.BadRequest(
            f'deployments "{name}": you cannot rollback a paused deployment; resume it first',
            kind="Deployment",
            namespace=namespace,
            name=name,
        )
    revisions = await history(client, name, namespace=namespace)
    if to_revision == 0:
        if len(revisions) < 2:
            raise errors.NotFound(
                f'deployments "{name}": no rollout history found', kind="Deployment", name=name
            )
        target = revisions[-2][1]
    else:
        target = next((rs for rev, rs in revisions if rev == to_revision), None)
        if target is None:
            raise errors.NotFound(
                f'deployments "{name}": unable to find specified revision {to_revision} in history',
                kind="Deployment",
                namespace=namespace,
                name=name,
            )
    template = template_without_hash(target.spec.template)
    if template == deployment.spec.template:
        return deployment
    return await client.update(
        attrs.evolve(deployment, spec=attrs.evolve(deployment.spec, template=template))
    )


async def _set_paused(client: Client, name: str, namespace: str, paused: bool) -> Deployment:
    deployment = await client.get(Deployment, name, namespace=namespace)
    if bool(deployment.spec.paused) == paused:
        state = "paused" if paused else "not paused"
        raise errors.BadRequest(
            f'deployments "{name}" is already {state}',
            kind="Deployment",
            namespace=namespace,
            name=name,
        )
    return await client.update(
        attrs.evolve(deployment, spec=attrs.evolve(deployment.spec, paused=paused))
    )


async def pause(client: Client, name: str, *, namespace: str = "default") -> Deployment:
    """Pause Deployment ``name``: template changes are not rolled out until resumed
    (scaling still is).

    Raises:
        errors.NotFound: no such Deployment. errors.BadRequest: already paused.
    """
    return await _set_paused(client, name, namespace, True)


async def resume(client: Client, name: str, *, namespace: str = "default") -> Deployment:
    """Resume a paused Deployment.

    Raises:
        errors.NotFound: no such Deployment. errors.BadRequest: not paused.
    """
    return await _set_paused(client, name, namespace, False)


async def restart(
    client: Client, name: str, *, namespace: str = "default", now: Any = None
) -> Deployment:
    """``kubectl rollout restart``: a new template annotation, so every pod is replaced
    through a rolling update.

    Raises:
        errors.NotFound: no such Deployment.
    """
    import trio

    deployment = await client.get(Deployment, name, namespace=namespace)
    stamp = (now or to_wall(trio.current_time())).strftime("%Y-%m-%dT%H:%M:%SZ")
    template = deployment.spec.template
    annotations = {**template.metadata.annotations, RESTARTED_AT_ANNOTATION: stamp}
    template = attrs.evolve(
        template, metadata=attrs.evolve(template.metadata, annotations=annotations)
    )
    return await client.update(
        attrs.evolve(deployment, spec=attrs.evolve(deployment.spec, template=template))
    )
