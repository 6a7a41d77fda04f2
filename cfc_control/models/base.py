"""The contract every recurrent model in cfc_control follows.

A model is a sequence layer built around a one-step *cell*. Subclasses implement the cell; this
base turns it into

* ``forward(x, hx=None, timespans=None, episode_starts=None) -> (y, hx)`` over a sequence, and
* ``step(x, hx=None, dt=1.0, episode_start=None) -> (y, hx)`` for one step of a batch,

with identical results for both (stepping a sequence gives what ``forward`` gives on it).

Shapes (B batch, T time, C input features, H state size, O output features):

* ``x``: (B, T, C) when ``batch_first`` (the default), (T, B, C) otherwise, or unbatched (T, C).
* ``timespans``: elapsed time since the previous step. ``None`` (1.0 every step, the reference
  library's default), a number, or per sample and step: (B, T) or (B, T, 1) (time-major (T, B)
  or (T, B, 1) when ``batch_first=False``; (T,) or (T, 1) when unbatched).
* ``episode_starts``: optional bool (B, T) (or (T, B) / (T,) as above). Where true, the state is
  reset to the initial state *before* that step is computed, the way SB3 and rsl_rl reset
  recurrent policies at episode boundaries inside one rollout.
* ``hx``: the state, a tensor (B, H) or a tuple of tensors (mixed memory, LSTM: (h, c)); 1-D
  (H,) when the input is unbatched. ``None`` means the initial (zero) state. This is the
  reference library's (ncps's) convention, kept by ``forward``, ``step``, ``initial_state`` and
  the cells so that a model equals ncps on its weights.
* The *state tuple* (:data:`States`): the same tensors always as a tuple, (h,) or (h, c) (as
  sb3-contrib keeps its states). What the policy, the runtime and training pass around; the
  ``*_states`` methods (``initial_states``, ``run_states``, ``step_states``, ``cell_states``) take
  and give it, and :func:`as_states` / :func:`from_states` convert at the one boundary.
* ``y``: (B, T, O) (or (B, O) when ``return_sequences=False``).

Subclasses implement:

* ``initial_state(batch_size, device, dtype)``
* ``cell(u_t, state, dt) -> (y_t, state)`` with ``u_t`` the output of ``input_map`` for one step
  (B, C'), ``dt`` of shape (B, 1), ``y_t`` (B, O') before ``output_map``.

and may override ``input_map`` (applied to a whole (B, T, C) sequence at once, so that the input
half of a backbone becomes one matmul for the sequence) and ``output_map`` (the projection).
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

State = Union[Tensor, Tuple[Tensor, ...]]  # ncps's convention: a tensor, or (h, c)
States = Tuple[Tensor, ...]  # the state tuple: (h,) or (h, c), whatever the model
TimeLike = Union[None, float, int, Tensor]


def as_states(state: State) -> States:
    """ncps's convention (a tensor, or a tuple for mixed memory and the LSTM) as the state tuple:
    the one place that tells the two apart."""
    return state if isinstance(state, tuple) else (state,)


def from_states(states: States) -> State:
    """The state tuple in ncps's convention: one tensor bare, (h, c) as a tuple."""
    return states[0] if len(states) == 1 else tuple(states)


def map_state(state: State, fn) -> State:
    """Apply ``fn`` to every tensor of a state (a tensor or a tuple of tensors), keeping its form."""
    return from_states(tuple(fn(s) for s in as_states(state)))


def reset_state(state: State, reset: Optional[Tensor], initial: State) -> State:
    """Rows of ``state`` where ``reset`` (B,) is true are replaced by the rows of ``initial``."""
    if reset is None:
        return state
    states = as_states(state)
    keep = (~reset.bool()).to(states[0].dtype).unsqueeze(-1)
    return from_states(tuple(s * keep + i * (1.0 - keep) for s, i in zip(states, as_states(initial))))


class RecurrentModel(nn.Module):
    """Base class of every sequence model here (CfC, wired CfC, LTC, LSTM, GRU, MLP).

    Attributes set by subclasses: ``input_size`` (C), ``state_size`` (H, the size of the first
    state tensor), ``output_size`` (O, after projection), ``batch_first``, ``return_sequences``.
    ``config`` holds the constructor arguments, JSON-serialisable, so that
    :func:`cfc_control.models.io.load_model` can rebuild the model without executing stored code.
    """

    input_size: int
    state_size: int
    output_size: int
    batch_first: bool = True
    return_sequences: bool = True

    # -- what a subclass implements ------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> State:
        raise NotImplementedError

    def cell(self, u_t: Tensor, state: State, dt: Tensor) -> Tuple[Tensor, State]:
        raise NotImplementedError

    def input_map(self, x: Tensor) -> Tensor:
        """Per-step input transform, applied to (..., C). Identity unless overridden."""
        return x

    def output_map(self, y: Tensor) -> Tensor:
        """Per-step output transform (projection), applied to (..., O'). Identity unless overridden."""
        return y

    def model_config(self) -> Dict[str, Any]:
        """The JSON-serialisable constructor arguments (see :mod:`cfc_control.models.io`)."""
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    def _param_like(self) -> Tensor:
        for p in self.parameters():
            return p
        for b in self.buffers():
            return b
        return torch.zeros(())

    def _check_state(self, hx: State, batch_size: int) -> State:
        ref = self.initial_state(1)
        refs, gots = as_states(ref), as_states(hx)
        if (refs is ref) != (gots is hx) or len(refs) != len(gots):  # a tuple where a tensor is due, ...
            kind = f"a tuple of {len(refs)} tensors" if refs is ref else "a tensor"
            raise ValueError(f"{type(self).__name__}: hx must be {kind} (B, H), got {_describe(hx)}")
        for r, g in zip(refs, gots):
            if g.dim() != 2 or g.shape[0] != batch_size or g.shape[1] != r.shape[1]:
                raise ValueError(
                    f"{type(self).__name__}: hx must have shape ({batch_size}, {r.shape[1]}), "
                    f"got {tuple(g.shape)}"
                )
        return hx

    def forward(
        self,
        x: Tensor,
        hx: Optional[State] = None,
        timespans: TimeLike = None,
        episode_starts: Optional[Tensor] = None,
    ) -> Tuple[Tensor, State]:
        """Run a sequence. See the module docstring for shapes."""
        with self.sequence_context():
            return self._run(x, hx, timespans, episode_starts, self.output_map)

    def forward_features(
        self,
        x: Tensor,
        hx: Optional[State] = None,
        timespans: TimeLike = None,
        episode_starts: Optional[Tensor] = None,
    ) -> Tuple[Tensor, State]:
        """:meth:`forward` up to the features (B, T, O') its output is made from
        (:meth:`output_from_features`): what the model holds each step, before ``output_map``. An
        auxiliary loss in training reads them; O' = :meth:`feature_size`."""
        with self.sequence_context():
            return self._run(x, hx, timespans, episode_starts, None)

    def output_from_features(self, features: Tensor) -> Tensor:
        """The output :meth:`forward` gives, from :meth:`forward_features`' features."""
        return self.output_map(features)

    def feature_size(self) -> int:
        """O', the width of :meth:`forward_features`' output."""
        with torch.no_grad():
            probe = self._param_like().new_zeros(1, 1, self.input_size)
            return int(self.forward_features(probe if self.batch_first else probe.transpose(0, 1))[0].shape[-1])

    def sequence_context(self):
        """A context around a whole sequence's run (a wired model masks its weights once there)."""
        return contextlib.nullcontext()

    def _run(self, x: Tensor, hx: Optional[State], timespans: TimeLike, episode_starts: Optional[Tensor],
             output_map) -> Tuple[Tensor, State]:
        if x.dim() not in (2, 3):
            raise ValueError(
                f"{type(self).__name__}: input must be (B, T, C), (T, B, C) or unbatched (T, C), "
                f"got shape {tuple(x.shape)}"
            )
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
            timespans = _unsqueeze_time(timespans, 0)
            episode_starts = episode_starts.unsqueeze(0) if episode_starts is not None else None
            if hx is not None:
                hx = map_state(hx, lambda s: s.unsqueeze(0))
        elif not self.batch_first:
            x = x.transpose(0, 1)
            timespans = _transpose_time(timespans)
            episode_starts = episode_starts.transpose(0, 1) if episode_starts is not None else None
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: expected {self.input_size} input features, got {x.shape[-1]}"
            )
        batch, steps = x.shape[0], x.shape[1]
        if steps == 0 and not self.return_sequences:
            raise ValueError(
                f"{type(self).__name__} with return_sequences=False needs a sequence of at least one step"
            )
        ts = sequence_timespans(timespans, batch, steps, x.device, x.dtype)
        starts = None
        if episode_starts is not None:
            if tuple(episode_starts.shape) != (batch, steps):
                raise ValueError(
                    f"episode_starts must have shape {(batch, steps)} (batch-major), got {tuple(episode_starts.shape)}"
                )
            starts = episode_starts.to(x.device).bool()

        initial = self.initial_state(batch, x.device, x.dtype)
        state = initial if hx is None else self._check_state(hx, batch)
        if steps == 0:  # nothing happens: no output steps, the state passes through
            if output_map is None:
                raise ValueError(f"{type(self).__name__}: features of an empty sequence")
            y = x.new_zeros(batch, 0, self.output_size)
        else:
            y_seq, state = self.run_sequence(self.input_map(x), state, ts, starts, initial)
            y = output_map(y_seq) if output_map is not None else y_seq
        if unbatched:
            y = y.squeeze(0)
            state = map_state(state, lambda s: s.squeeze(0))
        elif not self.batch_first and self.return_sequences:
            y = y.transpose(0, 1)
        return y, state

    def run_sequence(
        self, u: Tensor, state: State, ts: Tensor, starts: Optional[Tensor], initial: State
    ) -> Tuple[Optional[Tensor], State]:
        """Run ``cell`` over a whole sequence: ``u`` (B, T, C') from ``input_map``, ``ts`` (B, T, 1),
        ``starts`` None or bool (B, T), ``initial`` the state rows are reset to.

        Returns ``(y, state)`` before ``output_map``: y is (B, T, O') when ``return_sequences``,
        else the last step's (B, O') (None for an empty sequence). A subclass may override this
        with a fused implementation (e.g. torch's LSTM kernel) that gives the same result."""
        outputs = []
        y_t = None
        # unbind, not u[:, t]: indexing makes backward add a full-size zero gradient per step
        # (cost quadratic in T); unbind's backward stacks the step gradients once.
        us, tss = u.unbind(1), ts.unbind(1)
        resets = starts.unbind(1) if starts is not None else None
        for t in range(len(us)):
            if resets is not None:
                state = reset_state(state, resets[t], initial)
            y_t, state = self.cell(us[t], state, tss[t])
            if self.return_sequences:
                outputs.append(y_t)
        if self.return_sequences:
            return torch.stack(outputs, dim=1), state
        return y_t, state

    def step(
        self,
        x: Tensor,
        hx: Optional[State] = None,
        dt: TimeLike = 1.0,
        episode_start: Optional[Tensor] = None,
    ) -> Tuple[Tensor, State]:
        """One step of a batch: ``x`` (B, C), ``dt`` a number or (B,) / (B, 1) per sample,
        ``episode_start`` an optional bool (B,) that resets those rows first.
        Returns ``(y (B, O), hx)``."""
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}.step: x must be (B, {self.input_size}), got {tuple(x.shape)}"
            )
        batch = x.shape[0]
        state = self.initial_state(batch, x.device, x.dtype) if hx is None else self._check_state(hx, batch)
        if episode_start is not None:
            reset = torch.as_tensor(episode_start, device=x.device).reshape(batch)
            if bool(reset.any()):  # (most steps of a rollout reset no row: skip the blend)
                state = reset_state(state, reset, self.initial_state(batch, x.device, x.dtype))
        dt_t = step_dt(dt, batch, x.device, x.dtype)
        y, state = self.cell(self.input_map(x), state, dt_t)
        return self.output_map(y), state

    # -- the state tuple (see the module docstring) ----------------------------------------------
    def initial_states(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> States:
        """:meth:`initial_state` as the state tuple."""
        return as_states(self.initial_state(batch_size, device, dtype))

    def run_states(
        self, x: Tensor, states: Optional[States] = None, timespans: TimeLike = None,
        episode_starts: Optional[Tensor] = None,
    ) -> Tuple[Tensor, States]:
        """:meth:`forward` with the state tuple in and out (None: the initial state)."""
        y, state = self(x, None if states is None else from_states(states), timespans, episode_starts)
        return y, as_states(state)

    def step_states(
        self, x: Tensor, states: Optional[States] = None, dt: TimeLike = 1.0, episode_start: Optional[Tensor] = None
    ) -> Tuple[Tensor, States]:
        """:meth:`step` with the state tuple in and out (None: the initial state)."""
        y, state = self.step(x, None if states is None else from_states(states), dt, episode_start)
        return y, as_states(state)

    def cell_states(self, u_t: Tensor, states: States, dt: Tensor) -> Tuple[Tensor, States]:
        """:meth:`cell` (no checks; what an export traces) with the state tuple in and out."""
        y, state = self.cell(u_t, from_states(states), dt)
        return y, as_states(state)


def _unsqueeze_time(timespans: TimeLike, dim: int) -> TimeLike:
    if isinstance(timespans, Tensor) and timespans.dim() > 0:
        return timespans.unsqueeze(dim)
    return timespans


def _transpose_time(timespans: TimeLike) -> TimeLike:
    if isinstance(timespans, Tensor) and timespans.dim() >= 2:
        return timespans.transpose(0, 1)
    return timespans


def sequence_timespans(timespans: TimeLike, batch: int, steps: int, device, dtype) -> Tensor:
    """Normalise ``timespans`` to a (B, T, 1) tensor (batch-major)."""
    if timespans is None:
        return torch.ones(batch, steps, 1, device=device, dtype=dtype)
    ts = torch.as_tensor(timespans, device=device, dtype=dtype)
    if ts.dim() == 0:
        return ts.expand(batch, steps).unsqueeze(-1)
    if ts.dim() == 3 and ts.shape[-1] == 1:
        ts = ts.squeeze(-1)
    if ts.dim() == 1 and ts.shape[0] == steps and batch == 1:
        ts = ts.unsqueeze(0)
    if ts.dim() != 2 or tuple(ts.shape) != (batch, steps):
        raise ValueError(
            f"timespans must be a number, (B, T) or (B, T, 1) = {(batch, steps)}, got shape {tuple(torch.as_tensor(timespans).shape)}"
        )
    return ts.unsqueeze(-1)


def step_dt(dt: TimeLike, batch: int, device, dtype) -> Tensor:
    """Normalise a step's ``dt`` (number, (B,) or (B, 1)) to a (B, 1) tensor."""
    if dt is None:
        dt = 1.0
    d = torch.as_tensor(dt, device=device, dtype=dtype)
    if d.dim() == 0:
        return d.expand(batch, 1)
    if d.numel() == batch and d.dim() <= 2 and (d.dim() == 1 or d.shape[-1] == 1):
        return d.reshape(batch, 1)
    raise ValueError(f"dt must be a number, (B,) or (B, 1) with B={batch}, got shape {tuple(d.shape)}")


def _describe(hx: Any) -> str:
    if isinstance(hx, Tensor):
        return f"a tensor of shape {tuple(hx.shape)}"
    if isinstance(hx, Sequence):
        return f"a {type(hx).__name__} of {len(hx)}"
    return type(hx).__name__
