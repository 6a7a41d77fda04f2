"""The command lines as a new user meets them: every mistake is one line on stderr and exit code
2, found before any work starts; training runs from Python with a typed config; a card replays
whether it names a preset or its spec; videos play in simulated time; MuJoCo's settotalmass
deprecation is silenced where Gymnasium's XML compiles and nothing else is; the project's own
warnings show as one line."""

import json
import math
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from cfc_control import eval as eval_cli
from cfc_control import serve as serve_cli
from cfc_control import train as train_cli
from cfc_control import view as view_cli
from cfc_control.cli import ArgumentParser
from cfc_control.policies.periods import PeriodOutsideTrainingWarning
from cfc_control.policies import read_card
from cfc_control.tasks import make_env, parse_timing, task_info
from cfc_control.training import EvaluationConfig, ImitationConfig, RunConfig, RunOptions, train
from cfc_control.episodes.evaluation import evaluate

TASK = "InvertedPendulum-Pos-Irregular"
SHIPPED = "policies/cfc-invertedpendulum-pos-irregular"
BASE = ["--env", TASK, "--model-kw", "units=8", "--eval-episodes", "0", "--no-progress", "--no-tensorboard"]


def one_line_error(main, argv, capsys) -> str:
    """Run a command's main; assert exit code 2 and exactly one line on stderr, no traceback."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "plain-file"
    path.write_text("not a directory")
    return path


@pytest.mark.parametrize("argv, needle", [
    (["--env", "InvertedPendulm-Pos-Irregular"], "unknown environment"),
    (["--env", "CartPole-v1"], "not a MuJoCo env"),
    (["--eval-timings", "Fixed,Jiter"], "Jiter"),
    (["--timing", "unifrm:0.03,0.05"], "unifrm"),
    (["--obs", "Velocity"], "Velocity"),
    (["--policy", "transformer"], "transformer"),
    (["--algo", "ppo", "--epochs", "3"], "--epochs is a bc/dagger flag"),
    (["--demos", "no-such-file.npz"], "no-such-file.npz"),
    (["--expert", "no/such/expert"], "no/such/expert"),
    (["--algo", "dagger", "--expert", "lqr-sched"], "lqr-sched: not one of lqr, lqr-scheduled"),
    (["--algo", "ppo", "--init-from", "no/such/policy"], "no/such/policy"),
])
def test_train_mistakes_are_one_line_before_any_work(argv, needle, capsys, tmp_path):
    out = tmp_path / "run"
    line = one_line_error(train_cli.main, BASE + argv + ["--out", str(out)], capsys)
    assert needle in line and line.startswith("python -m cfc_control.train: error:")
    assert not out.exists()  # nothing was collected, trained or written


def test_train_refuses_an_unwritable_out(a_file, capsys):
    line = one_line_error(train_cli.main, BASE + ["--out", str(a_file / "run")], capsys)
    assert "--out" in line and "not a directory" in line


@pytest.mark.parametrize("bind", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:-1", "tcp://127.0.0.1:0",
                                  "tcp://127.0.0.1", "127.0.0.1:5555"])
def test_serve_refuses_a_port_zeromq_would_silently_change(bind, capsys):
    # ZeroMQ binds port 99999 as 34463 (mod 65536) without a word; the port is checked first.
    line = one_line_error(serve_cli.main, [SHIPPED, "--bind", bind], capsys)
    assert "--bind" in line


def test_view_refuses_an_unwritable_out_before_rendering(a_file, capsys):
    line = one_line_error(view_cli.main, [SHIPPED, "--out", str(a_file / "run.mp4")], capsys)
    assert "--out" in line and "not a directory" in line
    assert "return" not in capsys.readouterr().out  # no rollout ran


def test_eval_mistakes_are_one_line(capsys):
    assert "observations" in one_line_error(eval_cli.main, [SHIPPED, "--env", "InvertedPendulum-Full-Fixed",
                                                            "--episodes", "1"], capsys)
    assert "--expert needs --env" in one_line_error(eval_cli.main, ["--expert", "lqr"], capsys)


def test_train_as_a_library_call_with_timing_and_obs_overrides(tmp_path, capsys):
    config = RunConfig(env=TASK, timing="Fixed", obs="Full", model_kw={"units": 8}, out=str(tmp_path / "run"),
                       imitation=ImitationConfig(episodes=2, epochs=1, window=16, burn_in=8),
                       evaluation=EvaluationConfig(episodes=1, timings=("Fixed",)))
    outcome = train(config, RunOptions(progress=False, tensorboard=False))
    assert outcome.policy.n_obs == 4  # the Full observation: positions and velocities
    card = read_card(outcome.policy_dir)
    assert card["overrides"] == {"timing": "Fixed", "obs": "Full"}
    assert card["data"]["timing"] == "Fixed" and set(outcome.evaluation) == {"Fixed"}
    # The run directory records the config; a resume must ask for the same training.
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["obs"] == "Full"
    with pytest.raises(ValueError, match="another config"):
        train(RunConfig(**{**config.__dict__, "seed": 1}), RunOptions(resume=True, progress=False))
    # Where it is written, how often it checkpoints and how it is evaluated do not change the training.
    assert config == RunConfig(**{**config.__dict__, "out": "elsewhere", "checkpoint_every": 1})


def test_the_command_line_is_the_config():
    from cfc_control.training.command_line import parse_config

    config, options = parse_config(["--algo", "dagger", "--seed", "3", "--dagger-episodes", "4", "--no-warm-start",
                                    "--eval-timings", "Fixed,Jitter", "--model-kw", "units=8", "--no-progress"])
    assert config.algo == "dagger" and config.seed == 3 and config.model_kw == {"units": 8}
    assert config.dagger.episodes_per_iteration == 4 and config.dagger.warm_start is False
    assert config.evaluation.timings == ("Fixed", "Jitter") and options.progress is False
    assert config.imitation == ImitationConfig()  # untouched settings keep their defaults


def test_help_reads_as_a_guide(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    for needle in ("--resume", "--eval-timings", "--dagger-episodes", "--total-steps", "(default: 40)",
                   "iterations, one rollout and update each (ppo)", "python -m cfc_control.train --env"):
        assert needle in text
    # a --no-<name> switch turns its setting off, and its help says so
    assert "--no-progress switch off: show progress bars" in text


def test_a_card_made_with_a_preset_replays_with_its_spec(make_policy):
    """A card records the spec in seconds; evaluating with it must draw the episodes the preset drew."""
    policy = make_policy("cfc", n_obs=2, n_act=1, nominal_dt=0.04, units=8)
    nominal = task_info(TASK)["nominal_dt"]
    for preset in ("Jitter", "Irregular"):
        spec = parse_timing(preset, nominal).spec
        by_name = evaluate(policy, TASK, timing=preset, episodes=2)
        by_spec = evaluate(policy, TASK, timing=spec, episodes=2)
        assert by_name.timing == spec and by_name.returns == by_spec.returns and by_name.lengths == by_spec.lengths


def test_video_plays_in_simulated_time(tmp_path, make_policy):
    from cfc_control.viewer import configure_rendering, record_rollout, write_video
    from cfc_control.viewer.video import frame_steps

    env = make_env("HalfCheetah-Full-Irregular", render_mode="rgb_array", width=64, height=48, camera_name="track")
    configure_rendering(env)
    policy = make_policy("cfc", n_obs=17, n_act=6, nominal_dt=0.05, units=8)
    rollout = record_rollout(policy, env, seed=1, max_steps=30)
    stats = write_video(rollout, env, tmp_path / "run.mp4", layout="none", fps=20)
    env.close()
    simulated = float(rollout.time[-1] + rollout.period[-1])
    frames = iio.imread(tmp_path / "run.mp4", index=None).shape[0]
    assert frames == stats.frames == math.ceil(simulated * 20 - 1e-6)  # plays for the simulated seconds
    assert frames != rollout.steps  # Irregular periods: not one frame per step
    shown = frame_steps(rollout, 20.0)
    assert np.all(np.diff(shown) >= 0) and shown[0] == 0
    for k, step in enumerate(shown):  # each frame shows the step under way at its time
        assert rollout.time[step] <= k / 20 + 1e-6 < rollout.time[step] + rollout.period[step] + 1e-6


def test_the_settotalmass_warning_is_silenced_and_others_are_not(capfd):
    import mujoco

    from cfc_control.tasks.mujoco_warnings import stock_env_warnings

    make_env("HalfCheetah-Pos-Jitter").close()
    make_env("HalfCheetah-v5").close()
    assert "settotalmass" not in capfd.readouterr().err
    model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><body><joint/><geom size="1"/></body></worldbody></mujoco>')
    data = mujoco.MjData(model)
    data.qpos[:] = np.nan
    with stock_env_warnings():
        mujoco.mj_step(model, data)
    assert "Nan, Inf or huge value in QPOS" in capfd.readouterr().err


def test_progress_shows_collection_evaluation_and_the_ppo_return(tmp_path, capsys):
    bc = ["--env", TASK, "--model-kw", "units=8", "--episodes", "2", "--epochs", "1", "--window", "16",
          "--burn-in", "8", "--eval-episodes", "1", "--eval-timings", "Fixed", "--no-tensorboard"]
    assert train_cli.main(bc + ["--out", str(tmp_path / "bc")]) == 0
    err = capsys.readouterr().err
    assert "demonstrations" in err and "eval Fixed" in err and "episode" in err
    ppo = ["--env", TASK, "--algo", "ppo", "--model-kw", "units=8", "--n-envs", "2", "--n-steps", "64",
           "--hp", "batch_size=64", "--n-epochs", "1", "--total-steps", "256", "--eval-episodes", "0",
           "--no-tensorboard"]
    assert train_cli.main(ppo + ["--out", str(tmp_path / "ppo")]) == 0
    assert "return=" in capsys.readouterr().err  # the recent episode return on the PPO bar


def test_ctrl_c_says_how_to_resume_without_a_traceback(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "cfc_control.train", "--env", TASK, "--model-kw", "units=8", "--episodes", "2",
            "--epochs", "100000", "--window", "16", "--burn-in", "8", "--checkpoint-every", "1", "--no-progress",
            "--no-tensorboard", "--out", str(out)]
    # Ctrl-C at a terminal: SIGINT at its default. A shell that starts pytest in the background
    # leaves it ignored, and a child inherits that, so the run's own handler would never be set.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not (out / "checkpoints" / "latest.json").is_file() and time.time() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert f"--out {out} --resume" in err and "the last checkpoint is" in err


def test_a_command_shows_the_projects_warnings_as_one_line_and_others_as_python_does(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored afterwards
    ArgumentParser(prog="python -m cfc_control.eval").parse_args([])
    ours = PeriodOutsideTrainingWarning("the timing fixed:0.16 is outside\n   the periods")
    assert warnings.formatwarning(ours, PeriodOutsideTrainingWarning, "/x/eval.py", 71, "code") == (
        "python -m cfc_control.eval: warning: the timing fixed:0.16 is outside the periods\n")
    theirs = warnings.formatwarning(DeprecationWarning("old API"), DeprecationWarning, "/y/lib.py", 5, "code")
    assert "/y/lib.py:5" in theirs and "old API" in theirs
