"""An LQR expert for the pendulum tasks, computed from the MuJoCo model itself.

The controller linearises the *continuous-time* dynamics at the upright equilibrium (qpos = 0,
qvel = 0, ctrl = 0) by central finite differences of ``mj_forward`` (qacc as a function of qpos,
qvel and ctrl), discretises them exactly for a zero-order hold over the design period
(matrix exponential) and solves the discrete algebraic Riccati equation (scipy).

Why continuous linearisation rather than ``mjd_transitionFD``: the transition derivative is for
one physics substep of ``opt.timestep``, but our tasks hold each action for a period that varies
from step to step (and is not a multiple of the stock timestep); the continuous model can be
discretised for any period. Why a discrete design rather than the continuous Riccati solution:
the continuous gains ignore the hold and are too aggressive for InvertedDoublePendulum at 20 Hz
(it falls within ~100 steps), while the discrete design at the nominal period balances under
Fixed, Jitter (0.8x-1.2x), Irregular (0.5x-2x) timing and with packet loss.

The expert acts from the full simulator state ``env.unwrapped.data`` (qpos, qvel), whatever the
student observes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import mujoco
import numpy as np
import scipy.linalg

from cfc_control.experts.base import measured_period
from cfc_control.tasks import env_nominal_dt

SUPPORTED = {"InvertedPendulumEnv": "InvertedPendulum", "InvertedDoublePendulumEnv": "InvertedDoublePendulum"}


def linearize(model: mujoco.MjModel, eps: float = 1e-6) -> Tuple[np.ndarray, np.ndarray]:
    """Continuous dynamics d/dt [qpos, qvel] = A x + B u around x = 0, u = 0.

    Returns ``A`` (nq + nv, nq + nv) and ``B`` (nq + nv, nu). Needs nq == nv (hinge and slide
    joints only: no quaternions)."""
    if model.nq != model.nv:
        raise ValueError(f"linearize needs nq == nv (hinge/slide joints only), got nq={model.nq}, nv={model.nv}")
    data = mujoco.MjData(model)
    nq, nv, nu = model.nq, model.nv, model.nu

    def f(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        mujoco.mj_resetData(model, data)
        data.qpos[:] = x[:nq]
        data.qvel[:] = x[nq:]
        data.ctrl[:] = u
        mujoco.mj_forward(model, data)
        return np.concatenate([data.qvel, data.qacc])

    n = nq + nv
    x0, u0 = np.zeros(n), np.zeros(nu)
    a = np.zeros((n, n))
    b = np.zeros((n, nu))
    for i in range(n):
        e = np.zeros(n)
        e[i] = eps
        a[:, i] = (f(x0 + e, u0) - f(x0 - e, u0)) / (2 * eps)
    for j in range(nu):
        e = np.zeros(nu)
        e[j] = eps
        b[:, j] = (f(x0, u0 + e) - f(x0, u0 - e)) / (2 * eps)
    return a, b


def discretize(a: np.ndarray, b: np.ndarray, dt: float) -> Tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretisation over ``dt`` seconds: x+ = Ad x + Bd u."""
    n, m = b.shape
    block = np.zeros((n + m, n + m))
    block[:n, :n] = a
    block[:n, n:] = b
    e = scipy.linalg.expm(block * dt)
    return e[:n, :n], e[:n, n:]


def dlqr_gain(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray, dt: float) -> np.ndarray:
    """Gain K (nu, n) of u = -K x for the continuous model held over ``dt``; the stage costs are
    q dt and r dt so that the design approximates the same continuous cost at any period."""
    ad, bd = discretize(a, b, dt)
    ctrb = np.hstack([np.linalg.matrix_power(ad, i) @ bd for i in range(a.shape[0])])
    if np.linalg.matrix_rank(ctrb) < a.shape[0]:
        raise ValueError("the linearised model is not controllable; LQR cannot stabilise it")
    p = scipy.linalg.solve_discrete_are(ad, bd, q * dt, r * dt)
    return np.linalg.solve(r * dt + bd.T @ p @ bd, bd.T @ p @ ad)


class LQRExpert:
    """u = clip(-K [qpos, qvel], ctrl range) with K from :func:`dlqr_gain`.

    ``model``: the MuJoCo model (upright at qpos = 0); ``design_dt``: the period (seconds) the
    gain is designed for (the task's nominal period); ``q``: state cost diagonal (nq + nv,),
    default ones; ``r``: control cost (scalar or (nu,)), default 1.
    """

    name = "lqr"

    def __init__(self, model: mujoco.MjModel, design_dt: float, q: Optional[Sequence[float]] = None,
                 r: Optional[Sequence[float]] = None) -> None:
        if not design_dt > 0:
            raise ValueError(f"design_dt must be positive, got {design_dt}")
        a, b = linearize(model)
        self.design_dt = float(design_dt)
        self._design = _costs(a, b, q, r)
        self.gain = dlqr_gain(a, b, *self._design, self.design_dt)
        self.nq = model.nq
        ranges = np.asarray(model.actuator_ctrlrange, dtype=np.float64)
        limited = np.asarray(model.actuator_ctrllimited, dtype=bool)
        self.low = np.where(limited, ranges[:, 0], -np.inf)
        self.high = np.where(limited, ranges[:, 1], np.inf)

    @classmethod
    def for_env(cls, env: Any, **kw: Any) -> "LQRExpert":
        """The expert for a (wrapped) InvertedPendulum / InvertedDoublePendulum env, designed
        for its nominal period."""
        base = env.unwrapped
        if type(base).__name__ not in SUPPORTED:
            raise ValueError(
                f"the LQR expert supports {sorted(SUPPORTED.values())}, not {type(base).__name__}; "
                "use an SB3 expert directory (python -m cfc_control.experts.train)"
            )
        return cls(base.model, env_nominal_dt(env), **kw)

    def reset(self) -> None:
        """Stateless: nothing to reset."""

    def state(self, env: Any) -> np.ndarray:
        data = env.unwrapped.data
        return np.concatenate([data.qpos, data.qvel])

    def gain_for(self, env: Any) -> np.ndarray:
        """The gain used in ``env``'s current state: the one designed for the nominal period."""
        return self.gain

    def act(self, env: Any) -> np.ndarray:
        """The action (nu,) float32 for the env's current simulator state."""
        u = -self.gain_for(env) @ self.state(env)
        return np.clip(u, self.low, self.high).astype(np.float32)


class ScheduledLQRExpert(LQRExpert):
    """An LQR whose gain follows the measured period: gains are designed (as :func:`dlqr_gain`)
    at ``points`` periods spaced log-uniformly over ``period_range`` (seconds), and each step uses
    the gain interpolated, linearly in log Δt, at the period that has just elapsed (the env's
    ``last_dt``, what a control loop measures; the nominal period after a reset). Periods outside
    the range take the nearest end's gain.

    Why the elapsed period and not the coming one: a loop knows only the former, and the student
    this expert teaches sees the same Δt, so the teacher's labels depend on nothing the student
    cannot observe."""

    name = "lqr-scheduled"

    def __init__(self, model: mujoco.MjModel, design_dt: float, q: Optional[Sequence[float]] = None,
                 r: Optional[Sequence[float]] = None, period_range: Optional[Tuple[float, float]] = None,
                 points: int = 33) -> None:
        super().__init__(model, design_dt, q, r)
        low, high = period_range if period_range is not None else (design_dt / 4, design_dt * 4)
        if not (0 < low < high) or points < 2:
            raise ValueError(f"period_range must be 0 < low < high with points >= 2, got {period_range}, {points}")
        a, b = linearize(model)
        self.periods = np.geomspace(low, high, int(points))
        self._log_periods = np.log(self.periods)
        self.gains = np.stack([dlqr_gain(a, b, *self._design, float(dt)) for dt in self.periods])

    def gain_at(self, dt: float) -> np.ndarray:
        """The gain (nu, n) for a period of ``dt`` seconds."""
        x = float(np.clip(np.log(dt), self._log_periods[0], self._log_periods[-1]))
        i = int(np.clip(np.searchsorted(self._log_periods, x) - 1, 0, len(self.periods) - 2))
        w = (x - self._log_periods[i]) / (self._log_periods[i + 1] - self._log_periods[i])
        return (1.0 - w) * self.gains[i] + w * self.gains[i + 1]

    def gain_for(self, env: Any) -> np.ndarray:
        return self.gain_at(measured_period(env, self.design_dt))


def _costs(a: np.ndarray, b: np.ndarray, q: Optional[Sequence[float]],
           r: Optional[Sequence[float]]) -> Tuple[np.ndarray, np.ndarray]:
    """The state and control cost matrices (diagonal) from the user's ``q`` and ``r``."""
    n, nu = b.shape
    q_diag = np.ones(n) if q is None else np.asarray(q, dtype=np.float64).reshape(-1)
    r_diag = np.ones(nu) if r is None else np.broadcast_to(np.asarray(r, dtype=np.float64), (nu,))
    if q_diag.shape != (n,) or np.any(q_diag < 0) or np.any(r_diag <= 0):
        raise ValueError(f"q must be ({n},) non-negative and r positive, got q={q}, r={r}")
    return np.diag(q_diag), np.diag(r_diag)
