"""Train an SB3 expert on a stock Gymnasium MuJoCo env and save it as a policies/experts/ directory.

    python -m cfc_control.experts.train --env HalfCheetah [--algo sac] [--steps N] [--seed 0]
        [--out policies/experts/halfcheetah-sac] [--eval-episodes 20] [--set key=value ...]

Defaults per env are in :data:`cfc_control.experts.sb3.HYPERPARAMS` (rl-baselines3-zoo's). SAC at
1M steps takes many hours on two CPU cores; pass --steps for a shorter run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, Dict, List, Optional

from cfc_control.experts.sb3 import ALGOS, stock_env_id, train_sb3_expert


def _parse_set(items: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value (value as JSON), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfc_control.experts.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="stock env: HalfCheetah, Hopper-v5, ...")
    parser.add_argument("--algo", choices=ALGOS, default="sac")
    parser.add_argument("--steps", type=int, default=None, help="environment steps (default: per-env table)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output directory (default policies/experts/<env>-<algo>)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an SB3 hyperparameter (JSON value), e.g. --set learning_starts=1000")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    env_id = stock_env_id(args.env)
    out = args.out or f"policies/experts/{env_id.split('-v')[0].lower()}-{args.algo}"
    command = "python -m cfc_control.experts.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    _, card = train_sb3_expert(env_id, out, algo=args.algo, steps=args.steps, seed=args.seed,
                               overrides=_parse_set(args.set), eval_episodes=args.eval_episodes,
                               progress=not args.no_progress, command=command)
    ev = card["evaluation"]
    print(f"{out}: {env_id} {args.algo} {card['steps']} steps, return {ev['mean']:.1f} ± {ev['std']:.1f} "
          f"over {ev['episodes']} episodes (threshold {card['reward_threshold']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
