"""Baselines with the same contract as CfC: LSTM and GRU (time-aware through a Δt input) and an MLP.

LSTM and GRU get the elapsed time Δt as one extra input feature, appended after the C inputs:
that is the fair time-aware baseline a CfC is compared with (``time_input=False`` drops it, for
ablations). The MLP has no memory; its state is an empty (B, 0) tensor so that every model keeps
the same ``forward``/``step`` signature and state handling.

LSTM and GRU hold their weights in ``torch.nn.LSTM``/``torch.nn.GRU`` (one layer). A sequence
without episode starts after its first step runs through torch's fused kernel (several times
faster than a Python loop over steps); otherwise, and in ``step``, the same weights run one step
at a time through torch's cell functions. Both paths compute the same function.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from cfc_control.models.base import RecurrentModel, State, as_states, map_state, reset_state
from cfc_control.models.lowering import StepDescription, add_projection, as_array

_ACTIVATIONS: Dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
}


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int, or a ValueError/TypeError naming ``name`` when it is not a positive int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def _with_time(u: Tensor, dt: Tensor, time_input: bool) -> Tensor:
    """Append Δt (..., 1) as the last input feature when ``time_input``."""
    return torch.cat([u, dt.to(u.dtype)], dim=-1) if time_input else u


class _GatedRNN(RecurrentModel):
    """Shared LSTM/GRU machinery: a one-layer torch RNN on [x, Δt] and a Linear head; the state
    is ``_state_tensors`` zero-initialised (B, units) tensors (a tuple when more than one).
    Subclasses name the torch module (``_torch_rnn``, which holds the weights and runs whole
    sequences) and the matching one-step function (``_torch_cell(x, state, *weights) -> state``)."""

    _torch_rnn: Callable[..., nn.Module]
    _torch_cell: Callable[..., State]
    _state_tensors: int

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        units: int = 64,
        time_input: bool = True,
        return_sequences: bool = True,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.output_size = check_positive_int("output_size", output_size)
        self.state_size = check_positive_int("units", units)
        self.units = units
        self.time_input = bool(time_input)
        self.return_sequences = bool(return_sequences)
        self.batch_first = bool(batch_first)
        self.rnn = self._torch_rnn(input_size + int(self.time_input), units, batch_first=True)
        self.fc = nn.Linear(units, output_size)

    def _weights(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        rnn = self.rnn
        return rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0

    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> State:
        p = self._param_like()
        zeros = [torch.zeros(batch_size, self.units, device=device or p.device, dtype=dtype or p.dtype)
                 for _ in range(self._state_tensors)]
        return tuple(zeros) if len(zeros) > 1 else zeros[0]

    def cell(self, u_t: Tensor, state: State, dt: Tensor) -> Tuple[Tensor, State]:
        state = self._torch_cell(_with_time(u_t, dt, self.time_input), state, *self._weights())
        return as_states(state)[0], state  # the output is h

    def output_map(self, y: Tensor) -> Tensor:
        return self.fc(y)

    def run_sequence(
        self, u: Tensor, state: State, ts: Tensor, starts: Optional[Tensor], initial: State
    ) -> Tuple[Optional[Tensor], State]:
        # torch's kernel cannot reset rows mid-sequence; a reset at t = 0 is just a new hx.
        if u.shape[1] == 0 or (starts is not None and bool(starts[:, 1:].any())):
            return super().run_sequence(u, state, ts, starts, initial)
        if starts is not None:
            state = reset_state(state, starts[:, 0], initial)
        hx = map_state(state, lambda s: s.unsqueeze(0).contiguous())
        y, hn = self.rnn(_with_time(u, ts, self.time_input), hx)
        state = map_state(hn, lambda s: s.squeeze(0))
        return (y if self.return_sequences else y[:, -1]), state

    @torch.no_grad()
    def step_description(self) -> StepDescription:
        """This model's step for the runtime (:mod:`cfc_control.models.lowering`): kind "lstm" or
        "gru", torch's gate order, the model time as the last input when ``time_input``."""
        arrays = dict(zip(("w_ih", "w_hh", "b_ih", "b_hh"), (as_array(w) for w in self._weights())))
        add_projection(arrays, self.fc)
        kind = type(self).__name__.lower()
        return StepDescription(kind, self.input_size, self.output_size, (self.units,) * self._state_tensors,
                               {"time_input": self.time_input}, arrays)

    def model_config(self) -> Dict[str, Any]:
        return {
            "class": type(self).__name__,
            "kwargs": {
                "input_size": self.input_size,
                "output_size": self.output_size,
                "units": self.units,
                "time_input": self.time_input,
                "return_sequences": self.return_sequences,
                "batch_first": self.batch_first,
            },
        }


class LSTM(_GatedRNN):
    """LSTM baseline: ``torch.nn.LSTM`` on [x, Δt], then ``Linear(units, output_size)``.

    State ``(h, c)``, each (B, units). ``forward(x (B, T, C), hx, timespans, episode_starts) ->
    (y (B, T, output_size), (h, c))``; ``step(x (B, C), hx, dt) -> (y (B, output_size), (h, c))``.
    """

    _torch_rnn = nn.LSTM
    _state_tensors = 2

    @staticmethod
    def _torch_cell(x: Tensor, state: State, *weights: Tensor) -> State:
        return tuple(torch.lstm_cell(x, list(state), *weights))


class GRU(_GatedRNN):
    """GRU baseline: ``torch.nn.GRU`` on [x, Δt], then ``Linear(units, output_size)``.

    State h (B, units); shapes otherwise as :class:`LSTM`.
    """

    _torch_rnn = nn.GRU
    _state_tensors = 1
    _torch_cell = staticmethod(torch.gru_cell)


class MLP(RecurrentModel):
    """Memoryless baseline: an MLP on [x, Δt] applied to every step independently.

    ``hidden`` are the hidden layer widths, each followed by ``activation`` (one of
    tanh, relu, silu, gelu, elu); the last layer is ``Linear(hidden[-1], output_size)``.
    The state is an empty (B, 0) tensor, passed through unchanged.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        time_input: bool = True,
        return_sequences: bool = True,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.output_size = check_positive_int("output_size", output_size)
        self.state_size = 0
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of layer widths, got {hidden!r}")
        self.hidden = [check_positive_int(f"hidden[{i}]", h) for i, h in enumerate(hidden)]
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        self.activation = activation
        self.time_input = bool(time_input)
        self.return_sequences = bool(return_sequences)
        self.batch_first = bool(batch_first)
        layers = []
        width = input_size + int(self.time_input)
        for h in self.hidden:
            layers += [nn.Linear(width, h), _ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, output_size))
        self.net = nn.Sequential(*layers)

    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> State:
        p = self._param_like()
        return torch.zeros(batch_size, 0, device=device or p.device, dtype=dtype or p.dtype)

    def cell(self, u_t: Tensor, state: State, dt: Tensor) -> Tuple[Tensor, State]:
        return self.net(_with_time(u_t, dt, self.time_input)), state

    def run_sequence(
        self, u: Tensor, state: State, ts: Tensor, starts: Optional[Tensor], initial: State
    ) -> Tuple[Optional[Tensor], State]:
        # No memory: every step at once, and resets change nothing.
        if u.shape[1] == 0:
            return super().run_sequence(u, state, ts, starts, initial)
        y = self.net(_with_time(u, ts, self.time_input))
        return (y if self.return_sequences else y[:, -1]), state

    @torch.no_grad()
    def step_description(self) -> StepDescription:
        """This model's step for the runtime (:mod:`cfc_control.models.lowering`), kind "mlp"."""
        arrays: Dict[str, Any] = {}
        for k, module in enumerate(m for m in self.net if isinstance(m, nn.Linear)):
            arrays[f"layer{k}.w"], arrays[f"layer{k}.b"] = as_array(module.weight), as_array(module.bias)
        options = {"activation": self.activation, "time_input": self.time_input}
        return StepDescription("mlp", self.input_size, self.output_size, (), options, arrays)

    def model_config(self) -> Dict[str, Any]:
        return {
            "class": "MLP",
            "kwargs": {
                "input_size": self.input_size,
                "output_size": self.output_size,
                "hidden": list(self.hidden),
                "activation": self.activation,
                "time_input": self.time_input,
                "return_sequences": self.return_sequences,
                "batch_first": self.batch_first,
            },
        }
