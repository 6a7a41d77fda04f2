"""python -m cfc_control.train / eval end to end on tiny sizes: policy directory with its card,
logs, checkpoints, --resume that ends where an uninterrupted run ends, and eval --json."""

import csv
import json

import numpy as np
import pytest
import torch

from cfc_control import train
from cfc_control.eval import main as eval_main
from cfc_control.policies import load_policy, read_card
from cfc_control.training import bc as bc_module
from cfc_control.training.run_context import Algorithm

BASE = ["--env", "InvertedPendulum-Pos-Irregular", "--model-kw", "units=8", "--episodes", "3", "--window", "16",
        "--burn-in", "8", "--no-progress"]
TINY = BASE + ["--no-tensorboard"]


def test_bc_run_writes_policy_card_logs_and_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    rc = train.main(BASE + ["--algo", "bc", "--epochs", "3", "--eval-episodes", "2", "--checkpoint-every", "2",
                            "--out", str(out), "--seed", "4"])
    assert rc == 0
    policy = load_policy(out / "policy")
    assert policy.n_obs == 2 and policy.model_name == "cfc"
    card = read_card(out / "policy")
    assert card["task"] == "cfc_control/InvertedPendulum-Pos-Irregular-v0"
    assert card["algorithm"] == "bc" and card["policy"] == "cfc" and card["seeds"]["run"] == 4
    assert card["data"]["episodes"] == 3 and card["data"]["expert"] == "lqr" and card["data"]["steps"] > 2000
    assert card["training_time_s"] > 0 and "--epochs 3" in card["command"]
    assert set(card["evaluation"]) == {"Fixed", "Jitter", "Irregular"}
    for entry in card["evaluation"].values():
        assert entry["episodes"] == 2 and len(entry["returns"]) == 2
        assert entry["mean"] == pytest.approx(np.mean(entry["returns"]), abs=1e-2)
    assert card["evaluation"]["Irregular"]["timing_spec"] == "loguniform:0.02,0.08"
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["val_loss"]) > 0 for r in rows)
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 3
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert "Irregular: return" in capsys.readouterr().out

    # eval CLI on the result, JSON out; the run directory resolves to its policy/.
    assert eval_main([str(out), "--episodes", "2", "--timing", "Fixed", "--timing", "uniform:0.03,0.05", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["timing"] for r in report["results"]] == ["fixed:0.04", "uniform:0.03,0.05"]
    assert report["results"][0]["returns"] == pytest.approx(card["evaluation"]["Fixed"]["returns"], abs=1e-3)
    assert eval_main([str(out), "--env", "InvertedPendulum-Full-Fixed", "--episodes", "1"]) == 2
    assert "observations" in capsys.readouterr().err


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, monkeypatch, capsys):
    args = TINY + ["--algo", "bc", "--epochs", "4", "--checkpoint-every", "2", "--eval-episodes", "0"]
    straight = tmp_path / "straight"
    assert train.main(args + ["--out", str(straight)]) == 0

    crashed = tmp_path / "crashed"
    original = bc_module.BCTrainer.train_epoch

    def crash_in_epoch_4(self):
        if self.epoch == 3:
            raise KeyboardInterrupt("simulated crash")
        return original(self)

    monkeypatch.setattr(bc_module.BCTrainer, "train_epoch", crash_in_epoch_4)
    assert train.main(args + ["--out", str(crashed)]) == 130  # Ctrl-C: no traceback, how to resume
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"--out {crashed} --resume" in err and "checkpoints/00000002" in err
    assert json.loads((crashed / "checkpoints" / "latest.json").read_text())["step"] == 2
    monkeypatch.setattr(bc_module.BCTrainer, "train_epoch", original)
    # Resume takes the run's own arguments from run.json (a different --epochs here is ignored).
    assert train.main(["--out", str(crashed), "--resume", "--no-progress", "--epochs", "99"]) == 0

    a, b = load_policy(straight / "policy"), load_policy(crashed / "policy")
    for (name, ta), tb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(tb, ta, rtol=0, atol=0, msg=name)
    with (crashed / "metrics.csv").open() as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4]
    card = read_card(crashed / "policy")
    assert "--resume" in card["resumed_with"] and "--resume" not in card["command"]


@pytest.mark.parametrize("extra", [[], ["--aux-state", "1"]], ids=["plain", "with-state-head"])
def test_dagger_run_and_resume_mid_round(tmp_path, monkeypatch, extra):
    args = TINY + ["--algo", "dagger", "--epochs", "2", "--iterations", "2", "--dagger-episodes", "2",
                   "--dagger-epochs", "2", "--beta", "constant:0", "--eval-episodes", "0", "--checkpoint-every", "1",
                   *extra]
    straight = tmp_path / "straight"
    assert train.main(args + ["--out", str(straight)]) == 0
    card = read_card(straight / "policy")
    assert card["algorithm"] == "dagger" and card["hyperparameters"]["dagger"]["beta"] == "constant:0"
    assert card["data"]["aggregate_episodes"] == card["data"]["train_episodes"] + 4
    assert [r["iteration"] for r in card["dagger_rounds"]] == [1, 2]
    assert all(r["beta"] == 0.0 for r in card["dagger_rounds"])
    assert (straight / "dagger_data.npz").is_file()

    # Crash in the second epoch of round 2 (global epoch 6), after round 2's data was collected.
    crashed = tmp_path / "crashed"
    original = bc_module.BCTrainer.train_epoch
    calls = {"n": 0}

    def crash(self):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("simulated crash")
        return original(self)

    monkeypatch.setattr(bc_module.BCTrainer, "train_epoch", crash)
    assert train.main(args + ["--out", str(crashed)]) == 130
    monkeypatch.setattr(bc_module.BCTrainer, "train_epoch", original)
    assert train.main(["--out", str(crashed), "--resume", "--no-progress"]) == 0
    a, b = load_policy(straight / "policy"), load_policy(crashed / "policy")
    for (name, ta), tb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(tb, ta, rtol=0, atol=0, msg=name)
    assert read_card(crashed / "policy")["data"]["aggregate_steps"] == card["data"]["aggregate_steps"]


def test_algorithm_table_and_bad_flags(tmp_path, capsys):
    for name in train.ALGORITHMS:
        algo = train.load_algorithm(name)
        assert isinstance(algo, Algorithm) and algo.name == name and callable(algo.run)
    with pytest.raises(ValueError, match="unknown algorithm"):
        train.load_algorithm("sarsa")
    assert train.main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert train.main(["--model-kw", "units", "--out", str(tmp_path / "x")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert train.main(["--policy", "transformer", "--out", str(tmp_path / "y")]) == 2
    assert "transformer" in capsys.readouterr().err


def test_eval_cli_scores_an_expert_on_the_same_seeds(capsys):
    assert eval_main(["--expert", "lqr", "--env", "InvertedPendulum-Pos-Irregular", "--episodes", "2",
                      "--timing", "Irregular", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (result,) = report["results"]
    assert result["episodes"] == 2 and result["timing"] == "loguniform:0.02,0.08"
    assert result["mean"] > 900  # the LQR expert balances under Irregular timing
    with pytest.raises(SystemExit):
        eval_main(["--expert", "lqr"])  # an expert needs --env
