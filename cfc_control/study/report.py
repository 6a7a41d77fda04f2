"""A study's outputs: ``results.md`` (table), ``results.csv`` (every seed) and
``returns_vs_period.png`` (return against the control period).

Each cell of the table is the mean ± std over seeds of each seed's mean return over the
evaluation episodes (std over seeds with ddof=0, as ``evaluation`` reports its std; n seeds shown
when a cell has fewer than the plan's). The plot draws the fixed-period timings as one line per
model with a ± std band over seeds on a log period axis, and the varying timings beside them.
"""

from __future__ import annotations

import csv
import io
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from cfc_control.files import atomic_path, atomic_write_text
from cfc_control.study.jobs import StudyPlan
from cfc_control.tasks import parse_timing, task_info

CSV_FIELDS = ("task", "algo", "model", "seed", "timing", "timing_spec", "period_s", "episodes", "mean", "std",
              "mean_length")


def aggregate(evals: Sequence[Dict[str, Any]]) -> Dict[Tuple[str, str], Tuple[float, float, int]]:
    """(model, timing) -> (mean over seeds, std over seeds, number of seeds) of per-seed means."""
    per: Dict[Tuple[str, str], List[float]] = defaultdict(list)
    for r in evals:
        per[(r["model"], r["timing"])].append(float(r["mean"]))
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in per.items()}


def csv_text(plan: StudyPlan, evals: Sequence[Dict[str, Any]], experts: Sequence[Dict[str, Any]] = ()) -> str:
    """One row per (model, seed, timing), then one per timing for the expert (model "expert",
    no seed)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in [*evals, *experts]:
        writer.writerow({"task": plan.task, "algo": plan.algo, "model": r["model"], "seed": r.get("seed", ""),
                         "timing": r["timing"], "timing_spec": r["timing_spec"],
                         "period_s": "" if r["period_s"] is None else r["period_s"], "episodes": r["episodes"],
                         "mean": round(r["mean"], 3), "std": round(r["std"], 3),
                         "mean_length": round(float(np.mean(r["lengths"])), 1)})
    return buf.getvalue()


def _fmt(x: float) -> str:
    if abs(x) < 5e-4:  # float noise of identical returns (1e-13) reads as 0
        return "0"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def table(plan: StudyPlan, evals: Sequence[Dict[str, Any]], experts: Sequence[Dict[str, Any]] = ()) -> str:
    """The markdown table: rows models, columns timings, best mean per column in bold (ties
    included); timings beyond the issue's minimum grid are marked with *. The expert's returns
    (mean ± std over episodes), when given, close the table as a reference row, never bold."""
    agg = aggregate(evals)
    heads = [t.name + ("" if t.required else "*") for t in plan.timings]
    lines = ["| model | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    best = {t.name: max((agg[(m, t.name)][0] for m in plan.models if (m, t.name) in agg), default=None)
            for t in plan.timings}
    for m in plan.models:
        cells = []
        for t in plan.timings:
            if (m, t.name) not in agg:
                cells.append("–")
                continue
            mean, std, n = agg[(m, t.name)]
            text = f"{_fmt(mean)} ± {_fmt(std)}" + (f" (n={n})" if n < len(plan.seeds) else "")
            top = best[t.name] is not None and bool(np.isclose(mean, best[t.name], rtol=1e-9, atol=1e-9))
            cells.append(f"**{text}**" if top else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if experts:
        by_timing = {r["timing"]: r for r in experts}
        cells = [f"_{_fmt(by_timing[t.name]['mean'])} ± {_fmt(by_timing[t.name]['std'])}_" if t.name in by_timing
                 else "–" for t in plan.timings]
        lines.append(f"| _expert ({experts[0]['expert'].split('/')[-1]}, full state)_ | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _wall_time(meta: Dict[str, Any]) -> str:
    walls = meta.get("invocation_walls") or [meta.get("wall_s", 0.0)]
    text = f"Wall time: {sum(walls):.0f} s on {meta.get('backend', '?')}"
    if len(walls) > 1:  # resumed or extended studies: each invocation did only what was missing
        text += f", over {len(walls)} invocations ({', '.join(f'{w:.0f} s' for w in walls)})"
    return text


def markdown(plan: StudyPlan, trains: Sequence[Dict[str, Any]], evals: Sequence[Dict[str, Any]],
             meta: Dict[str, Any], experts: Sequence[Dict[str, Any]] = ()) -> str:
    """The whole results.md: table, timing definitions, training summary and provenance."""
    info = task_info(plan.task)
    short = plan.task.split("/")[-1].split("-v")[0]
    out = [f"# Timing study: {short} ({plan.algo})", "",
           f"Return on `{plan.task}` (nominal period {plan.nominal_dt:g} s; trained under its own timing, "
           f"{info['timing']} = `{info['timing_spec']}`), evaluated under each timing. Each cell: mean ± std "
           f"over {len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}) of each seed's mean return over "
           f"{plan.episodes} episodes (the same reset seeds for every policy). Best mean per column in bold; "
           f"* marks timings beyond the issue's minimum grid (nominal, 0.5x, 2x, Jitter, Irregular)."
           + (" The last row is the demonstrator itself (it acts from the full simulator state, the "
              "policies from positions only; mean ± std over the same episodes): a reference, not a "
              "competitor." if experts else ""), "",
           table(plan, evals, experts), "",
           f"Command: `{meta.get('command', '?')}`  ",
           _wall_time(meta) + f"; written {time.strftime('%Y-%m-%d %H:%M %Z')}.", "",
           "## Timings", "", "| timing | relative to nominal | seconds | period |", "|---|---|---|---|"]
    for t in plan.timings:
        kind = "fixed" if t.period_s is not None else "varies every step"
        out.append(f"| {t.name}{'' if t.required else '*'} | `{t.relative}` | `{t.spec}` | {kind} |")
    out += ["", "## Training", "",
            f"Training flags beyond `python -m cfc_control.train` defaults: "
            f"`{' '.join(plan.train_args) or 'none'}`. Per model, over seeds:", "",
            "| model | parameters | training time (s) | final val loss |", "|---|---:|---:|---:|"]
    by_model: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for r in trains:
        by_model[r["model"]].append(r)
    for m in plan.models:
        rs = by_model.get(m, [])
        if not rs:
            out.append(f"| {m} | – | – | – |")
            continue
        times = [r["training_time_s"] for r in rs if r.get("training_time_s") is not None]
        losses = [r["final"]["val_loss"] for r in rs if (r.get("final") or {}).get("val_loss") is not None]
        time_cell = f"{np.mean(times):.0f}" if times else "–"
        loss_cell = f"{np.mean(losses):.4f}" if losses else "–"
        out.append(f"| {m} | {rs[0].get('parameters', '–')} | {time_cell} | {loss_cell} |")
    if trains:
        runs = Path(trains[0]["run_dir"]).parent
        if runs.is_relative_to(Path.cwd()):  # a path in the checkout reads better relative to it
            runs = runs.relative_to(Path.cwd())
        out += ["", "Each run's own command is in its card (`<run_dir>/policy/card.json`); run directories: "
                f"`{runs}`."]
    if meta.get("failures"):
        out += ["", "## Failed jobs", ""] + [f"- {k}: {v}" for k, v in meta["failures"].items()]
    return "\n".join(out) + "\n"


def plot(plan: StudyPlan, evals: Sequence[Dict[str, Any]], path: Path,
         experts: Sequence[Dict[str, Any]] = ()) -> Optional[Path]:
    """Left: return against the fixed period (log axis), mean ± std band over seeds per model,
    the training timing's period range shaded. Right (when the grid has any): the varying
    timings, mean ± std per model. The expert in black. None when the grid has no timing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed = sorted((t for t in plan.timings if t.period_s is not None), key=lambda t: t.period_s)
    varying = [t for t in plan.timings if t.period_s is None]
    if not plan.timings:
        return None
    agg = aggregate(evals)
    ref = {r["timing"]: r["mean"] for r in experts}
    panels = [p for p in (fixed, varying) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 + 2.5 * (len(panels) - 1), 4.5), sharey=True, squeeze=False,
                             gridspec_kw={"width_ratios": [3 if p is fixed else max(len(p), 1.5) for p in panels]})
    colors = {m: f"C{i}" for i, m in enumerate(plan.models)}
    short = plan.task.split("/")[-1].split("-v")[0]
    if fixed:
        ax = axes[0][0]
        train_timing = parse_timing(task_info(plan.task)["timing_spec"])
        ax.axvspan(train_timing.low / plan.nominal_dt,
                   max(train_timing.high, train_timing.low * 1.02) / plan.nominal_dt,
                   color="0.9", label=f"training periods ({task_info(plan.task)['timing']})")
        for m in plan.models:
            pts = [(t.period_s / plan.nominal_dt, *agg[(m, t.name)][:2]) for t in fixed if (m, t.name) in agg]
            if pts:
                x, mean, std = (np.array(v) for v in zip(*pts))
                ax.plot(x, mean, marker="o", color=colors[m], label=m)
                ax.fill_between(x, mean - std, mean + std, color=colors[m], alpha=0.2)
        pts = [(t.period_s / plan.nominal_dt, ref[t.name]) for t in fixed if t.name in ref]
        if pts:
            ax.plot(*zip(*pts), color="k", linestyle="--", marker="x", label="expert (full state)")
        ax.set_xscale("log")
        ticks = [t.period_s / plan.nominal_dt for t in fixed]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{x:g}x" for x in ticks])
        ax.minorticks_off()
        ax.set_xlabel(f"fixed control period (x nominal {plan.nominal_dt:g} s)")
        ax.legend(fontsize=8)
    if varying:
        ax = axes[0][-1]
        width = 0.6 / max(len(plan.models), 1)
        for i, m in enumerate(plan.models):
            pts = [(j, *agg[(m, t.name)][:2]) for j, t in enumerate(varying) if (m, t.name) in agg]
            if pts:
                x, mean, std = (np.array(v, dtype=float) for v in zip(*pts))
                ax.errorbar(x - 0.3 + (i + 0.5) * width, mean, yerr=std, fmt="o", color=colors[m], capsize=3,
                            label=None if fixed else m)
        pts = [(j, ref[t.name]) for j, t in enumerate(varying) if t.name in ref]
        if pts:
            ax.plot(*zip(*pts), linestyle="none", color="k", marker="x", markersize=9,
                    label=None if fixed else "expert (full state)")
        ax.set_xticks(range(len(varying)))
        ax.set_xticklabels([t.name for t in varying])
        ax.set_xlim(-0.6, len(varying) - 0.4)
        ax.set_xlabel("varying period (see results.md)")
        if not fixed:
            ax.legend(fontsize=8)
    for ax in axes[0]:
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"return (mean ± std over {len(plan.seeds)} seeds)")
    flags = f" ({' '.join(plan.train_args)})" if plan.train_args else ""
    fig.suptitle(f"{short}, {plan.algo}{flags}: return against control period")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_report(plan: StudyPlan, trains: Sequence[Dict[str, Any]], evals: Sequence[Dict[str, Any]],
                 meta: Dict[str, Any], experts: Sequence[Dict[str, Any]] = ()) -> Dict[str, Path]:
    """Write results.md, results.csv and returns_vs_period.png into ``plan.out``; returns their
    paths. ``experts``: the expert's evaluations (reference row and dashed line), if any."""
    plan.out.mkdir(parents=True, exist_ok=True)
    paths = {"md": atomic_write_text(plan.out / "results.md", markdown(plan, trains, evals, meta, experts)),
             "csv": atomic_write_text(plan.out / "results.csv", csv_text(plan, evals, experts))}
    png = plot(plan, evals, plan.out / "returns_vs_period.png", experts)
    if png is not None:
        paths["png"] = png
    return paths
