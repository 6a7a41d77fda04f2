"""Which kernel steps a :class:`~cfc_control.runtime.runner.PolicyRunner`: the backends by name.

* ``"c"``: the policy's step generated as C and built with the system's compiler into a cached
  library (:mod:`cfc_control.runtime.c_export`); every model kind. Raises :class:`CBackendError`
  where no compiler exists.
* ``"auto"``: "c" where a compiler exists; else the numpy kernel (saying so once per process with
  a :class:`CBackendWarning`), else torch.
* ``"numpy"``, ``"torch"``: :func:`cfc_control.runtime.compiled.compile_policy`.
"""

from __future__ import annotations

import warnings
from typing import Callable, Tuple

from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.compiled import DTYPES, Kernel, compile_policy

BACKENDS = ("auto", "c", "numpy", "torch")
_warned = False


class CBackendError(ValueError):
    """backend="c" cannot be used here (no compiler, or the build failed)."""


class CBackendWarning(UserWarning):
    """backend="auto" fell back from C to numpy."""


def choose_program(policy: RecurrentPolicy, backend: str = "auto", dtype: str = "float32"
                   ) -> Tuple[Callable[[int], Kernel], str]:
    """``(make_kernel, backend_used)`` for ``policy``; see the module docstring."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if backend in ("numpy", "torch"):
        return compile_policy(policy, backend, dtype)
    from cfc_control.runtime.c_export.build import CBuildError, find_compiler

    if find_compiler() is None:
        if backend == "c":
            raise CBackendError("backend='c' needs a C compiler and none was found (set $CC, or install gcc or "
                                "clang); backend='numpy' needs none")
        _fall_back("no C compiler found (set $CC, or install gcc or clang)")
        return compile_policy(policy, "auto", dtype)
    from cfc_control.runtime.c_export.kernel import CProgram

    try:
        return CProgram(policy, dtype), "c"
    except CBuildError as err:
        if backend == "c":
            raise CBackendError(f"backend='c': {err}") from err
        _fall_back(str(err))
        return compile_policy(policy, "auto", dtype)


def _fall_back(why: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"PolicyRunner backend='auto': {why}; using the numpy kernel (said once)", CBackendWarning,
                      stacklevel=4)


__all__ = ["BACKENDS", "CBackendError", "CBackendWarning", "choose_program"]
