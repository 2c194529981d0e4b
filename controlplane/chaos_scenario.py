"""Chaos scenario files: what ``kubetrio chaos run scenario.yaml`` runs.

A scenario names a workload, the cluster it runs on, the faults (given inline or generated
from the run's seed), the traffic sent through Services while the faults hit, which
invariants to check, and how soon the cluster must heal after the final heal-all::

    workload:                  # manifests inline (a list of Kubernetes objects) ...
      - {apiVersion: apps/v1, kind: Deployment, ...}
    manifests: [web.yaml]      # ... and/or files, relative to the scenario file
    nodes: 5                   # or {count: 5, cpu: "8", memory: 32Gi, pods: 110,
                               #     labels: {...}, taints: [...]}
    duration: 10m              # default run length (--duration overrides)
    schedule:                  # inline faults (the schedule YAML of controlplane.chaos)
      faults: [{at: 30, kind: node-crash, duration: 60}]
    # or: schedule: {generate: {intensity: 2, mix: {node-crash: 1, container-kill: 3},
    #                            namespace: default}}   # where pod faults strike
    traffic:
      - {service: web, port: 80, rate: 10}        # namespace: default
    invariants: {builtin: true, converges: true, traffic_recovers: true}
    converge_within: 10m       # after heal-all: desired = observed within this
    ready_within: 10m          # the workload must be up before the faults start
    sample_every: 10s          # the timeline's resolution (default: duration / 240)

Everything is checked when the file is loaded -- before any cluster starts -- and a
mistake raises :class:`ScenarioError` naming the field (``traffic[1].rate: ...``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from controlplane import errors
from controlplane.api import from_dict, load_yaml
from controlplane.api.frozen import EMPTY, FrozenDict, freeze
from controlplane.nodes import NodeTemplate

__all__ = [
    "INVARIANT_TOGGLES",
    "Scenario",
    "ScenarioError",
    "TrafficSpec",
    "format_duration",
    "load_scenario",
    "parse_duration",
]

#: The invariant switches a scenario may set, all on by default: ``builtin`` (the
#: InvariantChecker's own checks after every change), ``converges`` (desired = observed
#: within ``converge_within`` of the final heal-all) and ``traffic_recovers`` (requests
#: through every Service succeed again within the same bound).
INVARIANT_TOGGLES = ("builtin", "converges", "traffic_recovers")

_FIELDS = frozenset(
    {
        "name",
        "workload",
        "manifests",
        "nodes",
        "duration",
        "schedule",
        "traffic",
        "invariants",
        "converge_within",
        "ready_within",
        "sample_every",
    }
)
_NODE_FIELDS = frozenset({"count", "cpu", "memory", "pods", "labels", "taints"})
_TRAFFIC_FIELDS = frozenset({"service", "port", "rate", "namespace"})
_GENERATE_FIELDS = frozenset({"intensity", "mix", "namespace"})

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


class ScenarioError(ValueError):
    """A scenario file (or a duration) is malformed; the message names the field."""


def parse_duration(value: Any, *, field: str = "duration") -> float:
    """Seconds from ``30``, ``30s``, ``10m``, ``1h``, ``1h30m`` or ``2.5m``.

    Raises:
        ScenarioError: not a duration, or negative; the message names ``field``.
    """
    if isinstance(value, bool):
        raise ScenarioError(f"{field}: expected a duration like 30s, 10m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text)
        if text.startswith("-"):
            raise ScenarioError(f"{field}: must be >= 0, got {value!r}")
        if not text or match is None:
            try:
                seconds = float(text)
            except ValueError:
                raise ScenarioError(
                    f"{field}: expected a duration like 30s, 10m or 1h, got {value!r}"
                ) from None
        else:
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
    else:
        raise ScenarioError(f"{field}: expected a duration like 30s, 10m or 1h, got {value!r}")
    if not math.isfinite(seconds):
        raise ScenarioError(f"{field}: must be finite, got {value!r}")
    if seconds < 0:
        raise ScenarioError(f"{field}: must be >= 0, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest of ``1h``, ``10m``, ``90s``-style spellings that parses back to
    ``seconds`` (what the replay command prints)."""
    if seconds == int(seconds):
        whole = int(seconds)
        if whole and whole % 3600 == 0:
            return f"{whole // 3600}h"
        if whole and whole % 60 == 0:
            return f"{whole // 60}m"
        return f"{whole}s"
    return f"{seconds:g}s"


@attrs.frozen
class TrafficSpec:
    """Requests sent at ``rate`` per second to Service ``service`` port ``port``."""

    service: str
    port: int
    rate: float
    namespace: str = "default"

    @property
    def host(self) -> str:
        return f"{self.service}.{self.namespace}.svc.cluster.local"


@attrs.frozen(kw_only=True)
class Scenario:
    """A loaded, validated scenario (see the module docstring). Build one with
    :func:`load_scenario`; ``schedule`` is a ``controlplane.chaos.schedule.Schedule`` or
    None (generate one from the seed with ``intensity`` and ``mix``)."""

    name: str = "scenario"
    workload: tuple[Any, ...] = ()
    nodes: int = 3
    node_template: NodeTemplate | None = None
    duration: float = 600.0
    schedule: Any = None
    intensity: float = 1.0
    mix: FrozenDict[str, float] | None = None
    fault_namespace: str = "default"
    traffic: tuple[TrafficSpec, ...] = ()
    invariants: FrozenDict[str, bool] = attrs.field(
        factory=lambda: freeze(dict.fromkeys(INVARIANT_TOGGLES, True)), converter=freeze
    )
    converge_within: float = 600.0
    ready_within: float = 600.0
    sample_every: float | None = None

    def enabled(self, toggle: str) -> bool:
        return bool(self.invariants.get(toggle, True))


def load_scenario(text: str, *, base: Path | None = None, name: str = "scenario") -> Scenario:
    """Parse and check a scenario file's text; ``manifests:`` paths are read relative to
    ``base`` (the file's directory; default: the working directory).

    Raises:
        ScenarioError: the first problem found, naming the field
            (``workload[2]: ...``, ``schedule.faults[3].duration: ...``).
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"invalid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"expected a mapping of scenario fields, got {_type(raw)}")
    _no_unknown(raw, _FIELDS, "")
    workload = _workload(raw, base or Path.cwd())
    nodes, template = _nodes(raw.get("nodes", 3))
    duration = parse_duration(raw.get("duration", 600), field="duration")
    schedule, intensity, mix, fault_namespace = _schedule(raw.get("schedule"))
    traffic = _traffic(raw.get("traffic") or (), workload)
    invariants = _invariants(raw.get("invariants") or {})
    sample_every = raw.get("sample_every")
    return Scenario(
        name=str(raw.get("name") or name),
        workload=workload,
        nodes=nodes,
        node_template=template,
        duration=duration,
        schedule=schedule,
        intensity=intensity,
        mix=mix,
        fault_namespace=fault_namespace,
        traffic=traffic,
        invariants=invariants,
        converge_within=parse_duration(raw.get("converge_within", 600), field="converge_within"),
        ready_within=parse_duration(raw.get("ready_within", 600), field="ready_within"),
        sample_every=(
            None if sample_every is None else _positive_duration(sample_every, "sample_every")
        ),
    )


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _no_unknown(raw: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        field = f"{prefix}{unknown[0]}"
        raise ScenarioError(
            f"{field}: unknown field (expected one of {', '.join(sorted(allowed))})"
        )


def _positive_duration(value: Any, field: str) -> float:
    seconds = parse_duration(value, field=field)
    if seconds <= 0:
        raise ScenarioError(f"{field}: must be > 0, got {value!r}")
    return seconds


def _workload(raw: Mapping[str, Any], base: Path) -> tuple[Any, ...]:
    objects: list[Any] = []
    inline = raw.get("workload") or []
    if not isinstance(inline, list):
        raise ScenarioError(f"workload: expected a list of manifests, got {_type(inline)}")
    for i, item in enumerate(inline):
        if not isinstance(item, Mapping):
            raise ScenarioError(
                f"workload[{i}]: expected a manifest (a mapping), got {_type(item)}"
            )
        try:
            objects.append(from_dict(item))
        except errors.ApiError as exc:
            raise ScenarioError(f"workload[{i}]: {exc}") from None
    paths = raw.get("manifests") or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list):
        raise ScenarioError(f"manifests: expected a list of file paths, got {_type(paths)}")
    for i, entry in enumerate(paths):
        path = base / str(entry)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ScenarioError(
                f"manifests[{i}]: cannot read {str(entry)!r}: {exc.strerror}"
            ) from None
        try:
            objects.extend(load_yaml(text))
        except errors.ApiError as exc:
            raise ScenarioError(f"manifests[{i}] ({entry}): {exc}") from None
    if not objects:
        raise ScenarioError("workload: the scenario has no workload (give workload: or manifests:)")
    return tuple(objects)


def _nodes(raw: Any) -> tuple[int, NodeTemplate | None]:
    if isinstance(raw, bool):
        raise ScenarioError(f"nodes: expected a count or a node template, got {raw!r}")
    if isinstance(raw, int):
        count, template = raw, None
    elif isinstance(raw, Mapping):
        _no_unknown(raw, _NODE_FIELDS, "nodes.")
        count = raw.get("count", 3)
        options = {k: v for k, v in raw.items() if k != "count"}
        try:
            template = NodeTemplate.build(**options) if options else None
        except errors.Invalid as exc:
            cause = exc.causes[0] if exc.causes else None
            raise ScenarioError(
                f"nodes.{cause}" if cause is not None and cause.field else f"nodes: {exc}"
            ) from None
        except TypeError as exc:
            raise ScenarioError(f"nodes: {exc}") from None
    else:
        raise ScenarioError(f"nodes: expected a count or a node template, got {_type(raw)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ScenarioError(f"nodes.count: must be a positive integer, got {count!r}")
    return count, template


def _schedule(raw: Any) -> tuple[Any, float, FrozenDict[str, float] | None, str]:
    """(inline schedule or None, intensity, mix, namespace) from ``schedule:``."""
    if raw is None:
        return None, 1.0, None, "default"
    if not isinstance(raw, Mapping):
        raise ScenarioError(
            f"schedule: expected {{faults: [...]}} or {{generate: {{...}}}}, got {_type(raw)}"
        )
    if "generate" in raw:
        if len(raw) != 1:
            raise ScenarioError("schedule: give either generate: or faults:, not both")
        generate = raw["generate"] or {}
        if not isinstance(generate, Mapping):
            raise ScenarioError(f"schedule.generate: expected a mapping, got {_type(generate)}")
        _no_unknown(generate, _GENERATE_FIELDS, "schedule.generate.")
        intensity = generate.get("intensity", 1.0)
        if (
            isinstance(intensity, bool)
            or not isinstance(intensity, int | float)
            or not (math.isfinite(intensity) and intensity > 0)
        ):
            raise ScenarioError(
                f"schedule.generate.intensity: must be a positive number of faults per"
                f" minute, got {intensity!r}"
            )
        mix = generate.get("mix")
        if mix is not None:
            mix = _mix(mix)
        namespace = generate.get("namespace", "default")
        if not isinstance(namespace, str) or not namespace:
            raise ScenarioError(
                f"schedule.generate.namespace: expected a namespace name, got {namespace!r}"
            )
        _check_generator(float(intensity), mix, namespace)
        return None, float(intensity), mix, namespace
    from controlplane.chaos import Schedule, ScheduleError

    try:
        schedule = Schedule.from_dict(dict(raw))
    except ScheduleError as exc:
        raise ScenarioError(f"schedule.{exc}") from None
    return schedule, 1.0, None, "default"


def _mix(raw: Any) -> FrozenDict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise ScenarioError(
            f"schedule.generate.mix: expected a mapping of fault kind to weight, got {raw!r}"
        )
    for kind, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ScenarioError(f"schedule.generate.mix.{kind}: must be a number, got {weight!r}")
    return freeze({str(k): float(v) for k, v in raw.items()})


def _check_generator(intensity: float, mix: FrozenDict[str, float] | None, namespace: str) -> None:
    """Let the generator judge the mix now (unknown kinds, kinds it cannot generate,
    negative or all-zero weights), so a bad one fails at load, not after the workload
    came up."""
    from controlplane.chaos.generator import generate_schedule

    try:
        generate_schedule(
            seed=0,
            duration=0.0,
            mix=None if mix is None else dict(mix),
            intensity=intensity,
            namespace=namespace,
        )
    except ValueError as exc:
        raise ScenarioError(f"schedule.generate.{exc}") from None


def _traffic(raw: Any, workload: tuple[Any, ...]) -> tuple[TrafficSpec, ...]:
    if not isinstance(raw, list | tuple):
        raise ScenarioError(
            f"traffic: expected a list of {{service, port, rate}}, got {_type(raw)}"
        )
    services = {
        (obj.metadata.namespace or "default", obj.metadata.name): obj
        for obj in workload
        if type(obj).__name__ == "Service"
    }
    specs: list[TrafficSpec] = []
    for i, entry in enumerate(raw):
        field = f"traffic[{i}]"
        if not isinstance(entry, Mapping):
            raise ScenarioError(f"{field}: expected {{service, port, rate}}, got {_type(entry)}")
        _no_unknown(entry, _TRAFFIC_FIELDS, f"{field}.")
        for required in ("service", "port", "rate"):
            if required not in entry:
                raise ScenarioError(f"{field}.{required}: required")
        service, port, rate = entry["service"], entry["port"], entry["rate"]
        namespace = str(entry.get("namespace", "default"))
        if not isinstance(service, str) or not service:
            raise ScenarioError(f"{field}.service: expected a Service name, got {service!r}")
        target = services.get((namespace, service))
        if target is None:
            raise ScenarioError(
                f'{field}.service: no Service "{service}" in namespace "{namespace}" in the'
                " workload"
            )
        if isinstance(port, bool) or not isinstance(port, int):
            raise ScenarioError(f"{field}.port: expected a port number, got {port!r}")
        ports = {p.port for p in target.spec.ports}
        if port not in ports:
            raise ScenarioError(
                f'{field}.port: Service "{service}" has no port {port}'
                f" (ports: {', '.join(map(str, sorted(ports))) or 'none'})"
            )
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not (math.isfinite(rate) and rate > 0)
        ):
            raise ScenarioError(
                f"{field}.rate: must be a positive number of requests per second, got {rate!r}"
            )
        specs.append(TrafficSpec(service, port, float(rate), namespace))
    return tuple(specs)


def _invariants(raw: Any) -> FrozenDict[str, bool]:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"invariants: expected a mapping of switches, got {_type(raw)}")
    toggles = dict.fromkeys(INVARIANT_TOGGLES, True)
    for key, value in raw.items():
        if key not in toggles:
            raise ScenarioError(
                f"invariants.{key}: unknown switch (expected one of {', '.join(INVARIANT_TOGGLES)})"
            )
        if not isinstance(value, bool):
            raise ScenarioError(f"invariants.{key}: expected true or false, got {value!r}")
        toggles[key] = value
    return freeze(toggles) if toggles else EMPTY
