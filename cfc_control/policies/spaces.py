"""Does an env fit a policy? One check for every place that runs a policy on an env (evaluation,
the real-time loop, the viewer), so that they all refuse a mismatch the same way."""

from __future__ import annotations

from typing import Any, List, Optional


def check_spaces(n_obs: int, n_act: int, observation_space: Any, action_space: Any, what: str = "the env",
                 hint: Optional[str] = None) -> None:
    """Raise ValueError unless ``observation_space`` has shape (n_obs,) and ``action_space`` shape
    (n_act,), the sizes a policy takes and gives. The message names both sides: ``what`` (the
    env, e.g. its task id) with its shapes and the policy with its sizes, and ends with ``hint``
    (what to do about it) when given. A space without a flat shape (a Discrete or Dict space)
    never fits."""
    obs_shape = getattr(observation_space, "shape", None)
    act_shape = getattr(action_space, "shape", None)
    problems: List[str] = []
    if obs_shape != (n_obs,):
        problems.append(f"{what} gives observations of shape {obs_shape}, the policy takes {n_obs}")
    if act_shape != (n_act,):
        problems.append(f"{what} takes actions of shape {act_shape}, the policy gives {n_act}")
    if problems:
        raise ValueError("; ".join(problems) + (f"; {hint}" if hint else ""))
