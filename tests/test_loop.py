"""The wall-clock control loop: paced at the requested rate, the measured Δt fed to the policy,
deadline misses counted, in-process and through the node, and the run command. Short runs: the
timing assertions are loose because the test machine is shared."""

import json
import os
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

from cfc_control import PolicyRunner
from cfc_control.runtime import loop
from cfc_control.runtime.client import PolicyClient
from cfc_control.runtime.node import PolicyNode

TASK = "InvertedPendulum-Pos-Fixed"  # 2 observations, 1 action


@pytest.fixture
def pendulum_policy(make_policy, tmp_path):
    make_policy("cfc", n_obs=2, n_act=1, units=16, backbone_units=16, nominal_dt=0.01, directory=tmp_path / "p")
    return tmp_path / "p"


class SlowEnv:
    """A stand-in simulator whose step takes ``slow_s`` on chosen steps; it records the periods
    it is told to advance by."""

    def __init__(self, slow_steps, slow_s):
        self.slow_steps, self.slow_s, self.n, self.periods = set(slow_steps), slow_s, 0, []

    def reset(self, seed=None):
        return np.zeros(2), {}

    def set_next_period(self, dt):
        self.periods.append(dt)

    def step(self, action):
        if self.n in self.slow_steps:
            time.sleep(self.slow_s)
        self.n += 1
        return np.zeros(2), 1.0, False, False, {}


def test_loop_paces_and_counts_misses():
    seen = []
    env = SlowEnv({5}, 0.03)
    report = loop.run_loop(env, lambda obs, t: seen.append(t) or np.zeros(1), lambda: None, rate_hz=100, duration_s=0.3)
    assert report.deadline_misses >= 1 and report.skipped_ticks >= 2  # 30 ms step in a 10 ms period
    assert 10 <= report.ticks <= 31
    gaps = np.diff(seen)
    assert np.median(gaps) == pytest.approx(0.01, abs=0.004)
    assert report.dt_ms["p50"] == pytest.approx(10.0, abs=3.0)
    # The plant is stepped at every tick but the first (it then holds the first action), each time
    # by the time since the previous tick.
    assert report.current_return == pytest.approx(report.ticks - 1)
    np.testing.assert_allclose(env.periods, gaps, rtol=0, atol=1e-12)
    assert set(report.latency_us) == {"p50", "p99", "max"}


class EpisodicEnv(SlowEnv):
    """Episodes of 4 steps whose reset takes 80 ms (a slow reset, or the collector's pause)."""

    def reset(self, seed=None):
        if self.n:
            time.sleep(0.08)
        return np.zeros(2), {}

    def step(self, action):
        out = super().step(action)
        return out[0], out[1], self.n % 4 == 0, False, out[4]


def test_a_pause_between_episodes_is_not_integrated_by_the_plant():
    env = EpisodicEnv((), 0.0)
    report = loop.run_loop(env, lambda obs, t: np.zeros(1), lambda: None, rate_hz=100, duration_s=0.6)
    assert report.episodes >= 2
    # each episode's first step holds its first action for about one 10 ms period, never the
    # 80 ms pause (the bound leaves room for a busy machine's scheduling delays)
    assert max(env.periods) < 0.05


class RecordPeriods(gym.Wrapper):
    """Records each step's ``info["dt"]``: how far the simulator advanced."""

    def __init__(self, env):
        super().__init__(env)
        self.periods = []

    def step(self, action):
        out = super().step(action)
        self.periods.append(out[-1]["dt"])
        return out


def test_after_an_overrun_policy_and_plant_see_the_same_dt():
    env = RecordPeriods(loop.make_realtime_env(TASK, 100))
    stamps = []

    def act(obs, t):
        stamps.append(t)
        if len(stamps) == 4:
            time.sleep(0.035)  # this tick overruns by more than three periods
        return np.zeros(1)

    report = loop.run_loop(env, act, lambda: None, rate_hz=100, duration_s=0.15)
    env.close()
    assert report.deadline_misses >= 1 and report.episodes == 1  # zero torque: the pole stays up here
    fed = np.diff(stamps)  # the Δt the policy was fed at ticks 1, 2, ...
    assert len(env.periods) == len(fed) and fed.max() > 0.03
    np.testing.assert_allclose(env.periods, fed, rtol=1e-9)  # the plant advanced by exactly that


def test_the_env_must_take_a_measured_period():
    class FixedPeriodEnv:  # steps its own period, whatever the clock says
        def reset(self, seed=None):
            return np.zeros(2), {}

        def step(self, action):
            return np.zeros(2), 1.0, False, False, {}

    with pytest.raises(TypeError, match="set_next_period.*FixedPeriodEnv"):
        loop.run_loop(FixedPeriodEnv(), lambda obs, t: np.zeros(1), lambda: None, rate_hz=100, duration_s=0.05)


def test_wait_until_never_returns_early():
    for delay in (0.0, 0.0002, 0.003):
        deadline = time.perf_counter() + delay
        loop.wait_until(deadline)
        assert time.perf_counter() >= deadline


def test_in_process_on_the_pendulum(pendulum_policy):
    runner = PolicyRunner.load(pendulum_policy)
    report = loop.run_in_process(runner, TASK, rate_hz=200, duration_s=0.4)
    # Loose: other processes share these cores (the pacing itself is checked with a fake env).
    assert report.ticks >= 20 and report.achieved_hz > 50
    assert 3.5 <= report.dt_ms["p50"] <= 10.0
    assert report.clamped <= report.ticks // 4  # 5 ms is inside [2.5, 40] ms; load spikes may leave it
    assert np.isfinite(report.current_return) and report.episodes >= 1
    assert runner.stats.rows_stepped == report.ticks
    assert "achieved" in report.summary()


def test_through_the_node(pendulum_policy):
    node = PolicyNode(PolicyRunner.load(pendulum_policy))
    endpoint = node.bind("tcp://127.0.0.1:*")
    thread = threading.Thread(target=node.serve, kwargs={"poll_ms": 10}, daemon=True)
    thread.start()
    try:
        with PolicyClient(endpoint, "pendulum", timeout_s=5) as client:
            report = loop.run_through_node(client, TASK, rate_hz=100, duration_s=0.3, n_obs=2, n_act=1)
    finally:
        node.stop()
        thread.join(5)
    assert report.ticks >= 15 and report.mode == f"node {endpoint}"
    assert node.stats.actions == report.ticks and node.stats.requested_resets >= 1
    assert not node.stats.errors


def test_env_and_policy_must_fit(make_policy, tmp_path):
    runner = PolicyRunner(make_policy("cfc", n_obs=3, n_act=1, units=8, backbone_units=8))
    with pytest.raises(ValueError, match="observations"):
        loop.run_in_process(runner, TASK, rate_hz=100, duration_s=0.1)


def test_realtime_priority_is_restored():
    if not hasattr(os, "sched_getscheduler"):
        pytest.skip("no POSIX scheduling here")
    before = os.sched_getscheduler(0)
    with loop.realtime_priority(1) as what:
        assert what.startswith("SCHED_FIFO") or what.startswith("normal (SCHED_FIFO refused")
    assert os.sched_getscheduler(0) == before
    with loop.realtime_priority(None) as what:
        assert what == "normal"


def test_run_command(pendulum_policy, capsys):
    from cfc_control.run import main

    assert main([str(pendulum_policy), "--env", TASK, "--rate", "100", "--duration", "0.2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rate_hz"] == 100 and report["ticks"] >= 10 and report["scheduling"] == "normal"
    assert main([str(pendulum_policy), "--env", "Hopper-Full-Fixed", "--rate", "100", "--duration", "0.1"]) == 2
    assert "observations" in capsys.readouterr().err
    # The policy's own task is the default; this one names "test", which is no task.
    assert main([str(pendulum_policy), "--rate", "100", "--duration", "0.1"]) == 2
