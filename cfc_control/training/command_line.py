"""The ``train`` command's flags, generated from :class:`~cfc_control.training.run_config.RunConfig`
and :class:`~cfc_control.training.run_config.RunOptions`, and parsed back into them.

``python -m cfc_control.train`` is the thin entry point over this; the timing study turns its
extra training flags into configs with :func:`parse_config` too.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any, Dict, List, Tuple

from cfc_control.cli import ArgumentParser
from cfc_control.flags import add_flags, build, flags_by_path, iter_fields
from cfc_control.training.run_config import RunConfig, RunOptions
from cfc_control.training.run_context import read_run_config

PROG = "python -m cfc_control.train"
# A flag of another algorithm that has a counterpart here: say which to use instead.
COUNTERPARTS = {("--lr", "ppo"): "--learning-rate", ("--batch-size", "ppo"): "--hp batch_size=N",
                ("--epochs", "ppo"): "--n-epochs", ("--learning-rate", "bc"): "--lr",
                ("--learning-rate", "dagger"): "--lr"}

def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The parser of every ``train`` flag; ``description``: the help's text (first paragraph as
    the description, the rest after the flags)."""
    head, _, rest = description.partition("\n\n")
    parser = ArgumentParser(prog=PROG, description=head, epilog=rest,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, RunConfig)
    add_flags(parser.add_argument_group("this invocation"), RunOptions)
    return parser


def _algo_groups() -> Dict[str, Tuple[str, ...]]:
    """Dotted path of each algorithm-specific setting -> the algorithms it applies to."""
    out: Dict[str, Tuple[str, ...]] = {}
    for path, leaf, _, parents in iter_fields(RunConfig):
        if "algos" in leaf.metadata:
            out[path] = tuple(leaf.metadata["algos"])
        elif parents and "algos" in parents[0].metadata:
            out[path] = tuple(parents[0].metadata["algos"])
    return out


def _refuse_foreign_flags(given: Dict[str, Any], algo: str) -> None:
    flags = flags_by_path(RunConfig)
    for path, algos in _algo_groups().items():
        if path in given and algo not in algos:
            flag = flags[path]
            hint = COUNTERPARTS.get((flag, algo))
            raise ValueError(f"{flag} is a {'/'.join(algos)} flag and does nothing for {algo}"
                             + (f"; use {hint}" if hint else ""))


def parse_config(argv: List[str], description: str = "") -> Tuple[RunConfig, RunOptions]:
    """The run's config and this invocation's options from command-line arguments. With
    --resume, the config recorded in --out's run.json (training flags given are ignored, and
    said so). Raises ValueError (argparse mistakes exit with code 2)."""
    given = vars(build_parser(description).parse_args(argv))
    option_paths = set(flags_by_path(RunOptions))
    options = build(RunOptions, {k: v for k, v in given.items() if k in option_paths})
    settings = {k: v for k, v in given.items() if k not in option_paths}
    if options.resume:
        config = replace(RunConfig(), out=settings.get("out"))
        stored = read_run_config(config.run_dir)
        if stored is None:
            raise ValueError(f"--resume: {config.run_dir} has no run.json; nothing to resume")
        ignored = sorted(flags_by_path(RunConfig)[k] for k in settings if k != "out")
        if ignored:
            print(f"note: --resume continues the recorded run; ignored: {' '.join(ignored)}", file=sys.stderr)
        return replace(stored[0], out=str(config.run_dir)), options
    config = build(RunConfig, settings)
    _refuse_foreign_flags(settings, config.algo)
    return config, options
