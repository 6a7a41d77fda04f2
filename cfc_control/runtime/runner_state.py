"""What a :class:`~cfc_control.runtime.runner.PolicyRunner` keeps besides its kernel: its counters
(:class:`RunnerStats`), its snapshots (:class:`RunnerState`) and the checks a snapshot or a row
selection passes before the runner takes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from gymnasium import spaces

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


def checked_snapshot(
    state: Union[RunnerState, Sequence[np.ndarray], np.ndarray],
    current: Tuple[np.ndarray, ...],
    last_action: np.ndarray,
    action_space: spaces.Box,
) -> Tuple[List[np.ndarray], np.ndarray, np.ndarray]:
    """``(model state arrays, timestamps, last actions)`` from what ``set_state`` was given, for a
    runner whose kernel state is ``current`` and whose last actions are ``last_action`` (B, n_act);
    raises ValueError naming what does not fit (see ``PolicyRunner.set_state``)."""
    batch_size, n_act = last_action.shape
    if isinstance(state, RunnerState):
        model_state, ts, act = state.model_state, state.last_timestamp, state.last_action
    else:
        model_state = (state,) if isinstance(state, np.ndarray) else tuple(state)
        ts, act = np.full(batch_size, np.nan), last_action.copy()
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
    if ts.shape != (batch_size,) or act.shape != (batch_size, n_act):
        raise ValueError(
            f"snapshot has timestamps {ts.shape} and actions {act.shape}, this runner needs "
            f"({batch_size},) and ({batch_size}, {n_act})"
        )
    if not ((act >= action_space.low) & (act <= action_space.high)).all():  # also refuses NaN
        raise ValueError(f"snapshot's last actions must lie inside the action bounds "
                         f"[{action_space.low.tolist()}, {action_space.high.tolist()}]")
    if np.isinf(ts).any():
        raise ValueError("snapshot's timestamps must be finite (NaN: none)")
    return arrays, ts, act


def row_selection(rows: Any, batch_size: int) -> Optional[np.ndarray]:
    """``reset``'s rows (None: all; an int, a sequence of ints or a bool mask (B,)) as an index
    array or a bool mask, checked against ``batch_size``."""
    if rows is None:
        return None
    a = np.asarray(rows)
    if a.size == 0:  # "reset the rows that just finished" when none did
        return np.empty(0, np.intp)
    if a.dtype == bool:
        if a.shape != (batch_size,):
            raise ValueError(f"a row mask must have shape ({batch_size},), got {a.shape}")
        return a
    if a.dtype.kind not in "iu" or a.ndim > 1:
        raise ValueError(f"rows must be None, an int, a sequence of ints or a bool mask, got {rows!r}")
    a = a.reshape(-1)
    if a.size and (a.min() < 0 or a.max() >= batch_size):
        raise ValueError(f"rows {a.tolist()} out of range for batch_size {batch_size}")
    return a


__all__ = ["RunnerStats", "RunnerState", "STATE_LIMIT", "checked_snapshot", "row_selection"]
