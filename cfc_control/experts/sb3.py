"""Stable-baselines3 experts (SAC or PPO, MLP) for the tasks an LQR cannot balance.

An expert acts on a task env from its full state: :meth:`SB3Expert.act` reads the stock
observation from ``env.unwrapped._get_obs()``, whatever observation model and timing wrap it, less
the entries it was trained without (``"dropped_observations"``, e.g. a walker's forward speed). An
expert with a time input (``"dt_input": true``; a *teacher* trained under a period distribution by
:mod:`cfc_control.training.teachers`) also reads the period that just elapsed, in units of the
nominal period, as its last input. Training lives in :mod:`cfc_control.training.teachers`.

Stored as a directory, never as a pickle (SB3's own ``.zip`` pickles parts of the model):

    <dir>/model.safetensors   the SB3 policy's state_dict (actor and critics)
    <dir>/config.json         {"format_version", "kind": "sb3-expert", "algo", "env_id",
                              "observation_size", "action_low", "action_high", "policy_kwargs"
                              (net_arch, activation name, ...), "obs_normalization" or null,
                              "dt_input", "dropped_observations" (stock entries it does not
                              see; absent: none); with a time input also "nominal_dt" (seconds) and
                              "timing" (the period distribution it was trained under)}
    <dir>/card.json           algorithm, steps, seed, hyperparameters, training time, command,
                              evaluation return over N episodes

Loading rebuilds the SB3 policy class from the config (activation names from a fixed table) and
loads the tensors.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.sac.policies import SACPolicy
from torch import nn

from cfc_control.experts.base import measured_period
from cfc_control.files import atomic_path, atomic_write_text, read_json

FORMAT_VERSION = 1
KIND = "sb3-expert"
ACTIVATIONS: Dict[str, type] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
ALGOS = ("sac", "ppo")

# Per-env settings after rl-baselines3-zoo's tuned hyperparameters (its MuJoCo v3 entries; PPO
# observations and rewards are normalised); the steps are the budget the README's expert commands
# use. Anything here can be overridden from the command line.
_ZOO_PPO_NET = {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu",
                "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
HYPERPARAMS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "sac": {
        "default": {"steps": 1_000_000, "learning_starts": 10_000},
        "Swimmer": {"steps": 1_000_000, "learning_starts": 10_000, "gamma": 0.9999},
        "Reacher": {"steps": 200_000, "learning_starts": 5_000},
        "InvertedPendulum": {"steps": 50_000, "learning_starts": 1_000},
        "InvertedDoublePendulum": {"steps": 200_000, "learning_starts": 5_000},
    },
    "ppo": {
        "default": {"steps": 1_000_000, "n_steps": 512, "batch_size": 64, "gae_lambda": 0.92,
                    "gamma": 0.98, "n_epochs": 10, "learning_rate": 3e-4, "clip_range": 0.2},
        "HalfCheetah": {"steps": 1_000_000, "n_steps": 512, "batch_size": 64, "gamma": 0.98,
                        "learning_rate": 2.0633e-05, "ent_coef": 0.000401762, "clip_range": 0.1,
                        "n_epochs": 20, "gae_lambda": 0.92, "max_grad_norm": 0.8, "vf_coef": 0.58096,
                        "policy_kwargs": _ZOO_PPO_NET},
        "Hopper": {"steps": 1_000_000, "n_steps": 512, "batch_size": 32, "gamma": 0.999,
                   "learning_rate": 9.80828e-05, "ent_coef": 0.00229519, "clip_range": 0.2, "n_epochs": 5,
                   "gae_lambda": 0.99, "max_grad_norm": 0.7, "vf_coef": 0.835671, "policy_kwargs": _ZOO_PPO_NET},
        "Walker2d": {"steps": 1_000_000, "n_steps": 512, "batch_size": 32, "gamma": 0.99,
                     "learning_rate": 5.05041e-05, "ent_coef": 0.000585045, "clip_range": 0.1, "n_epochs": 20,
                     "gae_lambda": 0.95, "max_grad_norm": 1.0, "vf_coef": 0.871923},
        "Reacher": {"steps": 1_000_000, "n_steps": 512, "batch_size": 32, "gamma": 0.9,
                    "learning_rate": 0.000104019, "ent_coef": 7.52585e-08, "clip_range": 0.3, "n_epochs": 5,
                    "gae_lambda": 1.0, "max_grad_norm": 0.9, "vf_coef": 0.950368},
        # The zoo's MuJoCo defaults (SB3's PPO defaults) with a long horizon.
        "Swimmer": {"steps": 1_000_000, "gamma": 0.9999},
        "InvertedDoublePendulum": {"steps": 1_000_000, "n_steps": 128, "batch_size": 512, "gamma": 0.98,
                                   "learning_rate": 0.000155454, "ent_coef": 1.05057e-06, "clip_range": 0.4,
                                   "n_epochs": 10, "gae_lambda": 0.8, "max_grad_norm": 0.5, "vf_coef": 0.695929},
        "InvertedPendulum": {"steps": 1_000_000, "n_steps": 32, "batch_size": 64, "gamma": 0.999,
                             "learning_rate": 0.000222425, "ent_coef": 1.37976e-07, "clip_range": 0.4,
                             "n_epochs": 5, "gae_lambda": 0.9, "max_grad_norm": 0.3, "vf_coef": 0.19816},
    },
}
DEFAULT_POLICY_KWARGS = {"sac": {"net_arch": [256, 256], "activation_fn": "relu"},
                         "ppo": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": "tanh"}}


def stock_env_id(name: str) -> str:
    """'HalfCheetah' -> 'HalfCheetah-v5'; a full Gymnasium id is kept."""
    return name if "-v" in name else f"{name}-v5"


def _base_name(env_id: str) -> str:
    return env_id.split("/")[-1].split("-v")[0]


def hyperparams_for(algo: str, env_id: str) -> Dict[str, Any]:
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    table = HYPERPARAMS[algo]
    return copy.deepcopy(table.get(_base_name(env_id), table["default"]))


def _policy_class(algo: str):
    if algo == "sac":
        return SACPolicy
    if algo == "ppo":
        return ActorCriticPolicy
    raise ValueError(f"config 'algo' must be one of {ALGOS}, got {algo!r}")


def _torch_policy_kwargs(policy_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    kw = dict(policy_kwargs)
    name = kw.get("activation_fn", "relu")
    if name not in ACTIVATIONS:
        raise ValueError(f"activation_fn must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    kw["activation_fn"] = ACTIVATIONS[name]
    return kw


class SB3Expert:
    """A loaded SB3 policy acting deterministically from the stock observation."""

    def __init__(self, policy: Any, config: Dict[str, Any], directory: Optional[Path] = None) -> None:
        self.policy = policy
        self.config = config
        self.directory = directory
        self.name = f"sb3-{config['algo']}:{directory.name if directory else config['env_id']}"
        self.dt_input = bool(config.get("dt_input", False))
        self.dropped = tuple(config.get("dropped_observations", ()))
        norm = config.get("obs_normalization")
        self._norm = None
        if norm:
            self._norm = (np.asarray(norm["mean"]), np.sqrt(np.asarray(norm["var"]) + float(norm["epsilon"])),
                          float(norm["clip"]))

    def reset(self) -> None:
        """Stateless MLP: nothing to reset."""

    def check_env(self, env: Any) -> None:
        """Raise ValueError when ``env`` is not built on the stock env this expert was trained on
        (its MuJoCo env class and stock observation size)."""
        env_id = self.config["env_id"]
        try:
            entry = gym.spec(env_id).entry_point
        except gym.error.Error:
            entry = None
        want = entry.rsplit(":", 1)[-1] if isinstance(entry, str) else None
        got = type(env.unwrapped).__name__
        if want is not None and got != want:
            raise ValueError(f"expert {self.name} was trained on {env_id} ({want}); this env is a {got}")
        n = int(np.asarray(env.unwrapped._get_obs()).shape[0])
        want_n = int(self.config["observation_size"]) - int(self.dt_input) + len(self.dropped)
        if n != want_n or any(i >= n for i in self.dropped):
            raise ValueError(
                f"expert {self.name} was trained on {env_id} ({want_n} stock "
                f"observations); this env's stock observation has {n}"
            )

    def observe(self, env: Any) -> np.ndarray:
        """The expert's input: the stock observation of ``env``'s full state less the entries it
        was trained without, then, for an expert with a time input, the period that just elapsed
        in units of the nominal one (as the task's ``dt_in_obs`` channel), normalised as in
        training."""
        obs = np.asarray(env.unwrapped._get_obs(), dtype=np.float64)
        if self.dropped:
            obs = np.delete(obs, self.dropped)
        if self.dt_input:
            nominal = float(self.config["nominal_dt"])
            obs = np.append(obs, measured_period(env, nominal) / nominal)
        if self._norm is not None:
            mean, std, clip = self._norm
            obs = np.clip((obs - mean) / std, -clip, clip)
        return obs.astype(np.float32)

    def predict_obs(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for stock observations (n_obs,) or (B, n_obs), unnormalised."""
        action, _ = self.policy.predict(obs, deterministic=True)
        return np.asarray(action, dtype=np.float32)

    def act(self, env: Any) -> np.ndarray:
        """The action (n_act,) float32 for the env's current full state."""
        return self.predict_obs(self.observe(env))

    def act_many(self, envs: Sequence[Any]) -> np.ndarray:
        """The actions (len(envs), n_act) for several envs, in one forward pass."""
        return self.predict_obs(np.stack([self.observe(env) for env in envs]))


def save_sb3_expert(model: Any, directory: Union[str, Path], *, env_id: str, algo: str,
                    policy_kwargs: Dict[str, Any], card: Optional[Dict[str, Any]] = None,
                    obs_rms: Any = None, clip_obs: float = 10.0, epsilon: float = 1e-8,
                    time_input: Optional[Dict[str, Any]] = None,
                    dropped_observations: Sequence[int] = ()) -> Path:
    """Write an SB3 model's policy as safetensors + config.json (+ card.json) into ``directory``.

    ``policy_kwargs`` are the JSON kwargs it was built with (activation as a name); ``obs_rms``
    SB3's RunningMeanStd when the model was trained behind VecNormalize (observations only).
    ``time_input``: for an expert whose last input is Δt / nominal period, ``{"nominal_dt":
    seconds, "timing": the period distribution it was trained under (spec in seconds)}``.
    ``dropped_observations``: the entries of the stock observation the model was trained without."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.policy.state_dict().items()}
    config = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "algo": algo,
        "env_id": env_id,
        "observation_size": int(model.observation_space.shape[0]),
        "action_low": np.asarray(model.action_space.low, dtype=np.float64).tolist(),
        "action_high": np.asarray(model.action_space.high, dtype=np.float64).tolist(),
        "policy_kwargs": policy_kwargs,
        "obs_normalization": None if obs_rms is None else {
            "mean": np.asarray(obs_rms.mean).tolist(), "var": np.asarray(obs_rms.var).tolist(),
            "clip": float(clip_obs), "epsilon": float(epsilon)},
        "dt_input": time_input is not None,
        "dropped_observations": sorted(int(i) for i in dropped_observations),
    }
    if time_input is not None:
        config["nominal_dt"] = float(time_input["nominal_dt"])
        config["timing"] = time_input.get("timing")
    with atomic_path(path / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    atomic_write_text(path / "config.json", json.dumps(config, indent=2) + "\n")
    if card is not None:
        atomic_write_text(path / "card.json", json.dumps(card, indent=2) + "\n")
    return path


def _check_dropped(dropped: Any, cfg_path: Path) -> None:
    ok = isinstance(dropped, list) and all(type(i) is int and 0 <= i for i in dropped)
    if not ok or len(set(dropped)) != len(dropped):
        raise ValueError(f"{cfg_path}: dropped_observations must be a list of distinct stock observation "
                         f"indices, got {dropped!r:.80}")


def load_sb3_expert(directory: Union[str, Path]) -> SB3Expert:
    """Rebuild an expert from its directory (JSON + safetensors; nothing is unpickled)."""
    path = Path(directory)
    cfg_path = path / "config.json"
    config = read_json(cfg_path, f"missing; is {path} an expert directory?")
    if config.get("kind") != KIND:
        raise ValueError(f"{cfg_path}: kind is {config.get('kind')!r}, expected {KIND!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{cfg_path}: format_version {config.get('format_version')!r} is not {FORMAT_VERSION}")
    try:
        n_obs = int(config["observation_size"])
        _check_dropped(config.get("dropped_observations", []), cfg_path)
        obs_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        act_space = gym.spaces.Box(np.asarray(config["action_low"], np.float32),
                                   np.asarray(config["action_high"], np.float32), dtype=np.float32)
        policy = _policy_class(config["algo"])(obs_space, act_space, lambda _: 0.0,
                                               **_torch_policy_kwargs(config["policy_kwargs"]))
    except (KeyError, TypeError) as err:
        raise ValueError(f"{cfg_path}: bad expert config ({err!r})") from err
    weights = path / "model.safetensors"
    try:
        state = load_file(str(weights))
    except (FileNotFoundError, SafetensorError, OSError) as err:
        raise ValueError(f"{weights}: cannot read weights ({err})") from err
    try:
        policy.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights}: weights do not match the config's policy: {err}") from err
    policy.set_training_mode(False)
    return SB3Expert(policy, config, path)
