"""Which entry of a model's state is which neuron, and in which group it sits.

The recurrent state a policy carries is a vector (the first tensor of a tuple state: mixed memory
and LSTM keep (h, c), and h is what the neurons are). Its order depends on the model:

* a wired CfC keeps its layers' states concatenated in layer order, so an NCP's state is
  ``[inter | command | motor]`` while the neuron ids count motor first;
* an LTC keeps its state in neuron-id order (motor first);
* an unwired CfC, LSTM or GRU has anonymous hidden units; an MLP has no state at all.

:func:`neuron_layout` turns that into display groups (inter, command, motor for an NCP) that every
picture of the viewer shares, so a heatmap row, a trace and a node of the wiring diagram that
carry the same name are the same neuron.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from cfc_control.models.base import RecurrentModel
from cfc_control.wirings import Wiring

# Display order, input side first: the heatmap lists groups top to bottom in this order, the
# wiring diagram left to right (with the sensory inputs before them).
GROUP_ORDER = ("inter", "command", "motor")


@dataclass(frozen=True)
class NeuronGroup:
    """One group: ``name``, the positions of its neurons in the state vector (``state_index``)
    and their wiring ids (``neuron_ids``, same length; for an unwired model the unit numbers)."""

    name: str
    state_index: Tuple[int, ...]
    neuron_ids: Tuple[int, ...]

    def __len__(self) -> int:
        return len(self.state_index)


@dataclass(frozen=True)
class NeuronLayout:
    """The state vector of size ``size`` split into display ``groups``; ``wiring`` is the model's
    wiring (None for an unwired model). ``grouped`` is true when the groups carry meaning (an
    NCP-like wiring with more than one non-empty group)."""

    size: int
    groups: Tuple[NeuronGroup, ...]
    wiring: Optional[Wiring]

    @property
    def grouped(self) -> bool:
        return len(self.groups) > 1

    def display_order(self) -> np.ndarray:
        """State positions, (size,) int, in display order (groups in order, ids ascending)."""
        if not self.groups:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.asarray(g.state_index, dtype=np.int64) for g in self.groups])

    def neuron_of_position(self) -> Dict[int, int]:
        """State position -> neuron id."""
        return {p: n for g in self.groups for p, n in zip(g.state_index, g.neuron_ids)}

    def per_neuron(self, values: np.ndarray) -> Dict[int, float]:
        """Neuron id -> value, from ``values`` (size,) indexed by state position."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.shape[0] != self.size:
            raise ValueError(f"expected {self.size} values (one per state entry), got {v.shape[0]}")
        return {n: float(v[p]) for p, n in self.neuron_of_position().items()}


def state_neuron_ids(model: RecurrentModel) -> Optional[List[int]]:
    """The wiring neuron id of each state position, or None for an unwired model."""
    wiring = getattr(model, "wiring", None)
    if wiring is None:
        return None
    layer_neurons = getattr(getattr(model, "rnn_cell", None), "layer_neurons", None)
    if layer_neurons is not None:  # wired CfC: layers concatenated in layer order
        return [int(n) for layer in layer_neurons for n in layer]
    return list(range(wiring.units))  # LTC: neuron-id order


def neuron_layout(model: RecurrentModel) -> NeuronLayout:
    """The display layout of ``model``'s state (see the module docstring)."""
    if not isinstance(model, RecurrentModel):
        raise TypeError(f"neuron_layout needs a RecurrentModel, got {type(model).__name__}")
    state = model.initial_states(1)
    size = int(state[0].shape[-1])
    if size == 0:
        return NeuronLayout(0, (), None)
    ids = state_neuron_ids(model)
    wiring = getattr(model, "wiring", None)
    if ids is None or wiring is None:
        name = "hidden (h)" if len(state) > 1 else "hidden"
        units = tuple(range(size))
        return NeuronLayout(size, (NeuronGroup(name, units, units),), None)
    if len(ids) != size:
        raise ValueError(f"the wiring has {len(ids)} neurons, the model's state {size} entries")
    position = {n: p for p, n in enumerate(ids)}
    groups = []
    for name in GROUP_ORDER:
        members = sorted(n for n in ids if wiring.get_type_of_neuron(n) == name)
        if members:
            groups.append(NeuronGroup(name, tuple(position[n] for n in members), tuple(members)))
    if len(groups) == 1:  # one kind only (fully connected): a single anonymous group
        g = groups[0]
        groups = [NeuronGroup("neurons", g.state_index, g.neuron_ids)]
    return NeuronLayout(size, tuple(groups), wiring)
