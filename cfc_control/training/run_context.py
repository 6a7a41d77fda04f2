"""What every training algorithm behind :func:`cfc_control.training.launch.train` plugs into.

An algorithm is an :class:`Algorithm`: a name, a help line and ``run(config, ctx) ->
TrainOutcome``, where ``config`` is the :class:`~cfc_control.training.run_config.RunConfig` (its own
settings are a nested dataclass of it). ``train`` checks the config, builds the
:class:`RunContext`, calls ``run``, then evaluates the returned policy under each timing and
writes the policy directory with its card. ``run`` must:

* build its policy with :meth:`RunContext.make_policy` (or restore it from
  :attr:`RunContext.checkpoint` when resuming: ``ctx.checkpoint`` is the latest
  :class:`~cfc_control.training.checkpoint.Checkpoint` or None),
* call :meth:`RunContext.log` with metrics (one row per step, e.g. per epoch or update) and
  :meth:`RunContext.save_checkpoint` every ``config.checkpoint_every`` steps, with every part of
  its state (one checkpoint per step),
* return a :class:`TrainOutcome` with the policy and card entries of its own (data size,
  hyperparameters, final losses...).

Run directory (``config.out``): ``run.json`` (the config), ``metrics.csv``, ``tb/``
(TensorBoard), ``checkpoints/``, algorithm files (e.g. ``demos.npz``), and ``policy/`` (the result).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from tqdm import tqdm

from cfc_control.files import atomic_write_text
from cfc_control.flags import from_dict
from cfc_control.policies import ObsNormalizer, RecurrentPolicy
from cfc_control.tasks import make_env, resolve_env_id
from cfc_control.training.checkpoint import Checkpoint, CheckpointManager
from cfc_control.training.run_config import RunConfig, RunOptions
from cfc_control.episodes.demos import Demonstrations
from cfc_control.training.logger import RunLogger
from cfc_control.training.policy_factory import make_policy


# Metrics on the progress bar, by the label they get there (PPO's is the recent episode return).
SHOWN = {"train_loss": "train_loss", "val_loss": "val_loss", "iteration": "iteration",
         "rollout/ep_rew_mean": "return"}


@dataclass
class TrainOutcome:
    """The trained policy and the card entries the algorithm adds (merged into card.json)."""

    policy: RecurrentPolicy
    card: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Algorithm:
    """A training algorithm for ``RunConfig(algo=NAME)`` (``python -m cfc_control.train --algo NAME``)."""

    name: str
    help: str
    run: Callable[[RunConfig, "RunContext"], TrainOutcome]


class RunContext:
    """Shared services of one training run: env and policy construction, logs, progress bar,
    checkpoints and resume."""

    def __init__(self, config: RunConfig, options: RunOptions, command: str) -> None:
        self.config = config
        self.options = options
        self.run_dir = config.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.task = resolve_env_id(config.env)
        self.seed = int(config.seed)
        if not options.resume:
            # A fresh run in a used directory: stale checkpoints would be resumed by a later
            # --resume and stale events would mix into TensorBoard's curves.
            for stale in ("checkpoints", "tb"):
                shutil.rmtree(self.run_dir / stale, ignore_errors=True)
        self.checkpoints = CheckpointManager(self.run_dir)
        self.checkpoint: Optional[Checkpoint] = self.checkpoints.load() if options.resume else None
        if self.checkpoint is None:
            torch.manual_seed(self.seed)
        resume_step = self.checkpoint.step if self.checkpoint else None
        self.logger = RunLogger(self.run_dir, resume_step=resume_step, tensorboard=options.tensorboard)
        self.elapsed_before = float(self.checkpoint.progress.get("elapsed_s", 0.0)) if self.checkpoint else 0.0
        self.start = time.time()
        self.show_progress = options.progress
        self.bar: Optional[tqdm] = None
        self.last_checkpoint: Optional[Path] = self.checkpoint.path if self.checkpoint else None

    # -- construction --------------------------------------------------------------------------
    def make_env(self, timing: Optional[str] = None, **kw: Any):
        """The task env with the run's timing and observation overrides (``timing`` overrides both)."""
        return make_env(self.task, timing=timing or self.config.timing, obs=self.config.obs, **kw)

    def make_policy(self, normalizer: Optional[ObsNormalizer] = None) -> RecurrentPolicy:
        """A fresh policy of ``config.policy`` with ``config.model_kw`` for the task."""
        env = self.make_env()
        try:
            return make_policy(self.config.policy, env, task=self.task, normalizer=normalizer,
                               **self.config.model_kw)
        finally:
            env.close()

    # -- progress, logs, checkpoints ------------------------------------------------------------
    def progress(self, total: int, initial: int = 0, unit: str = "epoch") -> tqdm:
        """Start the progress bar (``total`` steps, ``initial`` already done)."""
        self.bar = tqdm(total=total, initial=initial, unit=unit, disable=not self.show_progress,
                        dynamic_ncols=True, desc=f"{self.config.algo} {self.config.policy}")
        return self.bar

    def log(self, step: int, metrics: Dict[str, Any]) -> None:
        metrics = {**metrics, "elapsed_s": round(self.elapsed(), 2)}
        self.logger.log(step, metrics)
        if self.bar is not None:
            shown = {label: f"{metrics[key]:.4g}" for key, label in SHOWN.items() if key in metrics}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.start

    def save_checkpoint(self, step: int, policy: RecurrentPolicy, optimizer_state: Dict[str, Any],
                        progress: Dict[str, Any], data: Optional[Demonstrations] = None, **parts: Any) -> Path:
        """One checkpoint of every part of the algorithm's state (see ``CheckpointManager.save``)."""
        self.last_checkpoint = self.checkpoints.save(step, policy, optimizer_state,
                                                     {**progress, "elapsed_s": self.elapsed()}, data, **parts)
        return self.last_checkpoint

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.logger.close()


RUN_FILE = "run.json"
RUN_FORMAT = 2


def write_run_config(run_dir: Path, config: RunConfig, command: str) -> None:
    record = {"format_version": RUN_FORMAT, "config": config.to_dict(), "command": command}
    atomic_write_text(Path(run_dir) / RUN_FILE, json.dumps(record, indent=2) + "\n")


def read_run_config(run_dir: Path) -> Optional[Tuple[RunConfig, str]]:
    """(the recorded config, the command that started the run), or None without run.json.
    Raises ValueError naming the file when it is not one this version wrote."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict) or record.get("format_version") != RUN_FORMAT:
        raise ValueError(f"{path}: not a run record of this version (format_version "
                         f"{record.get('format_version') if isinstance(record, dict) else None!r}, "
                         f"expected {RUN_FORMAT})")
    return from_dict(RunConfig, record["config"], str(path)), str(record.get("command", ""))
