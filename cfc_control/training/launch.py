"""Training runs: the shared flags, the algorithm table, and one run from flags to a policy
directory with its card. ``python -m cfc_control.train`` is the thin entry point over this; the
study calls the same functions.

Train a recurrent policy on a task.

    python -m cfc_control.train --env InvertedPendulum-Pos-Irregular --algo bc
    python -m cfc_control.train --env InvertedPendulum-Pos-Irregular --algo dagger --policy ncp --seed 1
    python -m cfc_control.train --env ... --out runs/x --resume          # continue an interrupted run

Every flag has a default. The run directory (--out, default runs/<task>-<algo>-<policy>-s<seed>)
gets metrics.csv, TensorBoard events (tb/), checkpoints/ and the result, policy/: weights,
config and card (task, algorithm, policy, seeds, data size, training time, the command, and the
evaluation returns under Fixed, Jitter and Irregular timing).

Algorithms are a table (:data:`ALGORITHMS`): name -> "module:attribute" of a
:class:`cfc_control.training.run.Algorithm`. Adding one is adding a line here; see
:mod:`cfc_control.training.run` for the contract.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from importlib import import_module
from pathlib import Path
from typing import Any, Dict, List, Optional

from cfc_control.training.evaluation import EVAL_SEED, card_entry, evaluate_timings
from cfc_control.training.run import Algorithm

ALGORITHMS: Dict[str, str] = {
    "bc": "cfc_control.training.imitation:BC",
    "dagger": "cfc_control.training.imitation:DAGGER",
    "ppo": "cfc_control.training.ppo.cli:PPO",
}
DEFAULT_ENV = "InvertedPendulum-Pos-Irregular"
EVAL_TIMINGS = "Fixed,Jitter,Irregular"
# Flags that may differ when a run is resumed; every other flag is taken from the run's run.json.
RESUME_FREE = ("resume", "out", "no_progress", "threads", "no_tensorboard")


def load_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; available: {', '.join(ALGORITHMS)}")
    module, _, attr = ALGORITHMS[name].partition(":")
    return getattr(import_module(module), attr)


def parse_model_kw(items: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--model-kw expects KEY=VALUE (VALUE as JSON), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    from cfc_control.models.registry import available

    parser = argparse.ArgumentParser(prog="python -m cfc_control.train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    shared = parser.add_argument_group("run")
    shared.add_argument("--env", default=DEFAULT_ENV, help="task (see python -m cfc_control.tasks)")
    shared.add_argument("--algo", choices=list(ALGORITHMS), default="bc")
    shared.add_argument("--policy", choices=available(), default="cfc", help="model (cfc_control.models.make name)")
    shared.add_argument("--model-kw", action="append", default=[], metavar="KEY=VALUE",
                        help="model argument override, e.g. --model-kw units=32 (repeatable)")
    shared.add_argument("--seed", type=int, default=0, help="seeds torch, data collection and the data split")
    shared.add_argument("--out", default=None, help="run directory (default runs/<task>-<algo>-<policy>-s<seed>)")
    shared.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    shared.add_argument("--checkpoint-every", type=int, default=5, help="epochs between checkpoints")
    shared.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes per timing (0: skip)")
    shared.add_argument("--eval-timings", default=EVAL_TIMINGS, help="comma-separated timing presets to evaluate")
    shared.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 0 keeps torch's default. Small recurrent models stepped one "
                             "step at a time gain nothing from more, and spinning threads slow to a crawl "
                             "on a busy machine (measured: 0.4 s vs 1.6-4.5 s per epoch on 2 shared cores)")
    shared.add_argument("--no-progress", action="store_true", help="no progress bar")
    shared.add_argument("--no-tensorboard", action="store_true", help="CSV logs only")
    added = set()
    for name in ALGORITHMS:
        algo = load_algorithm(name)
        for add in algo.arguments:
            if add not in added:
                added.add(add)
                add(parser.add_argument_group(add.__name__.replace("_arguments", "")))
    return parser


def _default_out(args: argparse.Namespace) -> Path:
    short = args.env.split("/")[-1].split("-v")[0]
    return Path("runs") / f"{short}-{args.algo}-{args.policy}-s{args.seed}"


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else _default_out(args)
    from cfc_control.training.run import RunContext, read_run_args, write_run_args

    if args.resume:
        stored = read_run_args(out)
        if stored is None:
            parser.error(f"--resume: {out} has no run.json; nothing to resume")
        for key, value in stored.items():
            if key not in RESUME_FREE and not key.startswith("_"):
                setattr(args, key, value)
    try:
        args.model_kw = parse_model_kw(args.model_kw) if isinstance(args.model_kw, list) else dict(args.model_kw)
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    try:
        from cfc_control.tasks import resolve_env_id

        resolve_env_id(args.env)
    except ValueError as err:
        parser.error(str(err))
    if args.checkpoint_every <= 0:
        parser.error(f"--checkpoint-every must be positive, got {args.checkpoint_every}")
    if args.threads and args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)

    command = "python -m cfc_control.train " + shlex.join(argv)
    out.mkdir(parents=True, exist_ok=True)
    if args.resume:
        original = stored.get("_command", command)
    else:
        original = command
        write_run_args(out, {**{k: v for k, v in vars(args).items() if k != "resume"}, "_command": command})
    algo = load_algorithm(args.algo)
    ctx = RunContext(args, out, original, progress=not args.no_progress)
    if args.resume and ctx.checkpoint is None:
        print(f"{out}: no checkpoint yet; starting from scratch", file=sys.stderr)
    try:
        outcome = algo.run(args, ctx)
    except (ValueError, FileNotFoundError) as err:
        # Bad input (unknown task, no expert, unreadable demonstrations): the message says what.
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        ctx.close()
    train_time = ctx.elapsed()
    card = _card(args, ctx, outcome, train_time, resumed_with=command if args.resume else None)
    policy_dir = out / "policy"
    from cfc_control.policies import save_policy

    save_policy(outcome.policy, policy_dir, card)
    if args.eval_episodes > 0:
        start = time.time()
        timings = [t.strip() for t in args.eval_timings.split(",") if t.strip()]
        results = evaluate_timings(outcome.policy, ctx.task, timings=timings, episodes=args.eval_episodes)
        card["evaluation"] = card_entry(results)
        card["evaluation_time_s"] = round(time.time() - start, 1)
        save_policy(outcome.policy, policy_dir, card)
        for name, r in results.items():
            print(f"{name:>10}: return {r.mean:9.2f} ± {r.std:.2f} over {r.episodes} episodes")
    print(f"policy: {policy_dir}  (trained in {train_time:.0f} s)")
    return 0


def _card(args: argparse.Namespace, ctx, outcome, train_time: float, resumed_with: Optional[str]) -> Dict[str, Any]:
    import cfc_control
    from cfc_control.training.imitation import DEMO_SEED_STRIDE

    card: Dict[str, Any] = {
        "task": ctx.task,
        "algorithm": args.algo,
        "policy": args.policy,
        "model_kwargs": args.model_kw,
        "parameters": sum(p.numel() for p in outcome.policy.model.parameters() if p.requires_grad),
        "seeds": {"run": args.seed, "torch": args.seed, "demonstration_resets": f"{DEMO_SEED_STRIDE} * seed + episode",
                  "evaluation_resets": f"{EVAL_SEED} + episode"},
        "training_time_s": round(train_time, 1),
        "command": ctx.command,
        "library_version": cfc_control.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if resumed_with:
        card["resumed_with"] = resumed_with
    card.update(outcome.card)
    return card

