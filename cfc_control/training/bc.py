"""Behaviour cloning of a recurrent policy on whole-episode demonstrations.

Training data are *windows* of consecutive steps with their Δt. Truncated backpropagation through
time uses **burn-in** (as R2D2 does): each window of ``window`` steps is preceded by up to
``burn_in`` steps of the same episode that are run without gradient to warm the recurrent state,
then the loss is taken on the window. Why burn-in rather than carrying the state across
consecutive windows: windows stay independent, so every batch mixes episodes and positions
(shuffled, lower-variance gradients), and the warm-up state comes from the *current* weights
rather than a state computed by weights several updates old. The controllers here need a short
memory (velocity from a few positions and their Δt), which a burn-in of a few dozen steps covers;
validation runs each held-out episode whole from the initial state, exactly as the policy runs.

Windows tile each episode with a fresh random offset every epoch. A window that reaches back
before its episode's start is left-padded and ``episode_starts`` resets the state at the first
real step; one that runs past the episode's end is right-padded; padded steps are masked out of
the loss. The target is the expert action normalised to [-1, 1] (``ActionMapping.normalize``);
the loss is the masked mean squared error per action channel divided by that channel's variance
in the training data (the fraction of variance unexplained, so channels weigh alike and 1.0 means
"no better than the mean"). The observation normaliser is fitted on the training episodes and
stored with the policy.

**Weighting by period** (``period_weight`` p, 0 by default): each step's loss is weighted by
(Δt / nominal)^p. Demonstrations are counted in steps, so under a mixture of periods an episode at a
steady 0.4x period holds six times the steps of one at 2.5x for the same seconds of motion and,
with p = 0, six times its weight in the loss; p = 1 weighs each second of demonstration alike,
p < 0 the short periods up further. The validation loss is weighed alike, so ``val_loss`` compares
runs of one p.

**Auxiliary state estimate** (``aux_state_coef`` > 0): a linear head reads the model's features
(what it projects its output from: the state of an unwired CfC, LSTM or GRU, every neuron of a
wired one; ``RecurrentModel.forward_features``) and predicts the full stock observation of each
step (velocities included, recorded with the demonstrations); ``aux_state_coef`` times its
standardised mean squared error is added to the loss. A positions-only student has to infer
velocities from its history; the head asks its recurrent state to hold them. The head exists in training only (saved
in checkpoints): the policy, its exports and runtime are unchanged.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from cfc_control.policies import ObsNormalizer, RecurrentPolicy
from cfc_control.episodes.demos import Demonstrations


@dataclass
class BCConfig:
    """Every behaviour-cloning hyperparameter, in one place."""

    window: int = 32            # steps per training window (gradient flows through these)
    burn_in: int = 32           # steps before each window, run without gradient to warm the state
    batch_size: int = 32        # windows per update
    epochs: int = 40            # passes over the training windows
    lr: float = 3e-3            # Adam learning rate (cosine-decayed to lr * lr_final_fraction)
    lr_final_fraction: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0      # max global gradient norm
    val_fraction: float = 0.2   # share of episodes held out for validation (at least one)
    obs_clip: float = 10.0      # clip of the normalised observations
    aux_state_coef: float = 0.0  # weight of the auxiliary state estimate (module docstring); 0: none
    period_weight: float = 0.0  # each step's loss weighted by (dt / nominal) ** period_weight; 0: steps alike
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("window", "batch_size", "epochs"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"BCConfig.{name} must be positive, got {getattr(self, name)}")
        if self.burn_in < 0:
            raise ValueError(f"BCConfig.burn_in must be >= 0, got {self.burn_in}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"BCConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.lr > 0:
            raise ValueError(f"BCConfig.lr must be positive, got {self.lr}")
        if not self.aux_state_coef >= 0:
            raise ValueError(f"BCConfig.aux_state_coef must be >= 0, got {self.aux_state_coef}")
        if not math.isfinite(self.period_weight):
            raise ValueError(f"BCConfig.period_weight must be finite, got {self.period_weight}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Batch:
    """Padded windows: obs (B, L, n_obs), dt (B, L) s, starts (B, L) bool, target (B, L, n_act),
    mask (B, L) float (0 on padded and warm-up steps, else the step's weight in the loss), full
    (B, L, n_full) the full observations (None without); the first ``burn_in`` steps are warm-up
    only."""

    obs: Tensor
    dt: Tensor
    starts: Tensor
    target: Tensor
    mask: Tensor
    burn_in: int
    full: Optional[Tensor] = None


class SequenceData:
    """Demonstrations as flat tensors plus the windowing logic."""

    def __init__(self, demos: Demonstrations, policy: RecurrentPolicy, period_weight: float = 0.0) -> None:
        if demos.n_obs != policy.n_obs or demos.n_act != policy.n_act:
            raise ValueError(
                f"demonstrations have {demos.n_obs} observations / {demos.n_act} actions, the policy "
                f"takes {policy.n_obs} / gives {policy.n_act}"
            )
        self.demos = demos
        self.obs = torch.as_tensor(demos.observations, dtype=torch.float32)
        self.dt = torch.as_tensor(demos.dt, dtype=torch.float32)
        target = policy.action_mapping.normalize(demos.actions)
        self.target = torch.as_tensor(target, dtype=torch.float32)
        self.offsets = demos.episode_offsets
        self.nominal = float(policy.time_input.nominal_dt)
        self.weight = (self.dt / self.nominal) ** period_weight  # each step's weight in the loss (module docstring)
        full = demos.full_observations
        self.full = torch.as_tensor(full, dtype=torch.float32) if full is not None else None

    def epoch_windows(self, window: int, rng: np.random.Generator) -> np.ndarray:
        """(W, 2) rows of (window start row, episode) tiling every episode from a random offset,
        shuffled. The first window of an episode begins up to ``window - 1`` rows before it
        (padded), so that every step is trained on whatever the offset."""
        parts = []
        for e in range(self.demos.n_episodes):
            lo, hi = int(self.offsets[e]), int(self.offsets[e + 1])
            starts = np.arange(lo - int(rng.integers(0, window)), hi, window)
            parts.append(np.stack([starts, np.full_like(starts, e)], axis=1))
        flat = np.concatenate(parts)
        return flat[rng.permutation(flat.shape[0])]

    def batch(self, windows: np.ndarray, window: int, burn_in: int) -> Batch:
        """Rows [s - burn_in, s + window) of episode e for each (s, e) in ``windows``, padded and
        masked to that episode."""
        starts, episode = windows[:, 0], windows[:, 1]
        first = self.offsets[episode]
        last = self.offsets[episode + 1]
        idx = starts[:, None] + np.arange(-burn_in, window)[None, :]
        valid = (idx >= first[:, None]) & (idx < last[:, None])
        gather = torch.as_tensor(np.clip(idx, first[:, None], last[:, None] - 1))
        valid_t = torch.as_tensor(valid)
        dt = torch.where(valid_t, self.dt[gather], torch.full_like(self.dt[gather], self.nominal))
        mask = valid_t.float() * self.weight[gather]
        mask[:, :burn_in] = 0.0
        return Batch(self.obs[gather], dt, torch.as_tensor(idx == first[:, None]), self.target[gather], mask, burn_in,
                     self.full[gather] if self.full is not None else None)

    def episodes_batch(self) -> Batch:
        """Every episode whole, from its first step, right-padded to the longest (validation)."""
        lengths = np.diff(self.offsets)
        windows = np.stack([self.offsets[:-1], np.arange(len(lengths))], axis=1)
        return self.batch(windows, int(lengths.max()), 0)


def masked_nmse(y: Tensor, target: Tensor, mask: Tensor, inv_var: Tensor) -> Tensor:
    """Mean over steps, weighted by ``mask``, of sum_d (y - target)_d^2 * inv_var_d / n_act."""
    err = ((y - target) ** 2 * inv_var).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def forward_batch(policy: RecurrentPolicy, b: Batch) -> Tuple[Tensor, Tensor]:
    """Normalised actions (B, L - burn_in, n_act) for a batch and the model's features they are
    projected from (B, L - burn_in, F), the burn-in run without gradient."""
    hx = None
    if b.burn_in > 0:
        with torch.no_grad():
            _, hx = policy(b.obs[:, :b.burn_in], b.dt[:, :b.burn_in], None, b.starts[:, :b.burn_in])
    features, _ = policy.features(b.obs[:, b.burn_in:], b.dt[:, b.burn_in:], hx, b.starts[:, b.burn_in:])
    return policy.model.output_from_features(features), features


class BCTrainer:
    """Behaviour cloning of ``policy`` on ``train`` (and validation on ``val``).

    The observation normaliser is fitted on ``train`` and set on the policy unless
    ``fit_normalizer=False`` (DAgger keeps the first one). Call :meth:`train_epoch` /
    :meth:`validate`, or :meth:`fit` for the whole schedule; :meth:`state_dict` /
    :meth:`load_state_dict` carry everything a resumed run needs besides the policy weights and
    :attr:`state_head` (:meth:`head_tensors`). ``state_head``: the auxiliary state estimate's head
    to continue (DAgger hands it from round to round), None: a fresh one when the config asks.
    """

    def __init__(self, policy: RecurrentPolicy, train: Demonstrations, val: Optional[Demonstrations],
                 config: BCConfig, fit_normalizer: bool = True, state_head: Optional[torch.nn.Linear] = None) -> None:
        self.policy = policy
        self.config = config
        if config.aux_state_coef > 0 and train.full_observations is None:
            raise ValueError("the auxiliary state estimate needs demonstrations with full observations "
                             "(collected by this version from a MuJoCo env); these have none")
        if fit_normalizer:
            policy.set_normalizer(ObsNormalizer.fit(train.observations, clip=config.obs_clip))
        self.train_data = SequenceData(train, policy, config.period_weight)
        self.val_data = SequenceData(val, policy, config.period_weight) if val is not None else None
        var = self.train_data.target.var(0, unbiased=False)
        self.inv_var = 1.0 / var.clamp_min(1e-4)
        self.state_head: Optional[torch.nn.Linear] = None
        params = list(policy.model.parameters())
        if config.aux_state_coef > 0:
            full = self.train_data.full
            self.full_mean, self.full_inv_var = full.mean(0), 1.0 / full.var(0, unbiased=False).clamp_min(1e-4)
            self.state_head = state_head or torch.nn.Linear(policy.model.feature_size(), full.shape[1])
            params += list(self.state_head.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.rng = np.random.default_rng([config.seed, 0xBC])
        self.epoch = 0
        self.updates = 0
        self.windows_per_epoch = len(self.train_data.epoch_windows(config.window, np.random.default_rng(0)))
        self.total_updates = config.epochs * math.ceil(self.windows_per_epoch / config.batch_size)

    def lr_at(self, update: int) -> float:
        c = self.config
        frac = min(update / max(self.total_updates, 1), 1.0)
        return c.lr * (c.lr_final_fraction + (1 - c.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * frac)))

    def train_epoch(self) -> float:
        """One pass over the training windows; returns the mean training loss."""
        c = self.config
        self.policy.train()
        starts = self.train_data.epoch_windows(c.window, self.rng)
        total, count = 0.0, 0
        for i in range(0, len(starts), c.batch_size):
            b = self.train_data.batch(starts[i:i + c.batch_size], c.window, c.burn_in)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.updates)
            y, features = forward_batch(self.policy, b)
            loss = masked_nmse(y, b.target[:, b.burn_in:], b.mask[:, b.burn_in:], self.inv_var)
            if self.state_head is not None:
                loss = loss + c.aux_state_coef * self.state_loss(features, b.full[:, b.burn_in:], b.mask[:, b.burn_in:])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], c.grad_clip)
            self.optimizer.step()
            self.updates += 1
            total += loss.item() * len(b.obs)
            count += len(b.obs)
        self.epoch += 1
        return total / max(count, 1)

    def state_loss(self, features: Tensor, full: Tensor, mask: Tensor) -> Tensor:
        """The state head's error on (B, L, F) features against the full observations (B, L,
        n_full): the masked mean of the per-channel squared error over the channel's variance."""
        assert self.state_head is not None
        return masked_nmse(self.state_head(features), (full - self.full_mean), mask, self.full_inv_var)

    @torch.no_grad()
    def validate(self) -> float:
        """Loss over the held-out episodes, each run whole from the initial state (NaN without)."""
        return self.validation()["val_loss"]

    @torch.no_grad()
    def validation(self) -> Dict[str, float]:
        """``val_loss`` (the action loss, as :meth:`validate`) and, with the auxiliary state
        estimate, ``val_state_loss`` (its error: the share of each channel's variance the head
        leaves unexplained, averaged) over the held-out episodes run whole."""
        if self.val_data is None:
            return {"val_loss": float("nan")}
        self.policy.eval()
        b = self.val_data.episodes_batch()
        features, _ = self.policy.features(b.obs, b.dt, None, b.starts)
        out = {"val_loss": float(masked_nmse(self.policy.model.output_from_features(features), b.target, b.mask,
                                             self.inv_var))}
        if self.state_head is not None and b.full is not None:
            out["val_state_loss"] = float(self.state_loss(features, b.full, b.mask))
        return out

    def fit(self, on_epoch: Optional[Callable[[Dict[str, float]], None]] = None) -> Dict[str, float]:
        """Train until ``config.epochs``; ``on_epoch`` gets each epoch's metrics. Returns the last."""
        metrics: Dict[str, float] = {}
        while self.epoch < self.config.epochs:
            start = time.time()
            train_loss = self.train_epoch()
            metrics = {"epoch": self.epoch, "updates": self.updates, "train_loss": train_loss,
                       **self.validation(), "lr": self.lr_at(self.updates), "epoch_time_s": time.time() - start}
            if on_epoch is not None:
                on_epoch(metrics)
        return metrics

    # -- resume --------------------------------------------------------------------------------
    def state_dict(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """(JSON-able progress, optimiser state_dict) for a checkpoint."""
        return {"epoch": self.epoch, "updates": self.updates, "rng": self.rng.bit_generator.state}, self.optimizer.state_dict()

    def load_state_dict(self, progress: Dict[str, Any], optimizer_state: Dict[str, Any],
                        head_tensors: Optional[Dict[str, Tensor]] = None) -> None:
        """Continue from :meth:`state_dict` and :meth:`head_tensors` (needed with the state head)."""
        self.epoch = int(progress["epoch"])
        self.updates = int(progress["updates"])
        self.rng.bit_generator.state = progress["rng"]
        if self.state_head is not None:
            self.load_head(head_tensors or {})
        self.optimizer.load_state_dict(optimizer_state)

    def head_tensors(self) -> Dict[str, Tensor]:
        """The state head's weights for a checkpoint (empty without one)."""
        if self.state_head is None:
            return {}
        return {f"{HEAD_PREFIX}{k}": v for k, v in self.state_head.state_dict().items()}

    def load_head(self, tensors: Dict[str, Tensor]) -> None:
        """Set the state head from :meth:`head_tensors`' output. Raises ValueError when absent."""
        assert self.state_head is not None
        weights = {k[len(HEAD_PREFIX):]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)}
        if not weights:
            raise ValueError("the checkpoint holds no state head, but the run trains one (aux_state_coef > 0)")
        self.state_head.load_state_dict(weights)


HEAD_PREFIX = "state_head."


def behaviour_clone(policy: RecurrentPolicy, demos: Demonstrations, config: Optional[BCConfig] = None,
                    on_epoch: Optional[Callable[[Dict[str, float]], None]] = None) -> Tuple[RecurrentPolicy, Dict[str, float]]:
    """Split ``demos`` by episodes, fit the normaliser, train ``policy`` in place; returns it and
    the last epoch's metrics (train_loss, val_loss, ...)."""
    config = config or BCConfig()
    train, val = demos.split(config.val_fraction, seed=config.seed)
    trainer = BCTrainer(policy, train, val, config)
    return policy, trainer.fit(on_epoch)
