"""The varying-period env: Fixed is the stock env, rewards per unit time, horizon in simulated
seconds, realised periods, packet loss, seeding and bad actions."""

import gymnasium as gym
import numpy as np
import pytest

import cfc_control  # noqa: F401  (registers the tasks)
from cfc_control.tasks import make_env, parse_timing
from cfc_control.tasks.wrappers import TIMING_STREAM

BASES = ["InvertedPendulum", "InvertedDoublePendulum", "Reacher", "Swimmer", "HalfCheetah",
         "Hopper", "Walker2d"]


def _actions(space, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(space.low, space.high).astype(space.dtype) for _ in range(n)]


@pytest.mark.parametrize("base", BASES)
def test_fixed_timing_is_the_stock_env_bit_for_bit(base):
    stock = gym.make(f"{base}-v5")
    ours = make_env(f"{base}-Full-Fixed")
    # Reacher (50 steps) and the falling robots cross several episode ends in 300 steps.
    steps = 1000 if base in ("Swimmer", "HalfCheetah") else 300
    stock_obs, _ = stock.reset(seed=11)
    obs, _ = ours.reset(seed=11)
    assert np.array_equal(stock_obs, obs)
    stock_return = our_return = 0.0
    episodes = 0
    for action in _actions(stock.action_space, steps):
        s_obs, s_rew, s_term, s_trunc, _ = stock.step(action)
        obs, rew, term, trunc, info = ours.step(action)
        assert np.array_equal(s_obs, obs)
        assert rew == s_rew and (term, trunc) == (s_term, s_trunc)
        assert info["dt"] == ours.get_wrapper_attr("nominal_dt")
        stock_return += s_rew
        our_return += rew
        if s_term or s_trunc:
            episodes += 1
            s_obs, _ = stock.reset()
            obs, _ = ours.reset()
            assert np.array_equal(s_obs, obs)
    assert our_return == stock_return
    if base in ("Reacher", "Swimmer", "HalfCheetah"):
        assert episodes >= 1  # the time limit fired on the same step as the stock TimeLimit


def test_env_exposes_its_timing_through_wrappers():
    env = make_env("Hopper-Pos-Jitter")
    assert env.get_wrapper_attr("nominal_dt") == pytest.approx(0.008)
    assert env.get_wrapper_attr("timing") == "uniform:0.0064,0.0096"
    assert env.get_wrapper_attr("horizon_s") == pytest.approx(8.0)
    assert env.spec.max_episode_steps is None  # no step-count TimeLimit on top


@pytest.mark.parametrize("base, seed", [("HalfCheetah", 0), ("Reacher", 1), ("Swimmer", 2)])
def test_irregular_episode_lasts_the_stock_duration_in_simulated_time(base, seed):
    env = make_env(f"{base}-Full-Irregular", seed=seed)
    horizon = env.get_wrapper_attr("horizon_s")
    nominal = env.get_wrapper_attr("nominal_dt")
    dts, truncated, steps = [], False, 0
    while not truncated:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated
        dts.append(info["dt"])
        steps += 1
        assert steps < 3 * horizon / nominal
    assert info["sim_time"] == pytest.approx(horizon, abs=1e-9)
    assert sum(dts) == pytest.approx(horizon, abs=1e-9)
    # MuJoCo's own clock advanced by exactly what was reported.
    assert env.unwrapped.data.time == pytest.approx(horizon, abs=1e-9)
    assert len(set(np.round(dts, 12))) > 10  # the periods really varied
    assert min(dts[:-1]) >= 0.5 * nominal * (1 - 1e-9) and max(dts) <= 2 * nominal * (1 + 1e-9)


@pytest.mark.parametrize("base", ["HalfCheetah", "Hopper", "Walker2d", "Swimmer", "Reacher"])
def test_reward_is_the_stock_rate_times_dt_over_nominal(base):
    env = make_env(f"{base}-Full-Irregular", seed=4)
    nominal = env.get_wrapper_attr("nominal_dt")
    ratios = []
    for action in _actions(env.action_space, 100):
        _, reward, terminated, truncated, info = env.step(action)
        # The stock per-step reward of this period, from its components in info (unscaled).
        rate = sum(v for k, v in info.items() if k.startswith("reward_"))
        assert reward == pytest.approx(rate * info["dt"] / nominal, rel=1e-9, abs=1e-12)
        ratios.append(info["dt"] / nominal)
        if terminated or truncated:
            env.reset()
    assert min(ratios) < 0.8 and max(ratios) > 1.25


@pytest.mark.parametrize("base, factor", [("Hopper", 2), ("Hopper", 0.5), ("HalfCheetah", 2)])
def test_returns_are_comparable_across_periods(base, factor):
    """A period of k stock periods is the same physics as k stock steps, and earns their sum."""
    stock = make_env(f"{base}-Full-Fixed", seed=5)
    nominal = stock.get_wrapper_attr("nominal_dt")
    scaled = make_env(f"{base}-Full-Fixed", timing=f"fixed:{nominal * factor!r}", seed=5)
    action = np.full(stock.action_space.shape, 0.3, dtype=np.float32)
    per_scaled, per_stock = (1, 2) if factor == 2 else (2, 1)
    compared = 0
    for _ in range(20):
        out_scaled = [scaled.step(action) for _ in range(per_scaled)]
        out_stock = [stock.step(action) for _ in range(per_stock)]
        if any(o[2] for o in out_scaled + out_stock):
            break  # the healthy bonus is judged at different instants once the robot falls
        r_scaled = sum(o[1] for o in out_scaled)
        r_stock = sum(o[1] for o in out_stock)
        assert r_scaled == pytest.approx(r_stock, rel=1e-6, abs=1e-9)
        compared += 1
    assert compared >= 5
    np.testing.assert_allclose(scaled.unwrapped.data.qpos, stock.unwrapped.data.qpos, atol=1e-9)
    assert scaled.unwrapped.data.time == pytest.approx(stock.unwrapped.data.time)


def test_realised_dt_matches_the_drawn_sequence_within_5_percent():
    seed = 21
    env = make_env("HalfCheetah-Full-Fixed", timing="loguniform:0.003,0.07", seed=seed)
    model = parse_timing("loguniform:0.003,0.07")
    # The documented seeding rule: periods come from default_rng([seed, TIMING_STREAM]).
    rng = np.random.default_rng([seed, TIMING_STREAM])
    data = env.unwrapped.data
    for _ in range(400):
        drawn = model.sample(rng)
        before = data.time
        _, _, _, truncated, info = env.step(env.action_space.sample())
        assert info["dt"] == pytest.approx(drawn, rel=0.05)
        assert info["dt"] == pytest.approx(drawn, rel=1e-8)
        assert data.time - before == pytest.approx(info["dt"], rel=1e-9)
        assert not truncated


def test_non_multiple_of_the_stock_timestep_is_realised_exactly():
    env = make_env("Hopper-Full-Fixed", timing="fixed:0.0123", seed=0)
    for _ in range(10):
        _, _, terminated, _, info = env.step(np.zeros(3, dtype=np.float32))
        assert info["dt"] == pytest.approx(0.0123, rel=1e-9)
        # ceil(0.0123 / 0.002) = 7 physics steps, each shorter than the stock 2 ms.
        assert env.unwrapped.frame_skip == 7
        assert env.unwrapped.model.opt.timestep <= 0.002


def test_packet_loss_holds_the_action_through_the_lost_periods():
    lossy = make_env("HalfCheetah-Full-Fixed", timing="fixed:0.03+drop:0.4", seed=8)
    clean = make_env("HalfCheetah-Full-Fixed", timing="fixed:0.03", seed=8)
    obs_l, _ = lossy.reset(seed=8)
    obs_c, _ = clean.reset(seed=8)
    assert np.array_equal(obs_l, obs_c)  # timing draws leave the stock initial state alone
    dropped_counts = []
    for action in _actions(lossy.action_space, 200):
        obs_l, r_l, _, trunc, info = lossy.step(action)
        periods = info["dropped"] + 1
        assert info["dt"] == pytest.approx(0.03 * periods)
        r_c = 0.0
        for _ in range(periods):  # the clean env gets the same action again: zero-order hold
            obs_c, r, _, _, info_c = clean.step(action)
            r_c += r
        assert np.array_equal(obs_l, obs_c)
        assert r_l == pytest.approx(r_c, rel=1e-12, abs=1e-12)
        assert info["sim_time"] == pytest.approx(info_c["sim_time"])
        dropped_counts.append(info["dropped"])
        assert not trunc
    lost_fraction = sum(dropped_counts) / (sum(dropped_counts) + len(dropped_counts))
    assert 0.3 < lost_fraction < 0.5


def test_same_seed_gives_the_same_periods_and_trajectory():
    def run(seed):
        env = make_env("Hopper-Pos-Irregular", obs_noise=0.01, seed=seed)
        obs, info = env.reset(seed=seed)
        out = [(obs, 0.0, info["dt"])]
        for action in _actions(env.action_space, 150, seed=1):
            obs, reward, terminated, truncated, info = env.step(action)
            out.append((obs, reward, info["dt"]))
            if terminated or truncated:
                obs, info = env.reset()
        return out

    a, b, c = run(3), run(3), run(4)
    for (oa, ra, da), (ob, rb, db) in zip(a, b):
        assert np.array_equal(oa, ob) and ra == rb and da == db
    assert [x[2] for x in a] != [x[2] for x in c]


def test_a_seed_gives_the_same_initial_state_whatever_the_timing():
    fixed, _ = make_env("Walker2d-Full-Fixed").reset(seed=9)
    irregular, _ = make_env("Walker2d-Full-Irregular").reset(seed=9)
    assert np.array_equal(fixed, irregular)


def test_info_always_carries_dt_and_sim_time():
    env = make_env("InvertedPendulum-Full-Jitter")
    _, info = env.reset(seed=0)
    assert info["dt"] == env.get_wrapper_attr("nominal_dt") and info["sim_time"] == 0.0
    total = 0.0
    for _ in range(5):
        _, _, _, _, info = env.step(np.zeros(1, dtype=np.float32))
        total += info["dt"]
        assert info["sim_time"] == pytest.approx(total)
        assert info["dropped"] == 0


def test_dt_in_obs_appends_the_period_in_nominal_units():
    env = make_env("HalfCheetah-Pos-Irregular", dt_in_obs=True, seed=2)
    assert env.observation_space.shape == (8 + 1,)
    obs, info = env.reset(seed=2)
    assert obs[-1] == 1.0
    for _ in range(30):
        obs, _, _, _, info = env.step(env.action_space.sample())
        assert obs[-1] == pytest.approx(info["dt"] / 0.05)
        assert env.observation_space.contains(obs)
        assert 0.5 - 1e-9 <= obs[-1] <= 2 + 1e-9


def test_last_dt_is_the_period_that_ended_with_the_observation_drops_included():
    env = make_env("Hopper-Full-Irregular", timing="Irregular+drop:0.3")
    env.reset(seed=4)
    assert env.get_wrapper_attr("last_dt") == env.get_wrapper_attr("nominal_dt")
    saw_drop = False
    for _ in range(40):
        _, _, terminated, truncated, info = env.step(np.zeros(3, dtype=np.float32))
        assert env.get_wrapper_attr("last_dt") == info["dt"]
        saw_drop |= info["dropped"] > 0
        if terminated or truncated:
            break
    assert saw_drop
    env.reset(seed=5)
    assert env.get_wrapper_attr("last_dt") == env.get_wrapper_attr("nominal_dt")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_raises_before_touching_the_physics(bad):
    env = make_env("Hopper-Full-Jitter", seed=0)
    fresh = make_env("Hopper-Full-Jitter", seed=0)
    qpos, time = env.unwrapped.data.qpos.copy(), env.unwrapped.data.time
    action = np.array([0.1, bad, 0.2], dtype=np.float32)
    with pytest.raises(ValueError, match=r"non-finite.*\[1\]"):
        env.step(action)
    assert np.array_equal(env.unwrapped.data.qpos, qpos) and env.unwrapped.data.time == time
    # Nothing was poisoned: the env goes on exactly like one that never saw the bad action.
    good = np.array([0.1, 0.0, 0.2], dtype=np.float32)
    assert np.array_equal(env.step(good)[0], fresh.step(good)[0])


def test_wrong_action_shape_raises():
    env = make_env("Hopper-Full-Fixed", seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step(np.zeros(2, dtype=np.float32))
