"""cfc-control: closed-form continuous-time (CfC) and neural circuit policy controllers for
control loops whose period varies.

Public names are imported lazily (PEP 562), so that ``import cfc_control`` stays cheap for a
control loop; importing the package registers the ``cfc_control/...`` Gymnasium tasks.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "CfC": "cfc_control.models.cfc",
    "LTC": "cfc_control.models.ltc",
    "from_ncps": "cfc_control.models.ncps_compat",
    "save_model": "cfc_control.models.io",
    "load_model": "cfc_control.models.io",
    "PolicyRunner": "cfc_control.runtime.runner",
}
_SUBMODULES = {"wirings", "models", "tasks", "runtime", "training", "policies"}

__all__ = sorted(set(_LAZY) | _SUBMODULES | {"__version__"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = import_module(f"cfc_control.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'cfc_control' has no attribute {name!r}")


def _register_tasks() -> None:
    # Registration reads envs/*.toml only; it imports neither torch nor mujoco.
    from cfc_control.tasks.registry import register_tasks

    register_tasks()


_register_tasks()
