"""Train a teacher (an SB3 expert on a task's full state) and save it as a policies/experts/ directory.

    python -m cfc_control.experts.train --env Hopper --algo ppo --timing Irregular+drop:0.05 --dt-input \\
        --steps 2000000 --out policies/experts/hopper-ppo-teacher [--resume]

The flags are generated from :class:`cfc_control.training.teachers.TeacherConfig`; defaults per
family are in :data:`cfc_control.experts.sb3.HYPERPARAMS` (rl-baselines3-zoo's tuned values).
Checkpoints go to --run-dir (default runs/teachers/<name of --out>); after an interruption the same
command with --resume continues from the newest one.
"""

from __future__ import annotations

import shlex
import sys
from typing import List, Optional

from cfc_control.cli import INTERRUPTED, ArgumentParser, error_line
from cfc_control.flags import add_flags, build
from cfc_control.training.teachers import TeacherConfig, train_teacher

PROG = "python -m cfc_control.experts.train"


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_flags(parser, TeacherConfig, skip=("normalize",))
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its newest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    given = vars(parser.parse_args(argv))
    resume, progress = given.pop("resume"), not given.pop("no_progress")
    # The card records what trains the teacher: the same command whether or not it was resumed.
    command = f"{PROG} " + shlex.join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume")
    try:
        config = build(TeacherConfig, given)
        result = train_teacher(config, resume=resume, progress=progress, command=command)
    except ValueError as err:
        return error_line(PROG, err)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; the newest checkpoint is kept: run the same command with --resume "
              "to continue", file=sys.stderr)
        return INTERRUPTED
    card = result.card
    ev = card["evaluation"]
    print(f"{result.directory}: {card['env_id']} {card['algorithm']} {card['steps']} steps, return {ev['mean']:.1f} "
          f"± {ev['std']:.1f} over {ev['episodes']} episodes (threshold {card['reward_threshold']})")
    for timing, row in card.get("timings", {}).items():
        print(f"  {timing:<10} {row['mean']:9.1f} ± {row['std']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
