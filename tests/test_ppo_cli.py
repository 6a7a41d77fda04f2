"""python -m cfc_control.train --algo ppo end to end on tiny sizes: policy directory and card,
logs, checkpoints, --resume after a crash, --init-from."""

import csv
import json

import torch

from cfc_control import train
from cfc_control.eval import main as eval_main
from cfc_control.policies import load_policy, read_card
from cfc_control.training.ppo.algorithm import SequencePPO

TASK = "InvertedPendulum-Pos-Irregular"
TINY = ["--env", TASK, "--algo", "ppo", "--model-kw", "units=8", "--n-envs", "2", "--n-steps", "64",
        "--hp", "batch_size=64", "--n-epochs", "2", "--no-progress"]


def _rows(out):
    with (out / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_a_fresh_walker2d_cfc_is_built_with_the_familys_backbone_and_its_card_says_so(tmp_path):
    out = tmp_path / "walker"
    args = ["--env", "Walker2d-Pos-Irregular"] + TINY[2:] + ["--total-steps", "128", "--eval-episodes", "1",
                                                            "--eval-timings", "Fixed", "--out", str(out)]
    assert train.main(args) == 0
    assert read_card(out / "policy")["model_kwargs"] == {"backbone_layers": 1, "backbone_units": 64, "units": 8}
    model = load_policy(out / "policy").model
    assert model.config["backbone_layers"] == 1 and model.config["backbone_units"] == 64


def test_ppo_run_writes_policy_card_logs_and_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    rc = train.main(TINY + ["--total-steps", "256", "--seed", "3", "--checkpoint-every", "1", "--eval-episodes", "2",
                            "--eval-timings", "Fixed,Irregular", "--out", str(out)])
    assert rc == 0
    policy = load_policy(out / "policy")
    assert policy.n_obs == 2 and policy.model_name == "cfc" and policy.model.state_size == 8
    card = read_card(out / "policy")
    assert card["task"] == "cfc_control/InvertedPendulum-Pos-Irregular-v0"
    assert card["algorithm"] == "ppo" and card["policy"] == "cfc" and card["seeds"]["run"] == 3
    assert card["steps"] == 256 and card["iterations"] == 2
    assert card["model_kwargs"] == {"backbone_layers": 0, "units": 8}
    assert card["hyperparameters"]["ppo"]["n_envs"] == 2 and card["hyperparameters"]["ppo"]["batch_size"] == 64
    # the plain CfC on the pendulum explores with exp(-2.5) (studies/ppo-cfc-long-periods.md)
    assert card["hyperparameters"]["ppo"]["log_std_init"] == -2.5
    assert card["training_time_s"] > 0 and "--algo ppo" in card["command"]
    assert set(card["evaluation"]) == {"Fixed", "Irregular"}
    assert all(len(e["returns"]) == 2 for e in card["evaluation"].values())
    rows = _rows(out)
    assert [int(r["step"]) for r in rows] == [128, 256]
    assert all(float(r["train/value_loss"]) >= 0 and "rollout/ep_rew_mean" in r for r in rows)
    assert any((out / "tb").iterdir())
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 256
    # One checkpoint per step holds every part of PPO's state.
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir()) == ["00000128", "00000256"]
    assert (out / "checkpoints" / "00000256" / "critic" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "00000256" / "state.safetensors").is_file()
    assert not (out / "ppo_state").exists()
    assert "Irregular: return" in capsys.readouterr().out
    assert eval_main([str(out), "--episodes", "1", "--timing", "Jitter", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["episodes"] == 1


def test_resume_after_a_crash_continues_from_the_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = TINY + ["--total-steps", "512", "--checkpoint-every", "2", "--eval-episodes", "0", "--no-tensorboard",
                   "--out", str(out)]
    original = SequencePPO.collect_rollouts
    calls = {"n": 0}

    def crash_on_third(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return original(self, *a, **kw)

    monkeypatch.setattr(SequencePPO, "collect_rollouts", crash_on_third)
    assert train.main(args) == 130
    monkeypatch.setattr(SequencePPO, "collect_rollouts", original)
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 256
    saved = load_policy(out / "checkpoints" / "00000256")

    loaded = {}
    original_learn = SequencePPO.learn

    def spy_learn(self, *a, **kw):  # what the resumed run starts from
        loaded["actor"] = {k: v.clone() for k, v in self.policy.actor.model.state_dict().items()}
        loaded["steps"] = self.num_timesteps
        return original_learn(self, *a, **kw)

    monkeypatch.setattr(SequencePPO, "learn", spy_learn)
    assert train.main(["--out", str(out), "--resume", "--no-progress"]) == 0
    assert loaded["steps"] == 256
    for key, value in saved.model.state_dict().items():
        torch.testing.assert_close(loaded["actor"][key], value)
    card = read_card(out / "policy")
    assert card["steps"] == 512 and card["iterations"] == 4 and "resumed_with" in card
    assert [int(r["step"]) for r in _rows(out)] == [128, 256, 384, 512]


def test_init_from_starts_the_actor_from_a_policy_directory(tmp_path):
    source = tmp_path / "source"
    assert train.main(TINY + ["--total-steps", "128", "--eval-episodes", "0", "--no-tensorboard",
                              "--out", str(source)]) == 0
    start = load_policy(source / "policy")
    out = tmp_path / "tuned"
    # critic warm-up for every iteration and frozen observation statistics: the actor must come
    # out exactly as it went in, so it provably started from the given directory.
    assert train.main(TINY + ["--total-steps", "256", "--eval-episodes", "0", "--no-tensorboard",
                              "--init-from", str(source), "--policy", "lstm",
                              "--hp", "critic_warmup=5", "--hp", "normalize_obs=false", "--out", str(out)]) == 0
    tuned = load_policy(out / "policy")
    for key, value in start.model.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value)
    card = read_card(out / "policy")
    assert card["init_from"] == str(source) and card["policy"] == "cfc"
    assert card["init_from_card"]["algorithm"] == "ppo"
    assert card["hyperparameters"]["ppo"]["log_std_init"] == -1.5  # the --init-from defaults applied
    assert all(float(r["train/critic_only"]) == 1 for r in _rows(out))


def test_bad_hyperparameters_fail_with_a_clear_message(tmp_path, capsys):
    cases = [(["--hp", "batchsize=3"], "unknown PPO hyperparameters"),
             (["--hp", "batch_size"], "--hp expects KEY=VALUE"),
             (["--lr", "1e-4"], "--lr is a bc/dagger flag and does nothing for ppo; use --learning-rate")]
    for i, (flags, message) in enumerate(cases):
        assert train.main(TINY + flags + ["--out", str(tmp_path / str(i))]) == 2
        assert message in capsys.readouterr().err


def test_a_resumed_run_ends_with_the_weights_of_a_straight_run(tmp_path, monkeypatch):
    """The checkpoint holds every part of the state (actor, critic, log-std, optimiser, counters,
    normalisers, generators, and the rollout in progress: each env's simulator and generators,
    the last observations and recurrent states), so an interrupted run resumed from it is the
    straight run bit for bit, logs included."""
    args = TINY + ["--total-steps", "512", "--checkpoint-every", "2", "--eval-episodes", "0", "--no-tensorboard"]
    assert train.main(args + ["--out", str(tmp_path / "straight")]) == 0
    original = SequencePPO.collect_rollouts
    calls = {"n": 0}

    def crash_on_third(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # mid-episode in every env: InvertedPendulum episodes outlast 2 rollouts here
            raise KeyboardInterrupt("simulated Ctrl-C")
        return original(self, *a, **kw)

    monkeypatch.setattr(SequencePPO, "collect_rollouts", crash_on_third)
    assert train.main(args + ["--out", str(tmp_path / "crashed")]) == 130
    monkeypatch.setattr(SequencePPO, "collect_rollouts", original)
    assert train.main(["--out", str(tmp_path / "crashed"), "--resume", "--no-progress"]) == 0
    straight, resumed = load_policy(tmp_path / "straight" / "policy"), load_policy(tmp_path / "crashed" / "policy")
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    def learning(rows):  # every column but the clocks
        return [{k: v for k, v in r.items() if not k.startswith("time/") and k != "elapsed_s"} for r in rows]

    assert learning(_rows(tmp_path / "crashed")) == learning(_rows(tmp_path / "straight"))


def test_resuming_from_an_incomplete_checkpoint_is_one_line(tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    assert train.main(TINY + ["--total-steps", "256", "--eval-episodes", "0", "--no-tensorboard", "--out", str(out)]) == 0
    shutil.rmtree(out / "checkpoints" / "00000256" / "critic")  # as an older version's checkpoints are
    assert train.main(["--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not a complete PPO checkpoint" in err and "Traceback" not in err
