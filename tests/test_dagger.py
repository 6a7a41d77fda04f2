"""DAgger: the schedule parses, the student drives, the expert labels, the data set grows."""

import numpy as np
import pytest

from cfc_control.experts import make_expert
from cfc_control.tasks import make_env
from cfc_control.training.bc import BCConfig
from cfc_control.training.collection import collect_demos
from cfc_control.training.dagger import DAgger, DAggerConfig, beta_schedule
from cfc_control.training.policy_factory import make_policy

TASK = "InvertedPendulum-Pos-Irregular"


def test_beta_schedules():
    assert [beta_schedule("exponential:0.5")(i) for i in range(3)] == [1.0, 0.5, 0.25]
    assert [beta_schedule("linear:2")(i) for i in range(4)] == [1.0, 0.5, 0.0, 0.0]
    assert beta_schedule("constant:0.3")(7) == 0.3
    assert [beta_schedule("1,0.5,0")(i) for i in range(5)] == [1.0, 0.5, 0.0, 0.0, 0.0]
    for bad in ("exponential:x", "linear:0", "cubic:2", "1,2", "constant:-0.1"):
        with pytest.raises(ValueError, match="beta schedule"):
            beta_schedule(bad)


def _dagger(beta, iterations=1):
    demos = collect_demos(TASK, "lqr", 3, seed=0, noise=0.1)
    env = make_env(TASK)
    policy = make_policy("cfc", env, task=TASK, units=8)
    cfg = DAggerConfig(iterations=iterations, episodes_per_iteration=2, beta=beta, epochs_per_iteration=1)
    return DAgger(policy, demos, lambda: make_env(TASK), make_expert("lqr", env), cfg,
                  BCConfig(epochs=1, window=16, burn_in=8, val_fraction=0.34))


def test_student_drives_expert_labels_data_grows():
    dagger = _dagger("constant:0")  # the student drives every step
    first = dagger.data
    before_norm = dagger.policy.obs_normalizer.mean.copy()
    dagger.run()
    assert dagger.iteration == 1
    assert dagger.data.n_episodes == first.n_episodes + 2
    assert dagger.data.n_steps > first.n_steps
    new = dagger.data.select([first.n_episodes, first.n_episodes + 1])
    # An (almost untrained) student drives: what it did is not what the expert says, and it falls.
    assert np.abs(new.executed_actions - new.actions).mean() > 0.01
    assert new.terminations.any()
    assert dagger.history[0]["beta"] == 0.0 and dagger.history[0]["data_episodes"] == first.n_episodes + 2
    assert np.isfinite(dagger.history[0]["val_loss"])
    # The normaliser of the initial demonstrations is kept across rounds.
    np.testing.assert_array_equal(dagger.policy.obs_normalizer.mean, before_norm)


def test_beta_one_is_the_expert_driving():
    dagger = _dagger("constant:1")
    dagger.run()
    new = dagger.data.select([dagger.data.n_episodes - 2, dagger.data.n_episodes - 1])
    np.testing.assert_array_equal(new.executed_actions, new.actions)
    assert not new.terminations.any()


def test_progress_restore_continues_mid_run():
    """A run stopped after round 1's collection and restored elsewhere ends where an
    uninterrupted run ends (same data, same weights)."""
    import torch

    torch.manual_seed(3)
    a = _dagger("constant:0.5")
    a.run()
    torch.manual_seed(3)
    b = _dagger("constant:0.5")
    b.trainer.fit()
    b.collect()
    progress, (_, optim) = b.progress(), b.trainer.state_dict()
    c = _dagger("constant:0.5")
    c.policy.load_state_dict(b.policy.state_dict())
    c.restore(progress, b.data, optim)
    assert c.iteration == 1 and c.data.n_episodes == a.data.n_episodes
    c.run()
    np.testing.assert_array_equal(c.data.observations, a.data.observations)
    for (name, pa), pc in zip(a.policy.state_dict().items(), c.policy.state_dict().values()):
        torch.testing.assert_close(pc, pa, rtol=0, atol=0, msg=name)
