"""Adopting and releasing dependents: the writes behind a claim (``ControllerRefManager``).

:func:`~controlplane.controllers.replication.claim_dependents` decides; this writes. Before
adopting anything the owner is read fresh from the API (``RecheckDeletionTimestamp``): a
cache that still shows an owner which was since deleted, or deleted and re-created under
the same name, must not hand it new dependents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    *,
    on_adopt: Callable[[Any], Any] | None = None,
    on_release: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Write the claim; return ``owned`` (adopted ones as stored) minus what could not be
    adopted (gone, or the owner is not what the cache said). ``on_adopt`` /
    ``on_release`` change a dependent further in the same write (a Job adds or removes
    its tracking finalizer)."""
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
        new = with_owner_references(obj, (*obj.metadata.owner_references, ref))
        stored = await _write(client, on_adopt(new) if on_adopt else new)
        uid = obj.metadata.uid
        kept = [o for o in kept if o.metadata.uid != uid] + ([stored] if stored else [])
    for obj in release:
        refs = tuple(r for r in obj.metadata.owner_references if r.uid != owner.metadata.uid)
        new = with_owner_references(obj, refs)
        await _write(client, on_release(new) if on_release else new)
    return kept


async def _write(client: Client, obj: Any) -> Any | None:
    """Update ``obj``; None if it is gone."""
    try:
        return await client.update(obj)
    except errors.NotFound:
        return None
