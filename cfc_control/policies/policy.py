"""A recurrent policy: observation normalisation, a recurrent model with a time input, and the
mapping of its output to the action space. The one object that training writes and every
runtime reads (see :mod:`cfc_control.policies.directory` for the files).

Conventions (recorded in config.json, applied identically in training, the runner and exports):

* observations are normalised with the stored mean/std and clipped;
* the model's time input is Δt in units of the task's nominal period, Δt / nominal_dt, after
  clamping Δt (seconds) to the declared range [dt_min, dt_max]; about 1 at the nominal rate, which
  keeps the CfC gate sigmoid(t_a Δt + t_b) in the same regime for every task;
* the model outputs a *normalised* action y in [-1, 1] per channel (unbounded while training);
  the action is center + half_range * clip(y, -1, 1), i.e. always inside the action space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from cfc_control.models.base import RecurrentModel, States, as_states, from_states, map_state
from cfc_control.policies.normalization import ObsNormalizer
from cfc_control.policies.periods import TrainedPeriods, task_periods
from cfc_control.policies.time_input import TimeInput

# Largest magnitude an action bound may have: far beyond any actuator, and far enough from
# float32's limit (3.4e38) that the runtime's float32 kernels cannot overflow computing with it.
ACTION_BOUND_LIMIT = 1e30


@dataclass
class ActionMapping:
    """Box action bounds; normalised y in [-1, 1] maps to low..high."""

    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        self.low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if self.low.shape != self.high.shape or self.low.size == 0:
            raise ValueError(f"action bounds low and high must have one equal, non-empty shape, got "
                             f"{self.low.shape} and {self.high.shape}")
        bounded = np.all(np.abs(self.low) <= ACTION_BOUND_LIMIT) and np.all(np.abs(self.high) <= ACTION_BOUND_LIMIT)
        if not (bounded and np.all(self.high > self.low)):  # also false for NaN and inf
            raise ValueError(f"action bounds must be finite, within +-{ACTION_BOUND_LIMIT:g}, with high > low, "
                             f"got low={self.low.tolist()[:8]}, high={self.high.tolist()[:8]}")

    @property
    def size(self) -> int:
        return int(self.low.shape[0])

    @property
    def center(self) -> np.ndarray:
        return (self.high + self.low) / 2.0

    @property
    def half_range(self) -> np.ndarray:
        return (self.high - self.low) / 2.0

    def normalize(self, action: np.ndarray) -> np.ndarray:
        """Env action -> normalised y (the target for imitation)."""
        return (np.asarray(action, dtype=np.float64) - self.center) / self.half_range

    def to_config(self) -> Dict[str, Any]:
        return {"low": self.low.tolist(), "high": self.high.tolist(), "mapping": "center + half_range * clip(y, -1, 1)"}

    @classmethod
    def from_config(cls, cfg: Dict[str, Any]) -> "ActionMapping":
        return cls(np.asarray(cfg["low"]), np.asarray(cfg["high"]))


class RecurrentPolicy(nn.Module):
    """Normalisation + recurrent model + action mapping.

    ``model`` maps normalised observations (n_obs) and the model time Δt / nominal_dt to the
    normalised action (n_act). The torch methods take raw observations and Δt in seconds.
    """

    def __init__(
        self,
        model: RecurrentModel,
        obs_normalizer: ObsNormalizer,
        action_mapping: ActionMapping,
        time_input: TimeInput,
        task: Optional[str] = None,
        model_name: Optional[str] = None,
    ) -> None:
        super().__init__()
        if model.input_size != obs_normalizer.size:
            raise ValueError(f"model takes {model.input_size} inputs, normalisation has {obs_normalizer.size}")
        if model.output_size != action_mapping.size:
            raise ValueError(f"model gives {model.output_size} outputs, the action space has {action_mapping.size}")
        self.model = model
        self.time_input = time_input
        self.task = task
        self.model_name = model_name
        self.register_buffer("obs_mean", torch.zeros(obs_normalizer.size), persistent=False)
        self.register_buffer("obs_std", torch.ones(obs_normalizer.size), persistent=False)
        self.register_buffer("act_center", torch.zeros(action_mapping.size), persistent=False)
        self.register_buffer("act_half", torch.ones(action_mapping.size), persistent=False)
        self.set_normalizer(obs_normalizer)
        self.action_mapping = action_mapping
        self.act_center.copy_(torch.as_tensor(action_mapping.center))
        self.act_half.copy_(torch.as_tensor(action_mapping.half_range))

    # -- spaces and settings ------------------------------------------------------------------
    @property
    def n_obs(self) -> int:
        return self.model.input_size

    @property
    def n_act(self) -> int:
        return self.model.output_size

    def set_normalizer(self, normalizer: ObsNormalizer) -> None:
        if normalizer.size != self.model.input_size:
            raise ValueError(f"normalisation has {normalizer.size} features, the model takes {self.model.input_size}")
        self.obs_normalizer = normalizer
        self.obs_mean.copy_(torch.as_tensor(normalizer.mean))
        self.obs_std.copy_(torch.as_tensor(normalizer.std + normalizer.eps))
        self.obs_clip = float(normalizer.clip)

    def trained_periods(self) -> Optional[TrainedPeriods]:
        """The periods this policy was trained under: recorded in its time input, else those of
        the registered task it names, else None."""
        return self.time_input.trained or task_periods(self.task, self.time_input.nominal_dt)

    def initial_state(self, batch_size: int) -> States:
        """The initial state tuple ((h,) or (h, c), (batch_size, H) each)."""
        return self.model.initial_states(batch_size, self.obs_mean.device, self.obs_mean.dtype)

    # -- torch path (training, exports) -------------------------------------------------------
    def normalize_obs(self, obs: Tensor) -> Tensor:
        return ((obs - self.obs_mean) / self.obs_std).clamp(-self.obs_clip, self.obs_clip)

    def model_time(self, dt_seconds: Tensor) -> Tensor:
        """Δt (seconds) -> the model time (:meth:`TimeInput.model_time`)."""
        return self.time_input.model_time(dt_seconds)

    def forward(
        self, obs: Tensor, dt: Tensor, hx: Optional[States] = None, episode_starts: Optional[Tensor] = None
    ) -> Tuple[Tensor, States]:
        """Sequences: ``obs`` (B, T, n_obs) raw, ``dt`` (B, T) seconds, ``episode_starts`` (B, T)
        bool, ``hx`` the state tuple (None: the initial state). Returns the normalised action
        (B, T, n_act), unclipped (for losses), and the state tuple."""
        return self.model.run_states(self.normalize_obs(obs), hx, self.model_time(dt), episode_starts)

    def features(
        self, obs: Tensor, dt: Tensor, hx: Optional[States] = None, episode_starts: Optional[Tensor] = None
    ) -> Tuple[Tensor, States]:
        """:meth:`forward` up to the model's features (B, T, F) (``self.model.output_from_features
        (features)`` is the forward's output); training's auxiliary losses read them."""
        features, state = self.model.forward_features(self.normalize_obs(obs), None if hx is None else from_states(hx),
                                                      self.model_time(dt), episode_starts)
        return features, as_states(state)

    def step(
        self, obs: Tensor, dt: Tensor, hx: Optional[States] = None, episode_start: Optional[Tensor] = None
    ) -> Tuple[Tensor, States]:
        """One step: ``obs`` (B, n_obs), ``dt`` (B,) seconds, ``hx`` the state tuple (None: the
        initial state). Returns the normalised action (B, n_act) and the state tuple."""
        return self.model.step_states(self.normalize_obs(obs), hx, self.model_time(dt), episode_start)

    def to_action(self, y: Tensor) -> Tensor:
        """Normalised output -> env action, inside the bounds."""
        return self.act_center + self.act_half * y.clamp(-1.0, 1.0)

    # -- numpy path: stable-baselines3's recurrent contract --------------------------------
    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Optional[Tuple[np.ndarray, ...]] = None,
        episode_start: Optional[np.ndarray] = None,
        deterministic: bool = True,
    ) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
        """SB3's ``predict(observation, state, episode_start, deterministic) -> (action, state)``,
        so ``evaluate_policy`` and other rollout code work unchanged.

        ``observation`` is (n_envs, n_obs + 1) with Δt / nominal_dt as the last channel (the
        task's ``dt_in_obs=True``; a VecEnv can carry nothing else), or (n_envs, n_obs) for a
        fixed-period env, in which case Δt is the nominal period. A single observation without
        the batch axis is accepted too. ``state`` is a tuple of (n_envs, H) arrays (None at the
        start); rows where ``episode_start`` is true are reset. The policy is deterministic.
        """
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] not in (self.n_obs, self.n_obs + 1):
            raise ValueError(
                f"observation must have {self.n_obs} features (+1 for the Δt channel), got shape {observation.shape}"
            )
        n = obs.shape[0]
        if obs.shape[1] == self.n_obs + 1:
            obs, dt = self.time_input.split_dt_channel(obs)
        else:
            dt = np.full(n, self.time_input.nominal_dt)
        device = self.obs_mean.device
        hx = None if state is None else state_to_torch(state, device)
        starts = None if episode_start is None else torch.as_tensor(np.asarray(episode_start).reshape(n), device=device).bool()
        obs_t, dt_t = torch.as_tensor(obs, device=device), torch.as_tensor(dt, dtype=torch.float32, device=device)
        y, hx = self.step(obs_t, dt_t, hx, starts)
        action = self.to_action(y).cpu().numpy()
        return (action[0] if single else action), state_to_numpy(hx)

    # -- files ---------------------------------------------------------------------------------
    def policy_config(self) -> Dict[str, Any]:
        return {
            "task": self.task,
            "model_name": self.model_name,
            "observation": {"size": self.n_obs, "normalization": self.obs_normalizer.to_config()},
            "action": self.action_mapping.to_config(),
            "time": self.time_input.to_config(),
        }


def state_to_torch(state: Any, device: Any = None) -> States:
    """SB3's numpy state (a tuple or list of (n_envs, H) arrays; one bare array is taken as a
    tuple of one) as the state tuple, float32."""
    arrays = tuple(state) if isinstance(state, (tuple, list)) else (state,)  # a user's numpy input
    return tuple(torch.as_tensor(np.asarray(s), dtype=torch.float32, device=device) for s in arrays)


def state_to_numpy(state: States) -> Tuple[np.ndarray, ...]:
    """The state tuple as numpy arrays (SB3's ``predict`` state)."""
    return tuple(s.detach().cpu().numpy() for s in state)


__all__ = ["RecurrentPolicy", "TimeInput", "ActionMapping", "state_to_numpy", "state_to_torch", "map_state"]
