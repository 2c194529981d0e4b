"""A timeline picture of one chaos run, as a self-contained SVG.

Lanes over virtual time, one x axis: the faults (a bar from injection to heal, a
diamond for an instant fault such as a kill), pods by phase, Ready nodes, ready endpoint
addresses per Service, and requests per interval (failed ones in red). Violations are
red marks across every lane, the final heal-all a dashed line. Each mark carries a
``<title>`` so a browser shows the details on hover.

Written by hand (no plotting library): an SVG is text, and a pure function of a
:class:`~controlplane.chaos_run.RunResult` is easy to test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

from controlplane.chaos_run import FaultRecord, RunResult

__all__ = ["render_timeline"]

_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
)
_PHASE_COLORS = {
    "Running": "#2ca02c",
    "Pending": "#ff7f0e",
    "Succeeded": "#1f77b4",
    "Failed": "#d62728",
    "Terminating": "#7f7f7f",
    "Unknown": "#9467bd",
}
_Scale = Callable[[float], float]  # virtual seconds -> x pixel
_LEFT, _RIGHT, _TOP = 150, 20, 40
_LANE_GAP = 28
_FAULT_ROW = 12
_CHART_HEIGHT = 90


class _Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def text(self, x: float, y: float, text: str, **attrs: str) -> None:
        extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
        self.add(f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(text)}</text>')


def render_timeline(result: RunResult, *, width: int = 1000) -> str:
    """The SVG document (text) of ``result``'s timeline, ``width`` pixels wide."""
    end = max(
        [result.duration, result.heal_all_at]
        + [s.at for s in result.samples]
        + [b.at + b.width for b in result.traffic_bins]
        + [f.healed_at or f.at for f in result.faults]
    )
    end = end or 1.0
    plot = width - _LEFT - _RIGHT

    def x(t: float) -> float:
        return _LEFT + plot * max(0.0, min(t, end)) / end

    svg = _Svg()
    y = _TOP
    verdict = "FAILED" if result.failed else "PASSED"
    svg.text(
        _LEFT,
        22,
        f"{result.scenario} -- seed {result.seed}, {len(result.faults)} faults, {verdict}",
        font_size="14",
        font_weight="bold",
    )
    lanes_top = y
    y = _fault_lane(svg, result.faults, x, y, end)
    y = _pod_lane(svg, result, x, y + _LANE_GAP)
    y = _series_lane(
        svg,
        "nodes Ready",
        [(s.at, {"Ready": s.nodes_ready}) for s in result.samples],
        {"Ready": "#17becf"},
        x,
        y + _LANE_GAP,
        height=50,
    )
    services = sorted({k for s in result.samples for k in s.endpoints})
    if services:
        colors = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(services)}
        y = _series_lane(
            svg,
            "ready endpoints",
            [(s.at, dict(s.endpoints)) for s in result.samples],
            colors,
            x,
            y + _LANE_GAP,
        )
    y = _request_lane(svg, result, x, y + _LANE_GAP)
    lanes_bottom = y
    # marks across every lane
    hx = x(result.heal_all_at)
    svg.add(
        f'<line x1="{hx:.1f}" y1="{lanes_top}" x2="{hx:.1f}" y2="{lanes_bottom}" '
        'stroke="#333" stroke-dasharray="4 3"><title>'
        f"heal-all at {result.heal_all_at:.1f}s</title></line>"
    )
    for v in result.violations:
        vx = x(v.at)
        svg.add(
            f'<line class="violation" x1="{vx:.1f}" y1="{lanes_top}" x2="{vx:.1f}" '
            f'y2="{lanes_bottom}" stroke="#d62728" stroke-width="1.5"><title>'
            f"{escape(f'{v.invariant} at {v.at:.1f}s: {v.message}')}</title></line>"
        )
    _axis(svg, x, end, lanes_bottom + 4, plot)
    height = lanes_bottom + 40
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        f'<rect width="{width}" height="{height}" fill="white"/>'
    )
    return "\n".join([head, *svg.parts, "</svg>", ""])


def _label(svg: _Svg, y: float, text: str) -> None:
    svg.text(_LEFT - 8, y, text, text_anchor="end", font_weight="bold")


def _pack(faults: Sequence[FaultRecord], end: float) -> list[int]:
    """A row per fault such that bars in one row do not overlap (greedy, in order)."""
    row_ends: list[float] = []
    rows = []
    for f in faults:
        stop = max(f.healed_at if f.healed_at is not None else end, f.at) + 1e-9
        for i, busy_until in enumerate(row_ends):
            if busy_until <= f.at:
                row_ends[i] = stop
                rows.append(i)
                break
        else:
            row_ends.append(stop)
            rows.append(len(row_ends) - 1)
    return rows


def _fault_lane(svg: _Svg, faults: Sequence[FaultRecord], x: _Scale, y: float, end: float) -> float:
    _label(svg, y + 10, "faults")
    kinds = sorted({f.kind for f in faults})
    colors = {kind: _PALETTE[i % len(_PALETTE)] for i, kind in enumerate(kinds)}
    rows = _pack(faults, end)
    for f, row in zip(faults, rows, strict=True):
        top = y + row * _FAULT_ROW
        color = colors[f.kind]
        targets = ", ".join(f.targets) or "-"
        healed = "not healed" if f.healed_at is None else f"healed {f.healed_at:.1f}s"
        title = escape(f"{f.kind} at {f.at:.1f}s on {targets}, {healed}")
        x0 = x(f.at)
        if f.healed_at is not None and f.healed_at <= f.at:  # instant: a diamond
            cy = top + _FAULT_ROW / 2 - 1
            svg.add(
                f'<path class="fault" d="M{x0:.1f},{cy - 5:.1f} l5,5 l-5,5 l-5,-5 z" '
                f'fill="{color}"><title>{title}</title></path>'
            )
        else:
            x1 = x(f.healed_at if f.healed_at is not None else end)
            svg.add(
                f'<rect class="fault" x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 1.5):.1f}" '
                f'height="{_FAULT_ROW - 3}" fill="{color}" opacity="0.85">'
                f"<title>{title}</title></rect>"
            )
    bottom = y + max(1, (max(rows) + 1) if rows else 1) * _FAULT_ROW
    # legend
    lx = _LEFT
    for kind in kinds:
        svg.add(f'<rect x="{lx}" y="{bottom + 4}" width="10" height="8" fill="{colors[kind]}"/>')
        svg.text(lx + 13, bottom + 12, kind)
        lx += 20 + 6.5 * len(kind)
    return bottom + (16 if kinds else 0)


def _pod_lane(svg: _Svg, result: RunResult, x: _Scale, y: float) -> float:
    phases = sorted(
        {p for s in result.samples for p in s.pods},
        key=lambda p: (list(_PHASE_COLORS).index(p) if p in _PHASE_COLORS else 99, p),
    )
    colors = {p: _PHASE_COLORS.get(p, "#333") for p in phases}
    return _series_lane(svg, "pods", [(s.at, dict(s.pods)) for s in result.samples], colors, x, y)


def _series_lane(
    svg: _Svg,
    label: str,
    points: Sequence[tuple[float, dict[str, int]]],
    colors: dict[str, str],
    x: _Scale,
    y: float,
    *,
    height: float = _CHART_HEIGHT,
) -> float:
    """Step lines, one per key, over a shared y scale from 0 to the largest value."""
    _label(svg, y + 10, label)
    top = max([v for _, values in points for v in values.values()] + [1])
    base = y + height

    def yv(v: float) -> float:
        return base - (height - 4) * v / top

    svg.add(f'<line x1="{_LEFT}" y1="{base}" x2="{x(float("inf"))}" y2="{base}" stroke="#ccc"/>')
    svg.text(_LEFT - 8, y + 22, f"max {top}", text_anchor="end", fill="#666")
    for key, color in colors.items():
        coords: list[str] = []
        previous: float | None = None
        for t, values in points:
            v = values.get(key, 0)
            if previous is not None:
                coords.append(f"{x(t):.1f},{yv(previous):.1f}")
            coords.append(f"{x(t):.1f},{yv(v):.1f}")
            previous = v
        if coords:
            svg.add(
                f'<polyline class="series" points="{" ".join(coords)}" fill="none" '
                f'stroke="{color}" stroke-width="1.5"><title>{escape(f"{label}: {key}")}</title>'
                "</polyline>"
            )
    lx = _LEFT
    for key, color in colors.items():
        svg.add(f'<rect x="{lx}" y="{base + 4}" width="10" height="8" fill="{color}"/>')
        svg.text(lx + 13, base + 12, key)
        lx += 20 + 6.5 * len(key)
    return base + 16


def _request_lane(svg: _Svg, result: RunResult, x: _Scale, y: float) -> float:
    height = 60
    _label(svg, y + 10, "requests")
    base = y + height
    if not result.traffic_bins or not result.traffic:
        svg.text(_LEFT + 4, y + 20, "no traffic", fill="#666")
        return base
    top = max([b.ok + b.failed for b in result.traffic_bins] + [1])
    svg.text(_LEFT - 8, y + 22, f"max {top}", text_anchor="end", fill="#666")
    for b in result.traffic_bins:
        x0, x1 = x(b.at), x(b.at + b.width)
        w = max(x1 - x0 - 0.5, 0.5)
        total = b.ok + b.failed
        if not total:
            continue
        h_ok = (height - 4) * b.ok / top
        h_bad = (height - 4) * b.failed / top
        title = escape(f"{b.at:.0f}-{b.at + b.width:.0f}s: {b.ok} ok, {b.failed} failed")
        svg.add(
            f'<rect x="{x0:.1f}" y="{base - h_ok:.1f}" width="{w:.1f}" height="{h_ok:.1f}" '
            f'fill="#c7e9c0"><title>{title}</title></rect>'
        )
        if b.failed:
            svg.add(
                f'<rect class="errors" x="{x0:.1f}" y="{base - h_ok - h_bad:.1f}" '
                f'width="{w:.1f}" height="{h_bad:.1f}" fill="#d62728"><title>{title}</title></rect>'
            )
    return base


def _axis(svg: _Svg, x: _Scale, end: float, y: float, plot: float) -> None:
    svg.add(f'<line x1="{_LEFT}" y1="{y}" x2="{x(end):.1f}" y2="{y}" stroke="#333"/>')
    step = _nice_step(end / max(1.0, plot / 90))
    t = 0.0
    while t <= end + 1e-9:
        tx = x(t)
        svg.add(f'<line x1="{tx:.1f}" y1="{y}" x2="{tx:.1f}" y2="{y + 4}" stroke="#333"/>')
        svg.text(tx, y + 16, _tick(t), text_anchor="middle")
        t += step
    svg.text(_LEFT - 8, y + 16, "virtual time", text_anchor="end", fill="#666")


def _nice_step(raw: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if step >= raw:
            return float(step)
    return float(86400)


def _tick(t: float) -> str:
    t = round(t)
    if t % 3600 == 0 and t:
        return f"{t // 3600}h"
    if t % 60 == 0 and t:
        return f"{t // 60}m"
    if t >= 60:
        return f"{t // 60}m{t % 60}s"
    return f"{t}s"
