"""``kubetrio demo``: apply a small shop to an in-process cluster and show what happened.

Until nodes run pods (the next milestone), the demo shows the control plane's half:
manifests loaded as kubectl reads them, defaulted and validated by admission, stored
with uids and resourceVersions, and seen by a watcher — all in virtual time.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, TextIO

import trio

from controlplane import errors
from controlplane.api import dump_yaml
from controlplane.cluster import open_cluster

DEMO_MANIFEST = files("controlplane.demo").joinpath("shop.yaml").read_text()


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


async def run_demo(out: TextIO, *, manifest: str = DEMO_MANIFEST, seed: int = 7) -> dict[str, Any]:
    """Apply ``manifest`` to a fresh cluster, print the stored objects and the watch
    events, and return a summary (also used by the demo's test)."""
    async with open_cluster(nodes=3, seed=seed) as cluster:
        seen: list[tuple[str, str, str]] = []
        async with cluster.client.watch("Pod", namespace="shop") as w:
            stored = await cluster.apply(manifest)
            stored = stored if isinstance(stored, list) else [stored]
            bad = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "bad", "namespace": "shop"},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "nginx", "resources": {"limits": {"cpu": "5x"}}}
                    ]
                },
            }
            try:
                await cluster.apply(bad)
                rejected = ""
            except errors.ApiError as exc:
                rejected = f"{type(exc).__name__}: {exc}"
            await cluster.client.delete("Pod", stored[-1].metadata.name, namespace="shop")
            with trio.move_on_after(1):
                async for event in w:
                    seen.append(
                        (
                            event.type,
                            event.object.metadata.name,
                            event.object.metadata.resource_version,
                        )
                    )
                    if event.type == "DELETED":
                        break
        out.write("Stored objects (defaulted and validated by admission):\n")
        rows = [["KIND", "NAMESPACE", "NAME", "RESOURCEVERSION", "UID", "CREATED"]]
        for obj in stored:
            meta = obj.metadata
            rows.append(
                [
                    type(obj).kind,
                    meta.namespace or "-",
                    meta.name,
                    meta.resource_version,
                    meta.uid[:8],
                    meta.creation_timestamp.isoformat() if meta.creation_timestamp else "",
                ]
            )
        _table(rows, out)
        out.write("\nWatch events for pods:\n")
        _table([["TYPE", "NAME", "RESOURCEVERSION"], *[list(e) for e in seen]], out)
        out.write(f"\nA bad manifest is refused and changes nothing:\n  {rejected}\n")
        deployment = next(o for o in stored if type(o).kind == "Deployment")
        out.write("\nThe Deployment as stored (note the defaults):\n")
        out.write(dump_yaml([deployment]))
        return {
            "stored": len(stored),
            "events": seen,
            "rejected": rejected,
            "digest": cluster.history_digest(),
        }
