"""What a model directory may declare, checked before anything is allocated: the safetensors
header (read by itself, bounded), and the sizes in config.json against the weights that header
declares. A config names sizes (units, backbone units, input size, a wiring's neurons) that the
model would allocate; a file that lies about them must fail here, not in a 8 GB allocation."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Dict, Tuple

MAX_HEADER_BYTES = 16 * 1024 * 1024
# The dtypes save_model writes (a model's parameters and float buffers).
WEIGHT_DTYPES = {"F32": 4, "F64": 8}
# A wiring builds dense (neurons x neurons) adjacency arrays; a wired model's weights hold a
# fraction of that many entries (sparsity at most ~90%): bound the arrays by a multiple of them.
WIRING_FACTOR = 16


def read_safetensors_header(file: Path) -> Dict[str, Tuple[Tuple[int, ...], int]]:
    """{tensor name: (shape, numel)} from a safetensors file's header, checked against the file:
    header size bounded, dtypes float32/float64, each tensor's byte range matching its shape and
    inside the file. ValueError naming the file otherwise. Reads only the header."""
    try:
        return _read_header(file)
    except ValueError as err:
        raise ValueError(f"{file}: not a readable safetensors file (truncated or corrupt?): {err}") from None


def _read_header(file: Path) -> Dict[str, Tuple[Tuple[int, ...], int]]:
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("shorter than its 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"a header of {n} bytes in a {size}-byte file")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"header: {err}") from err
    if not isinstance(header, dict):
        raise ValueError("the header is not a map")
    out: Dict[str, Tuple[Tuple[int, ...], int]] = {}
    data_size = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        out[name] = _tensor_entry(name, entry, data_size)
    return out


def _tensor_entry(name: str, entry: Any, data_size: int) -> Tuple[Tuple[int, ...], int]:
    if not isinstance(entry, dict):
        raise ValueError(f"tensor {name!r:.80} has no header entry")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"tensor {name!r:.80} has dtype {dtype!r:.20}; weights are {sorted(WEIGHT_DTYPES)}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise ValueError(f"tensor {name!r:.80} has a bad shape {shape!r:.80}")
    numel = 1
    for d in shape:
        numel *= d
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size and offsets[1] - offsets[0] == numel * WEIGHT_DTYPES[dtype]):
        raise ValueError(f"tensor {name!r:.80}'s bytes {offsets!r:.80} do not match its shape {shape} "
                         f"and dtype {dtype} inside the file")
    return tuple(shape), numel


def check_declared_sizes(model_config: Any, weights: int) -> None:
    """Every size a model config names is at most the number of weights the file declares (a
    model of n units has more than n weights; keys naming a seed are not sizes), and a wiring's
    dense arrays at most :data:`WIRING_FACTOR` times that. ValueError naming the key otherwise."""
    kwargs = model_config.get("kwargs") if isinstance(model_config, dict) else None
    if not isinstance(kwargs, dict):
        return  # model_from_config says what is wrong with it
    limit = max(int(weights), 1)
    _walk(kwargs, "kwargs", limit)
    wiring = kwargs.get("units_or_wiring")
    if isinstance(wiring, dict):
        units, inputs = wiring.get("units"), wiring.get("input_dim") or 0
        if _is_int(units) and _is_int(inputs) and units * (units + inputs) > WIRING_FACTOR * limit:
            raise ValueError(f"the wiring's {units} neurons need more arrays than the {weights} weights "
                             "of the weights file can describe")


def _walk(value: Any, where: str, limit: int) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if "seed" not in str(k):
                _walk(v, f"{where}.{k}", limit)
    elif isinstance(value, list):
        for i, v in enumerate(value[:1000]):
            _walk(v, f"{where}[{i}]", limit)
    elif isinstance(value, float) and value.is_integer() and abs(value) > limit:
        raise ValueError(f"{where} = {value:g} is larger than the {limit} weights of the weights file")
    elif _is_int(value) and abs(value) > limit:
        raise ValueError(f"{where} = {value} is larger than the {limit} weights of the weights file")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = ["read_safetensors_header", "check_declared_sizes", "WEIGHT_DTYPES"]
