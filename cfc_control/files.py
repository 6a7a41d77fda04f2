"""Atomic file writes: every file this project writes appears whole or not at all.

A writer gets a temporary path beside the target; only when it has returned is the file synced to
disk, given ordinary permissions (mkstemp makes 0600; policies and data sets are meant to be
shared) and renamed over the target. On any error the temporary file is removed and the old
target, if any, is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)`` writes ``p`` atomically."""
    target = Path(target)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(target: PathLike, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def atomic_write_bytes(target: PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


@contextmanager
def atomic_directory(target: PathLike) -> Iterator[Path]:
    """``with atomic_directory(d) as tmp: fill(tmp)`` makes ``d`` appear complete: a checkpoint is
    written into a temporary sibling directory and renamed into place only when whole. An older
    ``d`` is removed just before the rename; on any error the temporary directory is removed."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_json(path: PathLike, missing: str = "missing") -> Any:
    """Parse a JSON file; errors name the file: FileNotFoundError ``"<path>: <missing>"`` when it
    does not exist, ValueError when it is not valid JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {missing}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def check_writable(directory: Path, what: str) -> None:
    """Raise ValueError unless ``directory`` exists or can be made, and files can be written in it."""
    directory = Path(directory)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"{what} {directory}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {directory}: cannot write there (no permission in {existing})")
