"""A tiny Gymnasium env for the PPO tests: observe a cue, act it back.

Observation (2,): [cue, Δt / nominal]; the cue is drawn each step in [-0.8, 0.8] and the period
in [0.5, 2] nominal periods. Reward -(action - previous cue)^2, so the best policy repeats the cue
it saw. Episodes end (terminated) after a random 5 to 9 steps, so rollouts hold episode starts at
varying places. ``dt`` is the nominal period the policy's time input is built around.
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CueEnv(gym.Env):
    dt = 0.05

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._cue = 0.0
        self._left = 0

    def _obs(self, ratio: float) -> np.ndarray:
        self._cue = float(self.np_random.uniform(-0.8, 0.8))
        return np.array([self._cue, ratio], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._left = int(self.np_random.integers(5, 10))
        return self._obs(1.0), {}

    def step(self, action):
        reward = -float((np.asarray(action).reshape(-1)[0] - self._cue) ** 2)
        self._left -= 1
        return self._obs(float(self.np_random.uniform(0.5, 2.0))), reward, self._left <= 0, False, {}
