"""A random fraction of all possible synapses."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from cfc_control.wirings.base import Wiring


class Random(Wiring):
    """A random ``1 - sparsity_level`` fraction of all possible synapses (internal, and sensory
    once built), polarity from {-1, +1, +1}, drawn with ``random_seed``."""

    def __init__(
        self, units: int, output_dim: Optional[int] = None, sparsity_level: float = 0.0, random_seed: int = 1111
    ) -> None:
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        if not 0.0 <= float(sparsity_level) < 1.0:
            raise ValueError(f"sparsity_level must be in [0, 1), got {sparsity_level!r}")
        self.sparsity_level = float(sparsity_level)
        self._random_seed = int(random_seed)
        self._rng = np.random.default_rng(self._random_seed)
        for src, dest in self._pick_pairs(self.units):
            self.add_synapse(int(src), int(dest), int(self._rng.choice([-1, 1, 1])))

    def _pick_pairs(self, n_src: int) -> np.ndarray:
        count = int(np.round(n_src * self.units * (1 - self.sparsity_level)))
        pairs = np.array([(s, d) for s in range(n_src) for d in range(self.units)])
        return self._rng.choice(pairs, size=count, replace=False)

    def _draw_sensory(self) -> None:
        for src, dest in self._pick_pairs(self.input_dim):
            # The reference draws the polarity of each sensory synapse twice and keeps the
            # second; drawing twice keeps the random stream, and so the result, identical.
            self._rng.choice([-1, 1, 1])
            self.add_sensory_synapse(int(src), int(dest), int(self._rng.choice([-1, 1, 1])))

    def _constructor_args(self) -> Dict[str, Any]:
        return {
            "units": self.units,
            "output_dim": self.output_dim,
            "sparsity_level": self.sparsity_level,
            "random_seed": self._random_seed,
        }
