"""``python -m cfc_control.bench <name> [options]``: run one benchmark module's ``main(argv)``."""

from __future__ import annotations

import sys
from importlib import import_module
from typing import List, Optional

# name -> what it measures; the module is cfc_control.bench.<name>
BENCHMARKS = {
    "models": "model step latency and training-step time against the reference library",
    "runner": "policy runner latency",
    "rl": "reinforcement-learning throughput",
    "node": "control-node round trips against a bare pyzmq echo",
}


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in BENCHMARKS:
        lines = "\n".join(f"  {n:<8} {d}" for n, d in BENCHMARKS.items())
        print(f"usage: python -m cfc_control.bench <name> [options]\n\nbenchmarks:\n{lines}", file=sys.stderr)
        if args and args[0] not in ("-h", "--help"):
            print(f"\nunknown benchmark {args[0]!r}", file=sys.stderr)
            return 2
        return 0 if args else 2
    try:
        module = import_module(f"cfc_control.bench.{args[0]}")
    except ModuleNotFoundError as e:
        if e.name == f"cfc_control.bench.{args[0]}":
            print(f"benchmark {args[0]!r} is not available in this checkout", file=sys.stderr)
            return 2
        raise
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
