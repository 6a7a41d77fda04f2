"""Policies: normalisation, time input and action mapping around a recurrent model, and the
policy directory every trainer writes and every runtime reads."""

from cfc_control.policies.directory import load_policy, read_card, resolve_policy_dir, save_policy, write_card
from cfc_control.policies.normalization import ObsNormalizer
from cfc_control.policies.policy import ActionMapping, RecurrentPolicy, TimeInput, state_to_numpy, state_to_torch
from cfc_control.policies.spaces import check_spaces

__all__ = [
    "ActionMapping",
    "ObsNormalizer",
    "RecurrentPolicy",
    "TimeInput",
    "check_spaces",
    "load_policy",
    "read_card",
    "resolve_policy_dir",
    "save_policy",
    "state_to_numpy",
    "state_to_torch",
    "write_card",
]
