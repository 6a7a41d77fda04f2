"""The varying-period env: a stock MuJoCo env whose control period is drawn every step.

Each ``step(action)``:

1. draws a period Δt from the timing model, or takes the one given by ``set_next_period(dt)``
   (clipped either way so the episode ends exactly at the horizon);
2. realises it as ``n = ceil(Δt / stock_timestep)`` physics steps of ``Δt / n`` each, by setting
   the model's ``opt.timestep`` and the env's ``frame_skip`` and stepping the stock env once with
   the action held (zero-order hold). Every physics step stays at or below the stock timestep, and
   the stock env computes its velocities from ``self.dt = timestep * frame_skip``, so its reward
   *rate* is right for any Δt. At the nominal period this is exactly the stock step;
3. scales the stock per-step reward by ``Δt / nominal_dt``, so a return is reward per unit of
   simulated time and returns stay comparable across timings;
4. with packet loss, the observation at the end of the period is lost with probability P: the
   agent is not asked, the same action is held through another period, and the step returns after
   both (``info["dt"]`` is their total, rewards are summed). Losses can repeat.

``info`` always carries ``"dt"`` (the realised period in seconds; after ``reset`` the nominal
period, as no period has elapsed yet), ``"sim_time"`` (simulated seconds since reset) and
``"dropped"`` (observations lost inside this step). Other entries come from the stock env and
describe the last period, unscaled. Episodes truncate at ``horizon_s`` simulated seconds.
"""

from __future__ import annotations

import math
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from cfc_control.tasks.timing import TimingModel, parse_timing

# Relative slack when counting physics steps: Δt that is a multiple of the stock timestep up to
# rounding (0.05 / 0.01 = 5.000000000000001) must not get one step more.
_RATIO_EPS = 1e-9
# Seeds of the period and noise generators are derived from the reset seed with these stream ids,
# apart from the stock env's own generator, so a seed gives the stock env the same initial states
# whatever the timing.
TIMING_STREAM = 0x7193
NOISE_STREAM = 0x0B5E


def split_period(dt: float, stock_timestep: float) -> tuple[int, float]:
    """Physics steps ``n`` and step length (seconds) that realise a period of ``dt`` seconds.

    ``n = ceil(dt / stock_timestep)`` so every physics step is at most the stock one; a step length
    within 1e-9 of the stock timestep is snapped to it, which makes the nominal period reproduce
    the stock env bit for bit. The realised period is ``n * step``.
    """
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"a control period must be a positive number of seconds, got {dt!r}")
    n = max(1, math.ceil(dt / stock_timestep - _RATIO_EPS))
    step = dt / n
    if abs(step - stock_timestep) <= _RATIO_EPS * stock_timestep:
        step = stock_timestep
    return n, step


def check_action(action: Any, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` if ``action`` has the wrong shape or a non-finite entry."""
    a = np.asarray(action)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"action must be numeric, got dtype {a.dtype} ({action!r})")
    if a.shape != shape:
        raise ValueError(f"action must have shape {shape}, got {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a.ravel()))
    if bad.size:
        values = a.ravel()[bad].tolist()
        raise ValueError(
            f"action has non-finite entries at indices {bad.tolist()} (values {values}); "
            "the physics was not stepped"
        )


class VaryingPeriod(gym.Wrapper):
    """Runs a stock Gymnasium MuJoCo env at a control period drawn from a timing model.

    Observations and actions are the stock env's. Attributes: ``nominal_dt`` (the stock period,
    seconds), ``timing`` (the timing spec in seconds), ``timing_model``, ``horizon_s`` (episode
    length in simulated seconds, or None for no limit), ``sim_time`` and ``last_dt`` (the period
    that ended with the current observation, as a control loop measures it: ``info["dt"]`` of the
    last step, the nominal period after ``reset``). ``set_next_period(dt)``
    sets the next step's period from outside (a measured one) instead of drawing it.

    Wrap the env *without* Gymnasium's step-count TimeLimit (``gym.make(id,
    max_episode_steps=-1)``): the horizon here is in simulated time.
    """

    def __init__(
        self,
        env: gym.Env,
        timing: "str | TimingModel" = "Fixed",
        horizon_s: float | None = None,
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not (hasattr(base, "frame_skip") and hasattr(getattr(base, "model", None), "opt")):
            raise TypeError(
                f"a varying control period needs a Gymnasium MuJoCo env (with model.opt.timestep "
                f"and frame_skip), got {type(base).__name__}"
            )
        if horizon_s is not None and not (math.isfinite(horizon_s) and horizon_s > 0):
            raise ValueError(
                f"horizon_s must be a positive number of seconds or None, got {horizon_s!r}"
            )
        self._stock_timestep = float(base.model.opt.timestep)
        self._stock_frame_skip = int(base.frame_skip)
        self.nominal_dt: float = float(base.dt)
        self.timing_model: TimingModel = parse_timing(timing, self.nominal_dt)
        self.timing: str = self.timing_model.spec
        self.horizon_s: float | None = None if horizon_s is None else float(horizon_s)
        self.sim_time: float = 0.0
        self.last_dt: float = self.nominal_dt
        # The end of the episode is judged with this slack so that summing nominal periods
        # (1000 x 0.05 is not exactly 50.0 in floating point) ends it after the stock step count.
        self._time_tol = 1e-6 * self.nominal_dt
        self._rng: np.random.Generator | None = None
        self._next_period: float | None = None
        # The timing of the current episode (a steady period or a mixture's alternative is drawn
        # at reset; other models are their own episode model).
        self._episode_timing: TimingModel | None = None

    def set_next_period(self, dt: float) -> None:
        """Make the next ``step`` last ``dt`` seconds instead of a period drawn from the timing
        model: once, later steps draw again, and ``reset`` forgets it. For an env driven by a clock
        outside it (the real-time loop advances its plant by the measured time between ticks).
        The horizon still clips the period, and with packet loss the extra periods of a lost
        observation are drawn as usual. ValueError unless ``dt`` is a positive finite number."""
        if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
            raise TypeError(f"a control period must be a number of seconds, got {dt!r} ({type(dt).__name__})")
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"a control period must be a positive number of seconds, got {dt!r}")
        self._next_period = float(dt)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng([seed, TIMING_STREAM])
        elif self._rng is None:
            self._rng = np.random.default_rng()
        self._set_period(self._stock_frame_skip, self._stock_timestep)
        self._next_period = None
        self._episode_timing = self.timing_model.for_episode(self._rng)
        obs, info = self.env.reset(seed=seed, options=options)
        self.sim_time = 0.0
        self.last_dt = self.nominal_dt
        info = dict(info, dt=self.nominal_dt, sim_time=0.0, dropped=0)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        check_action(action, self.action_space.shape)
        if self._rng is None:
            self._rng = np.random.default_rng()
        total_dt = 0.0
        total_reward = 0.0
        dropped = 0
        while True:
            n, step = split_period(self._draw_period(), self._stock_timestep)
            self._set_period(n, step)
            obs, reward, terminated, truncated, info = self.env.step(action)
            realised = n * step
            total_reward += float(reward) * (realised / self.nominal_dt)
            total_dt += realised
            self.sim_time += realised
            if self.horizon_s is not None and self.sim_time >= self.horizon_s - self._time_tol:
                truncated = True
            if terminated or truncated or not self.episode_timing.sample_dropped(self._rng):
                break
            dropped += 1
        self.last_dt = total_dt
        info = dict(info, dt=total_dt, sim_time=self.sim_time, dropped=dropped)
        return obs, total_reward, bool(terminated), bool(truncated), info

    @property
    def episode_timing(self) -> TimingModel:
        """The timing model of the current episode (see :meth:`TimingModel.for_episode`)."""
        if self._episode_timing is None:  # stepped before any reset
            assert self._rng is not None
            self._episode_timing = self.timing_model.for_episode(self._rng)
        return self._episode_timing

    def _draw_period(self) -> float:
        assert self._rng is not None
        if self._next_period is not None:
            dt, self._next_period = self._next_period, None
        else:
            dt = self.episode_timing.sample(self._rng)
        if self.horizon_s is not None:
            remaining = self.horizon_s - self.sim_time
            # Clip the last period to land on the horizon; past the horizon (a step after
            # truncation), keep the drawn period as Gymnasium's TimeLimit keeps stepping.
            if remaining > self._time_tol and dt > remaining + self._time_tol:
                dt = remaining
        return dt

    def _set_period(self, n: int, step: float) -> None:
        base = self.env.unwrapped
        base.model.opt.timestep = step
        base.frame_skip = n
