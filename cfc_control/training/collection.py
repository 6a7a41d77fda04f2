"""Collect demonstrations on a task with an expert (the library side of ``python -m cfc_control.collect``)."""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from cfc_control.experts import make_expert
from cfc_control.tasks import make_env, resolve_env_id
from cfc_control.episodes.demos import Demonstrations
from cfc_control.tasks import env_nominal_dt
from cfc_control.episodes.closed_loop import run_episodes


def collect_demos(task: str, expert: Union[str, Any], episodes: int, *, seed: int = 0, noise: float = 0.0,
                  noise_period_power: float = 0.0, timing: Optional[str] = None, obs: Optional[str] = None,
                  progress: Optional[str] = None) -> Demonstrations:
    """Record ``episodes`` whole episodes of ``expert`` ("lqr", "mpc", an expert directory, or an
    :class:`~cfc_control.experts.Expert`) on ``task``, reset with seeds ``seed``, ``seed + 1``, ...

    ``noise``: DART action noise, std in units of the action half-range, applied to the executed
    action only, its std times (Δt / nominal)^-``noise_period_power`` (``run_episodes``).
    ``timing``/``obs`` override the task's (as ``--timing``/``--obs`` do).
    ``progress``: the label of a progress bar over the episodes (none without)."""
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")

    def env_fn():
        return make_env(task, timing=timing, obs=obs)

    probe = env_fn()
    try:
        the_expert = make_expert(expert, probe) if isinstance(expert, str) or hasattr(expert, "__fspath__") else expert
        space = probe.action_space
        meta = {
            "task": resolve_env_id(task),
            "timing": timing or _attr(probe, "timing"),
            "obs": obs,
            "nominal_dt": env_nominal_dt(probe),
            "action_low": np.asarray(space.low, dtype=np.float64).tolist(),
            "action_high": np.asarray(space.high, dtype=np.float64).tolist(),
            "seed": seed,
        }
    finally:
        probe.close()
    result = run_episodes(env_fn, [seed + i for i in range(episodes)], expert=the_expert, noise=noise,
                          noise_period_power=noise_period_power, rng=np.random.default_rng([seed, 0xD0]),
                          record=True, metadata=meta, progress=progress)
    return result.demos


def _attr(env: Any, name: str) -> Any:
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        return None
