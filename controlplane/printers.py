"""What ``kubectl get pods`` and ``kubectl describe`` print, as plain functions.

The STATUS column is not the pod's phase: kubectl derives it from the container states
(``CrashLoopBackOff``, ``ImagePullBackOff``, ``OOMKilled``, ``Init:0/1``, ``Terminating``)
and users read clusters through it, so the demo and any report must compute it the same
way (kubectl's ``printPod``). Pure functions over stored objects; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "describe_containers",
    "describe_event_rows",
    "format_table",
    "human_duration",
    "pod_row",
    "pod_rows",
    "pod_status_reason",
]

POD_HEADER = ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE"]


def human_duration(seconds: float) -> str:
    """kubectl's short age (apimachinery's ``HumanDuration``): ``45s``, ``3m20s``, ``12m``,
    ``5h3m``, ``30h``, ``3d4h``, ``40d``, ``2y10d``; up to a second in the future reads
    ``0s`` (clock skew)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _terminated_reason(terminated: Any, prefix: str = "") -> str:
    if terminated.reason:
        return prefix + terminated.reason
    if terminated.signal:
        return f"{prefix}Signal:{terminated.signal}"
    return f"{prefix}ExitCode:{terminated.exit_code}"


def pod_status_reason(pod: Any) -> tuple[str, int, int]:
    """(STATUS, ready containers, restarts) as kubectl computes them."""
    status = pod.status
    reason = status.reason or status.phase or "Pending"
    restarts = 0
    initializing = False
    n_init = len(pod.spec.init_containers)
    for i, cs in enumerate(status.init_container_statuses):
        restarts += cs.restart_count
        terminated, waiting = cs.state.terminated, cs.state.waiting
        if terminated is not None and terminated.exit_code == 0:
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting is not None and waiting.reason and waiting.reason != "PodInitializing":
            reason = f"Init:{waiting.reason}"
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break
    ready = 0
    if not initializing:
        has_running = False
        for cs in reversed(status.container_statuses):
            restarts += cs.restart_count
            state = cs.state
            if state.waiting is not None and state.waiting.reason:
                reason = state.waiting.reason
            elif state.terminated is not None:
                reason = _terminated_reason(state.terminated)
            elif state.running is not None and cs.ready:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
            reason = "Running" if pod_ready else "NotReady"
    if pod.metadata.deletion_timestamp is not None:
        reason = "Unknown" if status.reason == "NodeLost" else "Terminating"
    return reason, ready, restarts


def pod_row(pod: Any, now: datetime) -> list[str]:
    """One ``kubectl get pods -o wide``-style row: NAME READY STATUS RESTARTS AGE NODE."""
    reason, ready, restarts = pod_status_reason(pod)
    created = pod.metadata.creation_timestamp
    age = human_duration((now - created).total_seconds()) if created else "<unknown>"
    return [
        pod.metadata.name,
        f"{ready}/{len(pod.spec.containers)}",
        reason,
        str(restarts),
        age,
        pod.spec.node_name or "<none>",
    ]


def pod_rows(pods: Iterable[Any], now: datetime) -> list[list[str]]:
    """Header plus one row per pod, sorted by name like kubectl."""
    ordered = sorted(pods, key=lambda p: (p.metadata.namespace, p.metadata.name))
    return [POD_HEADER, *(pod_row(p, now) for p in ordered)]


def _last_seen(e: Any) -> datetime | None:
    return e.last_timestamp or e.event_time or e.first_timestamp


def _first_seen(e: Any) -> datetime | None:
    return e.first_timestamp or e.event_time or e.last_timestamp


def _write_order(e: Any) -> int:
    rv = e.metadata.resource_version
    return int(rv) if rv and rv.isdigit() else 0


def describe_event_rows(events: Iterable[Any], now: datetime) -> list[list[str]]:
    """The Events table of ``kubectl describe``: Type, Reason, Age, From, Message, with
    repeated events shown once as ``4m (x3 over 6m)``, oldest first."""

    def age(at: datetime | None) -> str:
        return human_duration((now - at).total_seconds()) if at else "<unknown>"

    # Like kubectl: by when each was last seen; ties (timestamps are whole seconds) in
    # the order they were written.
    rows = [["Type", "Reason", "Age", "From", "Message"]]
    for e in sorted(events, key=lambda e: (_last_seen(e) or now, _write_order(e))):
        last = _last_seen(e)
        when = age(last)
        if (e.count or 1) > 1:
            when = f"{when} (x{e.count} over {age(_first_seen(e))})"
        source = e.source.component or e.reporting_component or ""
        rows.append([e.type or "", e.reason or "", when, source, e.message or ""])
    return rows


def _state(state: Any) -> str:
    if state.waiting is not None:
        return f"Waiting ({state.waiting.reason})" if state.waiting.reason else "Waiting"
    if state.running is not None:
        return "Running"
    if state.terminated is not None:
        t = state.terminated
        return f"Terminated ({t.reason or 'Error'}, exit code {t.exit_code})"
    return "Unknown"


def describe_containers(pod: Any) -> list[str]:
    """One line per container status as ``kubectl describe`` reports it: state, last
    state (where an OOMKill or crash shows once the container is backing off), restarts."""
    lines = []
    statuses = (*pod.status.init_container_statuses, *pod.status.container_statuses)
    for cs in statuses:
        line = f"{cs.name}: {_state(cs.state)}"
        if cs.last_state.terminated is not None:
            line += f", last {_state(cs.last_state)}"
        line += f", ready={str(cs.ready).lower()}, restarts={cs.restart_count}"
        lines.append(line)
    return lines


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart (kubectl's layout)."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = (
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return "\n".join(lines) + "\n"
