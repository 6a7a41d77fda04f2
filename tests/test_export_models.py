"""Exports of the models and trained policies tests/test_export.py does not cover (GRU, LTC,
cfc-pure, cfc-nogate; shipped trained policies), against the torch policy as oracle: TorchScript
and ONNX (onnxruntime) over rollouts with Δt inside and outside the accepted range."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cfc_control.policies import load_policy
from cfc_control.runtime.export import export_onnx, export_torchscript
from oracles import torch_actions

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

SHIPPED = Path(__file__).resolve().parents[1] / "policies"
TRAINED = ["cfc-invertedpendulum-pos-irregular", "ncp-dagger-halfcheetah-pos-jitter", "cfc-ppo-hopper-pos-jitter",
           "ncp-ppo-walker2d-pos-jitter"]
RANDOM = [("gru", dict(units=12)), ("ltc", dict(units=8)), ("cfc-pure", dict(units=12, backbone_units=16)),
          ("cfc-nogate", dict(units=12, backbone_units=16))]


def _rollout(policy, steps, batch, seed):
    """Observations spread around the policy's normalisation statistics (1.5x its std), and Δt
    from 0.1x to 10x nominal (a third outside [dt_min, dt_max])."""
    rng = np.random.default_rng(seed)
    norm = policy.obs_normalizer
    obs = norm.mean + 1.5 * norm.std * rng.normal(size=(steps, batch, policy.n_obs))
    dt = policy.time_input.nominal_dt * np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=(steps, batch)))
    return obs.astype(np.float32), dt.astype(np.float32)


def _onnx_actions(path, obs, dt):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    state = {i.name: np.zeros((obs.shape[1], i.shape[1]), np.float32) for i in inputs[2:]}
    actions = []
    for o, d in zip(obs, dt):
        out = sess.run(None, {"obs": o, "dt": d[:, None], **state})
        actions.append(out[0])
        state = {i.name: s for i, s in zip(inputs[2:], out[1:])}
    return np.stack(actions)


def _check_exports(policy, tmp_path, steps, atol):
    obs, dt = _rollout(policy, steps, 3, seed=0)
    want = torch_actions(policy, obs, dt)
    module = torch.jit.load(str(export_torchscript(policy, tmp_path / "p.pt")))
    with torch.no_grad():
        got = np.stack([module(torch.as_tensor(o), torch.as_tensor(d)).numpy() for o, d in zip(obs, dt)])
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_onnx(policy, tmp_path / "p.onnx")
    np.testing.assert_allclose(_onnx_actions(path, obs, dt), want, atol=atol, rtol=0)
    low, high = policy.action_mapping.low, policy.action_mapping.high
    assert np.all(got >= low - 1e-6) and np.all(got <= high + 1e-6)


@pytest.mark.parametrize("name,kw", RANDOM, ids=[n for n, _ in RANDOM])
def test_exports_of_every_model_kind_equal_the_torch_policy(make_policy, tmp_path, name, kw):
    _check_exports(make_policy(name, n_obs=5, n_act=3, **kw), tmp_path, steps=150, atol=1e-5)


@pytest.mark.parametrize("name", TRAINED)
def test_exports_of_trained_policies_equal_the_torch_policy(tmp_path, name):
    """Trained weights (larger, saturating gates, real normalisation) rather than random ones."""
    _check_exports(load_policy(SHIPPED / name), tmp_path, steps=300, atol=2e-5)
