"""The ``kubetrio`` command line.

The CLI is an edge: it is the one place (with the tests and benchmarks) that configures
logging, and it runs the cluster under trio's virtual clock so the demo's simulated
minutes take milliseconds.
"""

from __future__ import annotations

import logging
import sys
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
def demo(seed: int) -> None:
    """Apply a small shop (Namespace, Deployment, Service, ConfigMap, Pod) to an
    in-process cluster and show what the control plane stored and streamed."""
    from controlplane.demo.run import run_demo

    async def go() -> None:
        summary = await run_demo(sys.stdout, seed=seed)
        click.echo(f"\nhistory digest (same seed, same digest): {summary['digest']}")

    trio.run(go, clock=trio.testing.MockClock(autojump_threshold=0))


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
