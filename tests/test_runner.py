"""PolicyRunner: what a control loop relies on. Same actions as the torch policy, Δt from dt,
timestamps or the nominal period, clamping counted and warned, per-row batches, snapshots, and bad
input refused (raise) or held (hold) without touching the state, fuzzed."""

import math
import warnings

import numpy as np
import pytest
import torch

from cfc_control import PolicyRunner
from cfc_control.runtime import BadInputError, DtClampWarning, NonFiniteOutputError, RunnerState

NOMINAL = 0.04
# np.matrix is deprecated, and exactly what a careless caller may still hand over.
pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


@pytest.fixture
def policy_dir(make_policy, tmp_path):
    make_policy("cfc", n_obs=4, n_act=2, units=16, backbone_units=16, directory=tmp_path / "p")
    return tmp_path / "p"


def _torch_actions(policy, obs_seq, dt_seq):
    """The torch policy's actions for (T, B, n_obs) observations and (T, B) Δt in seconds."""
    hx, out = None, []
    with torch.no_grad():
        for obs, dt in zip(obs_seq, dt_seq):
            y, hx = policy.step(torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(dt, dtype=torch.float32), hx)
            out.append(policy.to_action(y).numpy())
    return np.stack(out)


def test_load_spaces_and_attributes(policy_dir):
    from cfc_control.policies import load_policy

    from cfc_control.runtime.c_export.build import find_compiler

    runner = PolicyRunner.load(policy_dir)
    policy = load_policy(policy_dir)
    # "auto": the C backend where a compiler exists (gcc is on every machine we test on), else numpy
    assert runner.backend == ("c" if find_compiler() else "numpy") and runner.batch_size == 1
    assert runner.nominal_dt == pytest.approx(NOMINAL)
    assert (runner.dt_min, runner.dt_max) == pytest.approx((0.25 * NOMINAL, 4 * NOMINAL))
    assert runner.observation_space.shape == (4,)
    np.testing.assert_allclose(runner.action_space.low, policy.action_mapping.low)
    np.testing.assert_allclose(runner.action_space.high, policy.action_mapping.high)
    a = runner.step(np.zeros(4))
    assert a.shape == (2,) and a.dtype == np.float64 and runner.action_space.contains(a)
    assert runner.step(np.zeros((1, 4))).shape == (1, 2)
    assert "PolicyRunner" in repr(runner)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_matches_the_torch_policy_with_dt(policy_dir, backend):
    from cfc_control.policies import load_policy

    policy = load_policy(policy_dir)
    rng = np.random.default_rng(0)
    T = 1000 if backend == "numpy" else 200
    obs = rng.normal(size=(T, 1, 4)) * 2
    dt = rng.uniform(0.5, 2.0, size=(T, 1)) * NOMINAL
    want = _torch_actions(policy, obs, dt)
    runner = PolicyRunner.load(policy_dir, backend=backend)
    got = np.stack([runner.step(o[0], d[0]) for o, d in zip(obs, dt)])
    np.testing.assert_allclose(got, want[:, 0], atol=1e-5)
    assert runner.stats.steps == T and runner.stats.clamped_low == runner.stats.clamped_high == 0


def test_timestamps_give_the_differences_and_nominal_first(policy_dir):
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(50, 4))
    gaps = rng.uniform(0.6, 1.8, size=50) * NOMINAL
    stamps = 1000.0 + np.cumsum(gaps)
    by_ts, by_dt = PolicyRunner.load(policy_dir), PolicyRunner.load(policy_dir)
    a = [by_ts.step(o, timestamp=t) for o, t in zip(obs, stamps)]
    # First step: no previous timestamp -> the nominal period; then the differences.
    b = [by_dt.step(obs[0], NOMINAL)] + [by_dt.step(o, d) for o, d in zip(obs[1:], np.diff(stamps))]
    np.testing.assert_allclose(a, b, atol=1e-6)
    by_ts.reset()
    by_dt.reset()
    np.testing.assert_allclose(by_ts.step(obs[0], timestamp=5.0), by_dt.step(obs[0], NOMINAL), atol=1e-6)
    # A step without timestamp forgets the last one: the next timestamped step is nominal again.
    by_ts.step(obs[1], NOMINAL)
    by_dt.step(obs[1], NOMINAL)
    np.testing.assert_allclose(by_ts.step(obs[2], timestamp=99.0), by_dt.step(obs[2]), atol=1e-6)


def test_no_dt_means_the_nominal_period(policy_dir):
    obs = np.random.default_rng(2).normal(size=(20, 4))
    r1, r2 = PolicyRunner.load(policy_dir), PolicyRunner.load(policy_dir)
    np.testing.assert_array_equal([r1.step(o) for o in obs], [r2.step(o, NOMINAL) for o in obs])


def test_out_of_range_dt_is_clamped_counted_and_warned_once(policy_dir):
    runner, ref = PolicyRunner.load(policy_dir), PolicyRunner.load(policy_dir)
    obs = np.ones(4)
    with pytest.warns(DtClampWarning, match="clamped"):
        a = runner.step(obs, 100.0)
    np.testing.assert_array_equal(a, ref.step(obs, runner.dt_max))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DtClampWarning)
        runner.step(obs, 200.0)  # the second high clamp does not warn again
        ref.step(obs, runner.dt_max)
    with pytest.warns(DtClampWarning):
        np.testing.assert_array_equal(runner.step(obs, 1e-6), ref.step(obs, runner.dt_min))
    assert (runner.stats.clamped_high, runner.stats.clamped_low) == (2, 1)


def test_batch_per_row_dt_and_reset(policy_dir):
    from cfc_control.policies import load_policy

    policy = load_policy(policy_dir)
    rng = np.random.default_rng(3)
    T, B = 60, 3
    obs = rng.normal(size=(T, B, 4))
    dt = rng.uniform(0.5, 2.0, size=(T, B)) * NOMINAL
    runner = PolicyRunner.load(policy_dir, batch_size=B)
    got = np.stack([runner.step(o, d) for o, d in zip(obs, dt)])
    np.testing.assert_allclose(got, _torch_actions(policy, obs, dt), atol=1e-5)
    # Resetting row 1 makes it behave like a fresh single-row runner; the others continue.
    others = [PolicyRunner.load(policy_dir) for _ in range(B)]
    for r, row in zip(others, range(B)):
        for o, d in zip(obs[:, row], dt[:, row]):
            r.step(o, d)
    runner.reset(rows=[1])
    others[1].reset()
    after = runner.step(obs[0], dt[0])
    for row in range(B):
        np.testing.assert_allclose(after[row], others[row].step(obs[0, row], dt[0, row]), atol=1e-6)
    runner.reset(np.array([True, False, False]))
    state = runner.get_state()
    runner.reset(rows=[])  # "reset the rows that just finished" when none did
    np.testing.assert_array_equal(runner.get_state().model_state[0], state.model_state[0])
    with pytest.raises(ValueError, match="out of range"):
        runner.reset(rows=[3])
    with pytest.raises(ValueError, match="mask"):
        runner.reset(rows=np.array([True, False]))


def test_batch_timestamps_per_row(policy_dir):
    runner = PolicyRunner.load(policy_dir, batch_size=2)
    ref = PolicyRunner.load(policy_dir, batch_size=2)
    obs = np.ones((2, 4))
    runner.step(obs, timestamp=[10.0, 20.0])
    ref.step(obs)
    np.testing.assert_allclose(runner.step(obs, timestamp=[10.03, 20.05]), ref.step(obs, [0.03, 0.05]), atol=1e-6)
    runner.reset(rows=0)
    ref.reset(rows=0)
    np.testing.assert_allclose(runner.step(obs, timestamp=[11.0, 20.09]), ref.step(obs, [NOMINAL, 0.04]), atol=1e-6)


def test_snapshot_and_hand_over(policy_dir):
    rng = np.random.default_rng(4)
    obs = rng.normal(size=(30, 4))
    runner = PolicyRunner.load(policy_dir)
    for o in obs[:10]:
        runner.step(o, 0.05)
    for i, o in enumerate(obs[10:20]):
        runner.step(o, timestamp=100.0 + 0.035 * i)
    snap = runner.get_state()
    assert isinstance(snap, RunnerState) and snap.model_state[0].shape == (1, 16)
    assert snap.last_timestamp[0] == pytest.approx(100.0 + 0.035 * 9)
    stamps = 100.0 + 0.035 * 9 + 0.03 * np.arange(1, 11)
    first = [runner.step(o, timestamp=t) for o, t in zip(obs[20:], stamps)]
    runner.set_state(snap)
    np.testing.assert_array_equal([runner.step(o, timestamp=t) for o, t in zip(obs[20:], stamps)], first)
    other = runner.spawn()  # shares the weights, fresh state
    other.set_state(snap)
    np.testing.assert_array_equal([other.step(o, timestamp=t) for o, t in zip(obs[20:], stamps)], first)
    # Model state alone, as the torch model's hx.
    other.set_state(snap.model_state[0])
    assert np.isnan(other.get_state().last_timestamp).all()
    with pytest.raises(ValueError, match="shape"):
        other.set_state(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        other.set_state(np.full((1, 16), np.nan))


def test_get_state_is_a_copy(policy_dir):
    runner = PolicyRunner.load(policy_dir)
    runner.step(np.ones(4))
    snap = runner.get_state()
    saved = snap.model_state[0].copy()
    runner.step(np.ones(4))
    np.testing.assert_array_equal(snap.model_state[0], saved)


BAD_OBS = [
    (np.zeros(5), "shape"),
    (np.zeros((2, 4)), "shape"),
    (np.zeros(4, dtype=bool), "dtype"),
    (np.zeros(4, dtype=complex), "dtype"),
    (["a", "b", "c", "d"], "dtype"),
    (np.array([0.0, np.nan, 0.0, 0.0]), "non-finite"),
    (np.array([0.0, 0.0, -np.inf, 0.0], dtype=np.float32), "non-finite"),
    ([[1, 2], [3]], "not an array"),
]
BAD_TIME = [
    (dict(dt=0.0), "dt"),
    (dict(dt=-0.01), "dt"),
    (dict(dt=float("nan")), "dt"),
    (dict(dt=float("inf")), "dt"),
    (dict(dt=np.ones(3)), "shape"),
    (dict(dt="fast"), "dtype"),
    (dict(timestamp=float("nan")), "finite"),
]


def _state(runner):
    s = runner.get_state()
    return [a.copy() for a in s.model_state], s.last_timestamp.copy(), s.last_action.copy()


def _same_state(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])


@pytest.mark.parametrize("obs,match", BAD_OBS)
def test_bad_observation_raises_and_leaves_the_state(policy_dir, obs, match):
    runner = PolicyRunner.load(policy_dir)
    runner.step(np.ones(4), timestamp=1.0)
    before = _state(runner)
    with pytest.raises(BadInputError, match=match) as info:
        runner.step(obs, timestamp=1.04)
    assert isinstance(info.value, ValueError) and info.value.rows == (0,)
    _same_state(before, _state(runner))
    assert runner.stats.bad_input == 1 and runner.stats.steps == 1


@pytest.mark.parametrize("kw,match", BAD_TIME)
def test_bad_time_raises_and_leaves_the_state(policy_dir, kw, match):
    runner = PolicyRunner.load(policy_dir)
    runner.step(np.ones(4))
    before = _state(runner)
    with pytest.raises(BadInputError, match=match):
        runner.step(np.ones(4), **kw)
    _same_state(before, _state(runner))


@pytest.mark.parametrize("second", [5.0, 4.99])
def test_timestamp_that_does_not_advance(policy_dir, second):
    runner = PolicyRunner.load(policy_dir)
    runner.step(np.ones(4), timestamp=5.0)
    before = _state(runner)
    with pytest.raises(BadInputError, match="does not advance"):
        runner.step(np.ones(4), timestamp=second)
    _same_state(before, _state(runner))
    runner.step(np.ones(4), timestamp=5.04)  # the stream continues from the last good timestamp


def test_dt_and_timestamp_together_is_a_usage_error(policy_dir):
    with pytest.raises(TypeError, match="not both"):
        PolicyRunner.load(policy_dir).step(np.ones(4), 0.04, timestamp=1.0)


def test_hold_returns_the_last_good_action_and_keeps_the_state(policy_dir, make_policy):
    runner = PolicyRunner.load(policy_dir, on_bad_input="hold")
    center = runner.policy.action_mapping.center
    # Before any good step: the center of the action space.
    np.testing.assert_allclose(runner.step(np.full(4, np.nan)), center)
    good = runner.step(np.ones(4), 0.04)
    before = _state(runner)
    for obs, kw in [(np.full(4, np.inf), {}), (np.ones(4), dict(dt=-1.0)), (np.zeros(3), {})]:
        np.testing.assert_array_equal(runner.step(obs, **kw), good)
        _same_state(before, _state(runner))
    assert runner.stats.held == 4 and runner.stats.bad_input == 4
    assert isinstance(runner.last_error, BadInputError)
    runner.reset()
    np.testing.assert_allclose(runner.step(np.full(4, np.nan)), center)


def test_hold_in_a_batch_holds_only_the_bad_rows(policy_dir):
    runner = PolicyRunner.load(policy_dir, batch_size=3, on_bad_input="hold")
    ref = PolicyRunner.load(policy_dir, batch_size=3)
    obs = np.random.default_rng(5).normal(size=(3, 4))
    first = runner.step(obs, 0.04)
    ref.step(obs, 0.04)
    bad = obs.copy()
    bad[1, 2] = np.nan
    out = runner.step(bad, [0.04, 0.04, -1.0])
    np.testing.assert_array_equal(out[1], first[1])
    np.testing.assert_array_equal(out[2], first[2])
    ref_rows = ref.spawn(batch_size=3)
    ref_rows.set_state(ref.get_state())
    np.testing.assert_allclose(out[0], ref_rows.step(obs, 0.04)[0], atol=1e-6)
    assert runner.stats.held == 2 and runner.stats.bad_input == 2
    # The held rows kept their state: stepping them now equals stepping the reference.
    np.testing.assert_allclose(runner.step(obs, 0.04)[1:], ref.step(obs, 0.04)[1:], atol=1e-6)
    with pytest.raises(BadInputError) as info:
        PolicyRunner.load(policy_dir, batch_size=3).step(bad)
    assert info.value.rows == (1,)


def test_non_finite_model_output_is_refused(make_policy, tmp_path):
    policy = make_policy("cfc", units=8, backbone_units=8)
    with torch.no_grad():
        policy.model.fc.weight[0, 0] = float("nan")
    runner = PolicyRunner(policy)
    with pytest.raises(NonFiniteOutputError):
        runner.step(np.ones(4))
    assert np.all(runner.get_state().model_state[0] == 0)
    holder = PolicyRunner(policy, on_bad_input="hold")
    a = holder.step(np.ones(4))
    np.testing.assert_allclose(a, policy.action_mapping.center)
    assert holder.stats.non_finite_output == 1 and holder.stats.held == 1
    batch = PolicyRunner(policy, batch_size=2, on_bad_input="hold")
    assert np.isfinite(batch.step(np.ones((2, 4)))).all()


def test_constructor_arguments_are_checked(policy_dir):
    with pytest.raises(ValueError, match="on_bad_input"):
        PolicyRunner.load(policy_dir, on_bad_input="ignore")
    with pytest.raises(ValueError, match="batch_size"):
        PolicyRunner.load(policy_dir, batch_size=0)
    with pytest.raises(ValueError, match="backend"):
        PolicyRunner.load(policy_dir, backend="cuda")


def _random_input(rng, batch):
    """An observation and time argument, good or bad in one of many ways."""
    kind = rng.integers(0, 15)
    shape = (4,) if batch == 1 and rng.uniform() < 0.5 else (batch, 4)
    obs = rng.normal(size=shape) * 10.0 ** rng.integers(-3, 4)
    if kind == 0:
        obs.flat[rng.integers(0, obs.size)] = rng.choice([np.nan, np.inf, -np.inf])
    elif kind == 1:
        obs = rng.normal(size=(batch, int(rng.integers(1, 7))))
    elif kind == 2:
        obs = obs.astype(rng.choice([np.float32, np.int64, bool, np.complex64]))
    elif kind == 3:
        obs = obs * 1e300  # finite but overflows any product
    elif kind == 4:  # a masked array, NaN under the mask (numpy's own checks skip masked entries)
        mask = np.zeros(obs.shape, dtype=bool)
        mask.flat[rng.integers(0, obs.size)] = rng.uniform() < 0.7
        obs = np.ma.masked_array(np.where(mask, np.nan, obs), mask=mask)
    elif kind == 5:
        obs = np.matrix(obs.reshape(-1, 4) if obs.ndim == 1 else obs)
    kw = {}
    t = rng.integers(0, 7)
    if t == 1:
        kw["dt"] = float(rng.choice([0.0, -0.01, np.nan, np.inf, 1e-9, 1e9, 0.04, 0.02]))
    elif t == 2:
        kw["dt"] = rng.uniform(-0.01, 0.2, size=batch)
    elif t in (3, 4):
        kw["timestamp"] = float(rng.uniform(0, 10))  # often backwards
    elif t == 5:  # Python ints of any size: huge ones do not fit a float
        kw[str(rng.choice(["dt", "timestamp"]))] = int(rng.choice([1, 10**30, 10**400, -(10**400)]))
    return obs, kw


def _spoiled(snapshot, rng, low, high):
    """``snapshot`` with one entry out of range: a state value non-finite or beyond float32, a
    last action outside the bounds, or an infinite timestamp."""
    states = [a.copy() for a in snapshot.model_state]
    action, stamps = snapshot.last_action.copy(), snapshot.last_timestamp.copy()
    kind = int(rng.integers(0, 3))
    if kind == 0:
        states[int(rng.integers(0, len(states)))].flat[0] = rng.choice([np.nan, np.inf, 1e300, -1e12])
    elif kind == 1:
        action.flat[int(rng.integers(0, action.size))] = rng.choice([np.nan, high[0] + 1e6, low[0] - 1.0])
    else:
        stamps[0] = rng.choice([np.inf, -np.inf])
    return RunnerState(tuple(states), stamps, action)


@pytest.mark.parametrize("mode", ["raise", "hold"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", ["cfc", "cfc-mm"])
def test_fuzz_never_corrupts_state_or_returns_non_finite(make_policy, tmp_path, mode, batch, name):
    """A runner fed random good and bad input ends in the state of a runner fed only what the
    first one accepted, and never returns a non-finite action."""
    policy_dir = tmp_path / name
    make_policy(name, n_obs=4, n_act=2, units=16, backbone_units=16, directory=policy_dir)
    rng = np.random.default_rng(100 + batch)
    runner = PolicyRunner.load(policy_dir, batch_size=batch, on_bad_input=mode)
    shadow = PolicyRunner.load(policy_dir, batch_size=batch)
    low, high = runner.action_space.low, runner.action_space.high
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtClampWarning)
        for i in range(400):
            obs, kw = _random_input(rng, batch)
            held_before = runner.stats.held
            try:
                action = runner.step(obs, **kw)
            except BadInputError as err:
                assert mode == "raise" and str(err)
                continue
            action = np.asarray(action)
            assert np.all(np.isfinite(action)) and np.all(action >= low) and np.all(action <= high)
            if runner.stats.held == held_before:  # accepted everywhere: the shadow takes it too
                np.testing.assert_array_equal(shadow.step(obs, **kw), action)
            else:
                assert mode == "hold"
                if batch > 1:  # partly held: replay the accepted rows into the shadow
                    shadow.set_state(runner.get_state())
            if i % 97 == 0:
                runner.reset()
                shadow.reset()
            if i % 13 == 0:  # a snapshot with one out-of-range value is refused and changes nothing
                with pytest.raises(ValueError):
                    runner.set_state(_spoiled(runner.get_state(), rng, low, high))
    a, b = runner.get_state(), shadow.get_state()
    for x, y in zip(a.model_state, b.model_state):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.last_timestamp, b.last_timestamp)
    assert math.isfinite(float(np.sum(a.model_state[0])))
    assert runner.stats.steps > 50


def test_masked_arrays_and_matrices(policy_dir):
    runner = PolicyRunner.load(policy_dir)
    obs = np.array([0.5, -1.0, 2.0, 0.1])
    want = PolicyRunner.load(policy_dir).step(obs, 0.04)
    masked = np.ma.masked_array([0.5, np.nan, 2.0, 0.1], mask=[False, True, False, False])
    with pytest.raises(BadInputError, match="masked"):
        runner.step(masked, 0.04)
    assert runner.stats.steps == 0
    np.testing.assert_array_equal(runner.step(np.ma.masked_array(obs), 0.04), want)  # nothing masked
    runner.reset()
    np.testing.assert_array_equal(runner.step(np.matrix(obs), 0.04), want[None])


@pytest.mark.parametrize("batch", [1, 4])
def test_huge_python_int_times(policy_dir, batch):
    runner = PolicyRunner.load(policy_dir, batch_size=batch)
    obs = np.ones((batch, 4))
    for kw in (dict(dt=10**400), dict(timestamp=10**400), dict(dt=[10**400] * batch)):
        with pytest.raises(BadInputError):
            runner.step(obs, **kw)
    with pytest.warns(DtClampWarning):  # a huge but representable int is a period like any other
        assert runner.step(obs, dt=10**30).shape == (batch, 2)
    assert runner.stats.clamped_high == batch and runner.stats.bad_input == 3 * batch


def test_a_bad_step_does_not_break_a_mixed_memory_kernel(make_policy):
    """The mixed-memory kernel keeps an intermediate (the LSTM's output) beside its state: a NaN
    step must not leave it poisoned, and reset() must give a fresh kernel's actions."""
    from cfc_control.runtime.compiled import compile_policy

    make_kernel, _ = compile_policy(make_policy("cfc-mm", units=8, backbone_units=8))
    kernel, fresh = make_kernel(1), make_kernel(1)
    kernel.step(np.array([0.0, np.nan, 0.0, 0.0]), 1.0)  # refused by a runner: never committed
    obs = np.array([0.3, -0.2, 0.5, 1.0])
    np.testing.assert_array_equal(kernel.step(obs, 1.0), fresh.step(obs, 1.0))
    kernel.commit()
    fresh.commit()
    kernel.reset()
    fresh.reset()
    np.testing.assert_array_equal(kernel.step(obs, 1.0), fresh.step(obs, 1.0))


def test_set_state_refuses_out_of_range_snapshots(policy_dir):
    runner = PolicyRunner.load(policy_dir, on_bad_input="hold")
    runner.step(np.ones(4), 0.04)
    good = runner.get_state()
    bad_action = RunnerState(good.model_state, good.last_timestamp, np.full((1, 2), 1e6))
    huge_state = RunnerState((np.full_like(good.model_state[0], 1e300),), good.last_timestamp, good.last_action)
    inf_time = RunnerState(good.model_state, np.array([np.inf]), good.last_action)
    for snapshot, match in [(bad_action, "action bounds"), (huge_state, "beyond"), (inf_time, "timestamps")]:
        with pytest.raises(ValueError, match=match):
            runner.set_state(snapshot)
        _same_state(([a.copy() for a in good.model_state], good.last_timestamp, good.last_action), _state(runner))
    with pytest.raises(ValueError, match="beyond"):
        runner.set_state(np.full_like(good.model_state[0], 1e300))
    held = runner.step(np.full(4, np.nan), 0.04)
    assert np.all(held >= runner.action_space.low) and np.all(held <= runner.action_space.high)


@pytest.mark.parametrize("field,value", [("high", "1e999"), ("low", "-1e999"), ("high", "1e35"),
                                         ("nominal_dt", "1e999"), ("dt_max", "1e999"), ("mean", "1e999")])
def test_configs_with_absurd_bounds_do_not_load(policy_dir, field, value):
    import json

    from cfc_control.policies import load_policy

    config = json.loads((policy_dir / "config.json").read_text())
    section = {"high": "action", "low": "action", "nominal_dt": "time", "dt_max": "time"}.get(field)
    if section:
        target = config["policy"][section]
    else:
        target = config["policy"]["observation"]["normalization"]
    target[field] = [1234.5] * len(target[field]) if isinstance(target[field], list) else 1234.5
    text = json.dumps(config).replace("1234.5", value)
    (policy_dir / "config.json").write_text(text)
    with pytest.raises(ValueError, match="config.json"):
        load_policy(policy_dir)
