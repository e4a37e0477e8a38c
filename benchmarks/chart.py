#!/usr/bin/env python3
"""Charts for the README from the benchmark tables (standard library only; writes SVG).

    python3 benchmarks/chart.py depth benchmarks/results/depth.md benchmarks/results/depth.svg
    python3 benchmarks/chart.py load benchmarks/results/load-warmed-2.md benchmarks/results/load.svg

depth: the capture cost against the stack's depth (BenchmarkDotNet's table of DepthBenchmarks), time and
allocation on log-log axes, one line a method. load: each scenario's on/off median with its range across the
rounds and its target (load.sh's first table).
"""
import math
import re
import sys

W, H = 720, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 30, 50
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def table_rows(path):
    rows = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("|") and not line.startswith("| ---") and "---" not in line:
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def micros(text):
    value, unit = text.replace(",", "").split()
    return float(value) * {"ns": 0.001, "us": 1.0, "μs": 1.0, "ms": 1000.0, "s": 1e6}[unit]


def kilobytes(text):
    value, unit = text.replace(",", "").split()
    return float(value) * {"B": 1 / 1024, "KB": 1.0, "MB": 1024.0}[unit]


def log_axis(values):
    lo = math.floor(math.log10(min(values)))
    hi = math.ceil(math.log10(max(values)))
    return lo, max(hi, lo + 1)


def panel(x0, width, series, xs, title, unit):
    """One log-log panel: series is [(name, [y for each x])]."""
    out = []
    ys = [y for _, vals in series for y in vals]
    ylo, yhi = log_axis(ys)
    xlo, xhi = log_axis(xs)
    plot_h = H - TOP - BOTTOM

    def px(x):
        return x0 + (math.log10(x) - xlo) / (xhi - xlo) * width

    def py(y):
        return TOP + plot_h - (math.log10(y) - ylo) / (yhi - ylo) * plot_h

    out.append(f'<text x="{x0 + width / 2}" y="18" text-anchor="middle" font-weight="bold">{esc(title)}</text>')
    for e in range(ylo, yhi + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{x0}" x2="{x0 + width}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end" font-size="11">{10 ** e:g} {unit}</text>')
    for x in xs:
        out.append(f'<text x="{px(x)}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="11">{x:g}</text>')
    out.append(f'<text x="{x0 + width / 2}" y="{H - 12}" text-anchor="middle" font-size="11">frames deep</text>')
    for i, (name, vals) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, vals))
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in zip(xs, vals):
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
    return out


def depth(source, target):
    rows = table_rows(source)
    header = rows[0]
    col = {name: i for i, name in enumerate(header)}
    by_method = {}
    for r in rows[1:]:
        if len(r) < len(header) or not r[col["Depth"]]:
            continue
        name = r[col["Method"]].strip("'")
        by_method.setdefault(name, []).append(
            (int(r[col["Depth"]]), micros(r[col["Mean"]]), kilobytes(r[col["Allocated"]]))
        )
    names = list(by_method)
    xs = sorted({d for vals in by_method.values() for d, _, _ in vals})
    times = [(n, [t for _, t, _ in sorted(by_method[n])]) for n in names]
    allocs = [(n, [a for _, _, a in sorted(by_method[n])]) for n in names]
    width = (W - LEFT - RIGHT - 60) / 2
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']
    svg += panel(LEFT, width, times, xs, "time per occurrence", "µs")
    svg += panel(LEFT + width + 60, width, allocs, xs, "allocated per occurrence", "KB")
    for i, n in enumerate(names):
        y = TOP + 20 + i * 18
        svg.append(f'<rect x="{W - RIGHT + 20}" y="{y - 9}" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>')
        svg.append(f'<text x="{W - RIGHT + 38}" y="{y + 1}">{esc(n)}</text>')
    svg.append("</svg>")
    open(target, "w", encoding="utf-8").write("\n".join(svg) + "\n")


def load(source, target):
    rows = table_rows(source)
    header = rows[0]
    col = {name: i for i, name in enumerate(header)}
    bars = []
    for r in rows[1:]:
        if len(r) < len(header) or "on/off" not in col:
            continue
        m = re.match(r"([\d.]+) \[([\d.]+)–([\d.]+)\]", r[col["on/off"]])
        t = re.search(r"([\d.]+)", r[col["target"]])
        if m and t:
            bars.append((r[0], float(m.group(1)), float(m.group(2)), float(m.group(3)), float(t.group(1))))
        if r[0] == "figure" and bars:
            break
    height = TOP + 30 * len(bars) + BOTTOM
    left, width = 330, W - 330 - 40
    lo, hi = 0.0, max(1.2, max(b[3] for b in bars) + 0.05)

    def px(v):
        return left + (v - lo) / (hi - lo) * width

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left + width / 2}" y="18" text-anchor="middle" font-weight="bold">on/off: median, range of the rounds, target (|)</text>']
    for v in [0.0, 0.25, 0.5, 0.75, 1.0]:
        svg.append(f'<line x1="{px(v)}" x2="{px(v)}" y1="{TOP}" y2="{height - BOTTOM}" stroke="#ddd"/>')
        svg.append(f'<text x="{px(v)}" y="{height - BOTTOM + 16}" text-anchor="middle" font-size="11">{v:g}</text>')
    for i, (name, med, rlo, rhi, tgt) in enumerate(bars):
        y = TOP + 30 * i + 8
        color = COLORS[0] if med >= tgt else COLORS[3]
        label = name.split(" (each")[0][:52]
        svg.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end" font-size="11">{esc(label)}</text>')
        svg.append(f'<rect x="{px(0)}" y="{y}" width="{px(med) - px(0):.1f}" height="16" fill="{color}"/>')
        svg.append(f'<line x1="{px(rlo):.1f}" x2="{px(rhi):.1f}" y1="{y + 8}" y2="{y + 8}" stroke="black"/>')
        svg.append(f'<line x1="{px(tgt):.1f}" x2="{px(tgt):.1f}" y1="{y - 3}" y2="{y + 19}" stroke="black" stroke-width="2"/>')
    svg.append("</svg>")
    open(target, "w", encoding="utf-8").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("depth", "load"):
        sys.exit(__doc__)
    {"depth": depth, "load": load}[sys.argv[1]](sys.argv[2], sys.argv[3])
