"""``python -m cfc_control.policies [DIR] [--json]``: the table of the policies shipped in DIR
(default ``policies``), from their cards."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from cfc_control.policies.catalog import catalog, markdown_table


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfc_control.policies", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="policies", help="directory holding policy directories")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    try:
        rows = catalog(args.root)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
