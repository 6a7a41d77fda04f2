"""Experts: the LQR balances the pendulums under every timing preset from the full state; SB3
experts save as safetensors + JSON and act the same after loading."""

import json
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from cfc_control.experts import make_expert
from cfc_control.experts.base import act_in_each
from cfc_control.experts.lqr import LQRExpert, ScheduledLQRExpert, discretize, dlqr_gain, linearize
from cfc_control.tasks import make_env


def _episode(env, expert, seed):
    env.reset(seed=seed)
    expert.reset()
    total, steps = 0.0, 0
    while True:
        _, reward, terminated, truncated, info = env.step(expert.act(env))
        total += reward
        steps += 1
        if terminated or truncated:
            return total, terminated, info["sim_time"]


@pytest.mark.parametrize("base, threshold, horizon", [("InvertedPendulum", 950.0, 40.0),
                                                      ("InvertedDoublePendulum", 9100.0, 50.0)])
@pytest.mark.parametrize("timing", ["Fixed", "Jitter", "Irregular"])
def test_lqr_balances_whole_episode(base, threshold, horizon, timing):
    env = make_env(f"{base}-Pos-{timing}")
    expert = make_expert("lqr", env)
    for seed in (0, 1):
        total, terminated, sim_time = _episode(env, expert, seed)
        assert not terminated, f"{base} fell under {timing} (seed {seed})"
        assert sim_time == pytest.approx(horizon)
        assert total >= threshold


def test_lqr_balances_with_packet_loss():
    env = make_env("InvertedDoublePendulum-Full-Irregular", timing="loguniform:0.025,0.1+drop:0.1")
    total, terminated, _ = _episode(env, LQRExpert.for_env(env), 3)
    assert not terminated and total >= 9100.0


def test_scheduled_lqr_uses_the_gain_designed_for_the_measured_period():
    env = make_env("InvertedDoublePendulum-Full-Irregular")
    expert = ScheduledLQRExpert.for_env(env)
    nominal = LQRExpert.for_env(env)
    np.testing.assert_allclose(expert.gain_at(0.05), nominal.gain, rtol=1e-9, atol=1e-9)
    a, b = linearize(env.unwrapped.model)
    want = dlqr_gain(a, b, np.eye(a.shape[0]), np.eye(b.shape[1]), 0.1)
    np.testing.assert_allclose(expert.gain_at(0.1), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(expert.gain_at(10.0), expert.gains[-1])  # beyond the range: the end's gain
    env.reset(seed=1)
    env.step(np.zeros(1, dtype=np.float32))
    x = np.concatenate([env.unwrapped.data.qpos, env.unwrapped.data.qvel])
    gain = expert.gain_at(env.get_wrapper_attr("last_dt"))
    np.testing.assert_allclose(expert.act(env), np.clip(-gain @ x, -1, 1).astype(np.float32), rtol=1e-6)


def test_scheduled_lqr_holds_the_double_pendulum_where_the_nominal_design_falls():
    # At a steady 1.75x the nominal period, the gain designed for 0.05 s loses the double pendulum
    # within a few hundred steps in every episode; the gain designed for the measured period holds.
    from cfc_control.episodes.evaluation import evaluate_expert

    timing = "fixed:0.0875"
    fixed_design = evaluate_expert("lqr", "InvertedDoublePendulum-Full-Fixed", timing=timing, episodes=4)
    scheduled = evaluate_expert("lqr-scheduled", "InvertedDoublePendulum-Full-Fixed", timing=timing, episodes=4)
    assert max(fixed_design.returns) < 2000 and min(scheduled.returns) > 9000


def test_lqr_acts_from_the_simulator_state_not_the_observation():
    full, pos = make_env("InvertedPendulum-Full-Fixed"), make_env("InvertedPendulum-Pos-Fixed")
    assert pos.observation_space.shape[0] < full.observation_space.shape[0]
    expert = LQRExpert.for_env(full)
    for env in (full, pos):
        env.reset(seed=5)
    for _ in range(20):
        a_full, a_pos = expert.act(full), expert.act(pos)
        np.testing.assert_array_equal(a_full, a_pos)
        full.step(a_full)
        pos.step(a_pos)
    data = full.unwrapped.data
    x = np.concatenate([data.qpos, data.qvel])
    np.testing.assert_allclose(expert.act(full), np.clip(-expert.gain @ x, -3, 3).astype(np.float32))


def test_linearisation_predicts_the_simulator():
    """The ZOH-discretised linear model predicts a real short rollout near upright."""
    env = gym.make("InvertedDoublePendulum-v5").unwrapped
    model = env.model
    a, b = linearize(model)
    dt = 0.05
    ad, bd = discretize(a, b, dt)
    data = mujoco.MjData(model)
    x0 = np.array([0.0, 0.01, -0.01, 0.0, 0.02, 0.0])
    u = np.array([0.01])
    data.qpos[:], data.qvel[:], data.ctrl[:] = x0[:3], x0[3:], u
    for _ in range(int(round(dt / model.opt.timestep))):
        mujoco.mj_step(model, data)
    x1 = np.concatenate([data.qpos, data.qvel])
    predicted = ad @ x0 + bd @ u
    assert np.max(np.abs(predicted - x1)) < 0.05 * np.max(np.abs(x1 - x0))


def test_lqr_rejects_other_tasks():
    with pytest.raises(ValueError, match="LQR expert supports"):
        make_expert("lqr", make_env("Swimmer-Full-Fixed"))
    with pytest.raises(ValueError, match="expert must be one of lqr, lqr-scheduled, mpc, mpc-measured or an expert "
                                         "directory"):
        make_expert("no-such-expert", make_env("Swimmer-Full-Fixed"))


# -- stable-baselines3 experts -------------------------------------------------------------------
# stable-baselines3 is a core dependency: imported where used, never skipped (a module-level
# importorskip here would silently drop the LQR tests above with it).


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_sb3_expert_round_trip_without_pickle(tmp_path, algo):
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from cfc_control.experts.sb3 import _torch_policy_kwargs, load_sb3_expert, save_sb3_expert

    kwargs = {"net_arch": [32, 32], "activation_fn": "tanh"}
    venv = DummyVecEnv([lambda: gym.make("Swimmer-v5")])
    if algo == "ppo":
        venv = VecNormalize(venv, norm_reward=False)
        model = PPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu",
                    policy_kwargs=_torch_policy_kwargs(kwargs))
    else:
        model = SAC("MlpPolicy", venv, learning_starts=50, seed=0, device="cpu", policy_kwargs=_torch_policy_kwargs(kwargs))
    model.learn(128)
    rms = venv.obs_rms if algo == "ppo" else None
    save_sb3_expert(model, tmp_path, env_id="Swimmer-v5", algo=algo, policy_kwargs=kwargs, obs_rms=rms)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    expert = load_sb3_expert(tmp_path)

    env = make_env("Swimmer-Pos-Jitter")  # the expert acts from the full state of a Pos task
    env.reset(seed=0)
    for _ in range(5):
        stock = env.unwrapped._get_obs()
        model_in = venv.normalize_obs(stock) if algo == "ppo" else stock
        want, _ = model.predict(model_in.astype(np.float32), deterministic=True)
        np.testing.assert_allclose(expert.act(env), want, atol=1e-6)
        env.step(expert.act(env))


def test_sb3_expert_bad_directories(tmp_path):
    from cfc_control.experts.sb3 import load_sb3_expert

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_sb3_expert(tmp_path)
    cfg = {"format_version": 1, "kind": "sb3-expert", "algo": "sac", "env_id": "Swimmer-v5", "observation_size": 8,
           "action_low": [-1, -1], "action_high": [1, 1], "obs_normalization": None,
           "policy_kwargs": {"net_arch": [8], "activation_fn": "gelu-ish"}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="activation_fn"):
        load_sb3_expert(tmp_path)
    cfg["policy_kwargs"]["activation_fn"] = "relu"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model.safetensors"):
        load_sb3_expert(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="model.safetensors"):
        load_sb3_expert(tmp_path)
    cfg["kind"] = "something-else"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="kind"):
        load_sb3_expert(tmp_path)


def test_sb3_expert_training_command_smoke(tmp_path, capsys):
    from cfc_control.experts.train import main

    out = tmp_path / "ip-sac"
    assert main(["--env", "InvertedPendulum", "--steps", "300", "--set", "learning_starts=100",
                 "--set", 'policy_kwargs={"net_arch": [16, 16]}', "--eval-episodes", "2", "--out", str(out),
                 "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["algorithm"] == "sac" and card["steps"] == 300 and card["seed"] == 0
    assert card["evaluation"]["episodes"] == 2 and len(card["evaluation"]["returns"]) == 2
    assert card["reward_threshold"] == 950.0 and "experts.train" in card["command"]
    expert = make_expert(str(out), make_env("InvertedPendulum-Pos-Irregular"))
    with pytest.raises(ValueError, match="SwimmerEnv"):
        expert.check_env(make_env("Swimmer-Full-Fixed"))
    with pytest.raises(ValueError, match="trained on InvertedPendulum-v5"):
        make_expert(str(out), make_env("InvertedDoublePendulum-Pos-Fixed"))
    assert "InvertedPendulum" in capsys.readouterr().out


def test_an_sb3_expert_labels_several_envs_in_one_pass_as_it_would_one_by_one():
    envs = [make_env("Hopper-Pos-Irregular", seed=i) for i in range(3)]
    for env in envs[1:]:
        env.step(env.action_space.sample())  # different states
    expert = make_expert(Path(__file__).resolve().parents[1] / "policies" / "experts" / "hopper-sac-teacher", envs[0])
    one_by_one = np.stack([expert.act(env) for env in envs])
    np.testing.assert_allclose(act_in_each(expert, envs), one_by_one, atol=1e-6)
    lqr = make_expert("lqr", make_env("InvertedPendulum-Pos-Fixed"))  # no batched path: one act per env
    pendulums = [make_env("InvertedPendulum-Pos-Fixed", seed=i) for i in range(2)]
    assert act_in_each(lqr, pendulums).shape == (2, 1)
