"""The VecEnv a task trains on, and a progress bar that needs only tqdm.

``make_task_vec_env(task, n_envs)``: ``n_envs`` copies of the task (``dt_in_obs=True``: Δt /
nominal_dt is the last observation channel, the only way a per-step period reaches a policy
through SB3's VecEnv), each in SB3's ``Monitor`` (episode returns for the logs and for
``evaluate_policy``), stepped in lockstep in one process (:class:`InProcessVecEnv`, SB3's
``DummyVecEnv`` without its per-step deep copy of the infos: the policy runs once per tick for all
envs, and there is no process to feed), and with ``normalize_reward`` a
``VecNormalize`` on the *reward only*: observation normalisation lives in the policy (so that it is
saved with it and the Δt channel stays out of it).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from tqdm import tqdm

from cfc_control.policies.periods import TrainedPeriods
from cfc_control.tasks import make_env


class InProcessVecEnv(DummyVecEnv):
    """SB3's ``DummyVecEnv``, whose ``step_wait`` hands out a shallow copy of each env's info
    dict instead of a deep copy of the whole list.

    Why our own: the deep copy guards against envs that reuse their info dicts, which Gymnasium's
    MuJoCo envs and this project's wrappers never do (they build a new dict every step); copying
    each small dict of numpy scalars recursively cost about a third of an env step (33 µs of 95
    on HalfCheetah, measured in training with ``python -m cfc_control.bench rl``). The loop is
    SB3's own otherwise, so episodes, terminal observations and resets behave the same; a MuJoCo
    env's info at an episode's end also holds its full observation there
    (``terminal_full_observation``, what a privileged critic bootstraps a truncated episode from)."""

    def step_wait(self):  # type: ignore[override]
        for i, env in enumerate(self.envs):
            obs, self.buf_rews[i], terminated, truncated, info = env.step(self.actions[i])
            info = dict(info)
            self.buf_dones[i] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if self.buf_dones[i]:
                info["terminal_observation"] = obs
                full_observation = getattr(env.unwrapped, "_get_obs", None)  # looked up at episode ends only
                if full_observation is not None:  # a privileged critic values the final state by it
                    info["terminal_full_observation"] = np.asarray(full_observation(), dtype=np.float32)
                obs, self.reset_infos[i] = env.reset()
            self.buf_infos[i] = info
            self._save_obs(i, obs)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), list(self.buf_infos)


def make_task_vec_env(task: str, n_envs: int, *, normalize_reward: bool = False, gamma: float = 0.99,
                      timing: Optional[str] = None, obs: Optional[str] = None) -> VecEnv:
    """``n_envs`` Monitor-wrapped copies of ``task`` with the Δt channel, in an InProcessVecEnv, under a
    reward-only VecNormalize when ``normalize_reward`` (``gamma`` its discount)."""
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs <= 0:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")

    def factory() -> Monitor:
        return Monitor(make_env(task, timing=timing, obs=obs, dt_in_obs=True))

    vec: VecEnv = InProcessVecEnv([factory for _ in range(n_envs)])
    if normalize_reward:
        vec = VecNormalize(vec, norm_obs=False, norm_reward=True, gamma=gamma)
    return vec


def vec_env_nominal_dt(env: VecEnv) -> float:
    """The nominal control period (s) of a VecEnv's envs: the task's, else the stock env's ``dt``."""
    for name in ("nominal_dt", "dt"):
        try:
            return float(env.get_attr(name, indices=[0])[0])
        except AttributeError:
            continue
    raise ValueError("the env has neither a nominal_dt (a cfc_control task) nor a dt attribute; "
                     "pass nominal_dt explicitly")


def vec_env_trained_periods(env: VecEnv) -> Optional[TrainedPeriods]:
    """The periods a policy trained on a VecEnv's envs meets: their timing model's, or None."""
    try:
        return TrainedPeriods.of(env.get_attr("timing_model", indices=[0])[0])
    except AttributeError:
        return None


def reward_normalizer_state(env: Optional[VecEnv]) -> Optional[Dict[str, Any]]:
    """The running return statistics of a VecNormalize in ``env`` (JSON-serialisable), or None."""
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    norm = unwrap_vec_normalize(env) if env is not None else None
    if norm is None:
        return None
    rms = norm.ret_rms
    return {"mean": float(rms.mean), "var": float(rms.var), "count": float(rms.count)}


def restore_reward_normalizer(env: Optional[VecEnv], state: Optional[Dict[str, Any]]) -> None:
    """Put saved return statistics back into the VecNormalize in ``env`` (if both exist)."""
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    norm = unwrap_vec_normalize(env) if env is not None else None
    if norm is None or state is None:
        return
    norm.ret_rms.mean = float(state["mean"])
    norm.ret_rms.var = float(state["var"])
    norm.ret_rms.count = float(state["count"])


def reward_normalizer_returns(env: Optional[VecEnv]) -> Optional[np.ndarray]:
    """The discounted returns a VecNormalize in ``env`` is accumulating per env, or None."""
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    norm = unwrap_vec_normalize(env) if env is not None else None
    return None if norm is None else np.asarray(norm.returns, dtype=np.float64)


def restore_reward_normalizer_returns(env: Optional[VecEnv], returns: np.ndarray) -> None:
    """Put saved per-env running returns back into the VecNormalize in ``env`` (if any)."""
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    norm = unwrap_vec_normalize(env) if env is not None else None
    if norm is not None and np.shape(returns) == np.shape(norm.returns):
        norm.returns = np.asarray(returns, dtype=np.float64).copy()


class StepProgressBar(BaseCallback):
    """A tqdm progress bar over env steps. SB3's own ProgressBarCallback needs the ``rich``
    package, which is not a dependency here."""

    def __init__(self) -> None:
        super().__init__()
        self.bar: Optional[tqdm] = None

    def _on_training_start(self) -> None:
        total = self.locals["total_timesteps"] - self.model.num_timesteps
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, desc=type(self.model).__name__)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
