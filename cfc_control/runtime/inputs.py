"""Checking what a control loop hands the runner: observations, Δt and timestamps. Every
function raises :class:`~cfc_control.runtime.errors.BadInputError` with a message that names the
argument, what was expected and what came."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import numpy as np

from cfc_control.runtime.errors import BadInputError

REAL_KINDS = "fiu"  # float, signed and unsigned int; not bool, complex, object or strings


def coerce_obs(obs: Any, batch_size: int, n_obs: int) -> np.ndarray:
    """``obs`` as a numeric array of shape (batch_size, n_obs), or (n_obs,) when batch_size is 1
    (both accepted then). No copy when it already is one."""
    if isinstance(obs, np.ma.MaskedArray):
        # Masked entries hold whatever was there (NaN, stale values) and numpy's checks skip them.
        if np.ma.getmaskarray(obs).any():
            raise BadInputError("observation is a masked array with masked entries; fill them first",
                                range(batch_size))
        obs = np.ma.getdata(obs)
    a = obs if type(obs) is np.ndarray else _asarray(obs, "observation", batch_size)  # np.matrix too
    if a.dtype.kind not in REAL_KINDS:
        raise BadInputError(
            f"observation must hold real numbers (float or int), got dtype {a.dtype}", range(batch_size)
        )
    if a.shape == (batch_size, n_obs) or (batch_size == 1 and a.shape == (n_obs,)):
        return a
    want = f"({n_obs},) or (1, {n_obs})" if batch_size == 1 else f"({batch_size}, {n_obs})"
    raise BadInputError(f"observation must have shape {want}, got {a.shape}", range(batch_size))


def _asarray(value: Any, what: str, batch_size: int) -> np.ndarray:
    try:
        return np.asarray(value)
    except (TypeError, ValueError, OverflowError) as err:  # ragged lists and the like
        raise BadInputError(f"{what} is not an array of numbers ({err})", range(batch_size)) from err


def all_finite(a: np.ndarray) -> bool:
    """True when every entry is finite. One dot product in the common case; the exact check
    only when it overflows or is NaN."""
    if a.size == 0:
        return True
    if a.dtype.kind != "f":
        return True
    if math.isfinite(float(np.vdot(a, a))):
        return True
    return bool(np.isfinite(a).all())


def nonfinite_report(a: np.ndarray) -> Tuple[np.ndarray, str]:
    """Rows (bool (B,)) of a 2-D array with a non-finite entry, and a message naming them."""
    bad = ~np.isfinite(a)
    rows = bad.any(axis=1)
    parts = []
    for r in np.flatnonzero(rows)[:4]:
        cols = np.flatnonzero(bad[r])
        parts.append(f"row {r}: indices {cols.tolist()[:8]} = {a[r, cols].tolist()[:8]}")
    more = "" if rows.sum() <= 4 else f" (and {int(rows.sum()) - 4} more rows)"
    return rows, "; ".join(parts) + more


def coerce_times(value: Any, name: str, batch_size: int) -> np.ndarray:
    """``dt`` or ``timestamp`` as a float64 (batch_size,) array: a number (every row), or an
    array of shape (B,) or (B, 1) (() and (1,) also for one row)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = _int_time(value, name, batch_size)  # a huge int would make an object array
    a = value if type(value) is np.ndarray else _asarray(value, name, batch_size)
    if a.dtype.kind not in REAL_KINDS:
        raise BadInputError(f"{name} must be a real number, got dtype {a.dtype}", range(batch_size))
    if a.ndim == 0:
        return np.full(batch_size, float(a))
    if a.shape in ((batch_size,), (batch_size, 1)):
        return a.astype(np.float64).reshape(batch_size)
    want = "a number" if batch_size == 1 else f"a number or shape ({batch_size},)"
    raise BadInputError(f"{name} must be {want}, got shape {a.shape}", range(batch_size))


def scalar_time(value: Any, name: str) -> float:
    """``dt`` or ``timestamp`` for one row as a Python float (a number or a 1-element array)."""
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_time(value, name, 1)
    return float(coerce_times(value, name, 1)[0])


def _int_time(value: int, name: str, batch_size: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise BadInputError(f"{name} is too large for a float: {str(value)[:20]}... "
                            f"({len(str(value))} digits)", range(batch_size)) from None


def bad_dt_rows(dt: np.ndarray) -> Optional[Tuple[np.ndarray, str]]:
    """Rows whose Δt is non-finite or <= 0, with a message; None when all are good."""
    bad = ~(np.isfinite(dt) & (dt > 0))
    if not bad.any():
        return None
    rows = np.flatnonzero(bad)
    return bad, f"dt must be finite and > 0 s, got {dt[rows].tolist()[:8]} at rows {rows.tolist()[:8]}"


def row_time(dt: Any, timestamp: Any, last_ts: float, nominal_dt: float) -> Tuple[float, float, Optional[str]]:
    """One row's ``(Δt seconds, timestamp (NaN: none), what is wrong or None)`` from a step's
    ``dt`` or ``timestamp`` (or neither: the nominal period), given the row's last timestamp
    ``last_ts`` (NaN: none; the first timestamped step then takes the nominal period)."""
    ts = math.nan
    if timestamp is not None:
        ts = scalar_time(timestamp, "timestamp")
        if not math.isfinite(ts):
            return nominal_dt, ts, f"timestamp must be finite, got {ts}"
        if math.isnan(last_ts):  # the first timestamped step since a reset
            return nominal_dt, ts, None
        d = ts - last_ts
        if not d > 0:
            return d, ts, f"timestamp {ts!r} does not advance past the previous {last_ts!r} (Δt = {d!r} s)"
        return d, ts, None
    if dt is None:
        return nominal_dt, ts, None
    d = scalar_time(dt, "dt")
    if not (math.isfinite(d) and d > 0):
        return d, ts, f"dt must be finite and > 0 s, got {d!r}"
    return d, ts, None


def batch_times(dt: Any, timestamp: Any, last_ts: np.ndarray, nominal_dt: float, out: np.ndarray
                ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """The batch form of :func:`row_time`: Δt seconds written into ``out`` (B,), and
    ``(timestamps (NaN: none), bad rows (bool (B,)), what is wrong)``."""
    B = out.shape[0]
    bad = np.zeros(B, dtype=bool)
    messages: List[str] = []
    if timestamp is not None:
        ts = coerce_times(timestamp, "timestamp", B)
        known = ~np.isnan(last_ts)
        np.subtract(ts, last_ts, out=out)
        out[~known] = nominal_dt
        nonfinite = ~np.isfinite(ts)
        stuck = known & ~nonfinite & ~(out > 0)
        if nonfinite.any():
            bad |= nonfinite
            messages.append(f"timestamp must be finite, got {ts[nonfinite].tolist()[:8]} "
                            f"at rows {np.flatnonzero(nonfinite).tolist()[:8]}")
        if stuck.any():
            r = np.flatnonzero(stuck)
            bad |= stuck
            messages.append(f"timestamp does not advance at rows {r.tolist()[:8]}: previous "
                            f"{last_ts[r].tolist()[:8]}, got {ts[r].tolist()[:8]}")
        return ts, bad, messages
    ts = np.full(B, np.nan)
    if dt is None:
        out[:] = nominal_dt
    else:
        out[:] = coerce_times(dt, "dt", B)
        found = bad_dt_rows(out)
        if found is not None:
            bad |= found[0]
            messages.append(found[1])
    return ts, bad, messages


__all__ = ["coerce_obs", "all_finite", "nonfinite_report", "coerce_times", "scalar_time", "bad_dt_rows", "row_time",
           "batch_times"]
