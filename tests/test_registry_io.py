"""models.make for every name (shapes, sequence == step, save/load round trip) and the error
cases of saving and loading."""

import json
import os

import pytest
import torch

from cfc_control import __version__
from cfc_control.models import available, load_model, make, read_config, save_model
from cfc_control.models.base import RecurrentModel
from cfc_control.models.io import model_from_config

C, O, B, T = 5, 3, 3, 6
NAMES = ["cfc", "cfc-nogate", "cfc-pure", "cfc-mm", "ncp", "ltc", "lstm", "gru", "mlp"]
SMALL = {  # small sizes keep the suite fast; defaults are checked in test_defaults
    "cfc": dict(units=8, backbone_units=16),
    "cfc-nogate": dict(units=8, backbone_units=16),
    "cfc-pure": dict(units=8, backbone_units=16),
    "cfc-mm": dict(units=8, backbone_units=16),
    "ncp": dict(units=10),
    "ltc": dict(units=6),
    "lstm": dict(units=8),
    "gru": dict(units=8),
    "mlp": dict(hidden=(8,)),
}


def _data():
    x = torch.randn(B, T, C)
    ts = torch.rand(B, T) * 1.5 + 0.1
    starts = torch.zeros(B, T, dtype=torch.bool)
    starts[1, 2] = starts[2, 4] = True
    return x, ts, starts


def _flat(state):
    return torch.cat(state, -1) if isinstance(state, tuple) else state


def test_available_names():
    assert set(NAMES) <= set(available())


@pytest.mark.parametrize("name", NAMES)
def test_defaults(name):
    model = make(name, 17, 6)
    assert isinstance(model, RecurrentModel)
    assert (model.input_size, model.output_size) == (17, 6)
    y, _ = model(torch.randn(2, 3, 17), timespans=torch.rand(2, 3))
    assert y.shape == (2, 3, 6)
    if name in ("cfc", "lstm", "gru", "ltc"):
        assert model.state_size == 64


@pytest.mark.parametrize("name", NAMES)
def test_sequence_equals_step(name):
    model = make(name, C, O, **SMALL[name])
    model.eval()
    x, ts, starts = _data()
    y, h = model(x, timespans=ts, episode_starts=starts)
    assert y.shape == (B, T, O)
    hx, ys = None, []
    for t in range(T):
        y_t, hx = model.step(x[:, t], hx, dt=ts[:, t], episode_start=starts[:, t])
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_flat(hx), _flat(h), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    model = make(name, C, O, **SMALL[name])
    model.eval()
    save_model(model, tmp_path / "m", extra={"policy": {"note": name}})
    loaded = load_model(tmp_path / "m")
    loaded.eval()
    assert type(loaded) is type(model)
    assert loaded.model_config() == model.model_config()
    x, ts, starts = _data()
    y, h = model(x, timespans=ts, episode_starts=starts)
    y2, h2 = loaded(x, timespans=ts, episode_starts=starts)
    torch.testing.assert_close(y2, y, atol=0, rtol=0)
    torch.testing.assert_close(_flat(h2), _flat(h), atol=0, rtol=0)
    config = read_config(tmp_path / "m")
    assert config["format_version"] == 1 and config["library_version"] == __version__
    assert config["policy"] == {"note": name}
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "manifest.json", "model.safetensors"]  # no temp files left


def test_kwargs_override_and_names_are_forgiving():
    model = make("CFC_MM", C, O, units=12, backbone_units=16)
    assert model.state_size == 12 and model.mixed_memory
    assert make("mlp", C, O, activation="relu", hidden=(4, 4)).hidden == [4, 4]
    assert make("ltc", C, O, units=4, ode_unfolds=2).rnn_cell.ode_unfolds == 2


@pytest.mark.parametrize("name", NAMES)
def test_every_name_takes_units(name):
    model = make(name, C, O, units=12)
    assert model.state_size == (0 if name == "mlp" else 12)
    if name == "mlp":
        assert model.hidden == [12, 12]


def test_make_errors():
    with pytest.raises(ValueError, match="available: cfc, cfc-nogate"):
        make("transformer", C, O)
    with pytest.raises(ValueError, match="units > output_size"):
        make("ncp", C, 8, units=10)
    with pytest.raises(ValueError, match="outputs"):
        make("ltc", C, O, units=6, proj_size=None)  # 6 motor neurons, 3 outputs asked for
    with pytest.raises(ValueError, match="output_size"):
        make("lstm", C, 0)
    with pytest.raises(TypeError):
        make("gru", C, O, no_such_argument=1)
    with pytest.raises(ValueError, match="not both"):
        make("mlp", C, O, units=8, hidden=(8,))
    assert make("ncp", C, 20).state_size == 80  # the default grows with the outputs


def test_ncp_is_a_wired_cfc():
    model = make("ncp", C, O, units=12)
    cfg = model.model_config()
    assert cfg["class"] == "CfC" and cfg["kwargs"]["units_or_wiring"]["class"] == "AutoNCP"


# -- save/load errors -------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    model = make("gru", C, O, units=4)
    path = save_model(model, tmp_path / "gru")
    return model, path


def test_missing_directory_and_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_model(tmp_path / "nowhere")
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(path)
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(path)


def test_invalid_json_and_bad_configs(saved):
    _, path = saved
    (path / "manifest.json").unlink()  # as saved before manifests: the content checks still hold
    cfg_file = path / "config.json"
    good = json.loads(cfg_file.read_text())
    cfg_file.write_text("{not json")
    with pytest.raises(ValueError, match="config.json.*not valid JSON"):
        load_model(path)
    cfg_file.write_text(json.dumps({**good, "model": {"class": "os.system", "kwargs": {}}}))
    with pytest.raises(ValueError, match="config.json.*unknown model class 'os.system'"):
        load_model(path)
    cfg_file.write_text(json.dumps({**good, "format_version": 99}))
    with pytest.raises(ValueError, match="config.json.*newer"):
        load_model(path)
    cfg_file.write_text(json.dumps({k: v for k, v in good.items() if k != "model"}))
    with pytest.raises(ValueError, match="config.json.*'model'"):
        load_model(path)
    bad_kwargs = {**good["model"], "kwargs": {**good["model"]["kwargs"], "units": -3}}
    cfg_file.write_text(json.dumps({**good, "model": bad_kwargs}))
    with pytest.raises(ValueError, match="config.json.*GRU.*units"):
        load_model(path)


def test_truncated_and_corrupt_weights(saved):
    _, path = saved
    (path / "manifest.json").unlink()  # as saved before manifests: the content checks still hold
    file = path / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors.*truncated or corrupt"):
        load_model(path)
    file.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="model.safetensors"):
        load_model(path)


def test_mismatched_tensors_are_listed(saved, tmp_path):
    _, path = saved
    (path / "manifest.json").unlink()  # as saved before manifests: the content checks still hold
    # weights of a wider GRU under the config of the narrow one: every weight mis-shaped
    save_model(make("gru", C, O, units=6), tmp_path / "wide")
    os.replace(tmp_path / "wide" / "model.safetensors", path / "model.safetensors")
    with pytest.raises(ValueError, match=r"mis-shaped tensors \[fc.weight: file \(3, 6\) vs model \(3, 4\)"):
        load_model(path)
    # an LSTM's weights under a GRU config: names match, but shapes do not; an MLP's: names differ
    save_model(make("mlp", C, O, hidden=(4,)), tmp_path / "mlp")
    os.replace(tmp_path / "mlp" / "model.safetensors", path / "model.safetensors")
    with pytest.raises(ValueError) as err:
        load_model(path)
    message = str(err.value)
    assert "missing tensors ['fc.bias', 'fc.weight', 'rnn.bias_hh_l0'" in message
    assert "unexpected tensors ['net.0.bias'" in message


def test_save_errors(tmp_path):
    model = make("mlp", C, O, hidden=(4,))
    with pytest.raises(ValueError, match="reserved"):
        save_model(model, tmp_path / "a", extra={"model": {}})
    with pytest.raises(ValueError, match="JSON"):
        save_model(model, tmp_path / "b", extra={"policy": {"mean": float("nan")}})
    with pytest.raises(TypeError, match="RecurrentModel"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "c")


def test_overwrite_shared_tensors_and_dtype(tmp_path):
    # Tie two same-shaped tensors: safetensors refuses shared storage unless save_model copies.
    tied = make("mlp", 4, 4, hidden=(4,), time_input=False)
    tied.net[2].weight = tied.net[0].weight
    save_model(tied, tmp_path / "tied")
    loaded = load_model(tmp_path / "tied")
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(loaded(x)[0], tied(x)[0])
    # saving again over an existing directory replaces it; float64 stays float64
    double = make("lstm", C, O, units=4).double()
    save_model(double, tmp_path / "tied")
    again = load_model(tmp_path / "tied")
    assert type(again).__name__ == "LSTM" and next(again.parameters()).dtype == torch.float64


def test_model_from_config_builds_only_known_classes():
    with pytest.raises(ValueError, match="unknown model class"):
        model_from_config({"class": "Linear", "kwargs": {}})
    with pytest.raises(ValueError, match="kwargs"):
        model_from_config({"class": "LSTM"})
    model = model_from_config(make("ltc", C, O, units=6).model_config())
    assert type(model).__name__ == "LTC" and model.output_size == O
