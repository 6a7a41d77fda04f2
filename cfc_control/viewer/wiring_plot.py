"""The wiring diagram: sensory inputs, inter, command and motor neurons in columns, left to right,
with every synapse drawn; excitatory and inhibitory synapses differ in colour and line style.
Optionally each neuron is coloured by its mean |activity| over a rollout.

:func:`wiring_diagram` is the data (node positions, the edge list with polarities) and
:func:`draw_wiring` draws it, one path per synapse, so the picture can be checked against the
wiring. Synapses between neurons of one column (an NCP's recurrent command synapses) are arcs
to the right of the column; a self-synapse is a small loop.

Polarity is the wiring's: an LTC starts its reversal potentials from it, while a wired CfC uses
only which synapses exist, so for a CfC the colours say what the wiring drew, not what the
network computes; the figure says so in its footnote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from cfc_control.models.base import RecurrentModel
from cfc_control.files import PathLike, atomic_path
from cfc_control.viewer.neurons import GROUP_ORDER
from cfc_control.viewer.panels import GROUP_COLORS
from cfc_control.wirings import Wiring

NodeKey = Tuple[str, int]  # ("sensory", input index) or ("neuron", neuron id)
EXCITATORY = {"color": "#0072B2", "linestyle": "solid"}
INHIBITORY = {"color": "#D55E00", "linestyle": (0, (2.5, 1.5))}
ACTIVITY_CMAP = "viridis"
FORMATS = (".png", ".svg")


@dataclass(frozen=True)
class Edge:
    """A synapse ``src`` -> ``dst`` with ``polarity`` +1 (excitatory) or -1 (inhibitory);
    ``kind`` "sensory" (from an input) or "internal"."""

    src: NodeKey
    dst: NodeKey
    polarity: int
    kind: str


@dataclass
class WiringDiagram:
    """Node positions (x: column, y in [0, 1], top = 1) by key, the columns (group name, keys
    top-down) and the edges in :meth:`Wiring.synapses` order."""

    positions: Dict[NodeKey, Tuple[float, float]]
    columns: List[Tuple[str, List[NodeKey]]]
    edges: List[Edge]

    def group_of(self, key: NodeKey) -> str:
        for name, keys in self.columns:
            if key in keys:
                return name
        raise KeyError(key)

    def polylines(self) -> List[np.ndarray]:
        """One (P, 2) polyline per edge, in ``edges`` order."""
        return [_edge_path(self.positions[e.src], self.positions[e.dst], e.src == e.dst) for e in self.edges]


def wiring_diagram(wiring: Wiring) -> WiringDiagram:
    """Lay out a built wiring: one column per non-empty group (sensory, inter, command, motor)."""
    if not isinstance(wiring, Wiring):
        raise TypeError(f"wiring_diagram needs a cfc_control.wirings.Wiring, got {type(wiring).__name__}")
    if not wiring.is_built():
        raise ValueError(f"{type(wiring).__name__} is not built: build(input_dim) first (a model builds its wiring)")
    groups = wiring.neuron_groups()
    columns: List[Tuple[str, List[NodeKey]]] = [("sensory", [("sensory", i) for i in groups["sensory"]])]
    columns += [(name, [("neuron", n) for n in groups[name]]) for name in GROUP_ORDER if groups[name]]
    columns = [(name, keys) for name, keys in columns if keys]
    positions: Dict[NodeKey, Tuple[float, float]] = {}
    for x, (_, keys) in enumerate(columns):
        # Spread a column over the height, but keep small groups (motor) from spanning it.
        step = min(1.0 / len(keys), 0.12)
        top = 0.5 + step * (len(keys) - 1) / 2
        for i, key in enumerate(keys):
            positions[key] = (float(x), top - i * step)
    edges = [Edge(("sensory" if kind == "sensory" else "neuron", s), ("neuron", d), int(p), kind)
             for s, d, p, kind in wiring.synapses()]
    return WiringDiagram(positions, columns, edges)


@dataclass
class WiringArtists:
    """What :func:`draw_wiring` drew: one path per synapse in each line collection."""

    excitatory: LineCollection
    inhibitory: LineCollection
    nodes: PathCollection


def draw_wiring(ax: Axes, diagram: WiringDiagram, activity: Optional[Mapping[int, float]] = None,
                fontsize: float = 7.0) -> WiringArtists:
    """Draw ``diagram`` on ``ax``. ``activity`` (neuron id -> value, e.g. mean |state|) colours
    the neurons; without it they take their group's colour. Returns the artists."""
    paths = diagram.polylines()
    exc = [p for p, e in zip(paths, diagram.edges) if e.polarity > 0]
    inh = [p for p, e in zip(paths, diagram.edges) if e.polarity < 0]
    kw = dict(linewidths=0.6, alpha=0.5, zorder=1, capstyle="round")
    exc_lc = LineCollection(exc, colors=EXCITATORY["color"], linestyles=EXCITATORY["linestyle"], **kw)
    inh_lc = LineCollection(inh, colors=INHIBITORY["color"], linestyles=INHIBITORY["linestyle"], **kw)
    ax.add_collection(exc_lc)
    ax.add_collection(inh_lc)

    keys = [k for _, ks in diagram.columns for k in ks]
    xy = np.array([diagram.positions[k] for k in keys])
    n_max = max(len(ks) for _, ks in diagram.columns)
    size = float(np.clip(1500.0 / n_max, 10.0, 80.0))
    face: list = []
    values = []
    for k in keys:
        group = diagram.group_of(k)
        if activity is not None and k[0] == "neuron":
            if k[1] not in activity:
                raise ValueError(f"activity has no value for neuron {k[1]}")
            values.append(float(activity[k[1]]))
            face.append(None)
        else:
            values.append(np.nan)
            face.append(GROUP_COLORS.get(group, "#999999"))
    if activity is not None:
        from matplotlib import colormaps
        from matplotlib.colors import Normalize

        v = np.asarray(values)
        finite = v[np.isfinite(v)]
        norm = Normalize(vmin=0.0, vmax=float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
        cmap = colormaps[ACTIVITY_CMAP]
        face = [f if f is not None else cmap(norm(val)) for f, val in zip(face, values)]
    edge_colors = [GROUP_COLORS.get(diagram.group_of(k), "#999999") for k in keys]
    nodes = ax.scatter(xy[:, 0], xy[:, 1], s=size, c=face, edgecolors=edge_colors, linewidths=1.2, zorder=3)
    if activity is not None:
        nodes.norm, nodes.cmap = norm, cmap  # so a colour bar can be made from the nodes

    header_y = max(y for _, y in diagram.positions.values()) + 0.05
    for x, (name, ks) in enumerate(diagram.columns):
        ax.text(x, header_y, f"{name}\n({len(ks)})", ha="center", va="bottom", fontsize=fontsize,
                color=GROUP_COLORS.get(name, "#333333"), fontweight="bold")
    # Motor labels go right of any recurrent arcs of their column.
    reach: Dict[float, float] = {}
    for path, e in zip(paths, diagram.edges):
        x0 = diagram.positions[e.src][0]
        if x0 == diagram.positions[e.dst][0]:
            reach[x0] = max(reach.get(x0, 0.0), float(path[:, 0].max()) - x0)
    label_step = max(1, int(np.ceil(n_max / 40)))
    for name, ks in diagram.columns:
        if name not in ("sensory", "motor"):
            continue
        for i, k in enumerate(ks):
            if i % label_step and name == "sensory":
                continue
            x, y = diagram.positions[k]
            if name == "sensory":
                text, dx, ha = f"in {k[1]}", -0.09, "right"
            else:
                text, dx, ha = f"motor {k[1]}", 0.07 + reach.get(x, 0.0), "left"
            ax.text(x + dx, y, text, ha=ha, va="center", fontsize=fontsize - 1.5, color="#444444")
    ax.set_xlim(-0.55, len(diagram.columns) - 0.45 + reach.get(float(len(diagram.columns) - 1), 0.0))
    ax.set_ylim(-0.06, 1.16)
    ax.set_axis_off()
    return WiringArtists(exc_lc, inh_lc, nodes)


def save_wiring_plot(source: Union[RecurrentModel, Wiring], path: PathLike,
                     activity: Optional[Mapping[int, float]] = None, title: Optional[str] = None) -> WiringArtists:
    """Draw the wiring of ``source`` (a model with a wiring, or a built wiring) to ``path`` (.png
    or .svg, written atomically); ``activity`` as in :func:`draw_wiring`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D

    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"wiring plot must be a .png or .svg file, got {str(path)!r}")
    wiring = source if isinstance(source, Wiring) else getattr(source, "wiring", None)
    if wiring is None:
        kind = type(source).__name__
        raise ValueError(f"the {kind} model has no wiring (its units are not wired neurons): "
                         "there is no wiring diagram to draw")
    diagram = wiring_diagram(wiring)
    width = 1.9 * len(diagram.columns) + 1.6
    fig = Figure(figsize=(width, 6.0), dpi=150, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.1, 0.84 if activity is not None else 0.96, 0.82))
    artists = draw_wiring(ax, diagram, activity)
    n_exc, n_inh = len(artists.excitatory.get_segments()), len(artists.inhibitory.get_segments())
    handles = [Line2D([], [], linewidth=1.2, **EXCITATORY), Line2D([], [], linewidth=1.2, **INHIBITORY)]
    ax.legend(handles, [f"excitatory ({n_exc})", f"inhibitory ({n_inh})"], loc="lower center",
              bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False, fontsize=8)
    if activity is not None:
        cax = fig.add_axes((0.88, 0.25, 0.018, 0.5))
        bar = fig.colorbar(artists.nodes, cax=cax)
        bar.set_label("mean |state| over the rollout", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(title or f"{type(wiring).__name__}: {wiring.units} neurons, "
                 f"{len(diagram.edges)} synapses", fontsize=10, y=0.985)
    if not isinstance(source, Wiring) and type(source).__name__ == "CfC":
        fig.text(0.5, 0.005, "signals flow left to right; a CfC uses which synapses exist, "
                 "the polarity is the wiring's label", ha="center", va="bottom", fontsize=7, color="#666666")
    else:
        fig.text(0.5, 0.005, "signals flow left to right", ha="center", va="bottom", fontsize=7, color="#666666")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix[1:], facecolor="white")
    return artists


def _edge_path(a: Tuple[float, float], b: Tuple[float, float], self_loop: bool) -> np.ndarray:
    """A straight segment between columns, an arc to the right within a column, a loop for a
    self-synapse."""
    (x0, y0), (x1, y1) = a, b
    if self_loop:
        r = 0.03
        t = np.linspace(0.0, 2.0 * np.pi, 17)
        return np.column_stack([x0 + r - r * np.cos(t), y0 + r * np.sin(t)])
    if abs(x0 - x1) > 1e-9:
        return np.array([[x0, y0], [x1, y1]])
    bulge = 0.12 + 0.35 * abs(y1 - y0)
    t = np.linspace(0.0, 1.0, 17)[:, None]
    p0, p1, p2 = np.array([x0, y0]), np.array([x0 + bulge, (y0 + y1) / 2]), np.array([x1, y1])
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
