"""The panels beside the video: hidden state heatmap, actions, Δt and running return over the
episode, with a cursor at the current step.

The figure is drawn once, with matplotlib's Agg canvas (no pyplot, no global backend), into an
RGB image; each video frame is that image with the steps after the cursor faded and a cursor line
painted in numpy: a few array copies per frame instead of a matplotlib redraw. The same drawing
functions serve the static summary figure (:mod:`cfc_control.viewer.summary`).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cfc_control.viewer.rollout import Rollout

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
GROUP_COLORS: Dict[str, str] = {
    "sensory": "#777777",
    "inter": "#009E73",
    "command": "#E69F00",
    "motor": "#CC79A7",
    "neurons": "#56B4E9",
    "hidden": "#56B4E9",
    "hidden (h)": "#56B4E9",
}
STATE_CMAP = "RdBu_r"  # diverging, zero white: the sign of a state matters
CURSOR_RGB = np.array([20, 20, 20], dtype=np.uint8)
FADE = 0.6  # how far the future (after the cursor) is blended towards white
# Panel layout in inches at the reference size; ``dpi`` scales it to any pixel size.
REFERENCE_INCHES = 4.8


def state_limit(hidden: np.ndarray) -> float:
    """Symmetric colour limit for a state heatmap: the 99th percentile of |state|, so that one
    outlier does not wash out the rest (at least 1e-6)."""
    h = np.abs(np.asarray(hidden, dtype=np.float64))
    if h.size == 0:
        return 1.0
    return float(max(np.percentile(h, 99.0), 1e-6))


def group_bounds(rollout: Rollout) -> List[Tuple[str, int, int]]:
    """(name, first row, end row) of each neuron group in the heatmap's row order."""
    out, row = [], 0
    for g in rollout.layout.groups:
        out.append((g.name, row, row + len(g)))
        row += len(g)
    return out


def draw_state_heatmap(ax: Axes, rollout: Rollout, x_edges: Optional[np.ndarray] = None,
                       fontsize: float = 6.5):
    """The hidden state over the episode, (neurons, steps), grouped; rows in the layout's display
    order. ``x_edges`` (T + 1,) places the columns (e.g. at simulated times); by default column t
    spans [t - 0.5, t + 0.5]. Returns the image artist (for a colour bar)."""
    data = rollout.hidden[:, rollout.layout.display_order()].T
    lim = state_limit(data)
    n_rows, n_steps = data.shape
    if x_edges is None:
        artist = ax.imshow(data, cmap=STATE_CMAP, vmin=-lim, vmax=lim, aspect="auto",
                           interpolation="antialiased", extent=(-0.5, n_steps - 0.5, n_rows - 0.5, -0.5))
    else:
        artist = ax.pcolormesh(x_edges, np.arange(n_rows + 1) - 0.5, data, cmap=STATE_CMAP,
                               vmin=-lim, vmax=lim, shading="flat", rasterized=True)
        ax.set_ylim(n_rows - 0.5, -0.5)
    bounds = group_bounds(rollout)
    for _, start, _ in bounds[1:]:
        ax.axhline(start - 0.5, color="black", linewidth=0.8)
    ax.set_yticks([(a + b - 1) / 2 for _, a, b in bounds])
    ax.set_yticklabels([f"{name}\n({b - a})" if rollout.layout.grouped else f"{b - a} units"
                        for name, a, b in bounds], fontsize=fontsize)
    for label, (name, _, _) in zip(ax.get_yticklabels(), bounds):
        label.set_color(_darker(GROUP_COLORS.get(name, "#333333")))
    ax.tick_params(axis="y", length=0)
    return artist


def action_limits(rollout: Rollout) -> Tuple[float, float]:
    """y limits for the actions: the range they used, padded, within the action bounds. A policy
    that makes small corrections around zero is then still readable; the bounds are drawn as
    dashed lines whenever they are in view (see :func:`mark_action_bounds`)."""
    low, high = float(rollout.action_low.min()), float(rollout.action_high.max())
    margin = 0.06 * (high - low)
    a = rollout.actions
    lo, hi = (float(a.min()), float(a.max())) if a.size else (low, high)
    pad = max(0.12 * (hi - lo), 0.02 * (high - low))
    return max(lo - pad, low - margin), min(hi + pad, high + margin)


def mark_action_bounds(ax: Axes, rollout: Rollout) -> None:
    """Dashed lines at the action bounds that fall inside the axes' y range."""
    y0, y1 = ax.get_ylim()
    for bound in np.unique(np.concatenate([rollout.action_low, rollout.action_high])):
        if y0 <= bound <= y1:
            ax.axhline(float(bound), color="#999999", linewidth=0.6, linestyle=(0, (2, 2)), zorder=0)


def draw_actions(ax: Axes, rollout: Rollout, x: np.ndarray, linewidth: float = 0.8) -> list:
    """Each action channel over the episode (y range: :func:`action_limits`). Returns the line
    artists."""
    colors = channel_colors(rollout.actions.shape[1])
    lines = [ax.plot(x, rollout.actions[:, k], color=colors[k], linewidth=linewidth, label=f"a{k}")[0]
             for k in range(rollout.actions.shape[1])]
    ax.set_ylim(*action_limits(rollout))
    mark_action_bounds(ax, rollout)
    ax.axhline(0.0, color="#cccccc", linewidth=0.5, zorder=0)
    return lines


def draw_dt(ax: Axes, rollout: Rollout, x: np.ndarray, linewidth: float = 0.8) -> None:
    """The Δt the policy was given at each step (ms), with the nominal period dashed."""
    ms = rollout.dt * 1e3
    nominal = rollout.nominal_dt * 1e3
    ax.step(x, ms, where="mid", color="#0072B2", linewidth=linewidth)
    ax.axhline(nominal, color="#555555", linewidth=0.7, linestyle=(0, (3, 2)))
    top = max(float(ms.max()) if ms.size else nominal, nominal) * 1.25
    ax.set_ylim(0.0, top)


def draw_return(ax: Axes, rollout: Rollout, x: np.ndarray, linewidth: float = 1.0) -> None:
    """The running return after each step."""
    ax.plot(x, rollout.returns, color="#D55E00", linewidth=linewidth)
    ax.axhline(0.0, color="#bbbbbb", linewidth=0.5, zorder=0)


class PanelStrip:
    """The panels for ``rollout`` as one (height, width, 3) uint8 image, and per-step frames.

    ``frame(t)`` is the image with a cursor at step t and steps after t faded (``faded`` is the
    whole image faded). ``title`` is a line above the panels (e.g. policy, task, timing).
    """

    def __init__(self, rollout: Rollout, width: int, height: int, title: Optional[str] = None) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 16:
                raise ValueError(f"panel {name} must be an int >= 16 pixels, got {value!r}")
        if rollout.steps == 0:
            raise ValueError("the rollout has no steps: nothing to plot")
        self.width, self.height, self.steps = int(width), int(height), rollout.steps
        dpi = min(self.width, self.height) / REFERENCE_INCHES
        fig = Figure(figsize=(self.width / dpi, self.height / dpi), dpi=dpi, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        axes = _draw_panels(fig, rollout, title)
        canvas.draw()
        image = np.asarray(canvas.buffer_rgba())[..., :3]
        self.image = _fit(image, self.height, self.width)
        # Pixel geometry of the plot areas: rows (top-down) of each axes, and the column of each step.
        self._rows = [_pixel_rows(ax, image.shape[0]) for ax in axes]
        x0, x1 = axes[0].get_window_extent().intervalx
        self._x_range = (int(np.floor(x0)), int(np.ceil(x1)))
        cols = axes[0].transData.transform(np.column_stack([np.arange(self.steps), np.zeros(self.steps)]))[:, 0]
        self._cols = np.clip(np.round(cols).astype(np.int64), self._x_range[0], self._x_range[1] - 1)
        self.faded = (self.image * (1.0 - FADE) + 255.0 * FADE).astype(np.uint8)
        fig.clear()

    def column(self, step: int) -> int:
        """The pixel column of step ``step``'s cursor."""
        return int(self._cols[step])

    def frame(self, step: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The panels with the cursor at ``step`` (0 <= step < steps); written into ``out`` if
        given (a (height, width, 3) uint8 array), else a new array."""
        if not 0 <= step < self.steps:
            raise ValueError(f"step must be in [0, {self.steps}), got {step}")
        if out is None:
            img = self.image.copy()
        else:
            np.copyto(out, self.image)
            img = out
        c = self.column(step)
        _, x_end = self._x_range
        for r0, r1 in self._rows:
            img[r0:r1, c + 1 : x_end] = self.faded[r0:r1, c + 1 : x_end]
            img[r0:r1, max(c - 1, 0) : c + 1] = CURSOR_RGB
        return img


def _draw_panels(fig: Figure, rollout: Rollout, title: Optional[str]) -> List[Axes]:
    """Lay out and draw the panels; returns the plot axes top-down (they share the x axis)."""
    has_state = rollout.hidden.shape[1] > 0
    heights = ([2.4] if has_state else []) + [1.2, 0.7, 0.9]
    w_in, h_in = fig.get_size_inches()
    top = 1.0 - (0.26 if title else 0.1) / h_in
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[1.0, 0.03],
                            left=0.66 / w_in, right=1.0 - 0.42 / w_in, top=top, bottom=0.36 / h_in,
                            hspace=0.16, wspace=0.04)
    fs = 6.5
    steps = np.arange(rollout.steps)
    axes: List[Axes] = []
    row = 0
    first: Optional[Axes] = None
    if has_state:
        ax = fig.add_subplot(grid[row, 0])
        artist = draw_state_heatmap(ax, rollout, fontsize=fs)
        cax = fig.add_subplot(grid[row, 1])
        bar = fig.colorbar(artist, cax=cax)
        bar.ax.tick_params(labelsize=fs - 1, length=2, pad=1)
        bar.outline.set_linewidth(0.5)
        ax.set_ylabel("state", fontsize=fs, labelpad=2)
        axes.append(ax)
        first = ax
        row += 1
    ax = fig.add_subplot(grid[row, 0], sharex=first)
    lines = draw_actions(ax, rollout, steps)
    legend_ax = fig.add_subplot(grid[row, 1])
    legend_ax.axis("off")
    legend_ax.legend(lines, [ln.get_label() for ln in lines], loc="center left", fontsize=fs - 1,
                     frameon=False, handlelength=0.9, borderaxespad=0.0, labelspacing=0.15,
                     handletextpad=0.3, bbox_to_anchor=(0.0, 0.5), ncol=1 + len(lines) // 7)
    ax.set_ylabel("action", fontsize=fs, labelpad=2)
    axes.append(ax)
    first = first or ax
    ax = fig.add_subplot(grid[row + 1, 0], sharex=first)
    draw_dt(ax, rollout, steps)
    ax.set_ylabel("Δt (ms)", fontsize=fs, labelpad=2)
    axes.append(ax)
    ax = fig.add_subplot(grid[row + 2, 0], sharex=first)
    draw_return(ax, rollout, steps)
    ax.set_ylabel("return", fontsize=fs, labelpad=2)
    ax.set_xlabel("control step", fontsize=fs, labelpad=1)
    axes.append(ax)
    axes[0].set_xlim(-0.5, rollout.steps - 0.5)
    for a in axes:
        a.tick_params(labelsize=fs - 1, length=2, pad=1)
        for spine in a.spines.values():
            spine.set_linewidth(0.5)
        if a is not axes[-1]:
            a.tick_params(labelbottom=False)
    if title:
        _fitted_title(fig, title, 1.0 - 0.06 / h_in, fs)
    return axes


def _fitted_title(fig: Figure, title: str, y: float, fontsize: float) -> None:
    """A centred title line, its font shrunk (down to 60%) until it fits the figure's width."""
    text = fig.text(0.5, y, title, ha="center", va="top", fontsize=fontsize)
    renderer = fig.canvas.get_renderer()
    width = text.get_window_extent(renderer).width
    available = 0.94 * fig.bbox.width
    if width > available:
        text.set_fontsize(max(fontsize * available / width, 0.6 * fontsize))


def _pixel_rows(ax: Axes, image_height: int) -> Tuple[int, int]:
    """Top-down pixel rows [r0, r1) covered by ``ax``'s plot area."""
    (_, y0), (_, y1) = ax.get_window_extent().get_points()
    r0 = int(np.floor(image_height - y1))
    r1 = int(np.ceil(image_height - y0))
    return max(r0, 0), min(r1, image_height)


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop or pad (white) to exactly (height, width): Agg rounds the canvas size."""
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    out[:h, :w] = image[:h, :w]
    return out


def channel_colors(n: int) -> Sequence[str]:
    """Colours of ``n`` action channels: Okabe-Ito for up to eight, tab20 beyond."""
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
    if n <= len(palette):
        return palette[:n]
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(k % 20) for k in range(n)]


def _darker(color: str) -> Tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return (0.7 * r, 0.7 * g, 0.7 * b)
