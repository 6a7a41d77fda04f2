"""Observation models: what the agent sees of the stock observation.

* ``Full``: the stock observation.
* ``Pos``: the stock observation with its velocity entries *removed* (not zeroed): the observation
  space shrinks by the number of velocities (HalfCheetah 17 -> 8). A policy must infer velocities
  from the history of positions (and of Δt), which is what a recurrent model is for.
* ``PosVel``: what a positions-only agent could reconstruct: the positions of Pos and their
  velocities, without the velocities of coordinates the observation leaves out (a walker's forward
  speed; ``unobserved_velocity_indices`` of the task family). Where every coordinate is observed
  (the pendulums, Reacher) it is Full. Meant for privileged teachers whose students see Pos: a
  teacher that acts on the forward speed teaches what no Pos student can follow.

Either can add Gaussian noise of standard deviation ``obs_noise`` to every entry, drawn from a
generator seeded from the reset seed. ``DtChannel`` appends the realised period in units of the
nominal one (``info["dt"] / nominal_dt``, about 1 at the nominal rate) as a last, noise-free entry.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box

from cfc_control.tasks.wrappers import NOISE_STREAM

OBS_MODELS = ("Full", "Pos", "PosVel")


def canonical_obs(name: str) -> str:
    """``"full"``/``"Full"`` -> ``"Full"``; raises ``ValueError`` naming the accepted models."""
    if isinstance(name, str):
        for model in OBS_MODELS:
            if name.strip().lower() == model.lower():
                return model
    raise ValueError(f"unknown observation model {name!r}; expected one of {', '.join(OBS_MODELS)}")


def dropped_entries(
    obs: str, velocity_indices: Sequence[int], unobserved_velocity_indices: Sequence[int] = ()
) -> tuple[int, ...]:
    """The entries of the stock observation that observation model ``obs`` removes, sorted."""
    model = canonical_obs(obs)
    if model == "Pos":
        return tuple(sorted(velocity_indices))
    if model == "PosVel":
        return tuple(sorted(unobserved_velocity_indices))
    return ()


class ObservationModel(gym.ObservationWrapper):
    """Keeps the entries ``keep`` of a flat Box observation (all when None) and adds noise.

    Observation: (len(keep),) or the wrapped shape, same dtype as the wrapped env.
    """

    def __init__(
        self, env: gym.Env, keep: Sequence[int] | None = None, noise_std: float = 0.0
    ) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, Box) or len(space.shape) != 1:
            raise TypeError(f"observation models need a flat Box observation, got {space}")
        valid = isinstance(noise_std, (int, float)) and math.isfinite(noise_std)
        if not (valid and noise_std >= 0):
            raise ValueError(
                f"obs_noise must be a finite standard deviation >= 0, got {noise_std!r}"
            )
        if keep is not None:
            keep = np.asarray(sorted(keep), dtype=np.intp)
            if keep.size and (keep[0] < 0 or keep[-1] >= space.shape[0]):
                raise ValueError(
                    f"observation indices {keep.tolist()} out of range for {space.shape}"
                )
            self.observation_space = Box(space.low[keep], space.high[keep], dtype=space.dtype)
        self._keep = keep
        self.noise_std = float(noise_std)
        self._rng: np.random.Generator | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng([seed, NOISE_STREAM])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        obs = np.array(observation, dtype=self.observation_space.dtype)
        if self._keep is not None:
            obs = obs[self._keep]
        if self.noise_std > 0:
            if self._rng is None:
                self._rng = np.random.default_rng()
            obs = obs + self.noise_std * self._rng.standard_normal(obs.shape)
        return obs.astype(self.observation_space.dtype, copy=False)


class DtChannel(gym.Wrapper):
    """Appends ``info["dt"] / nominal_dt`` to a flat Box observation (shape grows by one).

    After ``reset`` the channel reads 1.0 (no period has elapsed; the nominal one stands in).
    Needs ``info["dt"]`` and a ``nominal_dt`` attribute below it (``VaryingPeriod``).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, Box) or len(space.shape) != 1:
            raise TypeError(f"the Δt channel needs a flat Box observation, got {space}")
        self.observation_space = Box(
            np.append(space.low, 0.0).astype(space.dtype),
            np.append(space.high, np.inf).astype(space.dtype),
            dtype=space.dtype,
        )
        self._nominal_dt = float(env.get_wrapper_attr("nominal_dt"))

    def _with_dt(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.append(obs, info["dt"] / self._nominal_dt).astype(self.observation_space.dtype)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._with_dt(obs, info), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_dt(obs, info), reward, terminated, truncated, info
