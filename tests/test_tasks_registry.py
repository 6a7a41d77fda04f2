"""Named tasks: registration, envs/*.toml data, name resolution, overrides and the listing CLI."""

import json
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

import cfc_control  # noqa: F401  (registration happens on import)
from cfc_control.tasks import list_tasks, make_env, register_tasks, resolve_env_id, task_info
from cfc_control.tasks import specs

BASES = ["InvertedPendulum", "InvertedDoublePendulum", "Reacher", "Swimmer", "HalfCheetah",
         "Hopper", "Walker2d"]
EXPECTED = {f"cfc_control/{b}-{o}-{t}-v0" for b in BASES for o in ("Full", "Pos", "PosVel")
            for t in ("Fixed", "Jitter", "Irregular")}


def test_all_63_tasks_are_registered_on_import():
    assert len(EXPECTED) == 63
    assert EXPECTED <= set(gym.registry)
    assert set(list_tasks()) == EXPECTED


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is overridden
        first = register_tasks()
        second = register_tasks()
    assert first == second and set(first) == EXPECTED


def test_registering_builds_no_env_and_imports_no_torch():
    code = (
        "import sys, cfc_control, gymnasium as gym\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'mujoco' not in sys.modules, 'mujoco imported'\n"
        "print(sum(i.startswith('cfc_control/') for i in gym.registry))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "63"


@pytest.mark.parametrize("name", BASES)
def test_envs_toml_matches_the_stock_env(name):
    family = specs.task_families()[name]
    env = gym.make(family.gym_id)
    assert family.nominal_dt == pytest.approx(env.unwrapped.dt, rel=1e-12)
    assert family.max_episode_steps == env.spec.max_episode_steps
    assert family.reward_threshold == env.spec.reward_threshold
    assert (family.obs_size,) == env.observation_space.shape
    assert (family.act_size,) == env.action_space.shape


@pytest.mark.parametrize("env_id", sorted(EXPECTED))
def test_task_info_matches_the_built_env(env_id):
    info = task_info(env_id)
    env = gym.make(env_id)
    assert info["id"] == env_id
    assert (info["obs_size"],) == env.observation_space.shape
    assert (info["act_size"],) == env.action_space.shape
    assert info["nominal_dt"] == pytest.approx(env.get_wrapper_attr("nominal_dt"))
    assert info["horizon_s"] == pytest.approx(env.get_wrapper_attr("horizon_s"))
    assert info["timing_spec"] == env.get_wrapper_attr("timing")
    assert info["reward_threshold"] == env.spec.reward_threshold
    base, obs, timing = env_id.split("/")[1].rsplit("-v0")[0].split("-")
    assert (info["base_env"], info["obs"], info["timing"]) == (f"{base}-v5", obs, timing)
    assert info["max_steps"] * info["nominal_dt"] == pytest.approx(info["horizon_s"])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("HalfCheetah-Pos-Jitter", "cfc_control/HalfCheetah-Pos-Jitter-v0"),
        ("HalfCheetah-Pos-Jitter-v0", "cfc_control/HalfCheetah-Pos-Jitter-v0"),
        ("cfc_control/HalfCheetah-Pos-Jitter", "cfc_control/HalfCheetah-Pos-Jitter-v0"),
        ("cfc_control/HalfCheetah-Pos-Jitter-v0", "cfc_control/HalfCheetah-Pos-Jitter-v0"),
        ("halfcheetah-pos-jitter", "cfc_control/HalfCheetah-Pos-Jitter-v0"),
        ("cfc_control:Hopper-Full-Fixed", "cfc_control/Hopper-Full-Fixed-v0"),
        ("Hopper-v5", "Hopper-v5"),
        ("Hopper", "Hopper-v5"),
        ("CartPole-v1", "CartPole-v1"),
    ],
)
def test_resolve_env_id(name, expected):
    assert resolve_env_id(name) == expected


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("HalfCheetah-Pos-Jiter", "HalfCheetah-Pos-Jitter"),
        ("Hoper-Full-Fixed", "Hopper-Full-Fixed"),
        ("HalfCheeta-v5", "HalfCheetah-v5"),
    ],
)
def test_unknown_names_list_the_closest(name, suggestion):
    with pytest.raises(ValueError) as err:
        resolve_env_id(name)
    assert repr(name) in str(err.value) and suggestion in str(err.value)
    with pytest.raises(ValueError, match="closest"):
        make_env(name)


def test_empty_name_is_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        resolve_env_id("  ")


def test_gym_make_kwargs_override_the_registered_task():
    env = gym.make(
        "cfc_control/HalfCheetah-Pos-Jitter-v0",
        timing="uniform:0.03,0.06",
        obs="Full",
        obs_noise=0.01,
        dt_in_obs=True,
        render_mode="rgb_array",
        width=32,
        height=32,
    )
    assert env.get_wrapper_attr("timing") == "uniform:0.03,0.06"
    assert env.observation_space.shape == (17 + 1,)
    assert env.render_mode == "rgb_array"
    _, info = env.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = env.step(env.action_space.sample())
        assert 0.03 <= info["dt"] <= 0.06


def test_make_env_overrides_timing_and_obs_of_a_task():
    env = make_env("Hopper-Full-Fixed", timing="Irregular", obs="pos")
    assert env.observation_space.shape == (5,)
    assert env.get_wrapper_attr("timing") == "loguniform:0.004,0.016"


def test_make_env_wraps_a_plain_mujoco_id_the_same_way():
    plain = make_env("Hopper-v5", timing="Jitter", obs="Pos", seed=0)
    task = make_env("Hopper-Pos-Jitter", seed=0)
    assert plain.observation_space == task.observation_space
    assert plain.get_wrapper_attr("timing") == task.get_wrapper_attr("timing")
    assert plain.get_wrapper_attr("horizon_s") == pytest.approx(8.0)
    actions = [plain.action_space.sample() for _ in range(20)]
    for action in actions:
        a, b = plain.step(action), task.step(action)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1] and a[4]["dt"] == b[4]["dt"]


def test_make_env_without_overrides_is_gym_make():
    env = make_env("Reacher-v5")
    assert env.spec.max_episode_steps == 50  # the stock TimeLimit, untouched
    with pytest.raises(AttributeError):
        env.get_wrapper_attr("nominal_dt")


@pytest.mark.parametrize("obs", ["Pos", "PosVel"])
def test_make_env_pos_on_an_env_without_a_family_is_explained(obs):
    with pytest.raises(ValueError, match=f"the {obs} observation model needs the velocity entries of Ant-v5"):
        make_env("Ant-v5", obs=obs)


def test_timing_on_a_non_mujoco_env_is_explained():
    with pytest.raises(TypeError, match="MuJoCo"):
        make_env("CartPole-v1", timing="fixed:0.02")


def test_bad_timing_override_names_the_spec():
    with pytest.raises(ValueError, match="'uniform:0.05'.*LO,HI"):
        make_env("Hopper-Full-Fixed", timing="uniform:0.05")


def test_make_env_seed_repeats():
    a = make_env("Swimmer-Pos-Irregular", seed=12)
    b = make_env("Swimmer-Pos-Irregular", seed=12)
    for _ in range(10):
        action = a.action_space.sample()
        assert action.tolist() == b.action_space.sample().tolist()
        assert np.array_equal(a.step(action)[0], b.step(action)[0])


def test_task_info_for_a_plain_gymnasium_id():
    info = task_info("Hopper-v5")
    assert info["nominal_dt"] == pytest.approx(0.008) and info["horizon_s"] == pytest.approx(8.0)
    assert info["obs_size"] == 11 and info["act_size"] == 3 and info["reward_threshold"] == 3800


def test_walker_has_no_reward_threshold():
    assert task_info("Walker2d-Pos-Fixed")["reward_threshold"] is None


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name = 'X'\n", "missing keys"),
        ("name = 'X'\ngym_id = 'X-v5'\nnominal_dt = 0.01\nmax_episode_steps = 10\n"
         "obs_size = 4\nact_size = 1\nvelocity_indices = [2, 3]\nframe_skip = 2\n", "unknown keys"),
        ("name = 'X'\ngym_id = 'X-v5'\nnominal_dt = 0.01\nmax_episode_steps = 10\n"
         "obs_size = 4\nact_size = 1\nvelocity_indices = [2, 4]\n", "velocity_indices"),
        ("name = 'X'\ngym_id = 'X-v5'\nnominal_dt = '0.01'\nmax_episode_steps = 10\n"
         "obs_size = 4\nact_size = 1\nvelocity_indices = [2]\n", "nominal_dt"),
        ("name = 'X'\ngym_id = 'X-v5'\nnominal_dt = 0.01\nmax_episode_steps = 10\n"
         "obs_size = 4\nact_size = 1\nvelocity_indices = [2]\nrounding_sensitive = 1\n", "rounding_sensitive"),
        ("name = [\n", "not valid TOML"),
    ],
)
def test_bad_task_files_are_reported_with_file_and_key(tmp_path, monkeypatch, text, fragment):
    (tmp_path / "x.toml").write_text(text)
    monkeypatch.setenv(specs.ENVS_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(ValueError) as err:
        specs.task_families()
    assert "x.toml" in str(err.value) and fragment in str(err.value)


def test_cli_lists_every_task():
    out = subprocess.run(
        [sys.executable, "-m", "cfc_control.tasks"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 + 63
    assert "horizon" in lines[0] and "threshold" in lines[0]
    row = next(line for line in lines if "HalfCheetah-Pos-Jitter" in line)
    for cell in ("HalfCheetah-v5", "Pos", "Jitter", "uniform:0.04,0.06", "0.05", "50", "4800"):
        assert cell in row.split()


def test_cli_json_is_the_task_info():
    out = subprocess.run(
        [sys.executable, "-m", "cfc_control.tasks", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["id"] for r in rows} == EXPECTED
    by_id = {r["id"]: r for r in rows}
    assert by_id["cfc_control/Walker2d-Full-Irregular-v0"] == task_info("Walker2d-Full-Irregular")
    filtered = subprocess.run(
        [sys.executable, "-m", "cfc_control.tasks", "--json", "Reacher-Pos-"],
        capture_output=True, text=True, timeout=60,
    )
    assert len(json.loads(filtered.stdout)) == 3
