"""A policy knows the periods it was trained for: its directory records them, and the runner,
``run``, ``eval`` and ``view`` warn once, visibly, when asked to run it outside them."""

import json
import warnings

import numpy as np
import pytest

from cfc_control import PolicyRunner
from cfc_control.policies import TimeInput, load_policy, save_policy
from cfc_control.policies.periods import PeriodOutsideTrainingWarning, TrainedPeriods
from cfc_control.runtime import DtClampWarning
from cfc_control.run import main as run_main
from cfc_control.tasks import make_env
from cfc_control.episodes.evaluation import evaluate
from cfc_control.training.policy_factory import make_policy as policy_for_env

SHIPPED = "policies/cfc-invertedpendulum-pos-irregular"


def test_a_trained_policy_records_the_periods_of_its_training_timing(tmp_path):
    env = make_env("InvertedPendulum-Pos-Irregular", timing="Irregular+drop:0.05")
    policy = policy_for_env("cfc", env, task="cfc_control/InvertedPendulum-Pos-Irregular-v0", units=8)
    save_policy(policy, tmp_path / "p")
    recorded = json.loads((tmp_path / "p" / "config.json").read_text())["policy"]["time"]["trained"]
    # A lost packet doubles the period the next observation arrives after.
    assert recorded == {"timing": "loguniform:0.02,0.08+drop:0.05", "low": 0.02, "high": 0.16}
    assert load_policy(tmp_path / "p").trained_periods() == TrainedPeriods("loguniform:0.02,0.08+drop:0.05", 0.02, 0.16)


def test_a_mixture_s_trained_periods_span_its_alternatives():
    from cfc_control.tasks import parse_timing

    periods = TrainedPeriods.of(parse_timing("Jitter|steady:0.02,0.03+drop:0.1", 0.05))
    assert (periods.low, periods.high) == (0.02, 0.06)  # the lost packet doubles 0.03, not 0.06
    assert periods.timing == "uniform:0.04,0.06|steady:0.02,0.03+drop:0.1"


def test_a_policy_without_a_record_gets_its_registered_task_s_timing(make_policy, tmp_path):
    assert load_policy(SHIPPED).trained_periods() == TrainedPeriods("loguniform:0.02,0.08", 0.02, 0.08)
    unknown = make_policy(directory=tmp_path / "p")  # task "test": no such task, nothing to compare
    assert unknown.trained_periods() is None
    evil = make_policy()
    evil.task = "os:system"  # a stored string is looked up as is, never imported
    assert evil.trained_periods() is None


def test_a_malformed_record_is_refused_with_the_file_named(make_policy, tmp_path):
    make_policy(directory=tmp_path / "p")
    path = tmp_path / "p" / "config.json"
    config = json.loads(path.read_text())
    config["policy"]["time"]["trained"] = {"timing": "x", "low": 0.08, "high": 0.02}
    path.write_text(json.dumps(config))
    (tmp_path / "p" / "manifest.json").unlink()  # past the checksums, to the content check
    with pytest.raises(ValueError, match="config.json.*low <= high"):
        load_policy(tmp_path / "p")


def _runner(make_policy, tmp_path, batch_size=1):
    policy = make_policy()
    policy.time_input = TimeInput(0.04, 0.01, 0.16, TrainedPeriods("loguniform:0.02,0.08", 0.02, 0.08))
    save_policy(policy, tmp_path / "p")
    return PolicyRunner.load(tmp_path / "p", batch_size=batch_size)


def test_the_runner_warns_once_outside_the_trained_periods_and_still_steps(make_policy, tmp_path):
    runner = _runner(make_policy, tmp_path)
    obs = np.zeros(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PeriodOutsideTrainingWarning)
        for dt in (0.02, 0.05, 0.08):  # inside: silent
            runner.step(obs, dt=dt)
    with pytest.warns(PeriodOutsideTrainingWarning, match=r"Δt = 0.01 s .*\(0.02-0.08 s"):
        action = runner.step(obs, dt=0.01)
    assert np.all(np.isfinite(action)) and runner.stats.steps == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", PeriodOutsideTrainingWarning)
        warnings.simplefilter("ignore", DtClampWarning)  # 0.005 s is also below dt_min: clamped, said apart
        runner.step(obs, dt=0.005)  # warned once already


def test_the_batch_runner_warns_for_any_row_outside(make_policy, tmp_path):
    runner = _runner(make_policy, tmp_path, batch_size=3)
    obs = np.zeros((3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PeriodOutsideTrainingWarning)
        runner.step(obs, dt=[0.02, 0.04, 0.08])
    with pytest.warns(PeriodOutsideTrainingWarning, match="0.03-0.1 s"):
        runner.step(obs, dt=[0.03, 0.04, 0.1])


def test_run_defaults_to_the_nominal_rate_and_warns_of_a_rate_outside(capsys):
    assert run_main([SHIPPED, "--duration", "0.3", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["rate_hz"] == pytest.approx(25.0) and "warning" not in out.err
    with warnings.catch_warnings():
        warnings.simplefilter("error", PeriodOutsideTrainingWarning)  # said once, by run itself
        assert run_main([SHIPPED, "--rate", "200", "--duration", "0.2", "--json"]) == 0
    err = capsys.readouterr().err
    assert err.count("outside the periods this policy was trained for") == 1 and "12.5-50 Hz" in err
    for bad in ("0", "-5", "nan", "inf"):
        assert run_main([SHIPPED, "--rate", bad, "--duration", "0.1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--rate must be a positive number of Hz" in err


def test_eval_warns_when_the_timing_leaves_the_trained_periods():
    with pytest.warns(PeriodOutsideTrainingWarning, match="the timing fixed:0.16"):
        evaluate(SHIPPED, timing="fixed:0.16", episodes=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PeriodOutsideTrainingWarning)
        evaluate(SHIPPED, timing="Jitter", episodes=1)
