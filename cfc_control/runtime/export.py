"""Export a policy for runtimes without cfc_control: TorchScript with the state inside, or ONNX
with the state as explicit inputs and outputs (rsl_rl's conventions).

Both compute the runner's step in float32: normalise and clip the observation, clamp Δt (seconds)
to [dt_min, dt_max] and divide by the nominal period, one model step, map the output into the
action bounds.

TorchScript (``torch.jit.load(FILE)``)::

    action = module(obs, dt)   # obs (B, n_obs) or (n_obs,), dt (B,), (B, 1) or a 1-element tensor
    module.reset()             # back to the initial state (also happens when B changes)

ONNX (``onnxruntime.InferenceSession(FILE)``), batch axis dynamic::

    inputs:  obs (B, n_obs) float32, raw (unnormalised) observation
             dt (B, 1) float32, seconds since the previous step; clamped to [dt_min, dt_max]
             then the state: h (B, H) [and c (B, H) for mixed memory and LSTM; none for the MLP],
             zeros at the start of an episode
    outputs: action (B, n_act) float32, inside the action bounds
             h_out [, c_out]: feed them back as h [, c] next step (forgetting is the usual bug)
             ok (B,) bool: false for a row whose obs, dt or state was non-finite, or dt <= 0,
             or whose result would be non-finite; that row's state comes back unchanged and its
             action is the centre of the action space (hold your last action instead)

Each file carries the policy's config (nominal period, Δt range, state names) as JSON: the
TorchScript extra file ``policy.json``, the ONNX metadata key ``cfc_control``.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple, Union

import torch
from torch import Tensor, nn

from cfc_control.files import atomic_path
from cfc_control.policies.policy import RecurrentPolicy

FORMATS = ("torchscript", "onnx")
PathLike = Union[str, "os.PathLike[str]"]


def state_names(policy: RecurrentPolicy) -> List[str]:
    """The state tensors' names, in the model's order: [], ["h"] or ["h", "c"]."""
    states = policy.initial_state(1)
    if all(s.shape[1] == 0 for s in states):
        return []
    return ["h", "c"][: len(states)]


class PolicyStep(nn.Module):
    """The stateless step: ``(obs (B, n_obs), dt (B, 1) seconds, h, c) -> (action, h', c')``.
    Unused state slots (c without mixed memory or LSTM, both for the MLP) pass through."""

    def __init__(self, policy: RecurrentPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.names = state_names(policy)

    def forward(self, obs: Tensor, dt: Tensor, h: Tensor, c: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        p = self.policy
        z = p.normalize_obs(obs)
        t = p.model_time(dt)
        # The MLP passes its (unused) state through: its state tuple is (h,) of width 0.
        state = (h, c) if len(self.names) == 2 else (h,)
        y, new = p.model.cell_states(p.model.input_map(z), state, t)
        action = p.to_action(p.model.output_map(y))
        if len(self.names) == 2:
            return action, new[0], new[1]
        if len(self.names) == 1:
            return action, new[0], c
        return action, h, c


class _OnnxStep(nn.Module):
    """:class:`PolicyStep` with exactly the model's state tensors as inputs and outputs, and a
    per-row ``ok`` flag last. A row is bad when its obs, Δt or incoming state is non-finite, or
    Δt <= 0, or the model's output or new state would be non-finite: such a row gets ok = false,
    its state passed through unchanged and the centre of the action space (the runner refuses
    the same rows). Computed in the graph: a runtime without cfc_control gets the guard too."""

    def __init__(self, step: PolicyStep) -> None:
        super().__init__()
        self.step = step
        self.nominal_dt = float(step.policy.time_input.nominal_dt)

    def forward(self, obs: Tensor, dt: Tensor, *state: Tensor) -> Tuple[Tensor, ...]:
        n = len(self.step.names)
        ok = _rows_finite(obs) & torch.isfinite(dt) & (dt > 0)
        for s in state:
            ok = ok & _rows_finite(s)
        # Bad rows run on harmless stand-ins so that nothing non-finite enters the arithmetic.
        obs = torch.where(ok, obs, torch.zeros_like(obs))
        dt = torch.where(ok, dt, torch.full_like(dt, self.nominal_dt))
        safe = [torch.where(ok, s, torch.zeros_like(s)) for s in state]
        empty = obs.new_zeros(obs.shape[0], 0)
        h = safe[0] if n >= 1 else empty
        c = safe[1] if n == 2 else empty
        action, h2, c2 = self.step(obs, dt, h, c)
        new = [h2, c2][:n]
        ok = ok & _rows_finite(action)
        for s in new:
            ok = ok & _rows_finite(s)
        action = torch.where(ok, action, self.step.policy.act_center.expand_as(action))
        kept = [torch.where(ok, s_new, s_old) for s_new, s_old in zip(new, state)]
        return (action, *kept, ok.squeeze(1))


def _rows_finite(x: Tensor) -> Tensor:
    """(B, 1) bool: every entry of the row is finite (true for a row of width 0)."""
    return torch.isfinite(x).all(dim=1, keepdim=True) if x.shape[1] > 0 else torch.ones_like(x[:, :1], dtype=torch.bool)


class StatefulPolicy(nn.Module):
    """The scripted wrapper: the state lives in buffers ``h`` and ``c``."""

    def __init__(self, step: torch.jit.ScriptModule, n_obs: int, h_size: int, c_size: int) -> None:
        super().__init__()
        self.step = step
        self.n_obs = n_obs
        self.h_size = h_size
        self.c_size = c_size
        self.register_buffer("h", torch.zeros(1, h_size))
        self.register_buffer("c", torch.zeros(1, c_size))

    def forward(self, obs: Tensor, dt: Tensor) -> Tensor:
        single = obs.dim() == 1
        x = obs.unsqueeze(0) if single else obs
        x = x.to(torch.float32)
        if x.dim() != 2 or x.size(1) != self.n_obs:
            raise ValueError("obs must be (B, n_obs) or (n_obs,)")
        b = x.size(0)
        d = dt.to(torch.float32).reshape(-1, 1)
        if d.size(0) == 1 and b > 1:
            d = d.expand(b, 1)
        if d.size(0) != b:
            raise ValueError("dt must have one entry per row of obs")
        # Refuse what the runner refuses, before the state is touched: one NaN stored in h would
        # make every later action NaN.
        if not bool(torch.isfinite(x).all()):
            raise ValueError("obs has non-finite entries")
        if not bool(torch.isfinite(d).all()) or bool((d <= 0).any()):
            raise ValueError("dt must be finite and > 0 seconds")
        if self.h.size(0) != b:
            if bool((self.h != 0).any()) or bool((self.c != 0).any()):
                raise ValueError("the batch size changed mid-episode; call reset() first")
            self.h = torch.zeros(b, self.h_size)
            self.c = torch.zeros(b, self.c_size)
        # Without no_grad the parameters' autograd graph would be kept in the stored state and
        # grow with every step (the README's call is outside torch.no_grad()).
        with torch.no_grad():
            action, h, c = self.step(x, d, self.h, self.c)
        if not (bool(torch.isfinite(action).all()) and bool(torch.isfinite(h).all()) and bool(torch.isfinite(c).all())):
            raise ValueError("the policy produced a non-finite action or state; the state was kept")
        self.h = h
        self.c = c
        return action.squeeze(0) if single else action

    @torch.jit.export
    def reset(self) -> None:
        self.h = torch.zeros(self.h.size(0), self.h_size)
        self.c = torch.zeros(self.c.size(0), self.c_size)


def _example(policy: RecurrentPolicy, batch: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    states = policy.initial_state(batch)
    h = states[0]
    c = states[1] if len(states) > 1 else torch.zeros(batch, 0)
    obs = torch.randn(batch, policy.n_obs)
    dt = torch.full((batch, 1), policy.time_input.nominal_dt)
    return obs, dt, h, c


def _metadata(policy: RecurrentPolicy) -> Dict[str, Any]:
    return {
        "policy": policy.policy_config(),
        "model": policy.model.model_config(),
        "state": state_names(policy),
        "inputs": ["obs", "dt"] + state_names(policy),
        "outputs": ["action"] + [f"{n}_out" for n in state_names(policy)] + ["ok"],
    }


def to_torchscript(policy: RecurrentPolicy) -> torch.jit.ScriptModule:
    """The policy as a scripted :class:`StatefulPolicy` (the model step is traced; checked at
    two batch sizes so the trace does not bake one in)."""
    policy = policy.eval()
    step = PolicyStep(policy)
    with torch.no_grad(), _quiet_tracing():
        traced = torch.jit.trace(step, _example(policy, 2), check_inputs=[_example(policy, 3), _example(policy, 1)])
    h, c = _example(policy, 1)[2:]
    with _quiet_tracing():
        return torch.jit.script(StatefulPolicy(traced, policy.n_obs, h.shape[1], c.shape[1]))


def export_torchscript(policy: RecurrentPolicy, out: PathLike) -> Path:
    module = to_torchscript(policy)
    extra = {"policy.json": json.dumps(_metadata(policy))}

    def write(tmp: str) -> None:
        with _quiet_tracing():
            torch.jit.save(module, tmp, _extra_files=extra)

    return _atomic(out, write)


def export_onnx(policy: RecurrentPolicy, out: PathLike, opset: int = 17) -> Path:
    """ONNX with (obs, dt, state...) in and (action, state...) out, dynamic batch (legacy
    TorchScript-based exporter)."""
    import onnx

    policy = policy.eval()
    names = state_names(policy)
    module = _OnnxStep(PolicyStep(policy))
    obs, dt, h, c = _example(policy, 2)
    args = (obs, dt) + (h, c)[: len(names)]
    inputs = ["obs", "dt"] + names
    outputs = ["action"] + [f"{n}_out" for n in names] + ["ok"]

    def write(tmp: str) -> None:
        with torch.no_grad(), _quiet_tracing():
            torch.onnx.export(
                module, args, tmp, input_names=inputs, output_names=outputs,
                dynamic_axes={n: {0: "batch"} for n in inputs + outputs},
                opset_version=opset, dynamo=False,
            )
        model = onnx.load(tmp)
        entry = model.metadata_props.add()
        entry.key, entry.value = "cfc_control", json.dumps(_metadata(policy))
        onnx.checker.check_model(model)
        onnx.save(model, tmp)

    return _atomic(out, write)


def export_policy(policy: RecurrentPolicy, out: PathLike, fmt: str) -> Path:
    """Write ``policy`` to ``out`` as ``fmt`` ("torchscript" or "onnx")."""
    if fmt == "torchscript":
        return export_torchscript(policy, out)
    if fmt == "onnx":
        return export_onnx(policy, out)
    raise ValueError(f"unknown export format {fmt!r}; choose one of {FORMATS}")


@contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence what tracing says about things checked otherwise: torch.jit's deprecation notice
    (TorchScript is the requested format), and the size-dependent branch of the models' tanh
    (both branches agree within 2.5e-7; the tests compare exports against the runner at several
    batch sizes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _atomic(out: PathLike, write) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(str(tmp))
    return path


__all__ = ["FORMATS", "PolicyStep", "StatefulPolicy", "export_onnx", "export_policy", "export_torchscript",
           "state_names", "to_torchscript"]
