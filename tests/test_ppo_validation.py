"""PPO with --val-every: the run's policy is the best validated copy of the actor; validation
changes nothing of the training, survives a resume, and refuses bad settings up front."""

import pytest
import torch

from cfc_control import train
from cfc_control.episodes.evaluation import evaluate
from cfc_control.policies import load_policy, read_card
from cfc_control.training.ppo.algorithm import SequencePPO
from cfc_control.training.ppo.validation import VALIDATION_SEED

from test_ppo_cli import TINY, _rows

VAL = ["--val-every", "1", "--val-episodes", "2", "--val-timings", "Jitter,2x"]
RUN = TINY + ["--total-steps", "512", "--checkpoint-every", "2", "--eval-episodes", "0", "--no-tensorboard"]


def _weights(policy):
    return {k: v.clone() for k, v in policy.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _score(policy, card):
    """What validation scores ``policy`` at: the mean over the card's validation timings."""
    v = card["validation"]
    means = [evaluate(policy, timing=t, episodes=v["episodes"], seed=VALIDATION_SEED).mean for t in v["timings"]]
    return sum(means) / len(means)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    assert train.main(RUN + VAL + ["--out", str(root / "validated")]) == 0
    assert train.main(RUN + ["--out", str(root / "plain")]) == 0
    return root


def test_the_policy_is_the_best_validated_actor_the_start_and_the_end_included(runs):
    card = read_card(runs / "validated" / "policy")
    v = card["validation"]
    assert [h["iteration"] for h in v["history"]] == [0, 1, 2, 3, 4]
    assert v["timings"] == ["Jitter", "2x"] and v["episodes"] == 2 and v["every_iterations"] == 1
    best = max(v["history"], key=lambda h: h["score"])
    assert v["selected"] == best
    policy = load_policy(runs / "validated" / "policy")
    assert _score(policy, card) == pytest.approx(best["score"], abs=1e-3)
    # the metrics log has each validation as a row at its step
    scores = {int(r["step"]): float(r["validation/score"]) for r in _rows(runs / "validated")
              if r.get("validation/score")}
    assert scores == {h["steps"]: h["score"] for h in v["history"]}


def test_validation_changes_nothing_of_the_training(runs):
    """The last iterate (the final checkpoint's actor) is the one a run without validation ends
    with: validation copies the actor and draws from no generator training uses."""
    last = load_policy(runs / "validated" / "checkpoints" / "00000512")
    plain = load_policy(runs / "plain" / "policy")
    assert _same(_weights(last), _weights(plain))
    assert "validation" not in read_card(runs / "plain" / "policy")


def test_a_resumed_run_selects_as_the_straight_run(runs, tmp_path, monkeypatch):
    original = SequencePPO.collect_rollouts
    calls = {"n": 0}

    def crash_on_fourth(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:  # after the checkpoint at iteration 2, with iteration 3's validation lost
            raise KeyboardInterrupt("simulated Ctrl-C")
        return original(self, *a, **kw)

    monkeypatch.setattr(SequencePPO, "collect_rollouts", crash_on_fourth)
    assert train.main(RUN + VAL + ["--out", str(tmp_path / "crashed")]) == 130
    monkeypatch.setattr(SequencePPO, "collect_rollouts", original)
    assert train.main(["--out", str(tmp_path / "crashed"), "--resume", "--no-progress"]) == 0
    straight, resumed = read_card(runs / "validated" / "policy"), read_card(tmp_path / "crashed" / "policy")
    assert resumed["validation"]["history"] == straight["validation"]["history"]
    assert resumed["validation"]["selected"] == straight["validation"]["selected"]
    assert _same(_weights(load_policy(tmp_path / "crashed" / "policy")),
                 _weights(load_policy(runs / "validated" / "policy")))


@pytest.mark.parametrize("flags, message", [
    (["--val-every", "1", "--val-timings", "sometimes"], "--val-timings"),
    (["--val-every", "1", "--val-episodes", "0"], "--val-episodes must be positive"),
    (["--val-every", "-1"], "--val-every must be >= 0"),
])
def test_bad_validation_settings_are_one_line_before_any_work(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert train.main(RUN + flags + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "checkpoints").exists()
