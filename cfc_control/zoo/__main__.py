"""``python -m cfc_control.zoo``: rebuild the zoo (teachers, students, cards, study tables).

    python -m cfc_control.zoo                                   # every family, 2 local workers
    python -m cfc_control.zoo --families Walker2d,Swimmer --stages teachers
    python -m cfc_control.zoo --ray-address local --workers 8   # or a cluster's address
    python -m cfc_control.zoo --dry-run                         # what would run

Run it from the repository's root: teachers go to policies/experts/ (checkpoints in
runs/teachers/), students' runs to runs/zoo/, studies to studies/zoo/<family>/, shipped students to
policies/, and the summary to studies/zoo/README.md. Every stage resumes job by job, so rerunning
the same command after an interruption does only what is missing.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from cfc_control.cli import INTERRUPTED, ArgumentParser, error_line
from cfc_control.study import make_backend
from cfc_control.zoo import STAGES, ZooPlan, build_zoo, describe, recipes_for
from cfc_control.zoo.recipes import SEEDS, STUDY_MODELS

PROG = "python -m cfc_control.zoo"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--families", default=None, help="comma-separated task families (default: all seven)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run, in order")
    parser.add_argument("--models", default=",".join(STUDY_MODELS), help="models of each family's study")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="training seeds")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per policy and timing")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (0: run in this process)")
    parser.add_argument("--ray-address", default=None,
                        help="run the jobs on Ray: 'local' starts one here, else a cluster address")
    parser.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    return parser


def _plan(args: argparse.Namespace) -> ZooPlan:
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if args.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {args.episodes}")
    plan = ZooPlan(recipes_for(args.families), stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()),
                   models=tuple(m.strip() for m in args.models.split(",") if m.strip()), seeds=seeds,
                   episodes=args.episodes)
    for recipe in plan.recipes.values():  # every study's parameters, checked before anything runs
        plan.study(recipe)
    return plan


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = _plan(args)
    except ValueError as err:
        return error_line(PROG, err)
    if args.dry_run:
        print("\n".join(describe(plan)))
        return 0
    try:
        backend = make_backend(args.workers, args.ray_address)
    except (RuntimeError, ValueError) as err:
        return error_line(PROG, err)
    try:
        with backend:
            outcome = build_zoo(plan, backend)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; what finished is kept: run the same command to continue", file=sys.stderr)
        return INTERRUPTED
    print(f"teachers ready: {', '.join(outcome.teachers_ready) or 'none'}; studied: {', '.join(outcome.studied) or 'none'}; "
          f"fine-tuned: {', '.join(outcome.fine_tuned) or 'none'}; "
          f"shipped: {len(outcome.shipped)}; {outcome.wall_s:.0f} s")
    for family, why in outcome.waiting.items():
        print(f"  {family} waits: {why}")
    if outcome.failures:
        print(f"{len(outcome.failures)} job(s) failed: {', '.join(outcome.failures)}; rerun the same command to retry them",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
