"""Building the runner's C library with the system's compiler, cached on disk.

The library's source (:func:`~cfc_control.runtime.c_export.source.library_source`) holds the
architecture, not the weights, so the cache key, a SHA-256 of the source, the flags, the
compiler's version and the CPU, changes whenever anything that shapes the binary does: a library
is never loaded for a source it was not built from. Each library also returns its own key
(compiled in) and sizes, checked after loading. A build writes to a temporary file beside the
target and renames it into place, so a concurrent process sees either no library or a whole one.

Where: ``$CFC_CONTROL_CACHE_DIR``, else ``$XDG_CACHE_HOME/cfc_control``, else
``~/.cache/cfc_control``; libraries under ``c/``. The compiler: ``$CC``, else cc, gcc, clang.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# -fno-math-errno: nothing reads errno, and a math call that may write it cannot be vectorised.
# -ffp-contract=fast: fused multiply-adds (ISO C mode turns them off); rounding differs in the
# last bits only.
BASE_FLAGS = ["-std=c99", "-O3", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=fast"]
NATIVE_FLAG = "-march=native"  # this machine's vector units; the CPU is part of the cache key
LIBMVEC_FLAGS = ["-fopenmp-simd", "-DCFC_LIBMVEC"]  # glibc's SIMD exp/tanh/erf/expm1 (see source.py)
_LOADED: Dict[str, ctypes.CDLL] = {}
_LOCK = threading.Lock()


class CBuildError(RuntimeError):
    """No compiler, or the compiler refused the generated source (a bug: please report it)."""


def find_compiler() -> Optional[List[str]]:
    """The C compiler command ($CC, or the first of cc, gcc, clang on PATH), or None."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        words = shlex.split(cc)
        return words if shutil.which(words[0]) else None
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def cache_dir() -> Path:
    root = os.environ.get("CFC_CONTROL_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cfc_control"


@lru_cache(maxsize=8)
def _compiler_identity(cc: Tuple[str, ...]) -> str:
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@lru_cache(maxsize=1)
def _cpu_identity() -> str:
    """The CPU's model and feature flags (a library built with -march=native runs only there)."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


@lru_cache(maxsize=8)
def _native_ok(cc: Tuple[str, ...]) -> bool:
    """Whether the compiler takes -march=native (gcc and clang on x86 and most ARM do)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("int probe(void) { return 0; }\n")
        try:
            r = subprocess.run([*cc, NATIVE_FLAG, "-c", str(src), "-o", str(Path(tmp) / "probe.o")],
                               capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return r.returncode == 0


@lru_cache(maxsize=8)
def _libmvec_ok(cc: Tuple[str, ...], native: bool) -> bool:
    """Whether a program declaring the SIMD math functions links against glibc's libmvec here."""
    from cfc_control.runtime.c_export.source import LIBMVEC_DECLARATIONS

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    program = f"""#include <math.h>
{LIBMVEC_DECLARATIONS}
double a[64]; float b[64];
int main(void) {{
    int i;
    for (i = 0; i < 64; ++i) {{
        a[i] = exp(a[i]) + tanh(a[i]) + erf(a[i]) + expm1(a[i]);
        b[i] = expf(b[i]) + tanhf(b[i]) + erff(b[i]) + expm1f(b[i]);
    }}
    return (int)a[3] + (int)b[5];
}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(program)
        flags = ["-O3", "-fno-math-errno", "-fopenmp-simd"] + ([NATIVE_FLAG] if native else [])
        try:
            r = subprocess.run([*cc, *flags, str(src), "-o", str(Path(tmp) / "probe"), "-lmvec", "-lm"],
                               capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return r.returncode == 0


def compile_flags(cc: List[str]) -> Tuple[List[str], List[str]]:
    """(compile flags, libraries) for the runner's library with this compiler."""
    native = _native_ok(tuple(cc))
    flags = BASE_FLAGS + ([NATIVE_FLAG] if native else [])
    if _libmvec_ok(tuple(cc), native):
        return flags + LIBMVEC_FLAGS, ["-lmvec", "-lm"]
    return flags, ["-lm"]


def build_key(source: str, cc: List[str], flags: List[str]) -> str:
    h = hashlib.sha256()
    for part in (source, " ".join(cc), " ".join(flags), _compiler_identity(tuple(cc)), platform.machine(),
                 _cpu_identity()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def load_library(source: str, sizes: Tuple[int, ...]) -> ctypes.CDLL:
    """The compiled library for ``source`` (built now unless cached), checked against its key and
    ``sizes`` (n_obs, n_act, state size, weights size, bytes per real)."""
    cc = find_compiler()
    if cc is None:
        raise CBuildError("no C compiler found (looked for $CC, cc, gcc, clang on PATH)")
    flags, libs = compile_flags(cc)
    key = build_key(source, cc, flags + libs)
    with _LOCK:
        lib = _LOADED.get(key)
        if lib is None:
            path = cache_dir() / "c" / f"{key}.so"
            if not path.exists():
                try:
                    _build(source, cc, flags, libs, key, path)
                except (OSError, subprocess.SubprocessError) as err:  # a read-only cache, a hung compiler
                    raise CBuildError(f"cannot build the C library in {path.parent} ({err}); set "
                                      "CFC_CONTROL_CACHE_DIR to a writable directory") from err
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as err:
                raise CBuildError(f"cannot load {path}: {err}") from err
            _check(lib, key, sizes, path)
            _LOADED[key] = lib
    return lib


def _build(source: str, cc: List[str], flags: List[str], libs: List[str], key: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_suffix(".c")
    fd, tmp_src = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".c")
    with os.fdopen(fd, "w") as fh:
        fh.write(source)
    os.replace(tmp_src, src)  # kept beside the library, for reading
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".so.tmp")
    os.close(fd)
    try:
        cmd = [*cc, *flags, f'-DCFC_BUILD_KEY="{key}"', str(src), "-o", tmp, *libs]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise CBuildError(f"the C compiler failed on {src} ({' '.join(cmd)}): {r.stderr.strip()[-2000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)  # atomic: another process loads the whole file or builds its own
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check(lib: ctypes.CDLL, key: str, sizes: Tuple[int, ...], path: Path) -> None:
    lib.cfc_build_key.restype = ctypes.c_char_p
    found = lib.cfc_build_key().decode()
    got = (ctypes.c_long * 5)()
    lib.cfc_sizes(got)
    if found != key or tuple(got) != tuple(sizes):
        raise CBuildError(f"{path} was built from another source (key {found}, sizes {tuple(got)}; "
                          f"expected {key}, {tuple(sizes)}); delete it")


__all__ = ["CBuildError", "find_compiler", "cache_dir", "build_key", "load_library"]
