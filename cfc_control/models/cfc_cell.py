"""One step of the closed-form continuous-time (CfC) cell.

Equations (docs/equations.md, the reference library's semantics), for input x (B, m), state h
(B, H) and elapsed time dt (B, 1):

    b  = backbone([x, h])                      (B, U)  (identity when backbone_layers = 0)
    f1, f2, ta, tb = heads(b)                  four (B, H) heads
    s  = sigmoid(ta * dt + tb)
    default: h' = tanh(f1) * (1 - s) + s * tanh(f2)
    no_gate: h' = tanh(f1) + s * tanh(f2)
    pure:    h' = A - A * exp(-dt * (|w_tau| + |f1|)) * f1      (only the f1 head)

For speed the first linear map over [x, h] is split in two: its input half
(:meth:`CfCCell.input_projection`) runs over a whole sequence in one matmul before the time loop,
and only the recurrent half runs per step; the four heads are one matmul.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODES = ("default", "no_gate", "pure")
ACTIVATIONS = ("lecun_tanh", "silu", "relu", "tanh", "gelu")


# torch's CPU tanh is several times slower than its sigmoid on large tensors (measured: 105 us
# against 18 us for 256 x 128 float32 on one core), so large tensors use tanh(x) = 2 sigmoid(2x) - 1
# (equal within 2.5e-7). The choice depends only on the per-step tensor size, so stepping and
# running a sequence at the same batch size compute identically.
_SIGMOID_FORM_MIN_NUMEL = 4096


def fast_tanh(x: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """tanh(x), computed through sigmoid for tensors of 4096 elements or more (into ``out`` when
    given: the same values)."""
    if x.numel() < _SIGMOID_FORM_MIN_NUMEL:
        return torch.tanh(x, out=out)
    if out is None:
        return torch.sigmoid(x * 2.0).mul(2.0).sub_(1.0)
    return torch.mul(x, 2.0, out=out).sigmoid_().mul_(2.0).sub_(1.0)


class LeCunTanh(nn.Module):
    """1.7159 * tanh(0.666 x), the reference's default backbone activation."""

    def forward(self, x: Tensor) -> Tensor:
        if x.numel() < _SIGMOID_FORM_MIN_NUMEL:
            return 1.7159 * torch.tanh(0.666 * x)
        return torch.sigmoid(x * (2 * 0.666)).mul(2 * 1.7159).sub_(1.7159)


def make_activation(name: str) -> nn.Module:
    """The backbone activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name == "lecun_tanh":
        return LeCunTanh()
    modules = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
    if name not in modules:
        raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")
    return modules[name]()


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown CfC mode {mode!r}; choose one of {MODES}")
    return mode


def xavier_uniform_(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    """Xavier-uniform with explicit fans, so a block of a fused weight gets the bound its own
    (unfused) matrix would get in the reference."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


def linear_bias_(tensor: Tensor, fan_in: int) -> None:
    """torch.nn.Linear's default bias init for a layer with ``fan_in`` inputs."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


def closed_form_update(
    heads: Tensor, dt: Tensor, mode: str, w_tau: Optional[Tensor] = None, A: Optional[Tensor] = None
) -> Tensor:
    """The new state from the head pre-activations.

    ``heads`` is (B, 4H) laid out [ff1 | ff2 | time_a | time_b] (or (B, H), ff1 only, in pure
    mode, where ``w_tau`` and ``A`` are (1, H)); ``dt`` is (B, 1). Returns (B, H)."""
    return closed_form_parts(heads, dt, mode, w_tau, A)[0]


def closed_form_parts(
    heads: Tensor, dt: Tensor, mode: str, w_tau: Optional[Tensor] = None, A: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`closed_form_update` plus what its derivative needs: ``(h, f, s)`` with, in
    default/no_gate mode, f = tanh([ff1 | ff2]) (B, 2H) and s the time gate (B, H); in pure mode
    f = ff1 and s = exp(-dt * (|w_tau| + |ff1|)) (B, H)."""
    if mode == "pure":
        decay = torch.exp(-dt * (w_tau.abs() + heads.abs()))
        return A - A * decay * heads, heads, decay
    hidden = heads.shape[1] // 4
    # One split (not three slices): its backward is a single cat instead of three zero-filled
    # full-width gradients added together.
    ff, t_a, t_b = heads.split([2 * hidden, hidden, hidden], 1)
    f = fast_tanh(ff)
    f1, f2 = f.chunk(2, 1)
    gate = torch.sigmoid(torch.addcmul(t_b, t_a, dt))
    if mode == "no_gate":
        return torch.addcmul(f1, gate, f2), f, gate
    return torch.lerp(f1, f2, gate), f, gate


class CfCCell(nn.Module):
    """The CfC cell with a backbone (the unwired CfC).

    Parameters: ``in_proj`` (P, m) with bias and ``rec_proj`` (P, H) are the input and recurrent
    halves of the first map (P = backbone_units, or the head width when ``backbone_layers`` is 0);
    ``backbone`` the further layers (Linear, activation, Dropout when ``backbone_dropout`` > 0,
    the reference's quirk: there is no dropout after the first layer); ``heads`` (4H, U) fused
    [ff1 | ff2 | time_a | time_b] (H rows, ff1, in pure mode); ``w_tau``, ``A`` (1, H) in pure mode.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("input_size", input_size, 1),
            ("hidden_size", hidden_size, 1),
            ("backbone_units", backbone_units, 1),
            ("backbone_layers", backbone_layers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"CfC {name} must be an int >= {low}, got {value!r}")
        if not 0.0 <= float(backbone_dropout) < 1.0:
            raise ValueError(f"CfC backbone_dropout must be in [0, 1), got {backbone_dropout!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.mode = check_mode(mode)
        self.activation = activation
        self.backbone_units, self.backbone_layers = backbone_units, backbone_layers
        self.backbone_dropout = float(backbone_dropout)
        self.n_heads = 1 if mode == "pure" else 4
        head_width = self.n_heads * hidden_size
        width = backbone_units if backbone_layers > 0 else head_width
        self.in_proj = nn.Linear(input_size, width)
        self.rec_proj = nn.Linear(hidden_size, width, bias=False)
        self.act = make_activation(activation)
        layers = []
        for _ in range(1, backbone_layers):
            layers += [nn.Linear(backbone_units, backbone_units), make_activation(activation)]
            if self.backbone_dropout > 0.0:
                layers.append(nn.Dropout(self.backbone_dropout))
        self.backbone = nn.Sequential(*layers)
        self.heads = nn.Linear(backbone_units, head_width) if backbone_layers > 0 else None
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden_size))
            self.A = nn.Parameter(torch.ones(1, hidden_size))
        else:
            self.register_parameter("w_tau", None)
            self.register_parameter("A", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialisation: Xavier-uniform on every weight matrix as the reference
        shapes it (each head, and the whole first map over [x, h], separately), torch's Linear
        default on biases."""
        m, h = self.input_size, self.hidden_size
        first_in = m + h
        first_out = self.backbone_units if self.backbone_layers > 0 else h
        for block_in, block_rec in zip(
            self.in_proj.weight.split(first_out, 0), self.rec_proj.weight.split(first_out, 0)
        ):
            xavier_uniform_(block_in, first_in, first_out)
            xavier_uniform_(block_rec, first_in, first_out)
        linear_bias_(self.in_proj.bias, first_in)
        for layer in self.backbone:
            if isinstance(layer, nn.Linear):
                xavier_uniform_(layer.weight, self.backbone_units, self.backbone_units)
                linear_bias_(layer.bias, self.backbone_units)
        if self.heads is not None:
            for block in self.heads.weight.split(h, 0):
                xavier_uniform_(block, self.backbone_units, h)
            linear_bias_(self.heads.bias, self.backbone_units)
        if self.w_tau is not None:
            xavier_uniform_(self.w_tau, h, 1)
            xavier_uniform_(self.A, h, 1)

    def input_projection(self, x: Tensor) -> Tensor:
        """The input half of the first map: (..., m) -> (..., P)."""
        return F.linear(x, self.in_proj.weight, self.in_proj.bias)

    def head_preactivations(self, u: Tensor, h: Tensor) -> Tensor:
        """(B, P) input projection and (B, H) state -> (B, 4H) heads [ff1|ff2|time_a|time_b]."""
        z = torch.addmm(u, h, self.rec_proj.weight.t())
        if self.heads is None:
            return z
        return self.heads(self.backbone(self.act(z)))

    def forward(self, u: Tensor, h: Tensor, dt: Tensor) -> Tensor:
        """One step: ``u`` (B, P) from :meth:`input_projection`, ``h`` (B, H), ``dt`` (B, 1);
        returns the new state (B, H)."""
        return closed_form_update(self.head_preactivations(u, h), dt, self.mode, self.w_tau, self.A)
