"""The whole policy step as C99 source, from a policy and its model's step description.

Two translation units share one generated model step,
``model_step(w, obs, t, s, s_new, action)`` (raw observation in, action in the bounds out;
normalisation and action mapping included; the time input already clamped and scaled):

* the **export** (:func:`export_source`): a header and a source file with the weights as a
  ``static const`` array, a fixed-size state struct, ``reset`` and ``step(state, obs, dt_seconds,
  action)``, which checks its input first and refuses bad input with an error code, leaving state
  and action untouched, as the runner does;
* the **runner's library** (:func:`library_source`): the same step without weight values (they are
  passed in by pointer), looped over a batch of rows with per-row model time, plus a timing loop
  for benchmarks. Its source depends on the architecture only, so its compiled library is shared by
  every policy of that shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict

import numpy as np

from cfc_control.models.lowering import StepDescription
from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.c_export import baselines, cfc, ltc
from cfc_control.runtime.c_export.emit import CTYPES, Emitter, c_array, c_number

CELLS: Dict[str, Callable[[StepDescription, Emitter], str]] = {
    "cfc": cfc.unwired,
    "wired_cfc": cfc.wired,
    "ltc": ltc.ltc,
    "lstm": baselines.lstm,
    "gru": baselines.gru,
    "mlp": baselines.mlp,
}

STATUS = ("OK", "BAD_OBSERVATION", "BAD_DT", "NONFINITE_OUTPUT")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def describe(policy: RecurrentPolicy) -> StepDescription:
    """The policy's model step description; a clear error for a model without one."""
    model = policy.model
    if not hasattr(model, "step_description"):
        raise ValueError(f"{type(model).__name__} does not describe its step; no C for it")
    return model.step_description()


@dataclass
class ModelStep:
    """The generated model step: C text (helpers + ``model_step``), the weights in order, the
    sizes."""

    code: str
    emitter: Emitter
    n_obs: int
    n_act: int
    state_size: int

    def blob(self) -> np.ndarray:
        return self.emitter.weights.blob(self.emitter.dtype)


def model_step(policy: RecurrentPolicy, dtype: str = "float64") -> ModelStep:
    """:class:`ModelStep` for ``policy`` in ``dtype`` ("float64" or "float32")."""
    desc = describe(policy)
    em = Emitter(dtype)
    wts = em.weights
    mean, std = _vec(policy.obs_mean), _vec(policy.obs_std)
    p_mean, p_std = wts.add("obs_mean", mean), wts.add("obs_std", std)
    p_clip = wts.add("obs_clip", np.array([float(policy.obs_clip)]))
    center, half = _vec(policy.act_center), _vec(policy.act_half)
    p_center, p_half = wts.add("act_center", center), wts.add("act_half", half)
    # The bounds as the torch policy reaches them (its float32 center and half range), as numpy's.
    p_low, p_high = wts.add("act_low", center - half), wts.add("act_high", center + half)
    body = CELLS[desc.kind](desc, em)
    S = int(sum(desc.state_sizes))
    step = f"""\
/* One step of the {desc.kind} policy: raw observation x (N_OBS), model time t (dt / nominal, clamped
   already), state s -> new state s_new and action (N_ACT, inside the bounds). w: the weights. */
static void model_step(const real *restrict w, const real *restrict x, real t, const real *restrict s,
                       real *restrict s_new, real *restrict action)
{{
{wts.pointers()}
    real z[N_OBS], y[N_ACT];
    int j;
    (void)t; /* a model without a time input (gru with time_input=False) */
    for (j = 0; j < N_OBS; ++j) {{ /* normalise and clip */
        const real v = (x[j] - {p_mean}[j]) / {p_std}[j];
        z[j] = v < -{p_clip}[0] ? -{p_clip}[0] : (v > {p_clip}[0] ? {p_clip}[0] : v);
    }}
    {{
{_indent(body, 8)}
    }}
    for (j = 0; j < N_ACT; ++j) {{ /* center + half * clip(y, -1, 1), kept inside [low, high] in rounding too */
        const real v = y[j] < -1 ? (real)-1 : (y[j] > 1 ? (real)1 : y[j]);
        const real a = {p_center}[j] + {p_half}[j] * v;
        action[j] = a < {p_low}[j] ? {p_low}[j] : (a > {p_high}[j] ? {p_high}[j] : a);
    }}
}}
"""
    code = f"enum {{ N_OBS = {desc.n_in}, N_ACT = {desc.n_out}, STATE_SIZE = {S}, WEIGHTS_SIZE = {wts.size} }};\n\n"
    code += em.helpers() + "\n" + step
    return ModelStep(code, em, desc.n_in, desc.n_out, S)


def _vec(t) -> np.ndarray:
    return t.detach().cpu().double().numpy().reshape(-1).copy()


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line else line for line in text.splitlines())


LIBMVEC_FUNCTIONS = ("exp", "tanh", "erf", "expm1")
LIBMVEC_DECLARATIONS = "\n".join(
    f"#pragma omp declare simd notinbranch\n{t} {f}{sfx}({t});"
    for f in LIBMVEC_FUNCTIONS for t, sfx in (("double", ""), ("float", "f"))
)


def library_source(step: ModelStep) -> str:
    """The runner's translation unit (see the module docstring); the build key comes in as the
    macro CFC_BUILD_KEY."""
    ctype = CTYPES[step.emitter.dtype]
    return f"""\
/* Generated by cfc_control for PolicyRunner(backend="c"); weights are passed in by pointer. */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <time.h>

#if defined(CFC_LIBMVEC)
/* glibc's vector math library (libmvec) has SIMD versions of these: declared so, the compiler
   vectorises the loops that call them (with -fopenmp-simd -fno-math-errno; within 4 ulp). */
{LIBMVEC_DECLARATIONS}
#endif

typedef {ctype} real;

{step.code}
/* batch rows, each: obs (N_OBS), model time t[b], state s (STATE_SIZE) -> s_new, action (N_ACT).
   The observation comes as double (what a control loop measures) and is limited to +-1e30 before
   the cast to real: any larger value normalises to the clip bound anyway, and a float cast of it
   would overflow. Returns the number of rows whose action or new state has a non-finite value. */
int cfc_step_batch(const real *w, int batch, const real *s, const double *obs, const real *t, real *s_new,
                   real *action)
{{
    int b, j, bad = 0;
    real x[N_OBS];
    for (b = 0; b < batch; ++b) {{
        const double *row = obs + (long)b * N_OBS;
        real *s_row = s_new + (long)b * STATE_SIZE, *a_row = action + (long)b * N_ACT;
        int finite = 1;
        for (j = 0; j < N_OBS; ++j)
            x[j] = (real)(row[j] > 1e30 ? 1e30 : (row[j] < -1e30 ? -1e30 : row[j]));
        model_step(w, x, t[b], s + (long)b * STATE_SIZE, s_row, a_row);
        for (j = 0; j < N_ACT; ++j)
            finite &= isfinite(a_row[j]) != 0;
        for (j = 0; j < STATE_SIZE; ++j)
            finite &= isfinite(s_row[j]) != 0;
        bad += !finite;
    }}
    return bad;
}}

/* n steps of one row at model time t, state alternating between s_a and s_b; each step's wall
   time (ns, CLOCK_MONOTONIC) into ns_out. For benchmarks: the bare step, no Python in it. */
void cfc_time_steps(const real *w, int n, const real *obs, real t, real *s_a, real *s_b, real *action,
                    long *ns_out)
{{
    int i;
    struct timespec t0, t1;
    for (i = 0; i < n; ++i) {{
        real *src = (i % 2) ? s_b : s_a, *dst = (i % 2) ? s_a : s_b;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        model_step(w, obs, t, src, dst, action);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns_out[i] = (long)(t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
    }}
}}

/* What this library was built from and for: the checks PolicyRunner makes before using it. */
const char *cfc_build_key(void) {{ return CFC_BUILD_KEY; }}
void cfc_sizes(long *out)
{{
    out[0] = N_OBS; out[1] = N_ACT; out[2] = STATE_SIZE; out[3] = WEIGHTS_SIZE; out[4] = (long)sizeof(real);
}}
"""


def export_source(policy: RecurrentPolicy, name: str = "cfc_policy", dtype: str = "float64") -> Dict[str, str]:
    """``{"NAME.h": header, "NAME.c": source}`` for ``policy`` (see the module docstring)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"name must be a C identifier (letters, digits, _; not starting with a digit), got {name!r}")
    step = model_step(policy, dtype)
    blob = step.blob()
    bad = [n for n, flat, _ in step.emitter.weights.arrays if not np.isfinite(flat).all()]
    if bad:
        raise ValueError(f"the policy has non-finite weights ({', '.join(bad)}); nothing written")
    if dtype == "float32" and not np.isfinite(blob).all():
        raise ValueError("a weight overflows float32; export in float64")
    tin = policy.time_input
    up = name.upper()
    header = _header(name, up, CTYPES[dtype], step, tin, policy)
    status = ", ".join(f'"{s.lower().replace("_", " ")}"' for s in STATUS)
    S = step.state_size
    source = f"""\
/* {name}.c: one control step of a cfc_control policy, generated from its policy directory.
   C99, no dynamic allocation, no dependency beyond libm. See {name}.h for the interface. */
#include "{name}.h"

#include <math.h>
#include <string.h>

typedef {name}_real real;

{step.code}
/* Every weight, in the order model_step names them. */
static const real weights[{max(step.emitter.weights.size, 1)}] = {{
    {c_array(blob, dtype)}
}};

const real {name}_action_low[N_ACT] = {{ {c_array(_vec(policy.act_center) - _vec(policy.act_half), dtype, 1000)} }};
const real {name}_action_high[N_ACT] = {{ {c_array(_vec(policy.act_center) + _vec(policy.act_half), dtype, 1000)} }};

{tin.c_source(lambda x: c_number(x, "float64"))}
void {name}_reset({name}_state *state)
{{
    memset(state, 0, sizeof *state);
}}

int {name}_step({name}_state *state, const real obs[N_OBS], double dt_seconds, real action[N_ACT])
{{
    real s_new[{max(S, 1)}], a[N_ACT];
    int j;
    for (j = 0; j < N_OBS; ++j)
        if (!isfinite(obs[j]))
            return {up}_BAD_OBSERVATION;
    if (!isfinite(dt_seconds) || !(dt_seconds > 0.0))
        return {up}_BAD_DT;
    model_step(weights, obs, (real)model_time(dt_seconds), state->s, s_new, a);
    for (j = 0; j < N_ACT; ++j)
        if (!isfinite(a[j]))
            return {up}_NONFINITE_OUTPUT;
    for (j = 0; j < STATE_SIZE; ++j)
        if (!isfinite(s_new[j]))
            return {up}_NONFINITE_OUTPUT;
    memcpy(state->s, s_new, sizeof(real) * STATE_SIZE);
    memcpy(action, a, sizeof a);
    return {up}_OK;
}}

const char *{name}_status_text(int status)
{{
    static const char *const text[] = {{{status}}};
    return status >= 0 && status < {len(STATUS)} ? text[status] : "unknown status";
}}
"""
    return {f"{name}.h": header, f"{name}.c": source}


def _header(name: str, up: str, ctype: str, step: ModelStep, tin, policy: RecurrentPolicy) -> str:
    desc = describe(policy)
    m = policy.action_mapping
    task = re.sub(r"[^A-Za-z0-9_./:-]", "?", str(policy.task))  # data, never C: no "*/" gets through
    layout = ", ".join(f"{label} [{lo}, {lo + n})" for label, lo, n in _state_layout(desc.state_sizes))
    statuses = ",\n    ".join(f"{up}_{s} = {i}" for i, s in enumerate(STATUS))
    return f"""\
/* {name}.h: a cfc_control policy as C99 (generated; task {task}, model {type(policy.model).__name__}).

   {name}_state st;
   {name}_reset(&st);                                 the initial (zero) state
   status = {name}_step(&st, obs, dt_seconds, action);  once per control period

   step: clips and normalises the raw observation ({step.n_obs} values), clamps dt_seconds to
   [{up}_DT_MIN, {up}_DT_MAX] and divides it by {up}_NOMINAL_DT, runs the model, and writes the
   action ({step.n_act} values) inside the bounds low {m.low.tolist()}, high {m.high.tolist()}.
   A non-finite observation, or dt_seconds non-finite or <= 0, returns an error status before any
   work; a non-finite result (diverged weights) returns {up}_NONFINITE_OUTPUT. On any error the
   state and the action are left untouched (hold the previous action). No allocation, no globals
   written: one state per robot, any number of them, each owned by one thread.
   State layout ({step.state_size} values): {layout or "none (the model has no memory)"}. */
#ifndef {up}_H
#define {up}_H

#ifdef __cplusplus
extern "C" {{
#endif

typedef {ctype} {name}_real;

enum {{ {up}_N_OBS = {step.n_obs}, {up}_N_ACT = {step.n_act}, {up}_STATE_SIZE = {step.state_size} }};

#define {up}_NOMINAL_DT {c_number(tin.nominal_dt, "float64")}
#define {up}_DT_MIN {c_number(tin.dt_min, "float64")}
#define {up}_DT_MAX {c_number(tin.dt_max, "float64")}

enum {name}_status {{
    {statuses}
}};

typedef struct {{
    {name}_real s[{max(step.state_size, 1)}];
}} {name}_state;

void {name}_reset({name}_state *state);
int {name}_step({name}_state *state, const {name}_real obs[{up}_N_OBS], double dt_seconds,
                {name}_real action[{up}_N_ACT]);
const char *{name}_status_text(int status);

/* The action bounds (every action lies in [low, high]). */
extern const {name}_real {name}_action_low[{up}_N_ACT];
extern const {name}_real {name}_action_high[{up}_N_ACT];

#ifdef __cplusplus
}}
#endif

#endif
"""


def _state_layout(sizes):
    out, lo = [], 0
    for label, n in zip(("h", "c"), sizes):
        out.append((label, lo, n))
        lo += n
    return out


__all__ = ["CELLS", "STATUS", "ModelStep", "describe", "model_step", "library_source", "export_source"]
