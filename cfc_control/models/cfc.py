"""``CfC``: the closed-form continuous-time sequence layer (unwired, or wired on a wiring such as
an NCP), with optional mixed memory and output projection, on the
:class:`~cfc_control.models.base.RecurrentModel` contract (forward over sequences with per-sample
elapsed time, step for control loops, episode-start resets)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from cfc_control.models.base import RecurrentModel, State
from cfc_control.models.cfc_cell import ACTIVATIONS, CfCCell, check_mode
from cfc_control.models.cfc_fused import fused_supported, run_fused
from cfc_control.models.lowering import StepDescription, add_mixed_memory, add_projection, as_array
from cfc_control.models.mixed_memory import MixedMemoryLSTM
from cfc_control.models.wired_cfc import WiredCfCCell
from cfc_control.wirings import Wiring, from_ncps_wiring, wiring_from_config, wiring_to_config

_BACKBONE_DEFAULTS = {"backbone_units": 128, "backbone_layers": 1, "backbone_dropout": 0.0}


def _as_wiring(units_or_wiring: Any) -> Union[int, Wiring]:
    if isinstance(units_or_wiring, Wiring):
        return units_or_wiring
    if isinstance(units_or_wiring, dict):  # a saved model's config
        return wiring_from_config(units_or_wiring)
    if type(units_or_wiring).__module__.startswith("ncps."):
        return from_ncps_wiring(units_or_wiring)
    if isinstance(units_or_wiring, bool) or not isinstance(units_or_wiring, int) or units_or_wiring < 1:
        raise ValueError(f"CfC units_or_wiring must be an int >= 1 or a Wiring, got {units_or_wiring!r}")
    return units_or_wiring


class CfC(RecurrentModel):
    """Closed-form continuous-time RNN layer.

    Args:
        input_size: C, input features.
        units_or_wiring: H, the number of units (unwired CfC with a backbone), or a wiring
            (:mod:`cfc_control.wirings`; an ``ncps.wirings`` one is converted): the wired CfC,
            with state size ``wiring.units`` and output the ``wiring.output_dim`` motor neurons.
            The wiring is built for ``input_size`` in place.
        proj_size: if set, a Linear maps each output to ``proj_size`` features.
        mode: "default" (gated), "no_gate" or "pure" (direct solution).
        mixed_memory: run an LSTM cell before the CfC each step; the state is then (h, c).
        activation: backbone activation, one of lecun_tanh, silu, relu, tanh, gelu.
        backbone_units, backbone_layers, backbone_dropout: the backbone (unwired only; a wired
            CfC has none, so non-default values raise). Dropout applies after layers 2..L.
        return_sequences: output every step (B, T, O) or only the last (B, O).
        batch_first: (B, T, C) input, else (T, B, C).

    ``forward(x, hx=None, timespans=None, episode_starts=None) -> (y, hx)`` and
    ``step(x, hx=None, dt=1.0, episode_start=None) -> (y, hx)``: shapes in
    :mod:`cfc_control.models.base`. State: (B, H), or (h, c) both (B, H) with mixed memory.
    """

    def __init__(
        self,
        input_size: int,
        units_or_wiring: Union[int, Wiring, Dict[str, Any]],
        *,
        proj_size: Optional[int] = None,
        mode: str = "default",
        mixed_memory: bool = False,
        activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        return_sequences: bool = True,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ValueError(f"CfC input_size must be an int >= 1, got {input_size!r}")
        if proj_size is not None and (isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 1):
            raise ValueError(f"CfC proj_size must be None or an int >= 1, got {proj_size!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        check_mode(mode)
        units = _as_wiring(units_or_wiring)
        self.input_size = input_size
        self.mode = mode
        self.batch_first = bool(batch_first)
        self.return_sequences = bool(return_sequences)
        self.wiring: Optional[Wiring] = None
        self.rnn_cell: Union[CfCCell, WiredCfCCell]
        if isinstance(units, Wiring):
            given = {"backbone_units": backbone_units, "backbone_layers": backbone_layers, "backbone_dropout": backbone_dropout}
            bad = {k: v for k, v in given.items() if v != _BACKBONE_DEFAULTS[k]}
            if bad:
                raise ValueError(f"a wired CfC has no backbone; remove {sorted(bad)} (got {bad})")
            self.wiring = units
            self.rnn_cell = WiredCfCCell(input_size, units, mode)
            self.state_size = units.units
            cell_output = self.rnn_cell.output_size
        else:
            self.rnn_cell = CfCCell(input_size, units, mode, activation, backbone_units, backbone_layers, backbone_dropout)
            self.state_size = units
            cell_output = units
        self.lstm = MixedMemoryLSTM(input_size, self.state_size) if mixed_memory else None
        self._cell_output_size = cell_output
        self.fc = nn.Linear(cell_output, proj_size) if proj_size is not None else None
        self.output_size = proj_size if proj_size is not None else cell_output
        # The hand-written training backward (cfc_fused); False forces plain autograd.
        self.fused_backward = True
        self._state_as_features = False  # a wired CfC's steps give every neuron (forward_features)
        self._lstm_width = 4 * self.state_size if mixed_memory else 0
        self._kwargs: Dict[str, Any] = {
            "proj_size": proj_size,
            "mode": mode,
            "mixed_memory": bool(mixed_memory),
            "activation": activation,
            "return_sequences": self.return_sequences,
            "batch_first": self.batch_first,
        }
        if self.wiring is None:
            self._kwargs.update(backbone_units=backbone_units, backbone_layers=backbone_layers, backbone_dropout=float(backbone_dropout))

    @property
    def mixed_memory(self) -> bool:
        return self.lstm is not None

    def model_config(self) -> Dict[str, Any]:
        """``{"class": "CfC", "kwargs": ...}``; ``CfC(**kwargs)`` rebuilds the same model (a
        wiring is stored as :func:`~cfc_control.wirings.wiring_to_config`'s dict)."""
        return {"class": "CfC", "kwargs": self.config}

    @property
    def config(self) -> Dict[str, Any]:
        """The constructor arguments, JSON-serialisable (a wiring as its config dict)."""
        units = wiring_to_config(self.wiring) if self.wiring is not None else self.state_size
        return {"input_size": self.input_size, "units_or_wiring": units, **self._kwargs}

    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> State:
        """Zeros (B, H), or a pair of them with mixed memory."""
        ref = self.rnn_cell.layers[0].bias if self.wiring is not None else self.rnn_cell.in_proj.bias
        zeros = torch.zeros(batch_size, self.state_size, device=device or ref.device, dtype=dtype or ref.dtype)
        return (zeros, zeros.clone()) if self.lstm is not None else zeros

    def input_map(self, x: Tensor) -> Tensor:
        """Input halves of the LSTM gates (mixed memory) and of the cell's first map, for a whole
        sequence at once: (..., C) -> (..., 4H + P).

        A (B, T, C) sequence is projected time-major and returned as a (B, T, ·) view of it, so
        that each step's slice ``u[:, t]`` (and its gradient) is one contiguous block."""
        if x.dim() == 3:
            return self._project(x.transpose(0, 1)).transpose(0, 1)
        return self._project(x)

    def _project(self, x: Tensor) -> Tensor:
        u = self.rnn_cell.input_projection(x)
        if self.lstm is not None:
            u = torch.cat([self.lstm.input_projection(x), u], -1)
        return u

    def cell(self, u_t: Tensor, state: State, dt: Tensor) -> Tuple[Tensor, State]:
        if self.lstm is None:
            return self._cfc_step(u_t, state, dt)
        h, c = state
        h, c = self.lstm(u_t[:, : self._lstm_width], h, c)
        y, h = self._cfc_step(u_t[:, self._lstm_width :], h, dt)
        return y, (h, c)

    def _cfc_step(self, u: Tensor, h: Tensor, dt: Tensor) -> Tuple[Tensor, Tensor]:
        if self.wiring is not None:
            y, h = self.rnn_cell(u, h, dt)
            return (h if self._state_as_features else y), h
        h = self.rnn_cell(u, h, dt)
        return h, h

    def forward_features(self, x: Tensor, hx: Optional[State] = None, timespans: Any = None,
                         episode_starts: Optional[Tensor] = None) -> Tuple[Tensor, State]:
        """The unwired CfC's features are its state; a wired CfC's output is its motor neurons
        alone, so its features are every neuron's state (B, T, N), from which
        :meth:`output_from_features` picks the motor neurons."""
        if self.wiring is None:
            return super().forward_features(x, hx, timespans, episode_starts)
        self._state_as_features = True
        try:
            return super().forward_features(x, hx, timespans, episode_starts)
        finally:
            self._state_as_features = False

    def output_from_features(self, features: Tensor) -> Tensor:
        if self.wiring is None:
            return self.output_map(features)
        start = sum(self.rnn_cell.layer_sizes[:-1])  # the motor neurons lead the last layer
        return self.output_map(features[..., start:start + self.rnn_cell.output_size])

    def run_sequence(
        self, u: Tensor, state: State, ts: Tensor, starts: Optional[Tensor], initial: State
    ) -> Tuple[Optional[Tensor], State]:
        """Training an unwired CfC without mixed memory takes the hand-written backward of
        :mod:`cfc_control.models.cfc_fused`; everything else the base loop."""
        if self._use_fused(u, state, ts):
            keep = (~starts).to(u.dtype) if starts is not None else None
            y_all, last = run_fused(self.rnn_cell, u, state, ts, keep)
            return (y_all if self.return_sequences else last), last
        return super().run_sequence(u, state, ts, starts, initial)

    def _use_fused(self, u: Tensor, state: State, ts: Tensor) -> bool:
        if self.wiring is not None or self.lstm is not None or not self.fused_backward:
            return False
        if not torch.is_grad_enabled() or ts.requires_grad or not fused_supported(self.rnn_cell):
            return False
        return u.requires_grad or state.requires_grad

    def output_map(self, y: Tensor) -> Tensor:
        return self.fc(y) if self.fc is not None else y

    def sequence_context(self):
        """A wired CfC masks its weights once per sequence."""
        return self.rnn_cell.cached_weights() if self.wiring is not None else super().sequence_context()

    @torch.no_grad()
    def step_description(self) -> StepDescription:
        """This model's step for the runtime (:mod:`cfc_control.models.lowering`): kind "cfc"
        (unwired) or "wired_cfc"."""
        arrays: Dict[str, Any] = {}
        if self.lstm is not None:
            add_mixed_memory(arrays, self.lstm)
        cell = self.rnn_cell
        if self.wiring is not None:
            for i, layer in enumerate(cell.layers):
                arrays[f"layer{i}.w_in"] = as_array(layer.masked_w_in())
                arrays[f"layer{i}.w_rec"] = as_array(layer.w_rec)
                arrays[f"layer{i}.bias"] = as_array(layer.bias)
                if self.mode == "pure":
                    arrays[f"layer{i}.w_tau"] = as_array(layer.w_tau).reshape(-1)
                    arrays[f"layer{i}.A"] = as_array(layer.A).reshape(-1)
            options: Dict[str, Any] = {"mode": self.mode, "layer_sizes": list(cell.layer_sizes),
                                       "motor_size": cell.output_size}
            kind = "wired_cfc"
        else:
            arrays["in_w"], arrays["in_b"] = as_array(cell.in_proj.weight), as_array(cell.in_proj.bias)
            arrays["rec_w"] = as_array(cell.rec_proj.weight)
            linears = [m for m in cell.backbone if isinstance(m, nn.Linear)]
            for k, module in enumerate(linears):
                arrays[f"backbone{k}.w"], arrays[f"backbone{k}.b"] = as_array(module.weight), as_array(module.bias)
            if cell.heads is not None:
                arrays["heads.w"], arrays["heads.b"] = as_array(cell.heads.weight), as_array(cell.heads.bias)
            if self.mode == "pure":
                arrays["w_tau"], arrays["A"] = as_array(cell.w_tau).reshape(-1), as_array(cell.A).reshape(-1)
            options = {"mode": self.mode, "activation": cell.activation, "backbone_layers": cell.backbone_layers}
            kind = "cfc"
        add_projection(arrays, self.fc)
        sizes = (self.state_size, self.state_size) if self.lstm is not None else (self.state_size,)
        return StepDescription(kind, self.input_size, self.output_size, sizes, options, arrays)

    def extra_repr(self) -> str:
        what = repr(self.wiring) if self.wiring is not None else f"units={self.state_size}"
        return f"input_size={self.input_size}, {what}, mode={self.mode!r}, output_size={self.output_size}"
