"""Wirings: which neuron may talk to which, with what polarity.

A wiring of N neurons holds an (N, N) ``adjacency_matrix`` and, once built for M input features,
an (M, N) ``sensory_adjacency_matrix``; entries are -1 (inhibitory), 0 (no synapse) or +1
(excitatory), ``[src, dst]``. The classes and their arguments match the reference library
(``ncps.wirings``): the same arguments and seeds give the same adjacency and polarity, so a model
trained there loads here. Differences, on purpose:

* building an already built wiring again with the same input size is a no-op (the reference
  draws a second set of sensory synapses, ncps #75); a different input size raises. To put one
  wiring design on two layers of different input sizes use :meth:`Wiring.unbuilt_copy`.
* ``get_config()`` / ``from_config()`` reproduce the same adjacency, built or not (the reference's
  NCP config is broken), and :func:`wiring_to_config` / :func:`wiring_from_config` add and read
  the class name so a saved model can rebuild its wiring from JSON alone.
* inspection for drawing: :meth:`Wiring.neuron_groups` and :meth:`Wiring.synapses`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

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

Synapse = Tuple[int, int, int, str]


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


class Wiring:
    """A wiring of ``units`` neurons; the base class also serves hand-made wirings
    (``add_synapse`` / ``add_sensory_synapse`` after ``build``).

    Attributes: ``units`` (N), ``input_dim`` (M, None until built), ``output_dim`` (the motor
    neurons, ids ``0 .. output_dim-1``), ``adjacency_matrix`` (N, N) int32,
    ``sensory_adjacency_matrix`` (M, N) int32 or None until built.
    """

    def __init__(self, units: int) -> None:
        self.units = _positive_int("units", units)
        self.adjacency_matrix = np.zeros((self.units, self.units), dtype=np.int32)
        self.sensory_adjacency_matrix: Optional[np.ndarray] = None
        self.input_dim: Optional[int] = None
        self.output_dim: Optional[int] = None
        # Set when the matrices no longer follow from the constructor arguments (imported from a
        # reference wiring that was edited or built twice): the config then carries them.
        self._explicit = False

    # -- structure --------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return 1

    def get_neurons_of_layer(self, layer_id: int) -> List[int]:
        """Neuron ids of layer ``layer_id`` (0-based, in the order the wired cell uses them)."""
        if layer_id not in range(self.num_layers):
            raise ValueError(f"layer_id must be in [0, {self.num_layers}), got {layer_id!r}")
        return list(range(self.units))

    def get_type_of_neuron(self, neuron_id: int) -> str:
        """"motor" for ids below ``output_dim``, else "inter" (NCP adds "command")."""
        return "motor" if self.output_dim is not None and neuron_id < self.output_dim else "inter"

    def is_built(self) -> bool:
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Bind the number of input features and draw the sensory synapses.

        Calling it again with the same ``input_dim`` does nothing (the synapses stay as drawn);
        a different one raises ValueError."""
        input_dim = _positive_int("input_dim", input_dim)
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise ValueError(
                    f"{type(self).__name__} is already built for {self.input_dim} input features, "
                    f"cannot build it again for {input_dim}; use wiring.unbuilt_copy() to get a "
                    "fresh wiring with the same arguments for the second layer"
                )
            return
        self.set_input_dim(input_dim)
        self._draw_sensory()

    def _draw_sensory(self) -> None:
        """Subclasses draw their sensory synapses here (called once, by ``build``)."""

    def set_input_dim(self, input_dim: int) -> None:
        self.input_dim = _positive_int("input_dim", input_dim)
        self.sensory_adjacency_matrix = np.zeros((self.input_dim, self.units), dtype=np.int32)

    def set_output_dim(self, output_dim: int) -> None:
        output_dim = _positive_int("output_dim", output_dim)
        if output_dim > self.units:
            raise ValueError(f"output_dim must be <= units={self.units}, got {output_dim}")
        self.output_dim = output_dim

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Add (or overwrite) the synapse neuron ``src`` -> neuron ``dest``."""
        if not 0 <= src < self.units:
            raise ValueError(f"synapse source {src} is not a neuron id in [0, {self.units})")
        if not 0 <= dest < self.units:
            raise ValueError(f"synapse destination {dest} is not a neuron id in [0, {self.units})")
        if polarity not in (-1, 1):
            raise ValueError(f"synapse polarity must be -1 or +1, got {polarity!r}")
        self.adjacency_matrix[src, dest] = polarity

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Add (or overwrite) the synapse input feature ``src`` -> neuron ``dest``."""
        if self.input_dim is None or self.sensory_adjacency_matrix is None:
            raise ValueError("cannot add sensory synapses before build(input_dim) has been called")
        if not 0 <= src < self.input_dim:
            raise ValueError(f"sensory synapse source {src} is not an input in [0, {self.input_dim})")
        if not 0 <= dest < self.units:
            raise ValueError(f"sensory synapse destination {dest} is not a neuron id in [0, {self.units})")
        if polarity not in (-1, 1):
            raise ValueError(f"synapse polarity must be -1 or +1, got {polarity!r}")
        self.sensory_adjacency_matrix[src, dest] = polarity

    def erev_initializer(self, shape: Any = None, dtype: Any = None) -> np.ndarray:
        """A copy of the adjacency: the reversal-potential signs an LTC starts from."""
        return np.copy(self.adjacency_matrix)

    def sensory_erev_initializer(self, shape: Any = None, dtype: Any = None) -> np.ndarray:
        if self.sensory_adjacency_matrix is None:
            raise ValueError(f"{type(self).__name__} is not built yet: call build(input_dim) first")
        return np.copy(self.sensory_adjacency_matrix)

    @property
    def synapse_count(self) -> int:
        """Number of synapses between neurons."""
        return int(np.abs(self.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        """Number of synapses from the inputs (0 before ``build``)."""
        if self.sensory_adjacency_matrix is None:
            return 0
        return int(np.abs(self.sensory_adjacency_matrix).sum())

    # -- inspection (for the viewer) ----------------------------------------------------------
    def neuron_groups(self) -> Dict[str, List[int]]:
        """Group name -> ids: "sensory" (input feature ids, empty before build), then "inter",
        "command" and "motor" (neuron ids; a group may be empty)."""
        groups: Dict[str, List[int]] = {
            "sensory": list(range(self.input_dim or 0)),
            "inter": [],
            "command": [],
            "motor": [],
        }
        for n in range(self.units):
            groups[self.get_type_of_neuron(n)].append(n)
        return groups

    def synapses(self) -> List[Synapse]:
        """Every synapse as (src, dst, polarity, kind): kind "sensory" (src is an input feature
        id) first, then "internal" (src is a neuron id); row-major order."""
        out: List[Synapse] = []
        if self.sensory_adjacency_matrix is not None:
            for s, d in zip(*np.nonzero(self.sensory_adjacency_matrix)):
                out.append((int(s), int(d), int(self.sensory_adjacency_matrix[s, d]), "sensory"))
        for s, d in zip(*np.nonzero(self.adjacency_matrix)):
            out.append((int(s), int(d), int(self.adjacency_matrix[s, d]), "internal"))
        return out

    # -- configuration ------------------------------------------------------------------------
    def _constructor_args(self) -> Dict[str, Any]:
        """The arguments that regenerate this wiring (subclasses)."""
        return {"units": self.units}

    def get_config(self) -> Dict[str, Any]:
        """JSON-serialisable; ``type(self).from_config(cfg)`` gives the same adjacency (built
        when this one is)."""
        if type(self) is Wiring:
            cfg: Dict[str, Any] = {"units": self.units, "output_dim": self.output_dim}
        else:
            cfg = dict(self._constructor_args())
        if type(self) is Wiring or self._explicit:
            cfg["adjacency_matrix"] = self.adjacency_matrix.tolist()
            cfg["sensory_adjacency_matrix"] = (
                None if self.sensory_adjacency_matrix is None else self.sensory_adjacency_matrix.tolist()
            )
        cfg["input_dim"] = self.input_dim
        return cfg

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Wiring":
        if not isinstance(config, dict):
            raise TypeError(f"wiring config must be a dict, got {type(config).__name__}")
        cfg = dict(config)
        input_dim = cfg.pop("input_dim", None)
        adjacency = cfg.pop("adjacency_matrix", None)
        sensory = cfg.pop("sensory_adjacency_matrix", None)
        output_dim = cfg.pop("output_dim", None) if cls is Wiring else None
        try:
            wiring = cls(**cfg)
        except TypeError as e:
            raise ValueError(f"bad {cls.__name__} config (keys {sorted(config)}): {e}") from e
        if output_dim is not None:
            wiring.set_output_dim(output_dim)
        if input_dim is not None:
            wiring.build(input_dim)
        if adjacency is not None:
            wiring._set_matrices(adjacency, sensory)
        return wiring

    def _set_matrices(self, adjacency: Any, sensory: Any) -> None:
        adj = np.asarray(adjacency, dtype=np.int32)
        if adj.shape != (self.units, self.units) or not np.isin(adj, (-1, 0, 1)).all():
            raise ValueError(
                f"adjacency_matrix must be ({self.units}, {self.units}) with entries in -1/0/1, "
                f"got shape {adj.shape}"
            )
        self.adjacency_matrix = adj.copy()
        if sensory is not None:
            sen = np.asarray(sensory, dtype=np.int32)
            if sen.ndim != 2 or sen.shape[1] != self.units or not np.isin(sen, (-1, 0, 1)).all():
                raise ValueError(
                    f"sensory_adjacency_matrix must be (input_dim, {self.units}) with entries in "
                    f"-1/0/1, got shape {sen.shape}"
                )
            if self.input_dim is None:
                self.set_input_dim(sen.shape[0])
            elif sen.shape[0] != self.input_dim:
                raise ValueError(
                    f"sensory_adjacency_matrix has {sen.shape[0]} rows, the wiring is built for "
                    f"{self.input_dim} inputs"
                )
            self.sensory_adjacency_matrix = sen.copy()
        self._explicit = type(self) is not Wiring

    def unbuilt_copy(self) -> "Wiring":
        """A new, unbuilt wiring with the same constructor arguments (a plain ``Wiring`` keeps
        its internal synapses); building it for the same input size gives the same matrices
        unless this one carries explicit matrices."""
        if type(self) is Wiring:
            return Wiring.from_config(
                {"units": self.units, "output_dim": self.output_dim, "adjacency_matrix": self.adjacency_matrix.tolist()}
            )
        return type(self)(**self._constructor_args())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._constructor_args().items())
        return f"{type(self).__name__}({args}, input_dim={self.input_dim})"


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
    scale with the density ``1 - sparsity_level`` (models.md gives the formulas).
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


_CLASSES = {c.__name__: c for c in (Wiring, FullyConnected, Random, NCP, AutoNCP)}


def wiring_to_config(wiring: Wiring) -> Dict[str, Any]:
    """``{"class": <class name>, **wiring.get_config()}``, for JSON files."""
    if not isinstance(wiring, Wiring) or type(wiring).__name__ not in _CLASSES:
        raise TypeError(f"expected a cfc_control.wirings wiring, got {type(wiring).__name__}")
    return {"class": type(wiring).__name__, **wiring.get_config()}


def wiring_from_config(config: Dict[str, Any]) -> Wiring:
    """Rebuild a wiring from :func:`wiring_to_config`'s dict (classes of this module only)."""
    if not isinstance(config, dict) or "class" not in config:
        raise ValueError(f"a wiring config must be a dict with a 'class' key, got {config!r:.200}")
    name = config["class"]
    if name not in _CLASSES:
        raise ValueError(f"unknown wiring class {name!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[name].from_config({k: v for k, v in config.items() if k != "class"})


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
