"""The ``bc`` and ``dagger`` algorithms of :func:`cfc_control.training.launch.train`:
demonstrations (given as ``imitation.demos``, or collected with the expert into the run
directory), training with logs and checkpoints, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from cfc_control.experts import make_expert
from cfc_control.tasks import task_info
from cfc_control.training.bc import BCTrainer
from cfc_control.training.collection import collect_demos
from cfc_control.training.run_config import RunConfig
from cfc_control.training.dagger import DAgger
from cfc_control.episodes.demos import Demonstrations, load_demos, save_demos
from cfc_control.training.run_context import Algorithm, RunContext, TrainOutcome

MODEL_BASED_EXPERTS = {"InvertedPendulum": "lqr", "InvertedDoublePendulum": "lqr", "Reacher": "mpc"}
EXPERTS_DIR = Path("policies") / "experts"
DEMO_SEED_STRIDE = 1_000  # demonstrations of run seed S use reset seeds 1000 S, 1000 S + 1, ...


def default_expert(task: str) -> str:
    """'lqr' for the pendulum tasks, 'mpc' for Reacher, else a shipped SB3 expert directory for
    the task's base env."""
    base = task_info(task)["base_env"].split("-v")[0]
    if base in MODEL_BASED_EXPERTS:
        return MODEL_BASED_EXPERTS[base]
    for algo in ("sac", "ppo"):
        path = EXPERTS_DIR / f"{base.lower()}-{algo}"
        if (path / "config.json").is_file():
            return str(path)
    raise ValueError(
        f"no expert for {base}: train one with `python -m cfc_control.experts.train --env {base}` "
        f"(saved under {EXPERTS_DIR}/{base.lower()}-sac) or pass --expert DIR"
    )


def expert_spec(config: RunConfig, task: str) -> str:
    """The expert ``config`` names ('auto' resolved for ``task``)."""
    return config.imitation.expert if config.imitation.expert != "auto" else default_expert(task)


def demonstrations(config: RunConfig, ctx: RunContext) -> tuple[Demonstrations, Dict[str, Any]]:
    """``imitation.demos``, else the run's own demos.npz (resume), else collected now with the expert."""
    own = ctx.run_dir / "demos.npz"
    im = config.imitation
    if im.demos:
        demos, source = load_demos(im.demos), str(im.demos)
    elif own.is_file() and ctx.options.resume:
        demos, source = load_demos(own), str(own)
    else:
        demos = collect_demos(ctx.task, expert_spec(config, ctx.task), im.episodes,
                              seed=DEMO_SEED_STRIDE * config.seed, noise=im.noise,
                              noise_period_power=im.noise_period_power, timing=config.timing,
                              obs=config.obs, progress="demonstrations" if ctx.show_progress else None)
        save_demos(demos, own)
        source = str(own)
    info = {"file": source, **demos.summary(), "expert": demos.metadata.get("expert"),
            "noise": demos.metadata.get("noise"), "timing": demos.metadata.get("timing")}
    return demos, info


def _start_policy(ctx: RunContext):
    return ctx.checkpoint.policy if ctx.checkpoint is not None else ctx.make_policy()


def run_bc(config: RunConfig, ctx: RunContext) -> TrainOutcome:
    demos, data_info = demonstrations(config, ctx)
    cfg = config.imitation.bc_config(config.seed)
    train, val = demos.split(cfg.val_fraction, seed=cfg.seed)
    policy = _start_policy(ctx)
    trainer = BCTrainer(policy, train, val, cfg)
    if ctx.checkpoint is not None:
        trainer.load_state_dict(ctx.checkpoint.progress["trainer"], ctx.checkpoint.optimizer_state,
                                ctx.checkpoint.tensors)
    ctx.progress(cfg.epochs, initial=trainer.epoch)
    last: Dict[str, float] = {}

    def on_epoch(metrics: Dict[str, float]) -> None:
        last.update(metrics)
        ctx.log(trainer.epoch, metrics)
        if trainer.epoch % config.checkpoint_every == 0 or trainer.epoch == cfg.epochs:
            progress, optim = trainer.state_dict()
            ctx.save_checkpoint(trainer.epoch, policy, optim, {"trainer": progress}, tensors=trainer.head_tensors())

    trainer.fit(on_epoch)
    if not last:  # resumed after the last epoch: report the held-out loss of the final weights
        last = {"val_loss": trainer.validate()}
    return TrainOutcome(policy, {
        "data": {**data_info, "train_episodes": train.n_episodes, "val_episodes": val.n_episodes},
        "hyperparameters": {"bc": cfg.to_dict()},
        "final": {k: last[k] for k in ("train_loss", "val_loss") if k in last},
    })


def run_dagger(config: RunConfig, ctx: RunContext) -> TrainOutcome:
    demos, data_info = demonstrations(config, ctx)
    bc = config.imitation.bc_config(config.seed)
    cfg = config.dagger
    probe = ctx.make_env()
    try:
        expert = make_expert(expert_spec(config, ctx.task), probe)
    finally:
        probe.close()
    policy = _start_policy(ctx)

    def reinit() -> None:
        fresh = ctx.make_policy()
        policy.model.load_state_dict(fresh.model.state_dict())

    dagger = DAgger(policy, demos, ctx.make_env, expert, cfg, bc, seed_base=DEMO_SEED_STRIDE * config.seed,
                    reinit=reinit, noise_period_power=config.imitation.noise_period_power)
    epoch = 0
    if ctx.checkpoint is not None:
        ck = ctx.checkpoint
        dagger.restore(ck.progress["dagger"], ck.data, ck.optimizer_state, ck.tensors)
        epoch = int(ck.progress["global_epoch"])
    total = bc.epochs + cfg.iterations * cfg.epochs_per_iteration
    ctx.progress(total, initial=epoch)
    last: Dict[str, float] = {}

    def checkpoint() -> None:
        _, optim = dagger.trainer.state_dict()
        ctx.save_checkpoint(epoch, policy, optim, {"dagger": dagger.progress(), "global_epoch": epoch},
                            data=dagger.data, tensors=dagger.trainer.head_tensors())

    def on_epoch(metrics: Dict[str, float]) -> None:
        nonlocal epoch
        epoch += 1
        last.update(metrics)
        round_info = dagger.history[-1] if dagger.history else {}
        ctx.log(epoch, {**metrics, "iteration": dagger.iteration, "data_steps": dagger.data.n_steps,
                        "rollout_return": round_info.get("rollout_return", float("nan"))})
        if epoch % config.checkpoint_every == 0:
            checkpoint()

    dagger.run(on_epoch, on_round=lambda _: checkpoint())
    save_demos(dagger.data, ctx.run_dir / "dagger_data.npz")
    return TrainOutcome(policy, {
        "data": {**data_info, "val_episodes": dagger.val_demos.n_episodes,
                 "train_episodes": demos.n_episodes - dagger.val_demos.n_episodes,
                 "aggregate_episodes": dagger.data.n_episodes, "aggregate_steps": dagger.data.n_steps,
                 "aggregate_file": str(ctx.run_dir / "dagger_data.npz")},
        "hyperparameters": {"bc": bc.to_dict(), "dagger": cfg.to_dict()},
        "dagger_rounds": dagger.history,
        "final": {k: last[k] for k in ("train_loss", "val_loss") if k in last},
    })


BC = Algorithm("bc", "behaviour cloning on demonstration sequences", run_bc)
DAGGER = Algorithm("dagger", "DAgger: the student drives, the expert labels, retrain on the aggregate", run_dagger)
