"""Atomic file writes: every file this project writes appears whole or not at all.

A writer gets a temporary path beside the target; only when it has returned is the file synced to
disk, given ordinary permissions (mkstemp makes 0600; policies and data sets are meant to be
shared) and renamed over the target. On any error the temporary file is removed and the old
target, if any, is untouched.

A directory of files meant to be shared (a policy) carries ``manifest.json``, the SHA-256 of each
file, so that a reader can refuse a file that was corrupted or changed after it was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Union

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


def remove_temporaries(directory: PathLike) -> int:
    """Remove what interrupted atomic writes left in ``directory`` (a process killed between
    creating a temporary and renaming it): hidden ``.<name>.*`` directories and ``.<name>.*.tmp``
    files. Only for a directory that one writer owns (a run's checkpoints). Returns how many."""
    removed = 0
    for entry in Path(directory).iterdir():
        if not entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        elif entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


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


# -- checksums -------------------------------------------------------------------------------
MANIFEST = "manifest.json"


def sha256_file(path: PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex (read in chunks: any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_text(directory: PathLike, names: Iterable[str], files: Optional[dict] = None) -> str:
    """The manifest (JSON) of ``names`` in ``directory``: {"sha256": {name: hex}}; ``files``
    maps a name to the path its bytes are at now (a temporary file about to be renamed)."""
    directory = Path(directory)
    files = files or {}
    sums = {name: sha256_file(files.get(name, directory / name)) for name in sorted(names)}
    return json.dumps({"sha256": sums}, indent=1) + "\n"


def read_manifest(directory: PathLike) -> Optional[Dict[str, str]]:
    """{name: sha256 hex} from ``directory/manifest.json``, or None when there is none."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    data = read_json(path)
    sums = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
        raise ValueError(f"{path}: expected {{\"sha256\": {{file: hex}}}}")
    return sums


def verify_files(directory: PathLike, names: Iterable[str]) -> None:
    """Check ``names`` in ``directory`` against its manifest (when it has one): ValueError naming
    the first file whose SHA-256 differs (corrupted or changed since it was saved). A name the
    manifest does not list is not checked; a directory without a manifest passes."""
    sums = read_manifest(directory)
    if sums is None:
        return
    for name in names:
        if name in sums:
            path = Path(directory) / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (listed in {MANIFEST})")
            if sha256_file(path) != sums[name]:
                raise ValueError(f"{path}: its SHA-256 differs from {MANIFEST}'s: the file is corrupted or was "
                                 "changed after it was saved")


def update_manifest(directory: PathLike, name: str) -> None:
    """Record ``name``'s current checksum in ``directory``'s manifest, if it has one."""
    sums = read_manifest(directory)
    if sums is not None:
        sums[name] = sha256_file(Path(directory) / name)
        atomic_write_text(Path(directory) / MANIFEST, json.dumps({"sha256": dict(sorted(sums.items()))}, indent=1) + "\n")
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
