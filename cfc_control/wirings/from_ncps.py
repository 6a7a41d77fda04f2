"""Import a wiring of the reference library (``ncps.wirings``) with identical matrices."""

from __future__ import annotations

from typing import Any

import numpy as np

from cfc_control.wirings.base import Wiring
from cfc_control.wirings.fully_connected import FullyConnected
from cfc_control.wirings.ncp import NCP, AutoNCP
from cfc_control.wirings.random import Random


def from_ncps_wiring(wiring: Any) -> Wiring:
    """Convert an ``ncps.wirings`` wiring to ours with identical matrices (built when it is).

    The result regenerates from its arguments when the reference's matrices match what those
    arguments give; otherwise (an edited wiring, one built twice, an NCP whose seed the reference
    does not keep) it carries the matrices explicitly in its config."""
    if isinstance(wiring, Wiring):
        return wiring
    import ncps.wirings as ref  # only here: ncps is a test/benchmark extra

    if not isinstance(wiring, ref.Wiring):
        raise TypeError(f"expected an ncps.wirings.Wiring, got {type(wiring).__module__}.{type(wiring).__name__}")
    ours: Wiring
    if isinstance(wiring, ref.AutoNCP):
        ours = AutoNCP(wiring.units, wiring._output_size, wiring._sparsity_level, wiring._seed)
    elif isinstance(wiring, ref.NCP):
        ours = NCP(
            wiring._num_inter_neurons,
            wiring._num_command_neurons,
            wiring._num_motor_neurons,
            wiring._sensory_fanout,
            wiring._inter_fanout,
            wiring._recurrent_command_synapses,
            wiring._motor_fanin,
        )
    elif isinstance(wiring, ref.FullyConnected):
        ours = FullyConnected(wiring.units, wiring.output_dim, wiring._erev_init_seed, wiring.self_connections)
    elif isinstance(wiring, ref.Random):
        ours = Random(wiring.units, wiring.output_dim, wiring.sparsity_level, wiring._random_seed)
    else:
        ours = Wiring(wiring.units)
        if wiring.output_dim is not None:
            ours.set_output_dim(int(wiring.output_dim))
    if wiring.is_built():
        ours.build(int(wiring.input_dim))
    same = np.array_equal(ours.adjacency_matrix, wiring.adjacency_matrix) and (
        (wiring.sensory_adjacency_matrix is None and ours.sensory_adjacency_matrix is None)
        or (
            wiring.sensory_adjacency_matrix is not None
            and ours.sensory_adjacency_matrix is not None
            and np.array_equal(ours.sensory_adjacency_matrix, wiring.sensory_adjacency_matrix)
        )
    )
    if not same:
        ours._set_matrices(wiring.adjacency_matrix, wiring.sensory_adjacency_matrix)
    return ours
