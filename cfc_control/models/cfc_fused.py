"""Hand-written backpropagation through time for the unwired CfC (the training fast path).

Autograd records ~15 small operations per step, each with its own backward node, slicing and
gradient bookkeeping. Here the forward runs the very same operations as
:class:`~cfc_control.models.cfc_cell.CfCCell` (so its outputs are bit-identical to stepping),
writing each step's heads, gate and state into buffers allocated once per sequence (no tensor or
view is created per step), and forms the steps' local derivatives (of the activation, and of the
new state with respect to the four heads as one (B, 4, H) multiplier) for blocks of consecutive
steps at once, blocks small enough that their tensors are still in cache. The backward then needs,
per step, one multiply for the gate, the matmuls back through the heads and the recurrent map, one
multiply for the activation, and in-place accumulation of the weight gradients, step by step, last
step first (so outputs and gradients are bit for bit those of the earlier per-step version of this
module, which the project's trained figures come from, and trainings repeat exactly). At the small
batches of PPO's minibatches each operation's fixed cost dominates, so fewer of them per step is
what counts: at B=16, T=32 (64 units, no backbone) forward + backward went from 3.6 to about 2.3 ms
with the blocks and the buffers (``python tools/fused_blocks.py`` measures the block size).
Measured on one CPU thread before that, a training step at B=32, T=100 took about 0.6x the
reference library's time, and about 0.8x at B=256, T=64, where the matmuls dominate.

Covered: modes default / no_gate / pure, ``backbone_layers`` 0 or 1 (dropout has no effect there),
any activation, per-sample dt, episode-start resets, a given initial state. Everything else
(mixed memory, deeper backbones, wired cells, dt that requires grad) uses autograd. The backward
is not itself differentiable (no double backward).
"""

from __future__ import annotations

import math
from typing import Any, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from cfc_control.models.cfc_cell import CfCCell, closed_form_parts, fast_tanh


def fused_supported(cell: CfCCell) -> bool:
    """Whether :func:`run_fused` handles this cell."""
    return isinstance(cell, CfCCell) and cell.backbone_layers <= 1


def run_fused(cell: CfCCell, u: Tensor, h0: Tensor, ts: Tensor, keep: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """Run ``cell`` over a sequence with the fused backward.

    ``u`` (B, T, P) from ``cell.input_projection``, ``h0`` (B, H), ``ts`` (B, T, 1) not requiring
    grad, ``keep`` None or (B, T) 0/1 (0 resets the state to zero before that step).
    Returns (all states (B, T, H), last state (B, H))."""
    has_heads = cell.heads is not None
    return _CfCSequence.apply(
        u,
        h0,
        ts,
        keep,
        cell.rec_proj.weight,
        cell.heads.weight if has_heads else None,
        cell.heads.bias if has_heads else None,
        cell.w_tau,
        cell.A,
        cell,
    )


def _activation_derivative(name: str, z: Tensor, a: Tensor) -> Tensor:
    """d act(z) / dz elementwise, from the pre-activation ``z`` and the activation ``a``."""
    if name == "lecun_tanh":  # a = 1.7159 tanh(0.666 z): 0.666 (1.7159 - a^2 / 1.7159)
        return torch.addcmul(_const(0.666 * 1.7159, a), a, a, value=-0.666 / 1.7159)
    if name == "tanh":
        return torch.addcmul(_const(1.0, a), a, a, value=-1.0)
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "silu":
        s = torch.sigmoid(z)
        return s * (1.0 + z * (1.0 - s))
    if name == "gelu":  # exact gelu: Phi(z) + z phi(z)
        cdf = 0.5 * (1.0 + torch.erf(z * (1.0 / math.sqrt(2.0))))
        return cdf + z * torch.exp(-0.5 * z * z) * (1.0 / math.sqrt(2.0 * math.pi))
    raise ValueError(f"no derivative for activation {name!r}")


def _const(value: float, like: Tensor) -> Tensor:
    """A 0-d tensor: as the first argument of addcmul it makes ``c + k * x * y`` one operation."""
    return torch.full((), value, dtype=like.dtype, device=like.device)


def _gate_multiplier(f: Tensor, s: Tensor, dt: Tensor, mode: str, a_param: Optional[Tensor]) -> Tensor:
    """d h / d heads as a (..., n_heads, H) multiplier of the incoming gradient, for ``f``, ``s``
    (..., ·) and ``dt`` (..., 1) of any number of steps (see
    :func:`~cfc_control.models.cfc_cell.closed_form_parts` for ``f`` and ``s``)."""
    if mode == "pure":  # h = A - A e f1 with e = exp(-dt (|w_tau| + |f1|))
        return (-a_param * s * (1.0 - dt * f.abs())).unsqueeze(-2)
    hidden = s.shape[-1]
    mult = s.new_empty(*s.shape[:-1], 4, hidden)
    f1, f2 = f.chunk(2, -1)
    d1, d2 = torch.addcmul(_const(1.0, f), f, f, value=-1.0).chunk(2, -1)  # tanh' = 1 - tanh^2
    one_minus_s = torch.rsub(s, 1.0)
    torch.mul(s, d2, out=mult[..., 1, :])
    if mode == "no_gate":  # h = f1 + s f2
        mult[..., 0, :] = d1
        torch.mul(f2, s * one_minus_s, out=mult[..., 3, :])
    else:  # h = f1 + s (f2 - f1)
        torch.mul(one_minus_s, d1, out=mult[..., 0, :])
        torch.mul(f2 - f1, s * one_minus_s, out=mult[..., 3, :])
    torch.mul(mult[..., 3, :], dt, out=mult[..., 2, :])  # time_a enters as time_a * dt
    return mult


# Local derivatives are formed for blocks of steps of up to this many head elements (B x 4H per
# step; at least one step). Forward + backward in ms at B = 8 / 16 / 32 / 64 (T = 32) and 256 (T =
# 64), 64 units, by `python tools/fused_blocks.py` on one thread (the machine otherwise idle): one
# step per block 3.22 / 3.57 / 4.94 / 6.67 / 43.9, 2^14 elements 2.10 / 2.65 / 4.00 / 6.11 / 47.6,
# 2^16 1.92 / 2.43 / 3.41 / 5.37 / 44.8, 2^18 1.91 / 2.37 / 3.48 / 5.16 / 45.0, the whole sequence
# in one block 1.95 / 2.39 / 3.42 / 5.16 / 45.0. (An earlier run, with the other core busy, had
# the whole sequence 10% slower than 2^18 at the large batch, where a block's tensors leave the
# cache.)
_BLOCK_ELEMENTS = 262144


class _StepDerivatives(NamedTuple):
    """What the backward needs of one forward step: ``mult`` (B, n_heads, H) = d h / d heads,
    ``d_act`` (B, U) the backbone activation's derivative (None without a backbone), and in pure
    mode ``f``, ``s`` (B, H), ``dt`` (B, 1)."""

    mult: Tensor
    d_act: Optional[Tensor]
    f: Optional[Tensor]
    s: Optional[Tensor]
    dt: Optional[Tensor]


def _block_derivatives(seq: "_SequenceBuffers", first: int, last: int, zs: List[Tensor], acts: List[Tensor],
                       cell: CfCCell, a_param: Optional[Tensor]) -> List[_StepDerivatives]:
    """The local derivatives of steps ``first``..``last - 1`` at once, from the sequence's buffers
    and, with a backbone, those steps' pre-activations ``zs`` and activations ``acts``."""
    f, s, dt = seq.f[first:last], seq.s[first:last], seq.dt[first:last]
    mult = _gate_multiplier(f, s, dt, cell.mode, a_param).unbind(0)
    d_act: Tuple[Optional[Tensor], ...] = (None,) * (last - first)
    if acts:
        d_act = _activation_derivative(cell.activation, torch.stack(zs), torch.stack(acts)).unbind(0)
    if cell.mode != "pure":
        return [_StepDerivatives(m, d, None, None, None) for m, d in zip(mult, d_act)]
    return [_StepDerivatives(m, d, f_t, s_t, dt_t) for m, d, f_t, s_t, dt_t in zip(mult, d_act, f, s, dt)]


class _SequenceBuffers:
    """Every step's heads, closed-form parts and new state, time-major, allocated once per
    sequence: each step writes into its slices (``out=``), so a step creates no tensors and no
    views, and a block of steps is a slice, not a stack. ``heads`` (T, B, n_heads H), ``f`` the
    tanh of [ff1 | ff2] (T, B, 2H) (pure mode: the heads themselves), ``s`` the gate (T, B, H),
    ``y`` the new states (T, B, H), ``dt`` (T, B, 1); the per-step views are made once, here."""

    def __init__(self, u: Tensor, ts: Tensor, hidden: int, mode: str) -> None:
        steps, batch = u.shape[1], u.shape[0]
        n_heads = 1 if mode == "pure" else 4
        self.heads = u.new_empty(steps, batch, n_heads * hidden)
        self.f = self.heads if mode == "pure" else u.new_empty(steps, batch, 2 * hidden)
        self.s = u.new_empty(steps, batch, hidden)
        self.y = u.new_empty(steps, batch, hidden)
        self.dt = ts.transpose(0, 1)
        self.heads_t, self.s_t, self.y_t, self.dt_t = (x.unbind(0) for x in (self.heads, self.s, self.y, self.dt))
        if mode != "pure":
            ff, t_a, t_b = self.heads.split([2 * hidden, hidden, hidden], 2)
            f1, f2 = self.f.chunk(2, 2)
            self.ff_t, self.ta_t, self.tb_t, self.f_t, self.f1_t, self.f2_t = (
                x.unbind(0) for x in (ff, t_a, t_b, self.f, f1, f2))

    def closed_form(self, t: int, mode: str, w_tau: Optional[Tensor], a_param: Optional[Tensor]) -> Tensor:
        """Step ``t``'s new state from its heads, into ``y[t]``: the operations of
        :func:`~cfc_control.models.cfc_cell.closed_form_parts`, written into the buffers."""
        if mode == "pure":
            h, _, decay = closed_form_parts(self.heads_t[t], self.dt_t[t], mode, w_tau, a_param)
            self.s_t[t].copy_(decay)
            return self.y_t[t].copy_(h)
        fast_tanh(self.ff_t[t], out=self.f_t[t])
        torch.addcmul(self.tb_t[t], self.ta_t[t], self.dt_t[t], out=self.s_t[t]).sigmoid_()
        if mode == "no_gate":
            return torch.addcmul(self.f1_t[t], self.s_t[t], self.f2_t[t], out=self.y_t[t])
        return torch.lerp(self.f1_t[t], self.f2_t[t], self.s_t[t], out=self.y_t[t])


class _CfCSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u, h0, ts, keep, w_rec, w_heads, b_heads, w_tau, a_param, cell):  # type: ignore[override]
        mode = cell.mode
        w_rec_t = w_rec.t()
        w_heads_t = w_heads.t() if w_heads is not None else None
        batch, steps = u.shape[0], u.shape[1]
        seq = _SequenceBuffers(u, ts, h0.shape[1], mode)
        us = u.unbind(1)
        keeps = keep.unsqueeze(-1).unbind(1) if keep is not None else None
        # One host sync for the sequence: the steps where some row resets (most reset none).
        resets = (keep == 0).any(0).tolist() if keep is not None else [False] * steps
        block_steps = max(1, _BLOCK_ELEMENTS // (batch * seq.heads.shape[2]))
        h = h0
        h_prevs: List[Tensor] = []
        zs: List[Tensor] = []  # with a backbone: the pre-activations and activations of the block
        acts: List[Tensor] = []
        all_acts: List[Tensor] = []
        derivatives: List[_StepDerivatives] = []
        first = 0
        for t in range(steps):
            if resets[t]:
                h = h * keeps[t]
            h_prevs.append(h)
            # The operations of CfCCell.forward, into the buffers: bit-identical results.
            if w_heads is None:
                torch.addmm(us[t], h, w_rec_t, out=seq.heads_t[t])
            else:
                z = torch.addmm(us[t], h, w_rec_t)
                a = cell.act(z)
                torch.addmm(b_heads, a, w_heads_t, out=seq.heads_t[t])
                zs.append(z)
                acts.append(a)
            h = seq.closed_form(t, mode, w_tau, a_param)
            if t + 1 - first == block_steps or t == steps - 1:
                derivatives += _block_derivatives(seq, first, t + 1, zs, acts, cell, a_param)
                all_acts += acts
                first, zs, acts = t + 1, [], []
        ctx.cell, ctx.derivatives, ctx.resets = cell, derivatives, resets
        # The inputs of the weights' gradients, per step (as the per-step graph would hold them).
        ctx.h_prevs, ctx.acts = h_prevs, all_acts
        ctx.save_for_backward(keep, w_rec, w_heads, w_tau, a_param)
        return seq.y.transpose(0, 1), seq.y_t[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_y: Optional[Tensor], d_last: Optional[Tensor]):  # type: ignore[override]
        keep, w_rec, w_heads, w_tau, a_param = ctx.saved_tensors
        h_prev, acts = ctx.h_prevs, ctx.acts
        derivatives, resets = ctx.derivatives, ctx.resets
        steps, (batch, hidden) = len(h_prev), h_prev[0].shape
        need = ctx.needs_input_grad
        d_ys = d_y.unbind(1) if d_y is not None else None
        keeps = keep.unsqueeze(-1).unbind(1) if keep is not None else None
        d_u = w_rec.new_empty(steps, batch, w_rec.shape[0])  # grad of z_t = u_t + h W_rec^T
        # grad of the heads; without a backbone the heads are z itself
        d_heads = d_u if w_heads is None else w_rec.new_empty(steps, batch, w_heads.shape[0])
        d_w_rec = torch.zeros_like(w_rec) if need[4] else None
        d_w_heads = torch.zeros_like(w_heads) if w_heads is not None and need[5] else None
        d_b_heads = w_rec.new_zeros(w_heads.shape[0]) if w_heads is not None and need[6] else None
        d_a_param = torch.zeros_like(a_param) if a_param is not None and need[8] else None
        d_abs_tau = torch.zeros_like(w_tau) if w_tau is not None and need[7] else None
        # (cloned: it is accumulated into in place below, and autograd owns the incoming tensor)
        g_next: Optional[Tensor] = d_last.clone() if d_last is not None else None
        for t in range(steps - 1, -1, -1):
            step = derivatives[t]
            if d_ys is not None:
                g = d_ys[t] if g_next is None else g_next.add_(d_ys[t])
            else:
                g = g_next if g_next is not None else w_rec.new_zeros(batch, hidden)
            torch.mul(g.unsqueeze(1), step.mult, out=d_heads[t].view(batch, -1, hidden))
            if w_heads is not None:
                torch.mul(torch.mm(d_heads[t], w_heads), step.d_act, out=d_u[t])
            # The weight gradients are summed step by step, last step first: one matmul over all
            # steps would be faster but sums in another order, and a training run would no longer
            # be the same run, bit for bit, as those the project's figures come from.
            if d_w_heads is not None:
                d_w_heads.addmm_(d_heads[t].t(), acts[t])
            if d_b_heads is not None:
                d_b_heads.add_(d_heads[t].sum(0))
            if d_w_rec is not None:
                d_w_rec.addmm_(d_u[t].t(), h_prev[t])
            if d_a_param is not None:  # h = A (1 - e f1)
                d_a_param.add_((g * torch.rsub(step.s * step.f, 1.0)).sum(0, keepdim=True))
            if d_abs_tau is not None:  # d h / d|w_tau| = A f1 e dt
                d_abs_tau.add_((g * step.f * step.s * step.dt).sum(0, keepdim=True))
            if t == 0 and not need[1]:
                break  # no gradient wanted for the initial state
            g_next = torch.mm(d_u[t], w_rec)
            if resets[t]:
                g_next.mul_(keeps[t])
        return (
            d_u.transpose(0, 1) if need[0] else None,
            g_next if need[1] else None,  # (after the t = 0 step)
            None,
            None,
            d_w_rec,
            d_w_heads,
            d_b_heads,
            d_abs_tau * a_param * torch.sign(w_tau) if d_abs_tau is not None else None,
            d_a_param,
            None,
        )
