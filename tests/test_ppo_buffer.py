"""The recurrent rollout buffer: sequence cutting, padding, masking, stored states, minibatches."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from cfc_control.training.ppo.buffer import RecurrentSequenceBuffer, cut_sequences, group_sequences


def test_cut_sequences_hand_computed():
    # 6 steps, 2 envs. Env 0: an episode starts at t=3. Env 1: no start flagged (its rollout still
    # begins a sequence at t=0). Cut every 2 steps within an episode.
    starts = np.zeros((6, 2), dtype=np.float32)
    starts[0, 0] = 1
    starts[3, 0] = 1
    layout = cut_sequences(starts, seq_len=2)
    # flat index = env * n_steps + t: env 0 -> 0..5, env 1 -> 6..11
    expected = np.array([[0, 1], [2, -1], [3, 4], [5, -1], [6, 7], [8, 9], [10, 11]])
    np.testing.assert_array_equal(layout.index, expected)
    np.testing.assert_array_equal(layout.lengths, [2, 1, 2, 1, 2, 2, 2])
    np.testing.assert_array_equal(layout.first, [0, 2, 3, 5, 6, 8, 10])


def test_cut_sequences_restarts_the_chunk_count_at_each_episode():
    starts = np.zeros((7, 1))
    starts[2, 0] = 1
    layout = cut_sequences(starts, seq_len=3)
    # episode [0, 1] then episode [2..6] cut after 3 steps: [2, 3, 4], [5, 6]
    np.testing.assert_array_equal(layout.index, [[0, 1, -1], [2, 3, 4], [5, 6, -1]])


def test_cut_sequences_without_limit_gives_whole_episodes():
    starts = np.zeros((5, 2))
    starts[1, 1] = 1
    layout = cut_sequences(starts, seq_len=None)
    np.testing.assert_array_equal(layout.index, [[0, 1, 2, 3, 4], [5, -1, -1, -1, -1], [6, 7, 8, 9, -1]])


@pytest.mark.parametrize("bad", [0, -3])
def test_cut_sequences_rejects_bad_lengths(bad):
    with pytest.raises(ValueError, match="seq_len"):
        cut_sequences(np.zeros((4, 1)), seq_len=bad)
    with pytest.raises(ValueError, match="n_steps, n_envs"):
        cut_sequences(np.zeros(4))


def test_group_sequences_covers_every_sequence_once_in_batches_of_about_batch_size():
    lengths = np.array([4, 4, 1, 3, 4, 2, 4, 4, 2, 4])  # 32 steps
    order = np.random.default_rng(0).permutation(len(lengths))
    groups = group_sequences(lengths, batch_size=8, order=order)
    assert len(groups) == 4
    np.testing.assert_array_equal(np.sort(np.concatenate(groups)), np.arange(len(lengths)))
    np.testing.assert_array_equal(np.concatenate(groups), order)  # consecutive slices of the order
    assert all(4 <= lengths[g].sum() <= 12 for g in groups)


def _filled_buffer(seq_len=2):
    n_steps, n_envs, hidden = 5, 2, 3
    obs_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    act_space = spaces.Box(-1, 1, (1,), np.float32)
    templates = {"actor": (torch.zeros(n_envs, hidden),), "critic": (torch.zeros(n_envs, 4), torch.zeros(n_envs, 4))}
    buf = RecurrentSequenceBuffer(n_steps, obs_space, act_space, templates, n_envs=n_envs, seq_len=seq_len,
                                  gamma=0.9, gae_lambda=1.0)
    starts = np.zeros((n_steps, n_envs), dtype=bool)
    starts[0] = True
    starts[3, 1] = True
    for t in range(n_steps):
        code = np.array([t, 10 + t], dtype=np.float32)  # env e, step t -> 10 e + t
        obs = np.stack([code, code + 100], axis=1)
        states = {"actor": (torch.as_tensor(code)[:, None].repeat(1, hidden),),
                  "critic": (torch.as_tensor(code)[:, None].repeat(1, 4), -torch.as_tensor(code)[:, None].repeat(1, 4))}
        buf.add(obs, code[:, None] / 100, np.ones(n_envs, np.float32), starts[t], torch.as_tensor(code),
                torch.as_tensor(-code), states=states)
    buf.compute_returns_and_advantage(torch.zeros(n_envs), np.zeros(n_envs, dtype=bool))
    return buf


def test_batch_pads_masks_and_starts_from_the_stored_state():
    buf = _filled_buffer(seq_len=2)
    layout = cut_sequences(buf.episode_starts, 2)
    # env 0: [0,1] [2,3] [4]; env 1 (episode start at t=3): [0,1] [2] [3,4]
    np.testing.assert_array_equal(layout.lengths, [2, 2, 1, 2, 1, 2])
    batch = buf.batch(np.array([2, 3, 4]))  # env 0 t=4; env 1 t=0..1; env 1 t=2
    code = batch.observations[..., 0]
    np.testing.assert_array_equal(batch.mask.numpy(), [[1, 0], [1, 1], [1, 0]])
    np.testing.assert_array_equal((code * batch.mask).numpy(), [[4, 0], [10, 11], [12, 0]])
    np.testing.assert_array_equal(batch.observations[..., 1][batch.mask.bool()].numpy(), [104, 110, 111, 112])
    # each sequence starts from the state stored at its first step (the state before that step)
    (h_actor,) = batch.states["actor"]  # every state is a tuple, one tensor or two
    np.testing.assert_array_equal(h_actor[:, 0].numpy(), [4, 10, 12])
    h, c = batch.states["critic"]
    np.testing.assert_array_equal(h[:, 0].numpy(), [4, 10, 12])
    np.testing.assert_array_equal(c[:, 0].numpy(), [-4, -10, -12])
    # episode starts only at step 0, never on padding; old values/log-probs come along
    np.testing.assert_array_equal(batch.episode_starts.numpy(), [[False, False], [True, False], [False, False]])
    np.testing.assert_array_equal(batch.old_values[batch.mask.bool()].numpy(), [4, 10, 11, 12])
    np.testing.assert_array_equal(batch.old_log_prob[batch.mask.bool()].numpy(), [-4, -10, -11, -12])
    np.testing.assert_allclose(batch.actions[..., 0][batch.mask.bool()].numpy(), [0.04, 0.10, 0.11, 0.12])


def test_returns_do_not_leak_across_episode_starts():
    buf = _filled_buffer(seq_len=None)
    # reward 1 each step, gamma 0.9, lambda 1, bootstrap value 0 at the end: env 1's first
    # episode is t = 0..2, so its return at t = 2 is exactly 1 (the start at t = 3 cuts it).
    assert buf.returns[2, 1] == pytest.approx(1.0)
    assert buf.returns[1, 1] == pytest.approx(1.9)
    assert buf.returns[4, 0] == pytest.approx(1.0)


def test_minibatches_cover_the_rollout_once_per_pass():
    buf = _filled_buffer(seq_len=2)
    torch.manual_seed(1)
    seen = []
    for batch in buf.minibatches(batch_size=4):
        seen.extend(batch.observations[..., 1][batch.mask.bool()].tolist())
    assert sorted(seen) == sorted([100 + t for t in range(5)] + [110 + t for t in range(5)])


def test_add_rejects_states_of_the_wrong_kind():
    buf = _filled_buffer()
    buf.reset()
    obs = np.zeros((2, 2), np.float32)
    args = (obs, np.zeros((2, 1)), np.zeros(2), np.zeros(2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="needs the states"):
        buf.add(*args, states={"actor": (torch.zeros(2, 3),)})
    with pytest.raises(ValueError, match="has 1 tensors, the buffer stores 2"):
        buf.add(*args, states={"actor": (torch.zeros(2, 3),), "critic": (torch.zeros(2, 4),)})
    with pytest.raises(ValueError, match="must be a tuple of tensors"):  # a bare tensor is not a state tuple
        buf.add(*args, states={"actor": torch.zeros(2, 3), "critic": (torch.zeros(2, 4), torch.zeros(2, 4))})


def test_sequences_need_a_full_rollout():
    buf = _filled_buffer()
    buf.reset()
    with pytest.raises(RuntimeError, match="not full"):
        next(buf.minibatches(4))


def _gae_buffer(durations, rewards, values, starts, gamma=0.9, gae_lambda=0.8, last_values=(0.0,), dones=(False,)):
    """A one-env buffer filled with the given per-step arrays, its GAE computed."""
    n_steps = len(rewards)
    buf = RecurrentSequenceBuffer(n_steps, spaces.Box(-1, 1, (1,), np.float32), spaces.Box(-1, 1, (1,), np.float32),
                                  {"actor": (torch.zeros(1, 2),), "critic": (torch.zeros(1, 2),)},
                                  n_envs=1, gamma=gamma, gae_lambda=gae_lambda)
    for t in range(n_steps):
        buf.add(np.zeros((1, 1)), np.zeros((1, 1)), np.array([rewards[t]], np.float32), np.array([starts[t]]),
                torch.tensor([values[t]]), torch.zeros(1),
                states={"actor": (torch.zeros(1, 2),), "critic": (torch.zeros(1, 2),)},
                durations=None if durations is None else np.array([durations[t]]))
    buf.compute_returns_and_advantage(torch.tensor(last_values), np.array(dones))
    return buf


def test_gae_with_unit_durations_is_sb3s_gae():
    from stable_baselines3.common.buffers import RolloutBuffer

    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=6), rng.normal(size=6)
    starts = [True, False, False, True, False, False]
    ours = _gae_buffer(np.ones(6), rewards, values, starts, last_values=(0.7,))
    sb3 = RolloutBuffer(6, spaces.Box(-1, 1, (1,), np.float32), spaces.Box(-1, 1, (1,), np.float32),
                        n_envs=1, gamma=0.9, gae_lambda=0.8)
    for t in range(6):
        sb3.add(np.zeros((1, 1)), np.zeros((1, 1)), np.array([rewards[t]]), np.array([starts[t]]),
                torch.tensor([values[t]]), torch.zeros(1))
    sb3.compute_returns_and_advantage(torch.tensor([0.7]), np.array([False]))
    np.testing.assert_allclose(ours.advantages, sb3.advantages, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.returns, sb3.returns, rtol=1e-5, atol=1e-6)


def test_gae_discounts_per_unit_of_time():
    # With λ = 1 and zero values the return is the reward discounted by the time elapsed before
    # it: step k's reward counts γ ** (sum of the durations before k).
    durations = np.array([0.5, 2.0, 1.0, 0.25])
    rewards = np.array([1.0, 2.0, 3.0, 4.0])
    buf = _gae_buffer(durations, rewards, np.zeros(4), [True, False, False, False], gamma=0.9, gae_lambda=1.0)
    elapsed = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    expected = [sum(rewards[k] * 0.9 ** (elapsed[k] - elapsed[t]) for k in range(t, 4)) for t in range(4)]
    np.testing.assert_allclose(buf.returns[:, 0], expected, rtol=1e-5)
    # the bootstrap value after the last step is discounted by that step's duration, λ's trace too
    buf = _gae_buffer(durations, np.zeros(4), np.zeros(4), [True, False, False, False], gamma=0.9,
                      gae_lambda=0.5, last_values=(1.0,))
    assert buf.advantages[3, 0] == pytest.approx(0.9 ** 0.25, rel=1e-5)
    assert buf.advantages[2, 0] == pytest.approx((0.9 * 0.5) ** 1.0 * 0.9 ** 0.25, rel=1e-5)


@pytest.mark.parametrize("bad", [np.array([0.0]), np.array([-1.0]), np.array([np.nan]), np.array([1.0, 1.0])])
def test_add_rejects_durations_that_are_not_positive_per_env(bad):
    buf = _gae_buffer(None, [0.0], [0.0], [True])
    buf.reset()
    with pytest.raises(ValueError, match="durations must be 1 positive finite"):
        buf.add(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1), np.array([True]), torch.zeros(1), torch.zeros(1),
                states={"actor": (torch.zeros(1, 2),), "critic": (torch.zeros(1, 2),)}, durations=bad)
    assert buf.pos == 0  # nothing was stored
