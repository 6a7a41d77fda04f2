"""Record expert demonstrations on a task.

    python -m cfc_control.collect --env InvertedPendulum-Pos-Irregular --expert lqr --episodes 20 \\
        --out demos/ip-pos-irregular.npz [--noise 0.1 [--noise-period-power 0.5]] [--seed 0] [--timing SPEC] \\
        [--obs Pos]

--expert is "lqr" or "lqr-scheduled" (pendulum tasks), "mpc" (Reacher) or an expert directory
(python -m cfc_control.experts.train).
--noise adds DART-style Gaussian noise to the *executed* action (std in units of the action's
half-range); the recorded label is the expert's own action. --noise-period-power P scales its std
by (Δt / nominal)^-P (0.5: the same impulse per second at every period). The file format is
described in :mod:`cfc_control.episodes.demos` (.npz, loads without executing code).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

from cfc_control.cli import ArgumentParser, error_line
from cfc_control.episodes.demos import save_demos
from cfc_control.files import check_writable
from cfc_control.training.collection import collect_demos
from cfc_control.tasks.observations import OBS_MODELS

PROG = "python -m cfc_control.collect"


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="task, e.g. InvertedPendulum-Pos-Irregular")
    parser.add_argument("--expert", required=True, help="'lqr', 'lqr-scheduled', 'mpc' or an expert directory")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", required=True, help="output .npz file")
    parser.add_argument("--noise", type=float, default=0.0, help="DART action noise (std, action half-ranges)")
    parser.add_argument("--noise-period-power", type=float, default=0.0,
                        help="the noise's std times (dt / nominal) ** -P")
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode")
    parser.add_argument("--timing", default=None, help="timing override (preset or spec)")
    parser.add_argument("--obs", default=None, help=f"observation model override ({', '.join(OBS_MODELS)})")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        check_writable(Path(args.out).parent, f"--out {args.out}: directory")  # before collecting, not after
        demos = collect_demos(args.env, args.expert, args.episodes, seed=args.seed, noise=args.noise,
                              noise_period_power=args.noise_period_power, timing=args.timing, obs=args.obs,
                              progress="demonstrations")
        path = save_demos(demos, args.out)
    except (FileNotFoundError, ValueError) as err:
        return error_line(PROG, err)
    s = demos.summary()
    print(f"{path}: {s['episodes']} episodes, {s['steps']} steps, expert return {s['return_mean']:.1f} ± "
          f"{s['return_std']:.1f} ({time.time() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
