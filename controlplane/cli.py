"""The ``kubetrio`` command line.

The CLI is an edge: it is the one place (with the tests and benchmarks) that configures
logging, and it runs the cluster under trio's virtual clock so the demo's simulated
minutes take milliseconds.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path

import click
import structlog
import trio
import trio.testing


def _configure_logging(verbose: bool) -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.WARNING
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the components do.")
def main(verbose: bool) -> None:
    """kubetrio: a Kubernetes-style control plane in one Python process."""
    _configure_logging(verbose)


@main.command()
@click.option("--seed", default=7, show_default=True, help="Root of all randomness.")
@click.option("--nodes", default=3, show_default=True, help="Machines in the cluster.")
@click.option("--pods", default=0, show_default=True, help="Load pods to add to the demo's.")
@click.option("--minutes", default=5.0, show_default=True, help="Virtual minutes to run.")
def demo(seed: int, nodes: int, pods: int, minutes: float) -> None:
    """Run pods on an in-process cluster -- web servers, a crash loop, a batch step, an
    unschedulable pod, an OOMKill, a bad image -- and show `kubectl get pods` and the
    events that explain each, after some minutes of virtual time."""
    from controlplane.demo.run import run_demo

    progress = _progress_line if sys.stderr.isatty() else None

    async def go() -> None:
        summary = await run_demo(
            sys.stdout, seed=seed, nodes=nodes, pods=pods, minutes=minutes, progress=progress
        )
        if progress is not None:
            click.echo("", err=True)  # end the progress line
        click.echo(f"\nhistory digest (same seed, same digest): {summary['digest']}")

    trio.run(go, clock=trio.testing.MockClock(autojump_threshold=0))


def _progress_line(elapsed: float, statuses: Counter[str]) -> None:
    """Rewrite one status line on the terminal as virtual time passes."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    click.echo(f"\r\033[K  virtual time +{elapsed:4.0f}s  pods: {counts}", nl=False, err=True)


@main.command()
@click.option(
    "-f",
    "--filename",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Manifest file ('-' for stdin), one or many YAML documents.",
)
@click.option("--seed", default=0, show_default=True)
def apply(path: str, seed: int) -> None:
    """Apply a manifest to a fresh in-process cluster and print what was stored, as YAML."""
    from controlplane import errors
    from controlplane.api import dump_yaml
    from controlplane.cluster import open_cluster

    text = sys.stdin.read() if path == "-" else Path(path).read_text()

    async def go() -> None:
        async with open_cluster(seed=seed) as cluster:
            stored = await cluster.apply(text)
            click.echo(dump_yaml(stored if isinstance(stored, list) else [stored]), nl=False)

    try:
        trio.run(go, clock=trio.testing.MockClock(autojump_threshold=0))
    except errors.ApiError as exc:
        raise click.ClickException(f"{exc.reason}: {exc}") from exc


def _add_chaos_group() -> None:
    from controlplane.chaos_cli import chaos

    main.add_command(chaos)


_add_chaos_group()


def _int_or_percent(value: str) -> int | str:
    return value if value.endswith("%") else int(value)


@main.command("rolling-update")
@click.argument("old_manifest", type=click.Path(exists=True, dir_okay=False))
@click.argument("new_manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--update-period", default=60.0, show_default=True, help="Seconds between steps.")
@click.option("--max-unavailable", default="0", show_default=True, help="Count or percent.")
@click.option("--max-surge", default="1", show_default=True, help="Count or percent.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds without progress.")
@click.option(
    "--abort-after",
    type=float,
    default=None,
    help="Interrupt after this many seconds and roll back.",
)
@click.option("--nodes", default=3, show_default=True)
@click.option("--seed", default=0, show_default=True)
def rolling_update_command(
    old_manifest: str,
    new_manifest: str,
    update_period: float,
    max_unavailable: str,
    max_surge: str,
    timeout: float,
    abort_after: float | None,
    nodes: int,
    seed: int,
) -> None:
    """Roll one ReplicationController over to another (what `kubectl rolling-update`
    did), on a fresh in-process cluster in virtual time: create OLD_MANIFEST's
    controller, wait for its pods, then replace them with NEW_MANIFEST's step by step,
    printing kubectl's progress lines with the virtual time, and the pods at the end."""
    from controlplane import errors
    from controlplane.api import load_yaml
    from controlplane.api.core import ReplicationController
    from controlplane.clock import to_wall
    from controlplane.cluster import open_cluster
    from controlplane.printers import format_table, pod_rows
    from controlplane.rolling_update import (
        RollingUpdateConfig,
        abort_rolling_update,
        rolling_update,
    )

    def one_rc(path: str) -> ReplicationController:
        try:
            objs = load_yaml(Path(path).read_text())
        except errors.ApiError as exc:
            raise click.ClickException(f"{path}: {exc}") from exc
        if len(objs) != 1 or not isinstance(objs[0], ReplicationController):
            raise click.UsageError(f"{path}: expected one ReplicationController")
        return objs[0]

    old, new = one_rc(old_manifest), one_rc(new_manifest)

    async def go() -> None:
        async with open_cluster(nodes=nodes, seed=seed) as cluster:
            start = trio.current_time()

            def out(line: str) -> None:
                click.echo(f"[{trio.current_time() - start:5.0f}s] {line}")

            stored = await cluster.apply(old)
            name, namespace = stored.metadata.name, stored.metadata.namespace
            await cluster.wait_for(
                lambda: (
                    cluster.get_nowait(
                        "ReplicationController", name, namespace=namespace
                    ).status.available_replicas
                    == (stored.spec.replicas or 0)
                ),
                timeout=timeout,
            )
            out(f"{name}: {stored.spec.replicas} pods available")
            config = RollingUpdateConfig(
                update_period=update_period,
                timeout=timeout,
                max_unavailable=_int_or_percent(max_unavailable),
                max_surge=_int_or_percent(max_surge),
                out=out,
            )
            with trio.move_on_after(abort_after if abort_after is not None else float("inf")):
                await rolling_update(cluster.client, name, new, namespace=namespace, config=config)
                out(f"replicationcontroller/{name} rolling updated to {new.metadata.name}")
            if abort_after is not None and cluster.get_nowait(
                "ReplicationController", name, namespace=namespace
            ):
                out("Interrupted: rolling back")
                await abort_rolling_update(
                    cluster.client, name, new.metadata.name, namespace=namespace
                )
                out(f"replicationcontroller/{name} rolled back")
            await cluster.settle()
            pods = cluster.list_nowait("Pod", namespace=namespace)
            click.echo("\n$ kubectl get pods")
            rows = pod_rows(
                [p for p in pods if p.metadata.deletion_timestamp is None],
                to_wall(trio.current_time()),
            )
            click.echo(format_table(rows))

    try:
        trio.run(go, clock=trio.testing.MockClock(autojump_threshold=0))
    except errors.ApiError as exc:
        raise click.ClickException(f"{exc.reason}: {exc}") from exc
