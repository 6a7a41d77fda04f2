"""``PolicyRunner``: a trained policy stepped one control period at a time (numpy in, numpy out).

    runner = PolicyRunner.load("policies/hopper", batch_size=1)
    runner.reset()
    action = runner.step(obs, dt=0.0081)          # or step(obs, timestamp=t) or step(obs)

Each step clips and normalises the observation with the stored statistics, feeds the model the
time input clamp(Δt, dt_min, dt_max) / nominal_dt, and maps the output into the action bounds,
through a kernel compiled from the weights (:mod:`cfc_control.runtime.compiled`).

Time. ``dt`` is the measured period in seconds (a number, or (B,) per row). With ``timestamp``
(seconds, any monotonic clock) the runner derives Δt from the previous timestamped step of that
row. Without either, and on the first step after a reset (or after a step without timestamp),
Δt is the policy's nominal period. Δt outside [dt_min, dt_max] is clamped; each clamp is counted
in :attr:`PolicyRunner.stats` and the first one of each kind warns (:class:`DtClampWarning`).

Bad input. A wrong shape or dtype, NaN/inf in the observation, Δt <= 0 or non-finite, or a
timestamp that does not advance raises :class:`BadInputError` (a ValueError naming what was wrong
and, for a batch, which rows) and changes nothing. With ``on_bad_input="hold"`` the offending rows
instead get their last good action (the center of the action space if the row has had no good
step since the last reset) and keep their state and timestamp; the other rows step normally;
``stats.held`` counts held rows and ``last_error`` keeps the error. A non-finite model output or
state (diverged weights) is refused the same way (:class:`NonFiniteOutputError` when raising). No
call returns a non-finite action.

A runner is not thread-safe; use one per thread (:meth:`PolicyRunner.spawn` shares the weights).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np
from gymnasium import spaces

from cfc_control.policies.directory import load_policy
from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.backend import choose_program
from cfc_control.runtime.errors import BadInputError, DtClampWarning, NonFiniteOutputError
from cfc_control.runtime.inputs import all_finite, batch_times, coerce_obs, nonfinite_report, row_time
from cfc_control.runtime.kernel_contract import Kernel, Time, clip_ufunc
from cfc_control.runtime.runner_state import RunnerState, RunnerStats, checked_snapshot, row_selection

BAD_INPUT_MODES = ("raise", "hold")


class PolicyRunner:
    """Steps a :class:`RecurrentPolicy` for ``batch_size`` rows (robots); see the module docstring.

    ``backend``: "auto" (C where a compiler exists, else the numpy kernel when the model has one,
    else torch), "c", "numpy" or "torch" (:mod:`cfc_control.runtime.backend`). ``dtype``: the C or
    numpy kernel's float type, "float32" (default, faster) or "float64"; either equals the torch
    policy within 1e-5. Actions are returned as float64.

    Attributes: ``observation_space`` / ``action_space`` (one row's Boxes, float64),
    ``nominal_dt``, ``dt_min``, ``dt_max`` (seconds), ``batch_size``, ``n_obs``, ``n_act``,
    ``backend`` ("c", "numpy" or "torch"), ``policy``, ``stats``, ``last_error``.
    """

    def __init__(
        self,
        policy: RecurrentPolicy,
        batch_size: int = 1,
        on_bad_input: str = "raise",
        backend: str = "auto",
        dtype: str = "float32",
        *,
        _program: Optional[Tuple[Callable[[int], Kernel], str]] = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if on_bad_input not in BAD_INPUT_MODES:
            raise ValueError(f"on_bad_input must be one of {BAD_INPUT_MODES}, got {on_bad_input!r}")
        if not isinstance(policy, RecurrentPolicy):
            raise TypeError(f"PolicyRunner needs a RecurrentPolicy, got {type(policy).__name__}")
        self.policy = policy.eval()
        self.batch_size = int(batch_size)
        self.on_bad_input = on_bad_input
        self._program = _program or choose_program(policy, backend, dtype)
        self.backend = self._program[1]
        self._kernel = self._program[0](self.batch_size)
        self.n_obs, self.n_act = policy.n_obs, policy.n_act
        self._time = t = replace(policy.time_input)  # the policy's, as it is now
        self.nominal_dt, self.dt_min, self.dt_max = float(t.nominal_dt), float(t.dt_min), float(t.dt_max)
        m = policy.action_mapping
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.n_obs,), dtype=np.float64)
        self.action_space = spaces.Box(m.low, m.high, dtype=np.float64)
        self._center = np.asarray(m.center, dtype=np.float64)
        # A float32 kernel clips to its float32 bounds, which may round outward by an ulp: the
        # float64 action is clipped again to the exact bounds (in place of the cast it replaces).
        self._low, self._high = self.action_space.low, self.action_space.high
        self.stats = RunnerStats()
        self.last_error: Optional[Exception] = None
        self._warned = {"low": False, "high": False}
        self.trained_periods = policy.trained_periods()
        self._watch_periods = self.trained_periods is not None  # until the one warning
        self._last_action = np.tile(self._center, (self.batch_size, 1))
        self._last_ts = np.full(self.batch_size, np.nan)
        self._dt = np.empty(self.batch_size)
        self._t = np.empty((self.batch_size, 1))

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        directory: Union[str, "os.PathLike[str]"],
        batch_size: int = 1,
        on_bad_input: str = "raise",
        backend: str = "auto",
        dtype: str = "float32",
    ) -> "PolicyRunner":
        """A runner for the policy directory ``directory`` (config.json + model.safetensors).
        ``backend``: "auto" (C where a compiler exists, else numpy, else torch), "c", "numpy" or
        "torch"; ``dtype``: the kernel's precision, "float32" (faster) or "float64"."""
        return cls(load_policy(directory), batch_size, on_bad_input, backend, dtype)

    def spawn(self, batch_size: Optional[int] = None, on_bad_input: Optional[str] = None) -> "PolicyRunner":
        """A fresh runner (own state, initial) sharing this one's compiled weights."""
        return PolicyRunner(self.policy, batch_size or self.batch_size, on_bad_input or self.on_bad_input,
                            _program=self._program)

    @property
    def task(self) -> Optional[str]:
        return self.policy.task

    # -- state ---------------------------------------------------------------------------------
    def reset(self, rows: Any = None) -> None:
        """Initial state for ``rows`` (None: all; an int, a sequence of ints or a bool mask (B,)):
        zero model state, no last timestamp (the next step uses the nominal period), held action
        back to the center."""
        idx = self._rows(rows)
        self._kernel.reset(idx)
        if idx is None:
            self._last_ts[:] = np.nan
            self._last_action[:] = self._center
        else:
            self._last_ts[idx] = np.nan
            self._last_action[idx] = self._center
        self.stats.resets += 1

    def get_state(self) -> RunnerState:
        """A copy of the whole state (model state, timestamps, held actions)."""
        return RunnerState(
            tuple(s.astype(np.float64) for s in self._kernel.state), self._last_ts.copy(), self._last_action.copy()
        )

    def set_state(self, state: Union[RunnerState, Sequence[np.ndarray], np.ndarray]) -> None:
        """Restore :meth:`get_state`'s snapshot (of this or another runner of the same policy and
        batch size), or set only the model state from an array / tuple of arrays ((B, H_k) each,
        as the torch model's ``hx``; timestamps are then forgotten). Checked before anything
        changes: shapes, model state finite and within +-STATE_LIMIT, last actions inside the
        action bounds, timestamps not infinite (NaN means none)."""
        arrays, ts, act = checked_snapshot(state, self._kernel.state, self._last_action, self.action_space)
        self._kernel.set_state(arrays)
        self._last_ts[:] = ts
        self._last_action[:] = act

    # -- the step ------------------------------------------------------------------------------
    def step(self, obs: Any, dt: Any = None, *, timestamp: Any = None) -> np.ndarray:
        """One control period: raw ``obs`` (B, n_obs) ((n_obs,) also when B == 1), ``dt`` seconds
        since the previous step (a number or (B,)) or ``timestamp`` seconds (a number or (B,)), or
        neither (the nominal period). Returns the action (B, n_act), or (n_act,) for a 1-D
        observation, float64, inside the action bounds. See the module docstring for errors."""
        if dt is not None and timestamp is not None:
            raise TypeError("step() takes dt or timestamp, not both")
        try:
            if self.batch_size == 1:
                return self._step_one(obs, dt, timestamp)
            return self._step_batch(obs, dt, timestamp)
        except BadInputError as error:  # a shape or dtype error found while parsing
            if getattr(error, "refused", False):
                raise
            one_d = self.batch_size == 1 and not (isinstance(obs, np.ndarray) and obs.ndim == 2)
            return self._refuse(error, one_d, "bad_input")

    __call__ = step

    def _step_one(self, obs: Any, dt: Any, timestamp: Any) -> np.ndarray:
        """Reads one row's input (refusing it whole when bad), then :meth:`_advance`."""
        o = obs
        if not (type(o) is np.ndarray and o.shape == (self.n_obs,) and o.dtype.kind == "f"):
            o = coerce_obs(obs, 1, self.n_obs)
        flat = o if o.ndim == 1 else o[0]
        error: Optional[Exception] = None
        if not all_finite(flat):
            error = BadInputError(
                f"observation has non-finite entries: {nonfinite_report(flat[None].astype(np.float64))[1]}", (0,)
            )
        d, ts, wrong = row_time(dt, timestamp, float(self._last_ts[0]), self.nominal_dt)
        if wrong is not None:
            error = error or BadInputError(wrong, (0,))
        if error is not None:
            return self._refuse(error, o.ndim == 1, "bad_input")
        return self._advance(flat, d, ts, None, o.ndim == 1)

    def _step_batch(self, obs: Any, dt: Any, timestamp: Any) -> np.ndarray:
        """Reads a batch's input (refusing it whole, or holding its bad rows), then :meth:`_advance`."""
        B = self.batch_size
        o = coerce_obs(obs, B, self.n_obs)
        bad = np.zeros(B, dtype=bool)
        messages = []
        if not all_finite(o):
            rows, msg = nonfinite_report(np.asarray(o, dtype=np.float64))
            bad |= rows
            messages.append(f"observation has non-finite entries: {msg}")
        d = self._dt
        ts, bad_times, wrong = batch_times(dt, timestamp, self._last_ts, self.nominal_dt, d)
        bad |= bad_times
        messages += wrong
        if not bad.any():
            return self._advance(o, d, ts, None, False)
        error = BadInputError("; ".join(messages), np.flatnonzero(bad))
        if self.on_bad_input == "raise" or bad.all():
            return self._refuse(error, False, "bad_input", rows=bad)
        self.last_error = error
        self.stats.bad_input += int(bad.sum())
        o = np.where(bad[:, None], 0.0, o)  # keep NaN out of the kernel; those rows are held
        d[bad] = self.nominal_dt
        return self._advance(o, d, ts, bad, False)

    def _advance(self, o: np.ndarray, d: Union[float, np.ndarray], ts: Union[float, np.ndarray],
                 held: Optional[np.ndarray], one_d: bool) -> np.ndarray:
        """The step both paths share, once their input is read and good: ``o`` the kernel's
        observation ((n_obs,) for one row, else (B, n_obs)), ``d`` Δt in seconds (a number for one
        row, else the (B,) buffer), ``ts`` the timestamps to record, ``held`` the rows answered with
        their held action (None: none). Clamps and converts Δt, steps the kernel, refuses a
        non-finite result, commits the state and records the actions."""
        B = self.batch_size
        y = self._kernel.step(o, self._model_time(d))
        out_bad = self._bad_results(y)
        if out_bad is not None and (self.on_bad_input == "raise" or B == 1):
            at = "" if B == 1 else f" at rows {np.flatnonzero(out_bad).tolist()[:8]}"
            error = NonFiniteOutputError(f"the model produced a non-finite action or state{at}; "
                                         "the state was not updated")
            return self._refuse(error, one_d, "non_finite_output", rows=out_bad)
        keep = held if out_bad is None else (out_bad if held is None else (held | out_bad))
        st = self.stats
        if out_bad is not None:
            st.non_finite_output += int(out_bad.sum())
            rows = np.flatnonzero(out_bad).tolist()[:8]
            self.last_error = NonFiniteOutputError(f"non-finite model output at rows {rows}")
            if keep.all():
                st.held += B
                st.steps += 1
                return self._last_action.copy()
        self._kernel.commit(keep)
        y = clip_ufunc(y, self._low, self._high)
        st.steps += 1
        if keep is not None:
            good = ~keep
            self._last_action[good] = y[good]
            self._last_ts[good] = ts[good]
            st.held += int(keep.sum())
            st.rows_stepped += int(good.sum())
            return self._last_action.copy()
        self._last_action[...] = y
        self._last_ts[...] = ts
        st.rows_stepped += B
        return y[None] if B == 1 and not one_d else y

    def _model_time(self, d: Union[float, np.ndarray]) -> Time:
        """Δt (seconds; a number for one row, else the (B,) buffer, clamped in place) -> the
        kernel's model time, through the policy's :class:`TimeInput`; watches the trained periods
        and counts (and warns of) every clamp on the way."""
        time = self._time
        if isinstance(d, float):
            if self._watch_periods and not self.trained_periods.contains(d):
                self._outside_training(d, d)
            if d < time.dt_min:
                self._clamped("low", d, 1)
            elif d > time.dt_max:
                self._clamped("high", d, 1)
            return time.model_time_scalar(d)
        if self._watch_periods:
            shortest, longest = float(d.min()), float(d.max())
            if not self.trained_periods.contains(shortest, longest):
                self._outside_training(shortest, longest)
        low, high = time.outside(d)
        if low.any():
            self._clamped("low", float(d[low].min()), int(low.sum()))
        if high.any():
            self._clamped("high", float(d[high].max()), int(high.sum()))
        time.model_time_array(d, self._t[:, 0])
        return self._t

    def _bad_results(self, y: np.ndarray) -> Optional[np.ndarray]:
        """The rows (bool (B,)) whose output or pending state is non-finite; None when all are finite."""
        if self._kernel.result_finite(y):
            return None
        bad = ~np.isfinite(y.reshape(self.batch_size, -1)).all(axis=1)
        for s in self._kernel.pending:
            if s.size:
                bad |= ~np.isfinite(s).all(axis=1)
        return bad if bad.any() else None

    # -- helpers -------------------------------------------------------------------------------
    def _refuse(self, error: Exception, one_d: bool, counter: str, rows: Optional[np.ndarray] = None) -> np.ndarray:
        n = self.batch_size if rows is None else int(np.count_nonzero(rows))
        setattr(self.stats, counter, getattr(self.stats, counter) + n)
        self.last_error = error
        if self.on_bad_input == "raise":
            error.refused = True  # type: ignore[attr-defined]  # counted: step() re-raises it as is
            raise error
        self.stats.held += self.batch_size
        self.stats.steps += 1
        out = self._last_action.copy()
        return out[0] if one_d else out

    def period_warning_given(self) -> None:
        """The caller has warned that the periods it will use lie outside the policy's trained
        ones (``run --rate``): the runner does not warn of it again."""
        self._watch_periods = False

    def _outside_training(self, shortest: float, longest: float) -> None:
        self._watch_periods = False
        self.trained_periods.warn_if_outside(shortest, longest, stacklevel=7)

    def _clamped(self, kind: str, value: float, count: int) -> None:
        if kind == "low":
            self.stats.clamped_low += count
        else:
            self.stats.clamped_high += count
        if not self._warned[kind]:
            self._warned[kind] = True
            bound = self.dt_min if kind == "low" else self.dt_max
            warnings.warn(
                f"Δt = {value!r} s is outside the policy's range [{self.dt_min}, {self.dt_max}] s and was "
                f"clamped to {bound} (warned once; runner.stats.clamped_{kind} counts every clamp)",
                DtClampWarning,
                stacklevel=6,
            )

    def _rows(self, rows: Any) -> Optional[np.ndarray]:
        return row_selection(rows, self.batch_size)

    def __repr__(self) -> str:
        return (
            f"PolicyRunner(task={self.task!r}, model={type(self.policy.model).__name__}, batch_size={self.batch_size}, "
            f"backend={self.backend!r}, nominal_dt={self.nominal_dt}, on_bad_input={self.on_bad_input!r})"
        )


__all__ = ["PolicyRunner", "RunnerStats", "RunnerState", "BadInputError", "NonFiniteOutputError", "DtClampWarning"]
