"""One recorded episode of a policy: what it saw, did and was paid, and what its neurons did.

The policy is stepped through :class:`~cfc_control.runtime.runner.PolicyRunner`, the run-time
path a robot uses, with the elapsed time since the previous observation as Δt (the nominal period
at the first step, then each step's ``info["dt"]``), the same convention as evaluation. The
simulator's state is recorded at every observation so that :mod:`cfc_control.viewer.scene` can
draw the frames afterwards.

Step ``t`` of a :class:`Rollout` is one control step: the policy reads observation ``t`` (taken at
simulated time ``time[t]``, ``dt[t]`` after the previous one), updates its state to ``hidden[t]``,
sends ``actions[t]``, which is held for ``period[t]`` seconds and earns ``rewards[t]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.policies.spaces import check_spaces
from cfc_control.tasks import env_nominal_dt
from cfc_control.runtime.runner import PolicyRunner
from cfc_control.viewer.neurons import NeuronLayout, neuron_layout
from cfc_control.viewer.scene import capture_state


@dataclass
class Rollout:
    """A recorded episode of T steps (see the module docstring for what step t means).

    Arrays: ``observations`` (T, n_obs) raw; ``actions`` (T, n_act) as sent to the env;
    ``dt`` (T,) seconds since the previous observation, as the policy was given it; ``period``
    (T,) seconds each action was held (``info["dt"]``); ``time`` (T,) simulated seconds at each
    observation; ``rewards`` (T,); ``dropped`` (T,) observations lost during each step;
    ``hidden`` (T, H) the state after each step, in the model's state order (see ``layout``);
    ``sim_states`` (T, S) the simulator state at each observation (one video frame each).
    """

    env_id: str
    timing: str
    seed: Optional[int]
    nominal_dt: float
    action_low: np.ndarray
    action_high: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    dt: np.ndarray
    period: np.ndarray
    time: np.ndarray
    rewards: np.ndarray
    dropped: np.ndarray
    hidden: np.ndarray
    sim_states: np.ndarray
    layout: NeuronLayout
    terminated: bool
    truncated: bool

    @property
    def steps(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def returns(self) -> np.ndarray:
        """Running return after each step, (T,)."""
        return np.cumsum(self.rewards)

    @property
    def total_return(self) -> float:
        return float(self.rewards.sum())

    def mean_abs_activity(self) -> np.ndarray:
        """Mean |state| over the episode per state entry, (H,)."""
        if self.steps == 0 or self.hidden.shape[1] == 0:
            return np.zeros(self.hidden.shape[1])
        return np.abs(self.hidden).mean(axis=0)


def record_rollout(
    policy: RecurrentPolicy,
    env: Any,
    *,
    seed: Optional[int] = None,
    max_steps: Optional[int] = None,
    progress: bool = False,
) -> Rollout:
    """Run one episode of ``policy`` on ``env`` (a task env from ``make_env``; any render mode)
    from ``env.reset(seed=seed)``, for at most ``max_steps`` steps (None: until the episode
    ends). ``progress`` shows a tqdm bar."""
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    check_spaces(policy.n_obs, policy.n_act, env.observation_space, env.action_space, what=env_id,
                 hint="pick the matching task or --obs")
    nominal = env_nominal_dt(env)
    timing = str(_wrapper_attr(env, "timing", f"fixed:{nominal:g}"))
    horizon = _wrapper_attr(env, "horizon_s", None)
    expected = max_steps
    if expected is None and horizon:
        expected = int(math.ceil(horizon / nominal - 1e-9))

    runner = PolicyRunner(policy, batch_size=1)
    runner.reset()
    obs, info = env.reset(seed=seed)
    dt = float(info.get("dt", nominal))
    log: dict = {k: [] for k in ("obs", "act", "dt", "period", "time", "rew", "drop", "hid", "sim")}
    terminated = truncated = False
    sim_time = 0.0
    bar = _progress(progress, expected, "rollout")
    try:
        while max_steps is None or len(log["rew"]) < max_steps:
            log["sim"].append(capture_state(env))
            obs = np.asarray(obs, dtype=np.float64)
            action = runner.step(obs, dt)
            log["hid"].append(runner.get_state().model_state[0][0])
            log["obs"].append(obs)
            log["act"].append(action)
            log["dt"].append(dt)
            log["time"].append(sim_time)
            obs, reward, terminated, truncated, info = env.step(action)
            dt = float(info.get("dt", nominal))
            sim_time += dt
            log["period"].append(dt)
            log["rew"].append(float(reward))
            log["drop"].append(int(info.get("dropped", 0)))
            if bar is not None:
                bar.update(1)
            if terminated or truncated:
                break
    finally:
        if bar is not None:
            bar.close()

    steps = len(log["rew"])
    layout = neuron_layout(policy.model)
    return Rollout(
        env_id=env_id,
        timing=timing,
        seed=seed,
        nominal_dt=nominal,
        action_low=np.asarray(env.action_space.low, dtype=np.float64).copy(),
        action_high=np.asarray(env.action_space.high, dtype=np.float64).copy(),
        observations=np.asarray(log["obs"], dtype=np.float64).reshape(steps, policy.n_obs),
        actions=np.asarray(log["act"], dtype=np.float64).reshape(steps, policy.n_act),
        dt=np.asarray(log["dt"], dtype=np.float64),
        period=np.asarray(log["period"], dtype=np.float64),
        time=np.asarray(log["time"], dtype=np.float64),
        rewards=np.asarray(log["rew"], dtype=np.float64),
        dropped=np.asarray(log["drop"], dtype=np.int64),
        hidden=np.asarray(log["hid"], dtype=np.float64).reshape(steps, layout.size),
        sim_states=np.asarray(log["sim"], dtype=np.float64).reshape(steps, -1),
        layout=layout,
        terminated=bool(terminated),
        truncated=bool(truncated),
    )


def _wrapper_attr(env: Any, name: str, default: Any) -> Any:
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        return default


def _progress(enabled: bool, total: Optional[int], desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=None)  # None: off unless a TTY
