"""What every command line here shares: errors as one line on stderr and exit code 2.

A user's mistake (a bad flag, a task that does not exist, a file that is not there) is reported
as ``<prog>: error: <what was wrong>`` and nothing else; a traceback is for bugs.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

USAGE_ERROR = 2
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the error as one line (no usage block; ``--help`` shows that)."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message)


def fail(prog: str, message: str) -> NoReturn:
    """Print ``prog: error: message`` (one line) to stderr and exit with code 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def error_line(prog: str, err: BaseException) -> int:
    """Print an exception as the one-line error of ``prog``; returns the exit code 2."""
    print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
    return USAGE_ERROR
