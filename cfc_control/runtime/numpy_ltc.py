"""The numpy kernel of an LTC policy (with or without mixed memory and projection), read from the
model's step description (:mod:`cfc_control.models.lowering`): equations in
:mod:`cfc_control.models.ltc_cell`.

Unlike the CfC kernels it allocates per step: an LTC step costs ``ode_unfolds`` (B, N, N) sigmoid
evaluations, which dwarf the allocations (and the Python calls the preallocated style saves).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from scipy.special import expit

from cfc_control.models.lowering import StepDescription
from cfc_control.runtime.kernel_contract import Folds, Kernel, Time, clip_ufunc


class LTCProgram:
    """The description's arrays in the kernel's dtype; ``program(B)`` builds an :class:`LTCKernel`."""

    def __init__(self, desc: StepDescription, folds: Folds) -> None:
        self.folds = folds
        self.dtype = folds.dtype
        self.a = {name: folds.cast(value) for name, value in desc.arrays.items()}
        self.n_obs, self.n_act = desc.n_in, desc.n_out
        self.N = desc.state_sizes[0]
        self.state_sizes = desc.state_sizes
        self.K = int(desc.options["motor_size"])
        self.unfolds = int(desc.options["ode_unfolds"])
        self.mean, self.std = folds.cast(folds.mean), folds.cast(folds.std)
        self.center, self.half = folds.cast(folds.act_center), folds.cast(folds.act_half)

    def __call__(self, batch_size: int) -> "LTCKernel":
        return LTCKernel(self, batch_size)


def _drive(src: np.ndarray, sigma: np.ndarray, neg_sigma_mu: np.ndarray, syn: np.ndarray, syn_erev: np.ndarray):
    """(sum_i act_ij syn_erev_ij, sum_i act_ij syn_ij) for act = sigmoid(neg_sigma_mu + src_i sigma_ij)."""
    act = expit(neg_sigma_mu + src[:, :, None] * sigma)  # (B, sources, N)
    return np.einsum("bij,ij->bj", act, syn_erev), np.einsum("bij,ij->bj", act, syn)


class LTCKernel(Kernel):
    def __init__(self, program: LTCProgram, batch_size: int) -> None:
        super().__init__(batch_size)
        p = self.program = program
        self.n_obs, self.n_act = p.n_obs, p.n_act
        self._states = [tuple(np.zeros((batch_size, h), p.dtype) for h in p.state_sizes) for _ in range(2)]

    def step(self, obs: np.ndarray, t: Time) -> np.ndarray:
        p, a, B = self.program, self.program.a, self.batch_size
        x = np.asarray(obs, dtype=np.float64).reshape(B, p.n_obs)
        z = ((clip_ufunc(x, p.folds.obs_lo, p.folds.obs_hi) - p.mean) / p.std).astype(p.dtype)
        t = np.asarray(t, dtype=p.dtype).reshape(-1, 1)
        state, new = self.state, self.pending
        v = state[0]
        if "lstm.w_ih" in a:
            g = z @ a["lstm.w_ih"].T + a["lstm.b"] + v @ a["lstm.w_hh"].T
            n = p.N
            c = state[1] * expit(g[:, 2 * n : 3 * n]) + np.tanh(g[:, :n]) * expit(g[:, n : 2 * n])
            new[1][...] = c
            v = np.tanh(c) * expit(g[:, 3 * n :])
        xm = z * a["input_w"] + a["input_b"]
        num, den = _drive(xm, a["sensory_sigma"], a["sensory_neg_sigma_mu"], a["sensory_syn"], a["sensory_syn_erev"])
        h = t / p.unfolds
        base_num = h * (a["leak_num"] + num)
        base_den = a["cm"] + h * (a["leak_den"] + den)
        for _ in range(p.unfolds):
            num, den = _drive(v, a["sigma"], a["neg_sigma_mu"], a["syn"], a["syn_erev"])
            v = (a["cm"] * v + base_num + h * num) / (base_den + h * den)
        new[0][...] = v
        y = v[:, : p.K] * a["output_w"] + a["output_b"]
        if "fc.w" in a:
            y = y @ a["fc.w"].T + a["fc.b"]
        action = p.center + p.half * np.clip(y, -1.0, 1.0)
        action = clip_ufunc(action, p.folds.act_lo, p.folds.act_hi)
        return action[0] if B == 1 else action


def program_for(desc: StepDescription, folds: Folds) -> Optional[Callable[[int], Kernel]]:
    """An :class:`LTCProgram` for an LTC's step description, else None."""
    if desc.kind != "ltc":
        return None
    return LTCProgram(desc, folds)


__all__ = ["LTCProgram", "LTCKernel", "program_for"]
