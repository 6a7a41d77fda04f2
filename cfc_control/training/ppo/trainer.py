"""The ``ppo`` algorithm of :func:`cfc_control.training.launch.train`: resume, logs, checkpoints.

    python -m cfc_control.train --env InvertedPendulum-Pos-Irregular --algo ppo --policy cfc --seed 0
    python -m cfc_control.train --env HalfCheetah-Pos-Jitter --algo ppo --policy ncp --n-envs 8
    python -m cfc_control.train --algo ppo --init-from runs/InvertedPendulum-Pos-Irregular-bc-cfc-s0/policy
    python -m cfc_control.train --algo ppo --out runs/x --resume

Hyperparameters come from :mod:`cfc_control.training.ppo.hyperparams` (the task's defaults);
:class:`~cfc_control.training.run_config.PPOSettings` (the flags and ``--hp KEY=VALUE``) override
them. ``checkpoint_every`` counts PPO iterations (rollout + update). Logs (metrics.csv, tb/) have
one row per iteration, at the env-step count.

A checkpoint (``checkpoints/<step>/``, one per step) holds the actor with its observation
normaliser (a policy directory), the optimiser, the critic (``critic/``), the log-std and the
reward normaliser's running returns (``state.safetensors``), the counters and return statistics
(``progress.json``), the global generators (torch, numpy, Python) and the rollout in progress:
every env's simulator state and generators, the last observations and recurrent states
(:mod:`.env_state`). A run resumed from it ends with the same weights as one run straight
through. (Envs outside this process, which :mod:`.env_state` cannot capture, start fresh
episodes on resume instead, their seeds moved on by the steps already taken.)

With ``--val-every K`` (:mod:`.validation`) a copy of the actor is scored every K iterations, at
the start and at the end; the run's policy is the best copy, and the checkpoints carry it and the
scores so far.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Dict, List, Optional, Tuple

from stable_baselines3.common.logger import KVWriter, Logger

from cfc_control.experts import make_expert
from cfc_control.experts.base import Expert
from cfc_control.policies import load_policy, read_card, resolve_policy_dir
from cfc_control.tasks import make_env
from cfc_control.training.imitation import expert_spec
from cfc_control.training.run_config import RunConfig
from cfc_control.episodes.evaluation import EVAL_SEED
from cfc_control.training.ppo import env_state
from cfc_control.training.ppo.algorithm import SequencePPO
from cfc_control.training.ppo.hyperparams import config_for, model_kwargs_for
from cfc_control.training.ppo.persistence import CRITIC, restore_parts, state_parts
from cfc_control.training.ppo.validation import BestActor
from cfc_control.training.run_context import Algorithm, RunContext, TrainOutcome


class RunLogWriter(KVWriter):
    """Sends SB3's logger rows (one per iteration) to the run's CSV and TensorBoard logs."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def write(self, key_values: Dict[str, Any], key_excluded: Dict[str, Any], step: int = 0) -> None:
        metrics = {k: v for k, v in key_values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.ctx.log(int(step), metrics)  # the progress bar shows the recent episode return

    def close(self) -> None:
        pass


def _load_start_policy(config: RunConfig, ctx: RunContext):
    """The actor to start from: the checkpoint's, the --init-from directory's, or None (fresh)."""
    if ctx.checkpoint is not None:
        return ctx.checkpoint.policy
    if not config.ppo.init_from:
        return None
    policy = load_policy(resolve_policy_dir(config.ppo.init_from))
    if policy.task and policy.task != ctx.task:
        print(f"note: --init-from {config.ppo.init_from} was trained on {policy.task}, training on {ctx.task}",
              file=sys.stderr)
    if config.model_kw:
        print("note: --model-kw is ignored with --init-from (the policy's model is kept)", file=sys.stderr)
    return policy


def _restore(algo: SequencePPO, ctx: RunContext, seed: int) -> None:
    ck = ctx.checkpoint
    assert ck is not None and algo.env is not None
    if CRITIC not in ck.models or "ppo" not in ck.progress:
        raise ValueError(f"{ck.path}: not a complete PPO checkpoint (no {CRITIC}/ or PPO state; an older version "
                         f"kept them in ppo_state/); start a new run or resume with the version that wrote it")
    restore_parts(algo, ck.tensors, ck.models[CRITIC], ck.progress["ppo"], where=str(ck.path))
    algo.policy.optimizer.load_state_dict(ck.optimizer_state)
    rollout = ck.progress.get("rollout")
    if rollout is not None:
        prefix = "rollout."
        env_state.restore(algo, {k[len(prefix):]: v for k, v in ck.tensors.items() if k.startswith(prefix)}, rollout)
    else:  # envs outside this process: new episodes, not a replay of the first ones
        algo.env.seed(seed + algo.num_timesteps)
    ck.restore_generators()  # building the algorithm drew from them


def _checkpoint_parts(algo: SequencePPO) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """(progress, tensors, models) of a PPO checkpoint: every part of the algorithm's state."""
    tensors, models, meta = state_parts(algo)
    progress: Dict[str, Any] = {"iteration": algo.iteration, "num_timesteps": int(algo.num_timesteps), "ppo": meta}
    rollout = env_state.capture(algo)
    if rollout is not None:
        tensors.update({f"rollout.{k}": v for k, v in rollout[0].items()})
        progress["rollout"] = rollout[1]
    return progress, tensors, models


def _model_name(config: RunConfig, start_policy) -> Optional[str]:
    """The name of the model PPO trains: the starting policy's, else --policy."""
    if start_policy is not None:
        return start_policy.model_name
    return config.policy if isinstance(config.policy, str) else None


def run_ppo(config: RunConfig, ctx: RunContext) -> TrainOutcome:
    settings = config.ppo
    start_policy = _load_start_policy(config, ctx)
    init_from = bool(settings.init_from) and ctx.checkpoint is None
    cfg = config_for(ctx.task, settings.overrides(), init_from=bool(settings.init_from),
                     model=_model_name(config, start_policy))
    resumed = ctx.checkpoint is not None
    teacher = _teacher(config, ctx.task) if cfg.teacher_coef > 0 else None
    # On resume the generators were restored from the checkpoint: seeding again would rewind them.
    algo = SequencePPO(ctx.task, start_policy if start_policy is not None else config.policy, cfg,
                       model_kw=config.model_kw, seed=None if resumed else config.seed,
                       timing=config.timing, obs=config.obs, teacher=teacher)
    algo.set_logger(Logger(None, [RunLogWriter(ctx)]))
    if resumed:
        _restore(algo, ctx, config.seed)
    saved_at = {"step": ctx.checkpoint.step if resumed else -1}
    validation = _validation(config, ctx, algo)

    def checkpoint(a: SequencePPO) -> None:
        progress, tensors, models = _checkpoint_parts(a)
        if validation is not None:
            best_tensors, progress["validation"] = validation.state()
            tensors.update(best_tensors)
        ctx.save_checkpoint(int(a.num_timesteps), a.policy.actor, a.policy.optimizer.state_dict(), progress,
                            tensors=tensors, models=models)
        saved_at["step"] = int(a.num_timesteps)

    def validate(a: SequencePPO, last: bool = False) -> bool:
        """Score the actor every --val-every iterations, and at the start and the end; True if it did."""
        if validation is None or validation.done_at(a.iteration) or not (last or a.iteration % settings.val_every == 0):
            return False
        scored = validation.consider(a.policy.actor, a.iteration, int(a.num_timesteps))
        # a row of its own at the iteration's step (the iteration's row is already written)
        ctx.logger.log(int(a.num_timesteps), {"validation/score": scored.score,
                                              **{f"validation/{t}": r for t, r in scored.returns.items()}})
        return True

    def on_iteration(a: SequencePPO) -> None:
        validate(a)
        if a.iteration % config.checkpoint_every == 0:
            checkpoint(a)

    validate(algo)  # the start (iteration 0): a fine-tune is measured against the policy it began from
    ctx.progress(math.ceil(cfg.total_steps / cfg.rollout_steps), initial=algo.iteration, unit="iter")
    remaining = cfg.total_steps - algo.num_timesteps
    if remaining > 0:
        algo.learn(remaining, reset_num_timesteps=not resumed, on_iteration=on_iteration)
    if validate(algo, last=True) or saved_at["step"] != algo.num_timesteps:
        checkpoint(algo)
    card = _card(config, ctx, algo, cfg, init_from)
    if validation is None:
        return TrainOutcome(algo.policy.actor, card)
    card["validation"] = validation.card(settings.val_every)
    assert validation.best is not None  # iteration 0 was scored
    return TrainOutcome(validation.best, card)


def _validation(config: RunConfig, ctx: RunContext, algo: SequencePPO) -> Optional[BestActor]:
    """The validation of ``--val-every`` (None without), restored from the checkpoint on resume."""
    settings = config.ppo
    if not settings.val_every:
        return None
    validation = BestActor(ctx.task, settings.val_timings, settings.val_episodes, obs=config.obs)
    ck = ctx.checkpoint
    if ck is not None and "validation" in ck.progress:
        validation.restore(ck.tensors, ck.progress["validation"], algo.policy.actor)
    return validation


def _teacher(config: RunConfig, task: str) -> Expert:
    """The expert --expert names, for the teacher_coef term."""
    probe = make_env(task, timing=config.timing, obs=config.obs)
    try:
        return make_expert(expert_spec(config, task), probe)
    finally:
        probe.close()


def _card(config: RunConfig, ctx: RunContext, algo: SequencePPO, cfg, init_from: bool) -> Dict[str, Any]:
    episodes = list(algo.ep_info_buffer or [])
    final: Dict[str, Optional[float]] = {}
    if episodes:
        final = {"ep_rew_mean": round(sum(e["r"] for e in episodes) / len(episodes), 3),
                 "ep_len_mean": round(sum(e["l"] for e in episodes) / len(episodes), 1),
                 "episodes_averaged": len(episodes)}
    seconds = algo.rollout_time_s + algo.update_time_s
    done_before = ctx.checkpoint.step if ctx.checkpoint is not None else 0
    card: Dict[str, Any] = {
        "algorithm": "ppo",
        "policy": algo.policy.actor.model_name,
        "critic": algo.policy.actor.model_name if cfg.critic == "same" else cfg.critic,
        "model_kwargs": None if config.ppo.init_from else model_kwargs_for(config.policy, config.model_kw, task=ctx.task),
        "seeds": {"run": config.seed, "torch": config.seed,
                  "env_resets": "seed + env index, continued by SB3's VecEnv",
                  "evaluation_resets": f"{EVAL_SEED} + episode"},
        "steps": int(algo.num_timesteps),
        "iterations": int(algo.iteration),
        "init_from": config.ppo.init_from,
        "teacher": expert_spec(config, ctx.task) if cfg.teacher_coef > 0 else None,
        "hyperparameters": {"ppo": cfg.to_dict()},
        "throughput": {"rollout_s": round(algo.rollout_time_s, 1), "update_s": round(algo.update_time_s, 1),
                       "env_steps_per_s_this_session": round((algo.num_timesteps - done_before) / seconds, 1)
                       if seconds > 0 else None},
        "final_training_episodes": final,
    }
    if init_from:
        card["init_from_card"] = _card_of(config.ppo.init_from)
    return card


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


PPO = Algorithm("ppo", "PPO on recurrent actor and critic over whole sequences (stable-baselines3)", run_ppo)

__all__: List[str] = ["PPO", "run_ppo"]
