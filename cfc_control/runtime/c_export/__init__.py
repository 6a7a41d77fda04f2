"""A policy as dependency-free C99: the generator (one small module per kind of cell, reading the
model's :meth:`step_description`), the export to a header and a source file, and the build of the
runner's C backend (:mod:`cfc_control.runtime.c_export.build`).

    from cfc_control.runtime.c_export import export_c
    export_c(policy, "out/", name="hopper", dtype="float64")   # out/hopper.h, out/hopper.c
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Union

from cfc_control.files import atomic_write_text
from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.c_export.source import STATUS, export_source, library_source, model_step

PathLike = Union[str, "os.PathLike[str]"]


def export_c(policy: RecurrentPolicy, outdir: PathLike, name: str = "cfc_policy", dtype: str = "float64") -> List[Path]:
    """Write ``OUTDIR/NAME.h`` and ``OUTDIR/NAME.c`` (each atomically; the source is generated
    in full before either is written). Returns the paths, header first."""
    files = export_source(policy, name, dtype)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return [atomic_write_text(out / fname, text) for fname, text in files.items()]


__all__ = ["STATUS", "export_c", "export_source", "library_source", "model_step"]
