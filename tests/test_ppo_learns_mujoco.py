"""PPO learns a real MuJoCo task, end to end through the command line: a CfC on
InvertedPendulum-Pos-Jitter goes from falling at once (return ~10) to balancing. Slow (~1.5 min
on 2 cores): left out of the default run, run by `.ci/run` as `python -m pytest -q -m slow`."""

import csv

import pytest

from cfc_control import train
from cfc_control.policies import read_card


@pytest.mark.slow
def test_ppo_cfc_learns_to_balance_the_inverted_pendulum(tmp_path):
    out = tmp_path / "run"
    # 40k env steps (8 envs x 128 steps per rollout): seed 0 reaches ~930 of 1000 here. A constant
    # learning rate and 15 epochs: the pendulum CfC's linear decay (to 0 at --total-steps) and 10
    # epochs are set for its 100k steps, and over 40k they leave it at ~240.
    assert train.main(["--env", "InvertedPendulum-Pos-Jitter", "--algo", "ppo", "--policy", "cfc", "--seed", "0",
                       "--total-steps", "40000", "--hp", "lr_schedule=constant", "--hp", "n_epochs=15",
                       "--eval-episodes", "10", "--eval-timings", "Jitter",
                       "--no-tensorboard", "--no-progress", "--out", str(out)]) == 0
    with (out / "metrics.csv").open() as fh:
        curve = [float(r["rollout/ep_rew_mean"]) for r in csv.DictReader(fh)]
    assert curve[0] < 30, f"the untrained policy should fall at once, got {curve[0]:.1f}"
    assert curve[-1] > 5 * curve[0], f"training returns did not rise: {curve[0]:.1f} -> {curve[-1]:.1f}"
    # The deterministic policy, on the card's own evaluation episodes.
    score = read_card(out / "policy")["evaluation"]["Jitter"]["mean"]
    assert score >= 500, f"PPO reached only {score:.1f} of 1000 on InvertedPendulum-Pos-Jitter"
