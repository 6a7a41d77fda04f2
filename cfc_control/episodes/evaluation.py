"""Evaluate a policy on a task: N episodes from fixed seeds, under any timing.

The policy is stepped with each step's realised period from ``info["dt"]`` (the nominal period at
an episode's first step) and its recurrent state carried through the episode; episodes run in
lockstep batches (one policy call per tick for all of them). Returns are the task's (reward per
unit of simulated time, summed).

    from cfc_control.episodes.evaluation import evaluate
    r = evaluate("policies/cfc-invertedpendulum-pos-irregular", "InvertedPendulum-Pos-Irregular",
                 timing="Jitter", episodes=20)
    r.mean, r.std, r.returns, r.lengths
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from cfc_control.policies import RecurrentPolicy, check_spaces, load_policy, resolve_policy_dir
from cfc_control.episodes.closed_loop import run_episodes
from cfc_control.experts import make_expert
from cfc_control.policies.periods import warn_if_env_outside
from cfc_control.tasks import make_env, resolve_env_id, resolve_stored_task

# Evaluation episodes use their own seeds, far from the ones demonstrations and training use, and
# the same ones for every policy, so that scores compare on the same initial states and periods.
EVAL_SEED = 1_000_000_000
TIMINGS = ("Fixed", "Jitter", "Irregular")


@dataclass
class EvalResult:
    """``returns`` and ``lengths`` (steps) per episode; ``mean``/``std`` of the returns."""

    task: str
    timing: Optional[str]
    episodes: int
    seed: int
    mean: float
    std: float
    returns: List[float] = field(repr=False)
    lengths: List[int] = field(repr=False)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def evaluate(policy: Union[RecurrentPolicy, str, "os.PathLike[str]"], env: Optional[str] = None, *,
             timing: Optional[str] = None, obs: Optional[str] = None, episodes: int = 20,
             seed: int = EVAL_SEED, batch: int = 32, progress: Optional[str] = None) -> EvalResult:
    """Run ``episodes`` episodes (reset seeds ``seed``, ``seed + 1``, ...) of ``policy`` (a policy
    or its directory) on task ``env`` (default: the task the policy was trained on), with
    ``timing``/``obs`` overriding the task's. Deterministic for a given policy and seed.
    ``progress``: the label of a progress bar over the episodes (none without)."""
    if not isinstance(policy, RecurrentPolicy):
        policy = load_policy(resolve_policy_dir(policy))
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if env:
        task = resolve_env_id(env)
    elif not policy.task:
        raise ValueError("the policy names no task; pass env=")
    else:  # read from a file: data, never resolved by importing anything
        task = resolve_stored_task(policy.task, "the policy's config.json")

    def env_fn():
        return make_env(task, timing=timing, obs=obs)

    probe = env_fn()
    try:
        check_spaces(policy.n_obs, policy.n_act, probe.observation_space, probe.action_space,
                     what=f"{task} (obs={obs or 'as registered'})", hint="pick the matching task or --obs")
        warn_if_env_outside(policy.trained_periods(), probe)
        spec = probe.get_wrapper_attr("timing")
    finally:
        probe.close()
    policy.eval()
    with torch.no_grad():
        result = run_episodes(env_fn, [seed + i for i in range(episodes)], policy=policy, batch=batch,
                              progress=progress)
    returns = result.returns.astype(float)
    return EvalResult(task=task, timing=spec, episodes=episodes, seed=seed, mean=float(returns.mean()),
                      std=float(returns.std()), returns=returns.tolist(), lengths=result.lengths.astype(int).tolist())


def evaluate_expert(spec: Union[str, "os.PathLike[str]"], env: str, *, timing: Optional[str] = None,
                    obs: Optional[str] = None, episodes: int = 20, seed: int = EVAL_SEED,
                    batch: int = 32) -> EvalResult:
    """:func:`evaluate` for an expert (a name such as ``"lqr"`` or ``"mpc"``, or an SB3 expert
    directory) on task ``env``, on the same episode seeds: the anchor a cloned policy is measured
    against. The expert acts on the full simulator state, whatever the task observes."""
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    task = resolve_env_id(env)

    def env_fn():
        return make_env(task, timing=timing, obs=obs)

    probe = env_fn()
    try:
        expert = make_expert(spec, probe)
        timing_spec = probe.get_wrapper_attr("timing")
    finally:
        probe.close()
    result = run_episodes(env_fn, [seed + i for i in range(episodes)], expert=expert, batch=batch)
    returns = result.returns.astype(float)
    return EvalResult(task=task, timing=timing_spec, episodes=episodes, seed=seed, mean=float(returns.mean()),
                      std=float(returns.std()), returns=returns.tolist(), lengths=result.lengths.astype(int).tolist())


def evaluate_timings(policy: Union[RecurrentPolicy, str, "os.PathLike[str]"], env: Optional[str] = None, *,
                     timings: Sequence[str] = TIMINGS, episodes: int = 20, seed: int = EVAL_SEED,
                     obs: Optional[str] = None, progress: bool = False) -> Dict[str, EvalResult]:
    """:func:`evaluate` under each timing (default the Fixed, Jitter and Irregular presets), with
    a progress bar per timing when ``progress``."""
    if not isinstance(policy, RecurrentPolicy):
        policy = load_policy(resolve_policy_dir(policy))
    return {t: evaluate(policy, env, timing=t, obs=obs, episodes=episodes, seed=seed,
                        progress=f"eval {t}" if progress else None) for t in timings}


def card_entry(results: Dict[str, EvalResult]) -> Dict[str, Any]:
    """The card's "evaluation" section: per timing mean, std, episodes, seed and the returns."""
    return {name: {"timing_spec": r.timing, "mean": round(r.mean, 3), "std": round(r.std, 3), "episodes": r.episodes,
                   "seed": r.seed, "returns": [round(x, 3) for x in r.returns],
                   "mean_length": float(np.mean(r.lengths))}
            for name, r in results.items()}
