"""The classic ReplicationController rolling update: bounds, output, abort, continue."""

from __future__ import annotations

import pytest
import trio

from controlplane import errors, open_cluster
from controlplane.api import from_dict
from controlplane.rolling_update import (
    NEXT_CONTROLLER_ANNOTATION,
    RollingUpdateConfig,
    abort_rolling_update,
    rolling_update,
)


def rc(name, version, replicas=3, image=None):
    labels = {"app": "web", "version": version}
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": labels,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": image or f"web:{version}"}]},
                },
            },
        }
    )


def active(cluster):
    return [
        p
        for p in cluster.list_nowait("Pod", namespace="default", label_selector="app=web")
        if p.metadata.deletion_timestamp is None and p.status.phase not in ("Succeeded", "Failed")
    ]


def ready(pods):
    return [
        p
        for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
    ]


async def start(cluster):
    await cluster.client.create(rc("web-v1", "v1"))
    await cluster.wait_for(
        lambda: (
            cluster.get_nowait(
                "ReplicationController", "web-v1", namespace="default"
            ).status.ready_replicas
            == 3
        )
    )


async def test_rolling_update_keeps_three_available_and_never_exceeds_four(autojump_clock):
    async with open_cluster(nodes=3, seed=21) as cluster, trio.open_nursery() as nursery:
        await start(cluster)
        low, high = [3], [3]

        async def watch_bounds():
            revision = cluster.store.revision
            while True:
                revision = await cluster.store.wait_changed(revision)
                pods = active(cluster)
                high[0] = max(high[0], len(pods))
                low[0] = min(low[0], len(ready(pods)))

        nursery.start_soon(watch_bounds)
        lines: list[str] = []
        config = RollingUpdateConfig(update_period=5, out=lines.append)
        new = await rolling_update(cluster.client, "web-v1", rc("web-v2", "v2"), config=config)
        await cluster.wait_for(
            lambda: len(ready(active(cluster))) == 3 and len(active(cluster)) == 3
        )
        assert (low[0], high[0]) == (3, 4)  # maxUnavailable 0, maxSurge 1
        assert {p.spec.containers[0].image for p in active(cluster)} == {"web:v2"}
        assert cluster.get_nowait("ReplicationController", "web-v1", namespace="default") is None
        assert new.metadata.name == "web-v2" and new.spec.replicas == 3
        assert lines[0] == "Created web-v2"
        assert lines[1] == (
            "Scaling up web-v2 from 0 to 3, scaling down web-v1 from 3 to 0"
            " (keep 3 pods available, don't exceed 4 pods)"
        )
        assert "Scaling web-v2 up to 1" in lines and "Scaling web-v1 down to 2" in lines
        assert lines[-1] == "Update succeeded. Deleting web-v1"
        nursery.cancel_scope.cancel()


async def test_an_interrupted_update_can_be_aborted_or_continued(autojump_clock):
    async with open_cluster(nodes=3, seed=22) as cluster:
        await start(cluster)
        config = RollingUpdateConfig(update_period=5)
        with trio.move_on_after(7):  # after the first step
            await rolling_update(cluster.client, "web-v1", rc("web-v2", "v2"), config=config)
        old = cluster.get_nowait("ReplicationController", "web-v1", namespace="default")
        assert old.metadata.annotations[NEXT_CONTROLLER_ANNOTATION] == "web-v2"
        assert old.spec.replicas == 2
        restored = await abort_rolling_update(cluster.client, "web-v1", "web-v2")
        assert restored.spec.replicas == 3
        await cluster.wait_for(
            lambda: (
                cluster.get_nowait("ReplicationController", "web-v2", namespace="default") is None
                and len(active(cluster)) == 3
                and all(p.spec.containers[0].image == "web:v1" for p in active(cluster))
            )
        )
        with pytest.raises(errors.BadRequest, match="nothing to abort"):
            await abort_rolling_update(cluster.client, "web-v1", "web-v2")

        # interrupted again, then continued to the end
        with trio.move_on_after(7):
            await rolling_update(cluster.client, "web-v1", rc("web-v2", "v2"), config=config)
        lines: list[str] = []
        config = RollingUpdateConfig(update_period=5, out=lines.append)
        await rolling_update(cluster.client, "web-v1", rc("web-v2", "v2"), config=config)
        assert lines[0] == "Continuing update with existing controller web-v2."
        await cluster.wait_for(
            lambda: (
                len(active(cluster)) == 3
                and all(p.spec.containers[0].image == "web:v2" for p in active(cluster))
            )
        )


async def test_an_update_that_cannot_progress_times_out(autojump_clock):
    async with open_cluster(nodes=2, seed=23) as cluster:
        cluster.registry.mark_missing("web:broken")
        await start(cluster)
        config = RollingUpdateConfig(update_period=10, timeout=60)
        begin = trio.current_time()
        with pytest.raises(errors.Timeout, match="progress"):
            await rolling_update(
                cluster.client, "web-v1", rc("web-v2", "v2", image="web:broken"), config=config
            )
        assert 60 < trio.current_time() - begin < 100
        # both left in place: the old one still serves three pods
        assert len(ready(active(cluster))) == 3


@pytest.mark.parametrize(
    ("new", "config", "field"),
    [
        (rc("web-v1", "v2"), RollingUpdateConfig(), "metadata.name"),
        (rc("web-v2", "v1"), RollingUpdateConfig(), "spec.selector"),
        (rc("web-v2", "v2"), RollingUpdateConfig(max_surge=0, max_unavailable=0), "maxSurge"),
    ],
)
async def test_bad_updates_are_refused_before_anything_changes(autojump_clock, new, config, field):
    async with open_cluster(nodes=1, seed=24) as cluster:
        await start(cluster)
        revision = cluster.store.revision
        with pytest.raises(errors.Invalid) as info:
            await rolling_update(cluster.client, "web-v1", new, config=config)
        assert [c.field for c in info.value.causes] == [field]
        assert cluster.store.revision == revision
    with pytest.raises(errors.NotFound):
        async with open_cluster(nodes=0, seed=24) as cluster:
            await rolling_update(cluster.client, "missing", rc("web-v2", "v2"))
