"""Every task passes Gymnasium's and SB3's checkers, renders headless, and runs vectorised with
each env drawing its own periods."""

import functools
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import cfc_control  # noqa: F401
from cfc_control.tasks import list_tasks, make_env

TASKS = list_tasks()


@pytest.mark.parametrize("env_id", TASKS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite observation bounds, non-unit action ranges
        # The default render check re-creates the env in "human" mode, which aborts the process
        # on a headless machine; rendering is tested below.
        gym_check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", TASKS)
def test_sb3_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(env, warn=True)
    env.close()


@pytest.mark.parametrize("name", ["HalfCheetah-Pos-Irregular", "InvertedPendulum-Full-Jitter"])
def test_rgb_array_renders_headless(name):
    env = make_env(name, render_mode="rgb_array", width=64, height=48, seed=0)
    first = env.render()
    for _ in range(5):
        env.step(env.action_space.sample())
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert frame.std() > 0  # a scene, not a blank buffer
    if "HalfCheetah" in name:
        assert not np.array_equal(first, frame)  # it moved
    env.close()


def _dts_differ(dts):
    dts = np.asarray(dts)
    assert dts.shape[0] >= 2
    assert len(set(dts.tolist())) == len(dts)  # each env draws its own period


def test_dummy_vec_env_each_env_has_its_own_dt():
    vec = DummyVecEnv([functools.partial(make_env, "Hopper-Pos-Irregular")] * 3)
    vec.seed(3)
    vec.action_space.seed(3)
    obs = vec.reset()
    assert obs.shape == (3, 5)
    assert vec.get_attr("nominal_dt") == [pytest.approx(0.008)] * 3
    for _ in range(50):
        obs, rewards, dones, infos = vec.step(np.stack([vec.action_space.sample()] * 3))
        _dts_differ([i["dt"] for i in infos])
        for info, done in zip(infos, dones):
            if done:
                assert "terminal_observation" in info
    vec.close()


def test_subproc_vec_env_each_env_has_its_own_dt():
    # A string id with the "module:" prefix lets fresh worker processes register the tasks.
    vec = make_vec_env(
        "cfc_control:cfc_control/Swimmer-Pos-Jitter-v0", n_envs=2, seed=5,
        vec_env_cls=SubprocVecEnv,
    )
    try:
        obs = vec.reset()
        vec.action_space.seed(5)
        assert obs.shape == (2, 3)
        seen = []
        for _ in range(10):
            _, _, _, infos = vec.step(np.stack([vec.action_space.sample()] * 2))
            _dts_differ([i["dt"] for i in infos])
            seen.append([i["dt"] for i in infos])
        assert all(0.032 - 1e-12 <= dt <= 0.048 + 1e-12 for row in seen for dt in row)
    finally:
        vec.close()


def test_subproc_matches_dummy_for_the_same_seed():
    fns = [functools.partial(make_env, "Reacher-Full-Irregular")] * 2
    dummy, sub = DummyVecEnv(fns), SubprocVecEnv(fns)
    try:
        dummy.seed(7)
        sub.seed(7)
        assert np.array_equal(dummy.reset(), sub.reset())
        for _ in range(10):
            actions = np.stack([dummy.action_space.sample()] * 2)
            d, s = dummy.step(actions), sub.step(actions)
            assert np.array_equal(d[0], s[0])
            np.testing.assert_allclose(d[1], s[1], rtol=1e-6)  # DummyVecEnv stores float32
            assert [i["dt"] for i in d[3]] == [i["dt"] for i in s[3]]
    finally:
        dummy.close()
        sub.close()


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_gymnasium_vector_envs_each_env_has_its_own_dt(vector_cls):
    vec = vector_cls([functools.partial(make_env, "Walker2d-Pos-Irregular", dt_in_obs=True)] * 3)
    try:
        obs, info = vec.reset(seed=11)
        assert obs.shape == (3, 9) and np.all(obs[:, -1] == 1.0)
        for _ in range(20):
            # Zero torques: random ones can topple a walker within 20 steps, and envs that reset
            # on the same step both report the nominal period (a flake).
            obs, _, _, _, info = vec.step(np.zeros(vec.action_space.shape, np.float32))
            _dts_differ(info["dt"])
            np.testing.assert_allclose(obs[:, -1], info["dt"] / 0.008)
    finally:
        vec.close()


def test_gym_make_vec():
    vec = gym.make_vec("cfc_control/InvertedDoublePendulum-Full-Jitter-v0", num_envs=2,
                       vectorization_mode="sync")
    vec.reset(seed=0)
    vec.action_space.seed(0)
    _, _, _, _, info = vec.step(vec.action_space.sample())
    _dts_differ(info["dt"])
    vec.close()
