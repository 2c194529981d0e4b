from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.api import from_dict
from controlplane.printers import (
    describe_containers,
    describe_event_rows,
    format_table,
    human_duration,
    pod_row,
    pod_status_reason,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def pod(status: dict[str, Any], *, init: int = 0, containers: int = 1, **meta: Any) -> Any:
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-0",
                "namespace": "default",
                "creationTimestamp": "2026-01-01T11:55:00Z",
                **meta,
            },
            "spec": {
                "nodeName": "node-1",
                "initContainers": [{"name": f"i{i}", "image": "busybox"} for i in range(init)],
                "containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)],
            },
            "status": status,
        }
    )


def cs(name: str, state: dict[str, Any], *, ready: bool = False, restarts: int = 0) -> dict:
    return {"name": name, "state": state, "ready": ready, "restartCount": restarts, "image": "x"}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-0.5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 180, "5h3m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (40 * 86400, "40d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_running_ready_pod() -> None:
    p = pod(
        {
            "phase": "Running",
            "containerStatuses": [cs("c0", {"running": {}}, ready=True, restarts=2)],
        }
    )
    assert pod_row(p, NOW) == ["web-0", "1/1", "Running", "2", "5m", "node-1"]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"waiting": {"reason": "CrashLoopBackOff"}}, "CrashLoopBackOff"),
        ({"waiting": {"reason": "ImagePullBackOff"}}, "ImagePullBackOff"),
        ({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}, "OOMKilled"),
        ({"terminated": {"exitCode": 0, "reason": "Completed"}}, "Completed"),
        ({"terminated": {"exitCode": 2}}, "ExitCode:2"),
        ({"terminated": {"exitCode": 143, "signal": 15}}, "Signal:15"),
    ],
)
def test_status_column_comes_from_container_state(state: dict, expected: str) -> None:
    p = pod({"phase": "Running", "containerStatuses": [cs("c0", state)]})
    assert pod_status_reason(p)[0] == expected


def test_completed_container_next_to_running_one_reads_running_or_not_ready() -> None:
    statuses = [
        cs("c0", {"running": {}}, ready=True),
        cs("c1", {"terminated": {"exitCode": 0, "reason": "Completed"}}),
    ]
    ready = [{"type": "Ready", "status": "True"}]
    assert pod_status_reason(
        pod({"phase": "Running", "conditions": ready, "containerStatuses": statuses}, containers=2)
    ) == ("Running", 1, 0)
    not_ready = [{"type": "Ready", "status": "False"}]
    assert (
        pod_status_reason(
            pod(
                {"phase": "Running", "conditions": not_ready, "containerStatuses": statuses},
                containers=2,
            )
        )[0]
        == "NotReady"
    )


def test_init_containers_show_progress_and_failures() -> None:
    done = cs("i0", {"terminated": {"exitCode": 0, "reason": "Completed"}})
    running = cs("i1", {"running": {}})
    assert pod_status_reason(pod({"initContainerStatuses": [done, running]}, init=2))[0] == (
        "Init:1/2"
    )
    crashing = cs("i0", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=3)
    reason, ready, restarts = pod_status_reason(pod({"initContainerStatuses": [crashing]}, init=1))
    assert (reason, ready, restarts) == ("Init:CrashLoopBackOff", 0, 3)
    failed = cs("i0", {"terminated": {"exitCode": 1, "reason": "Error"}})
    assert pod_status_reason(pod({"initContainerStatuses": [failed]}, init=1))[0] == "Init:Error"


def test_pending_and_terminating() -> None:
    assert pod_status_reason(pod({"phase": "Pending"}))[0] == "Pending"
    assert pod_status_reason(pod({}))[0] == "Pending"
    deleting = pod({"phase": "Running"}, deletionTimestamp="2026-01-01T11:59:00Z")
    assert pod_status_reason(deleting)[0] == "Terminating"
    evicted = pod({"phase": "Failed", "reason": "OutOfcpu"})
    assert pod_status_reason(evicted)[0] == "OutOfcpu"


def test_format_table_pads_columns() -> None:
    text = format_table([["NAME", "READY"], ["a-long-name", "1/1"]])
    assert text == "NAME          READY\na-long-name   1/1\n"


def test_row_ages_are_relative_to_now() -> None:
    p = pod({"phase": "Pending"})
    assert pod_row(p, NOW + timedelta(hours=1))[4] == "65m"


def event(name: str, reason: str, first: str, last: str, count: int, rv: str) -> Any:
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default"},
            "reason": reason,
            "message": f"{reason} happened",
            "type": "Normal",
            "source": {"component": "kubelet"},
            "firstTimestamp": first,
            "lastTimestamp": last,
            "count": count,
        }
    )


def test_describe_events_aggregate_repeats_and_sort_by_last_seen_then_write_order() -> None:
    rows = describe_event_rows(
        [
            event("b", "Started", "2026-01-01T11:50:00Z", "2026-01-01T11:58:00Z", 3, "9"),
            event("z", "Pulling", "2026-01-01T11:50:00Z", "2026-01-01T11:50:00Z", 1, "4"),
            event("a", "Pulled", "2026-01-01T11:50:00Z", "2026-01-01T11:50:00Z", 1, "5"),
        ],
        NOW,
    )
    assert rows[0] == ["Type", "Reason", "Age", "From", "Message"]
    assert [r[1] for r in rows[1:]] == ["Pulling", "Pulled", "Started"]
    assert rows[3][2] == "2m (x3 over 10m)"
    assert rows[1][2:] == ["10m", "kubelet", "Pulling happened"]


def test_describe_containers_shows_the_last_state_of_a_crashed_container() -> None:
    p = pod(
        {
            "phase": "Running",
            "containerStatuses": [
                {
                    **cs("c0", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4),
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                }
            ],
        }
    )
    assert describe_containers(p) == [
        "c0: Waiting (CrashLoopBackOff), last Terminated (OOMKilled, exit code 137),"
        " ready=false, restarts=4"
    ]
