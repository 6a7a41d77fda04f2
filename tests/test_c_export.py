"""The policy step as C: the runner's C backend equals the numpy runner (1e-9 in double, 1e-4 in
float32) over long runs with random Δt, resets and bad input mixed in, for every model kind; the
exported files compile strictly and their step refuses bad input without touching anything; the
example control loop builds strictly and its sanitizer build fuzzes clean; the compiled library
is cached by source and checked when loaded; without a compiler "auto" falls back to numpy."""

import ctypes
import math
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cfc_control import PolicyRunner
from cfc_control.runtime import backend as backend_module
from cfc_control.runtime.c_export import export_c, export_source
from cfc_control.runtime.c_export.build import CBuildError, load_library
from cfc_control.runtime.c_export.kernel import CProgram, time_bare_steps

ROOT = Path(__file__).resolve().parents[1]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
pytestmark = needs_cc

KINDS = [
    ("cfc", dict(units=12, backbone_units=16)),
    ("cfc", dict(units=8, backbone_units=12, backbone_layers=2, activation="gelu", mixed_memory=True)),
    ("cfc", dict(units=8, backbone_layers=0, activation="silu")),
    ("cfc", dict(units=3, backbone_units=8, activation="relu", proj_size=None)),
    ("cfc-nogate", dict(units=8, backbone_units=12, activation="tanh")),
    ("cfc-pure", dict(units=8, backbone_units=12)),
    ("ncp", dict(units=12)),
    ("ncp", dict(units=12, mode="pure")),
    ("ncp", dict(units=12, mode="no_gate", mixed_memory=True)),
    ("ltc", dict(units=6)),
    ("ltc", dict(units=6, mixed_memory=True, input_mapping="linear", output_mapping="none")),
    ("lstm", dict(units=8)),
    ("gru", dict(units=8)),
    ("gru", dict(units=8, time_input=False)),
    ("mlp", dict(hidden=(8, 6))),
    ("mlp", dict(hidden=(8,), activation="elu")),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(KINDS)]


def _has_numpy_kernel(policy):
    try:
        PolicyRunner(policy, backend="numpy")
        return True
    except ValueError:
        return False


def _inputs(rng, steps, batch, n_obs, nominal):
    """Observations and Δt with bad values mixed in: NaN/inf rows, Δt <= 0 or non-finite, Δt
    outside the accepted range (clamped)."""
    obs = rng.normal(size=(steps, batch, n_obs)) * 2.0
    dt = rng.uniform(0.1, 6.0, size=(steps, batch)) * nominal
    bad_obs = rng.random((steps, batch)) < 0.03
    obs[bad_obs, 0] = rng.choice([np.nan, np.inf, -np.inf], size=bad_obs.sum())
    bad_dt = rng.random((steps, batch)) < 0.03
    dt[bad_dt] = rng.choice([0.0, -nominal, np.nan, np.inf], size=bad_dt.sum())
    huge = rng.random((steps, batch)) < 0.01
    obs[huge, -1] = 1e300
    resets = rng.random(steps) < 0.02
    return obs, dt, resets


def _torch64_actions(policy, obs, dt, resets):
    """Actions of the torch policy in float64 with the runner's hold semantics (batch 1)."""
    p = PolicyDouble(policy)
    hx, last = None, torch.as_tensor(policy.action_mapping.center)
    out = []
    for o, d, r in zip(obs[:, 0], dt[:, 0], resets):
        if r:
            hx, last = None, torch.as_tensor(policy.action_mapping.center)
        if np.isfinite(o).all() and math.isfinite(d) and d > 0:
            with torch.no_grad():
                y, hx = p.step(torch.as_tensor(o[None]), torch.as_tensor([d]), hx)
                # The runner clips to the exact float64 bounds: the torch policy's float32 buffers
                # of the mapping can land one float32 step outside them.
                last = torch.clamp(p.to_action(y)[0], torch.as_tensor(policy.action_mapping.low),
                                   torch.as_tensor(policy.action_mapping.high))
        out.append(last.numpy().copy())
    return np.stack(out)


class PolicyDouble:
    def __init__(self, policy):
        import copy

        self.p = copy.deepcopy(policy).double()

    def step(self, obs, dt, hx):
        return self.p.step(obs, dt, hx)

    def to_action(self, y):
        return self.p.to_action(y)


def _run(runner, obs, dt, resets):
    out = []
    for o, d, r in zip(obs, dt, resets):
        if r:
            runner.reset()
        out.append(runner.step(o if runner.batch_size > 1 else o[0], d if runner.batch_size > 1 else float(d[0])))
    return np.stack(out)


@pytest.mark.parametrize("name,kw", KINDS, ids=IDS)
def test_c_backend_equals_the_numpy_runner(make_policy, name, kw):
    policy = make_policy(name, n_obs=5, n_act=3, **kw)
    rng = np.random.default_rng(3)
    for batch, steps in ((1, 1000), (3, 200)):
        obs, dt, resets = _inputs(rng, steps, batch, 5, 0.04)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c64 = PolicyRunner(policy, batch, on_bad_input="hold", backend="c", dtype="float64")
            c32 = PolicyRunner(policy, batch, on_bad_input="hold", backend="c", dtype="float32")
            assert c64.backend == c32.backend == "c"
            got64, got32 = _run(c64, obs, dt, resets), _run(c32, obs, dt, resets)
            if _has_numpy_kernel(policy):
                ref = PolicyRunner(policy, batch, on_bad_input="hold", backend="numpy", dtype="float64")
                want = _run(ref, obs, dt, resets)
                assert c64.stats.as_dict() == ref.stats.as_dict()
                assert len(c64.get_state().model_state) == len(ref.get_state().model_state)
                for mine, theirs in zip(c64.get_state().model_state, ref.get_state().model_state):
                    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
                ref.set_state(c64.get_state())  # snapshots move between backends
            elif batch == 1:  # the MLP with elu has no numpy kernel: the float64 torch policy
                want = _torch64_actions(policy, obs, dt, resets)
            else:
                continue
        assert np.isfinite(got64).all() and c64.stats.held > 0
        np.testing.assert_allclose(got64, want, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got32, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name,kw", KINDS, ids=IDS)
def test_exported_files_compile_strictly(make_policy, tmp_path, name, kw):
    policy = make_policy(name, n_obs=5, n_act=3, **kw)
    sources = [str(export_c(policy, tmp_path / dtype, "pol", dtype)[1]) for dtype in ("float64", "float32")]
    r = subprocess.run(["cc", *STRICT, "-O1", "-c", *sources], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def _load_export(policy, tmp_path, dtype="float64"):
    _, source = export_c(policy, tmp_path, "pol", dtype)
    lib_path = tmp_path / "pol.so"
    subprocess.run(["cc", *STRICT, "-O2", "-shared", "-fPIC", str(source), "-o", str(lib_path), "-lm"], check=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.pol_step.restype = ctypes.c_int
    lib.pol_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double, ctypes.c_void_p]
    lib.pol_reset.argtypes = [ctypes.c_void_p]
    lib.pol_reset.restype = None
    return lib


@pytest.mark.parametrize("name,kw", [KINDS[1], KINDS[6], KINDS[10], KINDS[12]], ids=["cfc-mm", "ncp", "ltc-mm", "lstm"])
def test_exported_step_equals_the_runner_and_refuses_bad_input(make_policy, tmp_path, name, kw):
    policy = make_policy(name, n_obs=5, n_act=3, **kw)
    lib = _load_export(policy, tmp_path)
    S = sum(s.shape[1] for s in PolicyRunner(policy, backend="numpy").get_state().model_state)
    state = np.zeros(max(S, 1))
    lib.pol_reset(state.ctypes.data)
    ref = PolicyRunner(policy, on_bad_input="hold", backend="numpy", dtype="float64")
    rng = np.random.default_rng(5)
    obs, dt, resets = _inputs(rng, 1000, 1, 5, 0.04)
    action = np.full(3, 7.0)
    codes = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for o, d, r in zip(obs[:, 0], dt[:, 0], resets):
            if r:
                lib.pol_reset(state.ctypes.data)
                ref.reset()
            before_state, before_action = state.copy(), action.copy()
            o = np.ascontiguousarray(o)
            code = lib.pol_step(state.ctypes.data, o.ctypes.data, float(d), action.ctypes.data)
            want = ref.step(o, float(d))
            codes.add(code)
            if code != 0:
                assert code == (1 if not np.isfinite(o).all() else 2)
                np.testing.assert_array_equal(state, before_state)
                np.testing.assert_array_equal(action, before_action)
            else:
                np.testing.assert_allclose(action, want, rtol=0, atol=1e-9)
                np.testing.assert_allclose(state[:S], np.concatenate(ref.get_state().model_state, 1)[0], atol=1e-9)
    assert codes == {0, 1, 2}


def test_exported_step_refuses_a_nonfinite_result(make_policy, tmp_path):
    # An LTC without its positivity constraints, capacitance, leak and synapses zeroed: 0 / 0.
    policy = make_policy("ltc", n_obs=5, n_act=3, units=6, epsilon=0.0, implicit_param_constraints=False)
    with torch.no_grad():
        for name in ("cm", "gleak", "w", "sensory_w"):
            getattr(policy.model.rnn_cell, name).zero_()
    lib = _load_export(policy, tmp_path)
    state, action = np.zeros(6), np.full(3, 7.0)
    obs = np.ones(5)
    assert lib.pol_step(state.ctypes.data, obs.ctypes.data, 0.04, action.ctypes.data) == 3
    assert (state == 0).all() and (action == 7.0).all()


def test_export_refuses_nonfinite_weights_and_bad_names(make_policy, tmp_path):
    policy = make_policy("cfc", units=4, backbone_units=4)
    with pytest.raises(ValueError, match="C identifier"):
        export_source(policy, "9lives")
    with torch.no_grad():
        policy.model.fc.bias[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite weights"):
        export_c(policy, tmp_path / "out", "pol")
    assert not (tmp_path / "out").exists()


def test_a_task_string_cannot_reach_the_c_source(make_policy):
    policy = make_policy("cfc", units=4, backbone_units=4)
    policy.task = 'x */ #include "/etc/passwd" /*'
    files = export_source(policy, "pol")
    assert "/etc/passwd\"" not in files["pol.h"] and "#include \"/etc" not in files["pol.h"]


def test_export_cli(make_policy, tmp_path, capsys):
    from cfc_control.export import main

    make_policy("ncp", units=12, directory=tmp_path / "p")
    out = tmp_path / "c"
    assert main([str(tmp_path / "p"), "--format", "c", "--out", str(out), "--name", "robot", "--dtype", "float32"]) == 0
    assert "robot_step(&state, obs, dt_seconds, action)" in capsys.readouterr().out
    assert (out / "robot.h").exists() and "typedef float robot_real;" in (out / "robot.h").read_text()
    assert main([str(tmp_path / "p"), "--format", "c", "--out", str(out), "--name", "no-dash"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "C identifier" in err


def _build_example(policy, tmp_path, flags, dtype="float64"):
    export_c(policy, tmp_path, "policy", dtype)
    exe = tmp_path / "control_loop"
    cmd = ["cc", *flags, f"-I{tmp_path}", str(ROOT / "examples/c/control_loop.c"), str(tmp_path / "policy.c"),
           "-o", str(exe), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe


def test_example_loop_builds_strictly_and_runs_against_the_clock(make_policy, tmp_path):
    exe = _build_example(make_policy("cfc", n_obs=5, n_act=3, units=8, backbone_units=8), tmp_path,
                         STRICT + ["-O2"])
    r = subprocess.run([str(exe), "40", "2000"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "40 steps at 2000.0 Hz: step latency p50" in r.stdout and "0 refused" in r.stdout
    assert subprocess.run([str(exe), "0"], capture_output=True).returncode == 2


@pytest.mark.parametrize("name,kw,dtype", [
    ("cfc", dict(units=8, backbone_units=8, mixed_memory=True), "float64"),
    ("ncp", dict(units=12), "float32"),
    ("ltc", dict(units=6), "float64"),
    ("gru", dict(units=6), "float32"),
    ("mlp", dict(hidden=(6,), activation="elu"), "float64"),
])
def test_sanitizer_build_fuzzes_clean(make_policy, tmp_path, name, kw, dtype):
    flags = STRICT + ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    exe = _build_example(make_policy(name, n_obs=5, n_act=3, **kw), tmp_path, flags, dtype)
    r = subprocess.run([str(exe), "--fuzz", "3000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every check passed" in r.stdout and "runtime error" not in r.stderr


def test_library_is_cached_by_architecture_and_checked(make_policy, tmp_path, monkeypatch):
    monkeypatch.setenv("CFC_CONTROL_CACHE_DIR", str(tmp_path))
    a = CProgram(make_policy("cfc", units=6, backbone_units=6, seed=1))
    b = CProgram(make_policy("cfc", units=6, backbone_units=6, seed=2))  # same shape, other weights
    c = CProgram(make_policy("cfc", units=7, backbone_units=6))
    libs = sorted((tmp_path / "c").glob("*.so"))
    assert len(libs) == 2 and a.library is b.library and c.library is not a.library
    assert not list((tmp_path / "c").glob(".*"))  # no temporary file left
    # A library under another source's name is refused, not used.
    from cfc_control.runtime.c_export.source import library_source, model_step

    step = model_step(make_policy("cfc", units=9, backbone_units=6), "float32")
    source = library_source(step)
    sizes = (step.n_obs, step.n_act, step.state_size, step.emitter.weights.size, 4)
    from cfc_control.runtime.c_export import build

    flags, link = build.compile_flags(build.find_compiler())
    key = build.build_key(source, build.find_compiler(), flags + link)
    shutil.copy(libs[0], tmp_path / "c" / f"{key}.so")
    with pytest.raises(CBuildError, match="another source"):
        load_library(source, sizes)


def test_c_and_auto_without_a_compiler(make_policy, monkeypatch):
    policy = make_policy("cfc", units=4, backbone_units=4)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setattr(backend_module, "_warned", False)
    with pytest.raises(ValueError, match="needs a C compiler"):
        PolicyRunner(policy, backend="c")
    with pytest.warns(backend_module.CBackendWarning, match="no C compiler found.*numpy"):
        runner = PolicyRunner(policy)
    assert runner.backend == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process
        assert PolicyRunner(policy).backend == "numpy"


def test_spawn_shares_the_library_and_rows_reset_alone(make_policy):
    policy = make_policy("ncp", units=12)
    runner = PolicyRunner(policy, batch_size=4, backend="c", dtype="float64")
    other = runner.spawn(2)
    assert other.backend == "c" and other._program is runner._program
    rng = np.random.default_rng(0)
    for _ in range(5):
        runner.step(rng.normal(size=(4, 4)), 0.04)
    before = runner.get_state().model_state[0].copy()
    runner.reset([1, 3])
    after = runner.get_state().model_state[0]
    assert (after[[1, 3]] == 0).all() and np.array_equal(after[[0, 2]], before[[0, 2]])


def test_bare_step_timing_runs_in_c(make_policy):
    program = CProgram(make_policy("cfc", units=8, backbone_units=8), "float32")
    ns = time_bare_steps(program, np.zeros(4), 1.0, 200)
    assert ns.shape == (200,) and (ns > 0).all()


def test_an_unwritable_cache_falls_back_or_says_so(make_policy, tmp_path, monkeypatch):
    policy = make_policy("cfc", units=5, backbone_units=3)  # a shape no other test builds
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CFC_CONTROL_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(backend_module, "_warned", False)
    with pytest.raises(ValueError, match="CFC_CONTROL_CACHE_DIR"):
        PolicyRunner(policy, backend="c")
    with pytest.warns(backend_module.CBackendWarning, match="cannot build"):
        assert PolicyRunner(policy).backend == "numpy"
