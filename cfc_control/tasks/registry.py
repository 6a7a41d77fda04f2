"""Named tasks: Gymnasium registration, name resolution and the one ``make_env`` every CLI uses.

Every task family in ``envs/*.toml`` times every observation model (Full, Pos, PosVel) times every timing
preset in ``envs/presets.toml`` is registered as ``cfc_control/<Base>-<Obs>-<Timing>-v0``; its
``gym.make`` kwargs (``timing``, ``obs``, ``obs_noise``, ``dt_in_obs``, ``render_mode`` and the
stock env's own) override the registered ones. Registration reads data only: it builds no env.
"""

from __future__ import annotations

import difflib
import importlib
import re
import warnings
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import find_highest_version

from cfc_control.tasks.mujoco_warnings import stock_env_warnings
from cfc_control.tasks.observations import OBS_MODELS, dropped_entries
from cfc_control.tasks.specs import TaskFamily, family_for_gym_id, task_families, timing_presets
from cfc_control.tasks.timing import parse_timing

NAMESPACE = "cfc_control"
VERSION = 0
ENTRY_POINT = "cfc_control.tasks.env:make_task"
# Keys make_env/gym.make accept on top of the stock env's own constructor arguments.
TASK_KWARGS = ("timing", "obs", "obs_noise", "dt_in_obs")

_ID_RE = re.compile(r"^(?:(?P<ns>[\w:.-]+)/)?(?P<name>[\w:.-]+?)(?:-v(?P<version>\d+))?$")


def task_id(family: str, obs: str, timing: str) -> str:
    """``("HalfCheetah", "Pos", "Jitter")`` -> ``"cfc_control/HalfCheetah-Pos-Jitter-v0"``."""
    return f"{NAMESPACE}/{family}-{obs}-{timing}-v{VERSION}"


def register_tasks() -> list[str]:
    """Register every task with Gymnasium (idempotent); returns their ids.

    If ``envs/`` cannot be found (a non-editable install without the data), warns and registers
    nothing rather than breaking ``import cfc_control``.
    """
    try:
        families = task_families()
        presets = timing_presets()
    except FileNotFoundError as e:
        warnings.warn(f"cfc_control tasks not registered: {e}", stacklevel=2)
        return []
    ids = []
    for family in families.values():
        for obs in OBS_MODELS:
            for timing in presets:
                env_id = task_id(family.name, obs, timing)
                ids.append(env_id)
                if env_id in gym.registry:
                    continue
                gym.register(
                    id=env_id,
                    entry_point=ENTRY_POINT,
                    reward_threshold=family.reward_threshold,
                    max_episode_steps=None,  # the horizon is in simulated seconds, kept inside
                    kwargs={"base": family.name, "obs": obs, "timing": timing},
                )
    return ids


def list_tasks() -> list[str]:
    """Ids of every ``cfc_control`` task, families in file order, then Full/Pos/PosVel, then presets."""
    return register_tasks()


def _is_task(env_id: str) -> bool:
    return gym.spec(env_id).entry_point == ENTRY_POINT


def resolve_env_id(name: str) -> str:
    """The registered Gymnasium id that ``name`` names.

    Accepts a task id with or without namespace and version (``"HalfCheetah-Pos-Jitter"``,
    ``"cfc_control/HalfCheetah-Pos-Jitter-v0"``), any registered Gymnasium id (``"Hopper-v5"``; a
    missing version means the highest one), an optional ``"module:"`` prefix to import first, and
    any capitalisation when it is unambiguous. Raises ``ValueError`` listing the closest names.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"environment name must be a non-empty string, got {name!r}")
    name = name.strip()
    if ":" in name:
        module, _, name = name.partition(":")
        importlib.import_module(module)
    register_tasks()
    if name in gym.registry:
        return name
    match = _ID_RE.match(name)
    if match:
        ns, short, version = match.group("ns", "name", "version")
        for space in [ns] if ns else [None, NAMESPACE]:
            v = int(version) if version else find_highest_version(space, short)
            candidate = f"{space + '/' if space else ''}{short}{f'-v{v}' if v is not None else ''}"
            if candidate in gym.registry:
                return candidate
    short_names = {_short(i): i for i in gym.registry if i.startswith(NAMESPACE + "/")}
    folded = {k.lower(): v for k, v in {**short_names, **{i: i for i in gym.registry}}.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    choices = list(short_names) + [i for i in gym.registry if not i.startswith(NAMESPACE + "/")]
    close = difflib.get_close_matches(name, choices, n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "see `python -m cfc_control.tasks`"
    raise ValueError(f"unknown environment {name!r}; {hint}")


# Entry points a task id read from a file may resolve to: ours and Gymnasium's own MuJoCo envs.
STORED_TASK_ENTRY_POINTS = (ENTRY_POINT, "gymnasium.envs.mujoco")


def resolve_stored_task(name: Any, source: str = "the policy") -> str:
    """The registered id of a task named by a file (a policy's config or card), which is data: the
    name must be a ``cfc_control`` task or one of Gymnasium's registered MuJoCo ids. Unlike
    :func:`resolve_env_id` it never imports a ``"module:"`` prefix (a downloaded policy directory
    could otherwise run a ``.py`` placed beside it) and never resolves to another entry point.
    ``source`` names the file in the one-line ValueError."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source}: the task must be a non-empty string, got {name!r:.80}")
    if ":" in name:
        raise ValueError(f"{source}: task {name!r:.80} names a module to import; a stored task must be a "
                         "cfc_control task or a Gymnasium MuJoCo id (see `python -m cfc_control.tasks`)")
    env_id = resolve_env_id(name)  # without ":" this only reads the registry
    entry = gym.spec(env_id).entry_point
    if not (isinstance(entry, str) and entry.startswith(STORED_TASK_ENTRY_POINTS)):
        raise ValueError(f"{source}: task {env_id!r} is neither a cfc_control task nor a Gymnasium MuJoCo env; "
                         "pass the environment explicitly (--env)")
    return env_id


def _short(env_id: str) -> str:
    return env_id.split("/", 1)[-1].rsplit(f"-v{VERSION}", 1)[0]


def make_env(
    name: str,
    *,
    timing: str | None = None,
    obs: str | None = None,
    seed: int | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Build the env ``name`` names, as every ``--env/--timing/--obs`` flag does.

    For a ``cfc_control`` task, ``timing`` (spec or preset) and ``obs`` override the registered
    ones. For a plain Gymnasium MuJoCo id (``"Hopper-v5"``), giving ``timing``, ``obs``,
    ``obs_noise`` or ``dt_in_obs`` wraps it the same way, with the stock episode length as the
    horizon; without them it is ``gym.make(name)``. Other kwargs go to ``gym.make``. With ``seed``
    the env is reset once with it and its spaces are seeded, so runs repeat.
    """
    env_id = resolve_env_id(name)
    overrides = {k: v for k, v in {"timing": timing, "obs": obs}.items() if v is not None}
    if _is_task(env_id):
        env = gym.make(env_id, **overrides, **kwargs)
    elif overrides or any(k in kwargs for k in TASK_KWARGS):
        env = _wrap_plain(env_id, overrides, kwargs)
    else:
        with stock_env_warnings():
            env = gym.make(env_id, **kwargs)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        env.observation_space.seed(seed)
    return env


def _wrap_plain(env_id: str, overrides: dict[str, Any], kwargs: dict[str, Any]) -> gym.Env:
    from cfc_control.tasks.env import wrap_env  # builds envs: kept out of the import path

    task_kw = {k: kwargs.pop(k) for k in TASK_KWARGS if k in kwargs}
    task_kw.update(overrides)
    spec = gym.spec(env_id)
    with stock_env_warnings():
        env = gym.make(env_id, max_episode_steps=-1, **kwargs)
    family = family_for_gym_id(env_id)
    dt = getattr(env.unwrapped, "dt", None)
    horizon = spec.max_episode_steps * dt if spec.max_episode_steps and dt else None
    try:
        return wrap_env(
            env,
            velocity_indices=family.velocity_indices if family else None,
            horizon_s=horizon,
            unobserved_velocity_indices=family.unobserved_velocity_indices if family else None,
            **task_kw,
        )
    except Exception:
        env.close()
        raise


def task_info(name: str) -> dict[str, Any]:
    """What the task listing prints for ``name``.

    Keys: id, base_env, obs, timing (preset name or spec), timing_spec (seconds), nominal_dt (s),
    horizon_s, max_steps (steps at the nominal period), reward_threshold (None if Gymnasium has
    none), obs_size, act_size, rounding_sensitive (see ``TaskFamily``). For a ``cfc_control`` task this reads the data only; for another
    Gymnasium id it builds the env once.
    """
    env_id = resolve_env_id(name)
    spec = gym.spec(env_id)
    if _is_task(env_id):
        family: TaskFamily = task_families()[spec.kwargs["base"]]
        obs = spec.kwargs.get("obs", "Full")
        timing = spec.kwargs.get("timing", "Fixed")
        removed = len(dropped_entries(obs, family.velocity_indices, family.unobserved_velocity_indices))
        return {
            "id": env_id,
            "base_env": family.gym_id,
            "obs": obs,
            "timing": timing,
            "timing_spec": parse_timing(timing, family.nominal_dt).spec,
            "nominal_dt": family.nominal_dt,
            "horizon_s": family.horizon_s,
            "max_steps": family.max_episode_steps,
            "reward_threshold": family.reward_threshold,
            "obs_size": family.obs_size - removed,
            "act_size": family.act_size,
            "rounding_sensitive": family.rounding_sensitive,
        }
    env = gym.make(env_id, disable_env_checker=True)
    try:
        dt = getattr(env.unwrapped, "dt", None)
        steps = spec.max_episode_steps
        return {
            "id": env_id,
            "base_env": env_id,
            "obs": "Full",
            "timing": "Fixed",
            "timing_spec": None if dt is None else parse_timing(f"fixed:{dt!r}").spec,
            "nominal_dt": dt,
            "horizon_s": steps * dt if steps and dt else None,
            "max_steps": steps,
            "reward_threshold": spec.reward_threshold,
            "obs_size": gym.spaces.flatdim(env.observation_space),
            "act_size": gym.spaces.flatdim(env.action_space),
            "rounding_sensitive": False,
        }
    finally:
        env.close()
