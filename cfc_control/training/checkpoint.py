"""Checkpoints for resumable training, written atomically and without pickles.

    <run>/checkpoints/<step>/          one checkpoint, written as a temp directory then renamed
        model.safetensors, config.json   the policy (a policy directory: weights + normaliser)
        optimizer.safetensors            the optimiser's tensors ("state.<param>.<name>")
        optimizer.json                   its scalars and param_groups
        rng.safetensors, rng.json        the RNG states of torch, numpy's global generator and Python's
        progress.json                    the algorithm's progress (counters, its own generators' states)
        state.safetensors                optional: further tensors of the algorithm (PPO: log-std)
        <name>/                          optional: further models, model directories (PPO: critic/)
        data.npz                         optional: a data set that grows during training (DAgger)
    <run>/checkpoints/latest.json        {"step": ..., "path": "<step>"}, replaced atomically last

A crash at any moment leaves the previous checkpoint intact and ``latest.json`` pointing at a
complete one. The last ``keep`` checkpoints are kept. One checkpoint holds every part of an
algorithm's state, so a run resumed from it continues as if never stopped.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cfc_control.files import atomic_directory, atomic_write_text, remove_temporaries
from cfc_control.models.base import RecurrentModel
from cfc_control.models.io import load_model, save_model
from cfc_control.policies import RecurrentPolicy, load_policy, save_policy
from cfc_control.episodes.demos import Demonstrations, load_demos, save_demos


def optimizer_to_files(state: Dict[str, Any]) -> tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (safetensors) and JSON (everything else)."""
    tensors: Dict[str, torch.Tensor] = {}
    scalars: Dict[str, Dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_files(tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> Dict[str, Any]:
    """Inverse of :func:`optimizer_to_files`: a state_dict for ``optimizer.load_state_dict``."""
    state: Dict[int, Dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def global_rng_state() -> tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """The states of torch's, numpy's global and Python's generators, as (tensors, JSON)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return ({"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64))},
            {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
             "python": [version, list(internal), gauss_next]})


def set_global_rng_state(tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> None:
    """Inverse of :func:`global_rng_state` (a checkpoint without numpy's or Python's restores torch's)."""
    torch.set_rng_state(tensors["torch"])
    if "numpy" in tensors and "numpy" in meta:
        kind, pos, has_gauss, gauss = meta["numpy"]
        np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "python" in meta:
        version, internal, gauss_next = meta["python"]
        random.setstate((version, tuple(internal), gauss_next))


@dataclass
class Checkpoint:
    """A loaded checkpoint: the policy, the optimiser state_dict, the progress dict, the data
    set if one was saved, further tensors and models of the algorithm, and the step it was
    taken at."""

    step: int
    policy: RecurrentPolicy
    optimizer_state: Dict[str, Any]
    progress: Dict[str, Any]
    data: Optional[Demonstrations]
    path: Path
    tensors: Dict[str, torch.Tensor] = field(default_factory=dict)
    models: Dict[str, RecurrentModel] = field(default_factory=dict)
    generators: tuple = ({}, {})  # (tensors, JSON) of global_rng_state() when it was taken

    def restore_generators(self) -> None:
        """Set torch's, numpy's and Python's generators to their state at this checkpoint (again:
        building the algorithm's objects after loading draws from them)."""
        set_global_rng_state(*self.generators)


class CheckpointManager:
    """Saves and finds checkpoints under ``<run>/checkpoints``."""

    def __init__(self, run_dir: Path, keep: int = 2) -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.keep = max(1, int(keep))

    def save(self, step: int, policy: RecurrentPolicy, optimizer_state: Dict[str, Any], progress: Dict[str, Any],
             data: Optional[Demonstrations] = None, tensors: Optional[Dict[str, torch.Tensor]] = None,
             models: Optional[Dict[str, RecurrentModel]] = None) -> Path:
        """Write one checkpoint of everything: the policy, the optimiser, the global generators,
        ``progress`` (JSON), and the optional data set, ``tensors`` and ``models``."""
        if set(models or {}) & {"checkpoints", "policy"}:
            raise ValueError(f"model names {sorted(models or {})} clash with the checkpoint's own files")
        self.root.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.root)  # left by a run killed mid-write
        final = self.root / f"{int(step):08d}"
        with atomic_directory(final) as tmp:
            save_policy(policy, tmp)
            opt_tensors, meta = optimizer_to_files(optimizer_state)
            save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "optimizer.json").write_text(json.dumps(meta))
            rng_tensors, rng_meta = global_rng_state()
            save_file(rng_tensors, str(tmp / "rng.safetensors"))
            (tmp / "rng.json").write_text(json.dumps(rng_meta))
            (tmp / "progress.json").write_text(json.dumps({"step": int(step), **progress}, indent=1))
            if tensors:
                save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()},
                          str(tmp / "state.safetensors"))
            for name, model in (models or {}).items():
                save_model(model, tmp / name)
            if data is not None:
                save_demos(data, tmp / "data.npz")
        atomic_write_text(self.root / "latest.json", json.dumps({"step": int(step), "path": final.name}) + "\n")
        self._prune(keep_name=final.name)
        return final

    def _prune(self, keep_name: str) -> None:
        done = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for old in done[:-self.keep]:
            if old.name != keep_name:
                shutil.rmtree(old, ignore_errors=True)

    def latest(self) -> Optional[Path]:
        pointer = self.root / "latest.json"
        if not pointer.is_file():
            return None
        try:
            name = json.loads(pointer.read_text())["path"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{pointer}: unreadable checkpoint pointer ({err})") from err
        # The pointer names a checkpoint of this run: a plain name, never a path elsewhere.
        if not (isinstance(name, str) and name.isdigit()):
            raise ValueError(f"{pointer}: 'path' must name a checkpoint directory of this run (digits), "
                             f"got {name!r:.80}")
        path = self.root / name
        if not path.is_dir():
            raise ValueError(f"{pointer} points at {path}, which does not exist")
        return path

    def load(self, path: Optional[Path] = None, restore_rng: bool = True) -> Optional[Checkpoint]:
        """The latest (or given) checkpoint, or None when there is none. Restores torch's RNG."""
        path = path or self.latest()
        if path is None:
            return None
        policy = load_policy(path)
        optimizer_state = optimizer_from_files(load_file(str(path / "optimizer.safetensors")),
                                               json.loads((path / "optimizer.json").read_text()))
        progress = json.loads((path / "progress.json").read_text())
        rng_meta = json.loads((path / "rng.json").read_text()) if (path / "rng.json").is_file() else {}
        generators = (load_file(str(path / "rng.safetensors")), rng_meta)
        if restore_rng:
            set_global_rng_state(*generators)
        data = load_demos(path / "data.npz") if (path / "data.npz").is_file() else None
        tensors = load_file(str(path / "state.safetensors")) if (path / "state.safetensors").is_file() else {}
        models = {p.name: load_model(p) for p in sorted(path.iterdir()) if (p / "model.safetensors").is_file()}
        return Checkpoint(int(progress["step"]), policy, optimizer_state, progress, data, path, tensors, models,
                          generators)
