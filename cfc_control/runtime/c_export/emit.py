"""What every generated C step shares: the weights laid out in one flat array, the C99 helpers a
cell may call (emitted only when used, so ``-Wall -Werror`` sees no unused function), and the
number formats.

The weights live in one array ``w`` that the model step receives as an argument: the exported
source holds it as ``static const`` data, while the runner's compiled library gets it from numpy
at run time, so one compiled library serves every policy of the same architecture (its cache key
is the source, which holds shapes but no weight values).

Matrices are stored transposed, (in, out) row-major, so that ``y += x[i] * row_i`` runs over
contiguous outputs: that loop vectorises without reassociating sums (a dot-product loop would
not, under strict IEEE semantics), which is what makes the step fast without ``-ffast-math``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Set, Tuple

import numpy as np

CTYPES = {"float64": "double", "float32": "float"}


@dataclass
class Weights:
    """The flat weight array: ``add`` appends an array and returns the C name a step uses."""

    arrays: List[Tuple[str, np.ndarray, int]] = field(default_factory=list)  # (C name, flat, offset)
    size: int = 0

    def add(self, name: str, array: np.ndarray, transpose: bool = False) -> str:
        a = np.asarray(array, dtype=np.float64)
        if transpose:
            a = a.T
        flat = np.ascontiguousarray(a).reshape(-1)
        cname = "W_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        if any(n == cname for n, _, _ in self.arrays):
            raise ValueError(f"weight {name!r} added twice")
        self.arrays.append((cname, flat, self.size))
        self.size += flat.size
        return cname

    def blob(self, dtype: str) -> np.ndarray:
        """Every array concatenated, in the kernel's dtype."""
        out = np.zeros(max(self.size, 1), dtype=np.dtype(dtype))
        for _, flat, off in self.arrays:
            out[off : off + flat.size] = flat
        return out

    def pointers(self) -> str:
        """The declarations at the top of the model step: one named pointer per array."""
        return "\n".join(f"    const real *const {n} = w + {off}; /* {flat.size} */" for n, flat, off in self.arrays)


# The helpers a cell can ask for, by name. Each is C99 on ``real`` with the math functions named
# by {exp}, {tanh}, ... (double or float variants).
HELPERS: Dict[str, str] = {
    "affine": """\
/* y = b + x W, W stored (n_in, n_out) row-major; b may be NULL (then y = x W). */
static void affine(real *restrict y, const real *restrict wt, const real *restrict b,
                   const real *restrict x, int n_in, int n_out)
{{
    int i, o;
    for (o = 0; o < n_out; ++o)
        y[o] = b ? b[o] : (real)0;
    for (i = 0; i < n_in; ++i) {{
        const real xi = x[i];
        const real *restrict row = wt + (long)i * n_out;
        for (o = 0; o < n_out; ++o)
            y[o] += xi * row[o];
    }}
}}
""",
    "accumulate": """\
/* y += x W, W stored (n_in, n_out) row-major. */
static void accumulate(real *restrict y, const real *restrict wt, const real *restrict x, int n_in, int n_out)
{{
    int i, o;
    for (i = 0; i < n_in; ++i) {{
        const real xi = x[i];
        const real *restrict row = wt + (long)i * n_out;
        for (o = 0; o < n_out; ++o)
            y[o] += xi * row[o];
    }}
}}
""",
    "sigmoid": """\
static real sigmoid(real v)
{{
    return (real)1 / ((real)1 + {exp}(-v));
}}
""",
}

ACTIVATIONS: Dict[str, str] = {
    "lecun_tanh": "(real)1.7159 * {tanh}((real)0.666 * {v})",
    "tanh": "{tanh}({v})",
    "relu": "({v} > 0 ? {v} : (real)0)",
    "silu": "{v} * sigmoid({v})",
    "gelu": "(real)0.5 * {v} * ((real)1 + {erf}({v} * (real)0.70710678118654752440))",
    "elu": "({v} > 0 ? {v} : {expm1}({v}))",
}


class Emitter:
    """Collects what a generated step needs: helpers used, the math functions' names for the
    dtype, and the weights."""

    def __init__(self, dtype: str) -> None:
        if dtype not in CTYPES:
            raise ValueError(f"dtype must be one of {sorted(CTYPES)}, got {dtype!r}")
        self.dtype = dtype
        self.weights = Weights()
        self.used: Set[str] = set()
        suffix = "f" if dtype == "float32" else ""
        self.fn = {name: name + suffix for name in ("exp", "tanh", "erf", "expm1", "fabs")}

    def need(self, helper: str) -> None:
        self.used.add(helper)

    def activation(self, name: str, v: str) -> str:
        if name not in ACTIVATIONS:
            raise ValueError(f"no C for activation {name!r}")
        if name == "silu":
            self.need("sigmoid")
        return ACTIVATIONS[name].format(v=v, **self.fn)

    def helpers(self) -> str:
        order = [name for name in HELPERS if name in self.used]
        return "\n".join(HELPERS[name].format(**self.fn) for name in order)

    def affine(self, y: str, name: str, weight: np.ndarray, bias_name: str, bias, x: str) -> str:
        """C that sets ``y = bias + weight x`` (torch layout (out, in)); ``bias`` None: no bias."""
        self.need("affine")
        wt = self.weights.add(name, weight, transpose=True)
        b = self.weights.add(bias_name, bias) if bias is not None else "0"
        n_out, n_in = weight.shape
        return f"affine({y}, {wt}, {b}, {x}, {n_in}, {n_out});"

    def accumulate(self, y: str, name: str, weight: np.ndarray, x: str) -> str:
        """C that adds ``weight x`` to ``y`` (torch layout (out, in))."""
        self.need("accumulate")
        wt = self.weights.add(name, weight, transpose=True)
        n_out, n_in = weight.shape
        return f"accumulate({y}, {wt}, {x}, {n_in}, {n_out});"


def c_number(x: float, dtype: str) -> str:
    """A C literal that reads back exactly as ``x`` in the dtype (finite only): the shortest
    decimal that round-trips, in scientific form (always a floating literal)."""
    if dtype == "float32":
        return np.format_float_scientific(np.float32(x), unique=True) + "f"
    return np.format_float_scientific(np.float64(x), unique=True)


def c_array(values: np.ndarray, dtype: str, per_line: int = 6) -> str:
    """The body of a C initializer, ``per_line`` numbers a line."""
    items = [c_number(v, dtype) for v in values.tolist()]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


__all__ = ["CTYPES", "Weights", "Emitter", "c_number", "c_array"]
