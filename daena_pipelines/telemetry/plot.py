"""A roast-curve chart (BT, ET, RoR, events) as a self-contained SVG, for asset metadata."""
from __future__ import annotations

import base64
import math

import numpy as np

WIDTH, HEIGHT = 760, 360
LEFT, RIGHT, TOP, BOTTOM = 50, 50, 34, 40  # margins: °C axis left, RoR axis right, title and legend above


def _polyline(x: np.ndarray, y: np.ndarray, color: str, width: float = 1.6) -> str:
    """One <polyline> per run of finite values, so dropouts show as gaps."""
    out = []
    finite = np.isfinite(y)
    runs = np.split(np.arange(len(y)), np.flatnonzero(np.diff(finite.astype(int))) + 1)
    for run in runs:
        if len(run) > 1 and finite[run[0]]:
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x[run], y[run]))
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{points}"/>')
    return "".join(out)


def roast_curve_svg(
    t_s: np.ndarray, bt_c: np.ndarray, et_c: np.ndarray, ror: np.ndarray, events: dict[str, float], title: str
) -> str:
    t_min, t_max = float(np.nanmin(t_s)), float(np.nanmax(t_s))
    temps = np.concatenate([bt_c[np.isfinite(bt_c)], et_c[np.isfinite(et_c)]])
    c_lo = math.floor(min(temps.min(initial=0.0), 0.0) / 50) * 50
    c_hi = math.ceil(max(temps.max(initial=250.0), 50.0) / 50) * 50
    ror_hi = 30.0  # °C/min; the usual useful range of a bean RoR
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(t):
        return LEFT + (np.asarray(t, dtype=float) - t_min) / max(t_max - t_min, 1.0) * plot_w

    def sy(c):
        return TOP + plot_h - (np.asarray(c, dtype=float) - c_lo) / (c_hi - c_lo) * plot_h

    def sr(r):
        return TOP + plot_h - np.clip(np.asarray(r, dtype=float), 0, ror_hi) / ror_hi * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="14" font-size="13">{_escape(title)}</text>',
    ]
    for c in range(int(c_lo), int(c_hi) + 1, 50):
        y = float(sy(c))
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{c}</text>')
    for r in range(0, int(ror_hi) + 1, 10):
        parts.append(f'<text x="{WIDTH - RIGHT + 6}" y="{float(sr(r)) + 4:.1f}" fill="#2a9d8f">{r}</text>')
    for minute in range(math.ceil(t_min / 60), math.floor(t_max / 60) + 1):
        x = float(sx(minute * 60))
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{minute}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">minutes from CHARGE</text>')
    parts.append(f'<text x="12" y="{TOP + plot_h / 2}" transform="rotate(-90 12 {TOP + plot_h / 2})" text-anchor="middle">°C</text>')
    parts.append(f'<text x="{WIDTH - 10}" y="{TOP + plot_h / 2}" transform="rotate(90 {WIDTH - 10} {TOP + plot_h / 2})" text-anchor="middle" fill="#2a9d8f">RoR °C/min</text>')
    label_ends: list[float] = []  # right end of the last label on each row: close events go one row lower
    for name, t in sorted(events.items(), key=lambda item: item[1]):
        x = float(sx(t))
        row = next((i for i, end in enumerate(label_ends) if x + 3 > end), len(label_ends))
        label_ends[row:row + 1] = [x + 3 + 7 * len(name)]
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#999" stroke-dasharray="3,3"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="{TOP + 12 + 13 * row}" fill="#555">{_escape(name)}</text>')
    parts.append(_polyline(sx(t_s), sy(et_c), "#457b9d"))
    parts.append(_polyline(sx(t_s), sy(bt_c), "#d62828", 2.0))
    parts.append(_polyline(sx(t_s), sr(ror), "#2a9d8f", 1.2))
    legend = (("BT", "#d62828"), ("ET", "#457b9d"), ("RoR", "#2a9d8f"))
    for i, (label, color) in enumerate(legend):  # a row of its own under the title: a long title never runs into it
        x = WIDTH - RIGHT - 150 + i * 50
        parts.append(f'<rect x="{x}" y="22" width="12" height="3" fill="{color}"/><text x="{x + 16}" y="27">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


# The UI shows markdown metadata inline only below 1000 characters (longer: behind "Show
# Markdown"), so the asset page's own chart is this small SVG: integer coordinates, relative steps.
THUMB_W, THUMB_H, THUMB_POINTS, INLINE_MD_LIMIT = 200, 80, 36, 1000


def _thumb_path(x: np.ndarray, y: np.ndarray) -> str:
    """An SVG path through the finite points: absolute start, then relative integer steps."""
    keep = np.isfinite(y)
    xi, yi = np.rint(x[keep]).astype(int), np.rint(y[keep]).astype(int)
    if len(xi) < 2:
        return ""
    steps = " ".join(f"{dx} {dy}" for dx, dy in zip(np.diff(xi), np.diff(yi)))
    return f"M{xi[0]} {yi[0]}l{steps}".replace(" -", "-")


def roast_curve_thumbnail(t_s: np.ndarray, bt_c: np.ndarray, et_c: np.ndarray, events: dict[str, float]) -> str:
    """BT (red) and ET (blue) against time with a grey tick per event: a chart small enough for
    the UI to draw in place (``svg_markdown`` of it stays under ``INLINE_MD_LIMIT``)."""
    t_min, t_max = float(np.nanmin(t_s)), float(np.nanmax(t_s))
    temps = np.concatenate([bt_c[np.isfinite(bt_c)], et_c[np.isfinite(et_c)]])
    c_lo, c_hi = min(float(temps.min(initial=0.0)), 0.0), max(float(temps.max(initial=250.0)), 50.0)
    grid = np.linspace(t_min, t_max, THUMB_POINTS)
    span = max(t_max - t_min, 1.0)

    def sx(t):
        return (np.asarray(t, dtype=float) - t_min) / span * THUMB_W

    def sy(c):
        return THUMB_H - (np.asarray(c, dtype=float) - c_lo) / (c_hi - c_lo) * THUMB_H

    def sampled(c):  # the curve at THUMB_POINTS times; gaps stay gaps
        finite = np.isfinite(c)
        return np.where(np.interp(grid, t_s, finite.astype(float)) > 0.5, np.interp(grid, t_s[finite], c[finite]), np.nan) \
            if finite.sum() > 1 else np.full(len(grid), np.nan)

    ticks = "".join(f"M{round(float(sx(t)))} 0v{THUMB_H}" for t in events.values())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {THUMB_W} {THUMB_H}" width="{2 * THUMB_W}">'
        f'<rect width="{THUMB_W}" height="{THUMB_H}" fill="#fff"/><g fill="none">'
        f'<path d="{ticks}" stroke="#aaa" stroke-dasharray="2"/>'
        f'<path d="{_thumb_path(sx(grid), sy(sampled(et_c)))}" stroke="#457b9d"/>'
        f'<path d="{_thumb_path(sx(grid), sy(sampled(bt_c)))}" stroke="#d62828" stroke-width="1.5"/></g></svg>'
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_markdown(svg: str, alt: str) -> str:
    """Markdown that shows the SVG inline (Dagster renders data-URI images in md metadata)."""
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
