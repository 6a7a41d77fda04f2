"""Closed-loop episodes on several envs in lockstep: evaluation, demonstration collection and
DAgger share this one loop.

Each tick, every live env is observed; the student policy (if any) is stepped on the whole batch
with each env's own Δt (the realised period from ``info["dt"]``; the nominal period at an episode's
first step) and its recurrent state; the expert (if any) labels each env from its full simulator
state; the executed action is the expert's with probability ``beta`` (per env and step, DAgger's
mixture), else the student's, plus optional DART noise. Finished envs wait for the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from cfc_control.tasks import env_nominal_dt
from cfc_control.episodes.demos import Demonstrations


@dataclass
class RolloutResult:
    """Returns and lengths per episode (in ``seeds`` order), and the recorded episodes
    (``None`` unless ``record=True``)."""

    returns: np.ndarray
    lengths: np.ndarray
    demos: Optional[Demonstrations]


def run_episodes(
    make_env: Callable[[], Any],
    seeds: Sequence[int],
    *,
    policy: Optional[torch.nn.Module] = None,
    expert: Optional[Any] = None,
    beta: float = 0.0,
    noise: float = 0.0,
    noise_period_power: float = 0.0,
    rng: Optional[np.random.Generator] = None,
    record: bool = False,
    batch: int = 32,
    metadata: Optional[Dict[str, Any]] = None,
    progress: Optional[str] = None,
) -> RolloutResult:
    """Run one episode per seed (reset with that seed), ``batch`` envs at a time.

    ``policy``: a :class:`~cfc_control.policies.RecurrentPolicy` (the student); ``expert``: an
    :class:`~cfc_control.experts.Expert`. Without a policy the expert drives (``beta`` is then 1).
    ``noise``: std of Gaussian noise added to the executed action, in units of the action's
    half-range (DART); the recorded label stays the expert's. ``noise_period_power`` p: the std
    times (Δt / nominal)^-p, Δt the period the step's observation reports. Why: a noisy action is
    held for the whole period, so with one std the variance of its impulse per second grows with
    the period (at 0.5x half that at the nominal period); p = 0.5 makes it the same at every
    period. ``record=True`` needs an expert
    (its actions are the labels) and returns the episodes as :class:`Demonstrations`.
    ``progress``: the label of a progress bar over the episodes (none without).
    """
    if policy is None and expert is None:
        raise ValueError("run_episodes needs a policy, an expert, or both")
    if record and expert is None:
        raise ValueError("recording demonstrations needs an expert to label the steps")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if not np.isfinite(noise_period_power):
        raise ValueError(f"noise_period_power must be finite, got {noise_period_power}")
    if policy is None:
        beta = 1.0
    else:
        policy.eval()
    rng = np.random.default_rng(0) if rng is None else rng
    seeds = [int(s) for s in seeds]
    returns: List[float] = []
    lengths: List[int] = []
    episodes: List[Dict[str, Any]] = []
    bar = tqdm(total=len(seeds), unit="episode", desc=progress, dynamic_ncols=True, disable=progress is None)
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        envs = [make_env() for _ in chunk]
        try:
            r, n, eps = _run_chunk(envs, chunk, policy, expert, beta, noise, noise_period_power, rng, record, bar)
        finally:
            for env in envs:
                env.close()
        returns += r
        lengths += n
        episodes += eps
    demos = None
    if record:
        meta = {"expert": getattr(expert, "name", type(expert).__name__), "beta": beta, "noise": noise,
                "noise_period_power": noise_period_power, **(metadata or {})}
        demos = Demonstrations.from_episodes(episodes, meta)
    bar.close()
    return RolloutResult(np.asarray(returns), np.asarray(lengths), demos)


def _run_chunk(envs, seeds, policy, expert, beta, noise, noise_period_power, rng, record, bar):
    n = len(envs)
    space = envs[0].action_space
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    half = (high - low) / 2.0
    nominal = env_nominal_dt(envs[0])
    obs = np.stack([np.asarray(env.reset(seed=s)[0], dtype=np.float64) for env, s in zip(envs, seeds)])
    if expert is not None:
        expert.reset()
    dt = np.full(n, nominal)
    alive = np.ones(n, dtype=bool)
    totals = np.zeros(n)
    steps = np.zeros(n, dtype=np.int64)
    logs: List[Dict[str, list]] = [{k: [] for k in ("observations", "actions", "executed_actions", "dt", "rewards",
                                                     "terminations", "truncations", "full_observations")}
                                   for _ in range(n)]
    has_full = all(callable(getattr(env.unwrapped, "_get_obs", None)) for env in envs)
    finals: List[Optional[np.ndarray]] = [None] * n
    hx = None
    device = None
    if policy is not None:
        device = next(iter(policy.buffers()), torch.zeros(())).device
    shown_at = time.monotonic()  # when the progress bar last showed the step count
    while alive.any():
        student = None
        if policy is not None:
            with torch.no_grad():
                y, hx = policy.step(torch.as_tensor(obs, dtype=torch.float32, device=device),
                                    torch.as_tensor(dt, dtype=torch.float32, device=device), hx)
                student = policy.to_action(y).cpu().numpy().astype(np.float64)
        for i in np.flatnonzero(alive):
            env = envs[i]
            label = None
            if expert is not None:
                label = np.clip(np.asarray(expert.act(env), dtype=np.float64), low, high)
            full_before = np.asarray(env.unwrapped._get_obs(), dtype=np.float64) if record and has_full else None
            use_expert = student is None or (beta > 0 and rng.random() < beta)
            action = label if use_expert else student[i]
            if noise > 0:
                std = noise * (dt[i] / nominal) ** -noise_period_power
                action = np.clip(action + std * half * rng.standard_normal(action.shape), low, high)
            next_obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
            if record:
                log = logs[i]
                if has_full:  # the state the step was taken in (the env's stock observation)
                    log["full_observations"].append(full_before)
                log["observations"].append(obs[i].copy())
                log["actions"].append(label)
                log["executed_actions"].append(action)
                log["dt"].append(dt[i])
                log["rewards"].append(float(reward))
                log["terminations"].append(bool(terminated))
                log["truncations"].append(bool(truncated))
            totals[i] += float(reward)
            steps[i] += 1
            obs[i] = np.asarray(next_obs, dtype=np.float64)
            dt[i] = float(info.get("dt", nominal))
            if terminated or truncated:
                alive[i] = False
                finals[i] = obs[i].copy()
                bar.update(1)
        if not bar.disable and time.monotonic() - shown_at >= 1.0:  # lockstep episodes end together
            bar.set_postfix(step=int(steps.max()), refresh=True)
            shown_at = time.monotonic()
    episodes = []
    if record:
        for i in range(n):
            ep = {k: np.asarray(v) for k, v in logs[i].items()}
            if not has_full:
                ep["full_observations"] = None
            ep["seed"] = seeds[i]
            ep["final_observation"] = finals[i]
            episodes.append(ep)
    return totals.tolist(), steps.tolist(), episodes
