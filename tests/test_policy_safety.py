"""A policy directory is data: loading, evaluating, viewing or running one never imports code
named in it, and a tampered or absurd one is refused with a one-line error naming the file."""

import json
import os
import subprocess
import sys

import pytest

from cfc_control.policies import load_policy, write_card
from cfc_control.tasks import resolve_stored_task

EVIL = "import pathlib\npathlib.Path(__file__).with_name('MARKER').write_text('ran')\n"


@pytest.fixture
def evil_dir(make_policy, tmp_path):
    """A policy directory with an evil_module.py beside its files, and a task that names it."""
    directory = tmp_path / "downloaded"
    make_policy("cfc", n_obs=4, n_act=1, units=8, backbone_units=8, directory=directory)
    (directory / "evil_module.py").write_text(EVIL)
    return directory


def _set_task(directory, task, where="config"):
    if where == "config":
        config = json.loads((directory / "config.json").read_text())
        config["policy"]["task"] = task
        (directory / "config.json").write_text(json.dumps(config))
    else:
        write_card(directory, {"task": task, "evaluation": {"Jitter": {"timing_spec": "Jitter", "episodes": 1,
                                                                       "seed": 0, "mean": 0.0, "std": 0.0}}})


def _cli(directory, *args):
    env = dict(os.environ, PYTHONPATH=os.getcwd())  # this checkout, run from inside the policy directory
    return subprocess.run([sys.executable, "-m", *args], cwd=directory, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("command", [
    ("cfc_control.eval", ".", "--episodes", "1"),
    ("cfc_control.run", ".", "--rate", "50", "--duration", "0.1"),
    ("cfc_control.view", ".", "--plots", "p.png", "--max-steps", "2"),
], ids=["eval", "run", "view"])
def test_a_module_task_in_the_config_is_never_imported(evil_dir, command):
    _set_task(evil_dir, "evil_module:InvertedPendulum-Pos-Jitter")
    result = _cli(evil_dir, *command)
    assert not (evil_dir / "MARKER").exists()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "config.json" in result.stderr, result.stderr


def test_a_module_task_in_the_card_is_never_imported(evil_dir):
    _set_task(evil_dir, "InvertedPendulum-Pos-Jitter")
    _set_task(evil_dir, "evil_module:Foo", where="card")
    result = _cli(evil_dir, "cfc_control.eval", ".", "--card")
    assert not (evil_dir / "MARKER").exists()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "card.json" in result.stderr, result.stderr


def test_stored_tasks_resolve_to_our_tasks_and_gymnasium_mujoco_only(evil_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(evil_dir))
    assert resolve_stored_task("InvertedPendulum-Pos-Jitter") == "cfc_control/InvertedPendulum-Pos-Jitter-v0"
    assert resolve_stored_task("Hopper-v5") == "Hopper-v5"
    for bad in ["evil_module:Foo", "evil_module:Hopper-v5", "CartPole-v1", "", None, 3]:
        with pytest.raises(ValueError, match="card.json"):
            resolve_stored_task(bad, "x/card.json")
    assert not (evil_dir / "MARKER").exists()
    _set_task(evil_dir, "evil_module:Foo")
    with pytest.raises(ValueError, match="config.json.*module"):
        load_policy(evil_dir)
