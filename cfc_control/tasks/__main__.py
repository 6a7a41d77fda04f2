"""``python -m cfc_control.tasks [--json] [FILTER]``: list the registered tasks."""

from __future__ import annotations

import json
import sys

from cfc_control.cli import ArgumentParser
from cfc_control.tasks.registry import list_tasks, task_info

COLUMNS = (
    ("id", "task"),
    ("base_env", "base env"),
    ("obs", "obs"),
    ("timing", "timing"),
    ("timing_spec", "timing spec (s)"),
    ("nominal_dt", "nominal dt (s)"),
    ("horizon_s", "horizon (s)"),
    ("max_steps", "steps"),
    ("reward_threshold", "threshold"),
    ("obs_size", "obs dim"),
    ("act_size", "act dim"),
)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table, one task a line."""
    cells = [[title for _, title in COLUMNS]]
    cells += [[_cell(row[key]) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m cfc_control.tasks",
        description="List the cfc_control tasks: base env, observation model, timing, nominal "
        "period, horizon in simulated seconds and Gymnasium's reward threshold.",
    )
    parser.add_argument("filter", nargs="?", default="", help="only ids containing this text")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)
    rows = [task_info(i) for i in list_tasks() if args.filter.lower() in i.lower()]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
