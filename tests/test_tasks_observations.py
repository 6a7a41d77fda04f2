"""Observation models: Pos removes exactly the velocities; noise is Gaussian, seeded, obs-only."""

import gymnasium as gym
import numpy as np
import pytest

import cfc_control  # noqa: F401
from cfc_control.tasks import make_env
from cfc_control.tasks.observations import canonical_obs
from cfc_control.tasks.specs import task_families

FAMILIES = sorted(task_families())


@pytest.mark.parametrize("name", FAMILIES)
def test_velocity_indices_are_the_entries_that_depend_on_qvel(name):
    """Perturb each joint velocity alone: the observation entries that move are the velocities."""
    family = task_families()[name]
    env = gym.make(family.gym_id)
    env.reset(seed=0)  # near the initial state, so no velocity sits at the observation's clip
    base = env.unwrapped
    qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
    base.set_state(qpos, qvel)
    reference = base._get_obs()
    moved = set()
    for j in range(base.model.nv):
        perturbed = qvel.copy()
        perturbed[j] += 0.37
        base.set_state(qpos, perturbed)
        moved |= set(np.flatnonzero(base._get_obs() != reference).tolist())
    assert sorted(moved) == list(family.velocity_indices)
    # And positions alone never move a velocity entry.
    for i in range(base.model.nq):
        perturbed = qpos.copy()
        perturbed[i] += 0.05
        base.set_state(perturbed, qvel)
        changed = set(np.flatnonzero(base._get_obs() != reference).tolist())
        assert not changed & set(family.velocity_indices)


@pytest.mark.parametrize("obs", ["Pos", "PosVel"])
@pytest.mark.parametrize("name", FAMILIES)
def test_an_observation_model_removes_its_entries_and_shrinks_the_space(name, obs):
    """Pos removes every velocity, PosVel only the unobserved coordinates' ones."""
    family = task_families()[name]
    removed = family.velocity_indices if obs == "Pos" else family.unobserved_velocity_indices
    stock = gym.make(family.gym_id)
    env = make_env(f"{name}-{obs}-Fixed")
    keep = [i for i in range(family.obs_size) if i not in removed]
    assert env.observation_space.shape == (len(keep),)
    assert env.observation_space.dtype == stock.observation_space.dtype
    s_obs, _ = stock.reset(seed=1)
    obs_now, _ = env.reset(seed=1)
    assert np.array_equal(obs_now, s_obs[keep])
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(stock.action_space.low, stock.action_space.high).astype(np.float32)
        s_obs, *_ = stock.step(action)
        obs_now, *_ = env.step(action)
        assert np.array_equal(obs_now, s_obs[keep])
        if obs == "Pos":
            qvel = env.unwrapped.data.qvel
            visible = np.clip(qvel[qvel != 0], -10, 10)  # some envs clip velocities at +-10
            # No entry of the Pos observation is a (possibly clipped) joint velocity.
            assert not np.isin(obs_now, visible).any()


def test_noise_is_gaussian_seeded_and_leaves_the_physics_alone():
    clean = make_env("HalfCheetah-Full-Jitter", seed=6)
    noisy = make_env("HalfCheetah-Full-Jitter", obs_noise=0.1, seed=6)
    again = make_env("HalfCheetah-Full-Jitter", obs_noise=0.1, seed=6)
    diffs = []
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        c = clean.step(action)
        n = noisy.step(action)
        a = again.step(action)
        assert np.array_equal(n[0], a[0])  # same seed, same noise
        assert n[1] == c[1] and n[4]["x_position"] == c[4]["x_position"]  # physics untouched
        diffs.append(n[0] - c[0])
    diffs = np.concatenate(diffs)
    assert abs(diffs.mean()) < 0.01
    assert diffs.std() == pytest.approx(0.1, rel=0.05)


def test_noise_on_pos_keeps_the_pos_shape():
    env = make_env("Hopper-Pos-Fixed", obs_noise=0.05, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and env.observation_space.contains(obs)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1"])
def test_bad_noise_is_rejected(bad):
    with pytest.raises(ValueError, match="obs_noise"):
        make_env("Hopper-Pos-Fixed", obs_noise=bad)


def test_observation_model_names():
    assert canonical_obs("pos") == "Pos" and canonical_obs(" FULL ") == "Full"
    with pytest.raises(ValueError, match="'NoVel'.*Full, Pos"):
        canonical_obs("NoVel")
    with pytest.raises(ValueError, match="Full, Pos"):
        make_env("Hopper-Full-Fixed", obs="Velocity")


@pytest.mark.parametrize("name", FAMILIES)
def test_unobserved_velocity_indices_are_the_speeds_of_coordinates_no_entry_shows(name):
    """A coordinate whose position moves no observation entry (a walker's x) is unobserved; the
    entries its velocity moves are the family's ``unobserved_velocity_indices``."""
    family = task_families()[name]
    env = gym.make(family.gym_id)
    env.reset(seed=0)
    base = env.unwrapped
    assert base.model.nq == base.model.nv  # hinges and slides only: qvel[j] is the rate of qpos[j]
    qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
    base.set_state(qpos, qvel)
    reference = base._get_obs()

    def moved(position=None, velocity=None):
        p, v = qpos.copy(), qvel.copy()
        if position is not None:
            p[position] += 0.05
        if velocity is not None:
            v[velocity] += 0.37
        base.set_state(p, v)
        return set(np.flatnonzero(base._get_obs() != reference).tolist())

    unobserved = [j for j in range(base.model.nq) if not moved(position=j)]
    speeds = set().union(*(moved(velocity=j) for j in unobserved))
    assert sorted(speeds) == list(family.unobserved_velocity_indices)
