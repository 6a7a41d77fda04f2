"""PPO with a teacher term: every rollout step labelled with the teacher's action from the full
simulator state, and the loss pulling the actor's mean action towards it."""

import csv

import numpy as np
import pytest
import torch

from cfc_control import train
from cfc_control.experts import make_expert
from cfc_control.policies import read_card
from cfc_control.tasks import make_env
from cfc_control.training.ppo import SequencePPO, config_for
from cfc_control.training.ppo.loss import minibatch_loss
from ppo_rollout import one_rollout

TASK = "InvertedPendulum-Pos-Irregular"


def _algo(teacher_coef=1.0, teacher="lqr-scheduled", **kw):
    config = config_for(TASK, {"n_envs": 2, "n_steps": 16, "seq_len": 8, "batch_size": 32, "n_epochs": 4,
                               "normalize_reward": False, "teacher_coef": teacher_coef, **kw})
    expert = make_expert(teacher, make_env(TASK)) if teacher else None
    return SequencePPO(TASK, "cfc", config, model_kw={"units": 8}, seed=0, teacher=expert)


def _rollout(algo):  # the buffer, and the teacher's actions in the states the first observations show
    return one_rollout(algo, lambda a: np.stack([a.teacher.act(env) for env in a._env_copies()]))


def test_every_rollout_step_is_labelled_with_the_teachers_action_for_its_state():
    algo = _algo()
    buffer, first = _rollout(algo)
    mapping = algo.policy.actor.action_mapping
    np.testing.assert_allclose(buffer.teacher_actions[0], mapping.normalize(first), atol=1e-6)
    assert buffer.teacher_actions.shape == (16, 2, 1)
    assert len(np.unique(buffer.teacher_actions[:, 0, 0])) > 8  # a label per state, not one per rollout
    batch = next(buffer.minibatches(32))
    assert batch.teacher_actions.shape == batch.actions.shape


def _teacher_loss_before_and_after_an_update(teacher_coef):
    algo = _algo(teacher_coef=teacher_coef, learning_rate=3e-2, n_epochs=30, target_kl=100.0)
    buffer, _ = _rollout(algo)
    batch = next(buffer.minibatches(10_000))  # the whole rollout
    with torch.no_grad():
        before = minibatch_loss(algo.policy, batch, algo.config).teacher.item()
    algo.iteration = 1  # as learn() counts it before the update: past the critic's warm-up
    algo.train()
    with torch.no_grad():
        after = minibatch_loss(algo.policy, batch, algo.config).teacher.item()
    return before, after


def test_the_teacher_term_pulls_the_actors_mean_action_onto_the_teachers():
    before, after = _teacher_loss_before_and_after_an_update(50.0)
    assert after < 0.25 * before
    before, after = _teacher_loss_before_and_after_an_update(1e-3)  # PPO alone does not
    assert after > 0.5 * before


def test_a_teacher_term_needs_a_teacher_and_a_teacher_needs_the_term():
    with pytest.raises(ValueError, match="teacher_coef > 0 needs a teacher"):
        _algo(teacher_coef=1.0, teacher=None)
    with pytest.raises(ValueError, match="teacher_coef > 0 needs a teacher"):
        _algo(teacher_coef=0.0)
    with pytest.raises(ValueError, match="teacher_coef must be >= 0"):
        _algo(teacher_coef=-1.0)


def test_the_command_line_trains_with_a_teacher_and_names_a_missing_one(tmp_path, capsys):
    args = ["--env", TASK, "--algo", "ppo", "--model-kw", "units=8", "--n-envs", "2", "--n-steps", "32",
            "--hp", "batch_size=64", "--n-epochs", "2", "--total-steps", "64", "--eval-episodes", "1",
            "--eval-timings", "Fixed", "--no-progress", "--hp", "teacher_coef=2"]
    assert train.main([*args, "--expert", str(tmp_path / "none"), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--expert" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    assert train.main([*args[:-2], "--expert", "lqr", "--out", str(tmp_path / "bad")]) == 2
    assert "--hp teacher_coef" in capsys.readouterr().err
    assert train.main([*args, "--expert", "lqr-scheduled", "--out", str(tmp_path / "run")]) == 0
    card = read_card(tmp_path / "run" / "policy")
    assert card["teacher"] == "lqr-scheduled" and card["hyperparameters"]["ppo"]["teacher_coef"] == 2.0
    with (tmp_path / "run" / "metrics.csv").open() as fh:
        assert all(float(row["train/teacher_loss"]) >= 0 for row in csv.DictReader(fh))
