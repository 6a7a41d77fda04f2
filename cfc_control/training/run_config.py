"""One typed config per training run, and the checks it passes before any work starts.

    from cfc_control.training import RunConfig, ImitationConfig, train
    outcome = train(RunConfig(env="InvertedPendulum-Pos-Irregular", algo="bc", policy="cfc",
                              imitation=ImitationConfig(episodes=10, epochs=20)))
    outcome.policy_dir, outcome.evaluation

A :class:`RunConfig` holds the task (with optional timing and observation overrides), the
algorithm, the policy, the seed, the output directory, checkpointing and evaluation, and the
settings of each algorithm as nested dataclasses (:class:`ImitationConfig` for bc and dagger,
:class:`~cfc_control.training.dagger.DAggerConfig`, :class:`PPOSettings`). Two configs are equal
when they train the same policy: where the run is written, how often it checkpoints and how it
is evaluated afterwards do not take part in the comparison. ``python -m cfc_control.train``'s
flags are generated from these fields (:mod:`cfc_control.flags`), so each flag's help, type and
default is written once, here. :class:`RunOptions` are how one invocation runs (resume, progress
bar, logs, threads) and are not recorded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from cfc_control.flags import group, setting
from cfc_control.training.bc import BCConfig
from cfc_control.training.dagger import DAggerConfig
from cfc_control.tasks.observations import OBS_MODELS

# name -> "module:attribute" of an Algorithm (imported on use: PPO pulls in stable-baselines3).
ALGORITHMS: Dict[str, str] = {
    "bc": "cfc_control.training.imitation:BC",
    "dagger": "cfc_control.training.imitation:DAGGER",
    "ppo": "cfc_control.training.ppo.trainer:PPO",
}
DEFAULT_ENV = "InvertedPendulum-Pos-Irregular"
EVAL_TIMINGS = ("Fixed", "Jitter", "Irregular")
VAL_TIMINGS = ("Jitter", "Irregular", "0.5x", "2x")  # PPO's validation: the timings the robustness goal names
_BC = BCConfig()


@dataclass(frozen=True)
class ImitationConfig:
    """Demonstrations and behaviour cloning (bc, and DAgger's initial round and retraining)."""

    demos: Optional[str] = setting(None, "demonstration file (.npz); default: collect them with --expert",
                                   metavar="FILE")
    expert: str = setting("auto", "'lqr', 'lqr-scheduled', 'mpc', an expert directory, or 'auto' (lqr for the "
                                  "pendulums, mpc for Reacher, else policies/experts/<env>-sac or -ppo); also PPO's "
                                  "teacher with --hp teacher_coef=C",
                          algos=("bc", "dagger", "ppo"))
    episodes: int = setting(20, "demonstration episodes to collect")
    noise: float = setting(0.1, "DART noise on the executed action while collecting (std, in action half-ranges)")
    noise_period_power: float = setting(0.0, "the DART noise's std times (dt / nominal) ** -P, demonstrations and "
                                             "DAgger rounds alike: 0.5 holds its impulse per second the same at "
                                             "every period")
    epochs: int = setting(_BC.epochs, "BC epochs (DAgger: the initial BC)")
    window: int = setting(_BC.window, "BPTT window (steps)")
    burn_in: int = setting(_BC.burn_in, "warm-up steps before each window, without gradient")
    batch_size: int = setting(_BC.batch_size, "windows per update")
    lr: float = setting(_BC.lr, "Adam learning rate (cosine-decayed)")
    val_fraction: float = setting(_BC.val_fraction, "share of the episodes held out for validation")
    aux_state: float = setting(_BC.aux_state_coef, "weight of the auxiliary state estimate: a head on the "
                                                   "student's features predicts the full observation (training "
                                                   "only; 0: none)")
    period_weight: float = setting(_BC.period_weight, "weigh each step's loss by (dt / nominal) ** P: 0 weighs "
                                                      "steps alike, 1 each second of demonstration alike")

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"--episodes must be positive, got {self.episodes}")
        if self.noise < 0:
            raise ValueError(f"--noise must be >= 0, got {self.noise}")
        if not math.isfinite(self.noise_period_power):
            raise ValueError(f"--noise-period-power must be finite, got {self.noise_period_power}")
        self.bc_config(0)  # BCConfig checks the rest

    def bc_config(self, seed: int) -> BCConfig:
        return BCConfig(window=self.window, burn_in=self.burn_in, batch_size=self.batch_size, epochs=self.epochs,
                        lr=self.lr, val_fraction=self.val_fraction, aux_state_coef=self.aux_state,
                        period_weight=self.period_weight, seed=seed)


@dataclass(frozen=True)
class PPOSettings:
    """PPO: flags left unset keep the task's defaults (cfc_control.training.ppo.hyperparams)."""

    total_steps: Optional[int] = setting(None, "env steps of training (none: the task's)")
    n_envs: Optional[int] = setting(None, "envs stepped in lockstep (none: the task's)")
    n_steps: Optional[int] = setting(None, "steps per env per rollout (none: the task's)")
    learning_rate: Optional[float] = setting(None, "Adam learning rate (none: the task's)")
    n_epochs: Optional[int] = setting(None, "passes over each rollout (none: the task's)")
    seq_len: Optional[int] = setting(None, "longest training sequence, BPTT steps (none: the task's)")
    gamma: Optional[float] = setting(None, "discount (none: the task's)")
    ent_coef: Optional[float] = setting(None, "entropy bonus (none: the task's)")
    critic: Optional[str] = setting(None, "critic model name (none: the actor's kind and size)")
    init_from: Optional[str] = setting(None, "start the actor from this policy directory (e.g. a "
                                             "behaviour-cloned one)", metavar="DIR")
    hp: Dict[str, Any] = setting({}, "any PPOConfig field, e.g. --hp batch_size=1024 (repeatable)")
    val_every: int = setting(0, "iterations between validations of the actor (and one before the first); the "
                                "run's policy is then the best by mean return over --val-timings (0: the last)")
    val_episodes: int = setting(5, "validation episodes per timing (reset seeds of their own)")
    val_timings: Tuple[str, ...] = setting(VAL_TIMINGS, "comma-separated timing presets or specs of validation")

    def __post_init__(self) -> None:
        if self.val_every < 0:
            raise ValueError(f"--val-every must be >= 0, got {self.val_every}")
        if self.val_episodes <= 0:
            raise ValueError(f"--val-episodes must be positive, got {self.val_episodes}")
        if not self.val_timings:
            raise ValueError("--val-timings: give at least one timing")

    def overrides(self) -> Dict[str, Any]:
        """The hyperparameters given (flags and --hp), for ``config_for``."""
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name not in ("init_from", "hp") and not f.name.startswith("val_")}
        return {**named, **{k.strip().replace("-", "_"): v for k, v in self.hp.items()}}


@dataclass(frozen=True)
class EvaluationConfig:
    """The evaluation after training, recorded in the policy's card."""

    episodes: int = setting(20, "evaluation episodes per timing (0: skip)", flag="--eval-episodes")
    timings: Tuple[str, ...] = setting(EVAL_TIMINGS, "comma-separated timing presets or specs to evaluate",
                                       flag="--eval-timings")

    def __post_init__(self) -> None:
        if self.episodes < 0:
            raise ValueError(f"--eval-episodes must be >= 0, got {self.episodes}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (see the module docstring)."""

    env: str = setting(DEFAULT_ENV, "task (see python -m cfc_control.tasks) or a Gymnasium MuJoCo id")
    timing: Optional[str] = setting(None, "timing preset or spec in seconds, overriding the task's "
                                          "(e.g. Jitter, uniform:0.03,0.06)")
    obs: Optional[str] = setting(None, f"observation model overriding the task's ({', '.join(OBS_MODELS)})")
    algo: str = setting("bc", "training algorithm", choices=tuple(ALGORITHMS))
    policy: str = setting("cfc", "model (cfc_control.models name: cfc, cfc-mm, ncp, ltc, lstm, gru, mlp, ...; "
                                 "with -blind, e.g. cfc-blind: its time input held at the nominal period)")
    model_kw: Dict[str, Any] = setting({}, "model argument override, e.g. --model-kw units=32 (repeatable)")
    seed: int = setting(0, "seeds torch, data collection, the data split and the envs")
    out: Optional[str] = setting(None, "run directory (default runs/<task>-<algo>-<policy>-s<seed>)",
                                 metavar="DIR", compare=False)
    checkpoint_every: int = setting(5, "training steps between checkpoints: epochs (bc, dagger) or "
                                       "iterations, one rollout and update each (ppo)", compare=False)
    evaluation: EvaluationConfig = group(EvaluationConfig, "evaluation", compare=False)
    imitation: ImitationConfig = group(ImitationConfig, "bc and dagger", algos=("bc", "dagger"))
    dagger: DAggerConfig = group(DAggerConfig, "dagger", algos=("dagger",))
    ppo: PPOSettings = group(PPOSettings, "ppo", algos=("ppo",))

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algo!r}; available: {', '.join(ALGORITHMS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"--seed must be an integer, got {self.seed!r}")
        if self.checkpoint_every <= 0:
            raise ValueError(f"--checkpoint-every must be positive, got {self.checkpoint_every}")

    @property
    def run_dir(self) -> Path:
        """``out``, or ``runs/<task>-<algo>-<policy>-s<seed>``."""
        if self.out:
            return Path(self.out)
        short = self.env.split("/")[-1].split("-v")[0]
        return Path("runs") / f"{short}-{self.algo}-{self.policy}-s{self.seed}"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunOptions:
    """How one invocation runs; not part of the run's record."""

    resume: bool = setting(False, "continue the run in --out from its last checkpoint (its recorded "
                                  "config is used; flags that change the training are refused)")
    progress: bool = setting(True, "show progress bars")
    tensorboard: bool = setting(True, "write TensorBoard events besides metrics.csv")
    threads: int = setting(1, "torch CPU threads; 0 keeps torch's default. Small recurrent models stepped "
                              "one step at a time gain nothing from more, and spinning threads slow to a "
                              "crawl on a busy machine (measured: 0.4 s vs 1.6-4.5 s per epoch on 2 shared cores)")
