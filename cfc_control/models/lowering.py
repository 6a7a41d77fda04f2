"""A model's one step described for the runtime ("lowering"): the kind of cell, its sizes and
options, and its trained arrays in the order the step reads them, as float64 numpy arrays.

Every model has ``step_description() -> StepDescription``; the C generator
(:mod:`cfc_control.runtime.c_export`) and the numpy kernels (``runtime/numpy_*.py``) read this
description, never the model's private attributes. The arrays are the model's own parameters, transformed only where the
step itself would transform them identically every time (the wired CfC's mask applied, the LTC's
positive parameters through softplus, the mixed-memory forget offset added to its bias), so that
a kernel computes exactly ``model.step``.

Kinds and their arrays (shapes in the torch layout, (out, in) for weights):

* ``cfc`` (unwired): ``in_w`` (P, m), ``in_b`` (P,), ``rec_w`` (P, H), then per backbone layer
  ``backbone{k}.w``/``.b`` (U, U), ``heads.w``/``.b`` (head width, U) when it has a backbone,
  ``w_tau``, ``A`` (H,) in pure mode; options mode, activation, backbone_layers.
* ``wired_cfc``: per layer ``layer{i}.w_in`` (k n_i, in_i, masked), ``.w_rec`` (k n_i, n_i),
  ``.bias``, and ``.w_tau``/``.A`` (n_i,) in pure mode; options mode, layer_sizes, motor_size.
* ``ltc``: ``input_w``, ``input_b`` (M,), ``sensory_sigma``, ``sensory_neg_sigma_mu``,
  ``sensory_syn``, ``sensory_syn_erev`` (M, N), ``cm``, ``leak_num``, ``leak_den`` (N,),
  ``sigma``, ``neg_sigma_mu``, ``syn``, ``syn_erev`` (N, N) [source, target], ``output_w``,
  ``output_b`` (K,); options ode_unfolds, motor_size.
* ``lstm`` / ``gru``: ``w_ih`` (G H, m [+1 time]), ``w_hh`` (G H, H), ``b_ih``, ``b_hh``; option
  time_input (the model time is the last input feature).
* ``mlp``: ``layer{k}.w``/``.b`` per Linear, the last one the output; options activation,
  time_input.

CfC and LTC with mixed memory add ``lstm.w_ih`` (4H, m), ``lstm.b`` (4H,, forget offset added),
``lstm.w_hh`` (4H, H) (gate blocks [candidate | input | forget | output]); any model with an
output projection adds ``fc.w``/``fc.b`` (the LSTM/GRU/MLP baselines always have theirs).
``state_sizes`` is the model's state tensors' widths in order (h [, c]), () for the MLP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

KINDS = ("cfc", "wired_cfc", "ltc", "lstm", "gru", "mlp")


@dataclass(frozen=True)
class StepDescription:
    """One model step as data. ``options`` holds ints, floats, strings and lists of ints;
    ``arrays`` float64 copies in the order the step reads them."""

    kind: str
    n_in: int
    n_out: int
    state_sizes: Tuple[int, ...]
    options: Dict[str, Any] = field(default_factory=dict)
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown step kind {self.kind!r}; one of {KINDS}")

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise KeyError(f"the {self.kind} step has no array {name!r}; it has {list(self.arrays)}")
        return self.arrays[name]

    def has(self, name: str) -> bool:
        return name in self.arrays

    @property
    def mixed_memory(self) -> bool:
        return "lstm.w_ih" in self.arrays


def as_array(t: Optional[torch.Tensor]) -> np.ndarray:
    """A tensor as a float64 numpy copy (detached, on the CPU)."""
    if t is None:
        raise ValueError("missing parameter")
    return t.detach().cpu().to(torch.float64).numpy().copy()


def add_mixed_memory(arrays: Dict[str, np.ndarray], lstm: Any) -> None:
    """The mixed-memory LSTM's arrays (``lstm`` a MixedMemoryLSTM), forget offset in the bias."""
    arrays["lstm.w_ih"] = as_array(lstm.weight_ih)
    arrays["lstm.b"] = as_array(lstm.bias_ih) + as_array(lstm.forget_offset)
    arrays["lstm.w_hh"] = as_array(lstm.weight_hh)


def add_projection(arrays: Dict[str, np.ndarray], fc: Optional[torch.nn.Linear]) -> None:
    if fc is not None:
        arrays["fc.w"] = as_array(fc.weight)
        arrays["fc.b"] = as_array(fc.bias)


__all__ = ["StepDescription", "KINDS", "as_array", "add_mixed_memory", "add_projection"]
