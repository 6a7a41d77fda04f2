"""What every training algorithm behind ``python -m cfc_control.train`` plugs into.

An algorithm is an :class:`Algorithm`: its own command-line flags (``arguments``, functions that
add flags to an argparse group; shared ones are added once) and ``run(args, ctx) -> TrainOutcome``.
The command line (:mod:`cfc_control.training.launch`, run as ``python -m cfc_control.train``) parses the shared flags (env, policy, seed, out,
resume, evaluation, logging), builds the :class:`RunContext`, calls ``run``, then evaluates the
returned policy under each timing and writes the policy directory with its card. ``run`` must:

* build its policy with :meth:`RunContext.make_policy` (or restore it from
  :attr:`RunContext.checkpoint` when resuming: ``ctx.checkpoint`` is the latest
  :class:`~cfc_control.training.checkpoint.Checkpoint` or None),
* call :meth:`RunContext.log` with metrics (one row per step, e.g. per epoch or update) and
  :meth:`RunContext.save_checkpoint` every ``args.checkpoint_every`` steps,
* return a :class:`TrainOutcome` with the policy and card entries of its own (data size,
  hyperparameters, final losses...).

Run directory (``--out``): ``run.json`` (the arguments), ``metrics.csv``, ``tb/`` (TensorBoard),
``checkpoints/``, algorithm files (e.g. ``demos.npz``), and ``policy/`` (the result).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from tqdm import tqdm

from cfc_control.policies import ObsNormalizer, RecurrentPolicy
from cfc_control.tasks import make_env, resolve_env_id
from cfc_control.training.checkpoint import Checkpoint, CheckpointManager
from cfc_control.training.demos import Demonstrations
from cfc_control.training.logger import RunLogger
from cfc_control.training.policy_factory import make_policy


@dataclass
class TrainOutcome:
    """The trained policy and the card entries the algorithm adds (merged into card.json)."""

    policy: RecurrentPolicy
    card: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Algorithm:
    """A training algorithm for ``python -m cfc_control.train --algo NAME``."""

    name: str
    help: str
    arguments: Sequence[Callable[[argparse._ArgumentGroup], None]]
    run: Callable[[argparse.Namespace, "RunContext"], TrainOutcome]


class RunContext:
    """Shared services of one training run: env and policy construction, logs, progress bar,
    checkpoints and resume. ``args`` are the parsed flags (shared and the algorithm's)."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, command: str, progress: bool = True) -> None:
        self.args = args
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.task = resolve_env_id(args.env)
        self.seed = int(args.seed)
        if not args.resume:
            # A fresh run in a used directory: stale checkpoints would be resumed by a later
            # --resume and stale events would mix into TensorBoard's curves.
            for stale in ("checkpoints", "tb"):
                shutil.rmtree(self.run_dir / stale, ignore_errors=True)
        self.checkpoints = CheckpointManager(self.run_dir)
        self.checkpoint: Optional[Checkpoint] = self.checkpoints.load() if args.resume else None
        if self.checkpoint is None:
            torch.manual_seed(self.seed)
        resume_step = self.checkpoint.step if self.checkpoint else None
        self.logger = RunLogger(self.run_dir, resume_step=resume_step, tensorboard=not args.no_tensorboard)
        self.elapsed_before = float(self.checkpoint.progress.get("elapsed_s", 0.0)) if self.checkpoint else 0.0
        self.start = time.time()
        self.show_progress = progress
        self.bar: Optional[tqdm] = None

    # -- construction --------------------------------------------------------------------------
    def make_env(self, timing: Optional[str] = None, **kw: Any):
        """The task env (``--env``; ``timing`` overrides the task's)."""
        return make_env(self.task, timing=timing, **kw)

    def make_policy(self, normalizer: Optional[ObsNormalizer] = None) -> RecurrentPolicy:
        """A fresh policy of ``--policy`` with ``--model-kw`` for the task."""
        env = self.make_env()
        try:
            return make_policy(self.args.policy, env, task=self.task, normalizer=normalizer, **self.args.model_kw)
        finally:
            env.close()

    # -- progress, logs, checkpoints ------------------------------------------------------------
    def progress(self, total: int, initial: int = 0, unit: str = "epoch") -> tqdm:
        """Start the progress bar (``total`` steps, ``initial`` already done)."""
        self.bar = tqdm(total=total, initial=initial, unit=unit, disable=not self.show_progress,
                        dynamic_ncols=True, desc=f"{self.args.algo} {self.args.policy}")
        return self.bar

    def log(self, step: int, metrics: Dict[str, Any]) -> None:
        metrics = {**metrics, "elapsed_s": round(self.elapsed(), 2)}
        self.logger.log(step, metrics)
        if self.bar is not None:
            shown = {k: f"{v:.4g}" for k, v in metrics.items() if k in ("train_loss", "val_loss", "iteration")}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.start

    def save_checkpoint(self, step: int, policy: RecurrentPolicy, optimizer_state: Dict[str, Any],
                        progress: Dict[str, Any], data: Optional[Demonstrations] = None) -> Path:
        return self.checkpoints.save(step, policy, optimizer_state, {**progress, "elapsed_s": self.elapsed()}, data)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.logger.close()


def write_run_args(run_dir: Path, args: Dict[str, Any]) -> None:
    from cfc_control.files import atomic_write_text

    atomic_write_text(Path(run_dir) / "run.json", json.dumps(args, indent=2) + "\n")


def read_run_args(run_dir: Path) -> Optional[Dict[str, Any]]:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); cannot resume") from err
