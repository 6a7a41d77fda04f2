"""Recurrent models with one contract (:class:`RecurrentModel`): CfC, LTC and the LSTM/GRU/MLP
baselines, the registry (:func:`make`, :func:`available`) and save/load.

Names are imported on first use, so importing this package stays cheap and free of cycles.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "RecurrentModel": "cfc_control.models.base",
    "CfC": "cfc_control.models.cfc",
    "LTC": "cfc_control.models.ltc",
    "LSTM": "cfc_control.models.baselines",
    "GRU": "cfc_control.models.baselines",
    "MLP": "cfc_control.models.baselines",
    "make": "cfc_control.models.registry",
    "available": "cfc_control.models.registry",
    "save_model": "cfc_control.models.io",
    "load_model": "cfc_control.models.io",
    "read_config": "cfc_control.models.io",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cfc_control.models' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
