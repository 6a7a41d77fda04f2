"""The static summary figure of a rollout (``--plots``), for papers and reports.

(a) the hidden state over simulated time, grouped for an NCP; (b) the actions, held over each
period (zero-order hold, as the env applies them); (c) the running return; (d) the distribution
of the control periods the policy was given; (e) traces of the most active neurons of each group.
Everything is against simulated time, so irregular periods show where they fell.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cfc_control.files import PathLike, atomic_path
from cfc_control.viewer.panels import (
    GROUP_COLORS,
    action_limits,
    channel_colors,
    draw_state_heatmap,
    mark_action_bounds,
    state_limit,
)
from cfc_control.viewer.rollout import Rollout

FORMATS = (".png", ".svg", ".pdf")
TRACES_PER_GROUP = {"inter": 3, "command": 3, "motor": 4}
MAX_TRACES = 10


def time_edges(rollout: Rollout) -> np.ndarray:
    """(T + 1,) simulated times bounding each step's period: step t spans [edges[t], edges[t+1])."""
    return np.append(rollout.time, rollout.time[-1] + rollout.period[-1])


def pick_traces(rollout: Rollout) -> List[Tuple[str, int, int]]:
    """The neurons to trace, as (group, neuron id, state position): per group the ones whose
    state varies most (``TRACES_PER_GROUP``), at most ``MAX_TRACES`` in all."""
    std = rollout.hidden.std(axis=0) if rollout.steps else np.zeros(rollout.hidden.shape[1])
    picks: List[Tuple[str, int, int]] = []
    layout = rollout.layout
    per_group = TRACES_PER_GROUP if layout.grouped else {}
    for g in layout.groups:
        k = per_group.get(g.name, MAX_TRACES)
        order = sorted(range(len(g)), key=lambda i: -std[g.state_index[i]])[:k]
        picks += [(g.name, g.neuron_ids[i], g.state_index[i]) for i in sorted(order)]
    return picks[:MAX_TRACES]


def save_summary_plot(rollout: Rollout, path: PathLike, title: Optional[str] = None) -> Figure:
    """Draw the summary figure of ``rollout`` to ``path`` (.png, .svg or .pdf, written
    atomically). Returns the figure (already saved)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"summary plot must be a .png, .svg or .pdf file, got {str(path)!r}")
    if rollout.steps == 0:
        raise ValueError("the rollout has no steps: nothing to plot")
    fig = Figure(figsize=(10.0, 8.6), dpi=150, facecolor="white")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 2, height_ratios=[1.35, 1.0, 1.0], left=0.09, right=0.92, top=0.9,
                            bottom=0.07, hspace=0.42, wspace=0.28)
    edges = time_edges(rollout)
    fs = 8.5

    ax = fig.add_subplot(grid[0, :2])
    if rollout.hidden.shape[1]:
        artist = draw_state_heatmap(ax, rollout, x_edges=edges, fontsize=fs - 1)
        # The colour bar sits outside the axes so the heatmap spans the same width as the panels.
        bar = fig.colorbar(artist, cax=ax.inset_axes((1.012, 0.0, 0.014, 1.0)))
        bar.set_label("state", fontsize=fs - 1)
        bar.ax.tick_params(labelsize=fs - 1.5)
    else:
        ax.text(0.5, 0.5, "no recurrent state", ha="center", va="center", transform=ax.transAxes, fontsize=fs)
        ax.set_yticks([])
    heat = ax
    _finish(ax, "(a) hidden state", "simulated time (s)", None, fs)

    ax = fig.add_subplot(grid[1, 0], sharex=heat)
    colors = channel_colors(rollout.actions.shape[1])
    for k in range(rollout.actions.shape[1]):
        ax.stairs(rollout.actions[:, k], edges, color=colors[k], linewidth=0.9, label=f"a{k}", baseline=None)
    ax.set_ylim(*action_limits(rollout))
    mark_action_bounds(ax, rollout)
    ax.legend(fontsize=fs - 2, ncol=min(rollout.actions.shape[1], 8), loc="upper center", frameon=False,
              bbox_to_anchor=(0.5, 1.13), handlelength=1.0, columnspacing=0.8)
    _finish(ax, "(b) actions", "simulated time (s)", "action", fs, title_pad=14)

    ax = fig.add_subplot(grid[1, 1], sharex=heat)
    ax.plot(edges, np.append(0.0, rollout.returns), color="#D55E00", linewidth=1.2)
    ax.axhline(0.0, color="#bbbbbb", linewidth=0.6, zorder=0)
    _finish(ax, f"(c) running return (total {rollout.total_return:.1f})", "simulated time (s)", "return", fs)

    ax = fig.add_subplot(grid[2, 0])
    _dt_histogram(ax, rollout, fs)

    ax = fig.add_subplot(grid[2, 1], sharex=heat)
    _traces(ax, rollout, fs)

    heat.set_xlim(edges[0], edges[-1])
    end = "terminated" if rollout.terminated else ("truncated" if rollout.truncated else "stopped")
    fig.suptitle(title or rollout.env_id, fontsize=fs + 2, y=0.985)
    fig.text(0.5, 0.945, f"timing {rollout.timing} · seed {rollout.seed} · {rollout.steps} steps, "
             f"{edges[-1]:.2f} s simulated ({end})", ha="center", fontsize=fs, color="#444444")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix[1:], facecolor="white")
    return fig


def _dt_histogram(ax: Axes, rollout: Rollout, fs: float) -> None:
    # Step 0's Δt is the nominal period by convention (nothing has elapsed yet): not a measurement.
    ms = (rollout.dt[1:] if rollout.steps > 1 else rollout.dt) * 1e3
    nominal = rollout.nominal_dt * 1e3
    lo, hi = float(ms.min()), float(ms.max())
    if hi - lo < 1e-9 * max(abs(hi), 1.0):
        bins = np.array([lo - 0.02 * nominal, hi + 0.02 * nominal])
    else:
        bins = np.histogram_bin_edges(ms, bins=min(40, max(5, int(np.sqrt(ms.size)))))
    ax.hist(ms, bins=bins, color="#0072B2", alpha=0.85, edgecolor="white", linewidth=0.4)
    ax.axvline(nominal, color="#555555", linestyle=(0, (3, 2)), linewidth=1.0, label=f"nominal {nominal:g} ms")
    ax.legend(fontsize=fs - 1.5, frameon=False, loc="upper right")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    spread = f"{lo:.1f}-{hi:.1f} ms" if hi > lo else f"{lo:.1f} ms"
    _finish(ax, f"(d) control periods given to the policy ({spread})", "Δt (ms)", "steps", fs)


def _traces(ax: Axes, rollout: Rollout, fs: float) -> None:
    picks = pick_traces(rollout)
    if not picks:
        ax.text(0.5, 0.5, "no recurrent state", ha="center", va="center", transform=ax.transAxes, fontsize=fs)
        ax.set_yticks([])
        _finish(ax, "(e) neuron traces", "simulated time (s)", None, fs)
        return
    x = time_edges(rollout)
    # Each trace is drawn as its deviation from its own mean (the heatmap shows the levels), so
    # lanes of one shared scale do not overlap.
    picked = rollout.hidden[:, [p for _, _, p in picks]]
    deviation = picked - picked.mean(axis=0)
    scale = state_limit(deviation)
    lane = 2.2 * scale
    for i, (group, _, _) in enumerate(picks):
        offset = -i * lane
        ax.stairs(deviation[:, i] + offset, x, baseline=None, color=GROUP_COLORS.get(group, "#333333"),
                  linewidth=0.9)
        ax.axhline(offset, color="#dddddd", linewidth=0.5, zorder=0)
    ax.set_yticks([-i * lane for i in range(len(picks))])
    names = [f"{g} {n}" if rollout.layout.grouped else f"unit {n}" for g, n, _ in picks]
    ax.set_yticklabels(names, fontsize=fs - 2)
    for label, (group, _, _) in zip(ax.get_yticklabels(), picks):
        label.set_color(GROUP_COLORS.get(group, "#333333"))
    ax.set_ylim(-(len(picks) - 0.4) * lane, 0.6 * lane)
    # Scale bar: every lane shares one state scale, so one bar reads them all.
    bar_x = x[-1] + 0.015 * (x[-1] - x[0])
    ax.plot([bar_x, bar_x], [0.0, scale], color="black", linewidth=1.5, clip_on=False)
    ax.text(bar_x, scale / 2, f" {scale:.2g}", va="center", ha="left", fontsize=fs - 2, clip_on=False)
    _finish(ax, "(e) most variable neurons (state minus its mean)", "simulated time (s)", None, fs)


def _finish(ax: Axes, title: str, xlabel: Optional[str], ylabel: Optional[str], fs: float,
            title_pad: float = 4) -> None:
    ax.set_title(title, fontsize=fs, loc="left", pad=title_pad)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=fs - 1)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=fs - 1)
    ax.tick_params(labelsize=fs - 1.5, length=2.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
