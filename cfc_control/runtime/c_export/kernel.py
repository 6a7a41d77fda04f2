"""The runner's C backend: a :class:`~cfc_control.runtime.compiled.Kernel` that steps a batch
through the compiled library (ctypes; one foreign call per step for the whole batch).

Buffers are numpy arrays allocated once; the call's arguments are prepared ctypes objects, so a
step costs a copy of the observation, the call and nothing else in Python. The state is two
(B, S) arrays (S = the state tensors' widths summed, in the model's order), double-buffered as
every kernel's.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Tuple

import numpy as np

from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.c_export.build import load_library
from cfc_control.runtime.c_export.source import describe, library_source, model_step
from cfc_control.runtime.kernel_contract import Kernel, Time

CTYPE_OF = {"float64": ctypes.c_double, "float32": ctypes.c_float}


class CProgram:
    """A policy's weights (one flat array) and its compiled library; ``program(B)`` makes a
    :class:`CKernel` for B rows. Built once, shared by every kernel (and :meth:`spawn`)."""

    def __init__(self, policy: RecurrentPolicy, dtype: str = "float32") -> None:
        self.dtype = dtype
        step = model_step(policy, dtype)
        self.state_sizes: Tuple[int, ...] = tuple(describe(policy).state_sizes)
        self.n_obs, self.n_act, self.state_size = step.n_obs, step.n_act, step.state_size
        self.weights = step.blob()
        source = library_source(step)
        sizes = (step.n_obs, step.n_act, step.state_size, step.emitter.weights.size, self.weights.itemsize)
        self.library = load_library(source, sizes)
        self.step_batch = self.library.cfc_step_batch
        self.step_batch.restype = ctypes.c_int
        self.time_steps = self.library.cfc_time_steps
        self.time_steps.restype = None

    def __call__(self, batch_size: int) -> "CKernel":
        return CKernel(self, batch_size)


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


class CKernel(Kernel):
    def __init__(self, program: CProgram, batch_size: int) -> None:
        super().__init__(batch_size)
        p = self.program = program
        B, S = batch_size, program.state_size
        dt = np.dtype(program.dtype)
        self.n_obs, self.n_act = p.n_obs, p.n_act
        self._buf = [np.zeros((B, max(S, 1)), dt) for _ in range(2)]
        offsets = np.cumsum((0,) + (p.state_sizes or (0,)))  # the MLP: one (B, 0) state, as torch's
        self._states = [tuple(buf[:, lo:hi] for lo, hi in zip(offsets[:-1], offsets[1:])) for buf in self._buf]
        self._obs = np.zeros((B, p.n_obs))  # float64: the library limits and casts it
        self._t = np.ones(B, dt)
        self._y = np.zeros((B, p.n_act), dt)
        self.y = self._y[0] if B == 1 else self._y
        self._obs_in = self._obs[0] if B == 1 else self._obs
        self._t_in = self._t.reshape(B, 1)
        common = (_ptr(p.weights), ctypes.c_int(B))
        self._args = [
            common + (_ptr(self._buf[s]), _ptr(self._obs), _ptr(self._t), _ptr(self._buf[1 - s]), _ptr(self._y))
            for s in (0, 1)
        ]
        self._call: Callable[..., int] = p.step_batch
        self._bad_rows = 0

    def step(self, obs: np.ndarray, t: Time) -> np.ndarray:
        np.copyto(self._obs_in, obs, casting="unsafe")  # unsafe: int observations are accepted too
        if self.batch_size == 1:
            self._t[0] = t if not isinstance(t, np.ndarray) else t.reshape(-1)[0]
        else:
            self._t_in[...] = t
        self._bad_rows = self._call(*self._args[self._cur])
        return self.y

    def result_finite(self, y: np.ndarray) -> bool:
        return self._bad_rows == 0  # counted in C by the step itself


def time_bare_steps(program: CProgram, obs: np.ndarray, t: float, n: int) -> np.ndarray:
    """Wall time (ns) of ``n`` single-row steps timed inside C (no Python between them)."""
    dt = np.dtype(program.dtype)
    o = np.ascontiguousarray(obs, dtype=dt)
    s_a, s_b = (np.zeros(max(program.state_size, 1), dt) for _ in range(2))
    y = np.zeros(program.n_act, dt)
    ns = np.zeros(n, dtype=np.int64 if ctypes.sizeof(ctypes.c_long) == 8 else np.int32)
    program.time_steps(_ptr(program.weights), ctypes.c_int(n), _ptr(o), CTYPE_OF[program.dtype](t), _ptr(s_a),
                       _ptr(s_b), _ptr(y), _ptr(ns))
    return ns


__all__ = ["CProgram", "CKernel", "time_bare_steps"]
