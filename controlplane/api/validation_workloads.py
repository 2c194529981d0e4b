"""Validation of workloads: ReplicaSet, Deployment, ReplicationController, Job, CronJob,
HorizontalPodAutoscaler.

See ``controlplane.api.validation`` for the conventions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api import apps, autoscaling, batch, core
from controlplane.api.labels import (
    Selector,
    SelectorError,
)
from controlplane.api.meta import LabelSelector
from controlplane.api.validation_common import (
    PERCENT,
    ZERO,
    Causes,
    check_labels,
    check_non_negative,
    check_one_of,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
)
from controlplane.api.validation_pod import check_template
from controlplane.errors import Cause


def _compile_selector(
    path: str, selector: LabelSelector | None, kind: str, out: Causes
) -> Selector | None:
    if selector is None:
        out.append(required(path))
        return None
    if not selector.match_labels and not selector.match_expressions:
        out.append(invalid(path, "", f"empty selector is invalid for {kind}"))
        return None
    check_labels(f"{path}.matchLabels", selector.match_labels, out)
    try:
        return Selector.from_label_selector(selector)
    except SelectorError as exc:
        out.append(Cause(f"{path}.{exc.field}" if exc.field else path, exc.detail))
        return None


def validate_replica_set(rs: apps.ReplicaSet, out: Causes) -> None:
    spec = rs.spec
    check_non_negative("spec.replicas", spec.replicas, out)
    check_non_negative("spec.minReadySeconds", spec.min_ready_seconds, out)
    selector = _compile_selector("spec.selector", spec.selector, "replicaset", out)
    check_template("spec.template", spec.template, selector, ("Always",), out)


def check_int_or_percent(path: str, value: int | str | None, out: Causes) -> None:
    if value is None:
        return
    if isinstance(value, int):
        check_non_negative(path, value, out)
    elif not PERCENT.fullmatch(value):
        out.append(
            invalid(
                path,
                value,
                "a valid percent string must be a numeric string followed by an ending '%' "
                "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )
        )


def _is_zero(value: int | str | None) -> bool:
    return value in (0, "0%") or value is None


def validate_deployment(deployment: apps.Deployment, out: Causes) -> None:
    spec = deployment.spec
    check_non_negative("spec.replicas", spec.replicas, out)
    selector = _compile_selector("spec.selector", spec.selector, "deployment", out)
    check_template("spec.template", spec.template, selector, ("Always",), out)
    strategy = spec.strategy
    if strategy.type is not None:
        check_one_of("spec.strategy.type", strategy.type, ("Recreate", "RollingUpdate"), out)
    if strategy.type == "Recreate" and strategy.rolling_update is not None:
        out.append(
            forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )
        )
    rolling = strategy.rolling_update
    if rolling is not None:
        path = "spec.strategy.rollingUpdate"
        check_int_or_percent(f"{path}.maxUnavailable", rolling.max_unavailable, out)
        check_int_or_percent(f"{path}.maxSurge", rolling.max_surge, out)
        if _is_zero(rolling.max_unavailable) and _is_zero(rolling.max_surge):
            out.append(
                invalid(
                    f"{path}.maxUnavailable",
                    rolling.max_unavailable if rolling.max_unavailable is not None else 0,
                    "may not be 0 when `maxSurge` is 0",
                )
            )
        value = rolling.max_unavailable
        if isinstance(value, str) and PERCENT.fullmatch(value) and int(value[:-1]) > 100:
            out.append(invalid(f"{path}.maxUnavailable", value, "must not be greater than 100%"))
    check_non_negative("spec.minReadySeconds", spec.min_ready_seconds, out)
    check_non_negative("spec.revisionHistoryLimit", spec.revision_history_limit, out)
    deadline = spec.progress_deadline_seconds
    if deadline is not None:
        check_non_negative("spec.progressDeadlineSeconds", deadline, out)
        if deadline <= (spec.min_ready_seconds or 0):
            out.append(
                invalid(
                    "spec.progressDeadlineSeconds",
                    deadline,
                    "must be greater than minReadySeconds",
                )
            )


def _selector_update(path: str, new: Any, old: Any, out: Causes) -> None:
    if new != old:
        value = "" if new is None else _selector_string(new)
        out.append(immutable(path, value))


def _selector_string(selector: LabelSelector | Mapping[str, str]) -> str:
    if isinstance(selector, Mapping):
        return str(Selector.from_map(selector))
    try:
        return str(Selector.from_label_selector(selector))
    except SelectorError:
        return ""


def validate_replica_set_update(rs: Any, old: Any, out: Causes) -> None:
    _selector_update("spec.selector", rs.spec.selector, old.spec.selector, out)


def validate_replication_controller(rc: core.ReplicationController, out: Causes) -> None:
    spec = rc.spec
    check_non_negative("spec.replicas", spec.replicas, out)
    check_non_negative("spec.minReadySeconds", spec.min_ready_seconds, out)
    if not spec.selector:
        out.append(required("spec.selector"))
    check_labels("spec.selector", spec.selector, out)
    if spec.template is None:
        out.append(required("spec.template"))
        return
    selector = Selector.from_map(spec.selector) if spec.selector else None
    check_template("spec.template", spec.template, selector, ("Always",), out)


def validate_job(job: batch.Job, out: Causes) -> None:
    spec = job.spec
    for path, value in (
        ("spec.parallelism", spec.parallelism),
        ("spec.completions", spec.completions),
        ("spec.backoffLimit", spec.backoff_limit),
        ("spec.ttlSecondsAfterFinished", spec.ttl_seconds_after_finished),
    ):
        check_non_negative(path, value, out)
    if spec.active_deadline_seconds is not None and spec.active_deadline_seconds <= 0:
        out.append(
            invalid(
                "spec.activeDeadlineSeconds",
                spec.active_deadline_seconds,
                "must be greater than or equal to 1",
            )
        )
    check_one_of("spec.completionMode", spec.completion_mode, ("NonIndexed", "Indexed"), out)
    if spec.completion_mode == "Indexed" and spec.completions is None:
        out.append(required("spec.completions", "when completion mode is Indexed"))
    selector = None
    if spec.selector is not None:
        selector = _compile_selector("spec.selector", spec.selector, "job", out)
    elif spec.manual_selector:
        out.append(required("spec.selector"))
    check_template("spec.template", spec.template, selector, ("OnFailure", "Never"), out)


def validate_job_update(job: batch.Job, old: batch.Job, out: Causes) -> None:
    _selector_update("spec.selector", job.spec.selector, old.spec.selector, out)
    if job.spec.template != old.spec.template:
        out.append(immutable("spec.template", "core.PodTemplateSpec{...}"))
    if job.spec.completions != old.spec.completions and job.spec.completion_mode != "Indexed":
        out.append(immutable("spec.completions", job.spec.completions))
    if job.spec.completion_mode != old.spec.completion_mode:
        out.append(immutable("spec.completionMode", job.spec.completion_mode))


def validate_cron_job(cron_job: batch.CronJob, out: Causes) -> None:
    spec = cron_job.spec
    if not spec.schedule:
        out.append(required("spec.schedule"))
    check_one_of(
        "spec.concurrencyPolicy", spec.concurrency_policy, ("Allow", "Forbid", "Replace"), out
    )
    check_non_negative("spec.startingDeadlineSeconds", spec.starting_deadline_seconds, out)
    check_non_negative("spec.successfulJobsHistoryLimit", spec.successful_jobs_history_limit, out)
    check_non_negative("spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit, out)
    inner: Causes = []
    validate_job(batch.Job(spec=spec.job_template.spec), inner)
    out.extend(Cause(f"spec.jobTemplate.{c.field}", c.message, c.reason) for c in inner)


# -- autoscaling, coordination ---------------------------------------------------------

_METRIC_TYPES = ("Object", "Pods", "Resource", "ContainerResource", "External")
_TARGET_TYPES = ("Utilization", "Value", "AverageValue")


def check_metric_target(path: str, target: autoscaling.MetricTarget, out: Causes) -> None:
    if not target.type:
        out.append(required(f"{path}.type", "must specify a metric target type"))
    else:
        check_one_of(f"{path}.type", target.type, _TARGET_TYPES, out)
    if target.average_utilization is not None and target.average_utilization < 1:
        out.append(
            invalid(
                f"{path}.averageUtilization",
                target.average_utilization,
                "must be greater than 0",
            )
        )
    for field, quantity in (("value", target.value), ("averageValue", target.average_value)):
        if quantity is not None and quantity <= ZERO:
            out.append(invalid(f"{path}.{field}", quantity, "must be positive"))


def validate_hpa(hpa: autoscaling.HorizontalPodAutoscaler, out: Causes) -> None:
    spec = hpa.spec
    ref = spec.scale_target_ref
    if not ref.kind:
        out.append(required("spec.scaleTargetRef.kind"))
    if not ref.name:
        out.append(required("spec.scaleTargetRef.name"))
    minimum = spec.min_replicas
    if minimum is not None and minimum < 1:
        out.append(invalid("spec.minReplicas", minimum, "must be greater than or equal to 1"))
    if spec.max_replicas < 1:
        out.append(invalid("spec.maxReplicas", spec.max_replicas, "must be greater than 0"))
    elif minimum is not None and spec.max_replicas < minimum:
        out.append(
            invalid(
                "spec.maxReplicas",
                spec.max_replicas,
                "must be greater than or equal to `minReplicas`",
            )
        )
    for i, metric in enumerate(spec.metrics):
        path = f"spec.metrics[{i}]"
        if not metric.type:
            out.append(required(f"{path}.type", "must specify a metric source type"))
            continue
        if metric.type not in _METRIC_TYPES:
            out.append(not_supported(f"{path}.type", metric.type, _METRIC_TYPES))
            continue
        field = metric.type[0].lower() + metric.type[1:]
        source = getattr(metric, {"containerResource": "container_resource"}.get(field, field))
        if source is None:
            out.append(
                required(
                    f"{path}.{field}",
                    f"must populate information for the given metric source (type {metric.type})",
                )
            )
            continue
        if metric.type in ("Resource", "ContainerResource") and not source.name:
            out.append(required(f"{path}.{field}.name", "must specify a resource name"))
        if metric.type in ("Object", "Pods", "External") and not source.metric.name:
            out.append(required(f"{path}.{field}.metric.name", "must specify a metric name"))
        check_metric_target(f"{path}.{field}.target", source.target, out)
    behavior = spec.behavior
    if behavior is not None:
        for field, rules in (("scaleUp", behavior.scale_up), ("scaleDown", behavior.scale_down)):
            if rules is None:
                continue
            path = f"spec.behavior.{field}"
            window = rules.stabilization_window_seconds
            if window is not None and not 0 <= window <= 3600:
                out.append(
                    invalid(
                        f"{path}.stabilizationWindowSeconds",
                        window,
                        "must be less than or equal to 3600 and greater than or equal to 0",
                    )
                )
            check_one_of(
                f"{path}.selectPolicy", rules.select_policy, ("Max", "Min", "Disabled"), out
            )
            for j, policy in enumerate(rules.policies):
                p_path = f"{path}.policies[{j}]"
                check_one_of(f"{p_path}.type", policy.type, ("Pods", "Percent"), out)
                if policy.value <= 0:
                    out.append(
                        invalid(f"{p_path}.value", policy.value, "must be greater than zero")
                    )
                if not 0 < policy.period_seconds <= 1800:
                    out.append(
                        invalid(
                            f"{p_path}.periodSeconds",
                            policy.period_seconds,
                            "must be greater than zero and less than or equal to 1800",
                        )
                    )
