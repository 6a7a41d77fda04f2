"""Policy names, as ``--policy`` and the study's ``--models`` take them: a model's registry name
(``cfc``, ``ncp``, ``lstm``, ...), or that name with ``-blind``: the same model with its time input
held at the nominal period (:class:`~cfc_control.policies.time_input.TimeInput` ``blind``), the
ablation that shows what taking Δt as an input is worth."""

from __future__ import annotations

from typing import List, Tuple

from cfc_control.models.registry import available

BLIND_SUFFIX = "-blind"


def policy_names() -> List[str]:
    """Every accepted policy name: the models, then their time-blind variants."""
    models = available()
    return models + [m + BLIND_SUFFIX for m in models]


def parse_policy_name(name: str) -> Tuple[str, bool]:
    """``name`` -> (model registry name, time-blind?). ValueError naming an unknown name."""
    if name in available():
        return name, False
    model = name[: -len(BLIND_SUFFIX)] if name.endswith(BLIND_SUFFIX) else None
    if model in available():
        return model, True
    raise ValueError(f"--policy {name!r} is not a model; available: {', '.join(available())} "
                     f"(and each with {BLIND_SUFFIX}: its time input held at the nominal period)")
