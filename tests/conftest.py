"""Shared test set-up: headless rendering and small, reproducible torch runs."""

import os

# MuJoCo must pick its GL backend before it is first imported: EGL renders offscreen on these
# CPU-only machines (Mesa llvmpipe).
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores are shared by the whole suite; more threads only add contention.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield
