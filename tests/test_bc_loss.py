"""The behaviour-cloning loss against an oracle that does not use the trainer's windows, padding or
mask: for every window, the policy is run over the episode's own rows from where the window's
state starts, and the normalised squared error is averaged over the window's real steps only
(no padding, no burn-in). Episodes of unequal length (an LQR expert with heavy action noise falls
after 3-17 steps), so windows are padded on both sides."""

import numpy as np
import pytest
import torch

from cfc_control.tasks import make_env
from cfc_control.training.bc import BCConfig, BCTrainer, masked_nmse
from cfc_control.training.collection import collect_demos
from cfc_control.training.policy_factory import make_policy

TASK = "InvertedPendulum-Pos-Irregular"


@pytest.fixture(scope="module")
def demos():
    d = collect_demos(TASK, "lqr", 8, seed=0, noise=1.0)
    assert len(set(np.diff(d.episode_offsets))) > 3  # unequal lengths: padding is exercised
    return d


def _trainer(demos, val=None, **config):
    policy = make_policy("cfc", make_env(TASK), task=TASK, units=8)
    return BCTrainer(policy, demos, val, BCConfig(**config))


def _oracle_inv_var(demos, policy):
    m = policy.action_mapping
    target = (demos.actions - (m.high + m.low) / 2) / ((m.high - m.low) / 2)
    return target, 1.0 / np.maximum(target.var(axis=0), 1e-4)


@torch.no_grad()
def _oracle_loss(policy, demos, windows, window, burn_in, target, inv_var, weight=None):
    """Mean over the windows' real steps of sum_d (y - target)_d^2 inv_var_d / n_act, each window's
    outputs from the policy run over its episode's rows from max(start - burn_in, episode start);
    ``weight``: each row's weight in that mean (None: rows alike)."""
    offsets = demos.episode_offsets
    weight = np.ones(demos.n_steps) if weight is None else weight
    errors, weights = [], []
    for start, episode in windows:
        first, last = int(offsets[episode]), int(offsets[episode + 1])
        r0, lo, hi = max(start - burn_in, first), max(start, first), min(start + window, last)
        if hi <= lo:
            continue
        obs = torch.as_tensor(demos.observations[r0:hi][None], dtype=torch.float32)
        dt = torch.as_tensor(demos.dt[r0:hi][None], dtype=torch.float32)
        y, _ = policy(obs, dt)
        err = (y[0, lo - r0:].double().numpy() - target[lo:hi]) ** 2 * inv_var
        errors.append(err.mean(axis=1))
        weights.append(weight[lo:hi])
    return float(np.average(np.concatenate(errors), weights=np.concatenate(weights)))


@pytest.mark.parametrize("burn_in", [0, 1, 4])
def test_training_loss_counts_only_real_steps_of_each_window(demos, burn_in):
    """Kills the mutation "the BC loss ignores its mask" (padding and burn-in enter the loss),
    in masked_nmse or in what train_epoch passes it; and a burn-in that is skipped or cut short."""
    window = 6
    trainer = _trainer(demos, window=window, burn_in=burn_in, batch_size=10_000, epochs=1)
    rng = np.random.default_rng()
    rng.bit_generator.state = trainer.rng.bit_generator.state  # the windows train_epoch will draw
    windows = trainer.train_data.epoch_windows(window, rng)
    assert (windows[:, 0] - burn_in < demos.episode_offsets[windows[:, 1]]).any()  # left padding
    assert (windows[:, 0] + window > demos.episode_offsets[windows[:, 1] + 1]).any()  # right padding
    target, inv_var = _oracle_inv_var(demos, trainer.policy)
    trainer.policy.train()
    want = _oracle_loss(trainer.policy, demos, windows, window, burn_in, target, inv_var)
    got = trainer.train_epoch()  # one update: the loss it reports is the loss before the step
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_period_weight_weighs_each_step_by_its_period(demos, power):
    """With period_weight p each real step counts (dt / nominal)^p: under Irregular timing (periods
    0.5x-2x) a step of a 2x period weighs 2^p times one of the nominal period."""
    window, burn_in = 6, 2
    trainer = _trainer(demos, window=window, burn_in=burn_in, batch_size=10_000, epochs=1, period_weight=power)
    rng = np.random.default_rng()
    rng.bit_generator.state = trainer.rng.bit_generator.state
    windows = trainer.train_data.epoch_windows(window, rng)
    target, inv_var = _oracle_inv_var(demos, trainer.policy)
    weight = (demos.dt / trainer.policy.time_input.nominal_dt) ** power
    assert weight.max() / weight.min() > 2.0 ** power  # the periods vary enough to tell weighted from not
    trainer.policy.train()
    want = _oracle_loss(trainer.policy, demos, windows, window, burn_in, target, inv_var, weight)
    unweighted = _oracle_loss(trainer.policy, demos, windows, window, burn_in, target, inv_var)
    assert want != pytest.approx(unweighted, rel=1e-3)
    assert trainer.train_epoch() == pytest.approx(want, rel=1e-5)


def test_validation_loss_counts_only_real_steps_of_each_episode(demos):
    train, val = demos.split(0.5, seed=0)
    trainer = _trainer(train, val)
    target, inv_var = _oracle_inv_var(train, trainer.policy)
    target_val = (val.actions - trainer.policy.action_mapping.center) / trainer.policy.action_mapping.half_range
    episodes = np.stack([val.episode_offsets[:-1], np.arange(val.n_episodes)], axis=1)
    longest = int(np.diff(val.episode_offsets).max())
    assert len(set(np.diff(val.episode_offsets))) > 1  # the batch is right-padded
    trainer.policy.eval()
    want = _oracle_loss(trainer.policy, val, episodes, longest, 0, target_val, inv_var)
    assert trainer.validate() == pytest.approx(want, rel=1e-5)


def test_masked_nmse_ignores_what_the_mask_excludes():
    rng = torch.Generator().manual_seed(0)
    y, target = torch.randn(3, 7, 2, generator=rng), torch.randn(3, 7, 2, generator=rng)
    mask = (torch.rand(3, 7, generator=rng) > 0.4).float()
    inv_var = torch.tensor([1.0, 4.0])
    want = float((((y - target) ** 2 * inv_var).mean(-1))[mask > 0].mean())
    assert float(masked_nmse(y, target, mask, inv_var)) == pytest.approx(want, rel=1e-6)
    garbage = torch.where(mask[..., None] > 0, y, torch.full_like(y, 1e6))
    assert float(masked_nmse(garbage, target, mask, inv_var)) == pytest.approx(want, rel=1e-6)
    assert float(masked_nmse(y, target, torch.zeros(3, 7), inv_var)) == 0.0
    one = torch.zeros(3, 7)
    one[1, 4] = 1.0  # a single real step: the loss is that step's error
    only = float((((y - target) ** 2 * inv_var).mean(-1))[1, 4])
    assert float(masked_nmse(y, target, one, inv_var)) == pytest.approx(only, rel=1e-6)
