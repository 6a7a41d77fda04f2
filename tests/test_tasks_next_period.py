"""VaryingPeriod.set_next_period: a period given from outside (the real-time loop's measured Δt)
replaces one draw of the timing model, and only one."""

import numpy as np
import pytest

import cfc_control  # noqa: F401  (registers the tasks)
from cfc_control.tasks import make_env


def _periods(env, n, set_at=None, dt=None):
    env.reset(seed=3)
    out = []
    for i in range(n):
        if i == set_at:
            env.get_wrapper_attr("set_next_period")(dt)
        out.append(env.step(np.zeros(env.action_space.shape))[-1]["dt"])
    return out


def test_the_next_step_lasts_the_given_period_then_draws_resume():
    env = make_env("InvertedPendulum-Pos-Jitter")
    drawn = _periods(env, 5)
    given = _periods(env, 5, set_at=2, dt=0.0731)
    env.close()
    assert given[2] == pytest.approx(0.0731, rel=1e-12)  # not a multiple of the physics step: realised exactly
    assert given[:2] == drawn[:2]
    # A given period replaces the draw, so the drawn sequence moves on by one step after it.
    assert given[3:] == drawn[2:4]
    assert len(set(drawn)) > 1  # Jitter does draw


def test_the_horizon_still_clips_a_given_period():
    env = make_env("InvertedPendulum-Pos-Fixed")
    env.reset(seed=0)
    horizon = env.get_wrapper_attr("horizon_s")
    env.get_wrapper_attr("set_next_period")(horizon + 5.0)
    *_, truncated, info = env.step(np.zeros(1))
    env.close()
    assert truncated and info["dt"] == pytest.approx(horizon) and info["sim_time"] == pytest.approx(horizon)


def test_reset_forgets_a_given_period():
    env = make_env("InvertedPendulum-Pos-Fixed")
    env.reset(seed=0)
    env.get_wrapper_attr("set_next_period")(0.1)
    env.reset(seed=0)
    info = env.step(np.zeros(1))[-1]
    env.close()
    assert info["dt"] == pytest.approx(env.get_wrapper_attr("nominal_dt"))


@pytest.mark.parametrize("bad, error", [(0.0, ValueError), (-0.01, ValueError), (float("nan"), ValueError),
                                        (float("inf"), ValueError), ("0.02", TypeError), (True, TypeError)])
def test_bad_periods_are_refused(bad, error):
    env = make_env("InvertedPendulum-Pos-Fixed")
    with pytest.raises(error, match="period"):
        env.get_wrapper_attr("set_next_period")(bad)
    env.close()
