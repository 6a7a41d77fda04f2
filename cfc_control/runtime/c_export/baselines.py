"""C for the baseline steps (kinds "lstm", "gru", "mlp"): torch's LSTM and GRU cells (gate order
i, f, g, o and r, z, n) on [x, t] (the model time as the last input when the model reads it), then
the output Linear; the MLP's layers on [x, t]."""

from __future__ import annotations

from typing import List

from cfc_control.models.lowering import StepDescription
from cfc_control.runtime.c_export.emit import Emitter


def model_input(desc: StepDescription) -> List[str]:
    """``xin`` = [z, t] (or z) and its width ``n_xin``."""
    n = desc.n_in
    if not desc.options.get("time_input", True):
        return ["const real *const xin = z;"]
    return [f"real xin[{n + 1}];", f"for (j = 0; j < {n}; ++j) xin[j] = z[j];", f"xin[{n}] = t;"]


def lstm(desc: StepDescription, em: Emitter) -> str:
    H = desc.state_sizes[0]
    em.need("sigmoid")
    tanh = em.fn["tanh"]
    bias = desc.array("b_ih") + desc.array("b_hh")
    lines = model_input(desc) + [
        f"real g[{4 * H}];",
        em.affine("g", "w_ih", desc.array("w_ih"), "bias", bias, "xin"),
        em.accumulate("g", "w_hh", desc.array("w_hh"), "s"),
        f"for (j = 0; j < {H}; ++j) {{",
        f"    const real c_new = sigmoid(g[{H} + j]) * s[{H} + j] + sigmoid(g[j]) * {tanh}(g[{2 * H} + j]);",
        f"    s_new[{H} + j] = c_new;",
        f"    s_new[j] = sigmoid(g[{3 * H} + j]) * {tanh}(c_new);",
        "}",
        em.affine("y", "fc.w", desc.array("fc.w"), "fc.b", desc.array("fc.b"), "s_new"),
    ]
    return "\n".join(lines)


def gru(desc: StepDescription, em: Emitter) -> str:
    H = desc.state_sizes[0]
    em.need("sigmoid")
    tanh = em.fn["tanh"]
    lines = model_input(desc) + [
        f"real gi[{3 * H}], gh[{3 * H}];",
        em.affine("gi", "w_ih", desc.array("w_ih"), "b_ih", desc.array("b_ih"), "xin"),
        em.affine("gh", "w_hh", desc.array("w_hh"), "b_hh", desc.array("b_hh"), "s"),
        f"for (j = 0; j < {H}; ++j) {{",
        "    const real r = sigmoid(gi[j] + gh[j]);",
        f"    const real u = sigmoid(gi[{H} + j] + gh[{H} + j]);",
        f"    const real n = {tanh}(gi[{2 * H} + j] + r * gh[{2 * H} + j]);",
        "    s_new[j] = n + u * (s[j] - n);",
        "}",
        em.affine("y", "fc.w", desc.array("fc.w"), "fc.b", desc.array("fc.b"), "s_new"),
    ]
    return "\n".join(lines)


def mlp(desc: StepDescription, em: Emitter) -> str:
    act = desc.options["activation"]
    lines = model_input(desc) + ["(void)s; (void)s_new;"]
    source, k = "xin", 0
    while desc.has(f"layer{k + 1}.w"):
        w = desc.array(f"layer{k}.w")
        name = f"a{k}"
        lines += [
            f"real {name}[{w.shape[0]}];",
            em.affine(name, f"layer{k}.w", w, f"layer{k}.b", desc.array(f"layer{k}.b"), source),
            f"for (j = 0; j < {w.shape[0]}; ++j)",
            f"    {name}[j] = {em.activation(act, name + '[j]')};",
        ]
        source, k = name, k + 1
    lines.append(em.affine("y", f"layer{k}.w", desc.array(f"layer{k}.w"), f"layer{k}.b", desc.array(f"layer{k}.b"),
                           source))
    return "\n".join(lines)


__all__ = ["lstm", "gru", "mlp"]
