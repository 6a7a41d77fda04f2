"""The contract every compiled kernel follows (:class:`Kernel`), the folding of a policy's
normalisation and action mapping that kernels apply (:class:`Folds`), and the torch fallback
(:class:`TorchKernel`). The kernels themselves (``numpy_cfc``, ``numpy_baselines``,
``numpy_ltc``, the C backend) build on this module; :mod:`cfc_control.runtime.compiled` chooses
among them. See :mod:`cfc_control.runtime.compiled` for how folding works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.inputs import all_finite

Time = Union[float, np.ndarray]  # model time Δt / nominal: a number, or (B, 1) per row

try:  # the clip ufunc itself: np.clip's Python wrapper costs a microsecond more per call
    clip_ufunc = np._core.umath.clip  # type: ignore[attr-defined]
except AttributeError:  # numpy < 2
    clip_ufunc = np.core.umath.clip  # type: ignore[attr-defined]

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass
class Folds:
    """Normalisation and action mapping as a kernel applies them, from the policy's float32
    buffers. ``dtype`` is the kernel's float type. In float64 the normalisation is folded into
    the first weights (``obs_lo``/``obs_hi`` raw clip bounds, ``obs_scale`` 1/std, ``obs_shift``
    -mean/std); in float32 it is applied as torch does ((x - mean) / std, clipped), because a
    folded map of a raw observation with a large mean/std ratio loses the float32 cancellation.
    ``act_half``, ``act_center``, ``act_lo``, ``act_hi`` (n_act,). With ``bounded`` False the
    output is not clipped (what PPO's rollout reads of an actor's mean and of a critic's value,
    :func:`Folds.unbounded`)."""

    dtype: type
    mean: np.ndarray
    std: np.ndarray
    clip: float
    act_half: np.ndarray
    act_center: np.ndarray
    bounded: bool = True

    @classmethod
    def from_policy(cls, policy: RecurrentPolicy, dtype: type = np.float32) -> "Folds":
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().double().numpy().copy()

        return cls(dtype, arr(policy.obs_mean), arr(policy.obs_std),  # obs_std is std + eps already
                   float(policy.obs_clip), arr(policy.act_half), arr(policy.act_center))

    @classmethod
    def unbounded(cls, mean: np.ndarray, std: np.ndarray, clip: float, n_out: int,
                  dtype: type = np.float32) -> "Folds":
        """The normalisation ``clip((x - mean) / std, -clip, clip)`` (``std`` with its epsilon
        added) and the model's own output, neither mapped nor clipped."""
        return cls(dtype, np.asarray(mean, np.float64), np.asarray(std, np.float64), float(clip),
                   np.ones(n_out), np.zeros(n_out), bounded=False)

    def __post_init__(self) -> None:
        self.fold_obs = self.dtype == np.float64
        self.obs_lo, self.obs_hi = self.mean - self.clip * self.std, self.mean + self.clip * self.std
        self.obs_scale, self.obs_shift = 1.0 / self.std, -self.mean / self.std
        bound = 1.0 if self.bounded else np.inf
        self.act_lo = (self.act_center - bound * self.act_half).astype(self.dtype)
        self.act_hi = (self.act_center + bound * self.act_half).astype(self.dtype)
        self._mean, self._std = self.mean.astype(self.dtype), self.std.astype(self.dtype)

    def write_obs(self, obs: np.ndarray, out: np.ndarray) -> None:
        """The observation as the first weights expect it, written into ``out``: clipped raw
        (float64, folded) or normalised and clipped (float32)."""
        clip_ufunc(obs, self.obs_lo, self.obs_hi, out)  # in float64: a huge input cannot overflow
        if not self.fold_obs:  # within +-clip up to rounding, as torch's clamp after dividing
            np.subtract(out, self._mean, out)
            np.divide(out, self._std, out)

    def fold_input(self, weight: np.ndarray, bias: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """A map ``W z + b`` of the normalised observation ``z`` as a map of what
        :meth:`write_obs` writes. ``weight`` (out, n_obs), ``bias`` (out,)."""
        if not self.fold_obs:
            return weight, bias
        return weight * self.obs_scale, bias + weight @ self.obs_shift

    def fold_output(self, weight: np.ndarray, bias: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """A final Linear ``y = W h + b`` as ``center + half * y`` (clip afterwards).
        ``weight`` (n_act, k), ``bias`` (n_act,)."""
        return weight * self.act_half[:, None], bias * self.act_half + self.act_center

    def cast(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=self.dtype)


def as_numpy(t: Optional[torch.Tensor]) -> np.ndarray:
    """A parameter as a float64 numpy array (a copy)."""
    if t is None:
        raise ValueError("missing parameter")
    return t.detach().cpu().to(torch.float64).numpy().copy()


class Kernel:
    """One step of a policy for B rows, buffers preallocated, state double-buffered.

    Subclasses fill ``_states`` with two tuples (slot 0 and 1) of (B, H_k) arrays in the
    kernel's dtype (views into their buffers allowed) and implement :meth:`step`. Every model
    here starts from the zero state.
    """

    n_obs: int
    n_act: int
    batch_size: int

    def __init__(self, batch_size: int) -> None:
        self.batch_size = int(batch_size)
        self._cur = 0
        self._states: List[Tuple[np.ndarray, ...]] = [(), ()]

    # -- the step ------------------------------------------------------------------------------
    def step(self, obs: np.ndarray, t: Time) -> np.ndarray:
        """Raw observations ``obs`` (B, n_obs) ((n_obs,) when B == 1), model time ``t`` (a number
        or (B, 1)) -> actions (B, n_act) ((n_act,) when B == 1), inside the action bounds unless
        non-finite. The result is an internal buffer, overwritten by the next step. The new state
        is pending until :meth:`commit`."""
        raise NotImplementedError

    def result_finite(self, y: np.ndarray) -> bool:
        """Whether the last step's output ``y`` and the pending state are all finite (a kernel
        that knows it already, as the C one does, answers without looking again)."""
        return all_finite(y) and all(all_finite(s) for s in self.pending)

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> Tuple[np.ndarray, ...]:
        """The current state: views (B, H_k), one per state tensor."""
        return self._states[self._cur]

    @property
    def pending(self) -> Tuple[np.ndarray, ...]:
        """The state the last :meth:`step` computed (views)."""
        return self._states[1 - self._cur]

    def commit(self, keep_rows: Optional[np.ndarray] = None) -> None:
        """Make the pending state current; rows where ``keep_rows`` (bool (B,)) is true keep the
        current state instead."""
        if keep_rows is not None:
            for new, old in zip(self.pending, self.state):
                new[keep_rows] = old[keep_rows]
        self._cur = 1 - self._cur

    def reset(self, rows: Optional[np.ndarray] = None) -> None:
        """Set the state of ``rows`` (an index or bool mask; None: all) to the initial state."""
        for s in self.state:
            if rows is None:
                s[...] = 0.0
            else:
                s[rows] = 0.0

    def set_state(self, state: Sequence[np.ndarray]) -> None:
        for dst, src in zip(self.state, state):
            dst[...] = src


class TorchKernel(Kernel):
    """The fallback: the policy's own torch modules under ``torch.inference_mode`` (float32)."""

    def __init__(self, policy: RecurrentPolicy, batch_size: int) -> None:
        super().__init__(batch_size)
        self.policy = policy.eval()
        self.n_obs, self.n_act = policy.n_obs, policy.n_act
        with torch.inference_mode():
            init = policy.initial_state(batch_size)
        shapes = [s.shape[1] for s in init]
        self._states = [tuple(np.zeros((batch_size, h)) for h in shapes) for _ in range(2)]
        self._t = np.zeros((batch_size, 1), dtype=np.float32)
        self._out = np.zeros((batch_size, self.n_act))

    def step(self, obs: np.ndarray, t: Time) -> np.ndarray:
        b = self.batch_size
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(b, self.n_obs))
        self._t[...] = t
        hx_np = self.state
        hx = tuple(torch.as_tensor(s, dtype=torch.float32) for s in hx_np)
        with torch.inference_mode():
            p = self.policy
            y, new = p.model.step_states(p.normalize_obs(x), hx, torch.from_numpy(self._t))
            action = p.to_action(y)
        for dst, src in zip(self.pending, new):
            dst[...] = src.numpy()
        self._out[...] = action.numpy()
        return self._out[0] if b == 1 else self._out


__all__ = ["Kernel", "TorchKernel", "Folds", "clip_ufunc", "as_numpy", "Time", "DTYPES"]
