"""One training run as a library call: ``train(config) -> RunOutcome``.

    from cfc_control.training import RunConfig, train
    outcome = train(RunConfig(env="InvertedPendulum-Pos-Irregular", algo="bc", seed=1))
    outcome.policy_dir        # runs/InvertedPendulum-Pos-Irregular-bc-cfc-s1/policy
    outcome.evaluation        # {"Fixed": EvalResult, "Jitter": ..., "Irregular": ...}

:func:`check_config` runs first and refuses, with one line naming what is wrong, every mistake it
can find before any work starts (unknown or non-MuJoCo task, a timing that does not parse, an
unwritable output directory, a missing expert, demonstration file or --init-from directory, bad
PPO hyperparameters). Then the run directory gets ``run.json`` (the config), logs, checkpoints
and the result, ``policy/``: weights, config and card (task, algorithm, policy, seeds, data size,
training time, the command, and the evaluation returns under each timing). ``python -m
cfc_control.train`` and the timing study call this.

Algorithms are a table (:data:`~cfc_control.training.run_config.ALGORITHMS`): name -> "module:attribute"
of a :class:`cfc_control.training.run_context.Algorithm`. Adding one is adding a line there and a nested
settings dataclass to :class:`~cfc_control.training.run_config.RunConfig`; see
:mod:`cfc_control.training.run_context` for the contract.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from importlib import import_module
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import cfc_control
from cfc_control.policies import RecurrentPolicy, resolve_policy_dir, save_policy
from cfc_control.tasks import make_env, parse_timing, resolve_env_id, task_info
from cfc_control.experts.base import MODEL_BASED_NAMES
from cfc_control.files import check_writable
from cfc_control.training.run_config import ALGORITHMS, RunConfig, RunOptions
from cfc_control.episodes.evaluation import EVAL_SEED, EvalResult, card_entry, evaluate_timings
from cfc_control.training.imitation import DEMO_SEED_STRIDE, expert_spec
from cfc_control.training.run_context import Algorithm, RunContext, read_run_config, write_run_config
from cfc_control.policies.names import parse_policy_name
from cfc_control.training.ppo.hyperparams import config_for


@dataclass
class RunOutcome:
    """What a run produced: the policy, where it was written, its card and evaluation."""

    policy: RecurrentPolicy
    run_dir: Path
    policy_dir: Path
    card: Dict[str, Any]
    evaluation: Dict[str, EvalResult]
    training_time_s: float
    resumed: bool


def load_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; available: {', '.join(ALGORITHMS)}")
    module, _, attr = ALGORITHMS[name].partition(":")
    return getattr(import_module(module), attr)


def check_task(name: str) -> str:
    """The registered id of a task or Gymnasium MuJoCo id with Box spaces; ValueError otherwise."""
    env_id = resolve_env_id(name)
    if env_id.startswith("cfc_control/"):
        return env_id
    import gymnasium as gym
    from gymnasium.envs.mujoco import MujocoEnv

    env = gym.make(env_id, disable_env_checker=True)
    try:
        mujoco = isinstance(env.unwrapped, MujocoEnv)
        boxes = isinstance(env.observation_space, gym.spaces.Box) and isinstance(env.action_space, gym.spaces.Box)
    finally:
        env.close()
    if not (mujoco and boxes):
        raise ValueError(f"--env {name}: {env_id} is not a MuJoCo env with continuous observations and actions; "
                         f"see `python -m cfc_control.tasks` for the tasks")
    return env_id


def _check_timings(timings: Sequence[str], nominal: float, flag: str) -> None:
    """ValueError naming ``flag`` for the first of ``timings`` that does not parse."""
    for timing in timings:
        try:
            parse_timing(timing, nominal)
        except ValueError as err:
            raise ValueError(f"{flag}: {err}") from None


def check_config(config: RunConfig) -> None:
    """Raise ValueError (one line, naming the setting) for whatever in ``config`` would fail later."""
    task = check_task(config.env)
    parse_policy_name(config.policy)  # ValueError naming an unknown policy
    nominal = task_info(task)["nominal_dt"]
    if config.timing is not None or config.obs is not None:
        make_env(task, timing=config.timing, obs=config.obs).close()
    _check_timings(config.evaluation.timings, nominal, "--eval-timings")
    check_writable(config.run_dir, "--out")
    needs_expert = False
    if config.algo in ("bc", "dagger"):
        if config.imitation.demos and not Path(config.imitation.demos).is_file():
            raise ValueError(f"--demos {config.imitation.demos}: no such file")
        needs_expert = not config.imitation.demos or config.algo == "dagger"
    if config.algo == "ppo":
        if config.ppo.init_from:
            resolve_policy_dir(config.ppo.init_from)
        ppo = config_for(task, config.ppo.overrides(), init_from=bool(config.ppo.init_from), model=config.policy)
        if config.ppo.val_every:
            _check_timings(config.ppo.val_timings, nominal, "--val-timings")
        needs_expert = ppo.teacher_coef > 0
        if config.imitation.expert != "auto" and not needs_expert:
            raise ValueError("--expert does nothing for ppo without a teacher term: add --hp teacher_coef=C (C > 0)")
    if needs_expert:
        spec = expert_spec(config, task)
        if spec.lower() not in MODEL_BASED_NAMES and not (Path(spec) / "config.json").is_file():
            raise ValueError(f"--expert {spec}: not one of {', '.join(MODEL_BASED_NAMES)} nor an expert directory "
                             "(no config.json there)")


def train(config: RunConfig, options: RunOptions = RunOptions(), command: Optional[str] = None) -> RunOutcome:
    """Run ``config`` (see the module docstring). With ``options.resume`` the run in
    ``config.run_dir`` continues from its last checkpoint; its recorded config must equal
    ``config`` (ValueError otherwise). ``command`` is recorded in the card (default: this call)."""
    check_config(config)
    run_dir = config.run_dir
    config = replace(config, env=resolve_env_id(config.env))
    command = command or f"cfc_control.training.train({config!r})"
    original = command
    if options.resume:
        stored = read_run_config(run_dir)
        if stored is None:
            raise ValueError(f"--resume: {run_dir} has no run.json; nothing to resume")
        recorded, original = stored
        if recorded != config:
            raise ValueError(f"--resume: {run_dir} holds a run of another config; resume it with its own "
                             f"(cfc_control.training.run_context.read_run_config) or train into another --out")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(run_dir, config, command)
    if options.threads and options.threads > 0:
        import torch

        torch.set_num_threads(options.threads)
    algo = load_algorithm(config.algo)
    ctx = RunContext(config, options, original)
    if options.resume and ctx.checkpoint is None:
        print(f"{run_dir}: no checkpoint yet; starting from scratch", file=sys.stderr)
    try:
        outcome = algo.run(config, ctx)
    finally:
        ctx.close()
    train_time = ctx.elapsed()
    card = _card(config, ctx, outcome, train_time, resumed_with=command if options.resume else None)
    policy_dir = run_dir / "policy"
    save_policy(outcome.policy, policy_dir, card)
    results: Dict[str, EvalResult] = {}
    if config.evaluation.episodes > 0:
        start = time.time()
        results = evaluate_timings(outcome.policy, ctx.task, timings=config.evaluation.timings,
                                   episodes=config.evaluation.episodes, obs=config.obs,
                                   progress=options.progress)
        card["evaluation"] = card_entry(results)
        card["evaluation_time_s"] = round(time.time() - start, 1)
        save_policy(outcome.policy, policy_dir, card)
    return RunOutcome(outcome.policy, run_dir, policy_dir, card, results, train_time, options.resume)


def _card(config: RunConfig, ctx: RunContext, outcome, train_time: float, resumed_with: Optional[str]) -> Dict[str, Any]:
    card: Dict[str, Any] = {
        "task": ctx.task,
        "algorithm": config.algo,
        "policy": config.policy,
        "model_kwargs": config.model_kw,
        "parameters": sum(p.numel() for p in outcome.policy.model.parameters() if p.requires_grad),
        "seeds": {"run": config.seed, "torch": config.seed,
                  "demonstration_resets": f"{DEMO_SEED_STRIDE} * seed + episode",
                  "evaluation_resets": f"{EVAL_SEED} + episode"},
        "training_time_s": round(train_time, 1),
        "command": ctx.command,
        "library_version": cfc_control.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if config.timing or config.obs:
        card["overrides"] = {k: v for k, v in (("timing", config.timing), ("obs", config.obs)) if v}
    if resumed_with:
        card["resumed_with"] = resumed_with
    card.update(outcome.card)
    return card
