"""Saving and loading models: safetensors weights plus a JSON config, nothing executable.

A model directory holds

    model.safetensors   the state_dict (contiguous tensors, none sharing storage)
    config.json         {"format_version": 1, "library_version": ..., "model": {"class": ..., "kwargs": ...},
                         plus the keys of ``extra`` (the policy layer stores its normalisation etc. there)}

``"model"`` is the model's :meth:`~cfc_control.models.base.RecurrentModel.model_config`. Loading
looks the class name up in a fixed allow-list (no stored code runs, no arbitrary imports) and
rebuilds wirings from their JSON config. Both files are written to a temporary file in the same
directory and renamed into place. Every error names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
from importlib import import_module
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cfc_control import __version__
from cfc_control.files import MANIFEST, atomic_path, manifest_text, read_json, verify_files
from cfc_control.models.base import RecurrentModel
from cfc_control.models.limits import check_declared_sizes, read_safetensors_header
from cfc_control.wirings import wiring_from_config

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
RESERVED_KEYS = ("format_version", "library_version", "model")
MAX_CONFIG_BYTES = 16 * 1024 * 1024

# The only classes a config may name: class name -> (module, attribute), fixed here.
MODEL_CLASSES: Dict[str, tuple] = {
    "CfC": ("cfc_control.models.cfc", "CfC"),
    "LTC": ("cfc_control.models.ltc", "LTC"),
    "LSTM": ("cfc_control.models.baselines", "LSTM"),
    "GRU": ("cfc_control.models.baselines", "GRU"),
    "MLP": ("cfc_control.models.baselines", "MLP"),
}

PathLike = Union[str, "os.PathLike[str]"]


def _model_class(name: Any) -> type:
    if not isinstance(name, str) or name not in MODEL_CLASSES:
        raise ValueError(f"unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}")
    module, attr = MODEL_CLASSES[name]
    return getattr(import_module(module), attr)


def _decode_kwarg(value: Any) -> Any:
    # The only structured constructor argument is a wiring, stored as {"class": ..., **config}.
    if isinstance(value, dict) and "class" in value:
        return wiring_from_config(value)
    return value


def model_from_config(config: Dict[str, Any]) -> RecurrentModel:
    """Build a fresh model (random weights) from ``{"class": name, "kwargs": {...}}``."""
    if not isinstance(config, dict) or not isinstance(config.get("kwargs"), dict) or "class" not in config:
        raise ValueError(f"a model config must be {{'class': str, 'kwargs': dict}}, got {config!r:.200}")
    cls = _model_class(config["class"])
    kwargs = {k: _decode_kwarg(v) for k, v in config["kwargs"].items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build {config['class']} from its config: {err}") from err


def _checked_model_config(model: RecurrentModel) -> Dict[str, Any]:
    if not isinstance(model, RecurrentModel):
        raise TypeError(f"save_model expects a cfc_control RecurrentModel, got {type(model).__name__}")
    cfg = model.model_config()
    if cfg.get("class") not in MODEL_CLASSES:
        raise ValueError(f"{type(model).__name__}.model_config() names {cfg.get('class')!r}, not one of {sorted(MODEL_CLASSES)}")
    return cfg


def _state_tensors(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The state_dict as contiguous CPU tensors, copying any that share storage (safetensors
    refuses shared tensors)."""
    out: Dict[str, torch.Tensor] = {}
    seen = set()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else None
        if key is not None and key in seen:
            t = t.clone()
        elif key is not None:
            seen.add(key)
        out[name] = t
    return out


def save_model(model: RecurrentModel, directory: PathLike, extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model`` to ``directory`` (created if needed): model.safetensors and config.json.

    ``extra``: JSON-serialisable keys stored at the top level of config.json beside the model's;
    they must not be one of format_version, library_version, model. Returns the directory."""
    path = Path(directory)
    config: Dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": _checked_model_config(model),
    }
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
        clash = sorted(set(extra) & set(RESERVED_KEYS))
        if clash:
            raise ValueError(f"extra may not use the reserved config keys {clash}")
        config.update(extra)
    try:
        text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"the config is not JSON-serialisable (finite numbers, str, lists, dicts): {err}") from err
    tensors = _state_tensors(model)

    path.mkdir(parents=True, exist_ok=True)
    # All files are complete before any replaces the old one (the inner ones are renamed first,
    # the manifest last: a crash in between leaves a mismatch that loading refuses).
    with atomic_path(path / MANIFEST) as tmp_manifest, atomic_path(path / WEIGHTS_FILE) as tmp_weights, \
            atomic_path(path / CONFIG_FILE) as tmp_config:
        save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
        tmp_config.write_text(text)
        tmp_manifest.write_text(manifest_text(path, [WEIGHTS_FILE, CONFIG_FILE],
                                              {WEIGHTS_FILE: tmp_weights, CONFIG_FILE: tmp_config}))
    return path


def read_config(directory: PathLike) -> Dict[str, Any]:
    """The parsed config.json of a model directory, checked for format version and a model entry."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model directory")
    file = path / CONFIG_FILE
    if file.is_file() and file.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{file}: {file.stat().st_size} bytes, more than a config may have ({MAX_CONFIG_BYTES})")
    config = read_json(file, f"missing (a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    if not isinstance(config, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(config).__name__}")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{file}: missing or invalid 'format_version' ({version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{file}: format_version {version} is newer than this cfc_control reads ({FORMAT_VERSION}); upgrade cfc_control"
        )
    if "model" not in config:
        raise ValueError(f"{file}: no 'model' entry")
    return config


def _read_weights(file: Path) -> Dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{file}: not a readable safetensors file (truncated or corrupt?): {err}") from err


def load_model(directory: PathLike, device: Union[None, str, torch.device] = None) -> RecurrentModel:
    """Rebuild the model saved in ``directory`` by :func:`save_model`, in the dtype of its saved
    floating-point weights, on ``device`` (default CPU). Like any new module it is in training
    mode: call ``.eval()`` for inference.

    Nothing is allocated before the files are checked: their checksums against ``manifest.json``
    (a directory without one, saved by an older version, skips this check), the safetensors
    header, the config's sizes against the weights the header declares, and the tensors' names
    and shapes against a model built without storage (torch's meta device). Missing, unexpected,
    mis-shaped, non-float or non-finite tensors raise a ValueError that names the file."""
    path = Path(directory)
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    verify_files(path, [CONFIG_FILE, WEIGHTS_FILE])
    config = read_config(path)
    if not weights_file.is_file():
        raise FileNotFoundError(f"{weights_file}: missing (a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    header = read_safetensors_header(weights_file)
    try:
        check_declared_sizes(config["model"], sum(numel for _, numel in header.values()))
        with torch.device("meta"):  # shapes only, no storage: a config cannot make us allocate
            skeleton = model_from_config(config["model"])
    except ValueError as err:
        raise ValueError(f"{config_file}: {err}") from err
    _check_tensors(skeleton.state_dict(), {k: shape for k, (shape, _) in header.items()}, weights_file, config)
    del skeleton
    model = model_from_config(config["model"])
    tensors = _read_weights(weights_file)
    _check_tensors(model.state_dict(), {k: tuple(t.shape) for k, t in tensors.items()}, weights_file, config)
    floating = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(floating) > 1:
        raise ValueError(f"{weights_file}: tensors of several float dtypes {sorted(map(str, floating))}")
    bad = sorted(k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if bad:
        raise ValueError(f"{weights_file}: non-finite values in {bad[:8]}")
    if floating:
        model.to(dtype=floating.pop())
    model.load_state_dict(tensors)
    return model.to(device) if device is not None else model


def _check_tensors(expected: Dict[str, torch.Tensor], found: Dict[str, tuple], weights_file: Path,
                   config: Dict[str, Any]) -> None:
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    shapes = [
        f"{k}: file {tuple(found[k])} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k]) != tuple(expected[k].shape)
    ]
    if shapes:
        problems.append("mis-shaped tensors [" + "; ".join(shapes) + "]")
    if problems:
        raise ValueError(
            f"{weights_file} does not match the {config['model'].get('class')} model of "
            f"{weights_file.with_name(CONFIG_FILE)}: " + ", ".join(problems)
        )


__all__ = [
    "FORMAT_VERSION",
    "MODEL_CLASSES",
    "load_model",
    "model_from_config",
    "read_config",
    "save_model",
]
