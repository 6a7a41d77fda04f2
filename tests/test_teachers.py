"""Teachers: SB3 agents on a task's full state with Δt as an input, trained under a period
distribution, resumable from checkpoints that hold the whole training state (no pickles)."""

import json

import numpy as np
import pytest
import torch

from cfc_control.experts import make_expert
from cfc_control.experts.train import main
from cfc_control.tasks import make_env
from cfc_control.training.teachers import TeacherConfig, train_teacher

TINY = {"policy_kwargs": {"net_arch": [16, 16]}}


def _config(tmp_path, algo, steps, **kw):
    overrides = dict(TINY, **({"learning_starts": 64, "buffer_size": 2000} if algo == "sac" else
                              {"n_steps": 64, "batch_size": 32, "n_epochs": 2}))
    kw.setdefault("dt_input", True)
    return TeacherConfig(env="InvertedPendulum", algo=algo, steps=steps, timing="Irregular+drop:0.1",
                         overrides=overrides, out=str(tmp_path / f"{algo}-expert"), run_dir=str(tmp_path / f"{algo}-run"),
                         checkpoint_every=64, eval_episodes=2, **kw)


def _train(config, resume=False):
    return train_teacher(config, resume=resume, progress=False)


def test_a_teacher_with_a_time_input_reads_the_period_that_just_elapsed(tmp_path):
    result = train_teacher(_config(tmp_path, "ppo", 128), progress=False)
    config = json.loads((result.directory / "config.json").read_text())
    assert config["dt_input"] and config["nominal_dt"] == 0.04 and config["timing"] == "loguniform:0.02,0.08+drop:0.1"
    assert config["observation_size"] == 5  # the stock 4 and Δt
    env = make_env("InvertedPendulum-Pos-Irregular")  # the student's task: the teacher reads the full state
    expert = make_expert(result.directory, env)
    env.reset(seed=3)
    for _ in range(5):
        stock = env.unwrapped._get_obs()
        dt = env.get_wrapper_attr("last_dt")
        obs = np.append(stock, dt / 0.04)
        norm = config["obs_normalization"]
        x = np.clip((obs - norm["mean"]) / np.sqrt(np.asarray(norm["var"]) + norm["epsilon"]), -norm["clip"], norm["clip"])
        with torch.no_grad():
            want = expert.policy.predict(x.astype(np.float32), deterministic=True)[0]
        np.testing.assert_allclose(expert.act(env), want, atol=1e-6)
        env.step(expert.act(env))
    card = json.loads((result.directory / "card.json").read_text())
    assert set(card["timings"]) == {"Fixed", "Jitter", "Irregular", "0.5x", "2x"}
    assert card["timings"]["0.5x"]["timing_spec"] == "fixed:0.02" and card["training_timing"] == config["timing"]


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_resume_restores_the_whole_training_state(tmp_path, algo):
    config = _config(tmp_path, algo, 128)
    train_teacher(config, progress=False)
    checkpoints = tmp_path / f"{algo}-run" / "checkpoints"
    latest = checkpoints / json.loads((checkpoints / "latest.json").read_text())["path"]
    assert latest.name == "0000000128"
    assert not any(p.suffix in (".pkl", ".zip", ".pickle") for p in latest.iterdir())
    if algo == "sac":
        with np.load(latest / "replay.npz", allow_pickle=False) as replay:
            assert replay["observations"].shape == (128, 1, 5) and int(replay["pos"]) == 128

    # Resuming to a longer budget restores the state saved at step 128, then trains on.
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from cfc_control.training.sb3_state import load_training_state
    from cfc_control.training.teachers import env_factory, resolve
    from cfc_control.experts.sb3 import _torch_policy_kwargs

    setup = resolve(config)
    venv = DummyVecEnv([env_factory(setup)])
    norm = VecNormalize(venv, gamma=setup.hyperparameters.get("gamma", 0.99)) if setup.normalize else None
    cls = PPO if algo == "ppo" else SAC
    fresh = cls("MlpPolicy", norm or venv, seed=5, device="cpu", policy_kwargs=_torch_policy_kwargs(setup.policy_kwargs),
                **setup.hyperparameters)
    progress = load_training_state(fresh, norm, latest)
    assert progress["num_timesteps"] == fresh.num_timesteps == 128
    from safetensors.torch import load_file

    for key, value in load_file(str(latest / "policy.safetensors")).items():
        assert torch.equal(fresh.policy.state_dict()[key], value), key
    if norm is not None:
        assert norm.obs_rms.count > 100
    else:
        assert fresh.replay_buffer.pos == 128

    resumed = _train(_config(tmp_path, algo, 256), resume=True)
    latest = checkpoints / json.loads((checkpoints / "latest.json").read_text())["path"]
    assert latest.name == "0000000256" and resumed.card["steps"] == 256
    assert len([p for p in checkpoints.iterdir() if p.is_dir()]) <= 2


def test_a_run_directory_is_not_overwritten_or_resumed_with_other_settings(tmp_path, capsys):
    train_teacher(_config(tmp_path, "ppo", 64), progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train_teacher(_config(tmp_path, "ppo", 64), progress=False)
    with pytest.raises(ValueError, match="seed"):
        _train(_config(tmp_path, "ppo", 64, seed=1), resume=True)
    args = ["--env", "InvertedPendulum", "--algo", "ppo", "--steps", "64", "--out", str(tmp_path / "ppo-expert"),
            "--run-dir", str(tmp_path / "ppo-run"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "Traceback" not in err


def test_a_resumed_teachers_card_records_the_command_that_trains_it(tmp_path):
    args = ["--env", "InvertedPendulum", "--algo", "ppo", "--out", str(tmp_path / "e"), "--run-dir", str(tmp_path / "r"),
            "--set", "n_steps=32", "--set", "batch_size=32", "--set", "n_epochs=1", "--set",
            'policy_kwargs={"net_arch": [8]}', "--eval-episodes", "1", "--checkpoint-every", "32", "--no-progress"]
    assert main([*args, "--steps", "32"]) == 0
    assert main([*args, "--steps", "64", "--resume"]) == 0  # trained on to more steps
    card = json.loads((tmp_path / "e" / "card.json").read_text())
    assert card["steps"] == 64 and "--steps 64" in card["command"] and "--resume" not in card["command"]


def test_teacher_config_mistakes_are_named(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown env 'Hoper'"):
        train_teacher(TeacherConfig(env="Hoper", out=str(tmp_path / "x")), progress=False)
    with pytest.raises(ValueError, match="timing spec"):
        train_teacher(TeacherConfig(env="Hopper", out=str(tmp_path / "x"), timing="Irregullar"), progress=False)
    with pytest.raises(ValueError, match="--set learnin_rate: not a PPO argument"):
        train_teacher(TeacherConfig(env="Hopper", algo="ppo", overrides={"learnin_rate": 1e-4}, out=str(tmp_path / "x")),
                      progress=False)
    assert not (tmp_path / "x").exists()
    assert main(["--env", "Hopper", "--set", "nokey", "--out", str(tmp_path / "y")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["--algo", "ppo", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--env is required" in err


def test_a_posvel_teacher_acts_without_the_forward_speed(tmp_path):
    """A Hopper teacher trained on PosVel never sees x's velocity (stock entry 5), in training nor
    when it labels a student's states: changing that speed alone leaves its action unchanged."""
    config = TeacherConfig(env="Hopper", algo="sac", steps=64, timing="Irregular", dt_input=True, obs="PosVel",
                           overrides=dict(TINY, learning_starts=32, buffer_size=500), out=str(tmp_path / "e"),
                           run_dir=str(tmp_path / "r"), checkpoint_every=64, eval_episodes=1)
    result = train_teacher(config, progress=False)
    stored = json.loads((result.directory / "config.json").read_text())
    assert stored["dropped_observations"] == [5] and stored["observation_size"] == 11  # 10 seen and Δt
    assert result.card["obs"] == "PosVel"
    env = make_env("Hopper-Pos-Irregular", seed=4)  # the student's task
    expert = make_expert(result.directory, env)
    base = env.unwrapped
    qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()

    def action_with(joint, delta):
        v = qvel.copy()
        v[joint] += delta
        base.set_state(qpos, v)
        return expert.act(env)

    np.testing.assert_array_equal(action_with(0, 0.0), action_with(0, 1.5))  # x's speed: unseen
    assert not np.array_equal(action_with(2, 0.0), action_with(2, 1.5))  # the torso's rate: seen


def test_a_run_recorded_before_a_setting_existed_resumes_with_its_default(tmp_path):
    _train(_config(tmp_path, "ppo", 64))
    settings = tmp_path / "ppo-run" / "run.json"
    recorded = json.loads(settings.read_text())
    for key in ("obs", "dropped"):
        del recorded[key]
    settings.write_text(json.dumps(recorded))
    assert _train(_config(tmp_path, "ppo", 128), resume=True).card["steps"] == 128
    with pytest.raises(ValueError, match="obs"):
        _train(_config(tmp_path, "ppo", 192, obs="PosVel"), resume=True)


def _weights(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def test_a_teacher_starts_from_an_experts_weights(tmp_path):
    """--init-from: a fresh run begins with the expert's actor, critics and target critics (a
    budget under learning_starts makes no update, so the result is the expert itself), and its
    card names where it started."""
    first = _train(_config(tmp_path, "sac", 128))
    config = TeacherConfig(env="InvertedPendulum", algo="sac", steps=32, timing="Irregular+drop:0.1", dt_input=True,
                           overrides=dict(TINY, learning_starts=64, buffer_size=2000), out=str(tmp_path / "again"),
                           run_dir=str(tmp_path / "again-run"), checkpoint_every=64, eval_episodes=1,
                           init_from=str(first.directory))
    again = _train(config)
    before, after = _weights(first.directory), _weights(again.directory)
    assert set(before) == set(after) and any(k.startswith("critic_target.") for k in before)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert again.card["init_from"] == str(first.directory)


def test_a_ppo_teacher_started_from_an_expert_keeps_its_observation_statistics(tmp_path):
    first = _train(_config(tmp_path, "ppo", 128))
    again = _train(_config(tmp_path / "b", "ppo", 64, init_from=str(first.directory)))
    old = json.loads((first.directory / "config.json").read_text())["obs_normalization"]
    new = json.loads((again.directory / "config.json").read_text())["obs_normalization"]
    # Held as measured over the expert's 128 steps: 64 more move them by about a third, not wholly.
    np.testing.assert_allclose(new["mean"], old["mean"], atol=0.5 * np.abs(np.asarray(old["mean"])).max() + 0.05)
    fresh = _train(_config(tmp_path / "c", "ppo", 64))
    fresh_mean = json.loads((fresh.directory / "config.json").read_text())["obs_normalization"]["mean"]
    assert np.abs(np.subtract(new["mean"], old["mean"])).sum() < np.abs(np.subtract(fresh_mean, old["mean"])).sum()


def test_init_from_an_expert_that_does_not_fit_is_refused_before_training(tmp_path, capsys):
    first = _train(_config(tmp_path, "ppo", 64))
    with pytest.raises(ValueError, match="its algo is 'ppo', this run's is 'sac'"):
        _train(_config(tmp_path / "b", "sac", 64, init_from=str(first.directory)))
    with pytest.raises(ValueError, match="dt_input"):
        _train(_config(tmp_path / "c", "ppo", 64, init_from=str(first.directory), dt_input=False))
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    args = ["--env", "InvertedPendulum", "--algo", "ppo", "--steps", "64", "--init-from", str(tmp_path / "nothing"),
            "--out", str(tmp_path / "d"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing" in err and "Traceback" not in err
