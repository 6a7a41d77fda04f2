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

import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from gymnasium import spaces

from cfc_control.policies.directory import load_policy
from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.backend import choose_program
from cfc_control.runtime.kernel_contract import Kernel, clip_ufunc
from cfc_control.runtime.errors import BadInputError, DtClampWarning, NonFiniteOutputError
from cfc_control.runtime.inputs import (
    all_finite,
    bad_dt_rows,
    coerce_obs,
    coerce_times,
    nonfinite_report,
    scalar_time,
)

BAD_INPUT_MODES = ("raise", "hold")
# Largest magnitude set_state accepts in a model state: far beyond what a trained model's state
# reaches, and far from float32 overflow (1e300 would become inf in a float32 kernel).
STATE_LIMIT = 1e9


@dataclass
class RunnerStats:
    """Counters since the runner was made (rows, for a batch)."""

    steps: int = 0  # step() calls that returned an action
    rows_stepped: int = 0  # rows whose state advanced
    clamped_low: int = 0  # Δt below dt_min, raised to it
    clamped_high: int = 0  # Δt above dt_max, lowered to it
    bad_input: int = 0  # rows refused for bad input
    non_finite_output: int = 0  # rows refused because the model gave NaN/inf
    held: int = 0  # rows answered with their held action (on_bad_input="hold")
    resets: int = 0  # reset() calls

    def as_dict(self) -> Dict[str, int]:
        return asdict(self)


@dataclass
class RunnerState:
    """A snapshot of a runner: the model state (one (B, H_k) array per state tensor, the torch
    model's layout), each row's last timestamp (NaN: none) and last good action (B, n_act)."""

    model_state: Tuple[np.ndarray, ...]
    last_timestamp: np.ndarray
    last_action: np.ndarray
    extra: Dict[str, Any] = field(default_factory=dict)


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
        t = policy.time_input
        self.nominal_dt, self.dt_min, self.dt_max = float(t.nominal_dt), float(t.dt_min), float(t.dt_max)
        self._inv_nominal = 1.0 / self.nominal_dt
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
        if isinstance(state, RunnerState):
            model_state, ts, act = state.model_state, state.last_timestamp, state.last_action
        else:
            model_state = (state,) if isinstance(state, np.ndarray) else tuple(state)
            ts, act = np.full(self.batch_size, np.nan), self._last_action.copy()
        current = self._kernel.state
        if len(model_state) != len(current):
            raise ValueError(f"model state must have {len(current)} arrays, got {len(model_state)}")
        arrays = []
        for k, (src, dst) in enumerate(zip(model_state, current)):
            a = np.asarray(src, dtype=np.float64)
            if a.shape != dst.shape:
                raise ValueError(f"model state array {k} must have shape {dst.shape}, got {a.shape}")
            if not (np.abs(a) <= STATE_LIMIT).all():  # also refuses NaN
                raise ValueError(f"model state array {k} has non-finite entries or entries beyond +-{STATE_LIMIT:g}")
            arrays.append(a)
        ts = np.asarray(ts, dtype=np.float64).reshape(-1)
        act = np.asarray(act, dtype=np.float64)
        if ts.shape != (self.batch_size,) or act.shape != (self.batch_size, self.n_act):
            raise ValueError(
                f"snapshot has timestamps {ts.shape} and actions {act.shape}, this runner needs "
                f"({self.batch_size},) and ({self.batch_size}, {self.n_act})"
            )
        space = self.action_space
        if not ((act >= space.low) & (act <= space.high)).all():  # also refuses NaN
            raise ValueError(f"snapshot's last actions must lie inside the action bounds "
                             f"[{space.low.tolist()}, {space.high.tolist()}]")
        if np.isinf(ts).any():
            raise ValueError("snapshot's timestamps must be finite (NaN: none)")
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
        o = obs
        if not (type(o) is np.ndarray and o.shape == (self.n_obs,) and o.dtype.kind == "f"):
            o = coerce_obs(obs, 1, self.n_obs)
        flat = o if o.ndim == 1 else o[0]
        error: Optional[Exception] = None
        if not all_finite(flat):
            error = BadInputError(
                f"observation has non-finite entries: {nonfinite_report(flat[None].astype(np.float64))[1]}", (0,)
            )
        ts = math.nan
        if timestamp is not None:
            ts = scalar_time(timestamp, "timestamp")
            last = float(self._last_ts[0])
            if not math.isfinite(ts):
                error = error or BadInputError(f"timestamp must be finite, got {ts}", (0,))
                d = self.nominal_dt
            elif math.isnan(last):  # the first timestamped step since a reset
                d = self.nominal_dt
            else:
                d = ts - last
                if not d > 0:
                    error = error or BadInputError(
                        f"timestamp {ts!r} does not advance past the previous {last!r} (Δt = {d!r} s)", (0,)
                    )
        elif dt is None:
            d = self.nominal_dt
        else:
            d = scalar_time(dt, "dt")
            if not (math.isfinite(d) and d > 0):
                error = error or BadInputError(f"dt must be finite and > 0 s, got {d!r}", (0,))
        if error is not None:
            return self._refuse(error, o.ndim == 1, "bad_input")
        if self._watch_periods and not self.trained_periods.contains(d):
            self._outside_training(d, d)
        if d < self.dt_min:
            self._clamped("low", d, 1)
            d = self.dt_min
        elif d > self.dt_max:
            self._clamped("high", d, 1)
            d = self.dt_max
        y = self._kernel.step(flat, d * self._inv_nominal)
        if not self._kernel.result_finite(y):
            return self._refuse(
                NonFiniteOutputError("the model produced a non-finite action or state; the state was not updated"),
                o.ndim == 1, "non_finite_output",
            )
        self._kernel.commit()
        out = clip_ufunc(y, self._low, self._high)
        self._last_action[0] = out
        self._last_ts[0] = ts
        st = self.stats
        st.steps += 1
        st.rows_stepped += 1
        return out if o.ndim == 1 else out[None]

    def _step_batch(self, obs: Any, dt: Any, timestamp: Any) -> np.ndarray:
        B = self.batch_size
        o = coerce_obs(obs, B, self.n_obs)
        bad = np.zeros(B, dtype=bool)
        messages = []
        if not all_finite(o):
            rows, msg = nonfinite_report(np.asarray(o, dtype=np.float64))
            bad |= rows
            messages.append(f"observation has non-finite entries: {msg}")
        d = self._dt
        if timestamp is not None:
            ts = coerce_times(timestamp, "timestamp", B)
            known = ~np.isnan(self._last_ts)
            np.subtract(ts, self._last_ts, out=d)
            d[~known] = self.nominal_dt
            nonfinite = ~np.isfinite(ts)
            stuck = known & ~nonfinite & ~(d > 0)
            if nonfinite.any():
                bad |= nonfinite
                messages.append(f"timestamp must be finite, got {ts[nonfinite].tolist()[:8]} "
                                f"at rows {np.flatnonzero(nonfinite).tolist()[:8]}")
            if stuck.any():
                r = np.flatnonzero(stuck)
                bad |= stuck
                messages.append(f"timestamp does not advance at rows {r.tolist()[:8]}: previous "
                                f"{self._last_ts[r].tolist()[:8]}, got {ts[r].tolist()[:8]}")
        else:
            ts = np.full(B, np.nan)
            if dt is None:
                d[:] = self.nominal_dt
            else:
                d[:] = coerce_times(dt, "dt", B)
                found = bad_dt_rows(d)
                if found is not None:
                    bad |= found[0]
                    messages.append(found[1])
        if bad.any():
            error = BadInputError("; ".join(messages), np.flatnonzero(bad))
            if self.on_bad_input == "raise" or bad.all():
                return self._refuse(error, False, "bad_input", rows=bad)
            self.last_error = error
            self.stats.bad_input += int(bad.sum())
            o = np.where(bad[:, None], 0.0, o)  # keep NaN out of the kernel; those rows are held
            d[bad] = self.nominal_dt
        if self._watch_periods:
            shortest, longest = float(d.min()), float(d.max())
            if not self.trained_periods.contains(shortest, longest):
                self._outside_training(shortest, longest)
        low, high = d < self.dt_min, d > self.dt_max
        if low.any():
            self._clamped("low", float(d[low].min()), int(low.sum()))
        if high.any():
            self._clamped("high", float(d[high].max()), int(high.sum()))
        np.clip(d, self.dt_min, self.dt_max, out=d)
        np.multiply(d, self._inv_nominal, out=self._t[:, 0])
        y = self._kernel.step(o, self._t)
        out_bad = self._pending_bad_rows(y)
        if out_bad is not None and self.on_bad_input == "raise":
            rows = np.flatnonzero(out_bad).tolist()[:8]
            error = NonFiniteOutputError(f"the model produced a non-finite action or state at rows {rows}; "
                                         "the state was not updated")
            return self._refuse(error, False, "non_finite_output", rows=out_bad)
        keep = bad if out_bad is None else (bad | out_bad)
        if out_bad is not None:
            self.stats.non_finite_output += int(out_bad.sum())
            rows = np.flatnonzero(out_bad).tolist()[:8]
            self.last_error = NonFiniteOutputError(f"non-finite model output at rows {rows}")
            if keep.all():
                self.stats.held += B
                self.stats.steps += 1
                return self._last_action.copy()
        any_keep = bool(keep.any())
        self._kernel.commit(keep if any_keep else None)
        y = clip_ufunc(y, self._low, self._high)
        st = self.stats
        st.steps += 1
        if any_keep:
            good = ~keep
            self._last_action[good] = y[good]
            self._last_ts[good] = ts[good]
            st.held += int(keep.sum())
            st.rows_stepped += int(good.sum())
            return self._last_action.copy()
        self._last_action[...] = y
        self._last_ts[...] = ts
        st.rows_stepped += B
        return y

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

    def _pending_finite(self) -> bool:
        return all(all_finite(s) for s in self._kernel.pending)

    def _pending_bad_rows(self, y: np.ndarray) -> Optional[np.ndarray]:
        if all_finite(y) and self._pending_finite():
            return None
        bad = ~np.isfinite(y).all(axis=1)
        for s in self._kernel.pending:
            if s.size:
                bad |= ~np.isfinite(s).all(axis=1)
        return bad if bad.any() else None

    def period_warning_given(self) -> None:
        """The caller has warned that the periods it will use lie outside the policy's trained
        ones (``run --rate``): the runner does not warn of it again."""
        self._watch_periods = False

    def _outside_training(self, shortest: float, longest: float) -> None:
        self._watch_periods = False
        self.trained_periods.warn_if_outside(shortest, longest, stacklevel=5)

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
                stacklevel=4,
            )

    def _rows(self, rows: Any) -> Optional[np.ndarray]:
        if rows is None:
            return None
        a = np.asarray(rows)
        if a.size == 0:  # "reset the rows that just finished" when none did
            return np.empty(0, np.intp)
        if a.dtype == bool:
            if a.shape != (self.batch_size,):
                raise ValueError(f"a row mask must have shape ({self.batch_size},), got {a.shape}")
            return a
        if a.dtype.kind not in "iu" or a.ndim > 1:
            raise ValueError(f"rows must be None, an int, a sequence of ints or a bool mask, got {rows!r}")
        a = a.reshape(-1)
        if a.size and (a.min() < 0 or a.max() >= self.batch_size):
            raise ValueError(f"rows {a.tolist()} out of range for batch_size {self.batch_size}")
        return a

    def __repr__(self) -> str:
        return (
            f"PolicyRunner(task={self.task!r}, model={type(self.policy.model).__name__}, batch_size={self.batch_size}, "
            f"backend={self.backend!r}, nominal_dt={self.nominal_dt}, on_bad_input={self.on_bad_input!r})"
        )


__all__ = ["PolicyRunner", "RunnerStats", "RunnerState", "BadInputError", "NonFiniteOutputError", "DtClampWarning"]
