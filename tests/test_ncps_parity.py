"""from_ncps: the reference library's CfC (every mode, wired or not, mixed memory, projection,
backbone depth, dropout) gives the same outputs here, within 1e-5 in float32, for B in {1, 3, H},
with per-sample timespans compared against the reference's cell stepped with dt as (B, 1)."""

import pytest
import torch

ncps_torch = pytest.importorskip("ncps.torch")
ncps_wirings = pytest.importorskip("ncps.wirings")

from cfc_control import from_ncps  # noqa: E402
from cfc_control.models.cfc import CfC  # noqa: E402

C, H = 5, 16
ATOL = 1e-5

CONFIGS = {
    "default": dict(units=H),
    "no_gate": dict(units=H, mode="no_gate"),
    "pure": dict(units=H, mode="pure"),
    "mixed_proj": dict(units=H, mixed_memory=True, proj_size=3),
    "pure_mixed": dict(units=H, mode="pure", mixed_memory=True),
    "backbone0": dict(units=H, backbone_layers=0),
    "backbone2_silu": dict(units=H, backbone_layers=2, activation="silu", backbone_units=24),
    "backbone3_dropout_gelu": dict(units=H, backbone_layers=3, backbone_dropout=0.3, activation="gelu"),
    "relu_tanh_nogate": dict(units=H, activation="relu", mode="no_gate", backbone_units=32),
    "tanh": dict(units=H, activation="tanh"),
    "ncp": dict(units="ncp"),
    "ncp_no_gate_proj": dict(units="ncp", mode="no_gate", proj_size=2),
    "ncp_pure_mixed": dict(units="ncp", mode="pure", mixed_memory=True),
    "fully_connected": dict(units="fc"),
    "random_wiring": dict(units="random"),
}


def reference(name):
    cfg = dict(CONFIGS[name])
    units = cfg.pop("units")
    if units == "ncp":
        units = ncps_wirings.AutoNCP(H, 4)
    elif units == "fc":
        units = ncps_wirings.FullyConnected(H)
    elif units == "random":
        units = ncps_wirings.Random(H, sparsity_level=0.5)
    return ncps_torch.CfC(C, units, **cfg).eval()


def reference_stepped(ref, x, ts, hx=None):
    """The reference layer's loop with dt shaped (B, 1) (its layer squeezes it to (B,))."""
    B, T, _ = x.shape
    h = torch.zeros(B, ref.state_size) if hx is None else (hx[0] if ref.use_mixed else hx)
    c = (torch.zeros(B, ref.state_size) if hx is None else hx[1]) if ref.use_mixed else None
    outputs = []
    for t in range(T):
        if ref.use_mixed:
            h, c = ref.lstm(x[:, t], (h, c))
        y, h = ref.rnn_cell(x[:, t], h, ts[:, t : t + 1])
        outputs.append(ref.fc(y))
    return torch.stack(outputs, 1), ((h, c) if ref.use_mixed else h)


def close(a, b):
    if isinstance(a, tuple):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("batch", [1, 3, H])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_per_sample_timespans(name, batch):
    ref = reference(name)
    ours = from_ncps(ref)
    assert isinstance(ours, CfC) and not ours.training
    x = torch.randn(batch, 7, C)
    ts = torch.rand(batch, 7) * 3
    with torch.no_grad():
        y_ref, h_ref = reference_stepped(ref, x, ts)
        y, h = ours(x, timespans=ts)
    close(y, y_ref)
    close(h, h_ref)
    if batch == 1:  # the reference's own layer is right for one sample
        with torch.no_grad():
            y_layer, _ = ref(x, timespans=ts)
        close(y, y_layer)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_layer_without_timespans_and_with_a_state(name):
    ref = reference(name)
    ours = from_ncps(ref)
    x = torch.randn(3, 6, C)
    hx = torch.randn(3, ref.state_size)
    if ref.use_mixed:
        hx = (hx, torch.randn(3, ref.state_size))
    with torch.no_grad():
        y_ref, h_ref = ref(x, hx)
        y, h = ours(x, hx)
    close(y, y_ref)
    close(h, h_ref)


@pytest.mark.parametrize("name", ["default", "mixed_proj", "ncp"])
def test_unbatched_and_time_major(name):
    ref = reference(name)
    ours = from_ncps(ref)
    x = torch.randn(6, C)
    with torch.no_grad():
        close(ours(x)[0], ref(x)[0])
    cfg = dict(CONFIGS[name])
    cfg.pop("units")
    ref_tm = ncps_torch.CfC(C, H if name != "ncp" else ncps_wirings.AutoNCP(H, 4), batch_first=False, **cfg).eval()
    ours_tm = from_ncps(ref_tm)
    assert not ours_tm.batch_first
    xt = torch.randn(6, 3, C)
    with torch.no_grad():
        close(ours_tm(xt)[0], ref_tm(xt)[0])


def test_gradients_match_the_reference():
    """The training path (hand-written backward) differentiates the same function."""
    ref = reference("default")
    ours = from_ncps(ref)
    x = torch.randn(3, 5, C)
    ts = torch.rand(3, 5)
    reference_stepped(ref, x, ts)[0].square().sum().backward()
    ours(x, timespans=ts)[0].square().sum().backward()
    ref_cell = ref.rnn_cell
    heads = torch.cat([ref_cell.ff1.weight.grad, ref_cell.ff2.weight.grad, ref_cell.time_a.weight.grad, ref_cell.time_b.weight.grad])
    torch.testing.assert_close(ours.rnn_cell.heads.weight.grad, heads, atol=1e-5, rtol=1e-4)
    first = ref_cell.backbone[0].weight.grad
    torch.testing.assert_close(ours.rnn_cell.in_proj.weight.grad, first[:, :C], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.rnn_cell.rec_proj.weight.grad, first[:, C:], atol=1e-5, rtol=1e-4)


def test_train_mode_dtype_and_wiring_carry_over():
    ref = ncps_torch.CfC(C, ncps_wirings.AutoNCP(H, 4)).double().train()
    ours = from_ncps(ref)
    assert ours.training and next(ours.parameters()).dtype == torch.float64
    assert (ours.wiring.adjacency_matrix == ref.wiring.adjacency_matrix).all()
    x = torch.randn(2, 4, C, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-12, rtol=0)


def test_rejects_other_modules():
    with pytest.raises(TypeError, match="ncps.torch.CfC or ncps.torch.LTC"):
        from_ncps(torch.nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="ncps.torch.CfC or ncps.torch.LTC"):
        from_ncps(CfC(3, 4))


def test_ltc_is_dispatched():
    ltc_module = pytest.importorskip("cfc_control.models.ltc")
    if not hasattr(ltc_module.LTC, "from_ncps_module"):
        pytest.skip("LTC.from_ncps_module not available yet")
    ref = ncps_torch.LTC(C, 6).eval()
    ours = from_ncps(ref)
    assert isinstance(ours, ltc_module.LTC)
    x = torch.randn(1, 4, C)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=ATOL, rtol=0)
