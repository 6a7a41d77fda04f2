"""Runner latency (issue 6, "Fast"; issue 14, the C step): ``python -m cfc_control.bench runner
[--quick]``.

One step at batch 1 and batch 64, p50/p99/max in microseconds, one thread (torch and numpy's
OpenBLAS both limited to one), in one run:

* a 64-unit CfC policy and a 64-neuron NCP policy (17 observations, 6 actions): our
  :class:`PolicyRunner` with the numpy and the C backend (the whole step: input checks,
  normalisation, model, action mapping, output checks), the bare C step timed inside C (no Python
  between steps), and the raw torch model's ``step`` (no normalisation or mapping) under
  ``torch.inference_mode``;
* the shipped 64-unit CfC and 64-neuron NCP Hopper policies (policies/*-ppo-hopper-pos-jitter):
  the runner with each backend and the bare C step;
* the same CfC policy exported to ONNX, stepped by onnxruntime (state fed back), and ncps 1.0.1's
  ``CfC`` layer stepped one step (where installed);
* sb3-contrib's RecurrentPPO ``predict`` for a policy of the same size (its default
  MlpLstmPolicy with a 64-unit LSTM) on a dummy Box env of the same sizes.

Ratios are against RecurrentPPO at the same batch size. Goals: issue 6, at batch 1, p50 <= 25 us
and p99 <= 60 us for the CfC runner, twice that for the NCP; issue 14, for the shipped CfC, the
bare C step p50 <= 2 us and the C runner p50 <= 5 us, p99 <= 15 us, the NCP within twice that.
The machine's load average is printed: other processes on the same cores show up in p99 and max.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from cfc_control.models import make
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput
from cfc_control.runtime.runner import PolicyRunner

N_OBS, N_ACT, UNITS = 17, 6, 64
NOMINAL = 0.05
GOALS = {"cfc": (25.0, 60.0), "ncp": (50.0, 120.0)}  # batch-1 runner p50, p99 (us)
SHIPPED = {"cfc": "cfc-ppo-hopper-pos-jitter", "ncp": "ncp-ppo-hopper-pos-jitter"}
# issue 14, the shipped policies at batch 1: bare C step p50; C runner p50, p99 (us)
C_GOALS = {"cfc": (2.0, 5.0, 15.0), "ncp": (4.0, 10.0, 30.0)}


@dataclass
class Row:
    model: str
    impl: str
    batch: int
    p50: float
    p99: float
    max: float


def measure(fn: Callable[[], object], reps: int, warmup: int) -> Tuple[float, float, float]:
    """p50, p99 and max of ``fn``'s wall time (us) over ``reps`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    gc.collect()
    gc.disable()
    try:
        times = np.empty(reps)
        clock = time.perf_counter_ns
        for i in range(reps):
            start = clock()
            fn()
            times[i] = clock() - start
    finally:
        gc.enable()
    return float(np.percentile(times, 50)) / 1e3, float(np.percentile(times, 99)) / 1e3, float(times.max()) / 1e3


def limit_blas_threads() -> str:
    """Set numpy's OpenBLAS to one thread through its C API (environment variables are read only
    when numpy loads). Returns what was done."""
    try:
        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    except OSError:
        return "OpenBLAS threads unchanged (no /proc/self/maps)"
    done = []
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                     "scipy_openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(1)
                done.append(os.path.basename(path))
                break
    return f"OpenBLAS set to 1 thread ({', '.join(done)})" if done else "OpenBLAS threads unchanged (not found)"


def _policy(name: str):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = make(name, N_OBS, N_ACT, units=UNITS)
    norm = ObsNormalizer(rng.normal(size=N_OBS), rng.uniform(0.5, 2.0, N_OBS))
    return RecurrentPolicy(model, norm, ActionMapping(-np.ones(N_ACT), np.ones(N_ACT)), TimeInput.around(NOMINAL)).eval()


def bench_policy(name: str, batch: int, reps: int) -> List[Row]:
    policy = _policy(name)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=N_OBS) if batch == 1 else rng.normal(size=(batch, N_OBS))
    dt = NOMINAL * 1.1 if batch == 1 else rng.uniform(0.8, 1.2, batch) * NOMINAL
    rows = runner_rows(name, policy, obs, dt, batch, reps)

    model = policy.model
    x = torch.as_tensor(np.atleast_2d(obs), dtype=torch.float32)
    t = torch.full((batch, 1), 1.1)
    state = {"hx": model.initial_state(batch)}

    def torch_step() -> None:
        with torch.inference_mode():
            _, state["hx"] = model.step(x, state["hx"], t)

    rows.append(Row(name, "torch model.step", batch, *measure(torch_step, max(reps // 4, 50), max(reps // 20, 10))))
    return rows


def runner_rows(name: str, policy, obs: np.ndarray, dt, batch: int, reps: int) -> List[Row]:
    """The runner with the numpy and C backends (float32, the default) and, at batch 1, the bare C
    step timed in C."""
    from cfc_control.runtime.c_export.build import find_compiler

    rows = []
    for backend in ("numpy", "c") if find_compiler() else ("numpy",):
        runner = PolicyRunner(policy, batch_size=batch, backend=backend)
        rows.append(Row(name, f"PolicyRunner ({backend})", batch, *measure(lambda: runner.step(obs, dt), reps, reps // 5)))
        if backend == "c" and batch == 1:
            from cfc_control.runtime.c_export.kernel import time_bare_steps

            ns = time_bare_steps(runner._program[0], obs, 1.1, reps)[reps // 5 :] / 1e3
            rows.append(Row(name, "bare C step (timed in C)", 1, float(np.percentile(ns, 50)),
                            float(np.percentile(ns, 99)), float(ns.max())))
    return rows


def bench_shipped(reps: int) -> List[Row]:
    """The shipped Hopper CfC and NCP at batch 1 (absent from an installed wheel: no rows)."""
    from cfc_control.policies import load_policy

    root = Path(__file__).resolve().parents[2] / "policies"
    rows: List[Row] = []
    for name, directory in SHIPPED.items():
        if not (root / directory).is_dir():
            continue
        policy = load_policy(root / directory)
        obs = np.random.default_rng(3).normal(size=policy.n_obs) * 0.1 + policy.obs_mean.numpy()
        rows += runner_rows(f"{name} (shipped)", policy, obs, policy.time_input.nominal_dt * 1.1, 1, reps)
    return rows


def bench_onnxruntime(reps: int) -> Optional[Row]:
    """The CfC policy exported to ONNX, one onnxruntime session (one thread), state fed back."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from cfc_control.runtime.export import export_onnx

    policy = _policy("cfc")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(policy, Path(tmp) / "cfc.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"obs": np.random.default_rng(1).normal(size=(1, N_OBS)).astype(np.float32),
            "dt": np.full((1, 1), NOMINAL * 1.1, np.float32), "h": np.zeros((1, UNITS), np.float32)}

    def step() -> None:
        # outputs: action, h_out, ok (a bad row's flag)
        feed["h"] = session.run(None, feed)[1]

    return Row("cfc", "onnxruntime (exported ONNX)", 1, *measure(step, reps, reps // 5))


def bench_ncps(reps: int) -> Optional[Row]:
    """ncps 1.0.1's CfC layer (64 units, projection to 6), one step of one sequence."""
    try:
        from ncps.torch import CfC as RefCfC
    except ImportError:
        return None
    torch.manual_seed(0)
    model = RefCfC(N_OBS, UNITS, proj_size=N_ACT, batch_first=True).eval()
    x = torch.randn(1, 1, N_OBS)
    ts = torch.full((1, 1), 1.1)
    state = {"hx": torch.zeros(1, UNITS)}

    def step() -> None:
        with torch.inference_mode():
            _, state["hx"] = model(x, state["hx"], timespans=ts)

    return Row("cfc", "ncps.torch CfC (reference)", 1, *measure(step, max(reps // 4, 50), max(reps // 20, 10)))


def bench_recurrent_ppo(batch: int, reps: int) -> Optional[Row]:
    try:
        import gymnasium as gym
        from sb3_contrib import RecurrentPPO
    except ImportError:
        return None

    class Dummy(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (N_OBS,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (N_ACT,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(N_OBS, np.float32), {}

        def step(self, action):
            return np.zeros(N_OBS, np.float32), 0.0, False, False, {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RecurrentPPO("MlpLstmPolicy", Dummy(), policy_kwargs={"lstm_hidden_size": UNITS}, device="cpu", seed=0)
    obs = np.random.default_rng(2).normal(size=(batch, N_OBS)).astype(np.float32)
    if batch == 1:
        obs = obs[0]
    starts = np.zeros(batch, dtype=bool)
    state = {"s": None}

    def predict() -> None:
        _, state["s"] = model.predict(obs, state=state["s"], episode_start=starts, deterministic=True)

    return Row("lstm-64", "sb3-contrib RecurrentPPO.predict", batch, *measure(predict, reps, max(reps // 10, 10)))


def table(rows: List[Row]) -> str:
    ppo = {r.batch: r for r in rows if r.impl.startswith("sb3")}
    lines = ["| model | implementation | batch | p50 us | p99 us | max us | p50 speed-up vs RecurrentPPO |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ref = ppo.get(r.batch)
        ratio = f"{ref.p50 / r.p50:.1f}x" if ref is not None and r is not ref else ""
        lines.append(f"| {r.model} | {r.impl} | {r.batch} | {r.p50:.1f} | {r.p99:.1f} | {r.max:.0f} | {ratio} |")
    return "\n".join(lines)


def goal_lines(rows: List[Row]) -> List[str]:
    out = []
    for name, (p50, p99) in GOALS.items():
        for r in rows:
            if r.model == name and r.batch == 1 and r.impl == "PolicyRunner (numpy)":
                ok = r.p50 <= p50 and r.p99 <= p99
                out.append(f"goal {name} batch 1 (numpy): p50 {r.p50:.1f} <= {p50:g} us and p99 {r.p99:.1f} <= "
                           f"{p99:g} us: {'met' if ok else 'NOT met'}")
    for name, (bare, p50, p99) in C_GOALS.items():
        found = {r.impl: r for r in rows if r.model == f"{name} (shipped)"}
        if "bare C step (timed in C)" in found:
            r = found["bare C step (timed in C)"]
            out.append(f"goal shipped {name}, bare C step: p50 {r.p50:.2f} <= {bare:g} us: "
                       f"{'met' if r.p50 <= bare else 'NOT met'}")
        if "PolicyRunner (c)" in found:
            r = found["PolicyRunner (c)"]
            ok = r.p50 <= p50 and r.p99 <= p99
            out.append(f"goal shipped {name}, C runner batch 1: p50 {r.p50:.1f} <= {p50:g} us and p99 {r.p99:.1f} <= "
                       f"{p99:g} us: {'met' if ok else 'NOT met'}")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfc_control.bench runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    blas = limit_blas_threads()
    reps1, reps64 = (300, 60) if args.quick else (20000, 2000)
    rows: List[Row] = []
    for batch, reps in ((1, reps1), (64, reps64)):
        for name in ("cfc", "ncp"):
            rows += bench_policy(name, batch, reps)
        if batch == 1:
            rows += bench_shipped(reps)
            rows += [r for r in (bench_onnxruntime(reps), bench_ncps(reps)) if r is not None]
        ppo = bench_recurrent_ppo(batch, max(reps // 10, 20))
        if ppo is not None:
            rows.append(ppo)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"runner latency, one step, one thread; torch {torch.__version__}, numpy {np.__version__}; {blas}; "
          f"load average {load[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(table(rows))
    print()
    print("\n".join(goal_lines(rows)))
    return 0


__all__ = ["main", "measure", "Row", "table", "limit_blas_threads"]
