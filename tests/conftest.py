"""Shared test set-up: headless rendering and small, reproducible torch runs."""

import os

# MuJoCo must pick its GL backend before it is first imported: EGL renders offscreen on these
# CPU-only machines (Mesa llvmpipe).
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores are shared by the whole suite; more threads only add contention.
torch.set_num_threads(1)

# Property tests draw new examples on every run here; under CI they replay a fixed sequence, so a
# red CI run is one that fails again, not a new example found by chance.
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True)
    if os.environ.get("CI"):
        _hypothesis_settings.load_profile("ci")
except ImportError:  # hypothesis is in the test extra; without it the property tests are skipped
    pass

# ci_optional: under CI=true a failed pytest.importorskip fails instead of skipping.
pytest_plugins = ["pytester", "ci_optional"]


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture
def make_policy():
    """A factory of small random-weight policies for runtime tests:
    ``make_policy(name="cfc", n_obs=4, n_act=2, nominal_dt=0.04, directory=None, seed=0, **model_kw)``
    returns a RecurrentPolicy (eval mode) with non-trivial normalisation and action bounds, saved
    to ``directory`` with ``save_policy`` when given."""
    import numpy as np

    from cfc_control.models import make
    from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput, save_policy

    def build(name="cfc", n_obs=4, n_act=2, nominal_dt=0.04, directory=None, seed=0, **model_kw):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = make(name, n_obs, n_act, **model_kw)
        norm = ObsNormalizer(rng.normal(size=n_obs), rng.uniform(0.5, 2.0, n_obs), clip=5.0)
        low = -rng.uniform(0.5, 2.0, n_act)
        actions = ActionMapping(low, low + rng.uniform(1.0, 3.0, n_act))
        policy = RecurrentPolicy(model, norm, actions, TimeInput.around(nominal_dt), task="test", model_name=name).eval()
        if directory is not None:
            save_policy(policy, directory)
        return policy

    return build
