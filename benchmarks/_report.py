"""The benchmark's outputs: the terminal table, the JSON results, the PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["chart", "table", "write_json"]


def _num(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(results: dict[str, Any]) -> str:
    """Every workload's rows, with ratios to micrograd and to PyTorch, then the targets."""
    lines = []
    for name, wl in results["workloads"].items():
        nodes = wl.get("graph_nodes")
        lines.append(f"\n== {name}: {wl['title']}" + (f" ({nodes:,} graph nodes a step)" if nodes else ""))
        header = (
            f"{'system':<17} {'mode':<24} {'median ms':>10} {'min ms':>9} {'max ms':>9} {'steps':>5} "
            f"{'x micrograd':>11} {'/ PyTorch':>9} {'compile s':>9} {'peak MB':>8} {'final loss':>20} "
            f"{'acc':>5}  agrees"
        )
        lines += [header, "-" * len(header)]
        for r in wl["results"]:
            if "skipped" in r:
                lines.append(f"{r['system']:<17} {r.get('mode', ''):<24} skipped: {r['skipped']}")
                continue
            t = r["ms_per_step"]
            acc = r.get("accuracy")
            agrees = {True: "yes", False: "NO"}.get(r.get("agrees"), "-")
            if r.get("bit_identical"):
                agrees += " (bit-identical)"
            elif r.get("rel_diff") is not None:
                agrees += f" (rel {r['rel_diff']:.1e})"
            lines.append(
                f"{r['system']:<17} {r['mode']:<24} {t['median']:>10.3f} {t['min']:>9.3f} {t['max']:>9.3f} "
                f"{r['steps_run']:>5} {_num(r.get('x_micrograd'), '>11,.0f')} {_num(r.get('vs_torch'), '>9.2f')} "
                f"{_num(r.get('compile_s'), '>9.2f')} {_num(r.get('peak_mb'), '>8.1f')} "
                f"{r['final_loss']:>20.16g} {_num(None if acc is None else 100 * acc, '>4.0f')}{'%' if acc is not None else ' '}"
                f"  {agrees}"
            )
        lines += _parts_table(wl["results"])
        if wl.get("capture"):
            lines.append(_capture_line(wl["capture"]))
        if wl.get("note"):
            lines.append(wl["note"])
    if results.get("digits"):
        lines += _digits_table(results["digits"])
    probes = results.get("probes", {}).get("compile")
    if probes:
        cold, cached = probes.get("cold", {}), probes.get("cached", {})
        lines.append(
            "\ncompile_step on moons (Numba): cold cache "
            f"{_num(cold.get('compile_step_s'), '.2f')} s (backend import {_num(cold.get('import_backend_s'), '.2f')} s), "
            f"cached {_num(cached.get('compile_step_s'), '.2f')} s (import {_num(cached.get('import_backend_s'), '.2f')} s)"
        )
        jax = probes.get("jax", {})
        lines.append(
            "cold start, CPU seconds of a fresh process (user + sys): import "
            f"{_num(cold.get('import_cpu_s'), '.1f')} cold / {_num(cached.get('import_cpu_s'), '.1f')} cached; "
            f"to the first compiled step {_num(cold.get('to_first_step_cpu_s'), '.1f')} cold "
            f"({cold.get('compilations', '?')} Numba compilations) / {_num(cached.get('to_first_step_cpu_s'), '.1f')} cached; "
            f"JAX to its first jitted step {_num(jax.get('to_first_step_cpu_s'), '.1f')}"
        )
    micro = results.get("micro")
    if micro:
        lines.append("\nmicrobenchmarks")
        for system, m in micro.items():
            c, b = m["construction"], m["chain_backward"]
            back = b.get("error") or f"{b['seconds'] * 1e3:.1f} ms ({b['nodes_per_s'] / 1e6:.1f} M nodes/s)"
            lines.append(
                f"  {system:<17} build {c['ops_per_s'] / 1e6:6.2f} M ops/s   backward on a {b['nodes']:,}-node chain: {back}"
            )
    lines.append("\ntargets")
    for t in results["targets"]:
        mark = {True: "MET   ", False: "MISSED", None: "n/a   "}[t["met"]]
        lines.append(f"  [{mark}] {t['name']}: {t['value']}  (target {t['target']})")
    return "\n".join(lines)


def _capture_line(capture: dict[str, Any]) -> str:
    """The numba compiled system's capture (compile_step in a fresh process, kernels loaded)."""
    if "error" in capture:
        return f"capture (compile_step, numba, fresh process): failed: {capture['error']}"
    return (
        f"capture (compile_step, numba, fresh process): {capture['capture_s']:.2f} s, "
        f"peak memory +{capture['peak_mb']:.0f} MB"
    )


def _parts_table(rows: list[dict[str, Any]]) -> list[str]:
    """Where an eager step goes: the median ms of each part, for the rows that time them."""
    timed = [r for r in rows if r.get("parts_ms")]
    if not timed:
        return []
    parts = list(timed[0]["parts_ms"])
    lines = ["", f"{'eager step, median ms':<42}" + "".join(f"{part:>10}" for part in parts)]
    for r in timed:
        lines.append(
            f"  {r['system'] + ', ' + r['mode']:<40}" + "".join(f"{r['parts_ms'][p]:>10.3f}" for p in parts)
        )
    return lines


def _parts_panel(ax: Any, workload: str, rows: list[dict[str, Any]]) -> None:
    """Where an eager step goes: each part's share of the step, one bar per system, total ms at right."""
    parts = list(rows[0]["parts_ms"])
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    left = [0.0] * len(rows)
    for part, colour in zip(parts, colours, strict=False):
        shares = [r["parts_ms"][part] / sum(r["parts_ms"].values()) for r in rows]
        ax.barh(range(len(rows)), shares, left=left, color=colour, label=part)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_yticks(range(len(rows)), [f"{r['system']} — {r['mode']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.25)
    ax.set_xlabel("share of the eager step's time")
    for i, r in enumerate(rows):
        ax.text(1.01, i, f"{sum(r['parts_ms'].values()):.3g} ms", va="center", fontsize=7)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{workload}: where an eager step goes", fontsize=9, loc="left")


def _digits_table(digits: dict[str, Any]) -> list[str]:
    """The digits training's rows: time per step, time to 95% test accuracy, final accuracy and loss."""
    lines = [f"\n== digits: {digits['title']}"]
    header = (
        f"{'system':<17} {'mode':<24} {'median ms':>10} {'min ms':>9} {'max ms':>9} {'steps':>5} "
        f"{'/ PyTorch':>9} {'compile s':>9} {'to 95% s':>8} {'/ PyTorch':>9} {'train s':>8} "
        f"{'test acc':>8} {'last-epoch loss':>16}  agrees"
    )
    lines += [header, "-" * len(header)]
    for r in digits["results"]:
        if "skipped" in r:
            lines.append(f"{r['system']:<17} {r.get('mode', ''):<24} skipped: {r['skipped']}")
            continue
        t = r["ms_per_step"]
        lines.append(
            f"{r['system']:<17} {r['mode']:<24} {t['median']:>10.3f} {t['min']:>9.3f} {t['max']:>9.3f} "
            f"{r['steps_run']:>5} {_num(r.get('vs_torch'), '>9.2f')} {_num(r.get('compile_s'), '>9.2f')} "
            f"{_num(r.get('seconds_to_95'), '>8.2f')} {_num(r.get('to_95_vs_torch'), '>9.2f')} "
            f"{r['train_s']:>8.2f} {100 * r['test_accuracy']:>7.1f}% {r['final_loss']:>16.10g}  "
            f"{'yes' if r['agrees'] else 'NO'} (rel {r['rel_diff']:.1e})"
        )
    lines.append(
        "to 95%: training seconds (steps only; add compile s for the capture) until the first epoch "
        "that ends at >= 95% test accuracy; agrees: the last epoch's mean loss, relative to gradspec's"
    )
    return lines


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")


def chart(results: dict[str, Any], path: Path) -> None:
    """A log-scale bar chart of the median time per step, one panel per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = dict(results["workloads"])
    if results.get("digits"):
        workloads["digits"] = results["digits"]
    broken_down = {name: [r for r in wl["results"] if r.get("parts_ms")] for name, wl in workloads.items()}
    broken_down = {name: rows for name, rows in broken_down.items() if rows}
    panels = len(workloads) + len(broken_down)
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2.2 + 3.4 * panels), squeeze=False)
    colours = {
        "micrograd": "#9e9e9e",
        "gradspec": "#1f77b4",
        "PyTorch": "#ee4c2c",
        "NumPy": "#4d77cf",
        "JAX": "#7b3fb1",
        "CasADi": "#2ca02c",
    }
    for ax, (name, wl) in zip(axes[: len(workloads), 0], workloads.items(), strict=True):
        rows = [r for r in wl["results"] if "ms_per_step" in r]
        labels = [f"{r['system']} — {r['mode']}" for r in rows]
        values = [r["ms_per_step"]["median"] for r in rows]
        colour = [next((c for k, c in colours.items() if r["system"].startswith(k)), "#333333") for r in rows]
        hatch = ["//" if "compiled" in r["mode"] else "" for r in rows]
        bars = ax.barh(range(len(rows)), values, color=colour, hatch=hatch, edgecolor="white")
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("median time per training step (ms, log scale)")
        ax.set_title(f"{name}: {wl['title']}", fontsize=9, loc="left")
        for bar, r in zip(bars, rows, strict=True):
            ratio = r.get("vs_torch")
            text = f" {r['ms_per_step']['median']:.3g} ms" + (f"  ({ratio:.3g}x PyTorch)" if ratio else "")
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=7)
        ax.set_xlim(min(values) / 3, max(values) * 300)
    for ax, (name, rows) in zip(axes[len(workloads) :, 0], broken_down.items(), strict=True):
        _parts_panel(ax, name, rows)
    machine = results["machine"]
    fig.suptitle(
        f"gradspec benchmark ({'quick' if results['quick'] else 'full'}) on {machine['cpu']}, "
        f"{machine['cores']} cores, float64, one thread each",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
