"""The rollout's policy step on the runtime's numpy kernels gives what the torch step gives: the
same sampled actions and env actions, values, log-probabilities and states, through resets,
period-scaled noise and a privileged critic; a model without a numpy kernel is refused up front."""

import numpy as np
import pytest
import torch

from cfc_control.training.ppo import SequencePPO, config_for
from cfc_control.training.ppo.rollout_step import NumpyRolloutStep, TorchRolloutStep, make_rollout_step

TASK = "InvertedPendulum-Pos-Irregular"


def _algo(model, n_envs, **kw):
    cfg = config_for(TASK, {"n_envs": n_envs, "n_steps": 8, "normalize_reward": False, **kw})
    algo = SequencePPO(TASK, model, cfg, model_kw={"units": 8}, seed=0)
    policy = algo.policy
    with torch.no_grad():  # a trained-looking policy: a mean action far from 0, statistics not the identity
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    normalizer = policy.actor.obs_normalizer
    normalizer.update(np.random.default_rng(0).normal(0.5, 2.0, (64, normalizer.size)))
    policy.actor.set_normalizer(normalizer)
    return algo


def _steps(step, algo, obs, starts, full, seed):
    step.start(algo.policy, algo.policy.initial_states(obs.shape[1]))
    outs, before = [], []
    for t in range(obs.shape[0]):
        torch.manual_seed(seed + t)  # the same noise for both steps
        outs.append(step.act(obs[t], starts[t], None if full is None else full[t]))
        before.append({k: [s.clone() for s in v] for k, v in step.before.items()})
        step.advance()
    return outs, before, step.states()


@pytest.mark.parametrize("model,n_envs,extra", [
    ("cfc", 3, {}),
    ("cfc", 1, {}),
    ("ncp", 3, {"noise_period_power": 0.5}),
    ("lstm", 3, {"critic_input": "full"}),
    ("cfc-mm", 2, {"critic_input": "full", "noise_period_power": 0.5}),
])
def test_the_numpy_step_equals_the_torch_step(model, n_envs, extra):
    algo = _algo(model, n_envs, **extra)
    rng = np.random.default_rng(1)
    T = 7
    obs = rng.normal(0.0, 1.5, (T, n_envs, algo.policy.obs_width)).astype(np.float32)
    obs[..., -1] = rng.uniform(0.3, 3.0, (T, n_envs))  # Δt / nominal, some outside the accepted range
    starts = np.zeros((T, n_envs), dtype=bool)
    starts[0] = True
    starts[4, 0] = True  # a reset mid-rollout
    full = rng.normal(size=(T, n_envs, 4)).astype(np.float32) if extra.get("critic_input") == "full" else None
    ref = _steps(TorchRolloutStep(), algo, obs, starts, full, seed=5)
    got = _steps(NumpyRolloutStep(algo.policy, n_envs), algo, obs, starts, full, seed=5)
    for a, b in zip(ref[0], got[0]):
        for name in a._fields:
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=2e-5, rtol=1e-5, err_msg=name)
        assert float(np.abs(a.env_actions).max()) > 0  # something was compared
    for a, b in zip(ref[1], got[1]):
        for name in ("actor", "critic"):
            for x, y in zip(a[name], b[name]):
                torch.testing.assert_close(y, x, atol=2e-5, rtol=1e-5)
    for x, y in zip(ref[2], got[2]):
        for s, u in zip(x, y):
            torch.testing.assert_close(u, s, atol=2e-5, rtol=1e-5)


def test_a_model_without_a_numpy_kernel_is_refused_before_training():
    cfg = config_for(TASK, {"n_envs": 2, "n_steps": 8, "rollout_kernel": "numpy"})
    with pytest.raises(ValueError, match="rollout_kernel='torch'"):
        SequencePPO(TASK, "mlp", cfg, model_kw={"activation": "elu"}, seed=0)


def test_an_unknown_rollout_kernel_is_refused():
    with pytest.raises(ValueError, match="rollout_kernel"):
        config_for(TASK, {"rollout_kernel": "cuda"})
    algo = _algo("cfc", 2)
    with pytest.raises(ValueError, match="rollout_kernel"):
        make_rollout_step("cuda", algo.policy, 2)


def test_numpy_rollouts_train_as_torch_rollouts_do():
    """Both kernels, from the same seed and so the same noise: the parameters after a short
    training (four rollouts and updates) differ by float32 rounding only."""
    scores = {}
    for kernel in ("torch", "numpy"):
        cfg = config_for(TASK, {"n_envs": 2, "n_steps": 32, "total_steps": 256, "rollout_kernel": kernel})
        algo = SequencePPO(TASK, "cfc", cfg, model_kw={"units": 8}, seed=3)
        algo.learn(256)
        scores[kernel] = [p.detach().clone() for p in algo.policy.parameters()]
    for a, b in zip(scores["torch"], scores["numpy"]):
        torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)
