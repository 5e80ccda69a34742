#!/usr/bin/env python3
"""Plot bench/streams_sweep's CSV as an SVG (standard library only, the SVG written by hand).

One panel per model: step time relative to the serial unlimited step of the same process (y) at each
budget (x, as listed in the CSV, largest first), one line per configuration (serial, 2x1, auto).
The line at 1.0 is serial with unlimited memory; below it is faster.

    python3 bench/streams_sweep_plot.py streams_sweep/streams_sweep.csv docs/streams_sweep.svg
"""
import csv
import math
import sys
from html import escape

COLOURS = {"serial": "#1f77b4", "auto": "#d62728"}
OTHER_COLOURS = ["#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"model", "config", "budget", "ratio", "status"}
    if rows and not need <= set(rows[0]):
        sys.exit(f"error: {path} lacks the columns {sorted(need - set(rows[0]))} (not a streams_sweep CSV?)")
    return rows


def ordered(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def plot(rows):
    models = ordered(r["model"] for r in rows)
    budgets = ordered(r["budget"] for r in rows)
    configs = ordered(r["config"] for r in rows)
    colour = {}
    for c in configs:
        colour[c] = COLOURS.get(c) or OTHER_COLOURS[len([k for k in colour if k not in COLOURS]) % len(OTHER_COLOURS)]
    ok = [r for r in rows if r["status"] == "ok" and float(r["ratio"]) > 0]
    ymax = max([1.5] + [float(r["ratio"]) for r in ok])
    ymax = math.ceil(ymax * 4) / 4
    ymin = min([0.5] + [float(r["ratio"]) for r in ok])
    ymin = math.floor(ymin * 4) / 4

    pw, ph, ml, mt, mb, gap = 250, 240, 55, 44, 48, 28
    width = ml + len(models) * (pw + gap) + 110
    height = mt + ph + mb
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{ml}" y="16" font-size="13">Step time / serial unlimited step time (same process), '
        "by memory budget (fraction of the activations) and streams configuration</text>",
    ]
    for mi, model in enumerate(models):
        x0, y0 = ml + mi * (pw + gap), mt

        def X(i):
            return x0 + (i + 0.5) * pw / max(1, len(budgets))

        def Y(r):
            return y0 + ph - (r - ymin) / (ymax - ymin) * ph

        out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 - 6}" text-anchor="middle" font-size="12">{escape(model)}</text>')
        step = 0.25 if ymax - ymin <= 2 else 0.5
        r = ymin
        while r <= ymax + 1e-9:
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(r):.1f}" y2="{Y(r):.1f}" '
                       f'stroke="{"#444" if abs(r - 1) < 1e-9 else "#e4e4e4"}"/>')
            if mi == 0:
                out.append(f'<text x="{x0 - 4}" y="{Y(r) + 4:.1f}" text-anchor="end">{r:g}x</text>')
            r += step
        for i, b in enumerate(budgets):
            out.append(f'<text x="{X(i):.1f}" y="{y0 + ph + 14}" text-anchor="middle">{escape(b)}</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 32}" text-anchor="middle">budget</text>')
        for c in configs:
            pts = []
            for i, b in enumerate(budgets):
                for row in ok:
                    if row["model"] == model and row["config"] == c and row["budget"] == b:
                        pts.append((X(i), Y(float(row["ratio"]))))
            if not pts:
                continue
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline fill="none" stroke-width="1.8" stroke="{colour[c]}" points="{line}"/>')
            for x, y in pts:
                out.append(f'<circle r="2.8" fill="{colour[c]}" cx="{x:.1f}" cy="{y:.1f}"/>')
        # Cells that did not run (an infeasible budget) are marked on the axis.
        for i, b in enumerate(budgets):
            if any(row["model"] == model and row["budget"] == b and row["status"] != "ok" for row in rows):
                out.append(f'<text x="{X(i):.1f}" y="{y0 + ph - 4}" text-anchor="middle" fill="#999">n/a</text>')
    lx = ml + len(models) * (pw + gap)
    for ci, c in enumerate(configs):
        ly = mt + 10 + ci * 18
        out.append(f'<line x1="{lx}" x2="{lx + 20}" y1="{ly}" y2="{ly}" stroke="{colour[c]}" stroke-width="2"/>'
                   f'<text x="{lx + 25}" y="{ly + 4}">{escape(c)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: streams_sweep_plot.py STREAMS_SWEEP.CSV OUT.SVG")
    rows = read(argv[1])
    if not rows:
        sys.exit(f"error: {argv[1]} has no rows")
    with open(argv[2], "w") as f:
        f.write(plot(rows))
    print(f"wrote {argv[2]}")


if __name__ == "__main__":
    main(sys.argv)
