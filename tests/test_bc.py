"""Behaviour cloning on sequences: windows, padding, masks and burn-in are right; training lowers
the held-out loss; the result is a policy directory that loads and balances the pendulum."""

import numpy as np
import pytest
import torch

from cfc_control.policies import ObsNormalizer, load_policy, save_policy
from cfc_control.tasks import make_env
from cfc_control.training.bc import BCConfig, BCTrainer, SequenceData, behaviour_clone, forward_batch
from cfc_control.training.collection import collect_demos
from cfc_control.training.policy_factory import make_policy
from cfc_control.episodes.closed_loop import run_episodes

TASK = "InvertedPendulum-Pos-Irregular"


@pytest.fixture(scope="module")
def demos():
    return collect_demos(TASK, "lqr", 6, seed=0, noise=0.1)


def _policy(name="cfc", **kw):
    env = make_env(TASK)
    return make_policy(name, env, task=TASK, **kw)


def test_windows_cover_every_step_once_and_mask_padding(demos):
    data = SequenceData(demos, _policy(units=8))
    windows = data.epoch_windows(32, np.random.default_rng(0))
    b = data.batch(windows, 32, 8)
    assert b.obs.shape == (len(windows), 40, 2) and b.mask.shape == (len(windows), 40)
    assert torch.all(b.mask[:, :8] == 0)  # burn-in is never in the loss
    # Every real step is trained on exactly once per epoch: count the masked-in targets per row.
    covered = np.zeros(demos.n_steps, dtype=int)
    idx = windows[:, :1] + np.arange(-8, 32)[None]
    np.add.at(covered, idx[b.mask.numpy() > 0], 1)
    assert np.all(covered == 1)
    # Padding before an episode keeps the state reset at the episode's first row.
    first = demos.episode_offsets[windows[:, 1]]
    rows, cols = np.nonzero(b.starts.numpy())
    np.testing.assert_array_equal(idx[rows, cols], first[rows])
    assert np.all(b.dt.numpy() > 0)


def test_burn_in_reproduces_the_full_episode_state(demos):
    policy = _policy(units=8)
    policy.set_normalizer(ObsNormalizer.fit(demos.observations))
    data = SequenceData(demos, policy)
    full = data.episodes_batch()
    with torch.no_grad():
        y_full, _ = policy(full.obs, full.dt, None, full.starts)
        # A window starting 20 steps into episode 1 with a 20-step burn-in (back to the episode
        # start) sees the same state as the whole-episode run; one without burn-in starts cold.
        lo = int(demos.episode_offsets[1])
        exact, _ = forward_batch(policy, data.batch(np.array([[lo + 20, 1]]), 16, 20))
        cold, _ = forward_batch(policy, data.batch(np.array([[lo + 20, 1]]), 16, 0))
    np.testing.assert_allclose(exact[0].numpy(), y_full[1, 20:36].numpy(), atol=1e-5)
    assert abs(float(cold[0, 0, 0] - y_full[1, 20, 0])) > 1e-3


def test_bc_lowers_validation_loss_and_saves_a_loadable_policy(tmp_path, demos):
    policy = _policy(units=16)
    train, val = demos.split(0.2, seed=0)
    trainer = BCTrainer(policy, train, val, BCConfig(epochs=4, window=16, burn_in=16, batch_size=16))
    before = trainer.validate()
    seen = []
    trainer.fit(seen.append)
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4]
    assert seen[-1]["val_loss"] < 0.5 * before
    # The normaliser was fitted on the training episodes and travels with the policy.
    np.testing.assert_allclose(policy.obs_normalizer.mean, train.observations.mean(0), rtol=1e-5, atol=1e-8)
    save_policy(policy, tmp_path)
    loaded = load_policy(tmp_path)
    np.testing.assert_allclose(loaded.obs_normalizer.std, policy.obs_normalizer.std)
    obs = torch.as_tensor(val.observations[None, :50])
    dt = torch.as_tensor(val.dt[None, :50], dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(obs, dt)[0].numpy(), policy(obs, dt)[0].numpy(), atol=1e-6)


def test_bc_policy_balances_where_the_untrained_one_falls(demos):
    torch.manual_seed(1)
    policy = _policy(units=32)
    envs = lambda: make_env(TASK)  # noqa: E731
    untrained = run_episodes(envs, [10**9, 10**9 + 1], policy=policy).returns
    behaviour_clone(policy, demos, BCConfig(epochs=6))
    trained = run_episodes(envs, [10**9, 10**9 + 1], policy=policy).returns
    assert untrained.max() < 200
    assert trained.min() > 950


def test_bad_config_and_mismatched_demos(demos):
    with pytest.raises(ValueError, match="window"):
        BCConfig(window=0)
    with pytest.raises(ValueError, match="val_fraction"):
        BCConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="period_weight"):
        BCConfig(period_weight=float("nan"))
    other = make_policy("mlp", make_env("InvertedPendulum-Full-Fixed"))
    with pytest.raises(ValueError, match="demonstrations have 2 observations"):
        SequenceData(demos, other)
