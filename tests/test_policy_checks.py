"""What every user of a policy checks before running it: that an env fits it (one check for
evaluation, the real-time loop and the viewer), and which directory a path names."""

import pytest
from gymnasium import spaces

from cfc_control.policies import check_spaces, resolve_policy_dir, save_policy
from cfc_control.runtime import loop
from cfc_control.episodes.evaluation import evaluate


def box(n):
    return spaces.Box(-1.0, 1.0, shape=(n,))


def test_fitting_spaces_pass():
    check_spaces(3, 2, box(3), box(2))


def test_observation_mismatch_names_both_sides():
    with pytest.raises(ValueError) as err:
        check_spaces(2, 1, box(4), box(1), what="Pendulum-Full", hint="pick the matching task")
    msg = str(err.value)
    assert "Pendulum-Full gives observations of shape (4,)" in msg and "the policy takes 2" in msg
    assert "actions" not in msg and msg.endswith("; pick the matching task")


def test_action_mismatch_names_both_sides():
    with pytest.raises(ValueError, match=r"the env takes actions of shape \(3,\), the policy gives 1"):
        check_spaces(2, 1, box(2), box(3))


def test_both_mismatches_are_reported_at_once():
    with pytest.raises(ValueError, match="observations.*; .*actions"):
        check_spaces(2, 1, box(5), box(3))


def test_spaces_without_a_flat_shape_never_fit():
    with pytest.raises(ValueError, match=r"observations of shape \(\)"):
        check_spaces(1, 1, spaces.Discrete(4), box(1))
    with pytest.raises(ValueError, match="observations of shape None"):
        check_spaces(1, 1, spaces.Dict({"x": box(1)}), box(1))
    with pytest.raises(ValueError, match=r"actions of shape \(1, 1\)"):
        check_spaces(1, 1, box(1), spaces.Box(-1.0, 1.0, shape=(1, 1)))


def test_evaluation_and_loop_use_the_check(make_policy):
    policy = make_policy("cfc", n_obs=3, n_act=1, units=8, backbone_units=8)  # the pendulum has 2 (Pos)
    with pytest.raises(ValueError, match="InvertedPendulum-Pos-Fixed.* gives observations of shape \\(2,\\).*--obs"):
        evaluate(policy, "InvertedPendulum-Pos-Fixed", episodes=1)
    with pytest.raises(ValueError, match="gives observations of shape \\(2,\\), the policy takes 3"):
        loop.run_through_node(None, "InvertedPendulum-Pos-Fixed", rate_hz=100, duration_s=0.1, n_obs=3, n_act=1)


def test_resolve_policy_dir(make_policy, tmp_path):
    run = tmp_path / "run"
    save_policy(make_policy("cfc", n_obs=2, n_act=1, units=8, backbone_units=8), run / "policy")
    assert resolve_policy_dir(run / "policy") == run / "policy"
    assert resolve_policy_dir(str(run)) == run / "policy"  # a training run directory
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        resolve_policy_dir(tmp_path)
