"""Export a policy directory to TorchScript or ONNX.

    python -m cfc_control.export policies/hopper --format torchscript --out hopper.pt
    python -m cfc_control.export policies/hopper --format onnx --out hopper.onnx
    python -m cfc_control.export policies/hopper --format c --out hopper_c/ [--name hopper] [--dtype float32]

TorchScript: ``module(obs, dt) -> action`` with the state inside and ``module.reset()``. ONNX:
inputs obs, dt, h [, c]; outputs action, h_out [, c_out] (feed the state back every step). Both
include normalisation, Δt clamping and scaling, and the action mapping; see
:mod:`cfc_control.runtime.export`. C: ``OUTDIR/NAME.h`` and ``OUTDIR/NAME.c`` (C99, no allocation,
libm only), ``NAME_reset(&state)`` and ``NAME_step(&state, obs, dt_seconds, action)`` returning an
error code for bad input; double by default, ``--dtype float32`` on request; see
:mod:`cfc_control.runtime.c_export`.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from cfc_control.cli import ArgumentParser, error_line
from cfc_control.policies import load_policy
from cfc_control.runtime.c_export import export_c
from cfc_control.runtime.export import FORMATS, export_policy, state_names

PROG = "python -m cfc_control.export"


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="policy directory (config.json + model.safetensors)")
    parser.add_argument("--format", required=True, choices=FORMATS + ("c",))
    parser.add_argument("--out", required=True, help="file to write (replaced atomically); a directory for c")
    parser.add_argument("--name", default="cfc_policy", help="c: the files' and functions' prefix (a C identifier)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"), help="c: the arithmetic")
    args = parser.parse_args(argv)
    if args.format == "c":
        return _export_c(args)

    try:
        policy = load_policy(args.policy)
        path = export_policy(policy, args.out, args.format)
    except (FileNotFoundError, ValueError) as err:
        return error_line(PROG, err)
    names = state_names(policy)
    if args.format == "onnx":
        io = f"inputs obs, dt{''.join(', ' + n for n in names)}; outputs action{''.join(', ' + n + '_out' for n in names)}"
    else:
        io = "module(obs, dt) -> action; module.reset()"
    print(f"wrote {path} ({args.format}: {io}; nominal dt {policy.time_input.nominal_dt} s)")
    return 0


def _export_c(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
        header, source = export_c(policy, args.out, args.name, args.dtype)
    except (FileNotFoundError, ValueError) as err:
        return error_line(PROG, err)
    print(f"wrote {header} and {source} (C99, {args.dtype}: {args.name}_reset(&state); "
          f"{args.name}_step(&state, obs, dt_seconds, action) -> {args.name.upper()}_OK or an error code; "
          f"nominal dt {policy.time_input.nominal_dt} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
