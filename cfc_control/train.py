"""Train a recurrent policy on a task with varying control period.

    python -m cfc_control.train --env InvertedPendulum-Pos-Irregular --algo bc
    python -m cfc_control.train --env InvertedPendulum-Pos-Irregular --algo dagger --policy ncp --seed 1
    python -m cfc_control.train --env HalfCheetah-Pos-Jitter --algo ppo --total-steps 200000
    python -m cfc_control.train --out runs/x --resume          # continue an interrupted run

Every flag has a default. The run directory (--out, default runs/<task>-<algo>-<policy>-s<seed>)
gets run.json (the config), metrics.csv, TensorBoard events (tb/), checkpoints/ and the result,
policy/: weights, config and card (task, algorithm, policy, seeds, data size, training time, the
command, and the evaluation returns under each --eval-timings timing). Ctrl-C stops the run and
says how to resume it from its last checkpoint.

The flags are the fields of cfc_control.training.RunConfig (and RunOptions); from Python, call
cfc_control.training.train(RunConfig(...)) instead.
"""

from __future__ import annotations

import shlex
import sys
from typing import List, Optional

from cfc_control.cli import INTERRUPTED, error_line
from cfc_control.training.checkpoint import CheckpointManager
from cfc_control.training.command_line import PROG, parse_config
from cfc_control.training.run_config import ALGORITHMS, RunConfig
from cfc_control.training.launch import RunOutcome, load_algorithm, train

__all__ = ["ALGORITHMS", "load_algorithm", "main"]


def _report(outcome: RunOutcome) -> None:
    for name, r in outcome.evaluation.items():
        print(f"{name:>10}: return {r.mean:9.2f} ± {r.std:.2f} over {r.episodes} episodes")
    print(f"policy: {outcome.policy_dir}  (trained in {outcome.training_time_s:.0f} s)")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config, options = parse_config(argv, __doc__ or "")
    except ValueError as err:
        return error_line(PROG, err)
    command = f"{PROG} " + shlex.join(argv)
    try:
        outcome = train(config, options, command)
    except (ValueError, FileNotFoundError) as err:
        return error_line(PROG, err)
    except KeyboardInterrupt:
        _interrupted(config)
        return INTERRUPTED
    _report(outcome)
    return 0


def _interrupted(config: RunConfig) -> None:
    run_dir = config.run_dir
    try:
        latest = CheckpointManager(run_dir).latest()
    except ValueError:
        latest = None
    resume = f"{PROG} --out {shlex.quote(str(run_dir))} --resume"
    where = f"the last checkpoint is {latest}" if latest else "no checkpoint was written yet"
    print(f"\ninterrupted: {where}; continue with: {resume}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
