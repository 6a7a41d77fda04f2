"""The node's watchdog fires at the policy's dt_max, not near it: gaps just below and just above
dt_max, by the node's clock and by the robot's own timestamps, for two nominal periods. Then what
mutation testing found unchecked in PolicyNode: the reply's flags and counters, robots admitted
as single-row raising runners whatever the template, eviction forced the moment the node is full."""

import msgpack
import numpy as np
import pytest

from cfc_control import PolicyRunner
from cfc_control.runtime.node import PolicyNode


def _req(robot, obs, **kw):
    return msgpack.packb(dict(robot=robot, obs=list(map(float, obs)), **kw), use_bin_type=True)


def _reply(raw):
    return msgpack.unpackb(raw, raw=False)


@pytest.fixture(params=[0.02, 0.008], ids=["nominal-20ms", "nominal-8ms"])
def policy_dir(request, make_policy, tmp_path):
    make_policy("cfc", n_obs=3, n_act=2, units=8, backbone_units=8, nominal_dt=request.param, directory=tmp_path / "p")
    return tmp_path / "p"


def _warm(node, robot, obs, now, **kw):
    """Three steps of ``robot`` one nominal period apart, ending at node time ``now``."""
    step = node.template.nominal_dt
    for k in (2, 1, 0):
        assert _reply(node.handle(_req(robot, obs, **kw), now - k * step))["ok"]


@pytest.mark.parametrize("fraction,fires", [(0.98, False), (1.02, True), (1.2, True)])
def test_the_node_clock_gap_fires_exactly_past_dt_max(policy_dir, fraction, fires):
    """Kills the mutation "watchdog at 1.5x dt_max" (and any threshold off by more than 2%)."""
    node = PolicyNode(PolicyRunner.load(policy_dir))
    dt_max = node.template.dt_max
    obs = np.array([0.3, -0.2, 1.0])
    _warm(node, "r", obs, 10.0)
    rep = _reply(node.handle(_req("r", obs), 10.0 + fraction * dt_max))
    assert rep["reset"] is fires and node.stats.watchdog_resets == int(fires)
    assert rep["gap"] == (pytest.approx(fraction * dt_max) if fires else None)


@pytest.mark.parametrize("fraction,fires", [(0.98, False), (1.02, True), (1.2, True)])
def test_the_robot_clock_gap_fires_exactly_past_dt_max(policy_dir, fraction, fires):
    """The robot's timestamps reveal a gap the node's clock does not see (messages queued)."""
    node = PolicyNode(PolicyRunner.load(policy_dir))
    dt_max, nominal = node.template.dt_max, node.template.nominal_dt
    obs = np.array([0.3, -0.2, 1.0])
    t0 = 5.0
    for k in range(3):
        node.handle(_req("s", obs, t=t0 + k * nominal), 20.0 + k * 1e-4)
    t_last = t0 + 2 * nominal
    rep = _reply(node.handle(_req("s", obs, t=t_last + fraction * dt_max), 20.0 + 3e-4))
    assert rep["reset"] is fires and node.stats.watchdog_resets == int(fires)
    # Reset or not, the action is the runner's: fresh on a reset, continuing otherwise.
    ref = PolicyRunner.load(policy_dir)
    if not fires:
        for k in range(3):
            ref.step(obs, timestamp=t0 + k * nominal)
        want = ref.step(obs, timestamp=t_last + fraction * dt_max)
    else:
        want = ref.step(obs, timestamp=t_last + fraction * dt_max)  # first step after reset: nominal Δt
    np.testing.assert_allclose(rep["action"], want, atol=1e-6)


def test_a_gap_of_exactly_dt_max_does_not_fire(make_policy, tmp_path):
    """"More than dt_max": the boundary itself is not a gap. Binary fractions keep it exact."""
    make_policy("cfc", n_obs=3, n_act=2, units=8, backbone_units=8, nominal_dt=2.0**-6, directory=tmp_path / "p")
    node = PolicyNode(PolicyRunner.load(tmp_path / "p"))
    assert node.template.dt_max == 2.0**-4
    obs = np.array([0.3, -0.2, 1.0])
    node.handle(_req("r", obs), 10.0)
    assert _reply(node.handle(_req("r", obs), 10.0 + 2.0**-4))["reset"] is False
    node.handle(_req("s", obs, t=3.0), 20.0)
    assert _reply(node.handle(_req("s", obs, t=3.0 + 2.0**-4), 20.0))["reset"] is False
    assert node.stats.watchdog_resets == 0


def test_replies_say_when_dt_was_clamped_and_count_requested_resets(policy_dir):
    node = PolicyNode(PolicyRunner.load(policy_dir))
    dt_max, nominal = node.template.dt_max, node.template.nominal_dt
    obs = np.array([0.3, -0.2, 1.0])
    flags = [_reply(node.handle(_req("r", obs, dt=dt), 10.0 + 0.001 * i))["clamped"]
             for i, dt in enumerate([nominal, 3 * dt_max, nominal, nominal / 10, nominal, 2 * dt_max, nominal])]
    assert flags == [False, True, False, True, False, True, False]
    for i in range(3):
        rep = _reply(node.handle(_req("r", obs, reset=True), 11.0 + 0.001 * i))
        assert rep["reset"] is True and rep["robot"] == "r" and rep["ok"] is True
    assert node.stats.requested_resets == 3 and node.stats.watchdog_resets == 0


@pytest.fixture
def node_policy_dir(make_policy, tmp_path):
    make_policy("cfc", n_obs=3, n_act=2, units=8, backbone_units=8, nominal_dt=0.02, directory=tmp_path / "p")
    return tmp_path / "p"


def test_each_robot_gets_one_raising_row_whatever_the_template(node_policy_dir):
    """A node made from a batch runner that holds bad input still serves one row per robot and
    answers bad input with an error, not a held action."""
    node = PolicyNode(PolicyRunner.load(node_policy_dir, batch_size=3, on_bad_input="hold"))
    obs = np.array([0.3, -0.2, 1.0])
    rep = _reply(node.handle(_req("r", obs, dt=0.02), 1.0))
    assert rep["ok"]
    np.testing.assert_allclose(rep["action"], PolicyRunner.load(node_policy_dir).step(obs, 0.02), atol=1e-6)
    rep = _reply(node.handle(_req("r", [0.3, float("nan"), 1.0], dt=0.02), 1.02))
    assert rep["ok"] is False and rep["kind"] == "bad_input"
    runner = node.robots["r"].runner
    assert runner.batch_size == 1 and runner.on_bad_input == "raise"


def test_a_full_node_evicts_silent_robots_at_once(node_policy_dir):
    """Full: a newcomer triggers eviction even within a second of the last one (the periodic
    sweep runs at most once a second)."""
    node = PolicyNode(PolicyRunner.load(node_policy_dir), max_robots=2, evict_after_s=0.5)
    assert _reply(node.handle(_req("a", [0, 0, 0]), 100.0))["ok"]
    assert _reply(node.handle(_req("b", [0, 0, 0]), 100.1))["ok"]
    assert _reply(node.handle(_req("b", [0, 0, 0]), 100.6))["ok"]
    rep = _reply(node.handle(_req("c", [0, 0, 0]), 100.7))  # a has been silent 0.7 s > 0.5 s
    assert rep["ok"], rep
    assert set(node.robots) == {"b", "c"} and node.stats.evicted == 1
    rep = _reply(node.handle(_req("d", [0, 0, 0]), 100.8))  # b and c are live: no room
    assert rep["kind"] == "overloaded" and "2 robots" in rep["error"]


def test_bad_limits_are_refused_with_their_values(node_policy_dir):
    with pytest.raises(ValueError, match="max_robots must be >= 1.*got 0"):
        PolicyNode(PolicyRunner.load(node_policy_dir), max_robots=0)
