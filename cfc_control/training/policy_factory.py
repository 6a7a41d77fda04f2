"""Build a fresh :class:`RecurrentPolicy` for a task env: the model by registry name, sized to
the env's observation and action spaces, with the time input around the env's nominal period."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from cfc_control.models.registry import make
from cfc_control.tasks import env_nominal_dt
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput
from cfc_control.policies.names import parse_policy_name
from cfc_control.policies.periods import TrainedPeriods


def make_policy(model_name: str, env: Any, *, task: Optional[str] = None,
                normalizer: Optional[ObsNormalizer] = None, **model_kw: Any) -> RecurrentPolicy:
    """A policy with model ``model_name`` (a policy name, :mod:`cfc_control.policies.names`:
    ``cfc``, ``cfc-blind``, ...; ``model_kw`` override the model's defaults) for ``env``'s Box
    spaces. ``normalizer`` defaults to the identity."""
    obs_space, act_space = env.observation_space, env.action_space
    if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
        raise ValueError(f"policies need flat Box spaces, got observation {obs_space} and action {act_space}")
    n_obs, n_act = int(obs_space.shape[0]), int(act_space.shape[0])
    model_kind, blind = parse_policy_name(model_name)
    model = make(model_kind, n_obs, n_act, **model_kw)
    actions = ActionMapping(np.asarray(act_space.low), np.asarray(act_space.high))
    time_input = TimeInput.around(env_nominal_dt(env))
    time_input.trained, time_input.blind = env_trained_periods(env), blind
    return RecurrentPolicy(model, normalizer or ObsNormalizer.identity(n_obs), actions, time_input, task=task,
                           model_name=model_name)


def env_trained_periods(env: Any) -> Optional[TrainedPeriods]:
    """The periods a policy trained on ``env`` meets: its timing model's (None for an env
    without one)."""
    try:
        return TrainedPeriods.of(env.get_wrapper_attr("timing_model"))
    except AttributeError:
        return None
