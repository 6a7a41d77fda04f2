"""Export a policy directory to TorchScript or ONNX.

    python -m cfc_control.export policies/hopper --format torchscript --out hopper.pt
    python -m cfc_control.export policies/hopper --format onnx --out hopper.onnx

TorchScript: ``module(obs, dt) -> action`` with the state inside and ``module.reset()``. ONNX:
inputs obs, dt, h [, c]; outputs action, h_out [, c_out] (feed the state back every step). Both
include normalisation, Δt clamping and scaling, and the action mapping; see
:mod:`cfc_control.runtime.export`.
"""

from __future__ import annotations

from typing import List, Optional

from cfc_control.cli import ArgumentParser, error_line
from cfc_control.policies import load_policy
from cfc_control.runtime.export import FORMATS, export_policy, state_names

PROG = "python -m cfc_control.export"


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="policy directory (config.json + model.safetensors)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, help="file to write (replaced atomically)")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    raise SystemExit(main())
