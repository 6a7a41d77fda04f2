"""How elapsed time reaches a model: the one owner of the Δt conversion, for torch, numpy and C.

A policy's model sees the *model time* ``clamp(Δt, dt_min, dt_max) / nominal_dt`` (Δt in
seconds; about 1 at the nominal rate). Every path that feeds a model goes through
:class:`TimeInput`:

* torch (training, the policy's ``step``/``forward``, the exports): :meth:`TimeInput.model_time`;
* numpy (the runner's kernels): :meth:`TimeInput.model_time_array` (in place, (B,) rows) and
  :meth:`TimeInput.model_time_scalar` (one row), which multiply by ``1 / nominal_dt`` (the
  runner's arithmetic since it was written; within an ulp of the division);
* C (the generated step): :meth:`TimeInput.c_source`.

An observation that carries Δt as its last channel (a task's ``dt_in_obs=True``: Δt / nominal_dt)
is split by :meth:`TimeInput.split_dt_channel` (numpy: seconds in float64) and
:meth:`TimeInput.split_dt_channel_torch` (seconds in the tensor's dtype). The counting of clamps
(the runner's statistics and warnings) uses :meth:`TimeInput.outside`.

A *time-blind* input (``blind=True``) feeds the model the nominal period whatever Δt is (model
time 1): the ablation that shows what the explicit time input is worth. Δt is still checked and
its clamps still counted; only what reaches the model changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from cfc_control.policies.periods import TrainedPeriods


@dataclass
class TimeInput:
    """How elapsed time reaches the model: Δt (s) clamped to [dt_min, dt_max], over nominal_dt."""

    nominal_dt: float
    dt_min: float
    dt_max: float
    # The periods of the training distribution (None: not recorded; see policies.periods).
    trained: Optional[TrainedPeriods] = None
    # Hold the model's time input at the nominal period (the time-blind ablation).
    blind: bool = False

    def __post_init__(self) -> None:
        values = (self.nominal_dt, self.dt_min, self.dt_max)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"time input needs finite dt_min, nominal_dt, dt_max, got {values}")
        if not (0 < self.dt_min <= self.nominal_dt <= self.dt_max):
            raise ValueError(
                f"time input needs 0 < dt_min <= nominal_dt <= dt_max, got "
                f"{self.dt_min}, {self.nominal_dt}, {self.dt_max}"
            )

    @classmethod
    def around(cls, nominal_dt: float, low: float = 0.25, high: float = 4.0) -> "TimeInput":
        """The default accepted range: a quarter to four times the nominal period (Irregular
        timing spans 0.5x-2x, and a lost packet doubles a period)."""
        return cls(float(nominal_dt), low * float(nominal_dt), high * float(nominal_dt))

    # -- the conversion: torch ------------------------------------------------------------------
    def model_time(self, dt_seconds: Tensor) -> Tensor:
        """Δt (seconds, any shape) -> the model time clamp(Δt, dt_min, dt_max) / nominal_dt
        (ones when blind)."""
        if self.blind:
            return torch.ones_like(dt_seconds)
        return dt_seconds.clamp(self.dt_min, self.dt_max) / self.nominal_dt

    def split_dt_channel_torch(self, obs: Tensor) -> Tuple[Tensor, Tensor]:
        """Observations (..., n + 1) whose last channel is Δt / nominal_dt -> the observations
        (..., n) and Δt (...,) in seconds (the tensor's dtype)."""
        return without_dt_channel(obs), obs[..., -1] * self.nominal_dt

    def nominal_torch(self, shape: Tuple[int, ...], like: Tensor) -> Tensor:
        """The nominal period (seconds) for every entry of ``shape`` (``like``'s dtype and device)."""
        return torch.full(shape, self.nominal_dt, dtype=like.dtype, device=like.device)

    # -- the conversion: numpy ------------------------------------------------------------------
    def outside(self, dt_seconds: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Bool masks of the entries of ``dt_seconds`` below dt_min and above dt_max (the ones
        :meth:`model_time_array` clamps)."""
        return dt_seconds < self.dt_min, dt_seconds > self.dt_max

    def model_time_array(self, dt_seconds: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Δt (seconds, float64) -> model time, written into ``out``; ``dt_seconds`` is clamped in
        place. Δt * (1 / nominal_dt), as :meth:`model_time_scalar`."""
        np.clip(dt_seconds, self.dt_min, self.dt_max, out=dt_seconds)
        if self.blind:
            out.fill(1.0)
            return out
        return np.multiply(dt_seconds, 1.0 / self.nominal_dt, out=out)

    def model_time_scalar(self, dt_seconds: float) -> float:
        """One Δt (seconds, not NaN) -> the model time, as :meth:`model_time_array` computes it."""
        if self.blind:
            return 1.0
        d = self.dt_min if dt_seconds < self.dt_min else (self.dt_max if dt_seconds > self.dt_max else dt_seconds)
        return d * (1.0 / self.nominal_dt)

    def split_dt_channel(self, obs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Observations (..., n + 1) whose last channel is Δt / nominal_dt -> the observations
        (..., n) and Δt (...,) in seconds, float64."""
        return without_dt_channel(obs), obs[..., -1].astype(np.float64) * self.nominal_dt

    # -- the conversion: C ----------------------------------------------------------------------
    def c_source(self, number: Callable[[float], str]) -> str:
        """The C definitions of the conversion: the constants ``nominal_dt``, ``dt_min``,
        ``dt_max`` (double) and ``static double model_time(double dt_seconds)``. ``number``
        writes a double as a C literal."""
        return (
            f"static const double nominal_dt = {number(self.nominal_dt)};\n"
            f"static const double dt_min = {number(self.dt_min)};\n"
            f"static const double dt_max = {number(self.dt_max)};\n"
            "\n"
            "/* The model time: dt (seconds) clamped to [dt_min, dt_max], over the nominal period. */\n"
            "static double model_time(double dt_seconds)\n"
            "{\n"
            + ("    /* time-blind: the model always sees the nominal period */\n"
               "    (void)dt_seconds; (void)dt_min; (void)dt_max; (void)nominal_dt;\n"
               "    return 1.0;\n" if self.blind else
               "    double dt = dt_seconds < dt_min ? dt_min : (dt_seconds > dt_max ? dt_max : dt_seconds);\n"
               "    return dt / nominal_dt;\n")
            + "}\n"
        )

    # -- files ----------------------------------------------------------------------------------
    def to_config(self) -> Dict[str, Any]:
        cfg = {"nominal_dt": self.nominal_dt, "dt_min": self.dt_min, "dt_max": self.dt_max,
               "model_time": "1 (time-blind)" if self.blind else "dt / nominal_dt"}
        if self.blind:
            cfg["blind"] = True
        if self.trained is not None:
            cfg["trained"] = self.trained.to_config()
        return cfg

    @classmethod
    def from_config(cls, cfg: Dict[str, Any]) -> "TimeInput":
        trained = TrainedPeriods.from_config(cfg["trained"]) if cfg.get("trained") is not None else None
        blind = cfg.get("blind", False)
        if not isinstance(blind, bool):
            raise ValueError(f"time input 'blind' must be true or false, got {blind!r:.40}")
        return cls(float(cfg["nominal_dt"]), float(cfg["dt_min"]), float(cfg["dt_max"]), trained, blind)


def without_dt_channel(obs: Any) -> Any:
    """Observations (..., n + 1) (an array or a tensor) without their last, Δt channel (a view)."""
    return obs[..., :-1]


__all__ = ["TimeInput", "without_dt_channel"]
