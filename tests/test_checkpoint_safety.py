"""Checkpoints of a run stay inside the run: latest.json cannot point elsewhere, and what a kill
during a write leaves behind is removed by the next save."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cfc_control.training.checkpoint import CheckpointManager


def _optimizer_state(policy):
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    return opt.state_dict()


@pytest.mark.parametrize("pointer", ["../../elsewhere", "/etc", "..", ".00000001.tmpdir", "", 7, None])
def test_latest_json_cannot_point_outside_the_run(make_policy, tmp_path, pointer):
    policy = make_policy("cfc", units=8, backbone_units=8)
    manager = CheckpointManager(tmp_path / "run")
    manager.save(1, policy, _optimizer_state(policy), {})
    (tmp_path / "elsewhere").mkdir()
    (manager.root / "latest.json").write_text(json.dumps({"step": 1, "path": pointer}))
    with pytest.raises(ValueError, match="latest.json"):
        manager.latest()


def test_a_kill_during_a_checkpoint_write_leaves_nothing_after_the_next_save(make_policy, tmp_path):
    policy = make_policy("cfc", units=8, backbone_units=8)
    run = tmp_path / "run"
    manager = CheckpointManager(run)
    manager.save(1, policy, _optimizer_state(policy), {"epoch": 1})
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.join(os.getcwd(), 'tests')!r})
        import torch
        from cfc_control.training import checkpoint
        from cfc_control.policies import load_policy
        policy = load_policy({str(run / 'checkpoints' / '00000001')!r})
        checkpoint.save_file = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # dies mid-write
        opt = torch.optim.Adam(policy.parameters())
        checkpoint.CheckpointManager({str(run)!r}).save(2, policy, opt.state_dict(), {{"epoch": 2}})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert result.returncode == -9, result.stderr
    leftovers = [p.name for p in manager.root.iterdir() if p.name.startswith(".")]
    assert leftovers  # the killed write left its temporary directory
    assert manager.load(restore_rng=False).step == 1  # the previous checkpoint is whole
    manager.save(3, policy, _optimizer_state(policy), {"epoch": 3})
    assert sorted(p.name for p in manager.root.iterdir()) == ["00000001", "00000003", "latest.json"]
    assert manager.load(restore_rng=False).step == 3
