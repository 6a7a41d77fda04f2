"""The LSTM cell of mixed memory (CfC-mmRNN), in the reference's torch order: it runs first
each step and its output replaces the CfC state.

    z = W_ih x + b_ih + W_hh h          (no recurrent bias)
    i, ig, fg, og = split(z, 4)
    c' = c * sigmoid(fg + 1) + tanh(i) * sigmoid(ig)
    h' = tanh(c') * sigmoid(og)
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cfc_control.models.cfc_cell import xavier_uniform_


class MixedMemoryLSTM(nn.Module):
    """Parameters ``weight_ih`` (4H, m), ``bias_ih`` (4H,), ``weight_hh`` (4H, H), gate blocks in
    the order [input activation | input gate | forget gate | output gate]."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        # The forget gate's +1 is added to the input projection once per sequence, so the three
        # gates share one sigmoid per step. Not a parameter: it is not in the state_dict.
        offset = torch.zeros(4 * hidden_size)
        offset[2 * hidden_size : 3 * hidden_size] = 1.0
        self.register_buffer("forget_offset", offset, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's init: Xavier input weights, U(-0.1, 0.1) bias, orthogonal recurrent."""
        xavier_uniform_(self.weight_ih, self.input_size, 4 * self.hidden_size)
        with torch.no_grad():
            self.bias_ih.uniform_(-0.1, 0.1)
        nn.init.orthogonal_(self.weight_hh)

    def input_projection(self, x: Tensor) -> Tensor:
        """(..., m) -> (..., 4H): the input half of the gates, forget offset included."""
        return F.linear(x, self.weight_ih, self.bias_ih + self.forget_offset)

    def forward(self, u: Tensor, h: Tensor, c: Tensor) -> Tuple[Tensor, Tensor]:
        """One step: ``u`` (B, 4H) from :meth:`input_projection`, ``h``, ``c`` (B, H) -> (h', c')."""
        hidden = self.hidden_size
        z = torch.addmm(u, h, self.weight_hh.t())
        candidate = torch.tanh(z[:, :hidden])
        gates = torch.sigmoid(z[:, hidden:])
        c_new = torch.addcmul(c * gates[:, hidden : 2 * hidden], candidate, gates[:, :hidden])
        return torch.tanh(c_new) * gates[:, 2 * hidden :], c_new
