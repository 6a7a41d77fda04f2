"""How the CfC's hand-written backward (``cfc_control/models/cfc_fused.py``) should block its local
derivatives: forward + backward time (median, ms, one CPU thread) of a 64-unit backbone-free CfC at
several batch sizes, for several block sizes (``_BLOCK_ELEMENTS``: head elements per block).

    python tools/fused_blocks.py
"""

import time

import numpy as np
import torch

import cfc_control.models.cfc_fused as fused
from cfc_control.models import make

CASES = [(8, 32), (16, 32), (32, 32), (64, 32), (256, 64)]  # (batch, steps)
BLOCKS = [1, 4096, 16384, 65536, 262144, 1 << 24]


def train_step_ms(batch: int, steps: int, units: int = 64, inputs: int = 9, reps: int = 40) -> float:
    torch.manual_seed(0)
    model = make("cfc", inputs, 6, units=units, backbone_layers=0)
    x = torch.randn(batch, steps, inputs)
    ts = torch.rand(batch, steps) + 0.5
    starts = torch.zeros(batch, steps, dtype=torch.bool)
    starts[:, 0] = True
    times = []
    for i in range(reps):
        start = time.perf_counter()
        y, _ = model(x, timespans=ts, episode_starts=starts)
        y.square().mean().backward()
        if i >= 8:  # warm-up
            times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> None:
    torch.set_num_threads(1)
    print("block elements | " + " | ".join(f"B={b} T={t}" for b, t in CASES))
    for block in BLOCKS:
        fused._BLOCK_ELEMENTS = block
        print(f"{block} | " + " | ".join(f"{train_step_ms(b, t):.2f}" for b, t in CASES), flush=True)


if __name__ == "__main__":
    main()
