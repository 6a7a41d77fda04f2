"""The LTC sequence layer: the ODE-based liquid time-constant network that CfC replaces.

Same semantics as ``ncps.torch.LTC`` (1.0.1): the state is the N neuron potentials in neuron-id
order (motor neurons first, unlike the wired CfC), the output the K motor neurons through the
output mapping, then (our addition) an optional ``Linear(K, proj_size)``. With an int the layer is
fully connected (``FullyConnected(units)``, so K = N) like the reference. Per-sample Δt of shape
(B, T) works for every batch size (the reference's layer breaks there, see docs/equations.md).

Cost: every ODE unfold builds B x N x N tensors, and training keeps one for the backward pass:
a training step peaks near ``ode_unfolds * T * B * N * N * 10`` bytes (measured: 0.8 GB at
B=32, T=100, N=64, 6 unfolds); keep B and T modest for large N.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from cfc_control.models.base import RecurrentModel, State, reset_state
from cfc_control.models.lowering import StepDescription, add_mixed_memory, add_projection, as_array
from cfc_control.models.ltc_cell import MAPPINGS, LTCCell, LTCWeights
from cfc_control.models.mixed_memory import MixedMemoryLSTM
from cfc_control.wirings import FullyConnected, Wiring, from_ncps_wiring, wiring_from_config, wiring_to_config

# ncps.torch.LTC's mixed-memory LSTM names -> ours (the LTC cell's names are the same).
_NCPS_LSTM_KEYS = {
    "lstm.input_map.weight": "lstm.weight_ih",
    "lstm.input_map.bias": "lstm.bias_ih",
    "lstm.recurrent_map.weight": "lstm.weight_hh",
}


class LTC(RecurrentModel):
    """Liquid time-constant RNN on a wiring (or ``units`` fully connected neurons).

    ``forward(x (B, T, C), hx=None, timespans=None, episode_starts=None) -> (y (B, T, O), hx)``
    with O = ``proj_size`` or the wiring's motor count; ``hx`` is (B, N), or ``(h, c)`` with
    ``mixed_memory`` (an LSTM cell updates the state before each LTC step, as in the reference).
    ``step(x (B, C), hx, dt) -> (y (B, O), hx)``. See :class:`cfc_control.models.base.RecurrentModel`
    for the input layouts and :mod:`cfc_control.models.ltc_cell` for the equations and arguments.
    """

    def __init__(
        self,
        input_size: int,
        units_or_wiring: Union[int, Wiring, Dict[str, Any]],
        *,
        proj_size: Optional[int] = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
            raise ValueError(f"LTC input_size must be a positive int, got {input_size!r}")
        if proj_size is not None and (isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size <= 0):
            raise ValueError(f"LTC proj_size must be None or a positive int, got {proj_size!r}")
        if isinstance(units_or_wiring, bool):
            raise TypeError("LTC units_or_wiring must be an int or a wiring, got a bool")
        if isinstance(units_or_wiring, int):
            if units_or_wiring <= 0:
                raise ValueError(f"LTC units must be positive, got {units_or_wiring}")
            wiring: Wiring = FullyConnected(units_or_wiring)
            self._units_arg: Any = units_or_wiring
        elif isinstance(units_or_wiring, Wiring):
            wiring = units_or_wiring
            self._units_arg = None
        elif isinstance(units_or_wiring, dict):  # a saved model's config
            wiring = wiring_from_config(units_or_wiring)
            self._units_arg = None
        elif type(units_or_wiring).__module__.startswith("ncps."):
            wiring = from_ncps_wiring(units_or_wiring)
            self._units_arg = None
        else:
            raise TypeError(
                f"LTC units_or_wiring must be an int or a cfc_control.wirings wiring, got {type(units_or_wiring).__name__}"
            )
        wiring.build(input_size)  # a no-op when built for input_size; raises for another size
        self.wiring = wiring
        self.input_size = input_size
        self.state_size = wiring.units
        self.motor_size = wiring.output_dim
        self.output_size = proj_size or wiring.output_dim
        self.proj_size = proj_size
        self.batch_first = bool(batch_first)
        self.return_sequences = bool(return_sequences)
        self.mixed_memory = bool(mixed_memory)
        self.rnn_cell = LTCCell(
            wiring,
            input_mapping=input_mapping,
            output_mapping=output_mapping,
            ode_unfolds=ode_unfolds,
            epsilon=epsilon,
            implicit_param_constraints=implicit_param_constraints,
        )
        self.lstm = MixedMemoryLSTM(input_size, wiring.units) if self.mixed_memory else None
        self.fc = nn.Linear(wiring.output_dim, proj_size) if proj_size is not None else None

    # -- the contract --------------------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> State:
        p = self._param_like()
        z = torch.zeros(batch_size, self.state_size, device=device or p.device, dtype=dtype or p.dtype)
        return (z, z.clone()) if self.mixed_memory else z

    def input_map(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., [4N +] 2N): what depends on the input only, for a whole sequence at
        once: the input half of the mixed-memory LSTM's gates, and the sensory synapses' drive."""
        num, den = self.rnn_cell.sensory_drive(self.rnn_cell.map_inputs(x))
        parts = [self.lstm.input_projection(x), num, den] if self.lstm is not None else [num, den]
        return torch.cat(parts, dim=-1)

    def cell(self, u_t: Tensor, state: State, dt: Tensor) -> Tuple[Tensor, State]:
        return self._step(u_t, state, dt, self.rnn_cell.weights())

    def run_sequence(
        self, u: Tensor, state: State, ts: Tensor, starts: Optional[Tensor], initial: State
    ) -> Tuple[Optional[Tensor], State]:
        # The base loop, with the per-step weight transforms hoisted out of it.
        wts = self.rnn_cell.weights()
        outputs = []
        y_t = None
        for t in range(u.shape[1]):
            if starts is not None:
                state = reset_state(state, starts[:, t], initial)
            y_t, state = self._step(u[:, t], state, ts[:, t], wts)
            if self.return_sequences:
                outputs.append(y_t)
        if self.return_sequences:
            return torch.stack(outputs, dim=1), state
        return y_t, state

    def output_map(self, y: Tensor) -> Tensor:
        """Neuron potentials (..., N) -> motor outputs (..., K), then the projection if any."""
        out = self.rnn_cell.map_outputs(y)
        return self.fc(out) if self.fc is not None else out

    def _step(self, u_t: Tensor, state: State, dt: Tensor, wts: LTCWeights) -> Tuple[Tensor, State]:
        n = self.state_size
        if self.lstm is not None:
            gates, drive = u_t[:, : 4 * n], u_t[:, 4 * n :]
            v, c = self.lstm(gates, *state)
        else:
            drive, v, c = u_t, state, None
        v = self.rnn_cell.solve(v, drive[:, :n], drive[:, n:], dt, wts)
        return v, ((v, c) if self.mixed_memory else v)

    @torch.no_grad()
    def step_description(self) -> StepDescription:
        """This model's step for the runtime (:mod:`cfc_control.models.lowering`), kind "ltc":
        the derived tensors of :meth:`LTCCell.weights` and of the sensory synapses, the input and
        output mappings as scale and offset (1 and 0 where a mapping has none)."""
        cell = self.rnn_cell
        m, k = cell.sensory_size, cell.motor_size
        arrays: Dict[str, Any] = {}
        if self.lstm is not None:
            add_mixed_memory(arrays, self.lstm)
        ones_m, ones_k = torch.ones(m, dtype=torch.float64), torch.ones(k, dtype=torch.float64)
        arrays["input_w"] = as_array(getattr(cell, "input_w", ones_m))
        arrays["input_b"] = as_array(getattr(cell, "input_b", ones_m * 0))
        s_syn = cell._positive(cell.sensory_w) * cell.sensory_sparsity_mask
        arrays["sensory_sigma"] = as_array(cell.sensory_sigma)
        arrays["sensory_neg_sigma_mu"] = as_array(-cell.sensory_sigma * cell.sensory_mu)
        arrays["sensory_syn"] = as_array(s_syn)
        arrays["sensory_syn_erev"] = as_array(s_syn * cell.sensory_erev)
        wts = cell.weights()
        for name in ("cm", "leak_num", "leak_den", "sigma", "neg_sigma_mu", "syn", "syn_erev"):
            arrays[name] = as_array(getattr(wts, name))
        arrays["output_w"] = as_array(getattr(cell, "output_w", ones_k))
        arrays["output_b"] = as_array(getattr(cell, "output_b", ones_k * 0))
        add_projection(arrays, self.fc)
        sizes = (self.state_size, self.state_size) if self.lstm is not None else (self.state_size,)
        options = {"ode_unfolds": cell.ode_unfolds, "motor_size": k}
        return StepDescription("ltc", self.input_size, self.output_size, sizes, options, arrays)

    # -- configuration and import --------------------------------------------------------------
    def model_config(self) -> Dict[str, Any]:
        cell = self.rnn_cell
        units = self._units_arg if self._units_arg is not None else wiring_to_config(self.wiring)
        return {
            "class": "LTC",
            "kwargs": {
                "input_size": self.input_size,
                "units_or_wiring": units,
                "proj_size": self.proj_size,
                "return_sequences": self.return_sequences,
                "batch_first": self.batch_first,
                "mixed_memory": self.mixed_memory,
                "input_mapping": cell.input_mapping,
                "output_mapping": cell.output_mapping,
                "ode_unfolds": cell.ode_unfolds,
                "epsilon": cell.epsilon,
                "implicit_param_constraints": cell.implicit_param_constraints,
            },
        }

    def apply_weight_constraints(self) -> None:
        """Clip the positive parameters (call after each optimiser step when
        ``implicit_param_constraints=False``; a no-op otherwise)."""
        self.rnn_cell.apply_weight_constraints()

    @classmethod
    def from_ncps_module(cls, module: nn.Module) -> "LTC":
        """Our LTC with the weights of an ``ncps.torch.LTC`` (same outputs; on the module's
        device and dtype). ncps is imported here only: it is not a run-time dependency."""
        import ncps.torch as ref

        if not isinstance(module, ref.LTC):
            raise TypeError(f"expected an ncps.torch.LTC, got {type(module).__module__}.{type(module).__name__}")
        ref_cell = module.rnn_cell

        def mapping(name: str) -> str:
            return name if name in MAPPINGS[:2] else "none"  # the reference treats others as identity

        ours = cls(
            module.input_size,
            from_ncps_wiring(module._wiring),
            return_sequences=module.return_sequences,
            batch_first=module.batch_first,
            mixed_memory=module.use_mixed,
            input_mapping=mapping(ref_cell._input_mapping),
            output_mapping=mapping(ref_cell._output_mapping),
            ode_unfolds=int(ref_cell._ode_unfolds),
            epsilon=float(ref_cell._epsilon),
            implicit_param_constraints=bool(ref_cell._implicit_param_constraints),
        )
        ref_param = next(module.parameters())
        ours.to(device=ref_param.device, dtype=ref_param.dtype)
        state = {_NCPS_LSTM_KEYS.get(k, k): v for k, v in module.state_dict().items()}
        ours.load_state_dict(state)
        ours.train(module.training)
        return ours
