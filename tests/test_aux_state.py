"""The auxiliary state estimate of imitation (``--aux-state C``): demonstrations record the full
observation the expert saw, a training-only head on the student's features learns to predict it,
and the policy that ships is the same kind of policy as without it."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from cfc_control import train
from cfc_control.episodes.demos import load_demos, save_demos
from cfc_control.models import registry
from cfc_control.models.base import as_states
from cfc_control.policies import load_policy
from cfc_control.tasks import make_env
from cfc_control.training.bc import BCConfig, BCTrainer
from cfc_control.training.collection import collect_demos
from cfc_control.training.policy_factory import make_policy

TASK = "InvertedPendulum-Pos-Irregular"


@pytest.fixture(scope="module")
def demos():
    return collect_demos(TASK, "lqr", 6, seed=3)


@pytest.mark.parametrize("name", registry.available())
def test_the_output_is_projected_from_the_features(name):
    torch.manual_seed(0)
    model = registry.make(name, 3, 2)
    x, t = torch.randn(4, 9, 3), torch.rand(4, 9) + 0.5
    starts = torch.zeros(4, 9, dtype=torch.bool)
    starts[1, 4] = True
    features, state = model.forward_features(x, None, t, starts)
    y, state_y = model(x, None, t, starts)
    assert features.shape == (4, 9, model.feature_size())
    torch.testing.assert_close(model.output_from_features(features), y)
    if name.startswith("ncp"):  # a wired model's features are its whole state, not only the motor neurons
        assert model.feature_size() == model.state_size > model.output_size
        torch.testing.assert_close(features[:, -1], as_states(state)[0])
    for a, b in zip(as_states(state), as_states(state_y)):
        torch.testing.assert_close(a, b)


def test_demonstrations_record_the_full_observation_of_each_step(demos, tmp_path):
    full = demos.full_observations
    assert full is not None and full.shape == (demos.n_steps, 4)  # InvertedPendulum: 2 positions, 2 velocities
    # the student's observation is the positions of the full one (before noise: none here)
    np.testing.assert_allclose(demos.observations, full[:, :2], atol=1e-6)
    assert np.abs(full[:, 2:]).max() > 0  # velocities are there
    path = save_demos(demos, tmp_path / "d.npz")
    again = load_demos(path)
    np.testing.assert_array_equal(again.full_observations, full)
    np.testing.assert_array_equal(demos.select([2, 0]).full_observations,
                                  np.concatenate([full[demos.episode_offsets[2]:demos.episode_offsets[3]],
                                                  full[:demos.episode_offsets[1]]]))
    assert demos.concat(demos).full_observations.shape == (2 * demos.n_steps, 4)


def test_demonstrations_without_them_still_load_and_concatenate(demos, tmp_path):
    older = demos.select(range(demos.n_episodes))
    older.full_observations = None
    path = save_demos(older, tmp_path / "old.npz")
    assert load_demos(path).full_observations is None
    assert demos.concat(older).full_observations is None and demos.concat(older).n_steps == 2 * demos.n_steps


def test_the_head_learns_the_velocities_the_student_does_not_see(demos):
    torch.manual_seed(0)
    env = make_env(TASK)
    policy = make_policy("cfc", env, task=TASK, units=16)
    env.close()
    train_set, val_set = demos.split(0.34, seed=0)
    trainer = BCTrainer(policy, train_set, val_set, BCConfig(epochs=12, window=16, burn_in=8, aux_state_coef=1.0))
    before = trainer.validation()["val_state_loss"]
    metrics = trainer.fit()
    assert metrics["val_state_loss"] < 0.5 * before and metrics["val_state_loss"] < 0.5
    assert set(trainer.head_tensors()) == {"state_head.weight", "state_head.bias"}
    # nothing of the head is in the policy: the same parameters as a policy trained without it
    plain = make_policy("cfc", make_env(TASK), task=TASK, units=16)
    assert list(policy.state_dict()) == list(plain.state_dict())


def test_the_head_needs_full_observations(demos):
    older = demos.select(range(demos.n_episodes))
    older.full_observations = None
    env = make_env(TASK)
    policy = make_policy("cfc", env, task=TASK, units=8)
    env.close()
    with pytest.raises(ValueError, match="full observations"):
        BCTrainer(policy, older, None, BCConfig(aux_state_coef=1.0))
    with pytest.raises(ValueError, match="aux_state_coef"):
        BCConfig(aux_state_coef=-1.0)


def test_a_bc_run_with_the_head_writes_an_ordinary_policy(tmp_path):
    out = tmp_path / "run"
    assert train.main(["--env", TASK, "--algo", "bc", "--model-kw", "units=8", "--episodes", "3", "--epochs", "2",
                       "--window", "16", "--burn-in", "8", "--aux-state", "0.5", "--eval-episodes", "0",
                       "--no-progress", "--no-tensorboard", "--out", str(out)]) == 0
    policy = load_policy(out / "policy")
    assert policy.n_obs == 2 and policy.model.output_size == 1
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "val_state_loss" in header


def _state_probe():
    spec = importlib.util.spec_from_file_location("state_probe", Path(__file__).parents[1] / "tools" / "state_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_state_probe_scores_what_is_linear_in_the_state_and_what_is_not():
    probe = _state_probe()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5))
    y = np.c_[x @ np.array([1.0, -2.0, 0.0, 0.5, 3.0]) + 0.7, rng.standard_normal(400)]
    r2 = probe.probe_r2(x, y)
    assert r2[0] > 0.999 and r2[1] < 0.05
    states, velocities, observations = probe.record("policies/cfc-invertedpendulum-pos-irregular", TASK, "Jitter", 1)
    # the pendulum balances the whole episode (8 s of periods drawn under Jitter)
    assert len(states) == len(velocities) == len(observations) > 900
    assert velocities.shape[1] == 2 and observations.shape[1] == 2
