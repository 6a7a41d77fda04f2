"""What every command line here shares: errors as one line on stderr and exit code 2, and the
project's warnings as one line.

A user's mistake (a bad flag, a task that does not exist, a file that is not there) is reported
as ``<prog>: error: <what was wrong>`` and nothing else; a traceback is for bugs. A warning (a
period outside what the policy was trained for, ...) reads ``<prog>: warning: <what>``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Callable, NoReturn

USAGE_ERROR = 2
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
_PYTHON_WARNING_FORMAT = warnings.formatwarning


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the error as one line (no usage block; ``--help`` shows that). Parsing
    also makes the process show this project's own warnings as ``<prog>: warning: <what>``."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        warnings.formatwarning = brief_warning_format(self.prog)
        return super().parse_known_args(args, namespace)


def brief_warning_format(prog: str) -> Callable[..., str]:
    """A ``warnings.formatwarning`` that prints this project's warnings (a period outside the
    policy's training range, a clamped Δt, ...) as one line, ``<prog>: warning: <what>``: the file,
    line and source Python adds are for debugging a library, not for someone running a command.
    Other packages' warnings keep Python's format."""

    def format_warning(message: Any, category: type, filename: str, lineno: int, line: Any = None) -> str:
        if getattr(category, "__module__", "").startswith("cfc_control."):
            return f"{prog}: warning: {' '.join(str(message).split())}\n"
        return _PYTHON_WARNING_FORMAT(message, category, filename, lineno, line)

    return format_warning


def fail(prog: str, message: str) -> NoReturn:
    """Print ``prog: error: message`` (one line) to stderr and exit with code 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def error_line(prog: str, err: BaseException) -> int:
    """Print an exception as the one-line error of ``prog``; returns the exit code 2."""
    print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
    return USAGE_ERROR
