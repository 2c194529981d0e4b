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
