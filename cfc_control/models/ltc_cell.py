"""The liquid time-constant (LTC) cell: one step of the LTC ODE, solved by fused semi-implicit Euler.

For N neurons (state v, (B, N)), M inputs and K motor neurons (the first K ids), one step of
length Δt is ``ode_unfolds`` Euler sub-steps of length h = Δt / ode_unfolds of

    C dv_j/dt = g_j (vleak_j - v_j) + Σ_i R_ij (E_ij - v_j) + Σ_i S_ij (Es_ij - v_j)
    R_ij = p(w_ij) σ(sigma_ij (v_i - mu_ij)) M_ij,   S_ij = p(sw_ij) σ(ssigma_ij (x_i - smu_ij)) Ms_ij

each taken semi-implicitly:

    v_j <- (C_j v_j + h (g_j vleak_j + Σ_i R_ij E_ij + Σ_i S_ij Es_ij))
           / (C_j + h (g_j + Σ_i R_ij + Σ_i S_ij + epsilon))

with p = softplus (``implicit_param_constraints=True``) or the identity (then call
:meth:`LTCCell.apply_weight_constraints` after each optimiser step). The reference library writes
the same update divided through by h (``cm_t = C / h``); multiplying by h gives identical values
for Δt > 0 and the ODE's answer for Δt = 0 (the state does not move) where dividing by h gives NaN.
The output is the motor part ``v[:, :K]``, mapped by ``output_w``/``output_b``.

Parameter names and shapes follow ``ncps.torch.LTCCell`` so that its state_dict loads unchanged:
gleak, vleak, cm (N,); sigma, mu, w, erev (N, N) indexed [source, target]; sensory_sigma,
sensory_mu, sensory_w, sensory_erev (M, N); sparsity_mask (N, N) and sensory_sparsity_mask (M, N)
(0/1, buffers here, frozen parameters there); input_w, input_b (M,); output_w, output_b (K,).
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

MAPPINGS = ("affine", "linear", "none")

# Uniform init ranges (as the reference draws them, in this order).
_INIT_RANGES: Dict[str, Tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
}


class LTCWeights(NamedTuple):
    """Per-sequence derived tensors (computed once, reused by every step and unfold)."""

    cm: Tensor  # p(cm) (N,)
    leak_num: Tensor  # p(gleak) * vleak (N,)
    leak_den: Tensor  # p(gleak) + epsilon (N,)
    neg_sigma_mu: Tensor  # -sigma * mu (N, N)
    sigma: Tensor  # (N, N)
    syn: Tensor  # p(w) * mask (N, N)
    syn_erev: Tensor  # p(w) * mask * erev (N, N)


class LTCCell(nn.Module):
    """One LTC step on a built wiring (see the module docstring for the equations).

    ``forward(inputs (B, M), state (B, N), elapsed_time number or (B, 1)) -> (output (B, K),
    new_state (B, N))``, the reference cell's signature.
    """

    def __init__(
        self,
        wiring,
        *,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
    ) -> None:
        super().__init__()
        if not wiring.is_built():
            raise ValueError("LTCCell needs a built wiring (call wiring.build(input_dim) first)")
        for name, value in (("input_mapping", input_mapping), ("output_mapping", output_mapping)):
            if value not in MAPPINGS:
                raise ValueError(f"{name} must be one of {MAPPINGS}, got {value!r}")
        if isinstance(ode_unfolds, bool) or not isinstance(ode_unfolds, int) or ode_unfolds < 1:
            raise ValueError(f"ode_unfolds must be a positive int, got {ode_unfolds!r}")
        if not float(epsilon) >= 0.0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
        self.units = int(wiring.units)
        self.sensory_size = int(wiring.input_dim)
        self.motor_size = int(wiring.output_dim)
        self.input_mapping = input_mapping
        self.output_mapping = output_mapping
        self.ode_unfolds = ode_unfolds
        self.epsilon = float(epsilon)
        self.implicit_param_constraints = bool(implicit_param_constraints)

        n, m, k = self.units, self.sensory_size, self.motor_size
        adjacency = np.asarray(wiring.adjacency_matrix, dtype=np.float32)
        sensory = np.asarray(wiring.sensory_adjacency_matrix, dtype=np.float32)
        if adjacency.shape != (n, n) or sensory.shape != (m, n):
            raise ValueError(
                f"wiring adjacency shapes {adjacency.shape} / {sensory.shape} do not match "
                f"{n} units and {m} inputs"
            )
        self.gleak = self._uniform("gleak", (n,))
        self.vleak = self._uniform("vleak", (n,))
        self.cm = self._uniform("cm", (n,))
        self.sigma = self._uniform("sigma", (n, n))
        self.mu = self._uniform("mu", (n, n))
        self.w = self._uniform("w", (n, n))
        # Reversal potentials start at the synapse polarity and are trained.
        self.erev = nn.Parameter(torch.from_numpy(adjacency.copy()))
        self.sensory_sigma = self._uniform("sensory_sigma", (m, n))
        self.sensory_mu = self._uniform("sensory_mu", (m, n))
        self.sensory_w = self._uniform("sensory_w", (m, n))
        self.sensory_erev = nn.Parameter(torch.from_numpy(sensory.copy()))
        self.register_buffer("sparsity_mask", torch.from_numpy(np.abs(adjacency)))
        self.register_buffer("sensory_sparsity_mask", torch.from_numpy(np.abs(sensory)))
        if input_mapping in ("affine", "linear"):
            self.input_w = nn.Parameter(torch.ones(m))
        if input_mapping == "affine":
            self.input_b = nn.Parameter(torch.zeros(m))
        if output_mapping in ("affine", "linear"):
            self.output_w = nn.Parameter(torch.ones(k))
        if output_mapping == "affine":
            self.output_b = nn.Parameter(torch.zeros(k))

    @staticmethod
    def _uniform(name: str, shape: Tuple[int, ...]) -> nn.Parameter:
        lo, hi = _INIT_RANGES[name]
        return nn.Parameter(torch.rand(*shape) * (hi - lo) + lo)

    def _positive(self, t: Tensor) -> Tensor:
        return F.softplus(t) if self.implicit_param_constraints else t

    @torch.no_grad()
    def apply_weight_constraints(self) -> None:
        """Clip w, sensory_w, cm and gleak at 0 (only with ``implicit_param_constraints=False``)."""
        if not self.implicit_param_constraints:
            for p in (self.w, self.sensory_w, self.cm, self.gleak):
                p.clamp_(min=0.0)

    # -- pieces of a step ----------------------------------------------------------------------
    def map_inputs(self, x: Tensor) -> Tensor:
        """The input mapping, elementwise on (..., M)."""
        if self.input_mapping in ("affine", "linear"):
            x = x * self.input_w
        if self.input_mapping == "affine":
            x = x + self.input_b
        return x

    def sensory_drive(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Synaptic input from mapped inputs ``x`` (..., M): (Σ_i S_ij Es_ij, Σ_i S_ij), each (..., N).

        It depends on the inputs only, so it is computed once per step (or once for a sequence)."""
        act = torch.sigmoid(torch.addcmul(-self.sensory_sigma * self.sensory_mu, x.unsqueeze(-1), self.sensory_sigma))
        syn = self._positive(self.sensory_w) * self.sensory_sparsity_mask
        return (act * (syn * self.sensory_erev)).sum(-2), (act * syn).sum(-2)

    def weights(self) -> LTCWeights:
        """The tensors every step reuses; compute once per sequence."""
        gleak = self._positive(self.gleak)
        syn = self._positive(self.w) * self.sparsity_mask
        return LTCWeights(
            cm=self._positive(self.cm),
            leak_num=gleak * self.vleak,
            leak_den=gleak + self.epsilon,
            neg_sigma_mu=-self.sigma * self.mu,
            sigma=self.sigma,
            syn=syn,
            syn_erev=syn * self.erev,
        )

    def solve(
        self, v: Tensor, drive_num: Tensor, drive_den: Tensor, dt: Tensor, wts: LTCWeights
    ) -> Tensor:
        """Advance the state ``v`` (B, N) by ``dt`` (B, 1) given the sensory drive (B, N) x 2."""
        h = dt / self.ode_unfolds
        base_num = h * (wts.leak_num + drive_num)
        base_den = wts.cm + h * (wts.leak_den + drive_den)
        for _ in range(self.ode_unfolds):
            # act[b, i, j] = σ(sigma_ij (v_i - mu_ij)): B x N x N, the LTC's cost in time and memory.
            act = torch.sigmoid(torch.addcmul(wts.neg_sigma_mu, v.unsqueeze(-1), wts.sigma))
            num = (act * wts.syn_erev).sum(1)
            den = (act * wts.syn).sum(1)
            v = (wts.cm * v + base_num + h * num) / (base_den + h * den)
        return v

    def map_outputs(self, v: Tensor) -> Tensor:
        """Motor neurons (the first K) through the output mapping: (..., N) -> (..., K)."""
        y = v[..., : self.motor_size]
        if self.output_mapping in ("affine", "linear"):
            y = y * self.output_w
        if self.output_mapping == "affine":
            y = y + self.output_b
        return y

    def forward(self, inputs: Tensor, state: Tensor, elapsed_time=1.0) -> Tuple[Tensor, Tensor]:
        """One step: inputs (B, M), state (B, N), elapsed_time a number or (B, 1)."""
        dt = torch.as_tensor(elapsed_time, dtype=state.dtype, device=state.device)
        if dt.dim() == 0:
            dt = dt.expand(state.shape[0], 1)
        num, den = self.sensory_drive(self.map_inputs(inputs))
        v = self.solve(state, num, den, dt, self.weights())
        return self.map_outputs(v), v
