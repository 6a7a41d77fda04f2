"""Reading the task definitions in ``envs/*.toml``.

Each task family (one stock Gymnasium MuJoCo env) is one TOML file with the keys of
:class:`TaskFamily`; ``envs/presets.toml`` holds the named timing presets. The files are data, read
once and cached; nothing here builds an env or imports MuJoCo.

The directory is ``envs/`` at the repository root, or the one named by the environment variable
``CFC_CONTROL_ENVS``.
"""

from __future__ import annotations

import math
import os
import sys
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

ENVS_DIR_VARIABLE = "CFC_CONTROL_ENVS"
PRESETS_FILE = "presets.toml"

_REQUIRED = {
    "name": str,
    "gym_id": str,
    "nominal_dt": float,
    "max_episode_steps": int,
    "obs_size": int,
    "act_size": int,
    "velocity_indices": list,
}
_OPTIONAL = {"reward_threshold": float, "unobserved_velocity_indices": list, "rounding_sensitive": bool}


@dataclass(frozen=True)
class TaskFamily:
    """One stock env and what the tasks built on it need to know about it.

    ``velocity_indices`` are the entries of the stock observation that are velocities (removed by
    the Pos observation model); ``unobserved_velocity_indices`` those of them that are velocities
    of coordinates the stock observation leaves out (a walker's forward position x: its speed
    cannot be told from the positions it sees; removed by PosVel as well). ``nominal_dt`` and
    ``max_episode_steps`` are the stock control period in seconds and the stock TimeLimit, whose
    product is the episode length in simulated seconds (``horizon_s``). ``rounding_sensitive``
    families (contacts, long chains of bodies) turn a last-bit difference in a float kernel into
    another episode: evaluated on another CPU, their returns agree to sampling error, not to
    rounding.
    """

    name: str
    gym_id: str
    nominal_dt: float
    max_episode_steps: int
    reward_threshold: float | None
    obs_size: int
    act_size: int
    velocity_indices: tuple[int, ...]
    source: Path
    unobserved_velocity_indices: tuple[int, ...] = ()
    rounding_sensitive: bool = False

    @property
    def horizon_s(self) -> float:
        return self.max_episode_steps * self.nominal_dt


def envs_dir() -> Path:
    """The directory the task definitions are read from."""
    override = os.environ.get(ENVS_DIR_VARIABLE)
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "envs"
    if checkout.is_dir():  # a source checkout or an editable install
        return checkout
    # A wheel installs envs/ as data files under the environment's prefix (see pyproject.toml).
    return Path(sys.prefix) / "share" / "cfc-control" / "envs"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from e


def _check_type(path: Path, key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(
            f"{path}: key {key!r} must be a {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _parse_family(path: Path, raw: dict[str, Any]) -> TaskFamily:
    unknown = set(raw) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise ValueError(
            f"{path}: unknown keys {sorted(unknown)}; expected {sorted(_REQUIRED)} "
            f"and optionally {sorted(_OPTIONAL)}"
        )
    missing = set(_REQUIRED) - set(raw)
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    values = {key: _check_type(path, key, raw[key], kind) for key, kind in _REQUIRED.items()}
    threshold = raw.get("reward_threshold")
    if threshold is not None:
        threshold = _check_type(path, "reward_threshold", threshold, float)
    if not (math.isfinite(values["nominal_dt"]) and values["nominal_dt"] > 0):
        raise ValueError(
            f"{path}: nominal_dt must be a positive number, got {values['nominal_dt']}"
        )
    if values["max_episode_steps"] <= 0:
        raise ValueError(f"{path}: max_episode_steps must be positive")
    indices = values["velocity_indices"]
    if not all(isinstance(i, int) and 0 <= i < values["obs_size"] for i in indices):
        raise ValueError(
            f"{path}: velocity_indices must be integers in [0, obs_size={values['obs_size']}), "
            f"got {indices}"
        )
    if len(set(indices)) != len(indices):
        raise ValueError(f"{path}: velocity_indices has duplicates: {indices}")
    unobserved = raw.get("unobserved_velocity_indices", [])
    distinct = isinstance(unobserved, list) and all(type(i) is int for i in unobserved) \
        and len(set(unobserved)) == len(unobserved)
    if not (distinct and set(unobserved) <= set(indices)):
        raise ValueError(f"{path}: unobserved_velocity_indices must be distinct entries of velocity_indices "
                         f"{sorted(indices)}, got {unobserved!r}")
    return TaskFamily(
        name=values["name"],
        gym_id=values["gym_id"],
        nominal_dt=values["nominal_dt"],
        max_episode_steps=values["max_episode_steps"],
        reward_threshold=threshold,
        obs_size=values["obs_size"],
        act_size=values["act_size"],
        velocity_indices=tuple(sorted(indices)),
        source=path,
        unobserved_velocity_indices=tuple(sorted(unobserved)),
        rounding_sensitive=_check_type(path, "rounding_sensitive", raw.get("rounding_sensitive", False), bool),
    )


@lru_cache(maxsize=None)
def _load(directory: Path) -> tuple[dict[str, TaskFamily], dict[str, str]]:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"task definitions directory {directory} not found; set {ENVS_DIR_VARIABLE} to the "
            "folder holding the envs/*.toml files"
        )
    families: dict[str, TaskFamily] = {}
    presets: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        raw = _read_toml(path)
        if path.name == PRESETS_FILE:
            timing = raw.get("timing", {})
            if not isinstance(timing, dict) or not all(
                isinstance(v, str) for v in timing.values()
            ):
                raise ValueError(f"{path}: [timing] must map preset names to spec strings")
            presets.update(timing)
            continue
        family = _parse_family(path, raw)
        if family.name in families:
            raise ValueError(
                f"{path}: task family {family.name!r} is also defined in "
                f"{families[family.name].source}"
            )
        families[family.name] = family
    return families, presets


def task_families() -> dict[str, TaskFamily]:
    """Every task family defined in ``envs/``, by name (e.g. ``"HalfCheetah"``)."""
    return dict(_load(envs_dir())[0])


def timing_presets() -> dict[str, str]:
    """Preset name -> timing spec in units of the nominal period (e.g. ``"Jitter"``)."""
    return dict(_load(envs_dir())[1])


def family_for_gym_id(gym_id: str) -> TaskFamily | None:
    """The task family built on the stock env ``gym_id`` (e.g. ``"Hopper-v5"``), if any."""
    for family in task_families().values():
        if family.gym_id == gym_id:
            return family
    return None
