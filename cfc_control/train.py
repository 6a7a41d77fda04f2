"""Train a recurrent policy on a task: ``python -m cfc_control.train --env TASK --algo bc|dagger|ppo``.

The flags, the algorithm table and the run itself live in :mod:`cfc_control.training.launch`;
``python -m cfc_control.train --help`` lists every flag with its default.
"""

from cfc_control.training.launch import ALGORITHMS, build_parser, main

__all__ = ["ALGORITHMS", "build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
