"""Wirings in JSON: the class name with the wiring's config, so that a saved model rebuilds its
wiring from JSON alone (from a fixed list of classes)."""

from __future__ import annotations

from typing import Any, Dict

from cfc_control.wirings.base import Wiring
from cfc_control.wirings.fully_connected import FullyConnected
from cfc_control.wirings.ncp import NCP, AutoNCP
from cfc_control.wirings.random import Random

_CLASSES = {c.__name__: c for c in (Wiring, FullyConnected, Random, NCP, AutoNCP)}


def wiring_to_config(wiring: Wiring) -> Dict[str, Any]:
    """``{"class": <class name>, **wiring.get_config()}``, for JSON files."""
    if not isinstance(wiring, Wiring) or type(wiring).__name__ not in _CLASSES:
        raise TypeError(f"expected a cfc_control.wirings wiring, got {type(wiring).__name__}")
    return {"class": type(wiring).__name__, **wiring.get_config()}


def wiring_from_config(config: Dict[str, Any]) -> Wiring:
    """Rebuild a wiring from :func:`wiring_to_config`'s dict (classes of this module only)."""
    if not isinstance(config, dict) or "class" not in config:
        raise ValueError(f"a wiring config must be a dict with a 'class' key, got {config!r:.200}")
    name = config["class"]
    if name not in _CLASSES:
        raise ValueError(f"unknown wiring class {name!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[name].from_config({k: v for k, v in config.items() if k != "class"})
