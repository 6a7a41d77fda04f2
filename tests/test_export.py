"""Exports equal the runner: TorchScript (state inside, reset) and ONNX through onnxruntime (state
fed back), over 1000-step rollouts with random Δt, within 1e-5; and the command line."""

import json
import os
import zipfile

import numpy as np
import pytest
import torch

from cfc_control import PolicyRunner
from cfc_control.export import main as export_main
from cfc_control.runtime import DtClampWarning
from cfc_control.runtime.export import export_onnx, export_torchscript, state_names

ort = pytest.importorskip("onnxruntime")
# Loading TorchScript is what the format's users do; torch's deprecation notice is not our concern.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

NAMES = [
    ("cfc", dict(units=16, backbone_units=24)),
    ("ncp", dict(units=16)),
    ("cfc-mm", dict(units=12, backbone_units=16, mode="no_gate")),
    ("lstm", dict(units=12)),
    ("mlp", dict(hidden=(16,))),
]


def _rollout(rng, steps, batch, n_obs):
    obs = rng.normal(size=(steps, batch, n_obs)) * 2.0
    dt = np.exp(rng.uniform(np.log(0.004), np.log(0.3), size=(steps, batch)))  # also beyond [dt_min, dt_max]
    return obs, dt


def _onnx_rollout(path, obs, dt):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    state = {i.name: np.zeros((obs.shape[1], i.shape[1]), np.float32) for i in inputs[2:]}
    actions = []
    for o, d in zip(obs, dt):
        out = sess.run(None, {"obs": o.astype(np.float32), "dt": d[:, None].astype(np.float32), **state})
        actions.append(out[0])
        state = {i.name: s for i, s in zip(inputs[2:], out[1:])}
    return np.stack(actions)


@pytest.mark.parametrize("name,kw", NAMES, ids=[n for n, _ in NAMES])
def test_torchscript_and_onnx_equal_the_runner(make_policy, tmp_path, name, kw):
    policy = make_policy(name, n_obs=5, n_act=3, **kw)
    steps = 1000 if name in ("cfc", "ncp") else 300
    obs, dt = _rollout(np.random.default_rng(0), steps, 2, 5)
    runner = PolicyRunner(policy, batch_size=2)
    with pytest.warns(DtClampWarning):  # the rollout leaves [dt_min, dt_max]: clamped and warned
        want = np.stack([runner.step(o, d) for o, d in zip(obs, dt)])

    ts_path = export_torchscript(policy, tmp_path / "p.pt")
    module = torch.jit.load(str(ts_path))
    with torch.no_grad():
        got = np.stack([module(torch.as_tensor(o), torch.as_tensor(d)).numpy() for o, d in zip(obs, dt)])
    np.testing.assert_allclose(got, want, atol=1e-5)

    onnx_path = export_onnx(policy, tmp_path / "p.onnx")
    np.testing.assert_allclose(_onnx_rollout(onnx_path, obs, dt), want, atol=1e-5)


def test_torchscript_reset_batch_change_and_single_rows(make_policy, tmp_path):
    policy = make_policy("ncp", n_obs=4, n_act=2, units=12)
    module = torch.jit.load(str(export_torchscript(policy, tmp_path / "p.pt")))
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(20, 4)).astype(np.float32)
    runner = PolicyRunner(policy)
    with torch.no_grad():
        first = [module(torch.as_tensor(o), torch.tensor(0.03)).numpy() for o in obs]
        np.testing.assert_allclose(first, [runner.step(o, 0.03) for o in obs], atol=1e-5)
        module.reset()
        runner.reset()
        again = [module(torch.as_tensor(o), torch.tensor([0.03])).numpy() for o in obs]
        np.testing.assert_allclose(again, first, atol=1e-6)
        # A new batch size mid-episode is refused (it would silently drop the state); after a
        # reset it starts from the initial state. 64 rows cross the models' size-dependent tanh
        # branch.
        big = np.repeat(obs[:1], 64, axis=0)
        with pytest.raises(Exception, match="batch size changed"):
            module(torch.as_tensor(big), torch.full((64,), 0.03))
        module.reset()
        out = module(torch.as_tensor(big), torch.full((64,), 0.03)).numpy()
        np.testing.assert_allclose(out, np.repeat(first[:1], 64, axis=0), atol=1e-5)
        assert first[0].shape == (2,)
        with pytest.raises(Exception, match="obs must be"):
            module(torch.zeros(3, 5), torch.tensor(0.03))


def test_onnx_file_describes_itself(make_policy, tmp_path):
    import onnx

    policy = make_policy("cfc-mm", n_obs=4, n_act=2, units=8, backbone_units=8)
    path = export_onnx(policy, tmp_path / "p.onnx")
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["obs", "dt", "h", "c"]
    assert [o.name for o in model.graph.output] == ["action", "h_out", "c_out", "ok"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = json.loads({p.key: p.value for p in model.metadata_props}["cfc_control"])
    assert meta["state"] == ["h", "c"] and meta["policy"]["time"]["nominal_dt"] == pytest.approx(0.04)
    assert state_names(make_policy("mlp", hidden=(8,))) == []


def test_command_line(make_policy, tmp_path, capsys):
    make_policy("cfc", units=8, backbone_units=8, directory=tmp_path / "pol")
    assert export_main([str(tmp_path / "pol"), "--format", "torchscript", "--out", str(tmp_path / "a.pt")]) == 0
    assert "reset" in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "a.pt") as z:
        extra = [n for n in z.namelist() if n.endswith("extra/policy.json")]
        assert json.loads(z.read(extra[0]))["inputs"] == ["obs", "dt", "h"]
    assert export_main([str(tmp_path / "pol"), "--format", "onnx", "--out", str(tmp_path / "a.onnx")]) == 0
    assert (tmp_path / "a.onnx").stat().st_size > 0
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.onnx").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private mode
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert export_main([str(tmp_path / "missing"), "--format", "onnx", "--out", str(tmp_path / "b.onnx")]) == 2
    assert "error" in capsys.readouterr().err


def test_torchscript_refuses_bad_input_and_keeps_its_state(make_policy, tmp_path):
    policy = make_policy("cfc", n_obs=4, n_act=2, units=8)
    module = torch.jit.load(str(export_torchscript(policy, tmp_path / "p.pt")))
    runner = PolicyRunner(policy)
    obs = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    with torch.no_grad():
        for o in obs[:3]:
            module(torch.as_tensor(o), torch.tensor(0.04))
            runner.step(o, 0.04)
        bad_obs = obs[3].copy()
        bad_obs[1] = np.nan
        for args, match in (((bad_obs, 0.04), "non-finite"), ((obs[3], 0.0), "dt must be"),
                            ((obs[3], float("inf")), "dt must be")):
            with pytest.raises(Exception, match=match):
                module(torch.as_tensor(args[0]), torch.tensor(args[1]))
        # The refused calls left the state alone: the next good step equals the runner's.
        got = module(torch.as_tensor(obs[3]), torch.tensor(0.04)).numpy()
    np.testing.assert_allclose(got, runner.step(obs[3], 0.04), atol=1e-5)


def test_torchscript_keeps_no_autograd_graph_outside_no_grad(make_policy, tmp_path):
    """Called as the README shows (no torch.no_grad()), the module must not keep the autograd
    graph in its stored state: it would grow with every step."""
    module = torch.jit.load(str(export_torchscript(make_policy("cfc", units=8, backbone_units=8), tmp_path / "p.pt")))
    for _ in range(3):
        action = module(torch.ones(4), torch.tensor([0.04]))
    assert not action.requires_grad
    assert module.h.grad_fn is None and not module.h.requires_grad


@pytest.mark.parametrize("name,kw", [("cfc-mm", dict(units=8, backbone_units=8)), ("mlp", dict(hidden=(8,)))])
def test_onnx_flags_bad_rows_and_passes_their_state_through(make_policy, tmp_path, name, kw):
    policy = make_policy(name, n_obs=4, n_act=2, **kw)
    sess = ort.InferenceSession(str(export_onnx(policy, tmp_path / "p.onnx")), providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    rng = np.random.default_rng(3)
    B = 7
    obs = rng.normal(size=(B, 4)).astype(np.float32)
    dt = np.full((B, 1), 0.04, np.float32)
    state = {i.name: rng.normal(size=(B, i.shape[1])).astype(np.float32) * 0.3 for i in inputs[2:]}
    obs[1, 2] = np.nan
    obs[2, 0] = np.inf
    dt[3], dt[4], dt[5] = 0.0, -0.01, np.inf
    if state:
        state["h"][6, 0] = np.nan
    bad = np.array([False, True, True, True, True, True, bool(state)])
    out = sess.run(None, {"obs": obs, "dt": dt, **state})
    action, new_state, ok = out[0], out[1:-1], out[-1]
    assert ok.dtype == bool and ok.shape == (B,)
    np.testing.assert_array_equal(ok, ~bad)
    assert np.isfinite(action).all()
    np.testing.assert_allclose(action[bad], np.broadcast_to(policy.action_mapping.center, (int(bad.sum()), 2)),
                               atol=1e-6)
    for i, s in zip(inputs[2:], new_state):
        np.testing.assert_array_equal(s[bad], state[i.name][bad])
    # Good rows are what the runner gives from the same state.
    runner = PolicyRunner(policy, batch_size=B)
    if state:
        runner.set_state(tuple(np.nan_to_num(state[i.name]) for i in inputs[2:]))
    want = runner.step(np.nan_to_num(obs, posinf=0.0), np.where(bad, 0.04, dt[:, 0]))
    np.testing.assert_allclose(action[~bad], want[~bad], atol=1e-5)
