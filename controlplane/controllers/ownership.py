"""Adopting and releasing dependents: the writes behind a claim (``ControllerRefManager``).

:func:`~controlplane.controllers.replication.claim_dependents` decides; this writes. Before
adopting anything the owner is read fresh from the API (``RecheckDeletionTimestamp``): a
cache that still shows an owner which was since deleted, or deleted and re-created under
the same name, must not hand it new dependents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controlplane import errors
from controlplane.client.protocol import Client
from controlplane.controllers.pods import owner_reference, with_owner_references

__all__ = ["adopt_and_release"]


async def adopt_and_release(
    client: Client,
    owner: Any,
    owned: Sequence[Any],
    adopt: Sequence[Any],
    release: Sequence[Any],
) -> list[Any]:
    """Write the claim; return ``owned`` minus what could not be adopted (gone, or the
    owner is not what the cache said)."""
    kept = list(owned)
    if adopt:
        fresh = await client.get(
            type(owner), owner.metadata.name, namespace=owner.metadata.namespace
        )
        if fresh.metadata.uid != owner.metadata.uid or fresh.metadata.deletion_timestamp:
            skipped = {obj.metadata.uid for obj in adopt}
            kept = [obj for obj in kept if obj.metadata.uid not in skipped]
            adopt = ()
    ref = owner_reference(owner)
    for obj in adopt:
        if not await _set_owner_references(client, obj, (*obj.metadata.owner_references, ref)):
            kept = [o for o in kept if o.metadata.uid != obj.metadata.uid]
    for obj in release:
        refs = tuple(r for r in obj.metadata.owner_references if r.uid != owner.metadata.uid)
        await _set_owner_references(client, obj, refs)
    return kept


async def _set_owner_references(client: Client, obj: Any, refs: tuple[Any, ...]) -> bool:
    """Write ``obj`` with new ownerReferences; False if it is gone."""
    try:
        await client.update(with_owner_references(obj, refs))
    except errors.NotFound:
        return False
    return True
