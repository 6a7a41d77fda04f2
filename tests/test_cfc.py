"""The CfC layer: shapes, time semantics against the equations, sequence == step, the hand-written
training backward, wiring masks, configs and errors."""

import json
import math

import pytest
import torch

from cfc_control.models.cfc import CfC
from cfc_control.models.cfc_cell import closed_form_update
from cfc_control.wirings import AutoNCP, FullyConnected, Wiring

C, H = 5, 8

CONFIGS = {
    "default": dict(units=H),
    "no_gate": dict(units=H, mode="no_gate"),
    "pure": dict(units=H, mode="pure"),
    "mixed": dict(units=H, mixed_memory=True),
    "proj": dict(units=H, proj_size=3),
    "no_backbone": dict(units=H, backbone_layers=0),
    "deep_dropout": dict(units=H, backbone_layers=3, backbone_dropout=0.2, activation="silu"),
    "ncp": dict(units="ncp"),
    "ncp_pure_mixed": dict(units="ncp", mode="pure", mixed_memory=True),
    "fully_connected": dict(units="fc", proj_size=2),
}


def make(name, **extra):
    cfg = dict(CONFIGS[name])
    units = cfg.pop("units")
    if units == "ncp":
        units = AutoNCP(12, 3)
    elif units == "fc":
        units = FullyConnected(6)
    elif "backbone_layers" not in cfg or cfg["backbone_layers"] > 0:
        cfg.setdefault("backbone_units", 16)
    return CfC(C, units, **cfg, **extra)


def state_like(model, batch):
    s = model.initial_state(batch)
    return tuple(torch.randn_like(t) for t in s) if isinstance(s, tuple) else torch.randn_like(s)


def assert_state_close(a, b, **kw):
    if isinstance(a, tuple):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, **kw)
    else:
        torch.testing.assert_close(a, b, **kw)


# -- shapes and layouts ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shapes_for_every_layout(name):
    model = make(name).eval()
    B, T = 3, 4
    x = torch.randn(B, T, C)
    y, h = model(x)
    assert y.shape == (B, T, model.output_size)
    first = h[0] if isinstance(h, tuple) else h
    assert first.shape == (B, model.state_size)
    assert isinstance(h, tuple) == model.mixed_memory
    # time-major
    tm = make(name, batch_first=False)
    tm.load_state_dict(model.state_dict())
    tm.eval()
    y_tm, _ = tm(x.transpose(0, 1))
    assert y_tm.shape == (T, B, model.output_size)
    torch.testing.assert_close(y_tm.transpose(0, 1), y, atol=1e-6, rtol=0)
    # unbatched
    y_u, h_u = model(x[1])
    assert y_u.shape == (T, model.output_size)
    torch.testing.assert_close(y_u, y[1], atol=1e-6, rtol=0)
    assert (h_u[0] if isinstance(h_u, tuple) else h_u).shape == (model.state_size,)
    # last step only
    last = make(name, return_sequences=False)
    last.load_state_dict(model.state_dict())
    last.eval()
    y_last, _ = last(x)
    assert y_last.shape == (B, model.output_size)
    torch.testing.assert_close(y_last, y[:, -1], atol=1e-6, rtol=0)


def test_output_sizes():
    assert CfC(C, H, proj_size=2).output_size == 2
    ncp = CfC(C, AutoNCP(12, 3))
    assert (ncp.state_size, ncp.output_size) == (12, 3)
    assert CfC(C, FullyConnected(6, output_dim=2)).output_size == 2  # the motor neurons


def test_parameter_counts_match_the_reference():
    # figures from docs/equations.md (ncps 1.0.1)
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert count(CfC(20, 50)) == 34888
    assert count(CfC(17, 64)) == 43520
    assert count(CfC(17, AutoNCP(64, 6))) == 13568
    assert [layer.n for layer in CfC(17, AutoNCP(64, 6)).rnn_cell.layers] == [35, 23, 6]


# -- time --------------------------------------------------------------------------------------
def test_timespan_forms_agree():
    model = make("default").eval()
    B, T = 2, 5
    x = torch.randn(B, T, C)
    y_none, _ = model(x)
    for ts in (1.0, 1, torch.tensor(1.0), torch.ones(B, T), torch.ones(B, T, 1)):
        torch.testing.assert_close(model(x, timespans=ts)[0], y_none, atol=0, rtol=0)
    ts = torch.rand(B, T) + 0.1
    torch.testing.assert_close(model(x, timespans=ts.unsqueeze(-1))[0], model(x, timespans=ts)[0])
    # unbatched timespans (T,) and (T, 1)
    y_u = model(x[0], timespans=ts[0])[0]
    torch.testing.assert_close(y_u, model(x, timespans=ts)[0][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(model(x[0], timespans=ts[0].unsqueeze(-1))[0], y_u)


def test_per_sample_dt_is_per_row():
    """Each row uses its own dt: equal to running that row alone (the reference breaks here)."""
    model = make("default").eval()
    B, T = H, 4  # B == H: the reference's silent wrong broadcast
    x = torch.randn(B, T, C)
    ts = torch.rand(B, T) * 3
    y, _ = model(x, timespans=ts)
    for i in range(B):
        torch.testing.assert_close(model(x[i : i + 1], timespans=ts[i : i + 1])[0], y[i : i + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(model(x, timespans=ts * 2)[0], y)


def _heads(model, x, h):
    cell = model.rnn_cell
    return cell.head_preactivations(cell.input_projection(x), h)


@pytest.mark.parametrize("mode", ["default", "no_gate"])
def test_gate_limits_follow_the_equation(mode):
    torch.set_default_dtype(torch.float64)
    try:
        model = CfC(C, H, mode=mode, backbone_units=16)
    finally:
        torch.set_default_dtype(torch.float32)
    x = torch.randn(4, C, dtype=torch.float64)
    h = torch.randn(4, H, dtype=torch.float64)
    with torch.no_grad():
        heads = _heads(model, x, h)
        f1, f2, ta, tb = heads.split(H, 1)
        combine = (lambda s: torch.tanh(f1) * (1 - s) + s * torch.tanh(f2)) if mode == "default" else (
            lambda s: torch.tanh(f1) + s * torch.tanh(f2)
        )
        # dt = 0: the gate is sigmoid(time_b)
        y0, _ = model.step(x, h, dt=0.0)
        torch.testing.assert_close(y0, combine(torch.sigmoid(tb)))
        # dt -> large: the gate goes to 1 where time_a > 0 and to 0 where time_a < 0
        y_inf, _ = model.step(x, h, dt=1e6)
        torch.testing.assert_close(y_inf, combine((ta > 0).double()))
        # a generic dt, per sample
        dt = torch.tensor([0.1, 0.5, 2.0, 7.0], dtype=torch.float64)
        y_dt, _ = model.step(x, h, dt=dt)
        torch.testing.assert_close(y_dt, combine(torch.sigmoid(ta * dt[:, None] + tb)))


def test_pure_mode_follows_the_direct_solution():
    torch.set_default_dtype(torch.float64)
    try:
        model = CfC(C, H, mode="pure", backbone_units=16)
    finally:
        torch.set_default_dtype(torch.float32)
    cell = model.rnn_cell
    x = torch.randn(4, C, dtype=torch.float64)
    h = torch.randn(4, H, dtype=torch.float64)
    with torch.no_grad():
        f1 = _heads(model, x, h)
        A, w_tau = cell.A, cell.w_tau
        # h(dt) = -A exp(-dt (|w_tau| + |f1|)) f1 + A
        dt = torch.tensor([0.0, 0.3, 1.0, 5.0], dtype=torch.float64)
        expected = -A * torch.exp(-dt[:, None] * (w_tau.abs() + f1.abs())) * f1 + A
        torch.testing.assert_close(model.step(x, h, dt=dt)[0], expected)
        # dt = 0 starts from A (1 - f1); dt -> large relaxes to A, whatever the state
        torch.testing.assert_close(model.step(x, h, dt=0.0)[0], A * (1 - f1))
        torch.testing.assert_close(model.step(x, h, dt=1e6)[0], A.expand(4, H))


def test_closed_form_update_layout():
    heads = torch.randn(2, 4 * H)
    dt = torch.full((2, 1), 0.5)
    f1, f2, ta, tb = heads.split(H, 1)
    s = torch.sigmoid(ta * 0.5 + tb)
    torch.testing.assert_close(closed_form_update(heads, dt, "default"), torch.tanh(f1) * (1 - s) + s * torch.tanh(f2))


# -- sequence == step --------------------------------------------------------------------------
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stepping_a_sequence_gives_forward(name, grad):
    model = make(name).eval()
    B, T = 3, 6
    x = torch.randn(B, T, C)
    ts = torch.rand(B, T) * 2
    starts = torch.zeros(B, T, dtype=torch.bool)
    starts[0, 3] = starts[2, 1] = True
    h0 = state_like(model, B)
    with torch.set_grad_enabled(grad):
        y, h_end = model(x, h0, timespans=ts, episode_starts=starts)
        h = h0
        steps = []
        for t in range(T):
            y_t, h = model.step(x[:, t], h, dt=ts[:, t], episode_start=starts[:, t])
            steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, atol=1e-6, rtol=0)
    assert_state_close(h, h_end, atol=1e-6, rtol=0)


def test_episode_start_resets_to_the_initial_state():
    model = make("mixed").eval()
    x = torch.randn(2, 5, C)
    starts = torch.zeros(2, 5, dtype=torch.bool)
    starts[1, 2] = True
    y, _ = model(x, state_like(model, 2), episode_starts=starts)
    fresh, _ = model(x[1:, 2:])  # from the zero state at step 2
    torch.testing.assert_close(y[1:, 2:], fresh, atol=1e-6, rtol=0)


# -- the hand-written training backward ----------------------------------------------------
FUSED_CASES = [(name, "lecun_tanh") for name in ("default", "no_gate", "pure", "proj", "no_backbone")] + [
    (name, act) for name in ("default", "pure") for act in ("silu", "relu", "tanh", "gelu")
]


@pytest.mark.parametrize("name,activation", FUSED_CASES)
def test_fused_backward_equals_autograd(name, activation):
    model = make(name, activation=activation).double()
    B, T = 3, 5
    x = torch.randn(B, T, C, dtype=torch.float64, requires_grad=True)
    ts = torch.rand(B, T, dtype=torch.float64) * 2
    starts = torch.rand(B, T) < 0.3
    h0 = torch.randn(B, model.state_size, dtype=torch.float64, requires_grad=True)
    results = []
    for fused in (True, False):
        model.fused_backward = fused
        model.zero_grad()
        x.grad = h0.grad = None
        y, h = model(x, h0, timespans=ts, episode_starts=starts)
        (y.sin().sum() + (h * torch.arange(h.shape[1], dtype=h.dtype)).sum()).backward()
        results.append((y.detach(), [p.grad.clone() for p in model.parameters()], x.grad.clone(), h0.grad.clone()))
    (y1, g1, x1, h1), (y2, g2, x2, h2) = results
    torch.testing.assert_close(y1, y2, atol=0, rtol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(x1, x2, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(h1, h2, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("name", ["default", "no_gate", "pure", "proj"])
def test_fused_backward_equals_autograd_when_the_derivatives_come_in_blocks(name, monkeypatch):
    """Long sequences form the local derivatives in blocks of steps; a block boundary (here every
    2 steps, the last block shorter) and resets inside the sequence change nothing."""
    import cfc_control.models.cfc_fused as fused

    model = make(name).double()
    B, T = 3, 7
    monkeypatch.setattr(fused, "_BLOCK_ELEMENTS", 2 * B * model.rnn_cell.rec_proj.weight.shape[0])
    x = torch.randn(B, T, C, dtype=torch.float64, requires_grad=True)
    ts = torch.rand(B, T, dtype=torch.float64) * 2
    starts = torch.zeros(B, T, dtype=torch.bool)
    starts[1, 3] = starts[0, 4] = True
    grads = []
    for fused_backward in (True, False):
        model.fused_backward = fused_backward
        model.zero_grad()
        x.grad = None
        y, _ = model(x, timespans=ts, episode_starts=starts)
        y.sin().sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_fused_backward_gradcheck():
    model = make("default").double()
    x = torch.randn(2, 3, C, dtype=torch.float64)
    ts = torch.rand(2, 3, dtype=torch.float64)
    names = [n for n, _ in model.named_parameters()]

    def f(h0, *ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (x, h0), {"timespans": ts})[0]

    h0 = torch.randn(2, H, dtype=torch.float64, requires_grad=True)
    copies = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(f, (h0, *copies))


def test_fused_and_autograd_paths_agree_at_a_large_batch():
    """Large per-step tensors take the sigmoid form of tanh; both paths still agree."""
    model = CfC(C, 64)
    x = torch.randn(80, 3, C)
    ts = torch.rand(80, 3)
    grads = []
    for fused in (True, False):
        model.fused_backward = fused
        model.zero_grad()
        y, _ = model(x, timespans=ts)
        y.square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_dt_requiring_grad_gets_a_gradient():
    model = make("default")
    ts = torch.rand(2, 4, requires_grad=True)
    model(torch.randn(2, 4, C), timespans=ts)[0].sum().backward()
    assert ts.grad is not None and ts.grad.abs().sum() > 0


# -- wiring masks ------------------------------------------------------------------------------
def test_masked_weights_have_no_effect_and_no_gradient():
    model = make("ncp")
    x = torch.randn(2, 4, C)
    ts = torch.rand(2, 4)
    y, _ = model(x, timespans=ts)
    y.square().sum().backward()
    masked_any = False
    for layer in model.rnn_cell.layers:
        off = layer.mask == 0
        masked_any |= bool(off.any())
        assert (layer.w_in.grad[off] == 0).all()
        assert (layer.w_in.grad[~off] != 0).any()
    assert masked_any
    with torch.no_grad():
        before, _ = model(x, timespans=ts)
        for layer in model.rnn_cell.layers:
            layer.w_in[layer.mask == 0] += 100.0
        after, _ = model(x, timespans=ts)
    torch.testing.assert_close(after, before, atol=0, rtol=0)


def test_masks_follow_the_wiring():
    wiring = AutoNCP(12, 3)
    model = CfC(C, wiring)
    layer0 = model.rnn_cell.layers[0]
    inter = wiring.get_neurons_of_layer(0)
    expected = torch.from_numpy((wiring.sensory_adjacency_matrix[:, inter] != 0).T.astype("float32"))
    n = len(inter)
    torch.testing.assert_close(layer0.mask[:n], expected)  # ff1
    torch.testing.assert_close(layer0.mask[n : 2 * n], expected)  # ff2
    assert (layer0.mask[2 * n :] == 1).all()  # time_a, time_b are dense
    command = wiring.get_neurons_of_layer(1)
    layer1 = model.rnn_cell.layers[1]
    expected1 = torch.from_numpy((wiring.adjacency_matrix[inter][:, command] != 0).T.astype("float32"))
    torch.testing.assert_close(layer1.mask[: len(command)], expected1)


def test_input_without_synapses_has_no_effect_in_pure_mode():
    """Pure mode uses only the masked ff1 head, so an input with no sensory synapse is ignored."""
    w = Wiring(4)
    w.set_output_dim(2)
    w.build(3)
    for dest in range(4):
        w.add_sensory_synapse(0, dest, 1)
        w.add_sensory_synapse(1, dest, -1)  # input 2 has no synapse
    model = CfC(3, w, mode="pure")
    x = torch.randn(2, 5, 3)
    x2 = x.clone()
    x2[..., 2] = torch.randn(2, 5) * 10
    torch.testing.assert_close(model(x)[0], model(x2)[0], atol=0, rtol=0)
    x3 = x.clone()
    x3[..., 0] += 1.0
    assert not torch.allclose(model(x3)[0], model(x)[0])


def test_two_layers_on_one_wiring():
    wiring = AutoNCP(12, 3)
    a, b = CfC(C, wiring), CfC(C, wiring)  # same input size: fine (the reference raises)
    torch.testing.assert_close(a.rnn_cell.layers[0].mask, b.rnn_cell.layers[0].mask)
    with pytest.raises(ValueError, match="already built for 5"):
        CfC(C + 1, wiring)
    CfC(C + 1, wiring.unbuilt_copy())


def test_ncps_wiring_is_accepted():
    ref_wirings = pytest.importorskip("ncps.wirings")
    model = CfC(C, ref_wirings.AutoNCP(12, 3))
    assert isinstance(model.wiring, AutoNCP) and model.output_size == 3


# -- configs, init, dropout -----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_config_rebuilds_the_same_model(name):
    model = make(name).eval()
    cfg = json.loads(json.dumps(model.model_config()))
    assert cfg["class"] == "CfC"
    again = CfC(**cfg["kwargs"]).eval()
    again.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, C)
    torch.testing.assert_close(again(x)[0], model(x)[0], atol=0, rtol=0)


def test_state_dict_holds_only_trainable_tensors():
    model = make("ncp")
    assert set(model.state_dict()) == {n for n, _ in model.named_parameters()}


def test_init_follows_the_reference():
    model = CfC(17, 64)  # backbone 128
    cell = model.rnn_cell
    bound_first = math.sqrt(6 / (17 + 64 + 128))
    assert cell.in_proj.weight.abs().max() <= bound_first and cell.rec_proj.weight.abs().max() <= bound_first
    assert cell.rec_proj.weight.abs().max() > 0.9 * bound_first
    bound_head = math.sqrt(6 / (128 + 64))
    for block in cell.heads.weight.split(64, 0):
        assert bound_head * 0.9 < block.abs().max() <= bound_head
    assert cell.heads.bias.abs().max() <= 1 / math.sqrt(128)
    pure = CfC(17, 64, mode="pure").rnn_cell
    assert pure.A.abs().max() <= math.sqrt(6 / 65) and not torch.all(pure.A == 1)


def test_dropout_only_after_further_backbone_layers():
    one = CfC(C, H, backbone_layers=1, backbone_dropout=0.5)
    assert not any(isinstance(m, torch.nn.Dropout) for m in one.modules())
    deep = CfC(C, H, backbone_layers=2, backbone_dropout=0.5)
    assert sum(isinstance(m, torch.nn.Dropout) for m in deep.modules()) == 1
    x = torch.randn(2, 4, C)
    deep.train()
    assert not torch.equal(deep(x)[0], deep(x)[0])
    deep.eval()
    assert torch.equal(deep(x)[0], deep(x)[0])


# -- errors ------------------------------------------------------------------------------------
def test_clear_errors():
    model = make("default")
    with pytest.raises(ValueError, match="expected 5 input features, got 4"):
        model(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="input must be"):
        model(torch.randn(3))
    with pytest.raises(ValueError, match=r"hx must have shape \(2, 8\)"):
        model(torch.randn(2, 3, C), torch.zeros(2, 7))
    with pytest.raises(ValueError, match="timespans"):
        model(torch.randn(2, 3, C), timespans=torch.ones(3, 2))
    with pytest.raises(ValueError, match="dt must be"):
        model.step(torch.randn(2, C), dt=torch.ones(3))
    with pytest.raises(ValueError, match="step: x must be"):
        model.step(torch.randn(2, 3, C))
    with pytest.raises(ValueError, match="tuple of 2"):
        make("mixed")(torch.randn(2, 3, C), torch.zeros(2, H))
    with pytest.raises(ValueError, match="mode"):
        CfC(C, H, mode="fast")
    with pytest.raises(ValueError, match="activation"):
        CfC(C, H, activation="swish")
    with pytest.raises(ValueError, match="backbone"):
        CfC(C, AutoNCP(12, 3), backbone_units=64)
    with pytest.raises(ValueError, match="units_or_wiring"):
        CfC(C, 0)
    with pytest.raises(ValueError, match="input_size"):
        CfC(0, H)
    with pytest.raises(ValueError, match="backbone_dropout"):
        CfC(C, H, backbone_dropout=1.5)


def test_empty_sequence():
    model = make("proj")
    h0 = state_like(model, 2)
    y, h = model(torch.randn(2, 0, C), h0)
    assert y.shape == (2, 0, 3)
    torch.testing.assert_close(h, h0)
    with pytest.raises(ValueError, match="at least one step"):
        make("default", return_sequences=False)(torch.randn(2, 0, C))
