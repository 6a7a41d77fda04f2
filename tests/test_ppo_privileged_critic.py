"""PPO with a privileged critic (``critic_input="full"``): the critic values each state from the
env's full observation, which the deployed actor never sees."""

import numpy as np
import pytest
import torch

from cfc_control.policies import load_policy
from cfc_control.training.ppo import PPOConfig, SequencePPO, config_for, make_task_vec_env
from ppo_rollout import one_rollout

TASK = "InvertedPendulum-Pos-Irregular"  # observes 2 positions; the full observation has 4 channels


def _config(**kw):
    return config_for(TASK, {"n_envs": 2, "n_steps": 32, "seq_len": 8, "batch_size": 64, "n_epochs": 2,
                             "normalize_reward": False, "critic_input": "full", **kw})


def _rollout(algo):
    return one_rollout(algo)[0]


@pytest.mark.parametrize("kernel", ["torch", "numpy"])
@pytest.mark.parametrize("model", ["cfc", "lstm"])
def test_the_update_values_each_step_from_the_full_observation_the_rollout_used(model, kernel):
    algo = SequencePPO(TASK, model, _config(rollout_kernel=kernel), model_kw={"units": 8}, seed=0)
    assert algo.policy.privileged and algo.policy.critic.input_size == 4
    assert algo.policy.actor.model.input_size == 2  # the actor still sees positions only
    algo.policy.set_critic_normalizer(algo.policy.critic_normalizer.__class__(
        np.array([0.0, 0.1, 0.0, -0.2]), np.array([0.5, 0.2, 1.0, 2.0])))  # not the identity
    buffer = _rollout(algo)
    batch = next(buffer.minibatches(10_000))
    evaluation = algo.policy.evaluate(batch.observations, batch.actions, batch.episode_starts,
                                      batch.states["actor"], batch.states["critic"], batch.full_observations)
    real = batch.mask.bool()
    torch.testing.assert_close(evaluation.values[real], batch.old_values[real], atol=1e-5, rtol=0)
    # and the velocities matter to it: the same sequences with the velocities zeroed value otherwise
    blind = batch.full_observations.clone()
    blind[..., 2:] = 0
    other = algo.policy.evaluate(batch.observations, batch.actions, batch.episode_starts,
                                 batch.states["actor"], batch.states["critic"], blind)
    assert (other.values[real] - evaluation.values[real]).abs().max() > 1e-4


def test_an_episodes_end_reports_its_full_observation_for_the_bootstrap():
    vec = make_task_vec_env(TASK, 2)
    vec.seed(0)
    vec.reset()
    for _ in range(2000):
        _, _, dones, infos = vec.step(np.ones((2, 1), dtype=np.float32) * 3.0)  # pushed over: falls fast
        if dones.any():
            info = infos[int(np.flatnonzero(dones)[0])]
            full = info["terminal_full_observation"]
            assert full.shape == (4,)
            np.testing.assert_allclose(full[:2], info["terminal_observation"][:2], atol=1e-6)
            return
    pytest.fail("no episode ended")


def test_the_critics_statistics_follow_the_rollouts_and_are_saved_with_the_training_state(tmp_path):
    algo = SequencePPO(TASK, "cfc", _config(), model_kw={"units": 8}, seed=0)
    algo.learn(128)
    stats = algo.policy.critic_normalizer
    assert stats.count == 128 and not np.allclose(stats.std, 1.0)
    algo.save_policy(tmp_path / "policy")
    algo.save_state(tmp_path / "state")
    restored = SequencePPO(TASK, load_policy(tmp_path / "policy"), algo.config, seed=3)
    restored.load_state(tmp_path / "state")
    np.testing.assert_allclose(restored.policy.critic_normalizer.mean, stats.mean)
    torch.testing.assert_close(restored.policy.critic_std, algo.policy.critic_std)
    plain = SequencePPO(TASK, load_policy(tmp_path / "policy"), _config(critic_input="observation"), seed=3)
    with pytest.raises(ValueError, match="critic"):
        plain.load_state(tmp_path / "state")


def test_critic_input_is_checked():
    with pytest.raises(ValueError, match="critic_input must be 'observation' or 'full'"):
        PPOConfig(critic_input="state")
