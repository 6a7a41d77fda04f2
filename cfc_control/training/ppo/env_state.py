"""The state of a rollout in progress, so that a resumed PPO run continues bit for bit.

A PPO checkpoint falls between iterations, with every env in the middle of an episode. To
continue exactly, a resumed run needs those episodes as they were: each env's simulator state
and generators, and the rollout's last observations, episode starts and recurrent states.

Envs are captured layer by layer along their wrapper chain, without pickles: every attribute
that is a plain number, string, flag, list of numbers, numpy array or numpy generator (its
bit-generator state), and for a MuJoCo env the simulator's integration state
(``mj_getState``) and timestep. That covers the task wrappers (period generator, simulated time,
noise generator), Gymnasium's and SB3's wrappers (step counters, episode sums) and the stock
env's own generator, without each of them having to know about checkpoints. It needs the envs
in this process (a ``DummyVecEnv``, as :func:`~.vec_env.make_task_vec_env` builds); for other
VecEnvs :func:`capture` returns None and a resumed run starts fresh episodes.
"""

from __future__ import annotations

import numbers
from collections import deque
from typing import Any, Dict, List, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from cfc_control.models.base import States

FORMAT_VERSION = 1
_SKIP = {"metadata", "spec", "_cached_spec", "_saved_kwargs", "_ezpickle_args", "_ezpickle_kwargs"}


def sub_envs(vec: Optional[VecEnv]) -> Optional[List[gym.Env]]:
    """The envs of a (wrapped) DummyVecEnv, or None for another kind of VecEnv."""
    while vec is not None and hasattr(vec, "venv"):
        vec = vec.venv
    return list(vec.envs) if isinstance(vec, DummyVecEnv) else None


def _layers(env: gym.Env) -> List[Any]:
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return not isinstance(value, complex)
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (bool, numbers.Real)) for v in value)
    return False


def _capture_env(env: gym.Env, key: str, tensors: Dict[str, torch.Tensor]) -> List[Dict[str, Any]]:
    layers = []
    for depth, layer in enumerate(_layers(env)):
        plain: Dict[str, Any] = {}
        generators: Dict[str, Any] = {}
        for name, value in vars(layer).items():
            if name in _SKIP:
                continue
            if isinstance(value, np.random.Generator):
                generators[name] = value.bit_generator.state
            elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                tensors[f"{key}.{depth}.{name}"] = torch.from_numpy(np.ascontiguousarray(value).copy())
            elif _is_plain(value):
                plain[name] = list(value) if isinstance(value, tuple) else value
        entry: Dict[str, Any] = {"type": type(layer).__name__, "plain": plain, "generators": generators}
        data, model = getattr(layer, "data", None), getattr(layer, "model", None)
        if data is not None and model is not None and type(data).__name__ == "MjData":
            import mujoco  # here only: an env that holds MjData has mujoco imported already

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            state = np.empty(mujoco.mj_stateSize(model, spec))
            mujoco.mj_getState(model, data, state, spec)
            tensors[f"{key}.{depth}.mujoco"] = torch.from_numpy(state)
            entry["mujoco_timestep"] = float(model.opt.timestep)
        layers.append(entry)
    return layers


def _restore_env(env: gym.Env, key: str, layers: List[Dict[str, Any]], tensors: Dict[str, torch.Tensor]) -> None:
    chain = _layers(env)
    if [type(layer).__name__ for layer in chain] != [entry["type"] for entry in layers]:
        raise ValueError(f"the env's wrappers {[type(x).__name__ for x in chain]} differ from the checkpoint's "
                         f"{[e['type'] for e in layers]}")
    for depth, (layer, entry) in enumerate(zip(chain, layers)):
        for name, value in entry["plain"].items():
            setattr(layer, name, tuple(value) if isinstance(getattr(layer, name, None), tuple) else value)
        for name, state in entry["generators"].items():
            generator = getattr(layer, name, None)
            if not isinstance(generator, np.random.Generator):
                generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
                setattr(layer, name, generator)
            generator.bit_generator.state = state
        prefix = f"{key}.{depth}."
        for tensor_key, value in tensors.items():
            if tensor_key.startswith(prefix) and tensor_key != prefix + "mujoco":
                setattr(layer, tensor_key[len(prefix):], value.numpy().copy())
        if prefix + "mujoco" in tensors:
            import mujoco  # see _capture_env

            layer.model.opt.timestep = entry["mujoco_timestep"]
            mujoco.mj_setState(layer.model, layer.data, tensors[prefix + "mujoco"].numpy().copy(),
                               mujoco.mjtState.mjSTATE_INTEGRATION)


def _flatten_state(state: States, key: str, tensors: Dict[str, torch.Tensor]) -> int:
    """Store a recurrent state tuple; returns what the JSON records of it: the number of tensors,
    0 for one (the format written when a one-tensor state was a bare tensor, kept so that
    checkpoints read the same in either direction)."""
    for i, t in enumerate(state):
        tensors[f"{key}.{i}"] = t.detach().cpu().contiguous().clone()
    return len(state) if len(state) > 1 else 0


def _unflatten_state(key: str, size: int, tensors: Dict[str, torch.Tensor], device: torch.device) -> States:
    """The state tuple :func:`_flatten_state` stored (``size`` 0: one tensor). Copied into fresh
    tensors: a tensor read from a file can sit at an address the matrix kernels treat otherwise,
    and the first step's result then differs in the last bit from the uninterrupted run's."""
    return tuple(tensors[f"{key}.{i}"].to(device, copy=True) for i in range(max(size, 1)))


def capture(algo: Any) -> Optional[Tuple[Dict[str, torch.Tensor], Dict[str, Any]]]:
    """(tensors, JSON) of the rollout in progress of a SequencePPO, or None when its envs are not
    a DummyVecEnv in this process (then a resumed run starts fresh episodes)."""
    envs = sub_envs(algo.env)
    if envs is None or algo._last_obs is None:
        return None
    tensors: Dict[str, torch.Tensor] = {
        "last_obs": torch.from_numpy(np.asarray(algo._last_obs).copy()),
        "last_episode_starts": torch.from_numpy(np.asarray(algo._last_episode_starts, dtype=np.float32).copy()),
    }
    actor, critic = algo._last_states
    meta: Dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "actor_state": _flatten_state(actor, "actor_state", tensors),
        "critic_state": _flatten_state(critic, "critic_state", tensors),
        "episodes": [dict(e) for e in (algo.ep_info_buffer or [])],
        "envs": [_capture_env(env, f"env{i}", tensors) for i, env in enumerate(envs)],
    }
    return tensors, meta


def restore(algo: Any, tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> None:
    """Put a :func:`capture` back into ``algo`` (same task, envs and policy). Raises ValueError
    when the envs do not match."""
    envs = sub_envs(algo.env)
    if envs is None or len(envs) != len(meta["envs"]):
        raise ValueError(f"the checkpoint holds {len(meta['envs'])} envs in this process; "
                         f"this run has {'other' if envs is None else len(envs)}")
    for i, (env, layers) in enumerate(zip(envs, meta["envs"])):
        _restore_env(env, f"env{i}", layers, tensors)
    algo._last_obs = tensors["last_obs"].numpy().copy()
    algo._last_episode_starts = tensors["last_episode_starts"].numpy().astype(bool)
    device = algo.device
    algo._last_states = (_unflatten_state("actor_state", meta["actor_state"], tensors, device),
                         _unflatten_state("critic_state", meta["critic_state"], tensors, device))
    algo.ep_info_buffer = deque(meta["episodes"], maxlen=algo._stats_window_size)  # the logs' recent returns
    algo.ep_success_buffer = deque(maxlen=algo._stats_window_size)
