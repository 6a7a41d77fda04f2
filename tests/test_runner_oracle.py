"""PolicyRunner against an oracle that shares none of its code: the torch RecurrentPolicy stepping
the same raw observations and Δt in seconds (its own normalisation, Δt clamp and action mapping).
Every model kind, single rows and batches, Δt inside and outside the accepted range, and held
actions; then the same law as a property over inputs hypothesis draws."""

import os
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cfc_control import PolicyRunner
from cfc_control.models import make
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput
from cfc_control.runtime import BadInputError, DtClampWarning
from oracles import torch_actions

NOMINAL = 0.04  # accepted Δt: [0.01, 0.16] s
N_OBS, N_ACT = 4, 2

MODELS = {
    "cfc": dict(units=12, backbone_units=16),
    "cfc-nogate": dict(units=12, backbone_units=16),
    "cfc-pure": dict(units=12, backbone_units=16),
    "cfc-mm": dict(units=12, backbone_units=16),
    "ncp": dict(units=14),
    "lstm": dict(units=10),
    "gru": dict(units=10),
    "ltc": dict(units=8),
    "mlp": dict(hidden=(12,)),
}


def _policy(name, seed=0):
    """A random-weight policy with non-trivial normalisation and asymmetric action bounds; the
    output layer is scaled up so that the action clip is reached on some steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = make(name, N_OBS, N_ACT, **MODELS[name])
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    norm = ObsNormalizer(rng.normal(size=N_OBS), rng.uniform(0.5, 2.0, N_OBS), clip=5.0)
    low = -rng.uniform(0.5, 2.0, N_ACT)
    actions = ActionMapping(low, low + rng.uniform(1.0, 3.0, N_ACT))
    return RecurrentPolicy(model, norm, actions, TimeInput.around(NOMINAL), task="test", model_name=name).eval()


_POLICIES = {}


def _cached(name):
    if name not in _POLICIES:
        _POLICIES[name] = _policy(name)
    return _POLICIES[name]


def _times(rng, shape):
    """Δt in seconds spanning 0.1x-10x nominal: about a third outside [dt_min, dt_max]."""
    return NOMINAL * np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=shape))


@pytest.mark.parametrize("name", list(MODELS))
def test_batch_runner_equals_the_torch_policy_with_dt_outside_the_range(name):
    """Kills the mutation "the batch Δt clamp removed" (np.clip in PolicyRunner._step_batch)."""
    policy = _cached(name)
    rng = np.random.default_rng(1)
    T, B = 120, 5
    obs = rng.normal(size=(T, B, N_OBS)) * 3.0
    dt = _times(rng, (T, B))
    low, high = dt < policy.time_input.dt_min, dt > policy.time_input.dt_max
    assert low.sum() > 30 and high.sum() > 30 and (~low & ~high).sum() > 30
    runner = PolicyRunner(policy, batch_size=B)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtClampWarning)
        got = np.stack([runner.step(o, d) for o, d in zip(obs, dt)])
    np.testing.assert_allclose(got, torch_actions(policy, obs, dt), atol=2e-5, rtol=0)
    assert (runner.stats.clamped_low, runner.stats.clamped_high) == (low.sum(), high.sum())
    if name not in ("ncp", "lstm"):  # their small random outputs stay inside the bounds
        # The action clip was reached: the mapping's bounds are part of what was compared.
        assert np.isclose(got, runner.action_space.low).any() or np.isclose(got, runner.action_space.high).any()


@pytest.mark.parametrize("name", ["cfc", "ncp", "cfc-mm", "ltc"])
def test_single_row_runner_equals_the_torch_policy_with_dt_outside_the_range(name):
    policy = _cached(name)
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(200, 1, N_OBS)) * 3.0
    dt = _times(rng, (200, 1))
    runner = PolicyRunner(policy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtClampWarning)
        got = np.stack([runner.step(o[0], d[0]) for o, d in zip(obs, dt)])
    np.testing.assert_allclose(got, torch_actions(policy, obs, dt)[:, 0], atol=2e-5, rtol=0)


def test_timestamps_and_row_resets_equal_the_torch_policy():
    """Δt from per-row timestamps (the first one after a reset is the nominal period), with rows
    reset mid-run, against the torch policy given those Δt and episode starts."""
    policy = _cached("cfc")
    rng = np.random.default_rng(3)
    T, B = 80, 3
    obs = rng.normal(size=(T, B, N_OBS))
    stamps = 50.0 + np.cumsum(_times(rng, (T, B)), axis=0)
    resets = rng.uniform(size=(T, B)) < 0.05
    resets[0] = True
    dt = np.vstack([np.full((1, B), NOMINAL), np.diff(stamps, axis=0)])
    dt[resets] = NOMINAL
    runner = PolicyRunner(policy, batch_size=B)
    got = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtClampWarning)
        for t in range(T):
            runner.reset(resets[t])
            got.append(runner.step(obs[t], timestamp=stamps[t]))
    np.testing.assert_allclose(np.stack(got), torch_actions(policy, obs, dt, resets), atol=2e-5, rtol=0)


def test_held_rows_return_the_torch_policys_last_action_and_keep_its_state():
    """on_bad_input="hold": a bad row gets the action the torch policy gave it at its last good
    step, and its state goes on as if the bad step never happened (the oracle skips it)."""
    policy = _cached("cfc")
    rng = np.random.default_rng(4)
    T, B = 40, 3
    obs = rng.normal(size=(T, B, N_OBS))
    dt = _times(rng, (T, B))
    bad = rng.uniform(size=(T, B)) < 0.2
    bad[0] = False
    runner = PolicyRunner(policy, batch_size=B, on_bad_input="hold")
    fed = obs.copy()
    fed[bad] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtClampWarning)
        got = np.stack([runner.step(o, d) for o, d in zip(fed, dt)])
    for row in range(B):
        good = ~bad[:, row]
        want = torch_actions(policy, obs[good, row][:, None], dt[good, row][:, None])[:, 0]
        last_good = np.cumsum(good) - 1  # index into the good steps of the action each step returns
        np.testing.assert_allclose(got[:, row], want[last_good], atol=2e-5, rtol=0)
    assert runner.stats.held == bad.sum()


# -- the law as a property ---------------------------------------------------------------------

_finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
_dt = st.floats(1e-4, 1.0, allow_nan=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["cfc", "ncp", "cfc-mm", "gru"]), batch=st.integers(1, 4), steps=st.integers(1, 12),
       data=st.data())
def test_property_the_runner_equals_the_torch_policy(name, batch, steps, data):
    obs = data.draw(arrays(np.float64, (steps, batch, N_OBS), elements=_finite), label="obs")
    dt = data.draw(arrays(np.float64, (steps, batch), elements=_dt), label="dt")
    policy = _cached(name)
    runner = PolicyRunner(policy, batch_size=batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtClampWarning)
        got = np.stack([runner.step(o, d) for o, d in zip(obs, dt)])
    np.testing.assert_allclose(got, torch_actions(policy, obs, dt), atol=5e-5, rtol=0)


_any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=60, deadline=None)
@given(obs=st.one_of(arrays(np.float64, st.integers(1, 7), elements=_any_float),
                     arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 7)), elements=_any_float),
                     arrays(np.float32, (N_OBS,), elements=st.floats(width=32))),
       dt=st.one_of(st.none(), _any_float))
def test_property_any_observation_gives_a_finite_action_in_bounds_or_a_bad_input_error(obs, dt):
    runner = PolicyRunner(_cached("cfc"))
    before = runner.get_state()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DtClampWarning)
            action = np.asarray(runner.step(obs, dt))
    except BadInputError as err:
        assert str(err) and "\n" not in str(err)
        np.testing.assert_array_equal(runner.get_state().model_state[0], before.model_state[0])
        return
    assert np.all(np.isfinite(action))
    assert np.all(action >= runner.action_space.low) and np.all(action <= runner.action_space.high)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_clamp_warning_names_the_bound_and_points_at_the_caller(batch):
    runner = PolicyRunner(_cached("cfc"), batch_size=batch)
    obs = np.zeros((batch, N_OBS))
    for dt, bound in ((NOMINAL / 10, runner.dt_min), (NOMINAL * 10, runner.dt_max)):
        with pytest.warns(DtClampWarning) as caught:
            runner.step(obs, dt)
        assert len(caught) == 1 and f"clamped to {bound}" in str(caught[0].message)
        if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampolines add frames to the stack
            assert caught[0].filename == __file__  # stacklevel: the user's call, not the runner


def test_a_batch_refuses_every_bad_row_for_every_reason_at_once():
    """Row 0: NaN observation; row 2: a timestamp that does not advance (Δt = 0); row 3: a
    non-finite timestamp. All are named, nothing steps (mutmut found the combining unchecked)."""
    runner = PolicyRunner(_cached("cfc"), batch_size=4)
    runner.step(np.zeros((4, N_OBS)), timestamp=[1.0, 1.0, 1.0, 1.0])
    before = runner.get_state()
    obs = np.zeros((4, N_OBS))
    obs[0, 1] = np.nan
    with pytest.raises(BadInputError) as info:
        runner.step(obs, timestamp=[1.04, 1.04, 1.0, np.inf])
    assert info.value.rows == (0, 2, 3)
    assert "rows [2]" in str(info.value) and "rows [3]" in str(info.value)
    np.testing.assert_array_equal(runner.get_state().model_state[0], before.model_state[0])
    np.testing.assert_array_equal(runner.get_state().last_timestamp, before.last_timestamp)
