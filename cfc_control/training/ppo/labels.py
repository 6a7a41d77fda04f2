"""What a rollout step is labelled with beyond PPO's own data, read from the envs in this process
before the step (the state the step's observation shows):

* the **teacher's action** (an expert of :mod:`cfc_control.experts`, acting from the full
  simulator state), normalised, for the ``teacher_coef`` term;
* the **full observation** (a MuJoCo env's stock ``_get_obs``: velocities included), for the
  actor's auxiliary state estimate (``aux_state_coef``).

Both need the envs themselves, so the VecEnv must hold them in this process (a DummyVecEnv).
"""

from __future__ import annotations

from typing import List, Optional

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from cfc_control.experts.base import Expert, act_in_each
from cfc_control.policies import ActionMapping


def in_process_envs(vec_env: Optional[VecEnv], what: str) -> List[gym.Env]:
    """The envs of an in-process VecEnv (through its wrappers); ValueError naming ``what`` needs
    them otherwise."""
    inner = vec_env.unwrapped if vec_env is not None else None
    if not isinstance(inner, DummyVecEnv):
        raise ValueError(f"{what} needs the envs in this process (a DummyVecEnv), got {type(inner).__name__}")
    return list(inner.envs)


class StepLabels:
    """The labels of every env's current state: ``teacher`` (None: no teacher labels) and, with
    ``full_state``, the full observation; ``envs`` the VecEnv's envs in order."""

    def __init__(self, envs: List[gym.Env], teacher: Optional[Expert] = None, full_state: bool = False) -> None:
        if full_state and not all(callable(getattr(e.unwrapped, "_get_obs", None)) for e in envs):
            raise ValueError("aux_state_coef > 0 needs MuJoCo envs (their full observation, _get_obs); "
                             f"{type(envs[0].unwrapped).__name__} has none")
        if hasattr(teacher, "check_env"):  # the SB3 experts check the env they are given
            for env in envs:
                teacher.check_env(env)
        self.envs = envs
        self.teacher = teacher
        self.full_state = bool(full_state)

    @property
    def state_width(self) -> int:
        """Width of the full observation (0 without state labels)."""
        return int(np.asarray(self.envs[0].unwrapped._get_obs()).size) if self.full_state else 0

    def teacher_actions(self, mapping: ActionMapping) -> Optional[np.ndarray]:
        """The teacher's action for every env's current state, (n_envs, A) normalised by
        ``mapping``; None without a teacher."""
        if self.teacher is None:
            return None
        return mapping.normalize(act_in_each(self.teacher, self.envs)).astype(np.float32)

    def full_observations(self) -> Optional[np.ndarray]:
        """Every env's full observation now, (n_envs, state_width); None without state labels."""
        if not self.full_state:
            return None
        return np.stack([np.asarray(e.unwrapped._get_obs(), dtype=np.float32).reshape(-1) for e in self.envs])
