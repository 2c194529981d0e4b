"""Validation of pods and pod templates (``ValidatePodSpec`` and friends).

See ``controlplane.api.validation`` for the conventions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from controlplane.api import core
from controlplane.api.labels import (
    Selector,
    validate_label_key,
    validate_label_value,
)
from controlplane.api.memo import IdentityMemo
from controlplane.api.validation_common import (
    DNS_POLICIES,
    NODE_SELECTOR_OPERATORS,
    PROTOCOLS,
    PULL_POLICIES,
    RESTART_POLICIES,
    TAINT_EFFECTS,
    Causes,
    check_annotations,
    check_at_least,
    check_handler_port,
    check_label_selector,
    check_labels,
    check_name,
    check_non_negative,
    check_one_of,
    check_port,
    check_resources,
    dns1123_label,
    dns1123_subdomain,
    duplicate,
    forbidden,
    iana_svc_name,
    invalid,
    json_field,
    not_found,
    not_supported,
    required,
)

# -- pods ------------------------------------------------------------------------------


def check_handler(path: str, handler: Any, names: tuple[str, ...], out: Causes) -> None:
    """Exactly one of the action fields ``names`` is set, and it is valid."""
    present = [name for name in names if getattr(handler, name) is not None]
    if not present:
        out.append(required(path, "must specify a handler type"))
        return
    for name in present[1:]:
        out.append(
            forbidden(f"{path}.{json_field(name)}", "may not specify more than 1 handler type")
        )
    action = getattr(handler, present[0])
    action_path = f"{path}.{json_field(present[0])}"
    if present[0] == "exec" and not action.command:
        out.append(required(f"{action_path}.command"))
    elif present[0] == "http_get":
        if action.path is not None and not action.path:
            out.append(required(f"{action_path}.path"))
        check_handler_port(f"{action_path}.port", action.port, out)
        check_one_of(f"{action_path}.scheme", action.scheme, ("HTTP", "HTTPS"), out)
    elif present[0] in ("tcp_socket", "grpc"):
        check_handler_port(f"{action_path}.port", action.port, out)
    elif present[0] == "sleep":
        check_non_negative(f"{action_path}.seconds", action.seconds, out)


_PROBE_HANDLERS = ("exec", "http_get", "tcp_socket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "http_get", "tcp_socket", "sleep")


def check_probe(path: str, probe: core.Probe, success_must_be_one: bool, out: Causes) -> None:
    check_handler(path, probe, _PROBE_HANDLERS, out)
    check_non_negative(f"{path}.initialDelaySeconds", probe.initial_delay_seconds, out)
    check_at_least(f"{path}.timeoutSeconds", probe.timeout_seconds, 1, out)
    check_at_least(f"{path}.periodSeconds", probe.period_seconds, 1, out)
    check_at_least(f"{path}.successThreshold", probe.success_threshold, 1, out)
    check_at_least(f"{path}.failureThreshold", probe.failure_threshold, 1, out)
    if success_must_be_one and probe.success_threshold not in (None, 1):
        out.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    grace = probe.termination_grace_period_seconds
    if grace is not None and grace <= 0:
        out.append(
            invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0")
        )


def check_container(
    path: str,
    container: core.Container,
    volumes: frozenset[str],
    init: bool,
    out: Causes,
) -> None:
    if not container.name:
        out.append(required(f"{path}.name"))
    else:
        check_name(f"{path}.name", container.name, dns1123_label, out)
    if not container.image or container.image != container.image.strip():
        if not container.image:
            out.append(required(f"{path}.image"))
        else:
            out.append(
                invalid(
                    f"{path}.image", container.image, "must not have leading or trailing whitespace"
                )
            )
    check_one_of(f"{path}.imagePullPolicy", container.image_pull_policy, PULL_POLICIES, out)
    if container.termination_message_policy is not None:
        check_one_of(
            f"{path}.terminationMessagePolicy",
            container.termination_message_policy,
            ("File", "FallbackToLogsOnError"),
            out,
        )
    if init:
        check_one_of(f"{path}.restartPolicy", container.restart_policy, ("Always",), out)
    elif container.restart_policy is not None:
        out.append(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))
    port_names: set[str] = set()
    for i, port in enumerate(container.ports):
        port_path = f"{path}.ports[{i}]"
        if port.name:
            out.extend(invalid(f"{port_path}.name", port.name, p) for p in iana_svc_name(port.name))
            if port.name in port_names:
                out.append(duplicate(f"{port_path}.name", port.name))
            port_names.add(port.name)
        if port.container_port == 0:
            out.append(required(f"{port_path}.containerPort"))
        else:
            check_port(f"{port_path}.containerPort", port.container_port, out)
        if port.host_port:
            check_port(f"{port_path}.hostPort", port.host_port, out)
        check_one_of(f"{port_path}.protocol", port.protocol, PROTOCOLS, out)
    for i, env in enumerate(container.env):
        env_path = f"{path}.env[{i}]"
        if not env.name:
            out.append(required(f"{env_path}.name"))
        if env.value_from is not None:
            sources = [
                s
                for s in (
                    env.value_from.field_ref,
                    env.value_from.resource_field_ref,
                    env.value_from.config_map_key_ref,
                    env.value_from.secret_key_ref,
                )
                if s is not None
            ]
            if env.value:
                out.append(
                    invalid(
                        f"{env_path}.valueFrom",
                        "",
                        "may not be specified when `value` is not empty",
                    )
                )
            if not sources:
                out.append(
                    invalid(
                        f"{env_path}.valueFrom",
                        "",
                        "must specify one of: `fieldRef`, `resourceFieldRef`, "
                        "`configMapKeyRef` or `secretKeyRef`",
                    )
                )
            elif len(sources) > 1:
                out.append(
                    invalid(
                        f"{env_path}.valueFrom",
                        "",
                        "may not have more than one field specified at a time",
                    )
                )
    check_resources(f"{path}.resources", container.resources, out)
    for i, mount in enumerate(container.volume_mounts):
        mount_path = f"{path}.volumeMounts[{i}]"
        if not mount.name:
            out.append(required(f"{mount_path}.name"))
        elif mount.name not in volumes:
            out.append(not_found(f"{mount_path}.name", mount.name))
        if not mount.mount_path:
            out.append(required(f"{mount_path}.mountPath"))
    for field, success_one in (
        ("liveness_probe", True),
        ("readiness_probe", False),
        ("startup_probe", True),
    ):
        probe = getattr(container, field)
        if probe is None:
            continue
        if init and container.restart_policy != "Always":
            out.append(
                forbidden(
                    f"{path}.{json_field(field)}",
                    "may not be set for init containers without restartPolicy=Always",
                )
            )
            continue
        check_probe(f"{path}.{json_field(field)}", probe, success_one, out)
    if container.lifecycle is not None:
        for field in ("post_start", "pre_stop"):
            handler = getattr(container.lifecycle, field)
            if handler is not None:
                check_handler(
                    f"{path}.lifecycle.{json_field(field)}", handler, _LIFECYCLE_HANDLERS, out
                )


def check_node_selector_term(path: str, term: core.NodeSelectorTerm, out: Causes) -> None:
    for field, requirements in (
        ("matchExpressions", term.match_expressions),
        ("matchFields", term.match_fields),
    ):
        for i, req in enumerate(requirements):
            req_path = f"{path}.{field}[{i}]"
            if not req.key:
                out.append(required(f"{req_path}.key"))
            if req.operator not in NODE_SELECTOR_OPERATORS:
                out.append(
                    not_supported(f"{req_path}.operator", req.operator, NODE_SELECTOR_OPERATORS)
                )
            elif req.operator in ("In", "NotIn") and not req.values:
                out.append(
                    required(
                        f"{req_path}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
            elif req.operator in ("Exists", "DoesNotExist") and req.values:
                out.append(
                    forbidden(
                        f"{req_path}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
            elif req.operator in ("Gt", "Lt") and len(req.values) != 1:
                out.append(
                    required(
                        f"{req_path}.values",
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    )
                )


def check_pod_affinity_terms(path: str, terms: Iterable[core.PodAffinityTerm], out: Causes) -> None:
    for i, term in enumerate(terms):
        term_path = f"{path}[{i}]"
        if not term.topology_key:
            out.append(required(f"{term_path}.topologyKey", "can not be empty"))
        else:
            problem = validate_label_key(term.topology_key)
            if problem is not None:
                out.append(invalid(f"{term_path}.topologyKey", term.topology_key, problem))
        check_label_selector(f"{term_path}.labelSelector", term.label_selector, out)
        check_label_selector(f"{term_path}.namespaceSelector", term.namespace_selector, out)


def check_affinity(path: str, affinity: core.Affinity, out: Causes) -> None:
    node = affinity.node_affinity
    if node is not None:
        required_terms = node.required_during_scheduling_ignored_during_execution
        if required_terms is not None:
            req_path = f"{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            if not required_terms.node_selector_terms:
                out.append(
                    required(
                        f"{req_path}.nodeSelectorTerms", "must have at least one node selector term"
                    )
                )
            for i, term in enumerate(required_terms.node_selector_terms):
                check_node_selector_term(f"{req_path}.nodeSelectorTerms[{i}]", term, out)
        pref_path = f"{path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
        for i, preferred in enumerate(node.preferred_during_scheduling_ignored_during_execution):
            if not 1 <= preferred.weight <= 100:
                out.append(
                    invalid(
                        f"{pref_path}[{i}].weight", preferred.weight, "must be in the range 1-100"
                    )
                )
            check_node_selector_term(f"{pref_path}[{i}].preference", preferred.preference, out)
    for field, pod_affinity in (
        ("podAffinity", affinity.pod_affinity),
        ("podAntiAffinity", affinity.pod_anti_affinity),
    ):
        if pod_affinity is None:
            continue
        base = f"{path}.{field}"
        check_pod_affinity_terms(
            f"{base}.requiredDuringSchedulingIgnoredDuringExecution",
            pod_affinity.required_during_scheduling_ignored_during_execution,
            out,
        )
        pref_path = f"{base}.preferredDuringSchedulingIgnoredDuringExecution"
        weighted = pod_affinity.preferred_during_scheduling_ignored_during_execution
        for i, term in enumerate(weighted):
            if not 1 <= term.weight <= 100:
                out.append(
                    invalid(f"{pref_path}[{i}].weight", term.weight, "must be in the range 1-100")
                )
        for i, term in enumerate(weighted):
            check_pod_affinity_terms(
                f"{pref_path}[{i}].podAffinityTerm", [term.pod_affinity_term], out
            )


def check_tolerations(path: str, tolerations: Iterable[core.Toleration], out: Causes) -> None:
    for i, toleration in enumerate(tolerations):
        t_path = f"{path}[{i}]"
        if toleration.key:
            problem = validate_label_key(toleration.key)
            if problem is not None:
                out.append(invalid(f"{t_path}.key", toleration.key, problem))
        operator = toleration.operator or "Equal"
        if not toleration.key and operator != "Exists":
            out.append(
                invalid(
                    f"{t_path}.operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all '
                    'values and all keys"',
                )
            )
        if operator == "Exists" and toleration.value:
            out.append(
                invalid(
                    f"{t_path}.operator",
                    toleration.value,
                    "value must be empty when `operator` is 'Exists'",
                )
            )
        elif operator == "Equal" and toleration.value:
            problem = validate_label_value(toleration.value)
            if problem is not None:
                out.append(invalid(f"{t_path}.value", toleration.value, problem))
        elif operator not in ("Equal", "Exists"):
            out.append(not_supported(f"{t_path}.operator", operator, ("Equal", "Exists")))
        if toleration.toleration_seconds is not None and toleration.effect != "NoExecute":
            out.append(
                invalid(
                    f"{t_path}.effect",
                    toleration.effect or "",
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if toleration.effect:
            check_one_of(f"{t_path}.effect", toleration.effect, TAINT_EFFECTS, out)


#: Specs found valid: pods stamped from one template share one spec object. Whether a
#: spec is valid does not depend on the path it is reported under.
_VALID_SPECS: IdentityMemo[core.PodSpec, bool] = IdentityMemo()


def check_pod_spec(path: str, spec: core.PodSpec, out: Causes) -> None:
    if _VALID_SPECS.get(spec):
        return
    before = len(out)
    _check_pod_spec(path, spec, out)
    if len(out) == before:
        _VALID_SPECS.put(spec, True)


def is_known_valid(spec: core.PodSpec) -> bool:
    """Whether ``spec`` (this very object) was found valid."""
    return bool(_VALID_SPECS.get(spec))


def remember_valid(spec: core.PodSpec) -> None:
    """Record that ``spec`` is valid without checking it: only for specs derived from a
    valid one by a change checked elsewhere (see :mod:`controlplane.api.binding`)."""
    _VALID_SPECS.put(spec, True)


def _check_pod_spec(path: str, spec: core.PodSpec, out: Causes) -> None:
    volume_names: set[str] = set()
    for i, volume in enumerate(spec.volumes):
        v_path = f"{path}.volumes[{i}]"
        if not volume.name:
            out.append(required(f"{v_path}.name"))
        else:
            check_name(f"{v_path}.name", volume.name, dns1123_label, out)
            if volume.name in volume_names:
                out.append(duplicate(f"{v_path}.name", volume.name))
            volume_names.add(volume.name)
        sources = [
            s
            for s in (
                volume.empty_dir,
                volume.config_map,
                volume.secret,
                volume.persistent_volume_claim,
                volume.host_path,
            )
            if s is not None
        ]
        if len(sources) + len(volume.other) > 1:
            out.append(forbidden(v_path, "may not specify more than 1 volume type"))
        if volume.host_path is not None and not volume.host_path.path:
            out.append(required(f"{v_path}.hostPath.path"))
        if (
            volume.persistent_volume_claim is not None
            and not volume.persistent_volume_claim.claim_name
        ):
            out.append(required(f"{v_path}.persistentVolumeClaim.claimName"))
    volumes = frozenset(volume_names)
    if not spec.containers:
        out.append(required(f"{path}.containers"))
    names: set[str] = set()
    for field, containers, init in (
        ("initContainers", spec.init_containers, True),
        ("containers", spec.containers, False),
    ):
        for i, container in enumerate(containers):
            c_path = f"{path}.{field}[{i}]"
            check_container(c_path, container, volumes, init, out)
            if container.name:
                if container.name in names:
                    out.append(duplicate(f"{c_path}.name", container.name))
                names.add(container.name)
    check_one_of(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES, out)
    check_one_of(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES, out)
    check_non_negative(
        f"{path}.terminationGracePeriodSeconds", spec.termination_grace_period_seconds, out
    )
    deadline = spec.active_deadline_seconds
    if deadline is not None and not 1 <= deadline <= 2**31 - 1:
        out.append(
            invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                "must be between 1 and 2147483647, inclusive",
            )
        )
    check_labels(f"{path}.nodeSelector", spec.node_selector, out)
    if spec.node_name:
        check_name(f"{path}.nodeName", spec.node_name, dns1123_subdomain, out)
    if spec.service_account_name:
        check_name(f"{path}.serviceAccountName", spec.service_account_name, dns1123_subdomain, out)
    if spec.hostname:
        check_name(f"{path}.hostname", spec.hostname, dns1123_label, out)
    if spec.subdomain:
        check_name(f"{path}.subdomain", spec.subdomain, dns1123_label, out)
    if spec.priority_class_name:
        check_name(f"{path}.priorityClassName", spec.priority_class_name, dns1123_subdomain, out)
    if spec.affinity is not None:
        check_affinity(f"{path}.affinity", spec.affinity, out)
    check_tolerations(f"{path}.tolerations", spec.tolerations, out)
    for i, constraint in enumerate(spec.topology_spread_constraints):
        c_path = f"{path}.topologySpreadConstraints[{i}]"
        if constraint.max_skew <= 0:
            out.append(
                invalid(f"{c_path}.maxSkew", constraint.max_skew, "must be greater than zero")
            )
        if not constraint.topology_key:
            out.append(required(f"{c_path}.topologyKey", "can not be empty"))
        if constraint.when_unsatisfiable not in ("DoNotSchedule", "ScheduleAnyway"):
            out.append(
                not_supported(
                    f"{c_path}.whenUnsatisfiable",
                    constraint.when_unsatisfiable,
                    ("DoNotSchedule", "ScheduleAnyway"),
                )
            )
        if constraint.min_domains is not None:
            if constraint.min_domains <= 0:
                out.append(
                    invalid(
                        f"{c_path}.minDomains", constraint.min_domains, "must be greater than 0"
                    )
                )
            elif constraint.when_unsatisfiable != "DoNotSchedule":
                out.append(
                    invalid(
                        f"{c_path}.minDomains",
                        constraint.min_domains,
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, "
                        "not ScheduleAnyway",
                    )
                )
        check_label_selector(f"{c_path}.labelSelector", constraint.label_selector, out)


def validate_pod(pod: core.Pod, out: Causes) -> None:
    check_pod_spec("spec", pod.spec, out)


_POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def validate_pod_update(pod: core.Pod, old: core.Pod, out: Causes) -> None:
    """Pod specs are immutable but for images, activeDeadlineSeconds and added tolerations.

    Setting ``nodeName`` on an unbound pod is allowed too: it is how a pod is bound
    (Kubernetes' Binding subresource).
    """
    new, before = pod.spec, old.spec
    if new is before:
        return
    if before.active_deadline_seconds is not None and (
        new.active_deadline_seconds is None
        or new.active_deadline_seconds > before.active_deadline_seconds
    ):
        out.append(
            invalid(
                "spec.activeDeadlineSeconds",
                new.active_deadline_seconds,
                "must be less than or equal to previous value",
            )
        )
    # Take the mutable fields from the new spec; anything else that differs is forbidden.
    mutable = {
        "active_deadline_seconds": new.active_deadline_seconds,
        "containers": _with_images(before.containers, new.containers),
        "init_containers": _with_images(before.init_containers, new.init_containers),
    }
    if all(t in new.tolerations for t in before.tolerations):
        mutable["tolerations"] = new.tolerations
    if not before.node_name and new.node_name:
        mutable["node_name"] = new.node_name
    grace = before.termination_grace_period_seconds
    if grace is not None and grace < 0 and new.termination_grace_period_seconds == 1:
        mutable["termination_grace_period_seconds"] = 1
    if attrs.evolve(before, **mutable) != new:
        out.append(forbidden("spec", _POD_UPDATE_MESSAGE))


def _with_images(
    old: tuple[core.Container, ...], new: tuple[core.Container, ...]
) -> tuple[core.Container, ...]:
    if len(old) != len(new):
        return old
    return tuple(
        attrs.evolve(o, image=n.image) if o.image != n.image else o
        for o, n in zip(old, new, strict=True)
    )


# -- workloads -------------------------------------------------------------------------


def check_template(
    path: str,
    template: core.PodTemplateSpec,
    selector: Selector | None,
    restart_policies: tuple[str, ...],
    out: Causes,
) -> None:
    check_labels(f"{path}.metadata.labels", template.metadata.labels, out)
    check_annotations(f"{path}.metadata.annotations", template.metadata.annotations, out)
    if (
        selector is not None
        and not selector.empty
        and not selector.matches(template.metadata.labels)
    ):
        out.append(
            invalid(
                f"{path}.metadata.labels",
                template.metadata.labels,
                "`selector` does not match template `labels`",
            )
        )
    check_pod_spec(f"{path}.spec", template.spec, out)
    policy = template.spec.restart_policy or "Always"
    if policy not in restart_policies:
        out.append(not_supported(f"{path}.spec.restartPolicy", policy, restart_policies))
    if template.spec.active_deadline_seconds is not None and restart_policies == ("Always",):
        out.append(
            forbidden(
                f"{path}.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        )
