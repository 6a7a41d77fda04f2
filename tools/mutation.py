"""Mutation testing of the core functions with mutmut (its configuration: [tool.mutmut] in
pyproject.toml; it works in a copy under mutants/, ignored by git).

    python tools/mutation.py                      # the core functions, within 45 minutes
    python tools/mutation.py --time-limit 600     # stop after 10 minutes (what ran is kept)
    python tools/mutation.py 'cfc_control.training.bc.x_masked_nmse*'   # chosen mutants
    python tools/mutation.py --report             # the score of what has run so far

Runs ``mutmut run`` on mutant-name patterns, then prints, per function, the mutants killed out
of those that ran and the survivors (``python -m mutmut show NAME`` shows a survivor's diff).
Results are cached in mutants/: a second run only runs the mutants not yet run (--recheck: and
the survivors, after tests were added).
mutmut rather than a hand-written mutator: it selects, per mutant, only the tests that reach
the mutated function, which is what makes this affordable on two cores.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from typing import Dict, List, Sequence

# Mutant names: module.x_function or module.xǁClassǁmethod, then __mutmut_N. Run group by group,
# the small core functions first: the runner's two step functions hold ~420 mutants that each run
# the runner's fuzz and oracle tests (~5 s a mutant here), more than the rest together.
GROUPS = {
    "core": [
        "cfc_control.policies.time_input.xǁTimeInputǁ*",              # the Δt range and conversion
        "cfc_control.policies.policy.xǁRecurrentPolicyǁmodel_time*",  # the Δt clamp (torch)
        "cfc_control.policies.policy.xǁRecurrentPolicyǁnormalize_obs*",
        "cfc_control.policies.policy.xǁRecurrentPolicyǁto_action*",   # the action mapping
        "cfc_control.policies.policy.xǁActionMappingǁ*",
        "cfc_control.training.bc.x_masked_nmse*",                     # the BC loss and its mask
        "cfc_control.training.bc.xǁSequenceDataǁbatch*",
        "cfc_control.training.bc.x_forward_batch*",
        "cfc_control.models.cfc_cell.x_closed_form_parts*",           # the closed-form step
        "cfc_control.models.cfc_cell.x_closed_form_update*",
        "cfc_control.models.cfc_cell.xǁCfCCellǁforward*",
        "cfc_control.models.cfc_cell.xǁCfCCellǁhead_preactivations*",
        "cfc_control.runtime.node.xǁPolicyNodeǁ__init__*",            # the watchdog
        "cfc_control.runtime.node.xǁPolicyNodeǁ_step*",
        "cfc_control.runtime.runner.xǁPolicyRunnerǁ_clamped*",        # the runner's clamp counters
    ],
    "runner-step": [                                                   # the runner's Δt clamps, checks
        "cfc_control.runtime.runner.xǁPolicyRunnerǁ_step_one*",
        "cfc_control.runtime.runner.xǁPolicyRunnerǁ_step_batch*",
        "cfc_control.runtime.runner.xǁPolicyRunnerǁ_advance*",
        "cfc_control.runtime.runner.xǁPolicyRunnerǁ_model_time*",
        "cfc_control.runtime.inputs.x_row_time*",
        "cfc_control.runtime.inputs.x_batch_times*",
    ],
}
CORE = [p for group in GROUPS.values() for p in group]
LINE = re.compile(r"^\s*(?P<name>\S+?)__mutmut_\d+: (?P<status>.+?)\s*$")


def results() -> Dict[str, Dict[str, List[str]]]:
    """{function: {status: [mutant names]}} from ``mutmut results --all true``."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True,
                         text=True, check=True).stdout
    table: Dict[str, Dict[str, List[str]]] = defaultdict(lambda: defaultdict(list))
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            table[m["name"]][m["status"]].append(line.split(":")[0].strip())
    return table


def mutant_statuses(patterns: Sequence[str]) -> Dict[str, str]:
    """{mutant name: status} for the mutants matching ``patterns``."""
    from fnmatch import fnmatchcase

    return {name: status for by_status in results().values() for status, names in by_status.items()
            for name in names if any(fnmatchcase(name, p) for p in patterns)}


def report(patterns: Sequence[str]) -> int:
    """Print killed / run per function matching ``patterns``; returns the number of survivors."""
    from fnmatch import fnmatchcase

    killed = ran = 0
    survivors: List[str] = []
    for function, by_status in sorted(results().items()):
        if not any(fnmatchcase(function + "__mutmut_1", p) for p in patterns):
            continue
        done = {s: v for s, v in by_status.items() if s != "not checked"}
        n_run = sum(len(v) for v in done.values())
        n_killed = len(done.get("killed", [])) + len(done.get("timeout", []))
        pending = len(by_status.get("not checked", []))
        killed, ran = killed + n_killed, ran + n_run
        survivors += done.get("survived", []) + done.get("no tests", [])
        print(f"{function.split('.', 1)[1]:60s} {n_killed:4d} / {n_run:4d} killed" + (f"  ({pending} not run)" if pending else ""))
    if ran:
        print(f"\nmutation score: {killed} / {ran} = {100.0 * killed / ran:.1f}% of the mutants that ran")
    for name in survivors:
        print(f"survived: {name}")
    return len(survivors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", help="mutant-name patterns (default: the core functions)")
    parser.add_argument("--time-limit", type=float, default=2700.0, help="seconds before mutmut is stopped")
    parser.add_argument("--report", action="store_true", help="only print the score of what has run")
    parser.add_argument("--max-children", type=int, default=2, help="mutants run in parallel")
    parser.add_argument("--recheck", action="store_true", help="also re-run the survivors (after adding tests)")
    parser.add_argument("--group", action="append", choices=list(GROUPS), help="only these groups (default: all, in order)")
    args = parser.parse_args(argv)
    groups = [args.patterns] if args.patterns else [GROUPS[g] for g in (args.group or list(GROUPS))]
    deadline = time.monotonic() + args.time_limit
    for group in ([] if args.report else groups):
        # mutmut re-runs every mutant named on its command line: name only those still to run
        # (and, with --recheck, the survivors, e.g. after adding tests).
        wanted = {"not checked"} | ({"survived", "no tests"} if args.recheck else set())
        names = [n for n, status in mutant_statuses(group).items() if status in wanted]
        left = deadline - time.monotonic()
        if names and (left <= 0 or not run_mutmut(names, left, args.max_children)):
            break
    report([p for group in groups for p in group])
    return 0


def run_mutmut(patterns: Sequence[str], time_limit: float, max_children: int) -> bool:
    """``mutmut run`` on ``patterns``; False when stopped by the time limit."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *patterns]
    # Its own process group, so that a time-out stops mutmut's workers too.
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=time_limit)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        print("stopped by the time limit; run again to continue (finished mutants are cached)", file=sys.stderr)
        return False


if __name__ == "__main__":
    raise SystemExit(main())
