"""LSTM, GRU and MLP baselines: shapes, Δt as an input, fused sequence == step, errors."""

import pytest
import torch

from cfc_control.models.baselines import GRU, LSTM, MLP

C, O, B, T = 5, 3, 3, 7
CLASSES = [LSTM, GRU, MLP]


def _inputs(batch=B, steps=T):
    x = torch.randn(batch, steps, C)
    ts = torch.rand(batch, steps) * 1.5 + 0.1
    return x, ts


def _stepped(model, x, ts, starts=None, hx=None):
    ys = []
    for t in range(x.shape[1]):
        es = None if starts is None else starts[:, t]
        y, hx = model.step(x[:, t], hx, dt=ts[:, t], episode_start=es)
        ys.append(y)
    return torch.stack(ys, 1), hx


def _flat(state):
    return torch.cat(state, -1) if isinstance(state, tuple) else state


@pytest.mark.parametrize("cls", CLASSES)
def test_shapes_every_layout(cls):
    model = cls(C, O)
    x, ts = _inputs()
    y, hx = model(x, timespans=ts)
    assert y.shape == (B, T, O)
    assert _flat(hx).shape[0] == B
    # time-major
    tm = cls(C, O, batch_first=False)
    tm.load_state_dict(model.state_dict())
    y_tm, _ = tm(x.transpose(0, 1), timespans=ts.transpose(0, 1))
    assert y_tm.shape == (T, B, O)
    torch.testing.assert_close(y_tm.transpose(0, 1), y, rtol=1e-5, atol=1e-6)
    # unbatched
    y_u, hx_u = model(x[0], timespans=ts[0])
    assert y_u.shape == (T, O)
    torch.testing.assert_close(y_u, y[0], rtol=1e-5, atol=1e-6)
    assert _flat(hx_u).dim() == 1
    # last step only
    last = cls(C, O, return_sequences=False)
    last.load_state_dict(model.state_dict())
    y_last, _ = last(x, timespans=ts)
    torch.testing.assert_close(y_last, y[:, -1], rtol=1e-5, atol=1e-6)


def test_state_shapes():
    x, _ = _inputs()
    _, (h, c) = LSTM(C, O, units=16)(x)
    assert h.shape == c.shape == (B, 16)
    _, h = GRU(C, O, units=16)(x)
    assert h.shape == (B, 16)
    _, s = MLP(C, O)(x)
    assert s.shape == (B, 0)


@pytest.mark.parametrize("cls", CLASSES)
def test_sequence_equals_step(cls):
    """Without mid-sequence resets LSTM/GRU take torch's fused kernel; stepping uses the cell
    functions on the same weights: both must agree, with per-sample Δt."""
    model = cls(C, O)
    x, ts = _inputs()
    y_seq, h_seq = model(x, timespans=ts)
    y_step, h_step = _stepped(model, x, ts)
    torch.testing.assert_close(y_seq, y_step, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_flat(h_seq), _flat(h_step), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("first_only", [False, True])
def test_sequence_equals_step_with_episode_starts(cls, first_only):
    model = cls(C, O)
    x, ts = _inputs()
    starts = torch.zeros(B, T, dtype=torch.bool)
    starts[0, 0] = True
    if not first_only:
        starts[1, 3] = True
        starts[2, 5] = True
    hx = model.initial_state(B)
    hx = tuple(torch.randn_like(s) for s in hx) if isinstance(hx, tuple) else torch.randn_like(hx)
    y_seq, h_seq = model(x, hx, timespans=ts, episode_starts=starts)
    y_step, h_step = _stepped(model, x, ts, starts, hx)
    torch.testing.assert_close(y_seq, y_step, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_flat(h_seq), _flat(h_step), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_reset_restarts_the_memory(cls):
    """After a reset row b behaves as if its sequence started there."""
    model = cls(C, O)
    x, ts = _inputs()
    starts = torch.zeros(B, T, dtype=torch.bool)
    starts[1, 4] = True
    y, _ = model(x, timespans=ts, episode_starts=starts)
    y_fresh, _ = model(x[1:2, 4:], timespans=ts[1:2, 4:])
    torch.testing.assert_close(y[1:2, 4:], y_fresh, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(y[1, 4:], model(x[1:2], timespans=ts[1:2])[0][0, 4:])


@pytest.mark.parametrize("cls", CLASSES)
def test_dt_is_an_input(cls):
    model = cls(C, O)
    x, ts = _inputs()
    y1, _ = model(x, timespans=ts)
    y2, _ = model(x, timespans=ts * 3.0)
    assert (y1 - y2).abs().max() > 1e-4
    blind = cls(C, O, time_input=False)
    b1, _ = blind(x, timespans=ts)
    b2, _ = blind(x, timespans=ts * 3.0)
    torch.testing.assert_close(b1, b2)


def test_per_sample_dt_matches_single_rows():
    model = LSTM(C, O)
    x, ts = _inputs()
    y, _ = model(x, timespans=ts)
    for b in range(B):
        y_b, _ = model(x[b : b + 1], timespans=ts[b : b + 1])
        torch.testing.assert_close(y[b : b + 1], y_b, rtol=1e-5, atol=1e-6)


def test_mlp_has_no_memory():
    model = MLP(C, O, hidden=(8,), activation="relu")
    x, ts = _inputs()
    y, _ = model(x, timespans=ts)
    x2 = x.clone()
    x2[:, :3] = torch.randn(B, 3, C)
    y2, _ = model(x2, timespans=ts)
    torch.testing.assert_close(y[:, 3:], y2[:, 3:])
    assert [m.out_features for m in model.net if isinstance(m, torch.nn.Linear)] == [8, O]


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_carried_state_continues_the_sequence(cls):
    model = cls(C, O)
    x, ts = _inputs()
    y, h = model(x, timespans=ts)
    y_a, h_a = model(x[:, :3], timespans=ts[:, :3])
    y_b, h_b = model(x[:, 3:], h_a, timespans=ts[:, 3:])
    torch.testing.assert_close(torch.cat([y_a, y_b], 1), y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_flat(h_b), _flat(h), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_reach_every_parameter(cls):
    model = cls(C, O)
    x, ts = _inputs()
    y, _ = model(x, timespans=ts)
    y.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="output_size"):
        LSTM(C, 0)
    with pytest.raises(TypeError, match="units"):
        GRU(C, O, units=3.5)
    with pytest.raises(ValueError, match="activation"):
        MLP(C, O, activation="sigmoidish")
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        MLP(C, O, hidden=(8, -1))
    model = LSTM(C, O, units=8)
    with pytest.raises(ValueError, match="hx"):
        model(torch.randn(B, T, C), torch.zeros(B, 8))  # LSTM needs (h, c)
    with pytest.raises(ValueError, match="input features"):
        model(torch.randn(B, T, C + 1))
