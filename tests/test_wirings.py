"""Wirings: same matrices as ncps.wirings for the same arguments, configs that rebuild them,
building twice, inspection, clear errors."""

import json

import numpy as np
import pytest

from cfc_control import wirings as W

ncps_wirings = pytest.importorskip("ncps.wirings")

# (constructor name, args, kwargs, input_dim)
CASES = [
    ("FullyConnected", (8,), {}, 5),
    ("FullyConnected", (6, 3), {"erev_init_seed": 3, "self_connections": False}, 4),
    ("Random", (10, 4, 0.5, 7), {}, 6),
    ("Random", (5,), {}, 3),
    ("NCP", (10, 6, 2, 4, 3, 5, 2), {"seed": 3}, 7),
    ("NCP", (100, 10, 3, 4, 5, 5, 2), {"seed": 3}, 7),  # extra command fan-in clipped
    ("AutoNCP", (64, 6), {}, 17),
    ("AutoNCP", (28, 4, 0.3, 5), {}, 3),
    ("AutoNCP", (20, 2, 0.9, 1), {}, 40),  # more inputs than inter neurons
]


def _pair(name, args, kwargs):
    return getattr(ncps_wirings, name)(*args, **kwargs), getattr(W, name)(*args, **kwargs)


@pytest.mark.parametrize("name,args,kwargs,m", CASES)
def test_same_matrices_as_reference(name, args, kwargs, m):
    ref, ours = _pair(name, args, kwargs)
    np.testing.assert_array_equal(ours.adjacency_matrix, ref.adjacency_matrix)
    ref.build(m)
    ours.build(m)
    np.testing.assert_array_equal(ours.adjacency_matrix, ref.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)
    assert ours.units == ref.units and ours.output_dim == ref.output_dim and ours.input_dim == m
    assert ours.num_layers == ref.num_layers
    for layer in range(ours.num_layers):
        assert ours.get_neurons_of_layer(layer) == list(ref.get_neurons_of_layer(layer))
    assert ours.synapse_count == int(ref.synapse_count)
    assert ours.sensory_synapse_count == int(ref.sensory_synapse_count)
    assert set(np.unique(ours.adjacency_matrix)) <= {-1, 0, 1}


@pytest.mark.parametrize("name,args,kwargs,m", CASES)
def test_config_round_trip_through_json(name, args, kwargs, m):
    _, ours = _pair(name, args, kwargs)
    unbuilt = W.wiring_from_config(json.loads(json.dumps(W.wiring_to_config(ours))))
    assert not unbuilt.is_built()
    ours.build(m)
    cfg = json.loads(json.dumps(W.wiring_to_config(ours)))
    assert cfg["class"] == name and cfg["input_dim"] == m
    back = W.wiring_from_config(cfg)
    assert type(back) is type(ours) and back.input_dim == m
    np.testing.assert_array_equal(back.adjacency_matrix, ours.adjacency_matrix)
    np.testing.assert_array_equal(back.sensory_adjacency_matrix, ours.sensory_adjacency_matrix)
    # building the unbuilt copy draws the same synapses
    unbuilt.build(m)
    np.testing.assert_array_equal(unbuilt.sensory_adjacency_matrix, ours.sensory_adjacency_matrix)
    # the class's own from_config (reference-style) also works
    again = type(ours).from_config(ours.get_config())
    np.testing.assert_array_equal(again.adjacency_matrix, ours.adjacency_matrix)


def test_autoncp_sizes_match_models_md():
    w = W.AutoNCP(28, 4)
    groups = w.neuron_groups()
    assert (len(groups["inter"]), len(groups["command"]), len(groups["motor"])) == (15, 9, 4)
    assert groups["motor"] == [0, 1, 2, 3] and groups["sensory"] == []
    w.build(3)
    assert w.neuron_groups()["sensory"] == [0, 1, 2]
    sizes = [len(W.AutoNCP(64, 6).get_neurons_of_layer(i)) for i in range(3)]
    assert sizes == [35, 23, 6]


def test_building_twice_same_dim_is_a_noop_and_other_dim_raises():
    w = W.FullyConnected(6)
    w.build(4)
    before = w.sensory_adjacency_matrix.copy()
    w.build(4)  # the reference draws new polarities here (ncps #75)
    np.testing.assert_array_equal(w.sensory_adjacency_matrix, before)
    with pytest.raises(ValueError, match="already built for 4 .* 5"):
        w.build(5)
    other = w.unbuilt_copy()
    assert not other.is_built()
    other.build(5)
    assert other.sensory_adjacency_matrix.shape == (5, 6)


def test_synapse_list_matches_matrices():
    w = W.AutoNCP(16, 2)
    w.build(3)
    syn = w.synapses()
    sens = [(s, d, p) for s, d, p, k in syn if k == "sensory"]
    internal = [(s, d, p) for s, d, p, k in syn if k == "internal"]
    assert len(sens) == w.sensory_synapse_count and len(internal) == w.synapse_count
    assert all(w.sensory_adjacency_matrix[s, d] == p for s, d, p in sens)
    assert all(w.adjacency_matrix[s, d] == p and p in (-1, 1) for s, d, p in internal)
    groups = w.neuron_groups()
    # NCP structure: sensory feed only inter neurons; motor neurons feed nobody
    assert {d for _, d, _ in sens} <= set(groups["inter"])
    assert not any(s in groups["motor"] for s, _, _ in internal)


@pytest.mark.parametrize("name,args,kwargs,m", CASES)
def test_from_ncps_wiring(name, args, kwargs, m):
    ref, _ = _pair(name, args, kwargs)
    ref.build(m)
    ours = W.from_ncps_wiring(ref)
    assert type(ours).__name__ == name
    np.testing.assert_array_equal(ours.adjacency_matrix, ref.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)
    back = W.wiring_from_config(json.loads(json.dumps(W.wiring_to_config(ours))))
    np.testing.assert_array_equal(back.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)


def test_from_ncps_wiring_built_twice_keeps_its_matrices():
    ref = ncps_wirings.AutoNCP(20, 3)
    ref.build(5)
    ref.build(5)  # adds a second draw of synapses in the reference
    ours = W.from_ncps_wiring(ref)
    back = W.wiring_from_config(json.loads(json.dumps(W.wiring_to_config(ours))))
    np.testing.assert_array_equal(back.adjacency_matrix, ref.adjacency_matrix)
    np.testing.assert_array_equal(back.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)


def test_hand_made_wiring():
    w = W.Wiring(4)
    w.set_output_dim(2)
    w.add_synapse(0, 1, -1)
    w.build(3)
    w.add_sensory_synapse(2, 3, 1)
    back = W.wiring_from_config(json.loads(json.dumps(W.wiring_to_config(w))))
    assert back.synapses() == [(2, 3, 1, "sensory"), (0, 1, -1, "internal")]
    assert back.neuron_groups()["motor"] == [0, 1]


def test_clear_errors():
    with pytest.raises(ValueError, match="output_size"):
        W.AutoNCP(8, 6)
    with pytest.raises(ValueError, match="sparsity_level"):
        W.AutoNCP(20, 3, sparsity_level=0.05)
    with pytest.raises(ValueError, match="sparsity_level"):
        W.Random(5, sparsity_level=1.0)
    with pytest.raises(ValueError, match="motor_fanin"):
        W.NCP(5, 3, 2, 2, 2, 2, 4)
    with pytest.raises(TypeError, match="units"):
        W.FullyConnected(4.5)
    with pytest.raises(ValueError, match="polarity"):
        W.Wiring(3).add_synapse(0, 1, 2)
    with pytest.raises(ValueError, match="before build"):
        W.Wiring(3).add_sensory_synapse(0, 1, 1)
    with pytest.raises(ValueError, match="unknown wiring class"):
        W.wiring_from_config({"class": "os.system"})
    with pytest.raises(TypeError, match="ncps.wirings.Wiring"):
        W.from_ncps_wiring(object())
