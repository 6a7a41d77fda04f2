"""Model speed benchmark (issue 2, "Speed"): ``python -m cfc_control.bench models [--quick]``.

Measured in one run on one CPU thread, and printed as a markdown table:

* one step (inference, no autograd) at batch 1 and 16, 17 inputs: our CfC (64 units, default
  backbone) and our wired CfC on AutoNCP(64, 6) against the reference's CfC cell and wired cell,
  and torch.nn.LSTMCell(17, 64); p50/p99 in microseconds. Ours is timed through ``step`` (the
  public API, with its argument checks), the reference through its bare cell.
* one training step (forward + backward of a mean-square loss, per-sample dt) at B=32, T=100 and
  B=256, T=64: our CfC, NCP and LTC (6 ODE unfolds), torch's fused nn.LSTM (dt as an 18th input
  feature), and the reference's CfC and NCP; p50/p99 in milliseconds.

The models of one case are timed round-robin (one call of each in turn), so that load from other
processes falls on all of them alike and the ratios stay meaningful on a shared machine.

The reference's layer mishandles per-sample timespans for B > 1 (docs/equations.md), so its training step
runs its cell per step with dt shaped (B, 1), as its layer would with that bug fixed. ncps is
needed for the reference rows (they are skipped without it).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from cfc_control.models.cfc import CfC
from cfc_control.wirings import AutoNCP

INPUTS, UNITS, MOTOR = 17, 64, 6


@dataclass
class Row:
    case: str
    model: str
    p50: float
    p99: float
    ratio_to: Optional[str] = None  # the model of the same case to divide by
    note: str = ""


def measure_round_robin(fns: Dict[str, Callable[[], object]], reps: int, warmup: int) -> Dict[str, Tuple[float, float]]:
    """p50 and p99 wall time (microseconds) of each function, calling them in turn."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    gc.collect()
    times = {name: np.empty(reps) for name in fns}
    for i in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter_ns()
            fn()
            times[name][i] = time.perf_counter_ns() - start
    return {n: (float(np.percentile(t, 50)) / 1e3, float(np.percentile(t, 99)) / 1e3) for n, t in times.items()}


def _reference():
    try:
        import ncps.torch as ref
        import ncps.wirings as ref_wirings
    except ImportError:
        return None, None
    return ref, ref_wirings


# -- one step --------------------------------------------------------------------------------
def step_rows(batch: int, reps: int, warmup: int) -> List[Row]:
    ref, ref_wirings = _reference()
    x = torch.randn(batch, INPUTS)
    dt = torch.rand(batch) + 0.5
    dt_col = dt.unsqueeze(1)
    h = torch.zeros(batch, UNITS)
    ours = CfC(INPUTS, UNITS).eval()
    ncp = CfC(INPUTS, AutoNCP(UNITS, MOTOR)).eval()
    lstm = nn.LSTMCell(INPUTS, UNITS).eval()
    fns: Dict[str, Callable[[], object]] = {
        "ours CfC": lambda: ours.step(x, h, dt),
        "ours NCP (wired CfC)": lambda: ncp.step(x, h, dt),
        "torch.nn.LSTMCell": lambda: lstm(x, (h, h)),
    }
    if ref is not None:
        cell = ref.CfC(INPUTS, UNITS).rnn_cell.eval()
        wired = ref.CfC(INPUTS, ref_wirings.AutoNCP(UNITS, MOTOR)).rnn_cell.eval()
        fns["reference CfCCell"] = lambda: cell(x, h, dt_col)
        fns["reference WiredCfCCell"] = lambda: wired(x, h, dt_col)
    with torch.no_grad():
        res = measure_round_robin(fns, reps, warmup)
    case = f"step B={batch}"
    order = [
        ("ours CfC", "reference CfCCell"),
        ("reference CfCCell", None),
        ("ours NCP (wired CfC)", "reference WiredCfCCell"),
        ("reference WiredCfCCell", None),
        ("torch.nn.LSTMCell", "reference CfCCell"),
    ]
    return [Row(case, name, *res[name], ratio_to=to if to in res else None) for name, to in order if name in res]


# -- one training step -----------------------------------------------------------------------
def _train_step(model: nn.Module, forward: Callable[[], Tensor]) -> Callable[[], None]:
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> None:
        for p in params:
            p.grad = None
        forward().square().mean().backward()

    return run


def _reference_cfc_forward(module: nn.Module, x: Tensor, ts: Tensor) -> Tensor:
    """The reference layer's loop with dt as (B, 1), i.e. its per-sample-timespans bug fixed."""
    h = torch.zeros(x.shape[0], module.state_size)
    outputs = []
    for t in range(x.shape[1]):
        y, h = module.rnn_cell(x[:, t], h, ts[:, t : t + 1])
        outputs.append(module.fc(y))
    return torch.stack(outputs, 1)


def train_rows(batch: int, steps: int, reps: int, warmup: int, ltc_max_batch: int) -> List[Row]:
    ref, ref_wirings = _reference()
    torch.manual_seed(0)
    x = torch.randn(batch, steps, INPUTS)
    ts = torch.rand(batch, steps) + 0.5
    ours = CfC(INPUTS, UNITS).train()
    ncp = CfC(INPUTS, AutoNCP(UNITS, MOTOR)).train()
    lstm = nn.LSTM(INPUTS + 1, UNITS, batch_first=True).train()
    x_dt = torch.cat([x, ts.unsqueeze(-1)], -1)
    fns: Dict[str, Callable[[], object]] = {
        "ours CfC": _train_step(ours, lambda: ours(x, timespans=ts)[0]),
        "ours NCP (wired CfC)": _train_step(ncp, lambda: ncp(x, timespans=ts)[0]),
        "torch nn.LSTM (fused, dt as input)": _train_step(lstm, lambda: lstm(x_dt)[0]),
    }
    if ref is not None:
        rc = ref.CfC(INPUTS, UNITS).train()
        rn = ref.CfC(INPUTS, ref_wirings.AutoNCP(UNITS, MOTOR)).train()
        fns["reference CfC"] = _train_step(rc, lambda: _reference_cfc_forward(rc, x, ts))
        fns["reference NCP (wired CfC)"] = _train_step(rn, lambda: _reference_cfc_forward(rn, x, ts))
    res = {k: (a / 1e3, b / 1e3) for k, (a, b) in measure_round_robin(fns, reps, warmup).items()}
    case = f"train B={batch} T={steps}"
    order = [
        ("ours CfC", "reference CfC"),
        ("reference CfC", None),
        ("ours NCP (wired CfC)", "reference NCP (wired CfC)"),
        ("reference NCP (wired CfC)", None),
        ("torch nn.LSTM (fused, dt as input)", "reference CfC"),
    ]
    rows = [Row(case, name, *res[name], ratio_to=to if to in res else None) for name, to in order if name in res]
    rows.append(_ltc_row(case, x, ts, batch, ltc_max_batch, reps, res["ours CfC"][0]))
    return rows


def _ltc_row(case: str, x: Tensor, ts: Tensor, batch: int, ltc_max_batch: int, reps: int, cfc_ms: float) -> Row:
    name = f"ours LTC (6 unfolds, FullyConnected {UNITS})"
    try:
        from cfc_control.models.ltc import LTC
    except ImportError as e:
        return Row(case, name, float("nan"), float("nan"), note=f"not available: {e}")
    run_batch = min(batch, ltc_max_batch)
    # Its per-synapse tensors are B x N x N per unfold and step: the full batch may need many GB.
    ltc = LTC(INPUTS, UNITS, ode_unfolds=6).train()
    xs, tss = x[:run_batch], ts[:run_batch]
    timed = measure_round_robin({name: _train_step(ltc, lambda: ltc(xs, timespans=tss)[0])}, max(3, reps // 4), 1)
    p50, p99 = (v / 1e3 for v in timed[name])
    if run_batch < batch:
        scaled = p50 * batch / run_batch
        note = f"run at B={run_batch} (memory); scaled linearly to B={batch}: {scaled:.0f} ms = {scaled / cfc_ms:.0f}x our CfC"
    else:
        note = f"{p50 / cfc_ms:.0f}x our CfC"
    return Row(case, name, p50, p99, note=note)


# -- report ----------------------------------------------------------------------------------
def format_table(rows: List[Row], unit: str) -> str:
    p50 = {(r.case, r.model): r.p50 for r in rows}
    lines = [
        f"| case | model | p50 ({unit}) | p99 ({unit}) | p50 ratio | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = f"{r.p50 / p50[(r.case, r.ratio_to)]:.2f}x {r.ratio_to}" if r.ratio_to else ""
        lines.append(f"| {r.case} | {r.model} | {r.p50:.1f} | {r.p99:.1f} | {ratio} | {r.note} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfc_control.bench models", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure in well under a minute)")
    parser.add_argument("--ltc-max-batch", type=int, default=32, help="largest batch the LTC training step runs at (memory)")
    parser.add_argument("--skip-train", action="store_true", help="only the one-step latency table")
    args = parser.parse_args(argv)
    if args.ltc_max_batch < 1:
        parser.error(f"--ltc-max-batch must be >= 1, got {args.ltc_max_batch}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    step_reps, step_warm = (300, 50) if args.quick else (3000, 300)
    train_reps, train_warm = (5, 1) if args.quick else (20, 3)

    print(f"torch {torch.__version__}, 1 thread; {INPUTS} inputs, {UNITS} units, NCP = AutoNCP({UNITS}, {MOTOR})\n")
    step = step_rows(1, step_reps, step_warm) + step_rows(16, step_reps, step_warm)
    print("One step, no autograd (ours through .step(), the reference through its bare cell)\n")
    print(format_table(step, "us"))
    sys.stdout.flush()
    if not args.skip_train:
        train = train_rows(32, 100, train_reps, train_warm, args.ltc_max_batch)
        train += train_rows(256, 64, train_reps, train_warm, args.ltc_max_batch)
        print("\nOne training step: forward + backward, per-sample dt\n")
        print(format_table(train, "ms"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
