"""The wired CfC cell: one backbone-free CfC cell per wiring layer (for an NCP: inter, command,
motor), run in sequence within a step; layer 1 reads the input, each next layer the new output of
the one before.

The state is the layers' states concatenated in layer order ([inter | command | motor] for an
NCP, motor last); the output is the last layer's motor neurons. The ff1/ff2 weights from the
previous layer (the inputs, for layer 1) are multiplied by the 0/1 mask |adjacency| so that a
missing synapse has no effect and gets no gradient; time_a/time_b and the recurrence inside a
layer are dense, as in the reference. Polarity is not used.

Masking costs one multiply per layer: :meth:`WiredCfCCell.cached_weights` does it once for a
whole sequence, a single step does it itself.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cfc_control.models.cfc_cell import check_mode, closed_form_update, linear_bias_, xavier_uniform_
from cfc_control.wirings import Wiring


class WiredLayer(nn.Module):
    """One layer of ``n`` neurons fed by ``in_features``: fused heads [ff1|ff2|time_a|time_b]
    split into ``w_in`` (4n, in) and ``w_rec`` (4n, n), ``bias`` (4n,); pure mode: ff1 only
    (n rows) plus ``w_tau``, ``A`` (1, n). ``mask`` (rows of w_in) is a non-persistent buffer:
    the wiring in the model's config rebuilds it."""

    def __init__(self, in_features: int, n: int, mode: str, synapses: np.ndarray) -> None:
        super().__init__()
        self.in_features, self.n, self.mode = in_features, n, mode
        n_heads = 1 if mode == "pure" else 4
        self.w_in = nn.Parameter(torch.empty(n_heads * n, in_features))
        self.w_rec = nn.Parameter(torch.empty(n_heads * n, n))
        self.bias = nn.Parameter(torch.empty(n_heads * n))
        mask = torch.ones(n_heads * n, in_features)
        sparse = torch.from_numpy(np.abs(synapses).T.astype(np.float32))  # (n, in)
        mask[:n] = sparse
        if n_heads == 4:
            mask[n : 2 * n] = sparse
        self.register_buffer("mask", mask, persistent=False)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, n))
            self.A = nn.Parameter(torch.ones(1, n))
        else:
            self.register_parameter("w_tau", None)
            self.register_parameter("A", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_features + self.n
        for block_in, block_rec in zip(self.w_in.split(self.n, 0), self.w_rec.split(self.n, 0)):
            xavier_uniform_(block_in, fan_in, self.n)
            xavier_uniform_(block_rec, fan_in, self.n)
        linear_bias_(self.bias, fan_in)
        if self.w_tau is not None:
            xavier_uniform_(self.w_tau, self.n, 1)
            xavier_uniform_(self.A, self.n, 1)

    def masked_w_in(self) -> Tensor:
        return self.w_in * self.mask


class WiredCfCCell(nn.Module):
    """Wired CfC cell for a :class:`~cfc_control.wirings.Wiring` built for ``input_size``."""

    def __init__(self, input_size: int, wiring: Wiring, mode: str = "default") -> None:
        super().__init__()
        if not isinstance(wiring, Wiring):
            raise TypeError(f"wiring must be a cfc_control.wirings.Wiring, got {type(wiring).__name__}")
        wiring.build(input_size)
        self.mode = check_mode(mode)
        self.input_size = input_size
        self.layer_neurons: List[List[int]] = [wiring.get_neurons_of_layer(i) for i in range(wiring.num_layers)]
        self.layer_sizes = [len(ns) for ns in self.layer_neurons]
        self.state_size = wiring.units
        layers = []
        in_features, prev = input_size, None
        for neurons in self.layer_neurons:
            if prev is None:
                synapses = wiring.sensory_adjacency_matrix[:, neurons]
            else:
                synapses = wiring.adjacency_matrix[np.ix_(prev, neurons)]
            layers.append(WiredLayer(in_features, len(neurons), mode, synapses))
            in_features, prev = len(neurons), neurons
        self.layers = nn.ModuleList(layers)
        # The output is the motor neurons (ids below output_dim) of the last layer: the whole
        # last layer for an NCP, its first output_dim neurons for a one-layer wiring.
        motor = [i for i, n in enumerate(self.layer_neurons[-1]) if n < (wiring.output_dim or wiring.units)]
        if not motor:
            raise ValueError("the wiring's last layer has no motor neuron (id < output_dim)")
        if motor != list(range(len(motor))):
            raise ValueError(f"the motor neurons must come first in the wiring's last layer, got positions {motor}")
        self.output_size = len(motor)
        self._cache: Dict[int, List[Tensor]] = {}

    def masked_weights(self) -> List[Tensor]:
        """Each layer's masked input weights (4n, in)."""
        return [layer.masked_w_in() for layer in self.layers]

    @contextmanager
    def cached_weights(self) -> Iterator[None]:
        """Mask once for every step run inside the block (per thread)."""
        key = threading.get_ident()
        previous = self._cache.get(key)
        self._cache[key] = self.masked_weights()
        try:
            yield
        finally:
            if previous is None:
                self._cache.pop(key, None)
            else:
                self._cache[key] = previous

    def _weight(self, i: int) -> Tensor:
        cached = self._cache.get(threading.get_ident())
        return cached[i] if cached is not None else self.layers[i].masked_w_in()

    def input_projection(self, x: Tensor) -> Tensor:
        """Layer 1's input half over any leading shape: (..., m) -> (..., 4n1)."""
        first = self.layers[0]
        return F.linear(x, self._weight(0), first.bias)

    def forward(self, u: Tensor, h: Tensor, dt: Tensor) -> Tuple[Tensor, Tensor]:
        """One step: ``u`` (B, 4n1) from :meth:`input_projection`, ``h`` (B, N) in layer order,
        ``dt`` (B, 1). Returns (output (B, K) motor neurons, new state (B, N))."""
        states = h.split(self.layer_sizes, 1)
        new_states = []
        out: Optional[Tensor] = None
        for i, layer in enumerate(self.layers):
            if out is None:
                z = torch.addmm(u, states[i], layer.w_rec.t())
            else:
                z = torch.addmm(torch.addmm(layer.bias, out, self._weight(i).t()), states[i], layer.w_rec.t())
            out = closed_form_update(z, dt, self.mode, layer.w_tau, layer.A)
            new_states.append(out)
        y = out if self.output_size == out.shape[1] else out[:, : self.output_size]
        return y, torch.cat(new_states, 1)
