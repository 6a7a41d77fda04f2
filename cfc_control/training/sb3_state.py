"""The whole training state of a stable-baselines3 agent as files, without pickles.

SB3's own ``save`` writes a zip with pickled parts; a teacher's checkpoint is data only:

    policy.safetensors          the policy's state_dict (actor, critics, target critics, log-std)
    optim.<name>.safetensors    each optimiser's tensors, and its scalars and param groups in
    optim.<name>.json           optim.<name>.json (PPO: "policy"; SAC: "actor", "critic", "ent_coef")
    extra.safetensors           SAC's log entropy coefficient; torch's RNG state
    normalization.json          VecNormalize's running statistics (observations, returns) and the
                                discounted return accumulators, or null without VecNormalize
    replay.npz                  off-policy only: the replay buffer's filled rows, plus its cursor
    progress.json               num_timesteps, updates, episodes, numpy's global RNG state,
                                and the caller's "info"

What a resumed run does not get back is the episode in progress (the envs reset) and the envs'
own random streams (reseeded from the step count): a resumed run is the same algorithm from the
same state, not a bitwise replay of an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from cfc_control.training.checkpoint import optimizer_from_files, optimizer_to_files

# SB3's replay buffer fields that hold data (next_observations is absent with
# optimize_memory_usage); each is saved up to the filled size.
REPLAY_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _optimizers(model: Any) -> List[Tuple[str, torch.optim.Optimizer]]:
    """The agent's optimisers by name: SAC's actor, critic and entropy coefficient; PPO's one."""
    if hasattr(model, "actor"):
        found = [("actor", model.actor.optimizer), ("critic", model.critic.optimizer)]
        if getattr(model, "ent_coef_optimizer", None) is not None:
            found.append(("ent_coef", model.ent_coef_optimizer))
        return found
    return [("policy", model.policy.optimizer)]


def _rms_to_json(rms: Any) -> Dict[str, Any]:
    return {"mean": np.asarray(rms.mean).tolist(), "var": np.asarray(rms.var).tolist(), "count": float(rms.count)}


def _rms_from_json(rms: Any, data: Dict[str, Any]) -> None:
    rms.mean = np.asarray(data["mean"], dtype=np.float64).reshape(np.shape(rms.mean))
    rms.var = np.asarray(data["var"], dtype=np.float64).reshape(np.shape(rms.var))
    rms.count = float(data["count"])


def save_training_state(model: Any, venv: Optional[VecNormalize], directory: Path,
                        info: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model``'s whole training state into the (empty, temporary) ``directory``; ``info``
    (JSON) is kept beside the counters, for the caller (wall time so far, ...)."""
    directory = Path(directory)
    policy = {k: v.detach().cpu().contiguous().clone() for k, v in model.policy.state_dict().items()}
    save_file(policy, str(directory / "policy.safetensors"))
    for name, opt in _optimizers(model):
        tensors, meta = optimizer_to_files(opt.state_dict())
        save_file(tensors, str(directory / f"optim.{name}.safetensors"))
        (directory / f"optim.{name}.json").write_text(json.dumps(meta))
    extra = {"torch_rng": torch.get_rng_state()}
    if isinstance(getattr(model, "log_ent_coef", None), torch.Tensor):
        extra["log_ent_coef"] = model.log_ent_coef.detach().cpu().clone()
    save_file(extra, str(directory / "extra.safetensors"))
    norm = None
    if venv is not None:
        norm = {"obs_rms": _rms_to_json(venv.obs_rms), "ret_rms": _rms_to_json(venv.ret_rms),
                "returns": np.asarray(venv.returns).tolist()}
    (directory / "normalization.json").write_text(json.dumps(norm))
    if isinstance(model, OffPolicyAlgorithm):
        _save_replay(model.replay_buffer, directory / "replay.npz")
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    progress = {"num_timesteps": int(model.num_timesteps), "n_updates": int(getattr(model, "_n_updates", 0)),
                "episode_num": int(getattr(model, "_episode_num", 0)), "info": info or {},
                "numpy_rng": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                              "cached": float(cached)}}
    (directory / "progress.json").write_text(json.dumps(progress))


def load_training_state(model: Any, venv: Optional[VecNormalize], directory: Path) -> Dict[str, Any]:
    """Restore what :func:`save_training_state` wrote into a freshly built ``model`` (same
    algorithm, hyperparameters and spaces) and ``venv``; returns the progress dict."""
    directory = Path(directory)
    model.policy.load_state_dict(load_file(str(directory / "policy.safetensors")), strict=True)
    for name, opt in _optimizers(model):
        meta = json.loads((directory / f"optim.{name}.json").read_text())
        opt.load_state_dict(optimizer_from_files(load_file(str(directory / f"optim.{name}.safetensors")), meta))
    extra = load_file(str(directory / "extra.safetensors"))
    torch.set_rng_state(extra["torch_rng"])
    if "log_ent_coef" in extra:
        with torch.no_grad():
            model.log_ent_coef.copy_(extra["log_ent_coef"])
    norm = json.loads((directory / "normalization.json").read_text())
    if (norm is None) != (venv is None):
        raise ValueError(f"{directory}: the checkpoint's observation normalisation does not match this run's")
    if venv is not None:
        _rms_from_json(venv.obs_rms, norm["obs_rms"])
        _rms_from_json(venv.ret_rms, norm["ret_rms"])
        venv.returns = np.asarray(norm["returns"], dtype=np.float64)
    if isinstance(model, OffPolicyAlgorithm):
        _load_replay(model.replay_buffer, directory / "replay.npz")
    progress = json.loads((directory / "progress.json").read_text())
    model.num_timesteps = int(progress["num_timesteps"])
    model._n_updates = int(progress["n_updates"])
    model._episode_num = int(progress["episode_num"])
    rng = progress["numpy_rng"]
    np.random.set_state((rng["kind"], np.asarray(rng["keys"], dtype=np.uint32), rng["pos"], rng["has_gauss"],
                         rng["cached"]))
    return progress


def _save_replay(buffer: Any, path: Path) -> None:
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {name: getattr(buffer, name)[:size] for name in REPLAY_FIELDS
              if isinstance(getattr(buffer, name, None), np.ndarray)}
    with open(path, "wb") as fh:  # an open file: np.savez would append ".npz" to a bare name
        np.savez(fh, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def _load_replay(buffer: Any, path: Path) -> None:
    with np.load(path, allow_pickle=False) as data:
        for name in REPLAY_FIELDS:
            if name in data.files:
                rows = data[name]
                target = getattr(buffer, name)
                if rows.shape[1:] != target.shape[1:] or rows.shape[0] > target.shape[0]:
                    raise ValueError(f"{path}: replay field {name} has shape {rows.shape}, "
                                     f"the buffer holds {target.shape}")
                target[: rows.shape[0]] = rows
        buffer.pos = int(data["pos"])
        buffer.full = bool(data["full"])
