"""Study how returns hold up when the control period changes.

    python -m cfc_control.study timing --env InvertedPendulum-Pos-Irregular
    python -m cfc_control.study timing --env InvertedDoublePendulum-Pos-Jitter --models cfc,lstm --seeds 0,1
    python -m cfc_control.study timing --env ... --ray-address local         # jobs as Ray tasks
    python -m cfc_control.study timing --env ... -- --epochs 80 --episodes 40  # flags for every training run

Trains (or reuses, from --runs-root) every model with every seed under the task's own timing, then
evaluates each under every timing of --timings, and writes DIR/results.md, DIR/results.csv and
DIR/returns_vs_period.png (DIR: --out, default studies/<task>). Rerunning the same command resumes
an interrupted study: finished jobs are not run again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import List, Optional

from cfc_control.cli import ArgumentParser
from cfc_control.study.jobs import ALGOS, DEFAULT_MODELS, DEFAULT_SEEDS, DEFAULT_TIMINGS
from cfc_control.files import atomic_write_text
from cfc_control.study import load_results, make_backend, make_plan, run_study, write_report
from cfc_control.study.driver import load_expert_results
from cfc_control.study.work import expected_config


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m cfc_control.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="study", required=True)
    p = sub.add_parser("timing", help="returns of several models under several control-period timings",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Arguments after `--` go to every training run (python -m cfc_control.train).")
    p.add_argument("--env", default="InvertedPendulum-Pos-Irregular", help="task (trained under its own timing)")
    p.add_argument("--algo", choices=ALGOS, default="bc")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names")
    p.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="comma-separated training seeds")
    p.add_argument("--timings", default=",".join(DEFAULT_TIMINGS),
                   help="evaluation grid: Nx (fixed, N x nominal period), preset names, Wide (loguniform 0.25x-4x)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes per policy and timing")
    p.add_argument("--out", default=None, help="results directory (default studies/<task>)")
    p.add_argument("--runs-root", default="runs", help="where the training run directories live")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (0: run in this process)")
    p.add_argument("--ray-address", default=None,
                   help="run the jobs on Ray: 'local' starts one here, else a cluster address (needs the ray extra)")
    p.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse finished runs and stored results (--no-reuse retrains and re-evaluates all)")
    p.add_argument("--expert-row", action=argparse.BooleanOptionalAction, default=True,
                   help="evaluate the demonstrating expert under every timing too (a reference row)")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from stored results; run nothing")
    return parser


def _ints(text: str, what: str, parser: argparse.ArgumentParser) -> List[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        parser.error(f"{what} must be comma-separated integers, got {text!r}")
        raise  # unreachable: parser.error exits


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = build_parser()
    args = parser.parse_args(own)

    try:
        plan = make_plan(args.env, algo=args.algo, models=args.models.split(","),
                         seeds=_ints(args.seeds, "--seeds", parser), timings=args.timings, episodes=args.episodes,
                         out=args.out, runs_root=args.runs_root, train_args=train_args,
                         expert="auto" if args.expert_row else None)
        # Fail now, not in every worker, on a training flag that does not parse.
        expected_config(plan.train_jobs()[0], plan.runs_root / "check")
    except ValueError as err:
        parser.error(str(err))
    command = "python -m cfc_control.study " + shlex.join(argv)
    history_path = plan.out / "study.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else {"invocations": []}
    meta = {"command": command, "backend": "nothing (report only)", "wall_s": 0.0}
    failures = {}
    if not args.report_only:
        start = time.time()
        try:
            backend = make_backend(args.workers, args.ray_address)
        except (RuntimeError, ValueError) as err:
            parser.error(str(err))
        with backend:
            where = f"{backend.name}" + (f" ({args.workers} workers)" if backend.name == "processes" else "")
            outcome = run_study(plan, backend, reuse=args.reuse)
        failures = outcome.failures
        wall = time.time() - start
        history["invocations"].append({"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                       time.localtime(start)), "wall_s": round(wall, 1), "backend": where,
                                       "trained": outcome.trained, "evaluated": outcome.evaluated,
                                       "failures": len(failures)})
        plan.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(history_path, json.dumps(history, indent=1) + "\n")
        meta.update(backend=where, wall_s=wall)
    elif history["invocations"]:
        last = history["invocations"][-1]
        meta.update(command=last["command"], backend=last["backend"], wall_s=last["wall_s"])
    # Report-only invocations run nothing and are not recorded.
    meta["invocation_walls"] = [i["wall_s"] for i in history["invocations"]]
    meta["failures"] = failures
    trains, evals = load_results(plan)
    paths = write_report(plan, trains, evals, meta, load_expert_results(plan))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if failures:
        print(f"{len(failures)} job(s) failed: {', '.join(failures)}; rerun the same command to retry them",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
