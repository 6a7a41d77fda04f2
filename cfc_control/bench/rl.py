"""Reinforcement-learning throughput (issue 5, "Speed"): ``python -m cfc_control.bench rl``.

Env steps per second of *training* (rollouts and updates, wall clock, one CPU thread), on the
same task, network sizes and machine, in one run:

* ``cfc``   our SequencePPO with a CfC actor and critic (64 units),
* ``cfc-numpy`` the same with the rollout's policy step on the runtime's numpy kernels
            (``rollout_kernel="numpy"``),
* ``lstm``  our SequencePPO with LSTM actor and critic (64 units, Δt as an input),
* ``rppo``  sb3-contrib's RecurrentPPO, ``MlpLstmPolicy`` as users run it (its default LSTM of
            256 units, its default recipe),
* ``rppo64`` the same with the LSTM shrunk to our size (64 units),
* ``mlp``   SB3's PPO, ``MlpPolicy`` (64x64) with its default recipe,

and the env alone, no learning, uniformly random actions (the limit every row shares):

* ``env``    the task's vec env as the rows train on it (timing wrappers, Δt channel, Monitor),
* ``mujoco`` the stock Gymnasium env it is built on, in Gymnasium's synchronous vector env.

With ``--eval-episodes N`` each trained row is also scored (deterministic return under Fixed,
Jitter and Irregular timing, N episodes each, the same reset seeds for every row), which makes
this the same-steps comparison of the issue's targets, e.g. for the HalfCheetah target::

    python -m cfc_control.bench rl --rows rppo,rppo64 --steps 1000000 --n-envs 8 --eval-episodes 20

Every row trains for ``--steps`` env steps (rounded up to whole rollouts) on ``--n-envs``
copies of the task with the Δt channel (the SB3 baselines see it as one more observation), and
makes ``n_epochs = 10`` passes over every sample in its update; the minibatch sizes are each
library's own default (ours: the task's hyperparameters), printed in the table. ``--same-recipe``
gives the baselines our rollout length and minibatch size instead. Our rows leave out the
state-estimate head and full-state critic some families train with from scratch, which the
baselines lack. Goals printed at the end:
CfC at least 5x RecurrentPPO at equal size (``rppo64``), at least SB3's MLP PPO, and at least half
the throughput of stepping the task's vec env alone.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch

from cfc_control.episodes.evaluation import EVAL_SEED
from cfc_control.tasks.registry import task_info
from cfc_control.training.ppo import SequencePPO, config_for, make_task_vec_env

ROWS = ("cfc", "cfc-numpy", "lstm", "rppo", "rppo64", "mlp", "env", "mujoco")
ENV_ROWS = ("env", "mujoco")
DEFAULT_ENV = "HalfCheetah-Pos-Jitter"


@dataclass
class Result:
    row: str
    what: str
    steps: int
    seconds: float
    rollout_steps: int
    minibatch: str
    rollout_s: Optional[float] = None
    update_s: Optional[float] = None
    returns: Optional[Dict[str, Tuple[float, float]]] = None  # timing -> (mean, std), with --eval-episodes

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


TIMINGS = ("Fixed", "Jitter", "Irregular")


def evaluate_returns(model: Any, task: str, episodes: int) -> Dict[str, Tuple[float, float]]:
    """Deterministic returns of any SB3-style ``model.predict`` (recurrent or not) under each timing,
    through SB3's ``evaluate_policy`` on the task with the Δt channel; the same reset seeds for
    every model (the evaluation seeds of :mod:`cfc_control.episodes.evaluation`)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    out = {}
    for timing in TIMINGS:
        env = make_task_vec_env(task, 1, timing=timing)
        env.seed(EVAL_SEED)
        mean, std = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
        env.close()
        out[timing] = (float(mean), float(std))
    return out


# The baselines have neither the state-estimate head nor the full-state critic that some
# families' recipes add in training, so the throughput rows leave them out: the same PPO work.
_EQUAL_WORK = {"aux_state_coef": 0.0, "critic_input": "observation"}


def _ours(task: str, row: str, steps: int, n_envs: int, seed: int) -> Tuple[Result, Any]:
    model, _, kernel = row.partition("-")
    # The model's own settings on the task (config_for's model=), as `train --policy` gets them.
    cfg = config_for(task, {"n_envs": n_envs, **_EQUAL_WORK, "rollout_kernel": kernel or "torch"}, model=model)
    algo = SequencePPO(task, model, cfg, model_kw={"units": 64}, seed=seed)
    start = time.perf_counter()
    algo.learn(steps)
    seconds = time.perf_counter() - start
    kw = ", ".join(f"{k}={v}" for k, v in algo.model_kw.items())
    what = f"ours, {model} actor + critic ({kw})" + (f", {kernel} rollout" if kernel else "")
    return Result(row, what, algo.num_timesteps, seconds, cfg.rollout_steps,
                  f"~{cfg.batch_size} steps ({cfg.batch_size // cfg.seq_len}+ sequences of <= {cfg.seq_len})",
                  round(algo.rollout_time_s, 2), round(algo.update_time_s, 2)), algo


def _sb3(task: str, which: str, steps: int, n_envs: int, seed: int,
         recipe: Optional[Dict[str, int]]) -> Tuple[Result, Any]:
    env = make_task_vec_env(task, n_envs)
    kw: Dict[str, Any] = dict(recipe or {})
    if which.startswith("rppo"):
        from sb3_contrib import RecurrentPPO

        rppo_units = 64 if which == "rppo64" else 256
        model = RecurrentPPO("MlpLstmPolicy", env, seed=seed, device="cpu",
                             policy_kwargs={"lstm_hidden_size": rppo_units}, **kw)
        what = f"sb3-contrib RecurrentPPO, LSTM {rppo_units} + MLP heads"
    else:
        from stable_baselines3 import PPO

        model = PPO("MlpPolicy", env, seed=seed, device="cpu", **kw)
        what = "SB3 PPO, MLP 64x64"
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    env.close()
    return Result(which, what, model.num_timesteps, seconds, model.n_steps * n_envs, f"{model.batch_size} steps"), model


def _env_only(task: str, which: str, steps: int, n_envs: int, seed: int) -> Result:
    """Step the task's vec env (``env``) or the stock Gymnasium env under it (``mujoco``) with
    uniformly random actions for ``steps`` env steps: no policy, no learning."""
    if which == "env":
        env = make_task_vec_env(task, n_envs)
        env.seed(seed)
        env.reset()
        what = "the task's vec env alone, random actions"
    else:
        stock = task_info(task)["base_env"]
        env = gym.make_vec(stock, num_envs=n_envs, vectorization_mode="sync")
        env.reset(seed=seed)
        what = f"{stock} in Gymnasium's sync vector env, random actions"
    space = env.action_space
    low, high = (np.broadcast_to(b, (n_envs,) + space.shape[-1:]) for b in (space.low, space.high))
    rng = np.random.default_rng(seed)
    ticks = -(-steps // n_envs)
    actions = rng.uniform(low, high, size=(ticks,) + low.shape).astype(np.float32)
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    seconds = time.perf_counter() - start
    env.close()
    return Result(which, what, ticks * n_envs, seconds, 0, "")


def run(rows: List[str], task: str, steps: int, n_envs: int, seed: int, same_recipe: bool,
        eval_episodes: int = 0) -> List[Result]:
    recipe = None
    if same_recipe:
        cfg = config_for(task, {"n_envs": n_envs})
        recipe = {"n_steps": cfg.n_steps, "batch_size": cfg.batch_size, "n_epochs": cfg.n_epochs}
    results = []
    for row in rows:
        if row in ENV_ROWS:
            result, model = _env_only(task, row, steps, n_envs, seed), None
        elif row in ("cfc", "cfc-numpy", "lstm"):
            result, model = _ours(task, row, steps, n_envs, seed)
        else:
            result, model = _sb3(task, row, steps, n_envs, seed, recipe)
        if eval_episodes > 0 and model is not None:
            result.returns = evaluate_returns(model, task, eval_episodes)
        results.append(result)
        r = result
        print(f"  {r.row}: {r.steps} steps in {r.seconds:.1f} s = {r.steps_per_s:.0f} steps/s"
              + (f", returns {r.returns}" if r.returns else ""), flush=True)
    return results


def table(results: List[Result]) -> str:
    scored = any(r.returns for r in results)
    head = "| row | what | env steps/s | steps | s | rollout (steps) | minibatch | our rollout s / update s |"
    lines = [head + (" return Fixed / Jitter / Irregular |" if scored else ""),
             "|---" * (8 + int(scored)) + "|"]
    for r in results:
        split = f"{r.rollout_s} / {r.update_s}" if r.rollout_s is not None else ""
        line = (f"| {r.row} | {r.what} | {r.steps_per_s:.0f} | {r.steps} | {r.seconds:.1f} | {r.rollout_steps or ''} "
                f"| {r.minibatch} | {split} |")
        if scored:
            line += " " + " / ".join(f"{m:.0f} ± {s:.0f}" for m, s in (r.returns or {}).values()) + " |"
        lines.append(line)
    return "\n".join(lines)


def ratios(results: List[Result]) -> Dict[str, float]:
    by = {r.row: r.steps_per_s for r in results}
    out = {}
    if "cfc" in by and "rppo" in by:
        out["cfc / rppo"] = by["cfc"] / by["rppo"]
    if "cfc" in by and "rppo64" in by:
        out["cfc / rppo64"] = by["cfc"] / by["rppo64"]
    if "cfc-numpy" in by and "rppo64" in by:
        out["cfc-numpy / rppo64"] = by["cfc-numpy"] / by["rppo64"]
    if "cfc" in by and "mlp" in by:
        out["cfc / mlp"] = by["cfc"] / by["mlp"]
    if "lstm" in by and "rppo64" in by:
        out["lstm / rppo64"] = by["lstm"] / by["rppo64"]
    for env_row in ENV_ROWS:
        for ours in ("cfc", "cfc-numpy"):
            if ours in by and env_row in by:
                out[f"{ours} / {env_row}"] = by[ours] / by[env_row]
    return out


GOALS = {"cfc / rppo64": 5.0, "cfc-numpy / rppo64": 5.0, "cfc / mlp": 1.0, "cfc / env": 0.5, "cfc-numpy / env": 0.5}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfc_control.bench rl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=DEFAULT_ENV, help="task")
    parser.add_argument("--steps", type=int, default=20_000, help="env steps of training per row")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--same-recipe", action="store_true",
                        help="baselines use our rollout length and minibatch size instead of their defaults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--eval-episodes", type=int, default=0,
                        help="after training, evaluate each row deterministically for this many episodes per "
                             "timing (Fixed, Jitter, Irregular): the same-steps score comparison")
    parser.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if args.steps <= 0 or args.n_envs <= 0:
        parser.error("--steps and --n-envs must be positive")
    torch.set_num_threads(args.threads)
    print(f"# RL training throughput: {args.env}, {args.steps} steps per row, {args.n_envs} envs, "
          f"{args.threads} thread(s), torch {torch.__version__}", flush=True)
    results = run(rows, args.env, args.steps, args.n_envs, args.seed, args.same_recipe, args.eval_episodes)
    print()
    print(table(results))
    found = ratios(results)
    if found:
        print()
    for name, value in found.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else (f"  (goal >= {goal:g}: {'met' if value >= goal else 'NOT met'})")
        print(f"{name}: {value:.2f}x{verdict}")
    if args.json:
        print(json.dumps({"env": args.env, "n_envs": args.n_envs, "threads": args.threads,
                          "results": [{**asdict(r), "steps_per_s": r.steps_per_s} for r in results],
                          "ratios": found}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
