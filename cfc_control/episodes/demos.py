"""Demonstrations: whole episodes for imitation, in an open format that loads without code.

A demonstration file is a NumPy ``.npz`` archive (read with ``allow_pickle=False``; every entry a
plain numeric or fixed-width unicode array) holding flat per-step arrays and episode offsets:

    observations      float32 (N, n_obs)  what the student sees at step i (the task's observation
                                          model: "Pos" has no velocities), before acting
    actions           float32 (N, n_act)  the expert's action at step i: the imitation label
    executed_actions  float32 (N, n_act)  the action actually applied (differs from ``actions``
                                          with DART noise, or where a DAgger student drove)
    dt                float64 (N,)        seconds elapsed between the previous observation and
                                          observations[i] (the nominal period at an episode's first
                                          step); this is the policy's time input at step i
    rewards           float64 (N,)        reward of the period that followed step i
    terminations      bool    (N,)        true at the last step of an episode that terminated
    truncations       bool    (N,)        true at the last step of an episode cut at the horizon
    episode_offsets   int64   (E + 1,)    episode e is rows offsets[e]:offsets[e+1]; offsets[0] = 0,
                                          offsets[E] = N, every episode non-empty
    episode_seeds     int64   (E,)        the reset seed of each episode
    final_observations float32 (E, n_obs) the observation after each episode's last step
    full_observations float32 (N, n_full) optional: the stock observation at step i, all of it (what a
                                          full-state expert sees), recorded where the env has one;
                                          the target of the students' auxiliary state estimate
    metadata          str (0-d)           JSON: {"format": "cfc-control-demos", "version": 1, "task",
                                          "n_obs", "n_act", "nominal_dt", "expert", "noise", ...}

Episodes are stored whole and in order, so sequence models see every step with its Δt.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from cfc_control.files import atomic_path

FORMAT = "cfc-control-demos"
VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]

# name -> (dtype, "per step" | "per episode" | "offsets"); the trailing dimensions are checked below.
_ARRAYS: Dict[str, Tuple[Any, str]] = {
    "observations": (np.float32, "step"),
    "actions": (np.float32, "step"),
    "executed_actions": (np.float32, "step"),
    "dt": (np.float64, "step"),
    "rewards": (np.float64, "step"),
    "terminations": (np.bool_, "step"),
    "truncations": (np.bool_, "step"),
    "episode_offsets": (np.int64, "offsets"),
    "episode_seeds": (np.int64, "episode"),
    "final_observations": (np.float32, "episode"),
}
# Per-step arrays a file may lack (older files, envs without a stock observation): None when absent.
_OPTIONAL: Dict[str, Any] = {"full_observations": np.float32}


@dataclass
class Demonstrations:
    """Episodes of (observation, expert action, Δt, reward, end flags); see the module docstring
    for every field's shape. Build with :meth:`from_episodes`, combine with :meth:`concat`."""

    observations: np.ndarray
    actions: np.ndarray
    executed_actions: np.ndarray
    dt: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_offsets: np.ndarray
    episode_seeds: np.ndarray
    final_observations: np.ndarray
    metadata: Dict[str, Any] = field(default_factory=dict)
    full_observations: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        for name, (dtype, _) in _ARRAYS.items():
            setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))
        for name, dtype in _OPTIONAL.items():
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))
        _validate(self, "Demonstrations")

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def n_episodes(self) -> int:
        return int(self.episode_offsets.shape[0] - 1)

    @property
    def n_steps(self) -> int:
        return int(self.observations.shape[0])

    @property
    def n_obs(self) -> int:
        return int(self.observations.shape[1])

    @property
    def n_act(self) -> int:
        return int(self.actions.shape[1])

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_offsets)

    def episode_returns(self) -> np.ndarray:
        """Sum of rewards per episode, (E,)."""
        return np.add.reduceat(self.rewards, self.episode_offsets[:-1]) if self.n_episodes else np.zeros(0)

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_episodes(cls, episodes: Sequence[Dict[str, Any]], metadata: Dict[str, Any]) -> "Demonstrations":
        """From a list of per-episode dicts with the per-step keys as (T, ...) arrays plus
        ``"seed"`` and ``"final_observation"``."""
        if not episodes:
            raise ValueError("cannot build demonstrations from zero episodes")
        lengths = [len(ep["observations"]) for ep in episodes]
        step_keys = [k for k, (_, kind) in _ARRAYS.items() if kind == "step"]
        step_keys += [k for k in _OPTIONAL if all(ep.get(k) is not None for ep in episodes)]
        arrays = {k: np.concatenate([np.asarray(ep[k]) for ep in episodes]) for k in step_keys}
        return cls(
            **arrays,
            episode_offsets=np.concatenate([[0], np.cumsum(lengths)]),
            episode_seeds=np.asarray([ep["seed"] for ep in episodes]),
            final_observations=np.stack([ep["final_observation"] for ep in episodes]),
            metadata=dict(metadata),
        )

    def select(self, episodes: Sequence[int]) -> "Demonstrations":
        """A new set with the given episodes (indices into this one), in that order."""
        idx = np.asarray(episodes, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.n_episodes:
            raise ValueError(f"episode indices must be non-empty and in [0, {self.n_episodes}), got {idx.tolist()}")
        rows = np.concatenate([np.arange(self.episode_offsets[e], self.episode_offsets[e + 1]) for e in idx])
        step = {k: getattr(self, k)[rows] for k, (_, kind) in _ARRAYS.items() if kind == "step"}
        step.update({k: getattr(self, k)[rows] for k in _OPTIONAL if getattr(self, k) is not None})
        return Demonstrations(
            **step,
            episode_offsets=np.concatenate([[0], np.cumsum(self.episode_lengths[idx])]),
            episode_seeds=self.episode_seeds[idx],
            final_observations=self.final_observations[idx],
            metadata=dict(self.metadata),
        )

    def concat(self, other: "Demonstrations") -> "Demonstrations":
        """This set followed by ``other`` (same observation and action sizes). The metadata is
        this set's, with ``"sources"`` listing both sets' metadata."""
        if (other.n_obs, other.n_act) != (self.n_obs, self.n_act):
            raise ValueError(
                f"cannot concatenate demonstrations with {other.n_obs} observations / {other.n_act} actions "
                f"to ones with {self.n_obs} / {self.n_act}"
            )
        step = {k: np.concatenate([getattr(self, k), getattr(other, k)])
                for k, (_, kind) in _ARRAYS.items() if kind == "step"}
        for k in _OPTIONAL:  # kept where both sets have it with the same width
            mine, theirs = getattr(self, k), getattr(other, k)
            if mine is not None and theirs is not None and mine.shape[1:] == theirs.shape[1:]:
                step[k] = np.concatenate([mine, theirs])
        meta = dict(self.metadata)
        meta["sources"] = _sources(self.metadata) + _sources(other.metadata)
        return Demonstrations(
            **step,
            episode_offsets=np.concatenate([self.episode_offsets, other.episode_offsets[1:] + self.n_steps]),
            episode_seeds=np.concatenate([self.episode_seeds, other.episode_seeds]),
            final_observations=np.concatenate([self.final_observations, other.final_observations]),
            metadata=meta,
        )

    def split(self, val_fraction: float, seed: int = 0) -> Tuple["Demonstrations", "Demonstrations"]:
        """(train, validation) by whole episodes, drawn with ``seed``; at least one episode in each."""
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if self.n_episodes < 2:
            raise ValueError(f"a train/validation split needs at least 2 episodes, got {self.n_episodes}")
        order = np.random.default_rng(seed).permutation(self.n_episodes)
        n_val = min(max(1, round(val_fraction * self.n_episodes)), self.n_episodes - 1)
        return self.select(np.sort(order[n_val:])), self.select(np.sort(order[:n_val]))

    def summary(self) -> Dict[str, Any]:
        returns = self.episode_returns()
        return {"episodes": self.n_episodes, "steps": self.n_steps, "return_mean": float(returns.mean()),
                "return_std": float(returns.std()), "length_mean": float(self.episode_lengths.mean())}


def _sources(meta: Dict[str, Any]) -> List[Dict[str, Any]]:
    if "sources" in meta:
        return list(meta["sources"])
    return [{k: v for k, v in meta.items() if k != "sources"}]


def save_demos(demos: Demonstrations, path: PathLike) -> Path:
    """Write ``demos`` to ``path`` (.npz, compressed), atomically (temp file, then rename)."""
    out = Path(path)
    if out.suffix != ".npz":
        raise ValueError(f"demonstration files end in .npz, got {str(path)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": VERSION, **demos.metadata, "n_obs": demos.n_obs, "n_act": demos.n_act}
    arrays = {name: getattr(demos, name) for name in _ARRAYS}
    arrays.update({name: getattr(demos, name) for name in _OPTIONAL if getattr(demos, name) is not None})
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, metadata=np.asarray(json.dumps(meta)), **arrays)
    return out


def load_demos(path: PathLike) -> Demonstrations:
    """Read a demonstration file. Nothing is unpickled; every problem raises ValueError naming
    the file and what is wrong (missing entry, wrong dtype or shape, bad offsets, non-finite data)."""
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such demonstration file")
    if not zipfile.is_zipfile(src):
        raise ValueError(f"{src}: not a readable .npz demonstration file (not a zip archive)")
    try:
        with np.load(src, allow_pickle=False) as npz:
            names = set(npz.files)
            missing = sorted((set(_ARRAYS) | {"metadata"}) - names)
            if missing:
                raise ValueError(f"{src}: missing entries {missing} (found {sorted(names)})")
            raw = {name: npz[name] for name in _ARRAYS}
            raw.update({name: npz[name] for name in _OPTIONAL if name in names})
            meta_arr = npz["metadata"]
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{src}: not a readable .npz demonstration file ({err})") from err
    except ValueError as err:
        if str(src) in str(err):
            raise
        # np.load raises ValueError for object arrays when allow_pickle=False.
        raise ValueError(f"{src}: cannot be read without unpickling code ({err})") from err
    if meta_arr.dtype.kind != "U" or meta_arr.shape != ():
        raise ValueError(f"{src}: 'metadata' must be a 0-d unicode string, got dtype {meta_arr.dtype} shape {meta_arr.shape}")
    try:
        meta = json.loads(str(meta_arr))
    except json.JSONDecodeError as err:
        raise ValueError(f"{src}: 'metadata' is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{src}: metadata 'format' is not {FORMAT!r}; not a cfc-control demonstration file")
    if meta.get("version") != VERSION:
        raise ValueError(f"{src}: demonstration format version {meta.get('version')!r} is not supported (expected {VERSION})")
    for name, dtype in [*((n, d) for n, (d, _) in _ARRAYS.items()), *((n, d) for n, d in _OPTIONAL.items() if n in raw)]:
        arr = raw[name]
        want = np.dtype(dtype)
        ok = arr.dtype == want or (want.kind == "f" and arr.dtype.kind == "f") or (
            want.kind == "i" and arr.dtype.kind in "iu")
        if not ok:
            raise ValueError(f"{src}: '{name}' must have dtype {want}, got {arr.dtype}")
    try:
        return Demonstrations(**raw, metadata=meta)
    except ValueError as err:
        raise ValueError(f"{src}: {err}") from err


def _validate(d: Demonstrations, where: str) -> None:
    offsets = d.episode_offsets
    if offsets.ndim != 1 or offsets.shape[0] < 2:
        raise ValueError(f"{where}: 'episode_offsets' must be 1-D with at least 2 entries (one episode), got shape {offsets.shape}")
    n = d.observations.shape[0] if d.observations.ndim == 2 else -1
    if d.observations.ndim != 2:
        raise ValueError(f"{where}: 'observations' must be (N, n_obs), got shape {d.observations.shape}")
    if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) <= 0):
        raise ValueError(
            f"{where}: 'episode_offsets' must start at 0, end at N={n} and increase strictly (no empty episode), "
            f"got {offsets[:5].tolist()}...{offsets[-3:].tolist()}"
        )
    e = offsets.shape[0] - 1
    shapes = {
        "actions": (n, None), "executed_actions": (n, None), "dt": (n,), "rewards": (n,),
        "terminations": (n,), "truncations": (n,), "episode_seeds": (e,),
        "final_observations": (e, d.observations.shape[1]),
    }
    for name, shape in shapes.items():
        arr = getattr(d, name)
        if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
            want = tuple("n_act" if s is None else s for s in shape)
            raise ValueError(f"{where}: '{name}' must have shape {want}, got {arr.shape}")
    full = d.full_observations
    if full is not None and (full.ndim != 2 or full.shape[0] != n):
        raise ValueError(f"{where}: 'full_observations' must have shape ({n}, n_full), got {full.shape}")
    if d.actions.shape != d.executed_actions.shape:
        raise ValueError(f"{where}: 'executed_actions' {d.executed_actions.shape} and 'actions' {d.actions.shape} differ")
    for name in ("observations", "actions", "executed_actions", "dt", "rewards", "final_observations",
                 *(k for k in _OPTIONAL if getattr(d, k) is not None)):
        arr = getattr(d, name)
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            raise ValueError(f"{where}: '{name}' has non-finite values (first at index {bad})")
    if np.any(d.dt <= 0):
        raise ValueError(f"{where}: 'dt' must be positive seconds, found {d.dt[d.dt <= 0][:3].tolist()}")
    ends = d.terminations | d.truncations
    last = offsets[1:] - 1
    inner = np.ones(n, dtype=bool)
    inner[last] = False
    if np.any(ends & inner):
        first = int(np.flatnonzero(ends & inner)[0])
        raise ValueError(f"{where}: step {first} is marked terminated/truncated but is not the last of its episode")
