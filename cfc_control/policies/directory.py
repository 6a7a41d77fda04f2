"""The policy directory: the one contract between training and every use of a policy.

    <dir>/model.safetensors   the model's weights (the actor)
    <dir>/config.json         format version, the model (class + arguments), and under "policy":
                              task, observation size and normalisation, action bounds and mapping,
                              time input (nominal period, accepted Δt range, Δt / nominal)
    <dir>/card.json           what made it and how it scored (task, algorithm, seeds, steps or data
                              size, wall time, command, evaluation returns per timing)
    <dir>/manifest.json       the SHA-256 of each of the files above

Loading reads JSON and safetensors only; nothing stored is executed, and a stored task is resolved
to a registered id, never imported. A file whose checksum differs from the manifest is refused; a
directory without a manifest (saved before manifests were added) loads with the other checks
only: the safetensors header, sizes against the declared weights, shapes, finite values. Files
are written to a temporary name and renamed, so a crash never leaves a half-written policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from cfc_control.files import atomic_write_text, read_json, update_manifest, verify_files
from cfc_control.models.io import load_model, read_config, save_model
from cfc_control.policies.normalization import ObsNormalizer
from cfc_control.policies.policy import ActionMapping, RecurrentPolicy, TimeInput

PathLike = Union[str, "os.PathLike[str]"]
CARD = "card.json"


def save_policy(policy: RecurrentPolicy, directory: PathLike, card: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``policy`` (and ``card`` if given) to ``directory``, creating it."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    save_model(policy.model, path, extra={"policy": policy.policy_config()})
    if card is not None:
        write_card(path, card)
    return path


def load_policy(directory: PathLike) -> RecurrentPolicy:
    """Rebuild a policy from its directory (JSON + safetensors only). Errors name the file."""
    path = Path(directory)
    config = read_config(path)
    if "policy" not in config:
        raise ValueError(f"{path / 'config.json'}: no 'policy' section; is this a policy directory?")
    cfg = config["policy"]
    if not isinstance(cfg, dict):
        raise ValueError(f"{path / 'config.json'}: 'policy' must be a JSON object")
    task = cfg.get("task")
    if task is not None and not (isinstance(task, str) and 0 < len(task) <= 200 and ":" not in task):
        raise ValueError(f"{path / 'config.json'}: 'task' must be a registered task id (no 'module:' prefix, "
                         f"which would import code), got {task!r:.80}")
    model = load_model(path)  # checks the files and the model's sizes before allocating
    try:
        n_obs = cfg["observation"]["size"]
        if n_obs != model.input_size:  # checked before the normaliser allocates n_obs entries
            raise ValueError(f"observation size {n_obs!r:.40} differs from the model's {model.input_size} inputs")
        normalizer = ObsNormalizer.from_config(cfg["observation"].get("normalization"), n_obs)
        actions = ActionMapping.from_config(cfg["action"])
        time_input = TimeInput.from_config(cfg["time"])
        return RecurrentPolicy(model, normalizer, actions, time_input, task=task, model_name=cfg.get("model_name"))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path / 'config.json'}: bad 'policy' section: {err}") from err


def resolve_policy_dir(path: PathLike) -> Path:
    """The policy directory ``path`` names: ``path`` itself when it holds a ``config.json``, else a
    training run directory's ``path/policy``. FileNotFoundError naming ``path`` otherwise."""
    p = Path(path)
    if (p / "config.json").is_file():
        return p
    if (p / "policy" / "config.json").is_file():
        return p / "policy"
    raise FileNotFoundError(f"{p}: not a policy directory (no config.json) nor a run directory with policy/")


def write_card(directory: PathLike, card: Dict[str, Any]) -> Path:
    """Write ``card.json`` and record its checksum in the directory's manifest (if it has one)."""
    path = Path(directory) / CARD
    atomic_write_text(path, json.dumps(card, indent=2, sort_keys=False) + "\n")
    update_manifest(directory, CARD)
    return path


def read_card(directory: PathLike) -> Dict[str, Any]:
    """The card, checked against the directory's manifest when it lists the card."""
    verify_files(directory, [CARD])
    return read_json(Path(directory) / CARD, "no card in this policy directory")
