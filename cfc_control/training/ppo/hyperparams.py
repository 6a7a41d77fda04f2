"""Every PPO hyperparameter in one visible place: the defaults, then the per-task overrides.

``config_for(task, overrides, model=name)`` returns the :class:`PPOConfig` for a task: the
dataclass defaults, updated by :data:`TASK_DEFAULTS` for the task's family (InvertedPendulum,
HalfCheetah, ...), by :data:`SCRATCH_DEFAULTS` for a fresh actor, by :data:`TASK_MODEL_DEFAULTS`
for that family and the model trained, then by ``overrides`` (the command line's flags and
``--hp KEY=VALUE``). Unknown keys raise a ValueError that lists the known ones.
``model_kwargs_for(model, given, task)`` does the same for a fresh actor's model arguments:
:data:`MODEL_DEFAULTS`, then :data:`TASK_MODEL_KWARGS`, then ``--model-kw``.

Units: ``n_steps`` is per env, so a rollout holds ``n_envs * n_steps`` env steps; ``batch_size``
is in env steps (a minibatch holds whole sequences adding up to about that many);
``seq_len`` is the longest sequence the rollout is cut into (it is also cut at episode starts);
``log_std_init`` is in normalised action units (the action space mapped to [-1, 1]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, Mapping, Optional, Tuple

from cfc_control.models.registry import available
from cfc_control.tasks import task_info


@dataclass(frozen=True)
class PPOConfig:
    """PPO on recurrent policies; the defaults suit the small MuJoCo tasks."""

    total_steps: int = 1_000_000    # env steps of training (the command line's --total-steps)
    n_envs: int = 8                 # envs stepped in lockstep (one batched policy call per tick)
    n_steps: int = 256              # steps per env per rollout
    seq_len: int = 32               # longest training sequence (truncated BPTT; states are stored)
    batch_size: int = 512           # env steps per minibatch (whole sequences)
    n_epochs: int = 10              # passes over each rollout
    learning_rate: float = 3e-4     # Adam
    lr_schedule: str = "constant"   # "constant" or "linear" (to 0 at total_steps)
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    period_discount: bool = False   # γ and λ per nominal period of elapsed time (γ^(Δt/nominal) per step), not
                                    # per step: the horizon in seconds stays the same at every period
    clip_range: float = 0.2
    clip_range_vf: Optional[float] = None
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: Optional[float] = 0.03  # stop an update's epochs once the approximate KL passes 1.5x this
    log_std_init: float = -1.0      # initial exploration std exp(-1) = 0.37 action half-ranges
    noise_period_power: float = 0.0  # each step's std times (Δt / nominal) ** -p: 0 the same at every period,
                                     # 0.5 the same variance of the held noise's push per second
    actor_output_scale: float = 0.01  # a fresh actor's output layer starts this much smaller
    normalize_advantage: bool = True
    normalize_reward: bool = True   # VecNormalize on the reward only (observations: below)
    normalize_obs: bool = True      # running statistics in the policy's own normaliser, Δt excluded
                                    # (off: a fresh actor has none, a given one keeps its own)
    obs_clip: float = 10.0
    critic: str = "same"            # critic model (cfc_control.models name), "same" as the actor
    critic_input: str = "observation"  # what the critic reads: "observation" (the actor's) or "full" (the env's
                                       # full observation: a privileged critic; needs MuJoCo envs in this process)
    critic_warmup: int = 0          # first iterations train the critic only (for --init-from)
    time_gate_init: str = "reference"  # fresh CfC actor and critic: "zero" starts the gate's Δt weight t_a at 0
    teacher_coef: float = 0.0       # weight of the squared distance from the actor's mean action to a teacher's
                                    # (normalised units, summed over channels); needs a teacher (--expert)
    aux_state_coef: float = 0.0     # weight of the actor's auxiliary estimate of the full simulator observation
                                    # (training/ppo/loss.py); needs MuJoCo envs in this process
    rollout_kernel: str = "torch"   # the rollout's policy step: "torch", or "numpy" (the runtime's kernels, about
                                    # 4x faster per step, equal up to float32 rounding; training/ppo/rollout_step.py)

    def __post_init__(self) -> None:
        positive = ("total_steps", "n_envs", "n_steps", "seq_len", "batch_size", "n_epochs")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"PPOConfig.{name} must be a positive int, got {value!r}")
        for name in ("learning_rate", "clip_range", "max_grad_norm", "obs_clip", "adam_eps", "actor_output_scale"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"PPOConfig.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"PPOConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("ent_coef", "vf_coef", "teacher_coef", "aux_state_coef", "noise_period_power"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"PPOConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"PPOConfig.lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}")
        if self.critic != "same" and self.critic not in available():
            raise ValueError(f"PPOConfig.critic must be 'same' or one of {available()}, got {self.critic!r}")
        if self.critic_input not in ("observation", "full"):
            raise ValueError(f"PPOConfig.critic_input must be 'observation' or 'full', got {self.critic_input!r}")
        if self.rollout_kernel not in ("torch", "numpy"):
            raise ValueError(f"PPOConfig.rollout_kernel must be 'torch' or 'numpy', got {self.rollout_kernel!r}")
        if self.time_gate_init not in ("reference", "zero"):
            raise ValueError(f"PPOConfig.time_gate_init must be 'reference' or 'zero', got {self.time_gate_init!r}")
        if self.critic_warmup < 0:
            raise ValueError(f"PPOConfig.critic_warmup must be >= 0, got {self.critic_warmup!r}")
        for name in ("clip_range_vf", "target_kl"):
            value = getattr(self, name)
            if value is not None and not float(value) > 0:
                raise ValueError(f"PPOConfig.{name} must be None or positive, got {value!r}")

    @property
    def rollout_steps(self) -> int:
        """Env steps per rollout (``n_envs * n_steps``)."""
        return self.n_envs * self.n_steps

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


# Per task family (the base env of a task), what differs from the defaults above. Measured or
# chosen for the cfc policy; the other policies use the same recipe so that they compare.
TASK_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # 25 Hz, 1000-step episodes that end early when the pole falls: short rollouts, fast updates.
    # Measured on Pos-Irregular (CfC, seed 0, 100k steps; deterministic return over 20 episodes):
    # gamma 0.95 or 0.98 learns to balance but not to keep the cart off the rails (~500-800:
    # the drift takes ~15 s, beyond a 1-2 s horizon); 0.99 reaches 1000. Without the KL stop,
    # lr 1e-3 or std exp(-0.5) gave approximate KLs of 0.1-0.4 per update and ~150-400.
    "InvertedPendulum": {"total_steps": 100_000, "n_envs": 8, "n_steps": 128, "batch_size": 256,
                         "n_epochs": 15, "learning_rate": 3e-4, "gamma": 0.99, "gae_lambda": 0.95,
                         "log_std_init": -1.5},
    "InvertedDoublePendulum": {"total_steps": 1_000_000, "n_steps": 256, "learning_rate": 5e-4,
                               "gamma": 0.99},
    # 20 Hz locomotion, 1000-step episodes that never terminate early.
    "HalfCheetah": {"total_steps": 1_000_000, "n_envs": 8, "n_steps": 256, "batch_size": 512,
                    "learning_rate": 3e-4, "gamma": 0.99, "gae_lambda": 0.95, "log_std_init": -1.0},
    # What PPO from a student (--init-from) starts from; from scratch, SCRATCH_DEFAULTS below.
    "Hopper": {"total_steps": 1_000_000, "learning_rate": 3e-4, "gamma": 0.999, "log_std_init": -1.0},
    "Walker2d": {"total_steps": 1_000_000, "learning_rate": 3e-4, "gamma": 0.99, "log_std_init": -1.0},
    "Swimmer": {"total_steps": 1_000_000, "gamma": 0.9999, "log_std_init": -1.0},
    "Reacher": {"total_steps": 500_000, "n_steps": 64, "batch_size": 256, "gamma": 0.9},
}

# Per task family, applied on top for a fresh actor (no --init-from), which has to find a gait by
# itself. Hopper: with the family's settings above PPO stands still from positions (991 under
# Jitter, the survival bonus; so do rl-zoo3's Hopper values, on the full state too). An initial
# std of 1 with no KL stop and a linear learning-rate decay makes it hop, and hopping from
# positions needs the velocities the observation lacks: the actor's auxiliary estimate of the full
# observation and a critic that reads it keep the hopper up. Hopper-Pos-Irregular, CfC, 2M steps,
# seeds 0/1/2 under Jitter: 2636 / 3242 / 3004, under Irregular 2338 / 2449 / 2222
# (studies/ppo-hopper-from-scratch.md). Walker2d, where the family's settings fall (920 under
# Jitter), walks with the same recipe on two seeds of three: Walker2d-Pos-Irregular, CfC, 2M steps,
# seeds 0/1/2 under Jitter 2795 / 1216 / 2425, under Irregular 3107 / 1326 / 2090 (seed 1 falls
# after ~340 steps; same study, last section).
_FROM_POSITIONS = {"total_steps": 2_000_000, "gamma": 0.99, "log_std_init": 0.0, "target_kl": None,
                   "lr_schedule": "linear", "batch_size": 256, "aux_state_coef": 1.0, "critic_input": "full"}
# Hopper also scales each step's exploration noise by (Δt / nominal) ** -0.5 (noise_period_power):
# a held action's noise pushes for the whole period, so with one std for every period the long
# periods of Irregular timing shake the hopper most. Seeds 0/1/2 under Jitter 2239 / 3301 / 2439,
# under Irregular 2463 / 2887 / 2184 (110 / 87 / 90%; with the same std at every period 89 / 76 /
# 74%; seed 3: 3302, 82%). Training under half steady periods instead (--timing
# 'Irregular|steady:0.004,0.016') did not help: 78 / 62% on seeds 1 / 2
# (studies/ppo-hopper-from-scratch.md, "Hopper's falls under Irregular timing").
# HalfCheetah keeps its own exploration (std 1 makes it flip: 1340 under Jitter) and takes the
# state estimate and the full-state critic alone: HalfCheetah-Pos-Jitter, CfC, 1M steps, seeds
# 0/1/2 under Jitter 5468 / 4890 / 4663 (5007 ± 339, from 4176 ± 545), under Irregular 3796 /
# 2766 / 2498; the LSTM 4745 ± 88 from 4280 ± 232 (studies/ppo-halfcheetah-recipes.md, e9).
SCRATCH_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "Hopper": {**_FROM_POSITIONS, "noise_period_power": 0.5},
    "Walker2d": dict(_FROM_POSITIONS),
    "HalfCheetah": {"aux_state_coef": 1.0, "critic_input": "full"},
}

# Per task family and model name, what differs from the family's settings above for that model.
# InvertedPendulum, plain CfC: exploration noise exp(-2.5) = 0.08 action half-ranges instead of
# exp(-1.5) = 0.22. The falls after runs of long periods are the overcorrection of a high-gain
# controller: with the larger noise the plain CfC learns gains 2-3.6x the LQR's that rise with
# the period (fitted theta gain 5.1 -> 8.7 from 0.5x to 2x periods, seed 2), which overcorrect
# when the next action is held for 2x as well; a period's noise is held for the whole period, so its push
# grows with the period. With 0.08 it learns a gentler controller (theta gain 2.9 -> 3.7, mean
# |action| 0.08 against 0.25) and learns faster (training return 827 against 478 at 100k
# steps). 100 Irregular episodes, seeds 0/1/2: 970.2 / 953.2 / 979.8 (with -1.5: 977.1 / 839.7 /
# 732.1); studies/ppo-cfc-long-periods.md. Other models keep the family's -1.5 (cfc-mm and the
# LSTM balance in every episode with it).
# The same CfC also takes a linear learning-rate decay and 10 epochs instead of 15: with the noise
# alone a seed's outcome was chaotic (seeds 0-5: 4 of 6 reached 950 over 100 Irregular episodes,
# 940.7 on seed 0); with both, seeds 0-11 score 972-1000 (mean 995; the decay alone 932-1000 on
# seeds 0-5, period-scaled noise or per-time discounting 315-1000).
# HalfCheetah, MLP: a memoryless actor cannot hold the velocities that SCRATCH_DEFAULTS' state
# estimate asks of it; with the estimate and the full-state critic it scores 3996 ± 185 under
# Jitter over seeds 0-2, without them 4702 ± 47 (studies/ppo-halfcheetah-recipes.md, e9).
# HalfCheetah, plain CfC: minibatches of 1024 steps instead of 512, half the update's gradient steps
# (the update ~30% cheaper per env step, 139 -> 98 us at 8 envs; studies/ppo-throughput.md) at no
# cost in return: seeds 0/1/2 under Jitter 5179 / 5532 / 4645 (5119 ± 364; with 512: 5468 / 4890 /
# 4663, 5007 ± 339), under Irregular 3459 ± 776 (with 512: 3020 ± 559).
TASK_MODEL_DEFAULTS: Dict[Tuple[str, str], Dict[str, Any]] = {
    ("InvertedPendulum", "cfc"): {"log_std_init": -2.5, "lr_schedule": "linear", "n_epochs": 10},
    ("HalfCheetah", "cfc"): {"batch_size": 1024},
    ("HalfCheetah", "mlp"): {"aux_state_coef": 0.0, "critic_input": "observation"},
}

# Model arguments a fresh PPO actor (and its "same" critic) gets by default, per model name;
# --model-kw overrides them key by key. Measured on InvertedPendulum-Pos-Irregular, 100k steps,
# seeds 0/1/2, deterministic return under Irregular timing over 20 episodes: the registry's CfC
# (one 128-unit backbone layer) 1000 / 455 / 751 (all seeds balance; two let the cart drift onto
# a rail), the same without a backbone (the gate heads read [x, h] directly) 984 / 942 / 801.
# With mixed memory (cfc-mm, the paper's CfC-mmRNN: an LSTM cell in front of the CfC), the same
# backbone-free heads. On that task the plain CfC's failures are falls after runs of long periods
# (over 100 Irregular episodes, seed 0: CfC 864, LSTM 1000); with mixed memory the CfC balances
# like the LSTM (README, "Reinforcement learning"). Tried without effect for the plain CfC: 128
# units, a 64-unit backbone, a linear learning-rate decay, Δt as an extra input feature; what
# fixed it is less exploration noise (TASK_MODEL_DEFAULTS above).
MODEL_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "cfc": {"backbone_layers": 0},
    "cfc-mm": {"backbone_layers": 0},
}


# Per task family and model name, model arguments a fresh actor (and its "same" critic) gets on
# top of MODEL_DEFAULTS; --model-kw still overrides them. Walker2d, CfC: one 64-unit backbone layer
# in front of the gate heads. Walker2d-Pos-Irregular, 2M steps, SCRATCH_DEFAULTS' recipe, seeds
# 0/1/2/3/4 under Jitter: 3960 / 2015 / 2000 / 3713 / 3716 with it, 2795 / 1216 / 2425 / 1806 /
# 1617 without (3081 ± 881 against 1972 ± 567; our LSTM 3188 ± 838, level). On Hopper it does
# not help (seeds 0/1/2: 2074 / 3243 / 1823 against 2636 / 3242 / 3004), so Hopper stays backbone-free
# (studies/ppo-hopper-from-scratch.md, "A backbone layer for Walker2d").
TASK_MODEL_KWARGS: Dict[Tuple[str, str], Dict[str, Any]] = {
    ("Walker2d", "cfc"): {"backbone_layers": 1, "backbone_units": 64},
}


def _model_key(model_name: str) -> str:
    return model_name.strip().lower().replace("_", "-")


def model_kwargs_for(model_name: str, given: Optional[Mapping[str, Any]] = None,
                     task: Optional[str] = None) -> Dict[str, Any]:
    """:data:`MODEL_DEFAULTS` for ``model_name``, then :data:`TASK_MODEL_KWARGS` for the task's
    family (when ``task`` is given), updated by the ``given`` arguments."""
    key = _model_key(model_name)
    family = task_family(task) if task is not None else None
    return {**MODEL_DEFAULTS.get(key, {}), **TASK_MODEL_KWARGS.get((family, key), {}), **dict(given or {})}


# Applied on top when the actor starts from a behaviour-cloned policy (--init-from): a cloned
# actor is already good, so explore less, and fit the fresh critic before the first policy step
# (advantages from an untrained critic would push a good actor in random directions). And keep
# the observation statistics the actor was trained with (normalize_obs off: a given actor's
# normaliser is then left as it is): merged with PPO's rollouts they move, and the actor's inputs
# with them. On Walker2d-Pos-Irregular, starting from a DAgger CfC student (PPO seed 0), the
# training return fell from 2052 to 506 within 60k steps with the statistics updated, and stayed
# at 2300-2500 with them kept (log_std_init -2.5, learning rate 5e-5, 10 critic-only iterations;
# studies/ppo-fine-tune-walker2d.md).
INIT_FROM_DEFAULTS: Dict[str, Any] = {"log_std_init": -1.5, "critic_warmup": 3, "normalize_obs": False}


def task_family(task: str) -> str:
    """The task family of a task or Gymnasium id: ``"HalfCheetah-Pos-Jitter"`` -> ``"HalfCheetah"``."""
    return task_info(task)["base_env"].split("/")[-1].split("-v")[0]


def config_for(task: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
               init_from: bool = False, model: Optional[str] = None) -> PPOConfig:
    """The defaults, then the task family's, then the family's :data:`SCRATCH_DEFAULTS` unless
    ``init_from``, then the family's for ``model`` (a model name, see :data:`TASK_MODEL_DEFAULTS`),
    then :data:`INIT_FROM_DEFAULTS` when ``init_from``, then ``overrides`` (``None`` values are
    ignored, so unset flags keep the defaults)."""
    known = {f.name for f in fields(PPOConfig)}
    given = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown PPO hyperparameters {unknown}; known: {sorted(known)}")
    values: Dict[str, Any] = {}
    if task is not None:
        family = task_family(task)
        values.update(TASK_DEFAULTS.get(family, {}))
        if not init_from:
            values.update(SCRATCH_DEFAULTS.get(family, {}))
        if model is not None:
            values.update(TASK_MODEL_DEFAULTS.get((family, _model_key(model)), {}))
    if init_from:
        values.update(INIT_FROM_DEFAULTS)
    values.update(given)
    return replace(PPOConfig(), **_coerce(values))


_BOOLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _coerce(values: Dict[str, Any]) -> Dict[str, Any]:
    """Cast values given as text or JSON (``--hp n_epochs=5``) to the fields' types."""
    types = {f.name: f.type for f in fields(PPOConfig)}
    out: Dict[str, Any] = {}
    for key, value in values.items():
        kind = str(types[key])
        try:
            if value is None or (isinstance(value, str) and value.lower() == "none" and "Optional" in kind):
                out[key] = None
            elif kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                out[key] = int(value)
            elif "float" in kind:
                out[key] = float(value)
            elif kind == "bool":
                out[key] = value if isinstance(value, bool) else _BOOLS[str(value).lower()]
            else:
                out[key] = str(value)
        except (TypeError, ValueError, KeyError):
            raise ValueError(f"PPO hyperparameter {key} expects {kind}, got {value!r}") from None
    return out
