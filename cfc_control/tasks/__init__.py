"""MuJoCo control tasks with a varying control period and partially observed variants.

``cfc_control/<Base>-<Obs>-<Timing>-v0`` ids are registered with Gymnasium on ``import
cfc_control``; ``make_env(name, timing=..., obs=...)`` builds any of them, or wraps a plain
Gymnasium MuJoCo id the same way. ``python -m cfc_control.tasks`` lists them.
"""

from cfc_control.tasks.env import env_nominal_dt
from cfc_control.tasks.registry import (
    list_tasks,
    make_env,
    register_tasks,
    resolve_env_id,
    resolve_stored_task,
    task_info,
)
from cfc_control.tasks.timing import TimingModel, parse_timing

__all__ = [
    "TimingModel",
    "env_nominal_dt",
    "list_tasks",
    "make_env",
    "parse_timing",
    "register_tasks",
    "resolve_env_id",
    "resolve_stored_task",
    "task_info",
]
