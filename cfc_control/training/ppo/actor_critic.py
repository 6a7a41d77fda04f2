"""The actor-critic PPO trains: a :class:`RecurrentPolicy` actor, a recurrent critic, a learned
log-std.

* The **actor** is exactly the object the policy directory stores and every runtime loads
  (observation normaliser, recurrent model, action mapping, time input); its model outputs the
  mean of the action in normalised units ([-1, 1] spans the action space).
* The action distribution is a diagonal Gaussian around that mean with a learned,
  state-independent ``log_std`` (n_act,) in the same normalised units; with
  ``noise_period_power`` p > 0 each step's std is ``exp(log_std) * (Δt / nominal) ** -p``. Why:
  a sample is held for the whole period, so its push on the plant grows with the period; p = 0.5
  gives the held noise the same variance of impulse per second at every period. The env gets
  ``actor.to_action(sample)`` (clipped into the bounds); the buffer keeps the unclipped sample,
  whose log-probability is what the ratio needs (as SB3's PPO does).
* The **critic** is a separate recurrent model of the same kind (n_obs -> 1), on the same
  normalised observations and model time. Why separate rather than a value head on the actor's
  core: (1) the actor must stay a self-contained RecurrentPolicy that exports and runs without
  the critic, and an NCP actor has no "core features" to hang a head on (its outputs *are* its
  motor neurons); (2) value-loss gradients then never disturb the actor, which matters most when
  the actor starts from a behaviour-cloned policy (``--init-from``); (3) it is sb3-contrib's
  default (separate actor and critic LSTMs). It doubles the recurrent compute of a step, which
  the batched rollout and the sequence update keep cheap.
* A **privileged critic** (``critic_normalizer`` given; PPO's ``critic_input="full"``) reads the
  env's full observation instead, normalised by its own running statistics, with the same model
  time: the asymmetric actor-critic of Pinto et al. (2018). The critic exists in training only,
  so it may see what the deployed actor cannot (a positions-only actor's velocities); its values
  then need not be inferred from a history, and the advantages are less noisy.

With ``aux_state_coef`` > 0 the actor also carries a **state head** (:meth:`ActorCritic.attach_state_head`):
a linear map from the actor model's features (``RecurrentModel.forward_features``: the state of
an unwired CfC, LSTM or GRU, every neuron of a wired one) to the env's full observation,
standardised. It exists in training only; the policy directory never holds it.

Observations arrive as SB3's VecEnv delivers them: (..., n_obs + 1) with Δt / nominal_dt as the
last channel (``dt_in_obs=True`` tasks), or (..., n_obs) with ``dt_channel=False`` (the nominal
period every step). The Δt channel never enters the observation normaliser.
"""

from __future__ import annotations

import math
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from cfc_control.models.base import RecurrentModel, States, from_states
from cfc_control.models.registry import make
from cfc_control.policies import ObsNormalizer, RecurrentPolicy, state_to_numpy, state_to_torch
from cfc_control.policies.time_input import without_dt_channel

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class SequenceEvaluation(NamedTuple):
    """What the update needs of the actor and critic on a minibatch of sequences: ``values``
    (B, L), ``log_prob`` (B, L) of the given actions, ``entropy`` (scalar) and the actor's
    ``mean`` action (B, L, A), normalised; with a state head, its ``state_estimate`` (B, L,
    n_full) of the standardised full observation (else None)."""

    values: Tensor
    log_prob: Tensor
    entropy: Tensor
    mean: Tensor
    state_estimate: Optional[Tensor] = None


def critic_kwargs(actor: RecurrentPolicy) -> Dict[str, Any]:
    """Keyword arguments (for :func:`cfc_control.models.make` with the actor's model name) that
    give a critic the actor's kind, size and, for an unwired CfC, its cell settings (mode,
    backbone, activation, mixed memory)."""
    model = actor.model
    if actor.model_name == "mlp":
        return {"hidden": list(getattr(model, "hidden", [64, 64])), "activation": getattr(model, "activation", "tanh")}
    kw: Dict[str, Any] = {"units": int(model.state_size)} if model.state_size > 0 else {}
    config = getattr(model, "config", None)
    if isinstance(config, dict) and getattr(model, "wiring", "none") is None:  # an unwired CfC
        kw.update({k: config[k] for k in _CFC_CELL_SETTINGS if k in config})
    return kw


_CFC_CELL_SETTINGS = ("mode", "mixed_memory", "activation", "backbone_units", "backbone_layers", "backbone_dropout")


def shrink_output_layer(model: RecurrentModel, scale: float) -> bool:
    """Multiply the weights of ``model``'s output projection (its last ``nn.Linear`` giving
    ``output_size`` features) by ``scale`` and zero its bias, so that a fresh actor's mean action
    starts near 0 for every input and exploration is set by ``log_std`` alone (Andrychowicz et al.
    2021, "What matters in on-policy RL", found this among the choices that matter most).
    Returns False when the model has no such layer (a wired NCP outputs its motor neurons)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.out_features == model.output_size:
            last = module
    if last is None:
        return False
    with torch.no_grad():
        last.weight.mul_(float(scale))
        if last.bias is not None:
            last.bias.zero_()
    return True


def zero_time_gate(model: RecurrentModel) -> bool:
    """Zero the weights and bias of the time head t_a of ``model``'s unwired CfC cell, so that
    its gate sigmoid(t_a Δt + t_b) starts independent of Δt (t_b, the gate's offset, is kept).
    Returns False when the model has no such cell (wired CfC, LTC, LSTM, MLP, pure mode).

    With the reference initialisation a plain CfC's new state is a Δt-dependent mix of two
    unrelated candidates, so its state carries the history of past periods (a PPO-trained
    pendulum policy's action moves more when the period two steps back is changed than when the
    last one is); started at zero, t_a grows only where the loss asks for a time response. On
    InvertedPendulum-Pos-Irregular that removes the history dependence but not the falls after
    runs of long periods (studies/ppo-cfc-long-periods.md), so it is not the default.
    """
    cell = getattr(model, "rnn_cell", None)
    if getattr(model, "wiring", None) is not None or getattr(cell, "mode", "pure") == "pure":
        return False
    if not all(hasattr(cell, k) for k in ("in_proj", "rec_proj", "heads", "hidden_size")):
        return False
    h = cell.hidden_size
    with torch.no_grad():
        if cell.heads is not None:
            cell.heads.weight[2 * h:3 * h].zero_()
            cell.heads.bias[2 * h:3 * h].zero_()
        else:
            cell.in_proj.weight[2 * h:3 * h].zero_()
            cell.in_proj.bias[2 * h:3 * h].zero_()
            cell.rec_proj.weight[2 * h:3 * h].zero_()
    return True


class ActorCritic(nn.Module):
    """Recurrent actor (a :class:`RecurrentPolicy`), recurrent critic, state-independent log-std.

    Args:
        actor: the policy being trained (saved as the policy directory).
        critic: a :class:`RecurrentModel` from ``actor.n_obs`` inputs (``critic_normalizer.size``
            with a privileged critic) to 1 output.
        log_std_init: initial log standard deviation, normalised action units.
        dt_channel: observations carry Δt / nominal_dt as their last channel.
        critic_normalizer: the privileged critic's normalisation of the full observation (None:
            the critic reads the actor's observations).
    """

    def __init__(self, actor: RecurrentPolicy, critic: RecurrentModel, log_std_init: float = -0.5,
                 dt_channel: bool = True, critic_normalizer: Optional[ObsNormalizer] = None,
                 noise_period_power: float = 0.0) -> None:
        super().__init__()
        if not isinstance(actor, RecurrentPolicy):
            raise TypeError(f"actor must be a RecurrentPolicy, got {type(actor).__name__}")
        if not isinstance(critic, RecurrentModel):
            raise TypeError(f"critic must be a RecurrentModel, got {type(critic).__name__}")
        n_in = actor.n_obs if critic_normalizer is None else critic_normalizer.size
        if critic.input_size != n_in or critic.output_size != 1:
            raise ValueError(f"the critic must map {n_in} inputs to 1 value, it maps "
                             f"{critic.input_size} to {critic.output_size}")
        for name, model in (("actor", actor.model), ("critic", critic)):
            if not (model.batch_first and model.return_sequences):
                raise ValueError(f"the {name} model must be batch_first with return_sequences=True")
        self.actor = actor
        self.critic = critic
        self.log_std = nn.Parameter(torch.full((actor.n_act,), float(log_std_init)))
        self.dt_channel = bool(dt_channel)
        self.noise_period_power = float(noise_period_power)
        self.state_head: Optional[nn.Linear] = None  # attach_state_head
        self.critic_normalizer: Optional[ObsNormalizer] = None
        if critic_normalizer is not None:
            self.register_buffer("critic_mean", torch.zeros(critic_normalizer.size), persistent=False)
            self.register_buffer("critic_std", torch.ones(critic_normalizer.size), persistent=False)
            self.set_critic_normalizer(critic_normalizer)
        self.optimizer: Optional[torch.optim.Optimizer] = None  # set by the algorithm

    def attach_state_head(self, n_full: int) -> None:
        """Give the actor a fresh linear head from its model's features to ``n_full`` channels
        (the auxiliary state estimate); call before the optimiser is built."""
        if isinstance(n_full, bool) or int(n_full) <= 0:
            raise ValueError(f"the state head needs a positive width, got {n_full!r}")
        p = self.log_std
        self.state_head = nn.Linear(self.actor.model.feature_size(), int(n_full)).to(p.device, p.dtype)

    @property
    def privileged(self) -> bool:
        """Whether the critic reads the full observation (see the module docstring)."""
        return self.critic_normalizer is not None

    def set_critic_normalizer(self, normalizer: ObsNormalizer) -> None:
        """The privileged critic's normalisation of the full observation (its running statistics)."""
        if self.critic_normalizer is not None and normalizer.size != self.critic_normalizer.size:
            raise ValueError(f"the critic reads {self.critic_normalizer.size} features, got a normaliser of "
                             f"{normalizer.size}")
        self.critic_normalizer = normalizer
        self.critic_mean.copy_(torch.as_tensor(normalizer.mean))
        self.critic_std.copy_(torch.as_tensor(normalizer.std + normalizer.eps))

    @classmethod
    def build(cls, actor: RecurrentPolicy, critic: str = "same", log_std_init: float = -0.5,
              dt_channel: bool = True, critic_kw: Optional[Dict[str, Any]] = None,
              critic_normalizer: Optional[ObsNormalizer] = None, noise_period_power: float = 0.0) -> "ActorCritic":
        """A fresh critic of kind ``critic`` (a :func:`cfc_control.models.make` name; "same":
        the actor's kind and size) around ``actor``; privileged with a ``critic_normalizer``."""
        name = actor.model_name if critic == "same" else critic
        if name is None:
            raise ValueError("the actor records no model name; pass the critic's model name explicitly")
        kw = dict(critic_kw) if critic_kw is not None else (critic_kwargs(actor) if name == actor.model_name else {})
        n_in = actor.n_obs if critic_normalizer is None else critic_normalizer.size
        return cls(actor, make(name, n_in, 1, **kw), log_std_init, dt_channel, critic_normalizer, noise_period_power)

    # -- sizes, states, modes -----------------------------------------------------------------
    @property
    def n_obs(self) -> int:
        return self.actor.n_obs

    @property
    def n_act(self) -> int:
        return self.actor.n_act

    @property
    def obs_width(self) -> int:
        """Width of the observations this takes (n_obs, + 1 with the Δt channel)."""
        return self.n_obs + int(self.dt_channel)

    def initial_states(self, batch_size: int) -> Tuple[States, States]:
        """Zero (actor, critic) state tuples for ``batch_size`` envs."""
        p = self.log_std
        return (self.actor.model.initial_states(batch_size, p.device, p.dtype),
                self.critic.initial_states(batch_size, p.device, p.dtype))

    def set_training_mode(self, mode: bool) -> None:
        """SB3's name for ``train(mode)``."""
        self.train(mode)

    # -- inputs ---------------------------------------------------------------------------------
    def features(self, obs: Tensor) -> Tuple[Tensor, Tensor]:
        """Raw observations (..., obs_width) -> normalised observations (..., n_obs) and the model
        time (...,) (Δt / nominal after clamping Δt to the actor's accepted range)."""
        if obs.shape[-1] != self.obs_width:
            extra = " + the Δt channel" if self.dt_channel else ""
            raise ValueError(f"observations must have {self.n_obs}{extra} = {self.obs_width} features, "
                             f"got shape {tuple(obs.shape)}")
        time = self.actor.time_input
        if self.dt_channel:
            obs, dt = time.split_dt_channel_torch(obs)
        else:
            dt = time.nominal_torch(obs.shape[:-1], obs)
        return self.actor.normalize_obs(obs), time.model_time(dt)

    def critic_inputs(self, x: Tensor, full: Optional[Tensor]) -> Tensor:
        """What the critic reads: the actor's normalised observations ``x`` (..., n_obs), or for a
        privileged critic the full observations ``full`` (..., n_full) normalised by its own."""
        if not self.privileged:
            return x
        if full is None:
            raise ValueError("the privileged critic needs the full observations (critic_input='full')")
        clip = self.critic_normalizer.clip
        return ((full.to(self.critic_mean.dtype) - self.critic_mean) / self.critic_std).clamp(-clip, clip)

    def split_observations(self, obs: np.ndarray) -> np.ndarray:
        """The part of raw observations (..., obs_width) the normaliser sees (the Δt channel removed)."""
        return without_dt_channel(obs) if self.dt_channel else obs

    def update_normalizers(self, obs: np.ndarray, full: Optional[np.ndarray] = None) -> None:
        """Merge raw observations (..., obs_width) into the actor's normaliser (the Δt channel
        left out) and, for a privileged critic, full observations (..., n_full) into its own."""
        normalizer = self.actor.obs_normalizer
        normalizer.update(self.split_observations(np.asarray(obs).reshape(-1, self.obs_width)))
        self.actor.set_normalizer(normalizer)
        if self.critic_normalizer is not None and full is not None:
            self.critic_normalizer.update(np.asarray(full).reshape(-1, self.critic_normalizer.size))
            self.set_critic_normalizer(self.critic_normalizer)

    # -- the Gaussian ------------------------------------------------------------------------
    def log_noise_scale(self, obs: Tensor) -> Optional[Tensor]:
        """log of each step's factor on the std, ``-p * log(Δt / nominal)`` (...,) for raw
        observations (..., obs_width), Δt clamped to the actor's accepted range; None when the
        std is the same at every period (p = 0, or no Δt channel)."""
        if self.noise_period_power == 0.0 or not self.dt_channel:
            return None
        time = self.actor.time_input
        ratio = obs[..., -1].clamp(time.dt_min / time.nominal_dt, time.dt_max / time.nominal_dt)
        return -self.noise_period_power * torch.log(ratio)

    def log_prob(self, actions: Tensor, mean: Tensor, log_scale: Optional[Tensor] = None) -> Tensor:
        """log N(actions; mean, std) summed over the action channels: (..., A) -> (...), with
        std = exp(log_std + log_scale) (``log_scale`` (...,) from :meth:`log_noise_scale`)."""
        log_std = self.log_std if log_scale is None else self.log_std + log_scale.unsqueeze(-1)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)

    def entropy(self, log_scale: Optional[Tensor] = None) -> Tensor:
        """The entropy of the action distribution, a scalar (averaged over the steps of
        ``log_scale`` when the std depends on the period)."""
        base = (0.5 + _HALF_LOG_2PI + self.log_std).sum()
        return base if log_scale is None else base + self.n_act * log_scale.mean()

    def sample(self, mean: Tensor, log_scale: Optional[Tensor] = None) -> Tensor:
        """An action drawn around ``mean`` (..., A)."""
        log_std = self.log_std if log_scale is None else self.log_std + log_scale.unsqueeze(-1)
        return mean + torch.randn_like(mean) * torch.exp(log_std)

    # -- rollout: one step of every env ------------------------------------------------------
    @torch.inference_mode()  # ~15% cheaper than no_grad per call; rollout tensors never reach autograd
    def act(self, obs: Tensor, actor_state: States, critic_state: States, episode_starts: Tensor,
            deterministic: bool = False, full: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, States, States]:
        """One step: ``obs`` (n, obs_width) raw, ``episode_starts`` (n,) bool (those rows' states
        reset first), ``full`` (n, n_full) the privileged critic's full observations. Returns the
        normalised action (n, A) (a sample unless ``deterministic``), the value (n,), the
        action's log-probability (n,) and the new actor and critic states."""
        x, t = self.features(obs)
        mean, actor_state = self.actor.model.step_states(x, actor_state, t, episode_starts)
        value, critic_state = self.critic.step_states(self.critic_inputs(x, full), critic_state, t, episode_starts)
        log_scale = self.log_noise_scale(obs)
        action = mean if deterministic else self.sample(mean, log_scale)
        return action, value.squeeze(-1), self.log_prob(action, mean, log_scale), actor_state, critic_state

    @torch.inference_mode()
    def value_step(self, obs: Tensor, critic_state: States, full: Optional[Tensor] = None,
                   episode_starts: Optional[Tensor] = None) -> Tensor:
        """The critic's value (n,) of ``obs`` (n, obs_width) (and ``full``, for a privileged
        critic) continuing from ``critic_state`` (bootstrapping a truncated episode from its final
        observation, or a rollout from its last)."""
        x, t = self.features(obs)
        value, _ = self.critic.step_states(self.critic_inputs(x, full), critic_state, t, episode_starts)
        return value.squeeze(-1)

    # -- update: whole padded sequences ------------------------------------------------------
    def evaluate(self, obs: Tensor, actions: Tensor, episode_starts: Tensor, actor_state: States,
                 critic_state: States, full: Optional[Tensor] = None) -> SequenceEvaluation:
        """Sequences: ``obs`` (B, L, obs_width), ``actions`` (B, L, A) normalised, ``episode_starts``
        (B, L) bool, states (B, H) at each sequence's first step as stored at rollout time;
        ``full`` (B, L, n_full) the privileged critic's full observations."""
        x, t = self.features(obs)
        model = self.actor.model
        estimate = None
        if self.state_head is None:
            mean, _ = model.run_states(x, actor_state, t, episode_starts)
        else:
            features, _ = model.forward_features(x, from_states(actor_state), t, episode_starts)
            mean, estimate = model.output_from_features(features), self.state_head(features)
        values, _ = self.critic.run_states(self.critic_inputs(x, full), critic_state, t, episode_starts)
        log_scale = self.log_noise_scale(obs)
        return SequenceEvaluation(values.squeeze(-1), self.log_prob(actions, mean, log_scale), self.entropy(log_scale),
                                  mean, estimate)

    # -- stable-baselines3's recurrent contract ------------------------------------------------
    def predict(self, observation: np.ndarray, state: Optional[Tuple[np.ndarray, ...]] = None,
                episode_start: Optional[np.ndarray] = None,
                deterministic: bool = False) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
        """``predict(observation, state, episode_start, deterministic) -> (action, state)``.

        ``observation`` (n_envs, obs_width) or one (obs_width,); ``state`` the actor's state as a
        tuple of (n_envs, H) arrays, None at the start; rows where ``episode_start`` is true are
        reset. The action is in the env's units, inside its bounds; sampled from the Gaussian
        unless ``deterministic``."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        if obs.ndim != 2:
            raise ValueError(f"observation must be (n_envs, {self.obs_width}) or ({self.obs_width},), "
                             f"got shape {np.shape(observation)}")
        n = obs.shape[0]
        device = self.log_std.device
        hx = None if state is None else state_to_torch(state, device)
        starts = None
        if episode_start is not None:
            starts = torch.as_tensor(np.asarray(episode_start).reshape(n), device=device).bool()
        with torch.no_grad():
            x, t = self.features(torch.as_tensor(obs, device=device))
            mean, hx = self.actor.model.step_states(x, hx, t, starts)
            y = mean if deterministic else self.sample(mean, self.log_noise_scale(torch.as_tensor(obs, device=device)))
            action = self.actor.to_action(y).cpu().numpy()
        return (action[0] if single else action), state_to_numpy(hx)
