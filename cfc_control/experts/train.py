"""Train a teacher (an SB3 expert on a task's full state) and save it as a policies/experts/ directory.

    python -m cfc_control.experts.train --env Hopper --algo ppo [--timing Irregular+drop:0.05 --dt-input]
        [--steps N] [--seed 0] [--out policies/experts/hopper-ppo] [--run-dir DIR] [--resume]
        [--checkpoint-every 50000] [--eval-episodes 20] [--set key=value ...]

Defaults per env are in :data:`cfc_control.experts.sb3.HYPERPARAMS` (rl-baselines3-zoo's tuned
values). Checkpoints go to --run-dir (default runs/teachers/<name of --out>); after an interruption
the same command with --resume continues from the newest one.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, Dict, List, Optional

from cfc_control.experts.sb3 import ALGOS
from cfc_control.training.teachers import TeacherConfig, train_teacher


def _parse_set(items: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value (value as JSON), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cfc_control.experts.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="task family or stock env: Hopper, HalfCheetah-v5, ...")
    parser.add_argument("--algo", choices=ALGOS, default="sac")
    parser.add_argument("--steps", type=int, default=None, help="environment steps (default: per-env table)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing", default=None,
                        help="train under this period distribution (a preset such as Irregular+drop:0.05, "
                             "or a spec in seconds); default: the stock fixed period")
    parser.add_argument("--dt-input", action="store_true",
                        help="give the agent the period that just elapsed (Δt / nominal) as its last input")
    parser.add_argument("--out", default=None, help="output directory (default policies/experts/<env>-<algo>)")
    parser.add_argument("--run-dir", default=None, help="checkpoints (default runs/teachers/<name of --out>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its newest checkpoint")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, metavar="STEPS")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an SB3 hyperparameter (JSON value), e.g. --set learning_starts=1000")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    name = args.env.split("-v")[0].lower()
    out = args.out or f"policies/experts/{name}-{args.algo}"
    command = "python -m cfc_control.experts.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        config = TeacherConfig(env=args.env, out=out, algo=args.algo, steps=args.steps, seed=args.seed,
                               timing=args.timing, dt_input=args.dt_input, overrides=_parse_set(args.set),
                               eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every,
                               run_dir=args.run_dir, resume=args.resume)
        result = train_teacher(config, progress=not args.no_progress, command=command)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the newest checkpoint is kept; run the same command with --resume to continue",
              file=sys.stderr)
        return 130
    card = result.card
    ev = card["evaluation"]
    print(f"{out}: {card['env_id']} {args.algo} {card['steps']} steps, return {ev['mean']:.1f} ± {ev['std']:.1f} "
          f"over {ev['episodes']} episodes (threshold {card['reward_threshold']})")
    for timing, row in card.get("timings", {}).items():
        print(f"  {timing:<10} {row['mean']:9.1f} ± {row['std']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
