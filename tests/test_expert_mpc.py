"""Reacher's planning expert: its arm model predicts MuJoCo, its plan's gradient is the cost's, and
it reaches the target from the full state under irregular timing."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from cfc_control.experts import make_expert
from cfc_control.experts.mpc import ArmModel, ReacherMPCExpert
from cfc_control.tasks import make_env
from cfc_control.training.imitation import default_expert


@pytest.mark.parametrize("dt", [0.01, 0.02, 0.04])
def test_the_arm_model_predicts_the_simulated_joints_over_held_actions(dt):
    base = gym.make("Reacher-v5").unwrapped
    model, data = base.model, mujoco.MjData(base.model)
    arm = ArmModel.from_mujoco(model)
    rng = np.random.default_rng(0)
    horizon = 8
    q0, v0 = np.array([0.4, -1.2]), np.array([1.5, -2.0])
    actions = rng.uniform(-0.3, 0.3, size=(2, horizon))
    data.qpos[arm.joint_qpos], data.qvel[arm.joint_dofs] = q0, v0
    substeps = int(round(dt / model.opt.timestep))
    simulated = []
    for k in range(horizon):
        data.ctrl[:] = actions[:, k]
        for _ in range(substeps):
            mujoco.mj_step(model, data)
        simulated.append(data.qpos[arm.joint_qpos].copy())
    r_q, r_v, response = arm.responses([dt] * horizon)
    predicted = r_q * q0 + r_v * v0 + np.einsum("jhk,jk->hj", response, actions)
    travelled = np.abs(np.array(simulated) - q0).max()
    assert travelled > 0.1
    assert np.abs(predicted - np.array(simulated)).max() < 0.01 * travelled


def test_the_plans_gradient_is_the_gradient_of_its_cost():
    expert = ReacherMPCExpert.for_env(make_env("Reacher-Full-Fixed"), horizon=6)
    rng = np.random.default_rng(1)
    r_q, r_v, response = expert.responses(0.03)
    free = r_q * np.array([0.3, 2.0]) + r_v * np.array([-1.0, 0.5])
    target = np.array([0.05, -0.12])
    durations = np.r_[1.5, np.ones(5)]
    flat = rng.uniform(-0.5, 0.5, size=12)
    _, grad = expert._cost(flat, free, target, response, durations)
    numeric = np.array([(expert._cost(flat + e, free, target, response, durations)[0]
                         - expert._cost(flat - e, free, target, response, durations)[0]) / 2e-6
                        for e in np.eye(12) * 1e-6])
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_the_mpc_expert_brings_the_fingertip_to_the_target_under_irregular_timing():
    env = make_env("Reacher-Full-Irregular")
    expert = make_expert("mpc", env)
    base = env.unwrapped
    for seed in range(3):
        env.reset(seed=seed)
        start = np.linalg.norm(base.get_body_com("fingertip") - base.get_body_com("target"))
        while True:
            action = expert.act(env)
            assert action.dtype == np.float32 and action.shape == (2,)
            assert np.all(np.abs(action) <= 1.0)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        end = np.linalg.norm(base.get_body_com("fingertip") - base.get_body_com("target"))
        assert end < 0.01 < start


def test_reacher_defaults_to_the_mpc_expert_and_other_tasks_refuse_it():
    assert default_expert("Reacher-Pos-Irregular") == "mpc"
    with pytest.raises(ValueError, match="the mpc expert supports \\['Reacher'\\], not SwimmerEnv"):
        make_expert("mpc", make_env("Swimmer-Full-Fixed"))


def test_mpc_measured_plans_the_first_hold_with_the_period_that_elapsed():
    steady = make_env("Reacher-Full-Fixed")
    steady.reset(seed=4)
    nominal, measured = make_expert("mpc", steady), make_expert("mpc-measured", steady)
    np.testing.assert_array_equal(nominal.act(steady), measured.act(steady))  # the elapsed period is nominal
    q0, v0, target = np.array([0.2, 1.0]), np.array([0.5, -0.5]), np.array([-0.1, 0.08])
    short, long = measured.plan(q0, v0, target, 0.01), measured.plan(q0, v0, target, 0.04)
    assert np.abs(long[:, 0]).sum() < np.abs(short[:, 0]).sum()  # a longer hold asks for a smaller push
