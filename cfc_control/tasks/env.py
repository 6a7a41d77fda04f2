"""Building a task: a stock MuJoCo env with a timing model and an observation model.

``make_task`` is the Gymnasium entry point of every ``cfc_control/<Base>-<Obs>-<Timing>-v0`` id;
``wrap_env`` applies the same wrappers to any Gymnasium MuJoCo env.

Wrapper order, inside out: stock env (no TimeLimit) -> ``VaryingPeriod`` (timing, reward per unit
time, horizon in simulated seconds) -> ``ObservationModel`` (Pos and/or noise; absent for a
noise-free Full) -> ``DtChannel`` (only with ``dt_in_obs=True``).
"""

from __future__ import annotations

import difflib
from typing import Any, Sequence

import gymnasium as gym

from cfc_control.tasks.mujoco_warnings import stock_env_warnings
from cfc_control.tasks.observations import DtChannel, ObservationModel, canonical_obs, dropped_entries
from cfc_control.tasks.specs import task_families
from cfc_control.tasks.timing import TimingModel
from cfc_control.tasks.wrappers import VaryingPeriod


def wrap_env(
    env: gym.Env,
    *,
    timing: "str | TimingModel | None" = "Fixed",
    obs: str | None = "Full",
    obs_noise: float = 0.0,
    dt_in_obs: bool = False,
    velocity_indices: Sequence[int] | None = None,
    horizon_s: float | None = None,
    unobserved_velocity_indices: Sequence[int] | None = None,
) -> gym.Env:
    """Wrap a Gymnasium MuJoCo env (built without TimeLimit) with timing and observation models.

    ``timing``: a spec in seconds or a preset name (None: Fixed). ``obs``: "Full", "Pos" or
    "PosVel" (None: Full); Pos needs ``velocity_indices``, the stock observation's velocity
    entries, PosVel ``unobserved_velocity_indices`` (see :mod:`cfc_control.tasks.observations`).
    ``horizon_s``: episode length in simulated seconds (None: no limit). With ``dt_in_obs`` the
    observation gets a last entry Δt / nominal_dt.
    """
    obs_model = canonical_obs("Full" if obs is None else obs)
    needed = {"Pos": velocity_indices, "PosVel": unobserved_velocity_indices}
    if obs_model in needed and needed[obs_model] is None:
        name = env.spec.id if env.spec else type(env.unwrapped).__name__
        raise ValueError(
            f"the {obs_model} observation model needs the velocity entries of {name}'s "
            "observation; define its task family in envs/*.toml"
        )
    env = VaryingPeriod(env, "Fixed" if timing is None else timing, horizon_s=horizon_s)
    dropped = set(dropped_entries(obs_model, velocity_indices or (), unobserved_velocity_indices or ()))
    keep = None
    if dropped:
        keep = [i for i in range(env.observation_space.shape[0]) if i not in dropped]
    if keep is not None or obs_noise:
        env = ObservationModel(env, keep=keep, noise_std=obs_noise)
    if dt_in_obs:
        env = DtChannel(env)
    return env


def make_task(
    base: str,
    obs: str | None = "Full",
    timing: "str | TimingModel | None" = "Fixed",
    obs_noise: float = 0.0,
    dt_in_obs: bool = False,
    render_mode: str | None = None,
    **base_kwargs: Any,
) -> gym.Env:
    """Build the task on task family ``base`` (e.g. "Hopper"); extra kwargs go to the stock env
    (``width``, ``height``, ``camera_name``, ...)."""
    families = task_families()
    if base not in families:
        close = difflib.get_close_matches(base, families, n=3)
        raise ValueError(f"unknown task family {base!r}; closest: {close or sorted(families)}")
    family = families[base]
    with stock_env_warnings():
        env = gym.make(
            family.gym_id,
            max_episode_steps=-1,
            disable_env_checker=True,
            render_mode=render_mode,
            **base_kwargs,
        )
    return wrap_env(
        env,
        timing=timing,
        obs=obs,
        obs_noise=obs_noise,
        dt_in_obs=dt_in_obs,
        velocity_indices=family.velocity_indices,
        horizon_s=family.horizon_s,
        unobserved_velocity_indices=family.unobserved_velocity_indices,
    )


def env_nominal_dt(env: Any) -> float:
    """An env's nominal control period in seconds: the task's ``nominal_dt`` through any
    wrappers, else the stock MuJoCo env's ``dt``."""
    try:
        return float(env.get_wrapper_attr("nominal_dt"))
    except AttributeError:
        return float(env.unwrapped.dt)
