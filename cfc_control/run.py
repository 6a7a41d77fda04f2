"""Run a policy against the wall clock: the simulator and the policy at a fixed rate.

    python -m cfc_control.run policies/cfc-invertedpendulum-pos-irregular --rate 500 --duration 10
    python -m cfc_control.run DIR --env InvertedPendulum-Pos-Fixed --rate 25 --connect tcp://127.0.0.1:5555

The loop ticks at 1 / rate; at each tick the simulator advances by the measured wall-clock time
since the last tick, and the policy gets that same Δt (its timestamps), so an overrun is seen by
both. In-process by default; with --connect through a control node
(``python -m cfc_control.serve``). --realtime runs the loop under SCHED_FIFO, as a robot
controller would (other processes then cannot preempt it). Reports achieved rate, deadline misses, step latency
p50/p99/max, the Δt distribution fed to the policy, and the return
(:mod:`cfc_control.runtime.loop`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

from cfc_control.cli import ArgumentParser, error_line
from cfc_control.runtime import loop
from cfc_control.runtime.runner import PolicyRunner
from cfc_control.runtime.client import PolicyClient
from cfc_control.tasks import resolve_stored_task

PROG = "python -m cfc_control.run"


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="policy directory")
    parser.add_argument("--env", default=None, help="task (default: the policy's)")
    parser.add_argument("--rate", type=float, default=None,
                        help="control rate in Hz (default: the policy's nominal rate, 1 / nominal period)")
    parser.add_argument("--duration", type=float, default=10.0, help="wall-clock seconds (default %(default)s)")
    parser.add_argument("--connect", default=None, help="control node address (default: in-process)")
    parser.add_argument("--robot", default=f"run-{os.getpid()}", help="robot id at the node")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--realtime", nargs="?", type=int, const=50, default=None, metavar="PRIORITY",
                        help="run the loop under SCHED_FIFO (default priority 50) if permitted")
    parser.add_argument("--spin-ms", type=float, default=0.5,
                        help="spin (instead of sleeping) the last ms of each wait; the whole period keeps the "
                             "core warm and the step fast (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)

    try:
        runner = PolicyRunner.load(args.policy)
        args.rate = check_rate(args.rate, runner)
        task = args.env or runner.task
        if not task:
            raise ValueError("the policy names no task; pass --env")
        if not args.env:  # read from the policy's files: data, never resolved by importing anything
            task = resolve_stored_task(task, f"{args.policy}/config.json")
        with loop.realtime_priority(args.realtime) as scheduling:
            if args.connect:
                with PolicyClient(args.connect, args.robot, timeout_s=max(1.0, 10.0 / args.rate)) as client:
                    report = loop.run_through_node(client, task, args.rate, args.duration, runner.n_obs,
                                                   runner.n_act, args.seed, spin_s=args.spin_ms / 1e3)
            else:
                report = loop.run_in_process(runner, task, args.rate, args.duration, args.seed,
                                             spin_s=args.spin_ms / 1e3)
        report.scheduling = scheduling
    except (FileNotFoundError, ValueError, TimeoutError) as err:
        return error_line(PROG, err)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0


def check_rate(rate: Optional[float], runner) -> float:
    """The loop's rate: ``rate`` (Hz) if given, else the policy's nominal one. A rate whose period
    lies outside the periods the policy was trained for is warned of once, on stderr."""
    if rate is None:
        return 1.0 / runner.nominal_dt
    if not (rate > 0 and rate < float("inf")):
        raise ValueError(f"--rate must be a positive number of Hz, got {rate!r}")
    trained = runner.trained_periods
    if trained is not None and not trained.contains(1.0 / rate):
        low, high = 1.0 / trained.high, 1.0 / trained.low
        print(f"warning: {trained.message(1.0 / rate, what='the period 1 / --rate')} "
              f"(rates {low:.4g}-{high:.4g} Hz)", file=sys.stderr)
        runner.period_warning_given()
    return float(rate)


if __name__ == "__main__":
    raise SystemExit(main())
