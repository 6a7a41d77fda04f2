"""The numpy kernel of a CfC policy: unwired (any backbone, every mode and activation), wired (an
NCP: masked weights pre-multiplied), with or without mixed memory and projection.

Per step and row, the features live in one buffer ``X = [x | h~ | h | 1]``: the observation as
:meth:`~cfc_control.runtime.compiled.Folds.write_obs` writes it, the mixed-memory LSTM's output
(absent without mixed memory), the state and a constant 1, so that each consumer is one matmul
with its bias folded in:

* mixed memory's LSTM gates read [x, h, 1]; the CfC reads [x, h~, 1] (or [x, h, 1]);
* unwired: backbone layer 1 reads X, further layers and the fused heads read [act, 1];
* wired: one block matrix maps X to every layer's recurrent part and bias (and layer 1's input
  part); layer i > 1 adds its masked feed-forward matmul on the new output of layer i - 1;
* the projection reads [h, 1] with the action mapping folded in.

Scalars are folded as well: lecun_tanh's 0.666 into the rows of the matrix before it and 1.7159
into the one after; the gate's sigmoid is computed through tanh (numpy's tanh is SIMD, scipy's
expit is not), its 1/2 folded into the time_a / time_b columns.

Two such buffers alternate (double-buffered state): a step reads the state from the current one
and writes the new state into the other.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, List, Optional, Tuple

import numpy as np

from cfc_control.models.lowering import StepDescription
from cfc_control.runtime.kernel_contract import Folds, Kernel, Time
from cfc_control.runtime.ops import (
    ACTIVATIONS,
    Op,
    action_ops,
    closed_form_ops,
    halve_gate_columns,
    lstm_ops,
    row_view,
    run,
    with_bias_row,
)


class CfCProgram:
    """The weights of a CfC policy (its model's step description, kind "cfc" or "wired_cfc")
    rearranged for :class:`CfCKernel` (shared by every kernel built from it).
    ``program(batch_size)`` builds a kernel."""

    def __init__(self, desc: StepDescription, folds: Folds) -> None:
        self.folds = folds
        self.mode = desc.options["mode"]
        self.n_obs, self.n_act = desc.n_in, desc.n_out
        n, H = self.n_obs, desc.state_sizes[0]
        self.H = H
        self.E = H if desc.mixed_memory else 0  # the h~ slot
        self.h_col = n + self.E
        self.width = n + self.E + H + 1
        h_in = n if desc.mixed_memory else self.h_col  # where the CfC reads its state from

        self.lstm_wt: Optional[np.ndarray] = None
        if desc.mixed_memory:
            w_x, b = folds.fold_input(desc.array("lstm.w_ih"), desc.array("lstm.b"))
            self.lstm_wt = self._over_x(w_x, [(self.h_col, desc.array("lstm.w_hh"))], b)

        self.wired = desc.kind == "wired_cfc"
        if self.wired:
            self._build_wired(desc, h_in)
        else:
            self._build_unwired(desc, h_in)
        self._build_output(desc)
        self._halve_gates()
        self._cast()

    # -- building ------------------------------------------------------------------------------
    def _over_x(self, w_x: Optional[np.ndarray], blocks: List[Tuple[int, np.ndarray]], bias: np.ndarray,
                row_scale: float = 1.0) -> np.ndarray:
        """A matrix (width, out) reading X: ``w_x`` (out, n_obs) on x (None: zeros), each
        ``(column, (out, k))`` block on X[column:column + k], ``bias`` on the 1 column; all times
        ``row_scale``."""
        out = bias.shape[0]
        full = np.zeros((out, self.width))
        if w_x is not None:
            full[:, : self.n_obs] = w_x
        for col, w in blocks:
            full[:, col : col + w.shape[1]] = w
        full[:, -1] = bias
        return np.ascontiguousarray((full * row_scale).T)

    def _build_unwired(self, desc: StepDescription, h_in: int) -> None:
        activation = desc.options["activation"]
        if activation not in ACTIVATIONS:
            raise ValueError(f"no numpy kernel for activation {activation!r}")
        act = ACTIVATIONS[activation]
        self.act = act
        layers = int(desc.options["backbone_layers"])
        w_x, b = self.folds.fold_input(desc.array("in_w"), desc.array("in_b"))
        # Without a backbone the first map is the heads themselves (no activation).
        self.first_wt = self._over_x(w_x, [(h_in, desc.array("rec_w"))], b, act.pre if layers > 0 else 1.0)
        self.first_width = self.first_wt.shape[1]
        self.hidden_wts: List[np.ndarray] = []
        k = 0
        while desc.has(f"backbone{k}.w"):
            w, bb = desc.array(f"backbone{k}.w"), desc.array(f"backbone{k}.b")
            self.hidden_wts.append(with_bias_row(w * act.post * act.pre, bb * act.pre))
            k += 1
        self.heads_wt = None
        if desc.has("heads.w"):
            self.heads_wt = with_bias_row(desc.array("heads.w") * act.post, desc.array("heads.b"))
        self.head_width = (1 if self.mode == "pure" else 4) * self.H
        self.w_tau = desc.array("w_tau") if desc.has("w_tau") else None
        self.A = desc.array("A") if desc.has("A") else None
        self.motor = (0, self.H)  # the output: the whole state

    def _build_wired(self, desc: StepDescription, h_in: int) -> None:
        k = 1 if self.mode == "pure" else 4
        self.layer_sizes = [int(n) for n in desc.options["layer_sizes"]]
        self.offsets = list(np.cumsum([0] + self.layer_sizes[:-1]))
        blocks, biases, self.ff_wts, self.layer_params = [], [], [], []
        w_x = None
        for i in range(len(self.layer_sizes)):
            n_i, off = self.layer_sizes[i], self.offsets[i]
            w_in = desc.array(f"layer{i}.w_in")
            bias = desc.array(f"layer{i}.bias")
            rec = np.zeros((k * n_i, self.H))
            rec[:, off : off + n_i] = desc.array(f"layer{i}.w_rec")
            blocks.append(rec)
            if i == 0:
                w_x, bias = self.folds.fold_input(w_in, bias)
            else:
                self.ff_wts.append(np.ascontiguousarray(w_in.T))
            biases.append(bias)
            self.layer_params.append(
                (desc.array(f"layer{i}.w_tau"), desc.array(f"layer{i}.A")) if self.mode == "pure" else (None, None)
            )
        rows = sum(k * n for n in self.layer_sizes)
        full_x = np.zeros((rows, self.n_obs))
        full_x[: w_x.shape[0]] = w_x
        self.block_wt = self._over_x(full_x, [(h_in, np.concatenate(blocks, 0))], np.concatenate(biases))
        self.head_offsets = list(np.cumsum([0] + [k * n for n in self.layer_sizes[:-1]]))
        last = self.offsets[-1]
        self.motor = (last, last + int(desc.options["motor_size"]))

    def _build_output(self, desc: StepDescription) -> None:
        f = self.folds
        self.out_wt: Optional[np.ndarray] = None
        self.out_bias: Optional[np.ndarray] = None
        if desc.has("fc.w"):
            w, b = f.fold_output(desc.array("fc.w"), desc.array("fc.b"))
            if self.motor[1] == self.H:  # the motor neurons end the state: read [motor, 1]
                self.out_wt = with_bias_row(w, b)
            else:
                self.out_wt = np.ascontiguousarray(w.T)
                self.out_bias = b

    def _halve_gates(self) -> None:
        if self.mode == "pure":
            return
        if not self.wired:
            halve_gate_columns(self.heads_wt if self.heads_wt is not None else self.first_wt, 0, self.H)
            return
        for i, n_i in enumerate(self.layer_sizes):
            halve_gate_columns(self.block_wt, self.head_offsets[i], n_i)
            if i > 0:
                halve_gate_columns(self.ff_wts[i - 1], 0, n_i)

    def _cast(self) -> None:
        """Every array a kernel reads, in the kernel's dtype."""
        cast = self.folds.cast
        self.dtype = self.folds.dtype
        for name in ("lstm_wt", "first_wt", "heads_wt", "block_wt", "out_wt", "out_bias", "w_tau", "A"):
            value = getattr(self, name, None)
            if value is not None:
                setattr(self, name, cast(value))
        for name in ("hidden_wts", "ff_wts"):
            if hasattr(self, name):
                setattr(self, name, [cast(w) for w in getattr(self, name)])
        if self.wired:
            self.layer_params = [tuple(None if a is None else cast(a) for a in pair) for pair in self.layer_params]

    def __call__(self, batch_size: int) -> "CfCKernel":
        return CfCKernel(self, batch_size)


class CfCKernel(Kernel):
    """A :class:`CfCProgram` run for ``batch_size`` rows (see the module docstring)."""

    def __init__(self, program: CfCProgram, batch_size: int) -> None:
        super().__init__(batch_size)
        p = self.program = program
        self.n_obs, self.n_act = p.n_obs, p.n_act
        B, H, n = batch_size, p.H, p.n_obs
        v = lambda a: row_view(a, B)  # noqa: E731
        self._x = [np.zeros((B, p.width), p.dtype) for _ in range(2)]
        for X in self._x:
            X[:, -1] = 1.0
        self._c = [np.zeros((B, H), p.dtype) for _ in range(2)] if p.lstm_wt is not None else None
        self._t = np.ones((B, 1), p.dtype) if B > 1 else np.ones(1, p.dtype)
        self._y = np.zeros((B, p.n_act), p.dtype)
        self.y = v(self._y)
        self._states = [
            (X[:, p.h_col : p.h_col + H],) + ((self._c[s],) if self._c is not None else ())
            for s, X in enumerate(self._x)
        ]
        scratch = self._scratch(B)
        self._x_views = [v(X[:, :n]) for X in self._x]
        self._ops: List[List[Op]] = [self._slot_ops(s, scratch, v) for s in (0, 1)]

    def _scratch(self, B: int) -> dict:
        p = self.program
        s = {"gates": np.zeros((B, 4 * p.H), p.dtype) if p.lstm_wt is not None else None}
        if p.wired:
            s["pre"] = np.zeros((B, p.block_wt.shape[1]), p.dtype)
            s["ff"] = [np.zeros((B, w.shape[1]), p.dtype) for w in p.ff_wts]
            s["q"] = np.zeros((B, max(p.layer_sizes)), p.dtype)
        else:
            s["first"] = np.zeros((B, p.first_width), p.dtype)
            s["acts"] = [np.ones((B, p.first_width + 1), p.dtype) for _ in range(len(p.hidden_wts) + 1)]
            s["z"] = [np.zeros((B, w.shape[1]), p.dtype) for w in p.hidden_wts]
            s["tmp"] = np.zeros((B, p.first_width), p.dtype)
            s["pre"] = np.zeros((B, p.head_width), p.dtype)
            s["q"] = np.zeros((B, p.H), p.dtype)
        return s

    def _slot_ops(self, s: int, sc: dict, v: Callable[[np.ndarray], np.ndarray]) -> List[Op]:
        """The ops of a step that reads slot ``s`` and writes slot ``1 - s``."""
        p, H = self.program, self.program.H
        X, Xn = self._x[s], self._x[1 - s]
        t = self._t
        ops: List[Op] = []
        if p.lstm_wt is not None:
            # h~ is not state, but it sits in X beside it and the LSTM's matmul reads X with zero
            # weights on it: a NaN left there by a refused step would poison every later step
            # (0 * NaN), reset() included. Clear it before the matmul.
            ops.append(partial(np.copyto, v(X[:, p.n_obs : p.h_col]), 0.0))
            ops += lstm_ops(v(X), p.lstm_wt, v(sc["gates"]), v(self._c[s]), v(self._c[1 - s]),
                            v(X[:, p.n_obs : p.h_col]), H)
        h_new = Xn[:, p.h_col : p.h_col + H]
        if p.wired:
            pre = sc["pre"]
            ops.append(partial(np.dot, v(X), p.block_wt, v(pre)))
            k = 1 if p.mode == "pure" else 4
            for i, n_i in enumerate(p.layer_sizes):
                lo = p.head_offsets[i]
                pre_i = pre[:, lo : lo + k * n_i]
                off = p.offsets[i]
                if i > 0:
                    prev = h_new[:, p.offsets[i - 1] : p.offsets[i - 1] + p.layer_sizes[i - 1]]
                    ff = sc["ff"][i - 1]
                    ops.append(partial(np.dot, v(prev), p.ff_wts[i - 1], v(ff)))
                    ops.append(partial(np.add, v(pre_i), v(ff), v(pre_i)))
                w_tau, A = p.layer_params[i]
                ops += closed_form_ops(p.mode, v(pre_i), t, v(h_new[:, off : off + n_i]), n_i,
                                       v(sc["q"][:, :n_i]), w_tau, A)
        else:
            acts, U = sc["acts"], p.first_width
            if p.heads_wt is None:  # no backbone: the first map gives the heads
                ops.append(partial(np.dot, v(X), p.first_wt, v(sc["pre"])))
            else:
                ops.append(partial(np.dot, v(X), p.first_wt, v(sc["first"])))
                ops += p.act.ops(v(sc["first"]), v(acts[0][:, :U]), v(sc["tmp"]))
                for j, wt in enumerate(p.hidden_wts):
                    ops.append(partial(np.dot, v(acts[j]), wt, v(sc["z"][j])))
                    ops += p.act.ops(v(sc["z"][j]), v(acts[j + 1][:, :U]), v(sc["tmp"]))
                ops.append(partial(np.dot, v(acts[-1]), p.heads_wt, v(sc["pre"])))
            ops += closed_form_ops(p.mode, v(sc["pre"]), t, v(h_new), H, v(sc["q"]), p.w_tau, p.A)
        m0, m1 = p.motor
        f = p.folds
        if p.out_wt is not None and p.out_bias is None:
            source = Xn[:, p.h_col + m0 :]  # [motor, 1]
        else:
            source = h_new[:, m0:m1]
        ops += action_ops(v(source), self.y, f.act_lo, f.act_hi, p.out_wt, p.out_bias, f.cast(f.act_half),
                          f.cast(f.act_center))
        return ops

    def step(self, obs: np.ndarray, t: Time) -> np.ndarray:
        s = self._cur
        self.program.folds.write_obs(obs, self._x_views[s])
        self._t[...] = t
        run(self._ops[s])
        return self.y


def program_for(desc: StepDescription, folds: Folds) -> Optional[Callable[[int], Kernel]]:
    """A :class:`CfCProgram` for a CfC's step description (unwired or wired), else None."""
    if desc.kind not in ("cfc", "wired_cfc"):
        return None
    return CfCProgram(desc, folds)


__all__ = ["CfCProgram", "CfCKernel", "program_for"]
