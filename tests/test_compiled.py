"""The compiled numpy kernels equal the torch policy (action and state within 1e-5) over long
rollouts with random Δt and episode resets, for every model name and the variants a config can
ask for; unsupported models (an MLP with elu) fall back to torch."""

import numpy as np
import pytest
import torch

from cfc_control.runtime.compiled import TorchKernel, compile_policy

NOMINAL = 0.04
CASES = [
    ("cfc", dict(units=16, backbone_units=24)),
    ("cfc", dict(units=12, backbone_layers=0)),
    ("cfc", dict(units=12, backbone_units=16, backbone_layers=3, activation="gelu")),
    ("cfc", dict(units=12, backbone_units=16, backbone_layers=2, activation="silu", backbone_dropout=0.3)),
    ("cfc", dict(units=3, backbone_units=16, activation="relu", proj_size=None)),
    ("cfc-nogate", dict(units=16, backbone_units=24)),
    ("cfc-pure", dict(units=16, backbone_units=24)),
    ("cfc-mm", dict(units=16, backbone_units=24, activation="tanh")),
    ("ncp", dict(units=16)),
    ("ncp", dict(units=16, mode="pure")),
    ("ncp", dict(units=16, mode="no_gate", mixed_memory=True)),
    ("ncp", dict(units=16, proj_size=3)),
    ("lstm", dict(units=16)),
    ("gru", dict(units=16)),
    ("gru", dict(units=16, time_input=False)),
    ("mlp", dict(hidden=(16, 12))),
    ("mlp", dict(hidden=(16,), activation="gelu")),
    ("ltc", dict(units=8)),
]


def _torch_rollout_check(policy, kernel, steps, batch, seed, reset_every=0):
    """Step the torch policy and ``kernel`` side by side; return the largest action and state gaps."""
    rng = np.random.default_rng(seed)
    t = policy.time_input
    hx = None
    worst_action = worst_state = 0.0
    for i in range(steps):
        obs = rng.normal(size=(batch, policy.n_obs)) * 3.0  # some entries beyond the clip
        dt = np.exp(rng.uniform(np.log(0.1 * NOMINAL), np.log(6 * NOMINAL), size=batch))  # beyond [dt_min, dt_max] too
        start = None
        if reset_every and i and i % reset_every == 0:
            start = np.zeros(batch, dtype=bool)
            start[i % batch] = True
            kernel.reset(np.flatnonzero(start))
        with torch.no_grad():
            y, hx = policy.step(
                torch.as_tensor(obs, dtype=torch.float32),
                torch.as_tensor(dt, dtype=torch.float32),
                hx,
                None if start is None else torch.as_tensor(start),
            )
            want = policy.to_action(y).numpy()
        model_time = (np.clip(dt, t.dt_min, t.dt_max) / t.nominal_dt)[:, None]
        got = kernel.step(obs[0] if batch == 1 else obs, model_time[0, 0] if batch == 1 else model_time)
        kernel.commit()
        assert got.shape == ((policy.n_act,) if batch == 1 else (batch, policy.n_act))
        worst_action = max(worst_action, float(np.abs(got - want).max()))
        states = hx if isinstance(hx, tuple) else (hx,)
        for mine, theirs in zip(kernel.state, states):
            if mine.size:
                worst_state = max(worst_state, float(np.abs(mine - theirs.numpy()).max()))
    return worst_action, worst_state


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_kernel_equals_torch_policy(make_policy, name, kw, dtype):
    policy = make_policy(name, n_obs=5, n_act=3, **kw)
    make_kernel, backend = compile_policy(policy, dtype=dtype)
    assert backend == "numpy"  # every model here has a numpy kernel (the LTC's since issue 14)
    steps = 1000 if name != "ltc" else 200
    act, state = _torch_rollout_check(policy, make_kernel(1), steps, 1, seed=1)
    assert act < 1e-5 and state < 1e-5, (act, state)
    act, state = _torch_rollout_check(policy, make_kernel(4), steps // 4, 4, seed=2, reset_every=17)
    assert act < 1e-5 and state < 1e-5, (act, state)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_equals_torch_at_the_default_sizes(make_policy, dtype):
    # The benchmarked configuration: 64-unit CfC and 64-neuron NCP on 17 inputs, 6 actions.
    for name in ("cfc", "ncp"):
        policy = make_policy(name, n_obs=17, n_act=6)
        act, state = _torch_rollout_check(policy, compile_policy(policy, dtype=dtype)[0](1), 1000, 1, seed=3)
        assert act < 1e-5 and state < 1e-5, (name, act, state)
        act, state = _torch_rollout_check(policy, compile_policy(policy, dtype=dtype)[0](64), 25, 64, seed=4)
        assert act < 1e-5 and state < 1e-5, (name, act, state)


def test_actions_stay_inside_the_bounds(make_policy):
    policy = make_policy("cfc", units=8, backbone_units=8)
    kernel = compile_policy(policy)[0](8)
    low, high = policy.action_mapping.low, policy.action_mapping.high
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = kernel.step(rng.normal(size=(8, 4)) * 1e6, np.ones((8, 1)))
        kernel.commit()
        assert np.all(a >= low) and np.all(a <= high)


def test_commit_keeps_chosen_rows(make_policy):
    policy = make_policy("cfc-mm", units=8, backbone_units=8)
    kernel = compile_policy(policy)[0](3)
    rng = np.random.default_rng(0)
    kernel.step(rng.normal(size=(3, 4)), np.ones((3, 1)))
    kernel.commit()
    before = [s.copy() for s in kernel.state]
    kernel.step(rng.normal(size=(3, 4)), np.ones((3, 1)))
    kernel.commit(np.array([False, True, False]))
    for old, new in zip(before, kernel.state):
        np.testing.assert_array_equal(new[1], old[1])
        assert not np.allclose(new[0], old[0]) and not np.allclose(new[2], old[2])


def test_backend_choice(make_policy):
    ltc = make_policy("ltc", units=6)
    with pytest.raises(ValueError, match="no numpy kernel"):  # elu has none (the LTC has one now)
        compile_policy(make_policy("mlp", hidden=(8,), activation="elu"), "numpy")
    make_kernel, backend = compile_policy(make_policy("cfc", units=8), "torch")
    assert backend == "torch" and isinstance(make_kernel(2), TorchKernel)
    with pytest.raises(ValueError, match="backend"):
        compile_policy(ltc, "jax")
    with pytest.raises(ValueError, match="dtype"):
        compile_policy(ltc, dtype="float16")


def test_kernel_reads_the_weights_at_compile_time(make_policy):
    policy = make_policy("cfc", units=8, backbone_units=8)
    kernel = compile_policy(policy)[0](1)
    obs = np.ones(4)
    first = kernel.step(obs, 1.0).copy()
    kernel.reset()
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    np.testing.assert_array_equal(kernel.step(obs, 1.0), first)


@pytest.mark.parametrize("proj", [None, 3])
def test_one_layer_wiring_with_motor_neurons_first(proj):
    # The output (motor neurons) sits at the start of the state here, not at its end.
    from cfc_control.models.cfc import CfC
    from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput
    from cfc_control.wirings import Random

    model = CfC(5, Random(10, 3, sparsity_level=0.5), proj_size=proj)
    policy = RecurrentPolicy(model, ObsNormalizer(np.ones(5), np.full(5, 2.0)),
                             ActionMapping(-np.ones(3), 2 * np.ones(3)), TimeInput.around(NOMINAL)).eval()
    make_kernel, backend = compile_policy(policy)
    assert backend == "numpy"
    act, state = _torch_rollout_check(policy, make_kernel(2), 300, 2, seed=4)
    assert act < 1e-5 and state < 1e-5
