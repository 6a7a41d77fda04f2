"""Import models from the reference library (``ncps.torch``) with their weights.

ncps is a test/benchmark extra, never a run-time dependency: it is imported only inside
:func:`from_ncps`, and only to recognise the module's type.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import Tensor, nn

from cfc_control.models.cfc import CfC
from cfc_control.models.ltc import LTC
from cfc_control.wirings import from_ncps_wiring

_ACTIVATION_BY_CLASS = {"LeCun": "lecun_tanh", "SiLU": "silu", "ReLU": "relu", "Tanh": "tanh", "GELU": "gelu"}


def from_ncps(module: nn.Module) -> nn.Module:
    """Our equivalent of an ``ncps.torch.CfC`` or ``ncps.torch.LTC``, with the same weights.

    CfC: every mode, wired or not, mixed memory, projection, backbone depth 0..n, dropout; the
    result has the module's dtype, device and train/eval mode, and gives the same outputs
    (float32: within 1e-5). Per-sample timespans work for every batch size here, while the
    reference's layer mishandles them for B > 1 (docs/equations.md). LTC: delegated to
    :meth:`cfc_control.models.ltc.LTC.from_ncps_module`.

    One divergence: for a one-layer wiring (FullyConnected, Random) with ``output_dim < units``
    the reference outputs all units; ours outputs the ``output_dim`` motor neurons.
    """
    try:
        import ncps.torch as ref
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("from_ncps needs the reference library: pip install 'cfc-control[ref]'") from e
    if isinstance(module, ref.LTC):
        return LTC.from_ncps_module(module)
    if not isinstance(module, ref.CfC):
        raise TypeError(
            f"from_ncps expects an ncps.torch.CfC or ncps.torch.LTC, got "
            f"{type(module).__module__}.{type(module).__name__}"
        )
    return _from_ncps_cfc(module, ref)


def _from_ncps_cfc(module: Any, ref: Any) -> CfC:
    cell = module.rnn_cell
    param = next(module.parameters())
    common = dict(
        proj_size=module.proj_size,
        mode=_mode_of(cell, ref),
        mixed_memory=bool(module.use_mixed),
        return_sequences=bool(module.return_sequences),
        batch_first=bool(module.batch_first),
    )
    if isinstance(cell, ref.WiredCfCCell):
        ours = CfC(int(module.input_size), from_ncps_wiring(cell._wiring), **common)
    else:
        backbone = list(cell.backbone) if cell.backbone is not None else []
        linears = [m for m in backbone if isinstance(m, nn.Linear)]
        dropouts = [m.p for m in backbone if isinstance(m, nn.Dropout)]
        activations = [type(m).__name__ for m in backbone if not isinstance(m, (nn.Linear, nn.Dropout))]
        if activations and activations[0] not in _ACTIVATION_BY_CLASS:
            raise ValueError(f"unsupported backbone activation {activations[0]} in the ncps CfC")
        ours = CfC(
            int(cell.input_size),
            int(cell.hidden_size),
            activation=_ACTIVATION_BY_CLASS[activations[0]] if activations else "lecun_tanh",
            backbone_units=linears[0].out_features if linears else 128,
            backbone_layers=int(cell.backbone_layers),
            backbone_dropout=dropouts[0] if dropouts else 0.0,
            **common,
        )
    ours.to(device=param.device, dtype=param.dtype)
    state = _state_dict_for(ours, module, ref)
    ours.load_state_dict(state, strict=True)
    ours.train(module.training)
    return ours


def _mode_of(cell: Any, ref: Any) -> str:
    return cell._layers[0].mode if isinstance(cell, ref.WiredCfCCell) else cell.mode


def _heads(cell: Any) -> List[nn.Linear]:
    return [cell.ff1] if cell.mode == "pure" else [cell.ff1, cell.ff2, cell.time_a, cell.time_b]


def _state_dict_for(ours: CfC, module: Any, ref: Any) -> Dict[str, Tensor]:
    """Our state_dict filled from the reference module's parameters (split/fused as ours lays
    them out)."""
    out: Dict[str, Tensor] = {}
    cell = module.rnn_cell
    m = ours.input_size
    if ours.wiring is not None:
        for i, layer in enumerate(cell._layers):
            w = torch.cat([h.weight for h in _heads(layer)], 0)
            k = w.shape[1] - layer.hidden_size  # this layer's input features
            out[f"rnn_cell.layers.{i}.w_in"] = w[:, :k]
            out[f"rnn_cell.layers.{i}.w_rec"] = w[:, k:]
            out[f"rnn_cell.layers.{i}.bias"] = torch.cat([h.bias for h in _heads(layer)], 0)
            if layer.mode == "pure":
                out[f"rnn_cell.layers.{i}.w_tau"] = layer.w_tau
                out[f"rnn_cell.layers.{i}.A"] = layer.A
    else:
        heads = _heads(cell)
        head_w = torch.cat([h.weight for h in heads], 0)
        head_b = torch.cat([h.bias for h in heads], 0)
        if cell.backbone_layers > 0:
            linears = [mod for mod in cell.backbone if isinstance(mod, nn.Linear)]
            first, rest = linears[0], linears[1:]
            out["rnn_cell.in_proj.weight"] = first.weight[:, :m]
            out["rnn_cell.rec_proj.weight"] = first.weight[:, m:]
            out["rnn_cell.in_proj.bias"] = first.bias
            ours_rest = [name for name, mod in ours.rnn_cell.backbone.named_children() if isinstance(mod, nn.Linear)]
            for name, lin in zip(ours_rest, rest):
                out[f"rnn_cell.backbone.{name}.weight"] = lin.weight
                out[f"rnn_cell.backbone.{name}.bias"] = lin.bias
            out["rnn_cell.heads.weight"] = head_w
            out["rnn_cell.heads.bias"] = head_b
        else:
            out["rnn_cell.in_proj.weight"] = head_w[:, :m]
            out["rnn_cell.rec_proj.weight"] = head_w[:, m:]
            out["rnn_cell.in_proj.bias"] = head_b
        if cell.mode == "pure":
            out["rnn_cell.w_tau"] = cell.w_tau
            out["rnn_cell.A"] = cell.A
    if module.use_mixed:
        out["lstm.weight_ih"] = module.lstm.input_map.weight
        out["lstm.bias_ih"] = module.lstm.input_map.bias
        out["lstm.weight_hh"] = module.lstm.recurrent_map.weight
    if module.proj_size is not None:
        out["fc.weight"] = module.fc.weight
        out["fc.bias"] = module.fc.bias
    return {k: v.detach().clone().contiguous() for k, v in out.items()}
