"""Wirings: which neuron may talk to which, with what polarity.

A wiring of N neurons holds an (N, N) ``adjacency_matrix`` and, once built for M input features,
an (M, N) ``sensory_adjacency_matrix``; entries are -1 (inhibitory), 0 (no synapse) or +1
(excitatory), ``[src, dst]``. The classes and their arguments match the reference library
(``ncps.wirings``): the same arguments and seeds give the same adjacency and polarity, so a model
trained there loads here. Differences, on purpose:

* building an already built wiring again with the same input size is a no-op (the reference
  draws a second set of sensory synapses, see docs/equations.md); a different input size raises. To
  put one wiring design on two layers of different input sizes use :meth:`Wiring.unbuilt_copy`.
* ``get_config()`` / ``from_config()`` reproduce the same adjacency, built or not (the reference's
  NCP config is broken), and :func:`wiring_to_config` / :func:`wiring_from_config` add and read
  the class name so a saved model can rebuild its wiring from JSON alone.
* inspection for drawing: :meth:`Wiring.neuron_groups` and :meth:`Wiring.synapses`.
"""

from cfc_control.wirings.base import Wiring
from cfc_control.wirings.config import wiring_from_config, wiring_to_config
from cfc_control.wirings.from_ncps import from_ncps_wiring
from cfc_control.wirings.fully_connected import FullyConnected
from cfc_control.wirings.ncp import NCP, AutoNCP
from cfc_control.wirings.random import Random

__all__ = [
    "Wiring",
    "FullyConnected",
    "Random",
    "NCP",
    "AutoNCP",
    "wiring_to_config",
    "wiring_from_config",
    "from_ncps_wiring",
]
