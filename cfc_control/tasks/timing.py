"""Timing models: how long each control period lasts.

A timing model is written as a spec string, times in seconds::

    fixed:DT                 every period lasts DT
    uniform:LO,HI            uniform over [LO, HI]
    loguniform:LO,HI         log-uniform over [LO, HI] (as many short as long periods in ratio)
    steady:LO,HI             one period per episode, drawn log-uniformly over [LO, HI], then held:
                             a loop that runs steadily at a rate other than the nominal one
    ...+drop:P               packet loss: each observation is lost with probability P (0 <= P < 1)
    A|B|...                  a mixture: each episode runs under one of the alternatives, drawn
                             with equal probability (each may be a preset and carry its own +drop)

or a preset name from ``envs/presets.toml`` (Fixed, Jitter, Irregular), whose times are relative
to the task's nominal period, or ``Nx``, a fixed period of N times the nominal one (``0.5x``,
``2x``: the steady periods the READMEs' tables name so), either optionally followed by ``+drop:P``
(``"Jitter+drop:0.05"``).

Sampling uses a generator the caller owns (the env seeds it from its reset seed), so the same
seed gives the same sequence of periods. ``fixed`` draws nothing from it; at each reset the env
resolves the model for the episode (:meth:`TimingModel.for_episode`), which draws only for
``steady`` and mixtures.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence, Tuple

import numpy as np

from cfc_control.tasks.specs import timing_presets

SYNTAX = (
    "fixed:DT | uniform:LO,HI | loguniform:LO,HI | steady:LO,HI (seconds, 0 < LO < HI), optionally "
    "followed by +drop:P (0 <= P < 1); or a preset name ({presets}) or Nx (N times the nominal "
    "period, fixed), relative to the nominal period, optionally followed by +drop:P; alternatives "
    "drawn per episode joined by |"
)
_MULTIPLE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)x$", re.IGNORECASE)
KINDS = ("fixed", "uniform", "loguniform", "steady")
MIXTURE = "mixture"


def _fmt(x: float) -> str:
    # Readable and stable: 0.8 * 0.05 prints as 0.04, not 0.04000000000000001.
    return format(x, ".12g")


@dataclass(frozen=True)
class TimingModel:
    """A distribution of control periods (seconds) with an optional packet-loss probability.

    ``low == high`` for ``fixed``. ``drop`` is the probability that the observation at the end of
    a period is lost, so that the action is held through the next period too.
    """

    kind: str
    low: float
    high: float
    drop: float = 0.0
    # A mixture's alternatives (kind "mixture"; low, high and drop then span theirs).
    alternatives: Tuple["TimingModel", ...] = ()

    @classmethod
    def mixture(cls, alternatives: Sequence["TimingModel"]) -> "TimingModel":
        flat = tuple(m for a in alternatives for m in (a.alternatives or (a,)))
        return cls(MIXTURE, min(m.low for m in flat), max(m.high for m in flat), max(m.drop for m in flat), flat)

    @property
    def spec(self) -> str:
        """The canonical spec string, in seconds (parses back to this model)."""
        if self.kind == MIXTURE:
            return "|".join(m.spec for m in self.alternatives)
        if self.kind == "fixed":
            text = f"fixed:{_fmt(self.low)}"
        else:
            text = f"{self.kind}:{_fmt(self.low)},{_fmt(self.high)}"
        if self.drop > 0:
            text += f"+drop:{_fmt(self.drop)}"
        return text

    def for_episode(self, rng: np.random.Generator) -> "TimingModel":
        """The model one episode runs under: a mixture's alternative drawn with equal
        probability, a steady model's period drawn once and held; any other model is itself
        (and draws nothing, so their period sequences do not change)."""
        if self.kind == MIXTURE:
            return self.alternatives[int(rng.integers(len(self.alternatives)))].for_episode(rng)
        if self.kind == "steady":
            period = float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
            return TimingModel("fixed", period, period, self.drop)
        return self

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one period in seconds (a steady model or a mixture not resolved for an episode
        draws as if each period began a new episode)."""
        if self.kind in (MIXTURE, "steady"):
            return self.for_episode(rng).sample(rng)
        if self.kind == "fixed":
            return self.low
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def sample_dropped(self, rng: np.random.Generator) -> bool:
        """Whether the observation closing a period is lost (draws nothing when ``drop == 0``)."""
        return self.drop > 0 and bool(rng.random() < self.drop)

    def scaled(self, factor: float) -> "TimingModel":
        """The same model with every time multiplied by ``factor`` (drop unchanged), rounded to
        the canonical spec's 12 significant digits: a preset and its spec written out
        (``Jitter`` and ``uniform:0.04,0.06`` at a 0.05 s period) are then the same model and draw
        the same periods, so a card made with either replays exactly with the other."""
        if self.kind == MIXTURE:
            return TimingModel.mixture([m.scaled(factor) for m in self.alternatives])
        return replace(self, low=float(_fmt(self.low * factor)), high=float(_fmt(self.high * factor)))

    def __str__(self) -> str:
        return self.spec


def _error(spec: str, why: str, presets: Mapping[str, str]) -> ValueError:
    names = ", ".join(presets) or "none defined"
    return ValueError(
        f"timing spec {spec!r} is malformed: {why}. Syntax: {SYNTAX.format(presets=names)}"
    )


def _number(spec: str, text: str, what: str, presets: Mapping[str, str]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(spec, f"{what} {text.strip()!r} is not a number", presets) from None
    if not math.isfinite(value):
        raise _error(spec, f"{what} must be finite, got {text.strip()!r}", presets)
    return value


def _parse_base(spec: str, text: str, presets: Mapping[str, str]) -> TimingModel:
    kind, sep, args = text.partition(":")
    kind = kind.strip().lower()
    if not sep:
        raise _error(spec, f"{text.strip()!r} is neither KIND:ARGS nor a preset name", presets)
    if kind not in KINDS:
        raise _error(spec, f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})", presets)
    parts = args.split(",")
    expected = 1 if kind == "fixed" else 2
    if len(parts) != expected:
        shape = "DT" if kind == "fixed" else "LO,HI"
        raise _error(spec, f"{kind} takes {shape} ({expected} value(s)), got {args!r}", presets)
    values = [_number(spec, p, "time", presets) for p in parts]
    if any(v <= 0 for v in values):
        raise _error(spec, f"times must be positive seconds, got {args!r}", presets)
    if kind == "fixed":
        return TimingModel("fixed", values[0], values[0])
    low, high = values
    if not low < high:
        why = f"{kind} needs LO < HI, got {args!r} (use fixed:DT for one value)"
        raise _error(spec, why, presets)
    return TimingModel(kind, low, high)


def _parse_drop(spec: str, text: str, presets: Mapping[str, str]) -> float:
    name, sep, arg = text.partition(":")
    if name.strip().lower() != "drop" or not sep:
        raise _error(spec, f"unknown modifier {text.strip()!r} (only +drop:P exists)", presets)
    p = _number(spec, arg, "drop probability", presets)
    if not 0 <= p < 1:
        raise _error(spec, f"drop probability must be in [0, 1), got {arg.strip()!r}", presets)
    return p


def nominal_multiple(text: str) -> "float | None":
    """N of a timing written ``Nx`` (N times the nominal period: ``0.5x`` -> 0.5), else None."""
    match = _MULTIPLE.match(text.strip())
    return float(match.group(1)) if match else None


def _nominal(nominal_dt: "float | None", what: str, spec: str) -> float:
    """``nominal_dt`` checked for a spec that is relative to it (a preset, ``Nx``)."""
    if nominal_dt is None:
        raise ValueError(f"timing {what} is relative to the nominal period, but no nominal_dt "
                         f"was given for spec {spec!r}")
    if not (math.isfinite(nominal_dt) and nominal_dt > 0):
        raise ValueError(f"nominal_dt must be a positive number of seconds, got {nominal_dt!r}")
    return nominal_dt


def parse_timing(
    spec: "str | TimingModel",
    nominal_dt: float | None = None,
    presets: Mapping[str, str] | None = None,
) -> TimingModel:
    """Parse a timing spec (seconds), a preset name or ``Nx`` (relative to ``nominal_dt`` seconds).

    ``presets`` maps preset names to specs in units of the nominal period; by default the ones in
    ``envs/presets.toml``. Preset names match case-insensitively. Raises ``ValueError`` naming the
    spec and the syntax when it does not parse, or when a preset is used without ``nominal_dt``.
    """
    if isinstance(spec, TimingModel):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"timing spec must be a string, got {type(spec).__name__} {spec!r}")
    if presets is None:
        presets = timing_presets()
    if not spec.strip():
        raise _error(spec, "it is empty", presets)
    if "|" in spec:
        parts = spec.split("|")
        if any(not p.strip() for p in parts):
            raise _error(spec, "an alternative of the mixture is empty", presets)
        return TimingModel.mixture([parse_timing(p, nominal_dt, presets) for p in parts])
    head, *modifiers = spec.split("+")
    by_name = {name.lower(): (name, value) for name, value in presets.items()}
    factor = nominal_multiple(head)
    if factor is not None:
        if factor <= 0:
            raise _error(spec, f"{head.strip()!r}: the multiple of the nominal period must be positive", presets)
        model = TimingModel("fixed", factor, factor).scaled(_nominal(nominal_dt, repr(head.strip()), spec))
    elif head.strip().lower() in by_name:
        name, relative = by_name[head.strip().lower()]
        nominal = _nominal(nominal_dt, f"preset {name!r}", spec)
        try:
            model = parse_timing(relative, None, {}).scaled(nominal)
        except ValueError as e:
            raise ValueError(f"timing preset {name!r} (envs/presets.toml) is broken: {e}") from e
        if model.drop > 0 and modifiers:
            raise _error(spec, f"preset {name!r} already sets a drop probability", presets)
    else:
        model = _parse_base(spec, head, presets)
    drops = [_parse_drop(spec, m, presets) for m in modifiers]
    if len(drops) > 1:
        raise _error(spec, "+drop is given more than once", presets)
    if drops:
        model = replace(model, drop=drops[0])
    return model
