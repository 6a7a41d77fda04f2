"""Every neuron to every neuron, every input to every neuron."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from cfc_control.wirings.base import Wiring


class FullyConnected(Wiring):
    """Every neuron to every neuron (optionally without self-synapses) and every input to every
    neuron; polarity drawn from {-1, +1, +1} (two thirds excitatory) with ``erev_init_seed``."""

    def __init__(
        self, units: int, output_dim: Optional[int] = None, erev_init_seed: int = 1111, self_connections: bool = True
    ) -> None:
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        self.self_connections = bool(self_connections)
        self._erev_init_seed = int(erev_init_seed)
        # One generator for internal then sensory draws, in this order, as the reference does.
        self._rng = np.random.default_rng(self._erev_init_seed)
        for src in range(self.units):
            for dest in range(self.units):
                if src != dest or self.self_connections:
                    self.add_synapse(src, dest, int(self._rng.choice([-1, 1, 1])))

    def _draw_sensory(self) -> None:
        for src in range(self.input_dim):
            for dest in range(self.units):
                self.add_sensory_synapse(src, dest, int(self._rng.choice([-1, 1, 1])))

    def _constructor_args(self) -> Dict[str, Any]:
        return {
            "units": self.units,
            "output_dim": self.output_dim,
            "erev_init_seed": self._erev_init_seed,
            "self_connections": self.self_connections,
        }
