"""The periods a policy was trained for, and the one warning everything that runs it gives.

A policy clamps Δt to its accepted range [dt_min, dt_max] (what its model can be fed); the
periods it was *trained* under are narrower: the timing distribution of its training task. Run
outside them, it may still work (a CfC's time input is explicit) or may not, so the runner, the
node, ``run``, ``eval`` and ``view`` say so once, visibly, with :class:`PeriodOutsideTrainingWarning`.

The range is read from config.json's ``time.trained`` (``{"timing", "low", "high"}``, seconds),
written by every trainer; a policy written before that records it is given the timing of the
task it names, looked up in the task registry (never imported).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Optional

import gymnasium as gym

from cfc_control.tasks.timing import TimingModel, parse_timing


class PeriodOutsideTrainingWarning(UserWarning):
    """A policy is about to run at a period outside the ones it was trained under."""


@dataclass(frozen=True)
class TrainedPeriods:
    """``timing``: the training task's timing spec (seconds); ``low``..``high``: the periods an
    observation arrived after in training (with packet loss, a lost observation makes the next
    period twice as long, so ``high`` is twice the distribution's)."""

    timing: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 < self.low <= self.high):
            raise ValueError(f"trained periods need 0 < low <= high (seconds), got {self.low}, {self.high}")

    @classmethod
    def of(cls, timing: TimingModel) -> "TrainedPeriods":
        """The periods ``timing`` produces (a mixture: the span of its alternatives')."""
        models = timing.alternatives or (timing,)
        return cls(timing.spec, min(m.low for m in models), max(m.high * (2.0 if m.drop > 0 else 1.0) for m in models))

    def contains(self, low: float, high: Optional[float] = None) -> bool:
        """Whether periods from ``low`` to ``high`` (seconds; one period when ``high`` is None)
        lie inside the trained range, with a relative slack of 1e-6 for rounding."""
        high = low if high is None else high
        return self.low * (1 - 1e-6) <= low and high <= self.high * (1 + 1e-6)

    def message(self, low: float, high: Optional[float] = None, what: str = "Δt") -> str:
        span = f"{low:.6g} s" if high is None or high == low else f"{low:.6g}-{high:.6g} s"
        return (f"{what} = {span} is outside the periods this policy was trained for "
                f"({self.low:.6g}-{self.high:.6g} s, timing {self.timing}); it may not hold there")

    def warn_if_outside(self, low: float, high: Optional[float] = None, what: str = "Δt",
                        stacklevel: int = 3) -> bool:
        """Warn (:class:`PeriodOutsideTrainingWarning`) when outside; True if it warned."""
        if self.contains(low, high):
            return False
        warnings.warn(self.message(low, high, what), PeriodOutsideTrainingWarning, stacklevel=stacklevel)
        return True

    def to_config(self) -> Dict[str, Any]:
        return {"timing": self.timing, "low": self.low, "high": self.high}

    @classmethod
    def from_config(cls, cfg: Dict[str, Any]) -> "TrainedPeriods":
        return cls(str(cfg["timing"]), float(cfg["low"]), float(cfg["high"]))


def task_periods(task: Optional[str], nominal_dt: float) -> Optional[TrainedPeriods]:
    """The trained periods of a policy that names ``task`` but records none: the registered
    task's timing, when ``task`` is a registered id (looked up as is: a stored string is data,
    nothing is resolved or imported). None when it is not."""
    if not isinstance(task, str) or task not in gym.registry:
        return None
    timing = (gym.registry[task].kwargs or {}).get("timing")
    if not isinstance(timing, str):
        return None
    try:
        return TrainedPeriods.of(parse_timing(timing, nominal_dt))
    except ValueError:
        return None


def warn_if_env_outside(trained: Optional[TrainedPeriods], env: Any, stacklevel: int = 3) -> bool:
    """Warn once when the timing ``env`` runs at (its timing model, through any wrappers) reaches
    periods outside ``trained``; True if it warned. Nothing to compare (no record, an env without
    a timing model): no warning."""
    if trained is None:
        return False
    try:
        timing = env.get_wrapper_attr("timing_model")
    except AttributeError:
        return False
    span = TrainedPeriods.of(timing)
    return trained.warn_if_outside(span.low, span.high, what=f"the timing {timing.spec}", stacklevel=stacklevel + 1)

