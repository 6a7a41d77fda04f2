"""C for the CfC steps (kinds "cfc" and "wired_cfc", with or without mixed memory and
projection) and the mixed-memory LSTM that the LTC shares.

A cell body reads ``z`` (the normalised observation), ``t`` (the model time) and ``s`` (the state,
its tensors concatenated: h [, c]) and writes ``s_new`` and ``y`` (the model output, before the
action mapping). Equations: :mod:`cfc_control.models.cfc_cell` and
:mod:`cfc_control.models.mixed_memory`.
"""

from __future__ import annotations

from typing import List, Tuple

from cfc_control.models.lowering import StepDescription
from cfc_control.runtime.c_export.emit import Emitter


def mixed_memory(desc: StepDescription, em: Emitter) -> Tuple[List[str], str]:
    """The LSTM that runs before the cell: writes c' into ``s_new[H:2H]`` and its output into a
    local ``hm``; returns (lines, the name the cell reads its state from)."""
    if not desc.mixed_memory:
        return [], "s"
    H = desc.state_sizes[0]
    em.need("sigmoid")
    lines = [
        f"real g[{4 * H}], hm[{H}];",
        em.affine("g", "lstm.w_ih", desc.array("lstm.w_ih"), "lstm.b", desc.array("lstm.b"), "z"),
        em.accumulate("g", "lstm.w_hh", desc.array("lstm.w_hh"), "s"),
        f"for (j = 0; j < {H}; ++j) {{",
        f"    const real c_new = s[{H} + j] * sigmoid(g[{2 * H} + j]) + {em.fn['tanh']}(g[j]) * sigmoid(g[{H} + j]);",
        f"    s_new[{H} + j] = c_new;",
        f"    hm[j] = {em.fn['tanh']}(c_new) * sigmoid(g[{3 * H} + j]);",
        "}",
    ]
    return lines, "hm"


def closed_form(mode: str, n: int, pre: str, out: str, em: Emitter, w_tau: str = "", amp: str = "") -> List[str]:
    """``out[0:n]`` from the head pre-activations ``pre`` ([ff1|ff2|time_a|time_b], or ff1 in
    pure mode with the arrays named ``w_tau`` and ``amp``)."""
    tanh, exp, fabs = em.fn["tanh"], em.fn["exp"], em.fn["fabs"]
    if mode == "pure":
        return [
            f"for (j = 0; j < {n}; ++j)",
            f"    {out}[j] = {amp}[j] - {amp}[j] * {exp}(-t * ({fabs}({w_tau}[j]) + {fabs}({pre}[j]))) * {pre}[j];",
        ]
    em.need("sigmoid")
    mix = "f1 + gate * f2" if mode == "no_gate" else "f1 + gate * (f2 - f1)"
    return [
        f"for (j = 0; j < {n}; ++j) {{",
        f"    const real f1 = {tanh}({pre}[j]), f2 = {tanh}({pre}[{n} + j]);",
        f"    const real gate = sigmoid({pre}[{2 * n} + j] * t + {pre}[{3 * n} + j]);",
        f"    {out}[j] = {mix};",
        "}",
    ]


def output(desc: StepDescription, em: Emitter, source: str, width: int) -> List[str]:
    """``y`` from the cell's output ``source`` (``width`` values): the projection, or a copy."""
    if desc.has("fc.w"):
        return [em.affine("y", "fc.w", desc.array("fc.w"), "fc.b", desc.array("fc.b"), source)]
    return [f"for (j = 0; j < {width}; ++j)", f"    y[j] = {source}[j];"]


def unwired(desc: StepDescription, em: Emitter) -> str:
    opt = desc.options
    H, mode, act = desc.state_sizes[0], opt["mode"], opt["activation"]
    lines, h_in = mixed_memory(desc, em)
    in_w = desc.array("in_w")
    P = in_w.shape[0]
    lines += [
        f"real u[{P}];",
        em.affine("u", "in_w", in_w, "in_b", desc.array("in_b"), "z"),
        em.accumulate("u", "rec_w", desc.array("rec_w"), h_in),
    ]
    pre = "u"
    if opt["backbone_layers"] > 0:
        lines += [f"real a[{P}];", f"for (j = 0; j < {P}; ++j)", f"    a[j] = {em.activation(act, 'u[j]')};"]
        k = 0
        while desc.has(f"backbone{k}.w"):
            lines += [
                em.affine("u", f"backbone{k}.w", desc.array(f"backbone{k}.w"), f"backbone{k}.b",
                          desc.array(f"backbone{k}.b"), "a"),
                f"for (j = 0; j < {P}; ++j)", f"    a[j] = {em.activation(act, 'u[j]')};",
            ]
            k += 1
        heads = desc.array("heads.w")
        lines += [f"real pre[{heads.shape[0]}];",
                  em.affine("pre", "heads.w", heads, "heads.b", desc.array("heads.b"), "a")]
        pre = "pre"
    if mode == "pure":
        w_tau, amp = em.weights.add("w_tau", desc.array("w_tau")), em.weights.add("A", desc.array("A"))
        lines += closed_form(mode, H, pre, "s_new", em, w_tau, amp)
    else:
        lines += closed_form(mode, H, pre, "s_new", em)
    lines += output(desc, em, "s_new", H)
    return "\n".join(lines)


def wired(desc: StepDescription, em: Emitter) -> str:
    opt = desc.options
    mode, sizes = opt["mode"], list(opt["layer_sizes"])
    k = 1 if mode == "pure" else 4
    lines, h_in = mixed_memory(desc, em)
    offset, source = 0, "z"
    for i, n in enumerate(sizes):
        p = f"layer{i}"
        lines += [
            f"{{ /* layer {i}: {n} neurons, state [{offset}, {offset + n}) */",
            f"real pre[{k * n}];",
            em.affine("pre", f"{p}.w_in", desc.array(f"{p}.w_in"), f"{p}.bias", desc.array(f"{p}.bias"), source),
            em.accumulate("pre", f"{p}.w_rec", desc.array(f"{p}.w_rec"), f"{h_in} + {offset}"),
        ]
        if mode == "pure":
            w_tau = em.weights.add(f"{p}.w_tau", desc.array(f"{p}.w_tau"))
            amp = em.weights.add(f"{p}.A", desc.array(f"{p}.A"))
            lines += closed_form(mode, n, "pre", f"(s_new + {offset})", em, w_tau, amp)
        else:
            lines += closed_form(mode, n, "pre", f"(s_new + {offset})", em)
        lines.append("}")
        source = f"(s_new + {offset})"
        offset += n
    lines += output(desc, em, f"(s_new + {offset - sizes[-1]})", int(opt["motor_size"]))
    return "\n".join(lines)


__all__ = ["unwired", "wired", "mixed_memory", "closed_form", "output"]
