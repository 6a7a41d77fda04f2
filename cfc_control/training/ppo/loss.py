"""PPO's loss on one minibatch of padded sequences, every term masked to the real steps.

    loss = pg + ent_coef * (-entropy) + vf_coef * value [+ teacher_coef * teacher]
           [+ aux_state_coef * state]

``pg`` is the clipped surrogate of the advantages (normalised per minibatch), ``value`` the squared
error of the critic (optionally clipped around the rollout's values), and ``teacher``, where the
rollout was labelled by a teacher, the squared distance from the actor's mean action to the
teacher's (normalised units, summed over the channels). ``state``, where the actor has a state
head, is the head's squared error on the standardised full observation, averaged over the
channels: a positions-only actor has to infer velocities from its history, and this term asks
its recurrent state to hold them (the students' ``--aux-state`` in PPO). While the critic warms
up (``critic_only``) only the value term counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

from cfc_control.training.ppo.actor_critic import ActorCritic
from cfc_control.training.ppo.buffer import SequenceBatch
from cfc_control.training.ppo.hyperparams import PPOConfig


@dataclass
class MinibatchLoss:
    """The total to back-propagate and its terms (scalars); ``approx_kl`` and ``clip_fraction``
    measure how far the policy moved from the rollout's."""

    total: Tensor
    policy_gradient: Tensor
    value: Tensor
    entropy_loss: Tensor
    teacher: Optional[Tensor]
    state: Optional[Tensor]
    approx_kl: float
    clip_fraction: float


@dataclass
class UpdateLog:
    """The terms of an update's minibatches, averaged into the logger's ``train/`` keys."""

    terms: Dict[str, List[float]] = field(default_factory=lambda: {
        k: [] for k in ("policy_gradient_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction",
                        "teacher_loss", "state_loss")})

    def add(self, loss: MinibatchLoss) -> None:
        self.terms["policy_gradient_loss"].append(loss.policy_gradient.item())
        self.terms["value_loss"].append(loss.value.item())
        self.terms["entropy_loss"].append(loss.entropy_loss.item())
        self.terms["approx_kl"].append(loss.approx_kl)
        self.terms["clip_fraction"].append(loss.clip_fraction)
        if loss.teacher is not None:
            self.terms["teacher_loss"].append(loss.teacher.item())
        if loss.state is not None:
            self.terms["state_loss"].append(loss.state.item())

    def record(self, record: Callable[[str, float], None]) -> None:
        """``record("train/<term>", mean)`` for every term some minibatch had."""
        for name, values in self.terms.items():
            if values:
                record(f"train/{name}", float(sum(values) / len(values)))


def _masked_mean(x: Tensor, mask: Tensor, count: Tensor) -> Tensor:
    return (x * mask).sum() / count


def minibatch_loss(policy: ActorCritic, batch: SequenceBatch, cfg: PPOConfig, *,
                   critic_only: bool = False) -> MinibatchLoss:
    """The loss of ``batch`` under ``policy`` with ``cfg``'s coefficients."""
    values, log_prob, entropy, mean_action, estimate = policy.evaluate(
        batch.observations, batch.actions, batch.episode_starts, batch.states["actor"], batch.states["critic"],
        batch.full_observations if policy.privileged else None)
    if estimate is not None and batch.state_targets is None:
        raise ValueError("the actor has a state head, but the rollout holds no state labels to train it on")
    mask = batch.mask
    count = mask.sum()
    advantages = batch.advantages
    if cfg.normalize_advantage and count > 1:
        centre = _masked_mean(advantages, mask, count)
        spread = (_masked_mean((advantages - centre) ** 2, mask, count) * count / (count - 1)).sqrt()
        advantages = (advantages - centre) / (spread + 1e-8)
    # Masked before exp: a padded step's log-ratio could overflow to inf, and inf * 0 is nan.
    log_ratio = (log_prob - batch.old_log_prob) * mask
    ratio = torch.exp(log_ratio)
    clip = cfg.clip_range
    surrogate = torch.min(advantages * ratio, advantages * ratio.clamp(1 - clip, 1 + clip))
    pg_loss = -_masked_mean(surrogate, mask, count)
    if cfg.clip_range_vf is not None:
        values = batch.old_values + (values - batch.old_values).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
    value_loss = _masked_mean((batch.returns - values) ** 2, mask, count)
    entropy_loss = -entropy
    teacher_loss = None
    if batch.teacher_actions is not None:
        teacher_loss = _masked_mean(((mean_action - batch.teacher_actions) ** 2).sum(-1), mask, count)
    state_loss = None
    if estimate is not None:
        state_loss = _masked_mean(((estimate - batch.state_targets) ** 2).mean(-1), mask, count)
    if critic_only:
        total = cfg.vf_coef * value_loss
    else:
        total = pg_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
        if teacher_loss is not None:
            total = total + cfg.teacher_coef * teacher_loss
        if state_loss is not None:
            total = total + cfg.aux_state_coef * state_loss
    with torch.no_grad():
        approx_kl = float(_masked_mean((ratio - 1) - log_ratio, mask, count))
        clip_fraction = float(_masked_mean(((ratio - 1).abs() > clip).float(), mask, count))
    return MinibatchLoss(total, pg_loss, value_loss, entropy_loss, teacher_loss, state_loss, approx_kl,
                         clip_fraction)
