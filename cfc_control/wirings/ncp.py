"""Neural circuit policies: the four-layer sensory -> inter -> command -> motor wiring, and
:class:`AutoNCP`, which sizes one from a neuron count."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from cfc_control.wirings.base import Wiring, _positive_int


class NCP(Wiring):
    """Neural circuit policy: sensory -> inter -> command (recurrent) -> motor, four layers of
    sparse random synapses with polarity ±1 (equal odds), drawn with ``seed`` at ``build``.

    Neuron ids: motor ``[0, motor)``, then command, then inter. The wired cell runs the layers
    inter (0), command (1), motor (2)."""

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
    ) -> None:
        n_inter = _positive_int("inter_neurons", inter_neurons)
        n_command = _positive_int("command_neurons", command_neurons)
        n_motor = _positive_int("motor_neurons", motor_neurons)
        super().__init__(n_inter + n_command + n_motor)
        self.set_output_dim(n_motor)
        self._num_inter_neurons, self._num_command_neurons, self._num_motor_neurons = n_inter, n_command, n_motor
        self._sensory_fanout = _positive_int("sensory_fanout", sensory_fanout)
        self._inter_fanout = _positive_int("inter_fanout", inter_fanout)
        self._recurrent_command_synapses = _positive_int(
            "recurrent_command_synapses", recurrent_command_synapses, allow_zero=True
        )
        self._motor_fanin = _positive_int("motor_fanin", motor_fanin)
        self._seed = int(seed)
        if self._motor_fanin > n_command:
            raise ValueError(f"motor_fanin={self._motor_fanin} exceeds the {n_command} command neurons")
        if self._sensory_fanout > n_inter:
            raise ValueError(f"sensory_fanout={self._sensory_fanout} exceeds the {n_inter} inter neurons")
        if self._inter_fanout > n_command:
            raise ValueError(f"inter_fanout={self._inter_fanout} exceeds the {n_command} command neurons")
        self._motor_neurons = list(range(0, n_motor))
        self._command_neurons = list(range(n_motor, n_motor + n_command))
        self._inter_neurons = list(range(n_motor + n_command, self.units))

    @property
    def num_layers(self) -> int:
        return 3

    def get_neurons_of_layer(self, layer_id: int) -> List[int]:
        layers = (self._inter_neurons, self._command_neurons, self._motor_neurons)
        if layer_id not in range(3):
            raise ValueError(f"layer_id must be 0 (inter), 1 (command) or 2 (motor), got {layer_id!r}")
        return list(layers[layer_id])

    def get_type_of_neuron(self, neuron_id: int) -> str:
        if neuron_id < self._num_motor_neurons:
            return "motor"
        if neuron_id < self._num_motor_neurons + self._num_command_neurons:
            return "command"
        return "inter"

    def _draw_sensory(self) -> None:
        # Every layer is drawn at build time from one generator, in the reference's order.
        rng = np.random.RandomState(self._seed)
        sensory = list(range(self.input_dim))
        # The reference bounds the extra fan-in by the sensory count, then by the command count.
        n_sensory, n_command = len(sensory), self._num_command_neurons
        self._fan_out(rng, sensory, self._inter_neurons, self._sensory_fanout, n_sensory, self.add_sensory_synapse)
        self._fan_out(rng, self._inter_neurons, self._command_neurons, self._inter_fanout, n_command, self.add_synapse)
        for _ in range(self._recurrent_command_synapses):
            src = rng.choice(self._command_neurons)
            dest = rng.choice(self._command_neurons)
            self.add_synapse(int(src), int(dest), int(rng.choice([-1, 1])))
        self._fan_in_motor(rng)

    @staticmethod
    def _fan_out(
        rng: np.random.RandomState, sources: List[int], targets: List[int], fanout: int, upper: int, add
    ) -> None:
        """Each source to ``fanout`` random targets; targets left without input then get
        ``clip(len(sources) * fanout // len(targets), 1, upper)`` random sources."""
        unreached = list(targets)
        for src in sources:
            for dest in rng.choice(targets, size=fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                add(int(src), int(dest), int(rng.choice([-1, 1])))
        fanin = int(np.clip(int(len(sources) * fanout / len(targets)), 1, upper))
        for dest in unreached:
            for src in rng.choice(sources, size=fanin, replace=False):
                add(int(src), int(dest), int(rng.choice([-1, 1])))

    def _fan_in_motor(self, rng: np.random.RandomState) -> None:
        unused = list(self._command_neurons)
        for dest in self._motor_neurons:
            for src in rng.choice(self._command_neurons, size=self._motor_fanin, replace=False):
                if src in unused:
                    unused.remove(src)
                self.add_synapse(int(src), int(dest), int(rng.choice([-1, 1])))
        # The reference bounds this fan-out by the number of motor neurons.
        fanout = int(np.clip(int(self._num_motor_neurons * self._motor_fanin / self._num_command_neurons), 1, self._num_motor_neurons))
        for src in unused:
            for dest in rng.choice(self._motor_neurons, size=fanout, replace=False):
                self.add_synapse(int(src), int(dest), int(rng.choice([-1, 1])))

    def _constructor_args(self) -> Dict[str, Any]:
        return {
            "inter_neurons": self._num_inter_neurons,
            "command_neurons": self._num_command_neurons,
            "motor_neurons": self._num_motor_neurons,
            "sensory_fanout": self._sensory_fanout,
            "inter_fanout": self._inter_fanout,
            "recurrent_command_synapses": self._recurrent_command_synapses,
            "motor_fanin": self._motor_fanin,
            "seed": self._seed,
        }


class AutoNCP(NCP):
    """An NCP sized from the total number of neurons ``units`` and of motor neurons
    ``output_size``: 40% of the non-motor neurons are command neurons, the rest inter; fan-outs
    scale with the density ``1 - sparsity_level`` (docs/equations.md gives the formulas).
    ``output_size`` must be below ``units - 2``; ``sparsity_level`` in [0.1, 1.0]."""

    def __init__(self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222) -> None:
        units = _positive_int("units", units)
        output_size = _positive_int("output_size", output_size)
        if output_size >= units - 2:
            raise ValueError(
                f"AutoNCP output_size must be less than units - 2 (got units={units}, output_size={output_size})"
            )
        if not 0.1 <= float(sparsity_level) <= 1.0:
            raise ValueError(f"AutoNCP sparsity_level must be in [0.1, 1.0], got {sparsity_level!r}")
        self._output_size = output_size
        self._sparsity_level = float(sparsity_level)
        density = 1.0 - self._sparsity_level
        non_motor = units - output_size
        command = max(int(0.4 * non_motor), 1)
        inter = non_motor - command
        super().__init__(
            inter,
            command,
            output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )

    def _constructor_args(self) -> Dict[str, Any]:
        return {
            "units": self.units,
            "output_size": self._output_size,
            "sparsity_level": self._sparsity_level,
            "seed": self._seed,
        }
