"""The time-blind ablation (``--policy cfc-blind``): the same model with its time input held at the
nominal period, in training, the policy, the runner's kernels, the C step and the exports."""

import json

import numpy as np
import pytest
import torch

from cfc_control.policies import load_policy, save_policy
from cfc_control.policies.names import parse_policy_name, policy_names
from cfc_control.policies.time_input import TimeInput
from cfc_control import PolicyRunner
from cfc_control.runtime.c_export.build import find_compiler
from cfc_control.training import RunConfig, RunOptions, train
from cfc_control.training.run_config import EvaluationConfig, ImitationConfig


def blind(policy):
    policy.time_input.blind = True
    return policy


def test_the_model_time_is_one_whatever_the_period():
    time = TimeInput.around(0.04)
    time.blind = True
    dt = np.array([0.005, 0.04, 0.2, 1.0])
    assert torch.equal(time.model_time(torch.tensor(dt)), torch.ones(4, dtype=torch.float64))
    out = np.empty(4)
    assert np.array_equal(time.model_time_array(dt.copy(), out), np.ones(4))
    assert time.model_time_scalar(0.3) == 1.0
    below, above = time.outside(dt)  # periods outside the range are still seen and counted
    assert below.tolist() == [True, False, False, False] and above.tolist() == [False, False, True, True]


def test_names_and_config_round_trip(tmp_path, make_policy):
    assert parse_policy_name("cfc-blind") == ("cfc", True) and parse_policy_name("ncp") == ("ncp", False)
    assert "lstm-blind" in policy_names()
    with pytest.raises(ValueError, match="transformer-blind"):
        parse_policy_name("transformer-blind")
    save_policy(blind(make_policy("cfc", units=8)), tmp_path / "p")
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg["policy"]["time"]["blind"] is True
    assert load_policy(tmp_path / "p").time_input.blind
    cfg["policy"]["time"]["blind"] = "yes"
    (tmp_path / "p" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="blind"):
        TimeInput.from_config(cfg["policy"]["time"])


def _actions(runner, obs, dts):
    runner.reset()
    return np.stack([runner.step(o, dt) for o, dt in zip(obs, dts)])


@pytest.mark.parametrize("backend", ["numpy", "torch", "c"])
def test_a_blind_policy_acts_the_same_whatever_the_period_and_a_seeing_one_does_not(backend, make_policy):
    if backend == "c" and find_compiler() is None:
        pytest.skip("no C compiler")
    obs = np.random.default_rng(0).normal(size=(20, 4))
    short, long = np.full(20, 0.02), np.full(20, 0.08)
    seeing = PolicyRunner(make_policy("cfc", units=8), backend=backend)
    assert not np.allclose(_actions(seeing, obs, short), _actions(seeing, obs, long))
    blind_runner = PolicyRunner(blind(make_policy("cfc", units=8)), backend=backend)
    np.testing.assert_array_equal(_actions(blind_runner, obs, short), _actions(blind_runner, obs, long))
    # ... and it acts as the seeing policy does at the nominal period
    np.testing.assert_allclose(_actions(blind_runner, obs, short), _actions(seeing, obs, np.full(20, 0.04)),
                               rtol=1e-9, atol=1e-9)


def test_training_a_blind_policy_records_it(tmp_path):
    config = RunConfig(env="InvertedPendulum-Pos-Irregular", algo="bc", policy="cfc-blind", out=str(tmp_path / "run"),
                       model_kw={"units": 8}, imitation=ImitationConfig(episodes=2, epochs=1, window=16, burn_in=8),
                       evaluation=EvaluationConfig(episodes=0))
    outcome = train(config, RunOptions(progress=False, tensorboard=False))
    policy = load_policy(outcome.policy_dir)
    assert policy.time_input.blind and policy.model_name == "cfc-blind"


def test_the_onnx_export_of_a_blind_policy_ignores_the_period(make_policy, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from cfc_control.runtime.export import export_onnx

    path = export_onnx(blind(make_policy("cfc", units=8)), tmp_path / "p.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    obs = np.random.default_rng(1).normal(size=(1, 4)).astype(np.float32)
    state = {i.name: np.full((1, i.shape[1]), 0.3, np.float32) for i in inputs[2:]}
    short, long = (sess.run(None, {"obs": obs, "dt": np.array([[dt]], np.float32), **state})[0] for dt in (0.01, 0.15))
    np.testing.assert_array_equal(short, long)
