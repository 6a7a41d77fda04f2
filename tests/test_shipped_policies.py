"""Every policy shipped under policies/ loads from JSON + safetensors, carries a complete card, and
drives its own task with finite actions inside the action space."""

import json
from pathlib import Path

import numpy as np
import pytest

from cfc_control.policies import load_policy, read_card
from cfc_control.runtime.runner import PolicyRunner
from cfc_control.tasks import make_env

ROOT = Path(__file__).resolve().parents[1] / "policies"
SHIPPED = sorted(p for p in ROOT.iterdir() if (p / "config.json").is_file())


def test_there_is_a_shipped_default():
    assert (ROOT / "cfc-invertedpendulum-pos-irregular" / "model.safetensors").is_file()


@pytest.mark.parametrize("directory", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_card_and_rollout(directory):
    card = read_card(directory)
    for key in ("task", "algorithm", "policy", "seeds", "command", "evaluation"):
        assert key in card, f"{directory.name}/card.json lacks {key!r}"
    for timing in ("Fixed", "Jitter", "Irregular"):
        entry = card["evaluation"][timing]
        assert entry["episodes"] >= 20 and np.isfinite(entry["mean"])
    assert sum(f.stat().st_size for f in directory.iterdir()) < 1_000_000
    policy = load_policy(directory)
    assert policy.task == card["task"]
    runner = PolicyRunner.load(directory)
    env = make_env(card["task"], seed=0)
    obs, info = env.reset(seed=0)
    for _ in range(50):
        action = runner.step(obs, dt=info["dt"])
        assert np.all(np.isfinite(action))
        assert env.action_space.contains(action.astype(env.action_space.dtype))
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    json.dumps(card)  # the card stays plain JSON


@pytest.mark.parametrize("directory", SHIPPED, ids=lambda p: p.name)
def test_eval_reproduces_the_card_under_jitter(directory):
    """What `python -m cfc_control.eval DIR --card` checks, for the Jitter column of every card:
    the same seeds give a mean within the card's spread."""
    from cfc_control.policies.catalog import compare_with_card
    from cfc_control.episodes.evaluation import evaluate

    card = read_card(directory)
    entry = card["evaluation"]["Jitter"]
    result = evaluate(directory, card["task"], timing=entry["timing_spec"], episodes=entry["episodes"],
                      seed=entry["seed"])
    ok, diff = compare_with_card(entry, result.mean, result.std)
    assert ok, f"{directory.name}: Jitter mean {result.mean:.2f} vs card {entry['mean']:.2f} ± {entry['std']:.2f}"
