"""A recurrent rollout buffer for any state shape, served as minibatches of whole padded sequences.

Built on stable-baselines3's :class:`~stable_baselines3.common.buffers.RolloutBuffer`, which keeps
its storage layout (``(n_steps, n_envs, ...)``), its ``add`` and its GAE(λ)
``compute_returns_and_advantage``. What it adds, and why it is not sb3-contrib's
``RecurrentRolloutBuffer``: that buffer stores exactly four LSTM tensors (actor and critic h, c)
per step and its policy consumes them in that shape, so a CfC (one tensor), a mixed-memory CfC
(h, c of the CfC's width) or an MLP (an empty state) would need adapters with dummy tensors.
Here each named network ("actor", "critic") stores its state as whatever tuple of (n_envs, H_i)
tensors it is, and the sequences start from those tensors.

* **State at rollout time.** ``add`` stores each network's state *before* the step (the state the
  step consumed, ahead of any episode-start reset, which the model applies itself from the
  stored ``episode_starts``). A training sequence starts from the stored state at its first step,
  so the update recomputes exactly the values and log-probabilities the rollout saw (before the
  first gradient step the PPO ratio is 1).
* **Cutting.** Each env's rollout is cut at every episode start and, inside an episode, every
  ``seq_len`` steps (truncated backpropagation through time; the stored state carries the memory
  across the cut). So no sequence has an episode start after its first step, and a torch LSTM
  runs its fused kernel on it.
* **Padding and masking.** Sequences are right-padded to the longest in their minibatch; the
  padded steps come after the real ones (they cannot influence them) and ``mask`` removes them
  from every loss term.
* **State labels** (``state_width`` > 0): each step's full simulator observation, served as it is
  (for a privileged critic) and standardised by the rollout's own per-channel mean and standard
  deviation (floored at 0.01; the target of the actor's auxiliary state estimate, so that every
  channel weighs alike in its loss).
* **Durations** (optional, ``add(..., durations=...)``): each step's elapsed time in nominal
  periods. GAE then discounts per unit of time, not per step: a step of duration τ is discounted
  by γ^τ and its advantage's trace by (γλ)^τ, so a steady half period keeps the horizon in
  seconds that the nominal period has (all-ones durations are SB3's GAE exactly).
* **Minibatches** hold whole sequences adding up to about ``batch_size`` env steps, in a random
  order (``torch.randperm``, so a restored torch RNG replays it). Building them is index
  arithmetic over the whole rollout (:func:`cut_sequences`): no per-step Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from torch import Tensor

from cfc_control.models.base import States


@dataclass
class SequenceLayout:
    """How a rollout is cut: ``index`` (N_seq, L) flat step indices (env-major: ``env * n_steps +
    t``), -1 where padded; ``lengths`` (N_seq,) real steps per sequence."""

    index: np.ndarray
    lengths: np.ndarray

    @property
    def first(self) -> np.ndarray:
        """Flat index of each sequence's first step (N_seq,)."""
        return self.index[:, 0]


def cut_sequences(episode_starts: np.ndarray, seq_len: Optional[int] = None) -> SequenceLayout:
    """Cut a rollout with ``episode_starts`` (n_steps, n_envs) into sequences: a new one at each
    env's first step, at every episode start, and every ``seq_len`` steps within an episode
    (``None``: no limit). Returns the padded layout (see :class:`SequenceLayout`)."""
    starts = np.asarray(episode_starts)
    if starts.ndim != 2:
        raise ValueError(f"episode_starts must be (n_steps, n_envs), got shape {starts.shape}")
    if seq_len is not None and (isinstance(seq_len, bool) or int(seq_len) <= 0):
        raise ValueError(f"seq_len must be a positive int or None, got {seq_len!r}")
    n_steps, n_envs = starts.shape
    total = n_steps * n_envs
    segment_start = starts.T.astype(bool).copy()  # env-major (n_envs, n_steps)
    segment_start[:, 0] = True
    flat = segment_start.reshape(-1)
    steps = np.arange(total)
    segment_first = np.flatnonzero(flat)
    offset = steps - segment_first[np.cumsum(flat) - 1]  # position within the episode segment
    seq_start = flat if seq_len is None else (offset % int(seq_len) == 0)
    seq_id = np.cumsum(seq_start) - 1
    seq_first = np.flatnonzero(seq_start)
    lengths = np.diff(np.append(seq_first, total))
    index = np.full((len(seq_first), int(lengths.max(initial=0))), -1, dtype=np.int64)
    index[seq_id, steps - seq_first[seq_id]] = steps
    return SequenceLayout(index, lengths)


def group_sequences(lengths: np.ndarray, batch_size: int, order: np.ndarray) -> List[np.ndarray]:
    """Split the sequences ``order`` (a permutation of sequence ids) into consecutive groups of
    about ``batch_size`` steps each: round(total / batch_size) groups (at least one), a sequence
    going to the group its midpoint falls in."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    lens = np.asarray(lengths)[order]
    total = float(lens.sum())
    groups = max(1, int(round(total / batch_size)))
    middle = np.cumsum(lens) - lens / 2.0
    group = np.minimum((middle * groups / max(total, 1.0)).astype(np.int64), groups - 1)
    return [g for g in np.split(np.asarray(order), np.flatnonzero(np.diff(group)) + 1) if len(g)]


@dataclass
class SequenceBatch:
    """A minibatch of B padded sequences of length L (batch-major).

    ``observations`` (B, L, C) raw (Δt channel included), ``actions`` (B, L, A) normalised and
    unclipped, ``old_values``/``old_log_prob``/``advantages``/``returns`` (B, L),
    ``episode_starts`` (B, L) bool (true at most at step 0), ``mask`` (B, L) 1.0 for real steps,
    ``states`` each network's state at the sequences' first steps, ``sequence_ids`` (B,);
    ``teacher_actions`` (B, L, A) normalised, when the rollout was labelled by a teacher;
    ``full_observations`` (B, L, n_full) and ``state_targets`` (the same standardised), with
    state labels."""

    observations: Tensor
    actions: Tensor
    old_values: Tensor
    old_log_prob: Tensor
    advantages: Tensor
    returns: Tensor
    episode_starts: Tensor
    mask: Tensor
    states: Dict[str, States]
    sequence_ids: np.ndarray
    teacher_actions: Optional[Tensor] = None
    full_observations: Optional[Tensor] = None
    state_targets: Optional[Tensor] = None


class RecurrentSequenceBuffer(RolloutBuffer):
    """SB3's rollout buffer plus per-step recurrent states of any shape and sequence minibatches.

    Args (besides RolloutBuffer's): ``state_templates`` maps a network name to a state for
    ``n_envs`` envs (a (n_envs, H) tensor or a tuple of them; e.g. the initial states), which
    fixes the shapes stored per step; ``seq_len`` the longest sequence; ``teacher_labels``: store
    a teacher's action for every step too (``add(..., teacher_actions=...)``); ``state_width``:
    store each step's full observation of that width too (``add(..., full_observations=...)``).
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 state_templates: Mapping[str, States], device: str | torch.device = "cpu",
                 gae_lambda: float = 1.0, gamma: float = 0.99, n_envs: int = 1,
                 seq_len: Optional[int] = None, teacher_labels: bool = False, state_width: int = 0) -> None:
        self.teacher_labels = bool(teacher_labels)
        if isinstance(state_width, bool) or int(state_width) < 0:
            raise ValueError(f"state_width must be an int >= 0, got {state_width!r}")
        self.state_width = int(state_width)
        self.state_templates = {name: _state_tuple(s, f"state template {name!r}") for name, s in state_templates.items()}
        for name, tensors in self.state_templates.items():
            for t in tensors:
                if t.dim() != 2 or t.shape[0] != n_envs:
                    raise ValueError(f"state template {name!r} must hold (n_envs={n_envs}, H) tensors, "
                                     f"got {tuple(t.shape)}")
        self.seq_len = seq_len
        super().__init__(buffer_size, observation_space, action_space, device=device, gae_lambda=gae_lambda,
                         gamma=gamma, n_envs=n_envs)

    def reset(self) -> None:
        super().reset()
        self.states: Dict[str, List[Tensor]] = {
            name: [torch.zeros((self.buffer_size, *t.shape), dtype=t.dtype) for t in tensors]
            for name, tensors in self.state_templates.items()}
        self.teacher_actions = (np.zeros((self.buffer_size, self.n_envs, self.action_dim), dtype=np.float32)
                                if self.teacher_labels else None)
        self.full_observations = (np.zeros((self.buffer_size, self.n_envs, self.state_width), dtype=np.float32)
                                  if self.state_width else None)
        self.durations = np.ones((self.buffer_size, self.n_envs), dtype=np.float32)
        self._flat: Optional[Dict[str, Tensor]] = None
        self.layout: Optional[SequenceLayout] = None

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, episode_start: np.ndarray,
            value: Tensor, log_prob: Tensor, states: Optional[Mapping[str, States]] = None,
            teacher_actions: Optional[np.ndarray] = None, full_observations: Optional[np.ndarray] = None,
            durations: Optional[np.ndarray] = None) -> None:
        """SB3's ``add`` plus ``states``: each network's state *before* this step, (n_envs, H_i),
        and, for a buffer with teacher labels, ``teacher_actions`` (n_envs, A) normalised; for one
        with state labels, ``full_observations`` (n_envs, state_width); ``durations`` (n_envs,)
        the step's elapsed time in nominal periods (None: one each)."""
        if (teacher_actions is None) == self.teacher_labels:
            raise ValueError("add needs teacher_actions exactly when the buffer stores teacher labels "
                             f"(teacher_labels={self.teacher_labels})")
        if (full_observations is None) == bool(self.state_width):
            raise ValueError("add needs full_observations exactly when the buffer stores state labels "
                             f"(state_width={self.state_width})")
        if full_observations is not None and np.shape(full_observations) != (self.n_envs, self.state_width):
            raise ValueError(f"full_observations must have shape ({self.n_envs}, {self.state_width}), "
                             f"got {np.shape(full_observations)}")
        if durations is not None:
            durations = np.asarray(durations, dtype=np.float32)
            if durations.shape != (self.n_envs,) or not np.all(np.isfinite(durations) & (durations > 0)):
                raise ValueError(f"durations must be {self.n_envs} positive finite numbers, got {durations!r}")
        if states is None or set(states) != set(self.states):
            raise ValueError(f"add needs the states of {sorted(self.states)}, got "
                             f"{None if states is None else sorted(states)}")
        for name, state in states.items():
            stored = self.states[name]
            tensors = _state_tuple(state, f"state {name!r}")
            if len(tensors) != len(stored):
                raise ValueError(f"state {name!r} has {len(tensors)} tensors, the buffer stores {len(stored)}")
            for target, value_t in zip(stored, tensors):
                target[self.pos].copy_(value_t)
        if self.teacher_actions is not None:
            self.teacher_actions[self.pos] = np.asarray(teacher_actions, dtype=np.float32).reshape(
                self.n_envs, self.action_dim)
        if self.full_observations is not None:
            self.full_observations[self.pos] = full_observations
        if durations is not None:  # reset() filled the rest with ones
            self.durations[self.pos] = durations
        super().add(obs, action, reward, episode_start, value, log_prob)

    def compute_returns_and_advantage(self, last_values: Tensor, dones: np.ndarray) -> None:
        """GAE(λ) over the rollout, discounted per nominal period of each step's duration
        (``last_values`` (n_envs,) the values of the observations after the last step, ``dones``
        (n_envs,) whether those start a new episode). With every duration 1 this is SB3's GAE."""
        # SB3's recursion with γ and γλ raised to each step's duration (its own has no such input).
        last_values = last_values.clone().cpu().numpy().flatten()
        discounts = self.gamma ** self.durations
        traces = (self.gamma * self.gae_lambda) ** self.durations
        running = np.zeros(self.n_envs, dtype=np.float32)
        for step in reversed(range(self.buffer_size)):
            if step == self.buffer_size - 1:
                next_non_terminal, next_values = 1.0 - dones.astype(np.float32), last_values
            else:
                next_non_terminal, next_values = 1.0 - self.episode_starts[step + 1], self.values[step + 1]
            delta = self.rewards[step] + discounts[step] * next_values * next_non_terminal - self.values[step]
            running = delta + traces[step] * next_non_terminal * running
            self.advantages[step] = running
        self.returns = self.advantages + self.values

    # -- sequences -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Flatten everything env-major once per rollout and cut the sequences."""
        if not self.full:
            raise RuntimeError("the rollout buffer is not full yet; collect a whole rollout first")

        def flat(array: np.ndarray, dtype=torch.float32) -> Tensor:
            swapped = np.ascontiguousarray(np.swapaxes(array, 0, 1))
            return torch.as_tensor(swapped.reshape(self.buffer_size * self.n_envs, *array.shape[2:]), dtype=dtype)

        self.layout = cut_sequences(self.episode_starts, self.seq_len)
        first = torch.as_tensor(self.layout.first)
        self._flat = {
            "observations": flat(self.observations),
            "actions": flat(self.actions),
            "values": flat(self.values),
            "log_probs": flat(self.log_probs),
            "advantages": flat(self.advantages),
            "returns": flat(self.returns),
            "episode_starts": flat(self.episode_starts, torch.bool),
        }
        if self.teacher_actions is not None:
            self._flat["teacher_actions"] = flat(self.teacher_actions)
        if self.full_observations is not None:
            full = flat(self.full_observations)
            centre, spread = full.mean(0), full.std(0, unbiased=False).clamp_min(1e-2)
            self._flat["full_observations"] = full
            self._flat["state_targets"] = (full - centre) / spread
        self._first_states = {
            name: tuple(t.transpose(0, 1).reshape(self.buffer_size * self.n_envs, t.shape[-1])[first] for t in tensors)
            for name, tensors in self.states.items()}

    def minibatches(self, batch_size: int) -> Iterator[SequenceBatch]:
        """One pass over the rollout in minibatches of whole sequences (about ``batch_size`` steps
        each), in a random order."""
        if self._flat is None:
            self._prepare()
        assert self.layout is not None and self._flat is not None
        layout = self.layout
        order = torch.randperm(len(layout.lengths)).numpy()
        for ids in group_sequences(layout.lengths, batch_size, order):
            yield self.batch(ids)

    def batch(self, ids: np.ndarray) -> SequenceBatch:
        """The sequences ``ids``, padded to the longest of them."""
        if self._flat is None:
            self._prepare()
        assert self.layout is not None and self._flat is not None
        ids = np.asarray(ids, dtype=np.int64)
        width = int(self.layout.lengths[ids].max())
        index = torch.as_tensor(self.layout.index[ids, :width])
        mask = index >= 0
        take = index.clamp(min=0)
        data = self._flat
        states = {name: tuple(t[torch.as_tensor(ids)] for t in tensors) for name, tensors in self._first_states.items()}
        return SequenceBatch(
            observations=data["observations"][take],
            actions=data["actions"][take],
            old_values=data["values"][take],
            old_log_prob=data["log_probs"][take],
            advantages=data["advantages"][take],
            returns=data["returns"][take],
            episode_starts=data["episode_starts"][take] & mask,
            mask=mask.to(torch.float32),
            states=states,
            sequence_ids=ids,
            teacher_actions=data["teacher_actions"][take] if "teacher_actions" in data else None,
            full_observations=data["full_observations"][take] if "full_observations" in data else None,
            state_targets=data["state_targets"][take] if "state_targets" in data else None,
        )


def _state_tuple(state: object, what: str) -> States:
    """``state`` when it is the state tuple (a tuple of tensors), else ValueError naming ``what``."""
    if not isinstance(state, tuple) or not all(isinstance(t, torch.Tensor) for t in state):
        raise ValueError(f"{what} must be a tuple of tensors ((h,) or (h, c)), got {type(state).__name__}")
    return state
