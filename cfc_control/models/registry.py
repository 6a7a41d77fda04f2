"""Models by name, so that every experiment swaps the model with one string.

``make(name, input_size, output_size, **kw)`` returns a :class:`RecurrentModel` taking
``input_size`` features and giving ``output_size`` outputs; ``**kw`` overrides the defaults below
and is passed on to the class.

    name        class and defaults
    cfc         CfC(input_size, units=64, proj_size=output_size)            mode "default"
    cfc-nogate  the same with mode="no_gate"
    cfc-pure    the same with mode="pure" (the paper's direct closed form)
    cfc-mm      the same with mixed_memory=True (an LSTM cell in front: CfC-mmRNN)
    ncp         CfC on AutoNCP(units, output_size, sparsity_level=0.5, seed=22222): the wired CfC,
                outputs = motor neurons; units defaults to max(64, 4 * output_size)
    ltc         LTC(input_size, units=64 fully connected, proj_size=output_size), 6 ODE unfolds
    lstm, gru   LSTM / GRU(input_size, output_size, units=64), Δt as an extra input
    mlp         MLP(input_size, output_size, hidden=(64, 64), activation="tanh"), Δt as an input;
                units=n is taken as hidden=(n, n)

Every name accepts ``units`` (the state size; for ncp the neuron count; for mlp the layer width).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from cfc_control.models import baselines
from cfc_control.models.base import RecurrentModel
from cfc_control.models.baselines import MLP
from cfc_control.models.cfc import CfC
from cfc_control.models.ltc import LTC
from cfc_control.wirings import AutoNCP

DEFAULT_UNITS = 64


def _cfc(**preset: Any) -> Callable[..., RecurrentModel]:
    def build(input_size: int, output_size: int, **kw: Any) -> RecurrentModel:
        units = kw.pop("units", DEFAULT_UNITS)
        kw.setdefault("proj_size", output_size)
        return CfC(input_size, units, **{**preset, **kw})

    return build


def _ncp(input_size: int, output_size: int, **kw: Any) -> RecurrentModel:
    units = kw.pop("units", max(DEFAULT_UNITS, 4 * output_size))
    if isinstance(units, int) and not isinstance(units, bool) and units <= output_size + 2:
        raise ValueError(
            f"model 'ncp' needs units > output_size + 2 (an AutoNCP keeps at least 2 inter and 1 "
            f"command neuron besides the {output_size} motor neurons); got units={units}: pass a larger units="
        )
    wiring = AutoNCP(units, output_size, sparsity_level=kw.pop("sparsity_level", 0.5), seed=kw.pop("seed", 22222))
    return CfC(input_size, wiring, **kw)


def _ltc(input_size: int, output_size: int, **kw: Any) -> RecurrentModel:
    units = kw.pop("units", DEFAULT_UNITS)
    kw.setdefault("proj_size", output_size)
    return LTC(input_size, units, **kw)


def _baseline(class_name: str) -> Callable[..., RecurrentModel]:
    def build(input_size: int, output_size: int, **kw: Any) -> RecurrentModel:
        return getattr(baselines, class_name)(input_size, output_size, **kw)

    return build


def _mlp(input_size: int, output_size: int, **kw: Any) -> RecurrentModel:
    if "units" in kw:  # every name takes units (a CLI's --units): here the width of both layers
        if "hidden" in kw:
            raise ValueError("model 'mlp': pass units (two layers of that width) or hidden, not both")
        units = kw.pop("units")
        kw["hidden"] = (units, units)
    return MLP(input_size, output_size, **kw)


_BUILDERS: Dict[str, Callable[..., RecurrentModel]] = {
    "cfc": _cfc(),
    "cfc-nogate": _cfc(mode="no_gate"),
    "cfc-pure": _cfc(mode="pure"),
    "cfc-mm": _cfc(mixed_memory=True),
    "ncp": _ncp,
    "ltc": _ltc,
    "lstm": _baseline("LSTM"),
    "gru": _baseline("GRU"),
    "mlp": _mlp,
}


def available() -> List[str]:
    """The names :func:`make` accepts."""
    return list(_BUILDERS)


def make(name: str, input_size: int, output_size: int, **kw: Any) -> RecurrentModel:
    """A model by name (see the module docstring); ``**kw`` override its defaults.

    Raises ValueError for an unknown name (listing the known ones) or when the model built does
    not give ``output_size`` outputs (e.g. ``proj_size=None`` on a layer with other outputs)."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(_BUILDERS)}")
    for arg, value in (("input_size", input_size), ("output_size", output_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"make({name!r}): {arg} must be a positive int, got {value!r}")
    model = _BUILDERS[key](input_size, output_size, **kw)
    if model.output_size != output_size:
        raise ValueError(
            f"make({name!r}): the model gives {model.output_size} outputs, {output_size} were asked for "
            f"(check proj_size / the wiring's output size in the keyword arguments)"
        )
    return model
