"""The rollout's policy step: every env's action, value and log-probability, and the recurrent
states around it, on torch (:class:`TorchRolloutStep`, the default) or on the runtime's numpy
kernels (:class:`NumpyRolloutStep`, ``PPOConfig.rollout_kernel = "numpy"``).

Why a numpy path: a rollout steps a few envs at a time, and at that size each torch operation's
fixed cost (a few microseconds, ~50 of them for actor and critic) is most of the step. The
runtime's numpy kernels, the ones a deployed policy runs, are built from the weights at the start
of each rollout and take about a quarter of the time (``python -m cfc_control.bench rl --rows
cfc,cfc-numpy``). They compute what :meth:`ActorCritic.act` computes up to float32 rounding (the
gate's sigmoid is formed through tanh, the Δt conversion in float64), so the update's first
probability ratios are 1 to about 1e-6 rather than exactly; the sampled noise comes from torch's
generator in both paths.

Both follow one protocol, so that the rollout loop is one loop::

    step.start(policy, (actor_state, critic_state))   # each rollout, after the update
    out = step.act(obs, episode_starts, full)         # a StepOutput of numpy arrays
    step.before                                       # the states before that step, for the buffer
    step.critic_row(i)                                # env i's critic state after it (bootstrapping)
    step.advance()                                    # the step's new states become current
    step.states()                                     # the current states as torch tuples
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch

from cfc_control.models.base import States
from cfc_control.runtime.compiled import Folds, numpy_program
from cfc_control.runtime.kernel_contract import Kernel, as_numpy
from cfc_control.training.ppo.actor_critic import ActorCritic

ROLLOUT_KERNELS = ("torch", "numpy")
_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


class StepOutput(NamedTuple):
    """One rollout step of n envs: the sampled ``actions`` (n, A) in normalised units (what the
    buffer keeps), ``env_actions`` (n, A) mapped into the env's bounds, ``values`` (n,) and the
    actions' ``log_probs`` (n,); float32."""

    actions: np.ndarray
    env_actions: np.ndarray
    values: np.ndarray
    log_probs: np.ndarray


class TorchRolloutStep:
    """:meth:`ActorCritic.act` on torch tensors: the states stay torch tuples."""

    def start(self, policy: ActorCritic, states: Tuple[States, States]) -> None:
        self.policy = policy
        self.device = policy.log_std.device
        self.current = states
        self.next: Optional[Tuple[States, States]] = None

    def act(self, obs: np.ndarray, episode_starts: np.ndarray, full: Optional[np.ndarray]) -> StepOutput:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        starts_t = torch.as_tensor(episode_starts, dtype=torch.bool, device=self.device)
        full_t = None if full is None else torch.as_tensor(full, dtype=torch.float32, device=self.device)
        actions, values, log_probs, actor, critic = self.policy.act(obs_t, *self.current, starts_t, full=full_t)
        self.next = (actor, critic)
        env_actions = self.policy.actor.to_action(actions)
        return StepOutput(*(t.cpu().numpy() for t in (actions, env_actions, values, log_probs)))

    @property
    def before(self) -> Dict[str, States]:
        return {"actor": self.current[0], "critic": self.current[1]}

    def critic_row(self, row: int) -> States:
        return tuple(s[row:row + 1] for s in self.next[1])

    def advance(self) -> None:
        self.current, self.next = self.next, None

    def states(self) -> Tuple[States, States]:
        return self.current


class NumpyRolloutStep:
    """:meth:`ActorCritic.act` on the runtime's numpy kernels (float32), rebuilt from the policy's
    weights and normalisers at each :meth:`start`. Raises ValueError for a model no numpy kernel
    runs."""

    def __init__(self, policy: ActorCritic, n_envs: int) -> None:
        self.n_envs = int(n_envs)
        self.start(policy, policy.initial_states(self.n_envs))  # fails early for an unsupported model

    def start(self, policy: ActorCritic, states: Tuple[States, States]) -> None:
        actor = policy.actor
        self.policy = policy
        self.device = policy.log_std.device
        self.actor = self._kernel(actor.model, Folds.unbounded(as_numpy(actor.obs_mean), as_numpy(actor.obs_std),
                                                               actor.obs_clip, actor.n_act), "actor")
        if policy.privileged:
            folds = Folds.unbounded(as_numpy(policy.critic_mean), as_numpy(policy.critic_std),
                                    policy.critic_normalizer.clip, 1)
        else:
            folds = Folds.unbounded(as_numpy(actor.obs_mean), as_numpy(actor.obs_std), actor.obs_clip, 1)
        self.critic = self._kernel(policy.critic, folds, "critic")
        for kernel, state in zip((self.actor, self.critic), states):
            kernel.set_state([s.detach().cpu().numpy() for s in state])
        self.log_std = as_numpy(policy.log_std).astype(np.float32)
        self.act_center = actor.act_center.detach().cpu().numpy().copy()
        self.act_half = actor.act_half.detach().cpu().numpy().copy()
        self.time = actor.time_input
        self.n_obs = actor.n_obs
        self._before: Optional[Dict[str, States]] = None
        self._dt = np.empty(self.n_envs, np.float64)
        self._t = np.ones((self.n_envs, 1), np.float64)

    def _kernel(self, model: torch.nn.Module, folds: Folds, name: str) -> Kernel:
        program = numpy_program(model, folds)
        if program is None:
            raise ValueError(f"rollout_kernel='numpy': no numpy kernel runs the {name}'s model "
                             f"{type(model).__name__}; use rollout_kernel='torch'")
        return program(self.n_envs)

    def act(self, obs: np.ndarray, episode_starts: np.ndarray, full: Optional[np.ndarray]) -> StepOutput:
        obs = np.asarray(obs, dtype=np.float32)
        starts = np.asarray(episode_starts, dtype=bool).reshape(self.n_envs)
        self._before = None
        if starts.any():  # the buffer keeps the states from before the reset, as the torch step's
            self._before = {"actor": _torch(self.actor.state, copy=True), "critic": _torch(self.critic.state, copy=True)}
            self.actor.reset(starts)
            self.critic.reset(starts)
        policy = self.policy
        log_std = self.log_std
        if policy.dt_channel:
            ratio = obs[:, -1]
            self._dt[:] = ratio
            self._dt *= self.time.nominal_dt
            self.time.model_time_array(self._dt, self._t[:, 0])
            log_scale = self._log_noise_scale(ratio)
            if log_scale is not None:
                log_std = log_std + log_scale[:, None]
        mean = self._step(self.actor, obs[:, :self.n_obs])
        value = self._step(self.critic, obs[:, :self.n_obs] if full is None else np.asarray(full, np.float32))
        noise = torch.randn(mean.shape, device=self.device).cpu().numpy()  # torch's generator, as act's
        actions = mean + noise * np.exp(log_std)
        z = (actions - mean) * np.exp(-log_std)
        log_probs = (-0.5 * z * z - log_std - _HALF_LOG_2PI).sum(-1, dtype=np.float32)
        env_actions = self.act_center + self.act_half * np.clip(actions, -1.0, 1.0)  # as RecurrentPolicy.to_action
        return StepOutput(actions.astype(np.float32), env_actions.astype(np.float32),
                          value.reshape(self.n_envs).copy(), log_probs.astype(np.float32))

    def _step(self, kernel: Kernel, inputs: np.ndarray) -> np.ndarray:
        """A kernel's step on (n, k) inputs -> (n, out) (a one-row kernel takes and gives rows flat)."""
        if self.n_envs == 1:
            return kernel.step(inputs[0], self._t[0]).reshape(1, -1)
        return kernel.step(inputs, self._t)

    def _log_noise_scale(self, ratio: np.ndarray) -> Optional[np.ndarray]:
        """:meth:`ActorCritic.log_noise_scale` of the Δt channel (n,)."""
        p = self.policy.noise_period_power
        if p == 0.0:
            return None
        lo, hi = self.time.dt_min / self.time.nominal_dt, self.time.dt_max / self.time.nominal_dt
        return (-p * np.log(np.clip(ratio, lo, hi))).astype(np.float32)

    @property
    def before(self) -> Dict[str, States]:
        if self._before is not None:
            return self._before
        return {"actor": _torch(self.actor.state), "critic": _torch(self.critic.state)}

    def critic_row(self, row: int) -> States:
        return tuple(torch.from_numpy(s[row:row + 1].copy()).to(self.device) for s in self.critic.pending)

    def advance(self) -> None:
        self.actor.commit()
        self.critic.commit()

    def states(self) -> Tuple[States, States]:
        return (tuple(t.clone().to(self.device) for t in _torch(self.actor.state)),
                tuple(t.clone().to(self.device) for t in _torch(self.critic.state)))


def _torch(arrays: Tuple[np.ndarray, ...], copy: bool = False) -> States:
    """A kernel's state arrays as torch tensors: views (the buffer copies them), or copies."""
    return tuple(torch.from_numpy(a.copy() if copy else a) for a in arrays)


def make_rollout_step(kind: str, policy: ActorCritic, n_envs: int) -> Union[TorchRolloutStep, NumpyRolloutStep]:
    """The rollout step for ``PPOConfig.rollout_kernel``."""
    if kind == "numpy":
        return NumpyRolloutStep(policy, n_envs)
    if kind == "torch":
        return TorchRolloutStep()
    raise ValueError(f"rollout_kernel must be one of {ROLLOUT_KERNELS}, got {kind!r}")
