"""Step paths "compiled" from a policy's trained weights: the choice of kernel. The contract every
kernel follows and the folding of normalisation and action mapping into the weights are in
:mod:`cfc_control.runtime.kernel_contract` (re-exported here), which the kernels import, so that
choosing among them imports no module that imports this one.

A :class:`Kernel` runs one step of a whole policy (raw observation in, action out) for a fixed
batch of B rows, with every buffer allocated once. The state is double-buffered: ``step`` writes
the new state beside the current one and ``commit`` makes it current (keeping chosen rows as they
were), so a step whose output is refused leaves the state untouched at no copying cost.

Folding (exact up to rounding; the policy's float32 statistics are used, as training saw them):

* normalisation ``clip((x - mean) / std, -c, c)`` equals ``(clip(x, mean - c std, mean + c std)
  - mean) / std``, so a kernel clips the raw observation and the affine part goes into the first
  weight matrix that reads it (``W' = W / std``, ``b' = b - W mean / std``);
* the action ``center + half * clip(y, -1, 1)`` equals ``clip(center + half * y, low, high)``, so
  a final Linear absorbs ``half`` and ``center`` and only one clip remains.

Kernels run in float32 (the default: numpy's float32 BLAS and SIMD tanh are about twice as fast
as float64 at batch 64, a little faster at batch 1) or float64 (normalisation folded too).
:func:`compile_policy` picks the numpy kernel for the model (CfC in every mode, wired, mixed
memory; LTC; LSTM, GRU, MLP) and falls back to :class:`TorchKernel` (``torch.inference_mode``) for
the rest (an MLP with elu).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from cfc_control.models.lowering import StepDescription
from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime import numpy_baselines, numpy_cfc, numpy_ltc
from cfc_control.runtime.kernel_contract import (DTYPES, Folds, Kernel, Time, TorchKernel, as_numpy,
                                                 clip_ufunc)

# A numpy kernel's builder reads the model's step description (models/lowering.py), never the
# model itself; None: not a kind it runs.
Builder = Callable[[StepDescription, Folds], Optional[Callable[[int], Kernel]]]


BUILDERS: List[Builder] = [numpy_cfc.program_for, numpy_baselines.program_for, numpy_ltc.program_for]


def numpy_program(model: object, folds: Folds) -> Optional[Callable[[int], Kernel]]:
    """The numpy kernel builder (``builder(batch_size)``) of a model's step with ``folds``
    around it, or None when no numpy kernel runs that model (or it describes no step)."""
    describe = getattr(model, "step_description", None)
    if describe is None:
        return None
    desc = describe()
    for build in BUILDERS:
        program = build(desc, folds)
        if program is not None:
            return program
    return None


def compile_policy(policy: RecurrentPolicy, backend: str = "auto", dtype: str = "float32"
                   ) -> Tuple[Callable[[int], Kernel], str]:
    """``(make_kernel, backend_used)``: ``make_kernel(batch_size)`` builds a :class:`Kernel` for
    ``policy`` (the weights are read now; later changes to the module are not seen).

    ``backend``: "numpy" (raise if the model has no numpy kernel), "torch", or "auto" (numpy
    when supported, else torch). ``dtype``: the numpy kernel's "float32" or "float64"."""
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if backend != "torch":
        program = numpy_program(policy.model, Folds.from_policy(policy, DTYPES[dtype]))
        if program is not None:
            return program, "numpy"
        if backend == "numpy":
            config = repr(policy.model.model_config())[:200]
            raise ValueError(f"no numpy kernel for {type(policy.model).__name__} {config}; "
                             "use backend='torch' or 'auto'")
    return (lambda batch_size: TorchKernel(policy, batch_size)), "torch"


__all__ = ["Kernel", "TorchKernel", "Folds", "compile_policy", "numpy_program", "clip_ufunc", "as_numpy", "Time", "DTYPES"]
