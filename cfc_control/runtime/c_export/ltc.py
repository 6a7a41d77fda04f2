"""C for the LTC step (kind "ltc"): the sensory synapses' drive, then ``ode_unfolds``
semi-implicit Euler sub-steps of length t / ode_unfolds; equations in
:mod:`cfc_control.models.ltc_cell`. The (source, target) matrices are stored as they are, so the
inner loop runs over targets (contiguous) and accumulates each target's sums without
reassociation."""

from __future__ import annotations

from cfc_control.models.lowering import StepDescription
from cfc_control.runtime.c_export.cfc import mixed_memory, output
from cfc_control.runtime.c_export.emit import Emitter


def synapses(src: str, n_src: int, n: int, sigma: str, neg_sigma_mu: str, syn_erev: str, syn: str) -> list:
    """``num[j] = sum_i act_ij syn_erev_ij``, ``den[j] = sum_i act_ij syn_ij`` with
    ``act_ij = sigmoid(neg_sigma_mu_ij + src_i sigma_ij)``."""
    return [
        f"for (j = 0; j < {n}; ++j) num[j] = den[j] = 0;",
        f"for (i = 0; i < {n_src}; ++i) {{",
        f"    const real v_i = {src}[i];",
        f"    const long r = (long)i * {n};",
        f"    for (j = 0; j < {n}; ++j) {{",
        f"        const real act = sigmoid({neg_sigma_mu}[r + j] + v_i * {sigma}[r + j]);",
        f"        num[j] += act * {syn_erev}[r + j];",
        f"        den[j] += act * {syn}[r + j];",
        "    }",
        "}",
    ]


def ltc(desc: StepDescription, em: Emitter) -> str:
    N, M = desc.state_sizes[0], desc.n_in
    K, unfolds = int(desc.options["motor_size"]), int(desc.options["ode_unfolds"])
    em.need("sigmoid")
    w = {name: em.weights.add(name, desc.array(name)) for name in (
        "input_w", "input_b", "sensory_sigma", "sensory_neg_sigma_mu", "sensory_syn", "sensory_syn_erev",
        "cm", "leak_num", "leak_den", "sigma", "neg_sigma_mu", "syn", "syn_erev", "output_w", "output_b")}
    lines, h_in = mixed_memory(desc, em)
    lines += [
        f"real xm[{M}], num[{N}], den[{N}], base_num[{N}], base_den[{N}], v[{N}], out[{K}];",
        f"const real h = t / (real){unfolds};",
        "int i, unfold;",
        f"for (i = 0; i < {M}; ++i) xm[i] = z[i] * {w['input_w']}[i] + {w['input_b']}[i];",
    ]
    lines += synapses("xm", M, N, w["sensory_sigma"], w["sensory_neg_sigma_mu"], w["sensory_syn_erev"],
                      w["sensory_syn"])
    lines += [
        f"for (j = 0; j < {N}; ++j) {{",
        f"    base_num[j] = h * ({w['leak_num']}[j] + num[j]);",
        f"    base_den[j] = {w['cm']}[j] + h * ({w['leak_den']}[j] + den[j]);",
        f"    v[j] = {h_in}[j];",
        "}",
        f"for (unfold = 0; unfold < {unfolds}; ++unfold) {{",
    ]
    lines += ["    " + s for s in synapses("v", N, N, w["sigma"], w["neg_sigma_mu"], w["syn_erev"], w["syn"])]
    lines += [
        f"    for (j = 0; j < {N}; ++j)",
        f"        v[j] = ({w['cm']}[j] * v[j] + base_num[j] + h * num[j]) / (base_den[j] + h * den[j]);",
        "}",
        f"for (j = 0; j < {N}; ++j) s_new[j] = v[j];",
        f"for (j = 0; j < {K}; ++j) out[j] = v[j] * {w['output_w']}[j] + {w['output_b']}[j];",
    ]
    lines += output(desc, em, "out", K)
    return "\n".join(lines)


__all__ = ["ltc"]
