"""The ``ppo`` algorithm of ``python -m cfc_control.train``: flags, resume, logs, checkpoints.

    python -m cfc_control.train --env InvertedPendulum-Pos-Irregular --algo ppo --policy cfc --seed 0
    python -m cfc_control.train --env HalfCheetah-Pos-Jitter --algo ppo --policy ncp --n-envs 8
    python -m cfc_control.train --algo ppo --init-from runs/InvertedPendulum-Pos-Irregular-bc-cfc-s0/policy
    python -m cfc_control.train --algo ppo --out runs/x --resume

Hyperparameters come from :mod:`cfc_control.training.ppo.hyperparams` (the task's defaults); the
flags below and ``--hp KEY=VALUE`` override them. ``--checkpoint-every`` counts PPO iterations
(rollout + update). Logs (metrics.csv, tb/) have one row per iteration, at the env-step count.

Run directory, besides what every algorithm writes: ``checkpoints/<step>/`` holds the actor (a
policy directory), the optimiser and torch's RNG (:mod:`cfc_control.training.checkpoint`);
``ppo_state/<step>/`` the critic, log-std, counters and return statistics
(:mod:`.persistence`), written before the checkpoint that points at it. On ``--resume`` the envs
start fresh episodes (their seeds move on by the steps already taken).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from typing import Any, Dict, List, Optional

from stable_baselines3.common.logger import KVWriter, Logger

from cfc_control.policies import load_policy, read_card, resolve_policy_dir
from cfc_control.training.evaluation import EVAL_SEED
from cfc_control.training.run import Algorithm, RunContext, TrainOutcome

STATE_DIR = "ppo_state"
# Flags of bc/dagger that a PPO user might reach for; they would be silently ignored.
IMITATION_FLAGS = {"--lr": "--learning-rate", "--batch-size": "--hp batch_size=N", "--epochs": "--n-epochs"}


def ppo_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--total-steps", type=int, default=None, help="env steps of training (default: the task's)")
    group.add_argument("--n-envs", type=int, default=None, help="envs stepped in lockstep")
    group.add_argument("--n-steps", type=int, default=None, help="steps per env per rollout")
    group.add_argument("--learning-rate", type=float, default=None, help="Adam learning rate")
    group.add_argument("--n-epochs", type=int, default=None, help="passes over each rollout")
    group.add_argument("--seq-len", type=int, default=None, help="longest training sequence (BPTT steps)")
    group.add_argument("--gamma", type=float, default=None, help="discount")
    group.add_argument("--ent-coef", type=float, default=None, help="entropy bonus")
    group.add_argument("--critic", default=None, help="critic model name (default: the actor's kind and size)")
    group.add_argument("--init-from", default=None, metavar="DIR",
                       help="start the actor from this policy directory (e.g. a behaviour-cloned one)")
    group.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                       help="any PPOConfig field, e.g. --hp batch_size=1024 (repeatable)")


def _check_flags(command: str) -> None:
    """Refuse bc/dagger flags that have a PPO counterpart (argparse accepts them for every algo)."""
    import shlex

    for token in shlex.split(command):
        flag = token.split("=", 1)[0]
        if flag in IMITATION_FLAGS:
            raise ValueError(f"{flag} is a bc/dagger flag and does nothing for ppo; use {IMITATION_FLAGS[flag]}")


def _overrides(args: argparse.Namespace) -> Dict[str, Any]:
    flags = {"total_steps": args.total_steps, "n_envs": args.n_envs, "n_steps": args.n_steps,
             "learning_rate": args.learning_rate, "n_epochs": args.n_epochs, "seq_len": args.seq_len,
             "gamma": args.gamma, "ent_coef": args.ent_coef, "critic": args.critic}
    for item in args.hp or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ValueError(f"--hp expects KEY=VALUE, got {item!r}")
        flags[key.strip().replace("-", "_")] = value.strip()
    return flags


class RunLogWriter(KVWriter):
    """Sends SB3's logger rows (one per iteration) to the run's CSV and TensorBoard logs."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def write(self, key_values: Dict[str, Any], key_excluded: Dict[str, Any], step: int = 0) -> None:
        metrics = {k: v for k, v in key_values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.ctx.log(int(step), metrics)
        if self.ctx.bar is not None and "rollout/ep_rew_mean" in metrics:
            self.ctx.bar.set_postfix({"return": f"{metrics['rollout/ep_rew_mean']:.4g}"}, refresh=False)

    def close(self) -> None:
        pass


def _load_start_policy(args: argparse.Namespace, ctx: RunContext):
    """The actor to start from: the checkpoint's, the --init-from directory's, or None (fresh)."""
    if ctx.checkpoint is not None:
        return ctx.checkpoint.policy
    if not args.init_from:
        return None
    policy = load_policy(resolve_policy_dir(args.init_from))
    if policy.task and policy.task != ctx.task:
        print(f"note: --init-from {args.init_from} was trained on {policy.task}, training on {ctx.task}",
              file=sys.stderr)
    if args.model_kw:
        print("note: --model-kw is ignored with --init-from (the policy's model is kept)", file=sys.stderr)
    return policy


def _prune_states(ctx: RunContext) -> None:
    """Keep the PPO states whose checkpoint still exists."""
    root = ctx.run_dir / STATE_DIR
    kept = {p.name for p in ctx.checkpoints.root.iterdir() if p.is_dir()} if ctx.checkpoints.root.is_dir() else set()
    for path in root.iterdir():
        if path.is_dir() and not path.name.startswith(".") and path.name not in kept:
            shutil.rmtree(path, ignore_errors=True)


def run_ppo(args: argparse.Namespace, ctx: RunContext) -> TrainOutcome:
    from cfc_control.training.ppo.algorithm import SequencePPO
    from cfc_control.training.ppo.hyperparams import config_for, model_kwargs_for

    _check_flags(ctx.command)
    start_policy = _load_start_policy(args, ctx)
    init_from = bool(args.init_from) and ctx.checkpoint is None
    cfg = config_for(ctx.task, _overrides(args), init_from=bool(args.init_from))
    resumed = ctx.checkpoint is not None
    # On resume torch's RNG was restored from the checkpoint: seeding again would rewind it.
    algo = SequencePPO(ctx.task, start_policy if start_policy is not None else args.policy, cfg,
                       model_kw=args.model_kw, seed=None if resumed else args.seed)
    algo.set_logger(Logger(None, [RunLogWriter(ctx)]))
    states = ctx.run_dir / STATE_DIR
    if resumed:
        step = ctx.checkpoint.step
        algo.load_state(states / f"{step:08d}", optimizer=False)
        algo.policy.optimizer.load_state_dict(ctx.checkpoint.optimizer_state)
        assert algo.env is not None
        algo.env.seed(args.seed + algo.num_timesteps)  # new episodes, not a replay of the first ones
    saved_at = {"step": ctx.checkpoint.step if resumed else -1}

    def checkpoint(a: SequencePPO) -> None:
        step = int(a.num_timesteps)
        a.save_state(states / f"{step:08d}", optimizer=False)
        ctx.save_checkpoint(step, a.policy.actor, a.policy.optimizer.state_dict(),
                            {"iteration": a.iteration, "num_timesteps": step})
        _prune_states(ctx)
        saved_at["step"] = step

    def on_iteration(a: SequencePPO) -> None:
        if a.iteration % args.checkpoint_every == 0:
            checkpoint(a)

    ctx.progress(math.ceil(cfg.total_steps / cfg.rollout_steps), initial=algo.iteration, unit="iter")
    remaining = cfg.total_steps - algo.num_timesteps
    if remaining > 0:
        algo.learn(remaining, reset_num_timesteps=not resumed, on_iteration=on_iteration)
    if saved_at["step"] != algo.num_timesteps:
        checkpoint(algo)
    episodes = list(algo.ep_info_buffer or [])
    final: Dict[str, Optional[float]] = {}
    if episodes:
        final = {"ep_rew_mean": round(sum(e["r"] for e in episodes) / len(episodes), 3),
                 "ep_len_mean": round(sum(e["l"] for e in episodes) / len(episodes), 1),
                 "episodes_averaged": len(episodes)}
    seconds = algo.rollout_time_s + algo.update_time_s
    card: Dict[str, Any] = {
        "algorithm": "ppo",
        "policy": algo.policy.actor.model_name,
        "critic": algo.policy.actor.model_name if cfg.critic == "same" else cfg.critic,
        "model_kwargs": None if args.init_from else model_kwargs_for(args.policy, args.model_kw),
        "seeds": {"run": args.seed, "torch": args.seed, "env_resets": "seed + env index, continued by SB3's VecEnv",
                  "evaluation_resets": f"{EVAL_SEED} + episode"},
        "steps": int(algo.num_timesteps),
        "iterations": int(algo.iteration),
        "init_from": args.init_from,
        "hyperparameters": {"ppo": cfg.to_dict()},
        "throughput": {"rollout_s": round(algo.rollout_time_s, 1), "update_s": round(algo.update_time_s, 1),
                       "env_steps_per_s_this_session": round((algo.num_timesteps - (ctx.checkpoint.step if resumed else 0))
                                                             / seconds, 1) if seconds > 0 else None},
        "final_training_episodes": final,
    }
    if init_from:
        card["init_from_card"] = _card_of(args.init_from)
    return TrainOutcome(algo.policy.actor, card)


def _card_of(directory: str) -> Optional[Dict[str, Any]]:
    try:
        card = read_card(resolve_policy_dir(directory))
    except (FileNotFoundError, ValueError):
        return None
    summary = {k: card[k] for k in ("task", "algorithm", "policy", "command") if k in card}
    evaluation = card.get("evaluation")
    if isinstance(evaluation, dict):
        summary["evaluation"] = {name: {"mean": r.get("mean"), "std": r.get("std")}
                                 for name, r in evaluation.items() if isinstance(r, dict)}
    return summary


PPO = Algorithm("ppo", "PPO on recurrent actor and critic over whole sequences (stable-baselines3)",
                (ppo_arguments,), run_ppo)

__all__: List[str] = ["PPO", "ppo_arguments", "run_ppo"]
