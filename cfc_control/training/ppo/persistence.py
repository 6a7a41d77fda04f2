"""The PPO training state beside the policy directory, as safetensors and JSON only.

    <dir>/critic/            the critic, a model directory (cfc_control.models.io)
    <dir>/ppo.safetensors    log_std, the state head's weights ("state_head.*", with aux_state_coef),
                             and the optimiser's tensors ("optimizer.state.<param>.<name>")
    <dir>/ppo.json           format version, hyperparameters, counters (env steps, iterations,
                             gradient passes), the reward normaliser's return statistics, a
                             privileged critic's observation statistics, and the optimiser's
                             scalars and param groups

The actor is not here: it is the policy directory (``SequencePPO.save_policy``). The directory is
written under a temporary name and renamed, so a crash leaves either the old one or the new one.

:func:`state_parts` / :func:`restore_parts` give the same state as the parts a training
checkpoint (:class:`cfc_control.training.checkpoint.CheckpointManager`) stores beside the actor,
so a training run keeps one checkpoint per step with everything in it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Tuple, Union

import torch
from safetensors.torch import load_file, save_file

from cfc_control.files import atomic_directory, read_json
from cfc_control.models.io import load_model, save_model
from cfc_control.policies import ObsNormalizer
from cfc_control.training.checkpoint import optimizer_from_files, optimizer_to_files
from cfc_control.training.ppo.vec_env import (
    restore_reward_normalizer,
    restore_reward_normalizer_returns,
    reward_normalizer_returns,
    reward_normalizer_state,
)

if TYPE_CHECKING:
    from cfc_control.training.ppo.algorithm import SequencePPO

FORMAT_VERSION = 1
TENSORS = "ppo.safetensors"
META = "ppo.json"
CRITIC = "critic"
STATE_HEAD = "state_head."
PathLike = Union[str, "os.PathLike[str]"]


def state_parts(algo: "SequencePPO") -> Tuple[Dict[str, torch.Tensor], Dict[str, Any], Dict[str, Any]]:
    """(tensors, models, JSON metadata) of everything but the actor and the optimiser: log-std,
    the reward normaliser's running returns per env, the critic, the counters and the return
    statistics."""
    tensors: Dict[str, torch.Tensor] = {"log_std": algo.policy.log_std.detach().cpu().clone()}
    if algo.policy.state_head is not None:
        tensors.update({f"{STATE_HEAD}{k}": v.detach().cpu().clone()
                        for k, v in algo.policy.state_head.state_dict().items()})
    returns = reward_normalizer_returns(algo.env)
    if returns is not None:
        tensors["reward_returns"] = torch.from_numpy(returns.copy())
    meta: Dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "num_timesteps": int(algo.num_timesteps),
        "iteration": int(algo.iteration),
        "n_updates": int(algo._n_updates),
        "config": algo.config.to_dict(),
        "reward_normalizer": reward_normalizer_state(algo.env),
        "critic_normalizer": None if algo.policy.critic_normalizer is None else algo.policy.critic_normalizer.to_config(),
    }
    return tensors, {CRITIC: algo.policy.critic}, meta


def restore_parts(algo: "SequencePPO", tensors: Dict[str, torch.Tensor], critic: Any, meta: Dict[str, Any],
                  where: str = "checkpoint") -> None:
    """Put :func:`state_parts` back into ``algo`` (built with the same policy kind and sizes)."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{where}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    try:
        algo.policy.critic.load_state_dict(critic.state_dict())
    except RuntimeError as err:
        raise ValueError(f"{where}: the saved critic does not fit this algorithm's critic: {err}") from err
    log_std = tensors["log_std"]
    if log_std.shape != algo.policy.log_std.shape:
        raise ValueError(f"{where}: log_std has shape {tuple(log_std.shape)}, "
                         f"the policy's is {tuple(algo.policy.log_std.shape)}")
    with torch.no_grad():
        algo.policy.log_std.copy_(log_std)
    if algo.policy.privileged:
        saved = meta.get("critic_normalizer")
        if saved is None:
            raise ValueError(f"{where}: the saved critic reads no full observation, this algorithm's does "
                             "(critic_input='full')")
        algo.policy.set_critic_normalizer(ObsNormalizer.from_config(saved, algo.policy.critic_normalizer.size))
    head = algo.policy.state_head
    saved_head = {k[len(STATE_HEAD):]: v for k, v in tensors.items() if k.startswith(STATE_HEAD)}
    if (head is None) != (not saved_head):
        raise ValueError(f"{where}: the saved training state {'holds' if saved_head else 'holds no'} state head "
                         f"(aux_state_coef), this algorithm {'has one' if head is not None else 'has none'}")
    if head is not None:
        try:
            head.load_state_dict(saved_head)
        except RuntimeError as err:
            raise ValueError(f"{where}: the saved state head does not fit this algorithm's: {err}") from err
    algo.num_timesteps = int(meta["num_timesteps"])
    algo.iteration = int(meta["iteration"])
    algo._n_updates = int(meta["n_updates"])
    restore_reward_normalizer(algo.env, meta.get("reward_normalizer"))
    if "reward_returns" in tensors:
        restore_reward_normalizer_returns(algo.env, tensors["reward_returns"].numpy())


def save_state(algo: "SequencePPO", directory: PathLike, optimizer: bool = True) -> Path:
    """Write ``algo``'s training state (all but the actor) to ``directory``, atomically."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tensors, models, meta = state_parts(algo)
    meta["optimizer"] = None
    with atomic_directory(final) as tmp:
        save_model(models[CRITIC], tmp / CRITIC)
        if optimizer and algo.policy.optimizer is not None:
            opt_tensors, opt_meta = optimizer_to_files(algo.policy.optimizer.state_dict())
            tensors.update({f"optimizer.{k}": v for k, v in opt_tensors.items()})
            meta["optimizer"] = opt_meta
        save_file(tensors, str(tmp / TENSORS))
        (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
    return final


def load_state(algo: "SequencePPO", directory: PathLike, optimizer: bool = True) -> Dict[str, Any]:
    """Restore what :func:`save_state` wrote into ``algo`` (built with the same policy kind and
    sizes). Returns the metadata. Raises ValueError naming the file when something does not fit."""
    path = Path(directory)
    meta_file = path / META
    meta = read_json(meta_file, "no PPO training state here")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_file}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    tensors = load_file(str(path / TENSORS))
    restore_parts(algo, tensors, load_model(path / CRITIC), meta, where=str(path))
    if optimizer and meta.get("optimizer") is not None:
        opt_tensors = {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}
        algo.policy.optimizer.load_state_dict(optimizer_from_files(opt_tensors, meta["optimizer"]))
    return meta
