"""Messages the scheduler writes into FailedScheduling events and pod conditions.

``fit_error_message`` is ``FitError.Error()`` (``pkg/scheduler/framework/types.go``)
without the PostFilter (preemption) part, since there is no preemption here::

    0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}.

Each rejected node contributes every reason of the status of the filter that rejected
it; reasons are counted, rendered as ``"<count> <reason>"``, sorted as strings (so
``"10 ..."`` sorts before ``"2 ..."``, as Go's ``sort.Strings`` does) and joined by
``", "``. A PreFilter rejection replaces the histogram with its own message.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.scheduler.interface import Status

__all__ = [
    "NO_NODES_AVAILABLE",
    "fit_error_message",
    "scheduled_message",
]

#: ``ErrNoNodesAvailable``: the cluster has no nodes at all.
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


def fit_error_message(
    num_all_nodes: int, statuses: Iterable[Status], pre_filter_message: str | None = None
) -> str:
    """The FailedScheduling message for a pod no node fits (see the module docstring)."""
    message = f"0/{num_all_nodes} nodes are available:"
    if pre_filter_message:
        return f"{message} {pre_filter_message}."
    histogram: dict[str, int] = {}
    for status in statuses:
        for reason in status.reasons:
            histogram[reason] = histogram.get(reason, 0) + 1
    if histogram:
        parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
        message = f"{message} {', '.join(parts)}."
    return message


def scheduled_message(namespace: str, name: str, node_name: str) -> str:
    """The ``Scheduled`` event's message."""
    return f"Successfully assigned {namespace}/{name} to {node_name}"
