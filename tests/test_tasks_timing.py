"""Timing specs: parsing, presets, errors, sampling, and how a period is realised in physics."""

import math

import numpy as np
import pytest

from cfc_control.tasks import make_env, parse_timing
from cfc_control.tasks.timing import TimingModel
from cfc_control.tasks.wrappers import split_period


@pytest.mark.parametrize(
    "spec, kind, low, high, drop",
    [
        ("fixed:0.05", "fixed", 0.05, 0.05, 0.0),
        ("uniform:0.03,0.06", "uniform", 0.03, 0.06, 0.0),
        ("loguniform:0.01,0.1", "loguniform", 0.01, 0.1, 0.0),
        ("uniform:0.03,0.06+drop:0.1", "uniform", 0.03, 0.06, 0.1),
        (" Fixed : 0.02 + Drop : 0.25 ", "fixed", 0.02, 0.02, 0.25),
    ],
)
def test_spec_strings_parse(spec, kind, low, high, drop):
    model = parse_timing(spec)
    assert (model.kind, model.low, model.high, model.drop) == (kind, low, high, drop)
    assert parse_timing(model.spec) == model  # the canonical spec round-trips


def test_presets_are_relative_to_the_nominal_period():
    assert parse_timing("Fixed", 0.05) == TimingModel("fixed", 0.05, 0.05)
    jitter = parse_timing("jitter", 0.05)  # names match case-insensitively
    assert jitter.kind == "uniform"
    assert jitter.low == pytest.approx(0.04) and jitter.high == pytest.approx(0.06)
    irregular = parse_timing("Irregular", 0.008)
    assert irregular.kind == "loguniform"
    assert irregular.low == pytest.approx(0.004) and irregular.high == pytest.approx(0.016)
    lossy = parse_timing("Jitter+drop:0.2", 0.05)
    assert lossy.drop == 0.2 and lossy.low == jitter.low
    assert jitter.spec == "uniform:0.04,0.06"


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "empty"),
        ("steady", "neither KIND:ARGS nor a preset"),
        ("gauss:0.1,0.2", "unknown kind"),
        ("uniform:0.03", "LO,HI"),
        ("fixed:0.01,0.02", "DT"),
        ("uniform:0.06,0.03", "LO < HI"),
        ("uniform:0.05,0.05", "LO < HI"),
        ("fixed:-0.01", "positive"),
        ("fixed:0", "positive"),
        ("fixed:abc", "not a number"),
        ("fixed:nan", "finite"),
        ("loguniform:0.01,inf", "finite"),
        ("fixed:0.01+drop:1", "[0, 1)"),
        ("fixed:0.01+drop:-0.1", "[0, 1)"),
        ("fixed:0.01+lag:0.1", "unknown modifier"),
        ("fixed:0.01+drop:0.1+drop:0.2", "more than once"),
        ("Jiter", "neither KIND:ARGS nor a preset"),
        ("0x", "must be positive"),
        ("-2x", "neither KIND:ARGS nor a preset"),
    ],
)
def test_malformed_specs_name_the_spec_and_the_syntax(spec, fragment):
    with pytest.raises(ValueError) as err:
        parse_timing(spec, 0.05)
    message = str(err.value)
    assert repr(spec) in message
    assert fragment in message
    assert "uniform:LO,HI" in message and "+drop:P" in message


def test_preset_without_nominal_period_is_an_error():
    with pytest.raises(ValueError, match="nominal"):
        parse_timing("Jitter")
    with pytest.raises(ValueError, match="nominal"):
        parse_timing("0.5x")


def test_a_multiple_of_the_nominal_period_is_that_steady_period():
    # The READMEs' tables name the steady periods 0.5x and 2x; a user who types that gets them,
    # the same model (so the same episodes) as the period written in seconds.
    assert parse_timing("0.5x", 0.008) == parse_timing("fixed:0.004") == TimingModel("fixed", 0.004, 0.004)
    assert parse_timing("2X", 0.05).spec == "fixed:0.1"
    assert parse_timing("2x+drop:0.1", 0.05).drop == 0.1
    mixture = parse_timing("Irregular|0.5x", 0.008)
    assert [m.spec for m in mixture.alternatives] == ["loguniform:0.004,0.016", "fixed:0.004"]


def test_non_string_spec_is_a_type_error():
    with pytest.raises(TypeError, match="0.05"):
        parse_timing(0.05, 0.05)


def test_sampling_stays_in_range_and_repeats_with_the_seed():
    for spec in ("uniform:0.02,0.05", "loguniform:0.004,0.016"):
        model = parse_timing(spec)
        rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
        draws1 = np.array([model.sample(rng1) for _ in range(2000)])
        draws2 = np.array([model.sample(rng2) for _ in range(2000)])
        assert np.array_equal(draws1, draws2)
        assert draws1.min() >= model.low and draws1.max() <= model.high
        # Spread over the whole range, not a constant.
        assert draws1.min() < model.low * 1.05 and draws1.max() > model.high * 0.95


def test_loguniform_is_uniform_in_log():
    model = parse_timing("loguniform:0.025,0.1")
    draws = np.array([model.sample(np.random.default_rng(i)) for i in range(4000)])
    below_geometric_mean = np.mean(draws < math.sqrt(0.025 * 0.1))
    assert 0.46 < below_geometric_mean < 0.54
    uniform = parse_timing("uniform:0.025,0.1")
    draws_u = np.array([uniform.sample(np.random.default_rng(i)) for i in range(4000)])
    assert np.mean(draws_u < math.sqrt(0.025 * 0.1)) < 0.4


def test_fixed_draws_nothing_and_drop_frequency_matches():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    parse_timing("fixed:0.01").sample(rng)
    assert not parse_timing("fixed:0.01").sample_dropped(rng)
    assert rng.bit_generator.state == state
    lossy = parse_timing("fixed:0.01+drop:0.3")
    drops = np.mean([lossy.sample_dropped(rng) for _ in range(4000)])
    assert 0.27 < drops < 0.33


@pytest.mark.parametrize("stock_timestep", [0.002, 0.01, 0.02])
def test_realised_period_is_within_5_percent_and_substeps_never_exceed_stock(stock_timestep):
    rng = np.random.default_rng(0)
    model = parse_timing(f"loguniform:{stock_timestep / 7},{stock_timestep * 40}")
    for _ in range(5000):
        dt = model.sample(rng)
        n, step = split_period(dt, stock_timestep)
        assert abs(n * step - dt) <= 0.05 * dt
        assert abs(n * step - dt) <= 1e-8 * dt  # in fact exact up to rounding
        assert step <= stock_timestep * (1 + 1e-9)
        assert n == 1 or step > stock_timestep * (n - 1) / n  # no more steps than needed


def test_nominal_period_is_the_stock_frame_skip_exactly():
    for timestep, frame_skip in [(0.02, 2), (0.01, 5), (0.01, 2), (0.01, 4), (0.002, 4)]:
        assert split_period(timestep * frame_skip, timestep) == (frame_skip, timestep)


@pytest.mark.parametrize("stock_timestep", [0.002, 0.01, 0.02])
def test_periods_written_as_multiples_of_the_timestep_use_the_stock_timestep(stock_timestep):
    # 0.07 / 0.01 is 7.000000000000001 and 0.29 / 29 is not 0.01 in floating point: neither may
    # cost an extra physics step or a timestep that differs from the stock one.
    for k in range(1, 60):
        dt = float(f"{k * stock_timestep:.10g}")
        assert split_period(dt, stock_timestep) == (k, stock_timestep)


@pytest.mark.parametrize("bad", [0.0, -0.01, float("nan"), float("inf")])
def test_split_period_rejects_bad_periods(bad):
    with pytest.raises(ValueError, match="positive"):
        split_period(bad, 0.01)


def test_steady_draws_one_period_per_episode_and_holds_it():
    env = make_env("InvertedDoublePendulum-Pos-Fixed", timing="steady:0.025,0.1")
    periods = []
    for seed in range(12):
        env.reset(seed=seed)
        dts = {env.step(np.zeros(1, dtype=np.float32))[4]["dt"] for _ in range(5)}
        assert len(dts) == 1
        periods.append(dts.pop())
    assert all(0.025 - 1e-12 <= p <= 0.1 + 1e-12 for p in periods) and len(set(periods)) == 12
    env.reset(seed=3)
    assert env.step(np.zeros(1, dtype=np.float32))[4]["dt"] == periods[3]  # a seed gives its period again


def test_a_mixture_runs_each_episode_under_one_of_its_alternatives():
    model = parse_timing("Irregular|steady:0.025,0.1+drop:0.1", 0.05)
    assert model.spec == "loguniform:0.025,0.1|steady:0.025,0.1+drop:0.1"
    assert parse_timing(model.spec) == model and (model.low, model.high, model.drop) == (0.025, 0.1, 0.1)
    assert parse_timing("Jitter|Fixed", 0.05).scaled(2.0).spec == "uniform:0.08,0.12|fixed:0.1"
    env = make_env("InvertedDoublePendulum-Pos-Fixed", timing=model.spec)
    kinds = set()
    for seed in range(16):
        env.reset(seed=seed)
        dts = {round(env.step(np.zeros(1, dtype=np.float32))[4]["dt"], 12) for _ in range(6)}
        kinds.add("steady" if len(dts) == 1 else "irregular")
    assert kinds == {"steady", "irregular"}


@pytest.mark.parametrize("spec", ["Irregular|", "|fixed:0.1", "steady:0.1", "steady:0.2,0.1"])
def test_malformed_mixtures_and_steady_specs_are_named(spec):
    with pytest.raises(ValueError, match="timing spec"):
        parse_timing(spec, 0.05)
