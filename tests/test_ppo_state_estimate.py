"""PPO with the auxiliary state estimate (``aux_state_coef``): every rollout step labelled with
the env's full observation, and a head on the actor's features learning to estimate it."""

import numpy as np
import pytest
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from cfc_control.policies import load_policy
from cfc_control.training.ppo import PPOConfig, SequencePPO, config_for
from cfc_control.training.ppo.loss import minibatch_loss
from ppo_toy_env import CueEnv
from ppo_rollout import one_rollout

TASK = "InvertedPendulum-Pos-Irregular"  # observes 2 positions; the full observation has 4 channels


def _algo(aux_state_coef=1.0, model="cfc", **kw):
    config = config_for(TASK, {"n_envs": 2, "n_steps": 16, "seq_len": 8, "batch_size": 32, "n_epochs": 4,
                               "normalize_reward": False, "aux_state_coef": aux_state_coef, **kw})
    return SequencePPO(TASK, model, config, model_kw={"units": 8}, seed=0)


def _rollout(algo):  # the buffer, and the full observations the first step shows
    return one_rollout(algo, lambda a: np.stack([env.unwrapped._get_obs() for env in a._env_copies()]))


def test_every_rollout_step_is_labelled_with_the_full_observation_of_its_state():
    algo = _algo()
    buffer, first = _rollout(algo)
    assert buffer.full_observations.shape == (16, 2, 4)
    np.testing.assert_allclose(buffer.full_observations[0], first, atol=1e-6)
    # the positions the actor saw are the first channels of the label of the same step
    np.testing.assert_allclose(buffer.full_observations[..., :2], buffer.observations[..., :2], atol=1e-5)
    assert len(np.unique(buffer.full_observations[:, 0, 2])) > 8  # velocities, one per state
    batch = next(buffer.minibatches(10_000))
    targets = batch.state_targets[batch.mask.bool()]
    assert targets.shape[-1] == 4
    torch.testing.assert_close(targets.mean(0), torch.zeros(4), atol=1e-4, rtol=0)  # standardised


@pytest.mark.parametrize("model", ["cfc", "ncp", "lstm"])
def test_the_state_term_teaches_the_head_to_estimate_the_full_observation(model):
    algo = _algo(aux_state_coef=50.0, model=model, learning_rate=1e-2, n_epochs=60, target_kl=100.0)
    buffer, _ = _rollout(algo)
    batch = next(buffer.minibatches(10_000))
    with torch.no_grad():
        before = minibatch_loss(algo.policy, batch, algo.config).state.item()
    algo.iteration = 1  # as learn() counts it before the update
    algo.train()
    with torch.no_grad():
        after = minibatch_loss(algo.policy, batch, algo.config).state.item()
    assert after < 0.5 * before


def test_without_the_term_there_is_no_head_and_no_label():
    algo = _algo(aux_state_coef=0.0)
    buffer, _ = _rollout(algo)
    assert algo.policy.state_head is None and buffer.full_observations is None
    assert minibatch_loss(algo.policy, next(buffer.minibatches(64)), algo.config).state is None


def test_the_head_is_saved_with_the_training_state_and_not_with_the_policy(tmp_path):
    algo = _algo()
    algo.learn(64)
    algo.save_policy(tmp_path / "policy")
    algo.save_state(tmp_path / "state")
    policy = load_policy(tmp_path / "policy")
    assert not any("state_head" in k for k in policy.state_dict())
    restored = SequencePPO(TASK, policy, algo.config, seed=3)
    restored.load_state(tmp_path / "state")
    torch.testing.assert_close(restored.policy.state_head.weight, algo.policy.state_head.weight)
    plain = SequencePPO(TASK, load_policy(tmp_path / "policy"), PPOConfig(**{**algo.config.to_dict(),
                                                                            "aux_state_coef": 0.0}), seed=3)
    with pytest.raises(ValueError, match="state head"):
        plain.load_state(tmp_path / "state")


def test_the_state_estimate_needs_mujoco_envs_and_a_non_negative_weight():
    with pytest.raises(ValueError, match="aux_state_coef must be >= 0"):
        _algo(aux_state_coef=-1.0)
    cue = DummyVecEnv([lambda: Monitor(CueEnv()) for _ in range(2)])
    config = PPOConfig(n_envs=2, n_steps=8, batch_size=16, aux_state_coef=1.0)
    with pytest.raises(ValueError, match="MuJoCo envs"):
        SequencePPO(cue, "cfc", config, model_kw={"units": 8}, seed=0)
