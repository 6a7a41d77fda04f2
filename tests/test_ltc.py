"""LTC: parity with ncps.torch.LTC, the ODE's Δt semantics, per-sample Δt, wiring, errors."""

import ncps.torch as ref
import ncps.wirings as ref_wirings
import pytest
import torch
import torch.nn.functional as F

from cfc_control.models.ltc import LTC
from cfc_control.wirings import AutoNCP, FullyConnected

C, T = 5, 6
ATOL = 1e-5


def _ref_wiring(kind):
    return 8 if kind == "dense" else ref_wirings.AutoNCP(12, 3)


def _ref_cell_steps(module, x, ts, hx=None):
    """The reference's own cell stepped with Δt shaped (B, 1): its layer mishandles per-sample
    timespans for B > 1 (docs/equations.md), its cell does not."""
    batch = x.shape[0]
    h = torch.zeros(batch, module.state_size) if hx is None else hx[0] if module.use_mixed else hx
    c = torch.zeros(batch, module.state_size) if hx is None or not module.use_mixed else hx[1]
    ys = []
    for t in range(x.shape[1]):
        if module.use_mixed:
            h, c = module.lstm(x[:, t], (h, c))
        y, h = module.rnn_cell(x[:, t], h, ts[:, t : t + 1])
        ys.append(y)
    return torch.stack(ys, 1), ((h, c) if module.use_mixed else h)


def _flat(state):
    return torch.cat(state, -1) if isinstance(state, tuple) else state


@pytest.mark.parametrize("kind", ["dense", "autoncp"])
@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_parity_with_ncps(kind, mixed, batch):
    module = ref.LTC(C, _ref_wiring(kind), mixed_memory=mixed)
    with torch.no_grad():  # move the mappings off their identity init so they are exercised
        for name in ("input_w", "input_b", "output_w", "output_b"):
            getattr(module.rnn_cell, name).add_(0.3 * torch.randn_like(getattr(module.rnn_cell, name)))
    ours = LTC.from_ncps_module(module)
    x = torch.randn(batch, T, C)
    # Δt = 1 (no timespans): the reference's layer is right for any batch size.
    y_ref, h_ref = module(x)
    y, h = ours(x)
    torch.testing.assert_close(y, y_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(_flat(h), _flat(h_ref), atol=ATOL, rtol=0)
    # per-sample Δt (B, T) against the reference cell stepped with (B, 1)
    ts = torch.rand(batch, T) * 2.0 + 0.05
    y_ref, h_ref = _ref_cell_steps(module, x, ts)
    y, h = ours(x, timespans=ts)
    torch.testing.assert_close(y, y_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(_flat(h), _flat(h_ref), atol=ATOL, rtol=0)
    # and step by step, carrying a non-zero state
    hx = h
    y_ref, h_ref = _ref_cell_steps(module, x, ts, hx)
    ys = []
    for t in range(T):
        y_t, hx = ours.step(x[:, t], hx, dt=ts[:, t])
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(_flat(hx), _flat(h_ref), atol=ATOL, rtol=0)
    # the cell alone keeps the reference cell's signature and outputs
    v0 = torch.randn(batch, module.state_size) * 0.3
    y_ref, v_ref = module.rnn_cell(x[:, 0], v0, ts[:, :1])
    y_c, v_c = ours.rnn_cell(x[:, 0], v0, ts[:, :1])
    torch.testing.assert_close(y_c, y_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(v_c, v_ref, atol=ATOL, rtol=0)


def test_parity_layouts_and_options():
    module = ref.LTC(C, 6, batch_first=False, return_sequences=False, ode_unfolds=3,
                     implicit_param_constraints=False, input_mapping="linear", output_mapping="none")
    ours = LTC.from_ncps_module(module)
    assert ours.model_config()["kwargs"]["output_mapping"] == "none"
    x = torch.randn(T, 2, C)  # time-major
    y_ref, h_ref = module(x)
    y, h = ours(x)
    assert y.shape == (2, 6)
    torch.testing.assert_close(y, y_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=ATOL, rtol=0)
    # unbatched, scalar timespans per step
    ts = torch.rand(T) + 0.5
    y_ref, h_ref = module(x[:, 0], timespans=ts)
    y, h = ours(x[:, 0], timespans=ts)
    assert h.shape == (6,) and y.shape == (6,)
    # (the reference leaves a batch axis here: time-major + unbatched + last step squeezes the wrong axis)
    torch.testing.assert_close(y, y_ref.reshape(6), atol=ATOL, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=ATOL, rtol=0)


def test_same_seed_same_initial_weights_as_ncps():
    torch.manual_seed(3)
    theirs = ref.LTC(C, ref_wirings.AutoNCP(12, 3))
    torch.manual_seed(3)
    ours = LTC(C, AutoNCP(12, 3))
    a, b = theirs.state_dict(), ours.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=0, rtol=0, msg=k)


def test_parameter_counts_match_the_reference():
    """docs/equations.md: LTC(17, AutoNCP(64, 6)) has 20,974 trainable parameters in ncps 1.0.1."""
    ours = LTC(17, AutoNCP(64, 6))
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == 20974
    assert ours.state_size == 64 and ours.output_size == 6
    assert torch.equal(ours.rnn_cell.sparsity_mask, torch.as_tensor(abs(ours.wiring.adjacency_matrix), dtype=torch.float32))


def test_package_from_ncps_dispatches_to_ltc():
    import cfc_control

    module = ref.LTC(C, 4, mixed_memory=True)
    ours = cfc_control.from_ncps(module)
    assert isinstance(ours, LTC)
    x = torch.randn(2, T, C)
    torch.testing.assert_close(ours(x)[0], module(x)[0], atol=ATOL, rtol=0)


def test_from_ncps_module_rejects_other_modules():
    with pytest.raises(TypeError, match="ncps.torch.LTC"):
        LTC.from_ncps_module(ref.CfC(C, 8))


def _ode_rhs(cell, x, v):
    """C dv/dt of the LTC ODE written out from its parameters (independent of the solver)."""
    sp = F.softplus
    xm = x * cell.input_w + cell.input_b
    s = sp(cell.sensory_w) * torch.sigmoid(cell.sensory_sigma * (xm[:, :, None] - cell.sensory_mu)) * cell.sensory_sparsity_mask
    r = sp(cell.w) * torch.sigmoid(cell.sigma * (v[:, :, None] - cell.mu)) * cell.sparsity_mask
    g = sp(cell.gleak)
    current = g * (cell.vleak - v)
    current = current + (r * (cell.erev - v[:, None, :])).sum(1) + (s * (cell.sensory_erev - v[:, None, :])).sum(1)
    return current / sp(cell.cm)


def test_dt_semantics_follow_the_ode():
    torch.manual_seed(1)
    model = LTC(C, FullyConnected(8, output_dim=8), output_mapping="none")
    cell = model.rnn_cell
    x = torch.randn(4, C)
    v0 = torch.randn(4, 8) * 0.5
    # Δt = 0: the state does not move (the reference's division by Δt gives NaN here)
    y, v = model.step(x, v0, dt=0.0)
    torch.testing.assert_close(v, v0, atol=1e-7, rtol=1e-6)  # (C v) / C: exact up to rounding
    torch.testing.assert_close(y, v, atol=0, rtol=0)
    # small Δt: the step follows the ODE's derivative
    dt = 1e-3
    _, v = model.step(x, v0, dt=dt)
    torch.testing.assert_close((v - v0) / dt, _ode_rhs(cell, x, v0).detach(), atol=2e-2, rtol=2e-2)
    # large Δt without recurrent synapses: the steady state, whatever the initial state
    with torch.no_grad():
        cell.sparsity_mask.zero_()
    _, v_big = model.step(x, v0, dt=1e7)
    _, v_big2 = model.step(x, torch.zeros_like(v0), dt=1e7)
    torch.testing.assert_close(v_big, v_big2, atol=1e-5, rtol=0)
    torch.testing.assert_close(_ode_rhs(cell, x, v_big).detach(), torch.zeros_like(v_big), atol=1e-4, rtol=0)


def test_per_sample_dt_equals_rows_run_alone():
    model = LTC(C, 6)
    x = torch.randn(3, T, C)
    ts = torch.tensor([[0.1] * T, [1.0] * T, [3.0] * T])
    y, _ = model(x, timespans=ts)
    for b in range(3):
        y_b, _ = model(x[b : b + 1], timespans=float(ts[b, 0]))
        torch.testing.assert_close(y[b : b + 1], y_b, atol=1e-6, rtol=1e-6)
    assert (y[0] - y[2]).abs().max() > 1e-3  # and Δt matters


def test_sequence_equals_step_with_resets_and_projection():
    model = LTC(C, AutoNCP(10, 2), proj_size=4, mixed_memory=True)
    x = torch.randn(3, T, C)
    ts = torch.rand(3, T) + 0.2
    starts = torch.zeros(3, T, dtype=torch.bool)
    starts[1, 2] = starts[2, 4] = True
    y, h = model(x, timespans=ts, episode_starts=starts)
    assert y.shape == (3, T, 4)
    hx, ys = None, []
    for t in range(T):
        y_t, hx = model.step(x[:, t], hx, dt=ts[:, t], episode_start=starts[:, t])
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(_flat(hx), _flat(h), atol=1e-6, rtol=1e-6)


def test_gradients_and_weight_constraints():
    model = LTC(C, 6, implicit_param_constraints=False)
    y, _ = model(torch.randn(2, 4, C), timespans=torch.rand(2, 4) + 0.5)
    y.square().sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {"rnn_cell.w", "rnn_cell.sensory_w", "rnn_cell.cm", "rnn_cell.erev", "rnn_cell.input_w"} <= grads
    assert not any("mask" in n for n, _ in model.named_parameters())  # masks are buffers
    with torch.no_grad():
        model.rnn_cell.w.fill_(-1.0)
    model.apply_weight_constraints()
    assert model.rnn_cell.w.min() == 0.0


def test_one_wiring_two_layers_and_errors():
    wiring = AutoNCP(10, 2)
    a, b = LTC(C, wiring), LTC(C, wiring)  # building again for the same input size is fine
    assert torch.equal(a.rnn_cell.sensory_sparsity_mask, b.rnn_cell.sensory_sparsity_mask)
    with pytest.raises(ValueError):
        LTC(C + 1, wiring)
    with pytest.raises(ValueError, match="input_size"):
        LTC(0, 4)
    with pytest.raises(ValueError, match="units"):
        LTC(C, -2)
    with pytest.raises(TypeError, match="units_or_wiring"):
        LTC(C, "sixteen")
    with pytest.raises(ValueError, match="input_mapping"):
        LTC(C, 4, input_mapping="quadratic")
    with pytest.raises(ValueError, match="ode_unfolds"):
        LTC(C, 4, ode_unfolds=0)
    with pytest.raises(ValueError, match="proj_size"):
        LTC(C, 4, proj_size=0)
