"""PPO --resume: where the resumed run ends, not only where it starts (tests/test_ppo_cli.py checks
the starting weights). Tiny sizes on InvertedPendulum-Pos-Irregular."""

import shutil

import pytest
import torch

from cfc_control import train
from cfc_control.policies import load_policy, read_card
from cfc_control.training.ppo.algorithm import SequencePPO

TINY = ["--env", "InvertedPendulum-Pos-Irregular", "--algo", "ppo", "--model-kw", "units=8", "--n-envs", "2",
        "--n-steps", "64", "--hp", "batch_size=64", "--n-epochs", "2", "--no-progress", "--total-steps", "512",
        "--checkpoint-every", "2", "--eval-episodes", "0", "--no-tensorboard", "--seed", "5"]


def _weights(directory):
    return load_policy(directory).model.state_dict()


def _crash_on_third_rollout(monkeypatch, out):
    """Run TINY into ``out`` and crash in the third rollout (the checkpoint at step 256 is on disk)."""
    original = SequencePPO.collect_rollouts
    calls = {"n": 0}

    def crash(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return original(self, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(SequencePPO, "collect_rollouts", crash)
        assert train.main(TINY + ["--out", str(out)]) == 130  # Ctrl-C's exit code; the checkpoint stays


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and a crashed run resumed twice from the same checkpoint (copies)."""
    base = tmp_path_factory.mktemp("ppo_resume")
    assert train.main(TINY + ["--out", str(base / "whole")]) == 0
    monkeypatch = pytest.MonkeyPatch()
    try:
        _crash_on_third_rollout(monkeypatch, base / "a")
    finally:
        monkeypatch.undo()
    shutil.copytree(base / "a", base / "b")
    for name in ("a", "b"):
        assert train.main(["--out", str(base / name), "--resume", "--no-progress"]) == 0
    return base


def test_the_crash_left_the_uninterrupted_runs_checkpoint(runs):
    whole, crashed = _weights(runs / "whole" / "checkpoints" / "00000256"), _weights(runs / "a" / "checkpoints" / "00000256")
    for key, value in whole.items():
        torch.testing.assert_close(crashed[key], value, rtol=0, atol=0)


def test_a_resumed_run_ends_trained_past_its_checkpoint_at_the_full_length(runs):
    start, end = _weights(runs / "a" / "checkpoints" / "00000256"), _weights(runs / "a" / "policy")
    assert any(not torch.equal(start[k], end[k]) for k in start), "the resumed run did not train"
    card = read_card(runs / "a" / "policy")
    assert card["steps"] == 512 and card["iterations"] == 4


def test_resuming_from_the_same_checkpoint_ends_in_the_same_place(runs):
    """Resume is deterministic: two resumes of one checkpoint end with identical weights."""
    a, b = _weights(runs / "a" / "policy"), _weights(runs / "b" / "policy")
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0)


def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(runs):
    whole, resumed = _weights(runs / "whole" / "policy"), _weights(runs / "a" / "policy")
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)
