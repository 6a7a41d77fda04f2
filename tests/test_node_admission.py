"""The node admits robots as single-row, raising runners whatever runner it was given, and makes
room by evicting silent robots the moment it is full (cases mutation testing found unchecked)."""

import msgpack
import numpy as np
import pytest

from cfc_control import PolicyRunner
from cfc_control.runtime.node import PolicyNode


def _req(robot, obs, **kw):
    return msgpack.packb(dict(robot=robot, obs=list(map(float, obs)), **kw), use_bin_type=True)


def _reply(raw):
    return msgpack.unpackb(raw, raw=False)


@pytest.fixture
def policy_dir(make_policy, tmp_path):
    make_policy("cfc", n_obs=3, n_act=2, units=8, backbone_units=8, nominal_dt=0.02, directory=tmp_path / "p")
    return tmp_path / "p"


def test_each_robot_gets_one_raising_row_whatever_the_template(policy_dir):
    """A node made from a batch runner that holds bad input still serves one row per robot and
    answers bad input with an error, not a held action."""
    node = PolicyNode(PolicyRunner.load(policy_dir, batch_size=3, on_bad_input="hold"))
    obs = np.array([0.3, -0.2, 1.0])
    rep = _reply(node.handle(_req("r", obs, dt=0.02), 1.0))
    assert rep["ok"]
    np.testing.assert_allclose(rep["action"], PolicyRunner.load(policy_dir).step(obs, 0.02), atol=1e-6)
    rep = _reply(node.handle(_req("r", [0.3, float("nan"), 1.0], dt=0.02), 1.02))
    assert rep["ok"] is False and rep["kind"] == "bad_input"
    runner = node.robots["r"].runner
    assert runner.batch_size == 1 and runner.on_bad_input == "raise"


def test_a_full_node_evicts_silent_robots_at_once(policy_dir):
    """Full: a newcomer triggers eviction even within a second of the last one (the periodic
    sweep runs at most once a second)."""
    node = PolicyNode(PolicyRunner.load(policy_dir), max_robots=2, evict_after_s=0.5)
    assert _reply(node.handle(_req("a", [0, 0, 0]), 100.0))["ok"]
    assert _reply(node.handle(_req("b", [0, 0, 0]), 100.1))["ok"]
    assert _reply(node.handle(_req("b", [0, 0, 0]), 100.6))["ok"]
    rep = _reply(node.handle(_req("c", [0, 0, 0]), 100.7))  # a has been silent 0.7 s > 0.5 s
    assert rep["ok"], rep
    assert set(node.robots) == {"b", "c"} and node.stats.evicted == 1
    rep = _reply(node.handle(_req("d", [0, 0, 0]), 100.8))  # b and c are live: no room
    assert rep["kind"] == "overloaded" and "2 robots" in rep["error"]


def test_bad_limits_are_refused_with_their_values(policy_dir):
    with pytest.raises(ValueError, match="max_robots must be >= 1.*got 0"):
        PolicyNode(PolicyRunner.load(policy_dir), max_robots=0)
