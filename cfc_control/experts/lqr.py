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
        n, nu = b.shape
        q_diag = np.ones(n) if q is None else np.asarray(q, dtype=np.float64).reshape(-1)
        r_diag = np.ones(nu) if r is None else np.broadcast_to(np.asarray(r, dtype=np.float64), (nu,))
        if q_diag.shape != (n,) or np.any(q_diag < 0) or np.any(r_diag <= 0):
            raise ValueError(f"q must be ({n},) non-negative and r positive, got q={q}, r={r}")
        self.design_dt = float(design_dt)
        self.gain = dlqr_gain(a, b, np.diag(q_diag), np.diag(r_diag), self.design_dt)
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

    def act(self, env: Any) -> np.ndarray:
        """The action (nu,) float32 for the env's current simulator state."""
        u = -self.gain @ self.state(env)
        return np.clip(u, self.low, self.high).astype(np.float32)
