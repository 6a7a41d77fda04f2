"""Laws checked on inputs hypothesis draws: a model stepped one period at a time equals the same
model run over the sequence (any Δt, any episode starts, every model kind, eval and training
mode); a timing spec's draws stay in its range and the spec parses back to itself; the action
mapping keeps any output inside the bounds and inverts normalisation. (The runner's laws are in
tests/test_runner_oracle.py.)"""

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cfc_control.models import make
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy
from cfc_control.tasks.timing import parse_timing

MODELS = {
    "cfc": dict(units=10, backbone_units=12),
    "cfc-nogate": dict(units=10, backbone_units=12),
    "cfc-pure": dict(units=10, backbone_units=12),
    "cfc-mm": dict(units=10, backbone_units=12),
    "ncp": dict(units=12),
    "ltc": dict(units=6),
    "lstm": dict(units=8),
    "gru": dict(units=8),
    "mlp": dict(hidden=(8,)),
}
_MODELS = {}


def _model(name):
    if name not in _MODELS:
        torch.manual_seed(7)
        _MODELS[name] = make(name, 3, 2, **MODELS[name])
    return _MODELS[name]


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(MODELS)), batch=st.integers(1, 3), steps=st.integers(1, 10),
       training=st.booleans(), data=st.data())
def test_property_stepping_equals_the_sequence_forward(name, batch, steps, training, data):
    x = data.draw(arrays(np.float32, (batch, steps, 3), elements=st.floats(-5, 5, width=32)), label="x")
    t = data.draw(arrays(np.float32, (batch, steps), elements=st.floats(0.0625, 8.0, width=32)), label="model time")
    starts = data.draw(arrays(np.bool_, (batch, steps)), label="episode starts")
    model = _model(name).train(training)
    x, t, starts = torch.as_tensor(x), torch.as_tensor(t), torch.as_tensor(starts)
    with torch.no_grad():
        seq, seq_state = model(x, None, t, starts)
        hx, outs = None, []
        for k in range(steps):
            y, hx = model.step(x[:, k], hx, t[:, k], starts[:, k])
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), seq, atol=2e-5, rtol=1e-4)
    for a, b in zip(hx if isinstance(hx, tuple) else (hx,), seq_state if isinstance(seq_state, tuple) else (seq_state,)):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


_seconds = st.floats(1e-4, 1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["uniform", "loguniform"]), a=_seconds, b=_seconds,
       drop=st.one_of(st.just(0.0), st.floats(0.0, 0.99)), seed=st.integers(0, 2**32 - 1))
def test_property_timing_draws_stay_in_range_and_the_spec_round_trips(kind, a, b, drop, seed):
    lo, hi = sorted((a, b))
    if not lo < hi or format(lo, ".12g") == format(hi, ".12g"):
        return  # the spec is written to 12 significant digits: closer bounds are one period
    spec = f"{kind}:{lo!r},{hi!r}" + (f"+drop:{drop!r}" if drop > 0 else "")
    model = parse_timing(spec)
    assert (model.kind, model.low, model.high, model.drop) == (kind, lo, hi, drop)
    again = parse_timing(model.spec)
    assert again.kind == kind and math.isclose(again.low, lo, rel_tol=1e-11) and math.isclose(again.high, hi, rel_tol=1e-11)
    rng = np.random.default_rng(seed)
    draws = np.array([model.sample(rng) for _ in range(200)])
    assert np.all((draws >= lo) & (draws <= hi))
    dropped = [model.sample_dropped(rng) for _ in range(50)]
    assert all(isinstance(d, bool) for d in dropped) and (drop > 0 or not any(dropped))
    # The same seed gives the same periods.
    rng2 = np.random.default_rng(seed)
    np.testing.assert_array_equal(draws[:20], [model.sample(rng2) for _ in range(20)])


@settings(max_examples=100, deadline=None)
@given(preset=st.sampled_from(["Fixed", "Jitter", "Irregular"]), nominal=st.floats(1e-3, 0.2),
       seed=st.integers(0, 2**32 - 1))
def test_property_preset_draws_stay_within_the_preset_range_of_any_nominal_period(preset, nominal, seed):
    relative = {"Fixed": (1.0, 1.0), "Jitter": (0.8, 1.2), "Irregular": (0.5, 2.0)}[preset]
    model = parse_timing(preset, nominal)
    rng = np.random.default_rng(seed)
    draws = np.array([model.sample(rng) for _ in range(100)]) / nominal
    # Presets are rounded to the canonical spec's 12 significant digits (a preset and its spelled-out
    # spec are one model), so the bounds hold to a few parts in 1e12.
    assert np.all(draws >= relative[0] * (1 - 1e-11)) and np.all(draws <= relative[1] * (1 + 1e-11))


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 4), data=st.data())
def test_property_the_action_mapping_stays_in_bounds_and_inverts_normalisation(n, data):
    from cfc_control.policies import ObsNormalizer, RecurrentPolicy, TimeInput

    low = data.draw(arrays(np.float64, n, elements=st.floats(-100, 100)), label="low")
    width = data.draw(arrays(np.float64, n, elements=st.floats(1e-3, 100)), label="width")
    mapping = ActionMapping(low, low + width)
    policy = RecurrentPolicy(_model("mlp") if n == 2 else make("mlp", 3, n, hidden=(4,)),
                             ObsNormalizer(np.zeros(3), np.ones(3)), mapping, TimeInput.around(0.02))
    y = data.draw(arrays(np.float32, (5, n), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)), label="y")
    action = policy.to_action(torch.as_tensor(y)).double().numpy()
    lo32, hi32 = low.astype(np.float32).astype(np.float64), (low + width).astype(np.float32).astype(np.float64)
    assert np.all(np.isfinite(action))
    # float32 arithmetic: inside the bounds up to float32 rounding of the bounds themselves
    slack = 4 * np.spacing(np.maximum(np.abs(lo32), np.abs(hi32)).astype(np.float32)).astype(np.float64)
    assert np.all(action >= lo32 - slack) and np.all(action <= hi32 + slack)
    inside = data.draw(arrays(np.float64, n, elements=st.floats(0, 1)), label="fraction")
    a = mapping.low + inside * (mapping.high - mapping.low)
    y_of_a = mapping.normalize(a)
    cancellation = np.maximum(np.abs(mapping.low), np.abs(mapping.high)) / mapping.half_range
    assert np.all(np.abs(y_of_a) <= 1 + 1e-14 * (1 + cancellation))
    np.testing.assert_allclose(mapping.center + mapping.half_range * y_of_a, a, rtol=1e-9,
                               atol=1e-12 * max(1.0, np.abs(mapping.low).max(), np.abs(mapping.high).max()))


@settings(max_examples=150, deadline=None)
@given(dt_min=st.floats(-0.01, 0.2), nominal=st.floats(-0.01, 0.2), dt_max=st.floats(-0.01, 0.2),
       dt=st.floats(1e-6, 1.0))
def test_property_a_time_input_is_valid_exactly_when_0_lt_min_le_nominal_le_max(dt_min, nominal, dt_max, dt):
    from cfc_control.policies import TimeInput

    if not (0 < dt_min <= nominal <= dt_max):
        with pytest.raises(ValueError, match=r"0 < dt_min <= nominal_dt <= dt_max, got .*" + re.escape(repr(dt_min))):
            TimeInput(nominal, dt_min, dt_max)
        return
    time_input = TimeInput(nominal, dt_min, dt_max)
    # The policy's model time is Δt clamped to the range, over the nominal period.
    policy = RecurrentPolicy(_model("mlp"), ObsNormalizer(np.zeros(3), np.ones(3)),
                             ActionMapping(-np.ones(2), np.ones(2)), time_input)
    got = float(policy.model_time(torch.tensor([dt], dtype=torch.float64)))
    assert got == pytest.approx(min(max(dt, dt_min), dt_max) / nominal, rel=1e-6)


@pytest.mark.parametrize("args", [(0.04, 0.04, 0.16), (0.04, 0.01, 0.04), (0.04, 0.04, 0.04)])
def test_a_time_input_range_may_end_at_the_nominal_period(args):
    from cfc_control.policies import TimeInput

    assert TimeInput(*args).to_config()["nominal_dt"] == 0.04


def test_action_bounds_become_flat_float64_whatever_they_come_as():
    mapping = ActionMapping([[-1, -2]], [[1, 3]])  # ints, nested: as a JSON config may hold them
    assert mapping.low.shape == mapping.high.shape == (2,)
    assert mapping.low.dtype == mapping.high.dtype == np.float64 and mapping.size == 2
    np.testing.assert_array_equal(mapping.center, [0.0, 0.5])


@pytest.mark.parametrize("low,high", [
    ([-1.0, -1.0], [1.0]),                # shapes differ
    ([-np.inf, -1.0], [1.0, 1.0]),        # a bound is not finite
    ([-1.0, -1.0], [1.0, np.inf]),        # (the upper one was not checked: inf passed)
    ([-1.0, -1.0], [1.0, np.nan]),
    ([-1.0, 1.0], [1.0, 1.0]),            # an empty range
    ([-1.0, 2.0], [1.0, 1.0]),            # high below low
])
def test_bad_action_bounds_are_refused_with_their_values(low, high):
    with pytest.raises(ValueError, match=r"action bounds .*got (low=|\(2,\) and \(1,\))"):
        ActionMapping(low, high)
