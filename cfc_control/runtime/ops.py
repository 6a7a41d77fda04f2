"""The building blocks of the numpy kernels: a step is a fixed list of ufunc / dot calls on
preallocated views ("ops"), built once per batch size and state slot, so one step costs one
Python call per operation and allocates nothing.

Every op writes through a positional ``out`` argument. Activations are described by how they
fold into the matrices around them (:class:`Activation`); matrices that read a vector with a
trailing 1 carry their bias as their last row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, List, Optional

import numpy as np
from scipy.special import erf, expit

from cfc_control.runtime.kernel_contract import clip_ufunc

Op = Callable[[], object]


@dataclass(frozen=True)
class Activation:
    """``act(v) = post * g(pre * v)``: ``pre`` is folded into the rows of the matrix that makes
    ``v``, ``post`` into the columns of the matrix that reads the activation, and :meth:`ops`
    computes ``g`` from ``z`` (= pre * v) into ``out`` (``tmp`` is scratch of z's shape)."""

    name: str
    pre: float
    post: float

    def ops(self, z: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> List[Op]:
        if self.name in ("lecun_tanh", "tanh"):
            return [partial(np.tanh, z, out)]
        if self.name == "relu":
            return [partial(np.maximum, z, 0.0, out=out)]
        if self.name == "silu":
            return [partial(expit, z, tmp), partial(np.multiply, z, tmp, out)]
        if self.name == "gelu":  # 0.5 v (1 + erf(v / sqrt 2)) = (sqrt2 / 2) z (1 + erf(z)), z = v / sqrt 2
            return [partial(erf, z, tmp), partial(np.add, tmp, 1.0, tmp), partial(np.multiply, z, tmp, out)]
        if self.name == "elu":
            raise ValueError("elu has no numpy kernel")
        raise ValueError(f"no numpy kernel for activation {self.name!r}")


ACTIVATIONS = {
    "lecun_tanh": Activation("lecun_tanh", 0.666, 1.7159),
    "tanh": Activation("tanh", 1.0, 1.0),
    "relu": Activation("relu", 1.0, 1.0),
    "silu": Activation("silu", 1.0, 1.0),
    "gelu": Activation("gelu", 1.0 / math.sqrt(2.0), math.sqrt(2.0) / 2.0),
}


def with_bias_row(weight: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """``(out, in)`` weight and ``(out,)`` bias -> ``(in + 1, out)``, the matrix that maps
    ``[v, 1]`` (a row vector) to ``W v + b``. C-contiguous float64."""
    out = weight.shape[0]
    b = np.zeros(out) if bias is None else bias
    return np.ascontiguousarray(np.concatenate([weight.T, b[None, :]], 0), dtype=np.float64)


def halve_gate_columns(wt: np.ndarray, start: int, n: int) -> None:
    """Scale the time_a and time_b columns of a head matrix (layout [ff1|ff2|time_a|time_b] of
    width n each, from column ``start``) by 1/2, in place: :func:`closed_form_ops` computes the
    gate sigmoid(v) as (1 + tanh(v / 2)) / 2, tanh being several times faster in numpy."""
    wt[:, start + 2 * n : start + 4 * n] *= 0.5


def row_view(a: np.ndarray, batch_size: int) -> np.ndarray:
    """The view an op uses: 1-D for one row (numpy's cheapest path), else the (B, k) array."""
    return a[0] if batch_size == 1 else a


def closed_form_ops(mode: str, pre: np.ndarray, t: np.ndarray, out: np.ndarray, n: int,
                    scratch: np.ndarray, w_tau: Optional[np.ndarray] = None,
                    A: Optional[np.ndarray] = None) -> List[Op]:
    """The CfC update from head pre-activations ``pre`` ((.., 4n) [ff1|ff2|time_a|time_b], or
    (.., n) ff1 in pure mode; time_a / time_b columns halved) and model time ``t`` ((1,) or
    (B, 1)) into ``out`` (.., n). ``pre`` is overwritten; ``scratch`` is (.., n). Same equations as
    :func:`cfc_control.models.cfc_cell.closed_form_parts`."""
    if mode == "pure":
        abs_tau = np.abs(w_tau).reshape(-1)
        amp = A.reshape(-1)
        q = scratch
        return [
            partial(np.abs, pre, q),
            partial(np.add, q, abs_tau, q),
            partial(np.multiply, q, t, q),
            partial(np.negative, q, q),
            partial(np.exp, q, q),
            partial(np.multiply, q, pre, q),
            partial(np.multiply, q, amp, q),
            partial(np.subtract, amp, q, out),
        ]
    f = pre[..., : 2 * n]
    f1, f2 = pre[..., :n], pre[..., n : 2 * n]
    ta, tb = pre[..., 2 * n : 3 * n], pre[..., 3 * n :]
    # The time_a / time_b columns were halved (halve_gate_columns): g = tanh(v / 2) and the gate
    # sigmoid(v) = (1 + g) / 2.
    ops: List[Op] = [
        partial(np.tanh, f, f),
        partial(np.multiply, ta, t, ta),
        partial(np.add, ta, tb, ta),
        partial(np.tanh, ta, ta),
    ]
    if mode == "no_gate":  # h = f1 + s f2 = f1 + (1 + g) f2 / 2
        ops += [partial(np.add, ta, 1.0, ta), partial(np.multiply, ta, f2, ta), partial(np.multiply, ta, 0.5, ta),
                partial(np.add, f1, ta, out)]
    else:  # h = f1 (1 - s) + s f2 = (f1 + f2 + g (f2 - f1)) / 2
        ops += [partial(np.subtract, f2, f1, tb), partial(np.multiply, tb, ta, tb), partial(np.add, f1, f2, f1),
                partial(np.add, f1, tb, f1), partial(np.multiply, f1, 0.5, out)]
    return ops


def lstm_ops(x: np.ndarray, wt: np.ndarray, gates: np.ndarray, c_old: np.ndarray, c_new: np.ndarray,
             h_out: np.ndarray, n: int) -> List[Op]:
    """Mixed memory's LSTM cell: ``gates = x @ wt`` laid out [cand | in | forget(+1 in bias) | out];
    c' = c sigmoid(fg) + tanh(cand) sigmoid(ig); h' = tanh(c') sigmoid(og) into ``h_out``."""
    cand, sig = gates[..., :n], gates[..., n:]
    ig, fg, og = gates[..., n : 2 * n], gates[..., 2 * n : 3 * n], gates[..., 3 * n :]
    return [
        partial(np.dot, x, wt, gates),
        partial(np.tanh, cand, cand),
        partial(expit, sig, sig),
        partial(np.multiply, c_old, fg, c_new),
        partial(np.multiply, cand, ig, cand),
        partial(np.add, c_new, cand, c_new),
        partial(np.tanh, c_new, h_out),
        partial(np.multiply, h_out, og, h_out),
    ]


def action_ops(source: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               wt: Optional[np.ndarray], bias: Optional[np.ndarray], half: np.ndarray,
               center: np.ndarray) -> List[Op]:
    """The action from the model's last features ``source``: a folded final Linear ``wt`` (with
    its bias as last row when ``bias`` is None and ``source`` ends with the 1 column), or the
    affine map ``center + half * source``; then clipped to [lo, hi] into ``y``."""
    if wt is not None:
        ops: List[Op] = [partial(np.dot, source, wt, y)]
        if bias is not None:
            ops.append(partial(np.add, y, bias, y))
    else:
        ops = [partial(np.multiply, source, half, y), partial(np.add, y, center, y)]
    ops.append(partial(clip_ufunc, y, lo, hi, y))
    return ops


def run(ops: List[Op]) -> None:
    for op in ops:
        op()


__all__ = ["Activation", "ACTIVATIONS", "Op", "with_bias_row", "halve_gate_columns", "row_view", "closed_form_ops", "lstm_ops", "action_ops", "run"]
