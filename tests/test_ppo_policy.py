"""The PPO actor-critic: Gaussian, Δt channel, stepping vs sequences, SB3's predict contract."""

import math

import numpy as np
import pytest
import torch

from cfc_control.models.registry import make
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput
from cfc_control.training.ppo.actor_critic import ActorCritic, shrink_output_layer

N_OBS, N_ACT, NOMINAL = 3, 2, 0.05


def _actor(name="cfc", **kw):
    normalizer = ObsNormalizer(np.array([1.0, -1.0, 0.5]), np.array([2.0, 0.5, 1.0]), clip=10.0)
    return RecurrentPolicy(make(name, N_OBS, N_ACT, **kw), normalizer,
                           ActionMapping(np.array([-2.0, 0.0]), np.array([2.0, 1.0])),
                           TimeInput.around(NOMINAL), task=None, model_name=name)


def _obs(batch, steps=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, N_OBS + 1) if steps is None else (batch, steps, N_OBS + 1)
    obs = torch.randn(shape, generator=g)
    obs[..., -1] = torch.rand(shape[:-1], generator=g) * 1.5 + 0.5  # Δt / nominal in [0.5, 2]
    return obs


def test_log_prob_and_entropy_are_the_diagonal_gaussians():
    ac = ActorCritic.build(_actor(units=8), log_std_init=-0.7)
    with torch.no_grad():
        ac.log_std.copy_(torch.tensor([-0.7, 0.3]))
    mean, actions = torch.randn(5, N_ACT), torch.randn(5, N_ACT)
    ref = torch.distributions.Normal(mean, torch.exp(ac.log_std))
    torch.testing.assert_close(ac.log_prob(actions, mean), ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(ac.entropy(), ref.entropy().sum(-1)[0])


def test_dt_channel_reaches_the_model_time_and_not_the_normaliser():
    ac = ActorCritic.build(_actor(units=8))
    obs = _obs(4)
    x, t = ac.features(obs)
    torch.testing.assert_close(x, ac.actor.normalize_obs(obs[:, :N_OBS]))
    torch.testing.assert_close(t, obs[:, -1].clamp(0.25, 4.0))  # Δt / nominal, in the accepted range
    faster = obs.clone()
    faster[:, -1] = 0.5
    x2, t2 = ac.features(faster)
    torch.testing.assert_close(x2, x)
    assert torch.all(t2 == 0.5)


def test_observations_of_the_wrong_width_are_rejected():
    ac = ActorCritic.build(_actor(units=8))
    with pytest.raises(ValueError, match=r"3 \+ the Δt channel = 4 features"):
        ac.features(torch.zeros(2, N_OBS))
    no_dt = ActorCritic.build(_actor(units=8), dt_channel=False)
    x, t = no_dt.features(torch.zeros(2, N_OBS))
    assert torch.all(t == 1.0)


@pytest.mark.parametrize("name", ["cfc", "cfc-mm", "lstm", "mlp", "ncp"])
def test_stepping_a_rollout_gives_what_the_sequence_update_computes(name):
    kw = {"units": 12} if name != "mlp" else {"units": 8}
    ac = ActorCritic.build(_actor(name, **kw))
    steps, batch = 9, 3
    obs = _obs(batch, steps)
    starts = torch.zeros(batch, steps, dtype=torch.bool)
    starts[:, 0] = True
    starts[1, 4] = True  # an episode ends inside the sequence of env 1
    actor_state, critic_state = ac.initial_states(batch)
    values, log_probs, actions = [], [], []
    torch.manual_seed(3)
    for t in range(steps):
        a, v, lp, actor_state, critic_state = ac.act(obs[:, t], actor_state, critic_state, starts[:, t])
        actions.append(a), values.append(v), log_probs.append(lp)
    h0_actor, h0_critic = ac.initial_states(batch)
    v_seq, lp_seq, *_ = ac.evaluate(obs, torch.stack(actions, 1), starts, h0_actor, h0_critic)
    torch.testing.assert_close(v_seq, torch.stack(values, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp_seq, torch.stack(log_probs, 1), atol=1e-4, rtol=1e-5)


def test_period_scaled_noise_is_wider_at_short_periods_and_the_update_sees_the_same_gaussian():
    """noise_period_power p: the std of a step whose period is r times the nominal one is
    exp(log_std) * r ** -p, in the samples the rollout draws and in the log-probability and
    entropy the update computes from the stored observations."""
    ac = ActorCritic.build(_actor(units=8), log_std_init=-1.0, noise_period_power=0.5)
    n = 20000
    obs = _obs(n)
    obs[: n // 2, -1], obs[n // 2:, -1] = 0.5, 2.0
    starts = torch.ones(n, dtype=torch.bool)
    torch.manual_seed(0)
    action, _, log_prob, *_ = ac.act(obs, *ac.initial_states(n), starts)
    mean, *_ = ac.act(obs, *ac.initial_states(n), starts, deterministic=True)
    spread = torch.stack([(action - mean)[: n // 2].std(), (action - mean)[n // 2:].std()])
    want = math.exp(-1.0) * torch.tensor([0.5 ** -0.5, 2.0 ** -0.5])
    torch.testing.assert_close(spread, want, rtol=0.03, atol=0.0)
    std = math.exp(-1.0) * obs[:, -1:] ** -0.5
    ref = torch.distributions.Normal(mean, std.expand_as(mean))
    torch.testing.assert_close(log_prob, ref.log_prob(action).sum(-1), rtol=1e-4, atol=1e-4)
    seq = ac.evaluate(obs[:, None], action[:, None], starts[:, None], *ac.initial_states(n))
    torch.testing.assert_close(seq.log_prob[:, 0], log_prob, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(seq.entropy, ref.entropy().sum(-1).mean(), rtol=1e-4, atol=1e-4)
    plain = ActorCritic.build(_actor(units=8), log_std_init=-1.0)
    assert plain.log_noise_scale(obs) is None  # p = 0: one std at every period, as before


def test_critic_of_the_same_kind_and_size_by_default():
    ac = ActorCritic.build(_actor("cfc", units=10, backbone_layers=0, activation="silu"))
    assert type(ac.critic).__name__ == "CfC" and ac.critic.state_size == 10 and ac.critic.output_size == 1
    assert ac.critic.config["backbone_layers"] == 0 and ac.critic.config["activation"] == "silu"
    mm = ActorCritic.build(_actor("cfc-mm", units=6))
    assert mm.critic.mixed_memory and mm.critic.state_size == 6
    mlp = ActorCritic.build(_actor("mlp", hidden=(7, 5)))
    assert mlp.critic.hidden == [7, 5]
    other = ActorCritic.build(_actor("cfc", units=10), critic="gru", critic_kw={"units": 6})
    assert type(other.critic).__name__ == "GRU" and other.critic.state_size == 6
    with pytest.raises(ValueError, match="critic must map 3 inputs to 1 value"):
        ActorCritic(_actor(units=8), make("gru", N_OBS, 2))


def test_predict_follows_sb3s_recurrent_contract_and_matches_the_runtime_policy():
    ac = ActorCritic.build(_actor("cfc-mm", units=8))
    obs = _obs(2, 6).numpy()
    state, runtime_state = None, None
    start = np.ones(2, dtype=bool)
    for t in range(6):
        action, state = ac.predict(obs[:, t], state, start, deterministic=True)
        expected, runtime_state = ac.actor.predict(obs[:, t], runtime_state, start)
        start = np.zeros(2, dtype=bool)
        assert action.shape == (2, N_ACT) and isinstance(state, tuple) and len(state) == 2
        np.testing.assert_allclose(action, expected, atol=1e-6)
        assert np.all(action >= [-2.0, 0.0]) and np.all(action <= [2.0, 1.0])
    single, _ = ac.predict(obs[0, 0], None, None, deterministic=True)
    assert single.shape == (N_ACT,)
    torch.manual_seed(0)
    sampled = [ac.predict(obs[:, 0], None, None, deterministic=False)[0] for _ in range(3)]
    assert not np.allclose(sampled[0], sampled[1])


def test_predict_resets_only_the_rows_that_start():
    ac = ActorCritic.build(_actor("cfc", units=8))
    obs = _obs(2).numpy()
    _, state = ac.predict(obs, None, np.ones(2, dtype=bool), deterministic=True)
    fresh, _ = ac.predict(obs, None, np.ones(2, dtype=bool), deterministic=True)
    mixed, _ = ac.predict(obs, state, np.array([True, False]), deterministic=True)
    np.testing.assert_allclose(mixed[0], fresh[0], atol=1e-6)
    assert not np.allclose(mixed[1], fresh[1])


def test_log_std_starts_where_asked():
    ac = ActorCritic.build(_actor(units=8), log_std_init=-1.5)
    assert torch.allclose(ac.log_std, torch.full((N_ACT,), -1.5))
    assert math.isclose(ac.entropy().item(), N_ACT * (0.5 + 0.5 * math.log(2 * math.pi) - 1.5), rel_tol=1e-6)


@pytest.mark.parametrize("name", ["cfc", "lstm", "mlp"])
def test_shrinking_the_output_layer_centres_a_fresh_actor(name):
    model = make(name, N_OBS, N_ACT, units=8)
    x = torch.randn(4, 5, N_OBS) * 3
    with torch.no_grad():
        before, _ = model(x)
        assert shrink_output_layer(model, 0.01)
        after, _ = model(x)
    assert after.abs().max() < 0.02 * max(1.0, float(before.abs().max()))


def test_a_wired_ncp_has_no_output_layer_to_shrink():
    model = make("ncp", N_OBS, N_ACT, units=12)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    assert not shrink_output_layer(model, 0.01)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
