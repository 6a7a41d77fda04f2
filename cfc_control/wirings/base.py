"""The wiring base class: the adjacency and polarity matrices, building for an input size,
neuron groups and synapses for drawing, and the config that regenerates a wiring. A plain
:class:`Wiring` also serves hand-made wirings."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

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
