"""numpy kernels of the baseline policies: LSTM, GRU (Δt as an input feature) and the MLP.

The features of a step live in ``X = [x | t | h | 1]`` (the observation as ``Folds.write_obs``
writes it, the model time when the model reads it, the state, a constant 1), double-buffered like
the CfC kernel's, so the input and recurrent maps and both biases are one matmul:

* LSTM (torch gate order i, f, g, o): gates = X @ W; c' = f c + i g; h' = o tanh(c');
* GRU: X @ W gives [r, z pre-activations | input part of n | recurrent part of n]; r, z =
  sigmoid; n = tanh(n_in + r n_rec); h' = n + z (h - n);
* MLP: the layers on [x, t, 1], no state (a (B, 0) array).

The output Linear reads [h, 1] with the action mapping folded in.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, List, Optional

import numpy as np
from scipy.special import expit

from cfc_control.models.lowering import StepDescription
from cfc_control.runtime.kernel_contract import Folds, Kernel, Time
from cfc_control.runtime.ops import ACTIVATIONS, Op, action_ops, row_view, run, with_bias_row


class BaselineKernel(Kernel):
    """Shared buffers and step of the baseline kernels (read from the model's step description,
    kind "lstm", "gru" or "mlp"); subclasses add their ops."""

    def __init__(self, desc: StepDescription, folds: Folds, batch_size: int, state_size: int) -> None:
        super().__init__(batch_size)
        self.folds = folds
        self.n_obs, self.n_act = desc.n_in, desc.n_out
        self.H = state_size
        n = self.n_obs
        self.time_input = bool(desc.options["time_input"])
        self.h_col = n + int(self.time_input)
        self.width = self.h_col + state_size + 1
        B = batch_size
        self.dtype = dt = folds.dtype
        self._x = [np.zeros((B, self.width), dt) for _ in range(2)]
        for X in self._x:
            X[:, -1] = 1.0
        self._x_views = [row_view(X[:, :n], B) for X in self._x]
        self._t_views = [X[:, n : n + 1] for X in self._x]
        self._y = np.zeros((B, self.n_act), dt)
        self.y = row_view(self._y, B)
        self._states = [(X[:, self.h_col : self.h_col + state_size],) for X in self._x]
        self._ops: List[List[Op]] = [[], []]

    def input_matrix(self, w_ih: np.ndarray, w_hh: Optional[np.ndarray], bias: np.ndarray) -> np.ndarray:
        """(width, out) reading X: ``w_ih`` (out, n_obs [+1 for t]) on [x, t] (x folded),
        ``w_hh`` (out, H) on h, ``bias`` on the 1 column."""
        n = self.n_obs
        w_x, b = self.folds.fold_input(w_ih[:, :n], bias)
        full = np.zeros((bias.shape[0], self.width))
        full[:, :n] = w_x
        if self.time_input:
            full[:, n] = w_ih[:, n]
        if w_hh is not None:
            full[:, self.h_col : self.h_col + self.H] = w_hh
        full[:, -1] = b
        return np.ascontiguousarray(full.T)

    def output_ops(self, s: int, desc: StepDescription) -> List[Op]:
        """The output Linear (``fc.w``, ``fc.b``) on [h', 1], the action mapping folded in."""
        f = self.folds
        w, b = f.fold_output(desc.array("fc.w"), desc.array("fc.b"))
        source = row_view(self._x[1 - s][:, self.h_col :], self.batch_size)  # [h', 1]
        return action_ops(source, self.y, f.act_lo, f.act_hi, f.cast(with_bias_row(w, b)), None, None, None)

    def step(self, obs: np.ndarray, t: Time) -> np.ndarray:
        s = self._cur
        self.folds.write_obs(obs, self._x_views[s])
        if self.time_input:
            self._t_views[s][...] = t
        run(self._ops[s])
        return self.y


class LSTMKernel(BaselineKernel):
    def __init__(self, desc: StepDescription, folds: Folds, batch_size: int) -> None:
        H = desc.state_sizes[0]
        super().__init__(desc, folds, batch_size, H)
        wt = folds.cast(self.input_matrix(desc.array("w_ih"), desc.array("w_hh"),
                                          desc.array("b_ih") + desc.array("b_hh")))
        B, v = batch_size, (lambda a: row_view(a, batch_size))
        self._c = [np.zeros((B, H), self.dtype) for _ in range(2)]
        self._states = [(self._states[s][0], self._c[s]) for s in (0, 1)]
        g = np.zeros((B, 4 * H), self.dtype)
        i_f, i, f, gg, o = g[:, : 2 * H], g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
        for s in (0, 1):
            h_new = self._x[1 - s][:, self.h_col : self.h_col + H]
            c_old, c_new = self._c[s], self._c[1 - s]
            self._ops[s] = [
                partial(np.dot, v(self._x[s]), wt, v(g)),
                partial(expit, v(i_f), v(i_f)),
                partial(np.tanh, v(gg), v(gg)),
                partial(expit, v(o), v(o)),
                partial(np.multiply, v(f), v(c_old), v(c_new)),
                partial(np.multiply, v(i), v(gg), v(i)),
                partial(np.add, v(c_new), v(i), v(c_new)),
                partial(np.tanh, v(c_new), v(h_new)),
                partial(np.multiply, v(h_new), v(o), v(h_new)),
            ] + self.output_ops(s, desc)


class GRUKernel(BaselineKernel):
    def __init__(self, desc: StepDescription, folds: Folds, batch_size: int) -> None:
        H = desc.state_sizes[0]
        super().__init__(desc, folds, batch_size, H)
        w_ih, w_hh = desc.array("w_ih"), desc.array("w_hh")
        b_ih, b_hh = desc.array("b_ih"), desc.array("b_hh")
        rz = slice(0, 2 * H)
        wt = np.concatenate([
            self.input_matrix(w_ih[rz], w_hh[rz], b_ih[rz] + b_hh[rz]),
            self.input_matrix(w_ih[2 * H :], None, b_ih[2 * H :]),
            self.input_matrix(np.zeros_like(w_ih[2 * H :]), w_hh[2 * H :], b_hh[2 * H :]),
        ], 1)
        wt = folds.cast(wt)
        B, v = batch_size, (lambda a: row_view(a, batch_size))
        g = np.zeros((B, 4 * H), self.dtype)
        r_z, r, z, n_in, n_rec = g[:, : 2 * H], g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
        for s in (0, 1):
            h_old = self._x[s][:, self.h_col : self.h_col + H]
            h_new = self._x[1 - s][:, self.h_col : self.h_col + H]
            self._ops[s] = [
                partial(np.dot, v(self._x[s]), wt, v(g)),
                partial(expit, v(r_z), v(r_z)),
                partial(np.multiply, v(n_rec), v(r), v(n_rec)),
                partial(np.add, v(n_in), v(n_rec), v(n_in)),
                partial(np.tanh, v(n_in), v(n_in)),
                partial(np.subtract, v(h_old), v(n_in), v(n_rec)),
                partial(np.multiply, v(n_rec), v(z), v(n_rec)),
                partial(np.add, v(n_in), v(n_rec), v(h_new)),
            ] + self.output_ops(s, desc)


class MLPKernel(BaselineKernel):
    def __init__(self, desc: StepDescription, folds: Folds, batch_size: int) -> None:
        super().__init__(desc, folds, batch_size, 0)
        act = ACTIVATIONS[desc.options["activation"]]
        count = 0
        while desc.has(f"layer{count}.w"):
            count += 1
        linears = [(desc.array(f"layer{k}.w"), desc.array(f"layer{k}.b")) for k in range(count)]
        hidden, last = linears[:-1], linears[-1]
        B, v = batch_size, (lambda a: row_view(a, batch_size))
        wts = [
            self.input_matrix(w, None, b) * act.pre if i == 0
            else with_bias_row(w * act.post * act.pre, b * act.pre)
            for i, (w, b) in enumerate(hidden)
        ]
        w_out, b_out = folds.fold_output(last[0] * (act.post if hidden else 1.0), last[1])
        out_wt = with_bias_row(w_out, b_out) if hidden else self.input_matrix(w_out, None, b_out)
        wts, out_wt = [folds.cast(w) for w in wts], folds.cast(out_wt)
        acts = [np.ones((B, w.shape[1] + 1), self.dtype) for w in wts]
        zs = [np.zeros((B, w.shape[1]), self.dtype) for w in wts]
        tmps = [np.zeros((B, w.shape[1]), self.dtype) for w in wts]
        f = folds
        for s in (0, 1):
            ops: List[Op] = []
            src = self._x[s]
            for w, a, z, tmp in zip(wts, acts, zs, tmps):
                ops.append(partial(np.dot, v(src), w, v(z)))
                ops += act.ops(v(z), v(a[:, :-1]), v(tmp))
                src = a
            ops += action_ops(v(src), self.y, f.act_lo, f.act_hi, out_wt, None, None, None)
            self._ops[s] = ops


def program_for(desc: StepDescription, folds: Folds) -> Optional[Callable[[int], Kernel]]:
    """A kernel builder for an LSTM, GRU or MLP step description (MLP: not with elu), else None."""
    if desc.kind == "lstm":
        return lambda b: LSTMKernel(desc, folds, b)
    if desc.kind == "gru":
        return lambda b: GRUKernel(desc, folds, b)
    if desc.kind == "mlp" and desc.options["activation"] in ACTIVATIONS:
        return lambda b: MLPKernel(desc, folds, b)
    return None


__all__ = ["LSTMKernel", "GRUKernel", "MLPKernel", "program_for"]
