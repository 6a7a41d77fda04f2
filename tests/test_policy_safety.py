"""A policy directory is data: loading, evaluating, viewing or running one never imports code
named in it, and a tampered or absurd one is refused with a one-line error naming the file."""

import json
import os
import subprocess
import sys

import pytest

from cfc_control.files import update_manifest
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
        update_manifest(directory, "config.json")  # an author's own manifest vouches for nothing
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


# -- tampered and absurd files ---------------------------------------------------------------
@pytest.fixture
def policy_dir(make_policy, tmp_path):
    directory = tmp_path / "p"
    make_policy("cfc", n_obs=4, n_act=2, units=8, backbone_units=8, directory=directory)
    write_card(directory, {"task": "InvertedPendulum-Pos-Jitter"})
    return directory


def _flip_bit(file, offset_from_end=40):
    data = bytearray(file.read_bytes())
    data[-offset_from_end] ^= 0x01
    file.write_bytes(bytes(data))


def _edit_weights_header(file, old, new):
    data = file.read_bytes()
    assert old in data[:4096] and len(old) == len(new)
    file.write_bytes(data.replace(old, new, 1))


def _nan_weight(file):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(file))
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(file), metadata={"format": "pt"})


@pytest.mark.parametrize("tamper,without_manifest", [
    (lambda d: _flip_bit(d / "model.safetensors"), None),
    (lambda d: _nan_weight(d / "model.safetensors"), "non-finite"),
    (lambda d: _edit_weights_header(d / "model.safetensors", b'"F32"', b'"I32"'), "dtype"),
    (lambda d: _edit_weights_header(d / "model.safetensors", b'"F32"', b'"F16"'), "dtype"),
], ids=["flipped-bit", "nan-weight", "dtype-int", "dtype-half"])
def test_corrupted_weights_are_refused(policy_dir, tamper, without_manifest):
    tamper(policy_dir)
    with pytest.raises(ValueError, match="model.safetensors.*SHA-256"):
        load_policy(policy_dir)
    if without_manifest:  # a directory saved before manifests: the content checks catch it
        (policy_dir / "manifest.json").unlink()
        with pytest.raises(ValueError, match=f"model.safetensors.*{without_manifest}"):
            load_policy(policy_dir)


def test_a_changed_card_is_refused(policy_dir):
    from cfc_control.policies import read_card

    assert read_card(policy_dir)["task"] == "InvertedPendulum-Pos-Jitter"
    text = (policy_dir / "card.json").read_text().replace("Jitter", "Fixed")
    (policy_dir / "card.json").write_text(text)
    with pytest.raises(ValueError, match="card.json.*SHA-256"):
        read_card(policy_dir)


def _set(config, keys, value):
    target = config
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value


@pytest.mark.parametrize("keys,value", [
    (("model", "kwargs", "units_or_wiring"), 10**8),
    (("model", "kwargs", "backbone_units"), 10**9),
    (("model", "kwargs", "input_size"), 2 * 10**9),
    (("policy", "observation", "size"), 2 * 10**9),
    (("model", "kwargs", "units_or_wiring"), {"class": "AutoNCP", "units": 60000, "output_size": 2,
                                              "sparsity_level": 0.5, "seed": 1, "input_dim": 4}),
], ids=["units", "backbone_units", "input_size", "observation_size", "wiring_units"])
def test_absurd_sizes_are_refused_before_allocating(policy_dir, keys, value):
    """A config naming sizes its weights cannot hold fails fast, naming config.json, without
    allocating (each of these would ask for gigabytes)."""
    import resource
    import time

    config = json.loads((policy_dir / "config.json").read_text())
    _set(config, keys, value)
    (policy_dir / "config.json").write_text(json.dumps(config))
    update_manifest(policy_dir, "config.json")  # consistent: the sizes themselves must be refused
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ValueError, match="config.json"):
        load_policy(policy_dir)
    assert time.perf_counter() - start < 5.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB


def test_saved_policies_carry_a_manifest_and_rewriting_keeps_it_valid(policy_dir, make_policy):
    from cfc_control.files import read_manifest

    sums = read_manifest(policy_dir)
    assert sorted(sums) == ["card.json", "config.json", "model.safetensors"]
    make_policy("cfc", n_obs=4, n_act=2, units=8, backbone_units=8, seed=1, directory=policy_dir)  # re-save
    load_policy(policy_dir)
    assert read_manifest(policy_dir)["model.safetensors"] != sums["model.safetensors"]
