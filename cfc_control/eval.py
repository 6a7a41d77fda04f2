"""Evaluate a policy directory on a task.

    python -m cfc_control.eval policies/cfc-invertedpendulum-pos-irregular
    python -m cfc_control.eval DIR --env InvertedPendulum-Pos-Irregular --timing Jitter --timing fixed:0.05 \\
        --episodes 20 --json
    python -m cfc_control.eval --expert policies/experts/halfcheetah-sac --env HalfCheetah-Pos-Jitter \\
        --timing Fixed --timing Jitter --timing Irregular
    python -m cfc_control.eval policies/cfc-halfcheetah-pos-jitter --card

--card re-runs the evaluation the policy's card records (its timings, episodes and seeds), prints
card and new result side by side, and exits 1 unless every timing reproduces the card's mean and std
(evaluation is deterministic: to the card's rounding and 1e-6 relative). On locomotion tasks, whose
contacts grow another CPU's last-bit rounding into other episodes, a mean within three standard
errors of the card's passes too, reported as "within sampling error".

--env defaults to the task the policy was trained on; --timing (repeatable: a preset or a spec in
seconds such as "uniform:0.03,0.06") defaults to the task's own; --obs overrides the observation
model. Episodes use fixed seeds (--seed), the same for every policy. DIR may also be a training
run directory (its policy/ is used).
"""

from __future__ import annotations

import json
from typing import List, Optional

from cfc_control.cli import ArgumentParser, error_line
from cfc_control.policies import load_policy, read_card, resolve_policy_dir
from cfc_control.policies.catalog import compare_with_card
from cfc_control.episodes.evaluation import EVAL_SEED, evaluate, evaluate_expert
from cfc_control.tasks import resolve_stored_task, task_info
from cfc_control.tasks.observations import OBS_MODELS


PROG = "python -m cfc_control.eval"


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", nargs="?", help="policy directory (or a training run directory)")
    parser.add_argument("--expert", default=None,
                        help="evaluate an expert instead ('lqr', 'lqr-scheduled', 'mpc' or an expert "
                             "directory; needs --env)")
    parser.add_argument("--env", default=None, help="task (default: the policy's)")
    parser.add_argument("--timing", action="append", default=None,
                        help="timing preset or spec, repeatable (default: the task's)")
    parser.add_argument("--obs", default=None, help=f"observation model override ({', '.join(OBS_MODELS)})")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="reset seed of the first episode")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--card", action="store_true",
                        help="re-run the evaluation recorded in the policy's card and compare (exit 1 if outside its spread)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if (args.policy is None) == (args.expert is None):
        parser.error("give a policy directory or --expert, not both")
    if args.expert is not None and args.env is None:
        parser.error("--expert needs --env")
    if args.card and (args.expert is not None or args.env or args.timing or args.obs):
        parser.error("--card re-runs the card's own evaluation: give only the policy directory")
    if args.card:
        return _check_card(args.policy)
    try:
        if args.expert is not None:
            directory = args.expert
            results = [evaluate_expert(args.expert, args.env, timing=t, obs=args.obs, episodes=args.episodes,
                                       seed=args.seed) for t in (args.timing or [None])]
        else:
            directory = resolve_policy_dir(args.policy)
            policy = load_policy(directory)
            results = [evaluate(policy, args.env, timing=t, obs=args.obs, episodes=args.episodes, seed=args.seed,
                                progress=None if args.json else f"eval {t or 'task timing'}")
                       for t in (args.timing or [None])]
    except (FileNotFoundError, ValueError) as err:
        return error_line(PROG, err)
    if args.json:
        print(json.dumps({"policy": str(directory), "results": [r.to_dict() for r in results]}, indent=2))
    else:
        for r in results:
            print(f"{r.task} [{r.timing}]: return {r.mean:.2f} ± {r.std:.2f} over {r.episodes} episodes "
                  f"(mean length {sum(r.lengths) / len(r.lengths):.0f} steps)")
    return 0


def _check_card(path: str) -> int:
    """Re-evaluate a policy as its card did; 0 when every timing reproduces the card."""
    try:
        directory = resolve_policy_dir(path)
        card = read_card(directory)
        entries = card.get("evaluation") or {}
        if not entries:
            raise ValueError(f"{directory}/card.json records no evaluation to compare with")
        policy = load_policy(directory)
        task = resolve_stored_task(card["task"], f"{directory}/card.json")
        rounding_sensitive = task_info(task)["rounding_sensitive"]
        obs = (card.get("overrides") or {}).get("obs")  # a policy trained with --obs was evaluated with it
        results = {name: evaluate(policy, task, timing=entry["timing_spec"], obs=obs,
                                  episodes=int(entry["episodes"]), seed=int(entry["seed"]), progress=f"eval {name}")
                   for name, entry in entries.items()}
    except KeyError as err:
        return error_line(PROG, f"{path}: the card lacks {err} (needs task and, per timing, timing_spec, "
                                f"episodes, seed)")
    except (FileNotFoundError, ValueError) as err:
        return error_line(PROG, err)
    failed = 0
    for name, entry in entries.items():
        r = results[name]
        check = compare_with_card(entry, r.mean, r.std, rounding_sensitive)
        failed += not check.ok
        verdict = {"reproduced": "ok", "within sampling error": "ok (within sampling error, not to its rounding)",
                   "outside": "OUTSIDE the card (not reproduced)"}[check.verdict]
        print(f"{name:>10}: card {entry['mean']:9.2f} ± {entry['std']:.2f}   now {r.mean:9.2f} ± {r.std:.2f}   "
              f"diff {check.diff:+.4f}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
