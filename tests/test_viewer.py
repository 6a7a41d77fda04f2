"""The rollout viewer: neuron layout, recorded rollout, video (MP4/GIF), panels, wiring diagram,
summary figure, live mode without a display, and the command line end to end."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from cfc_control.models.ltc import LTC
from cfc_control.models.registry import make
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput, save_policy
from cfc_control.tasks import make_env
from cfc_control.viewer import (
    NoDisplayError,
    configure_rendering,
    neuron_layout,
    record_rollout,
    run_live,
    save_summary_plot,
    save_wiring_plot,
    wiring_diagram,
    write_video,
)
from cfc_control.viewer.live import check_display
from cfc_control.viewer.panels import CURSOR_RGB, PanelStrip
from cfc_control.viewer.scene import capture_state, render_states
from cfc_control.wirings import NCP, AutoNCP

TASK = "HalfCheetah-Full-Fixed"  # never terminates early: a rollout has exactly max_steps steps
W, H = 96, 64  # small scenes keep rendering cheap


def _policy(model_name="ncp", **kw) -> RecurrentPolicy:
    torch.manual_seed(0)
    model = make(model_name, 17, 6, **kw)
    return RecurrentPolicy(model, ObsNormalizer.identity(17), ActionMapping(-np.ones(6), np.ones(6)),
                           TimeInput.around(0.05), task=TASK, model_name=model_name)


@pytest.fixture(scope="module")
def policy():
    return _policy("ncp", units=16)


@pytest.fixture(scope="module")
def rendered(policy):
    """A 20-step rollout and the env it ran on (rgb_array at W x H, renderer configured)."""
    env = make_env(TASK, render_mode="rgb_array", width=W, height=H, camera_name="track")
    configure_rendering(env)
    rollout = record_rollout(policy, env, seed=3, max_steps=20)
    yield rollout, env
    env.close()


# -- which state entry is which neuron -------------------------------------------------------

def test_layout_of_wired_cfc_follows_layer_order_and_motor_state_is_the_output(policy):
    layout = neuron_layout(policy.model)
    assert [g.name for g in layout.groups] == ["inter", "command", "motor"]
    wiring = policy.model.wiring
    groups = wiring.neuron_groups()
    for g in layout.groups:
        assert sorted(g.neuron_ids) == groups[g.name]
    motor = layout.groups[-1]
    assert motor.neuron_ids == tuple(range(6))
    assert motor.state_index == tuple(range(16 - 6, 16))  # layer order: motor last
    y, h = policy.model.step(torch.randn(3, 17), dt=1.0)
    torch.testing.assert_close(y, h[:, list(motor.state_index)])


def test_layout_of_ltc_follows_neuron_id_order():
    torch.manual_seed(0)
    model = LTC(5, NCP(4, 3, 2, sensory_fanout=2, inter_fanout=2, recurrent_command_synapses=2, motor_fanin=2))
    layout = neuron_layout(model)
    for g in layout.groups:
        assert g.state_index == g.neuron_ids
    assert layout.groups[-1].neuron_ids == (0, 1)
    y, h = model.step(torch.randn(2, 5), dt=1.0)
    # Output mapping starts as the identity: the outputs are the motor neurons' potentials.
    torch.testing.assert_close(y, h[:, [0, 1]])


def test_layout_of_unwired_models():
    cfc = neuron_layout(make("cfc", 4, 2, units=12))
    assert not cfc.grouped and cfc.size == 12 and len(cfc.groups[0]) == 12
    lstm = neuron_layout(make("lstm", 4, 2))
    assert lstm.groups[0].name == "hidden (h)"
    assert neuron_layout(make("mlp", 4, 2)).size == 0


# -- the recorded rollout ----------------------------------------------------------------------

def test_rollout_records_what_the_policy_computed(policy, rendered):
    rollout, _ = rendered
    assert rollout.steps == 20 and not rollout.terminated
    assert rollout.hidden.shape == (20, 16) and rollout.actions.shape == (20, 6)
    assert rollout.dt[0] == pytest.approx(0.05)
    np.testing.assert_allclose(rollout.dt[1:], rollout.period[:-1])
    np.testing.assert_allclose(rollout.time, np.concatenate([[0.0], np.cumsum(rollout.period)[:-1]]))
    np.testing.assert_allclose(rollout.returns[-1], rollout.rewards.sum())
    # Replaying the recorded inputs through the torch policy gives the recorded states and actions.
    hx = None
    with torch.no_grad():
        for t in range(rollout.steps):
            y, hx = policy.step(torch.as_tensor(rollout.observations[t : t + 1], dtype=torch.float32),
                                torch.tensor([rollout.dt[t]], dtype=torch.float32), hx)
            np.testing.assert_allclose(hx[0][0].numpy(), rollout.hidden[t], atol=1e-5)  # h of the state tuple, row 0
            np.testing.assert_allclose(policy.to_action(y)[0].numpy(), rollout.actions[t], atol=1e-5)


def test_rollout_rejects_a_mismatched_task(policy):
    env = make_env("InvertedPendulum-Full-Fixed")
    with pytest.raises(ValueError, match="observations"):
        record_rollout(policy, env, max_steps=2)
    env.close()


# -- video -------------------------------------------------------------------------------------

def test_recorded_states_redraw_the_scene_as_it_was():
    import mujoco

    live = make_env(TASK, render_mode="rgb_array", width=W, height=H, camera_name="track")
    configure_rendering(live)
    live.reset(seed=0)
    states, shown = [], []
    for _ in range(3):
        states.append(capture_state(live))
        # After mj_step the body poses lag the state by one physics step; forward them first.
        mujoco.mj_forward(live.unwrapped.model, live.unwrapped.data)
        shown.append(live.render().copy())
        live.step(np.full(6, 0.7))
    live.close()
    fresh = make_env(TASK, render_mode="rgb_array", width=W, height=H, camera_name="track")
    configure_rendering(fresh)
    redrawn = [f.copy() for f in render_states(fresh, states)]
    fresh.close()
    assert not np.array_equal(shown[0], shown[2])  # the body moved (and the camera followed)
    for a, b in zip(shown, redrawn):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_decodes_to_one_frame_per_step(rendered, tmp_path, suffix):
    rollout, env = rendered
    path = tmp_path / f"run{suffix}"
    stats = write_video(rollout, env, path, title="test")
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == rollout.steps == stats.frames
    assert frames.shape[1:3] == (stats.height, stats.width)
    assert stats.width > W and stats.height >= H and stats.width % 2 == 0 and stats.height % 2 == 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_video_without_panels_is_the_scene(rendered, tmp_path):
    rollout, env = rendered
    stats = write_video(rollout, env, tmp_path / "scene.mp4", layout="none", fps=10)
    frames = iio.imread(tmp_path / "scene.mp4", index=None)
    # 20 steps of 0.05 s at 10 frames per second: the video lasts the simulated second.
    assert frames.shape == (rollout.steps // 2, H, W, 3) and stats.fps == 10


def test_video_refuses_bad_output(rendered, tmp_path):
    rollout, env = rendered
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        write_video(rollout, env, tmp_path / "run.avi")
    with pytest.raises(ValueError, match="fps"):
        write_video(rollout, env, tmp_path / "run.gif", fps=100)
    assert not list(tmp_path.iterdir())


def test_panel_cursor_marks_the_step_and_moves_right(rendered):
    rollout, _ = rendered
    strip = PanelStrip(rollout, 200, 160)
    cols = [strip.column(t) for t in range(rollout.steps)]
    assert all(b > a for a, b in zip(cols, cols[1:]))
    for t in (0, 7, rollout.steps - 1):
        frame = strip.frame(t)
        assert frame.shape == (160, 200, 3)
        painted = np.all(frame[:, cols[t]] == CURSOR_RGB, axis=-1)
        assert painted.sum() > 0.4 * 160  # the cursor runs through every panel
    # Before the cursor the image is the static figure; after it, faded (lighter).
    frame = strip.frame(5)
    rows = slice(None)
    np.testing.assert_array_equal(frame[rows, : cols[5] - 1], strip.image[rows, : cols[5] - 1])
    assert frame[:, cols[6] : cols[-1]].mean() > strip.image[:, cols[6] : cols[-1]].mean()


# -- wiring diagram ----------------------------------------------------------------------------

def test_wiring_diagram_draws_every_synapse_with_its_polarity(tmp_path):
    wiring = AutoNCP(16, 3, seed=5)
    wiring.build(7)
    diagram = wiring_diagram(wiring)
    assert len(diagram.edges) == wiring.synapse_count + wiring.sensory_synapse_count
    expected = Counter(int(v) for v in wiring.adjacency_matrix[wiring.adjacency_matrix != 0])
    expected.update(int(v) for v in wiring.sensory_adjacency_matrix[wiring.sensory_adjacency_matrix != 0])
    assert Counter(e.polarity for e in diagram.edges) == expected
    for e in diagram.edges:
        matrix = wiring.sensory_adjacency_matrix if e.kind == "sensory" else wiring.adjacency_matrix
        assert matrix[e.src[1], e.dst[1]] == e.polarity
    columns = [name for name, _ in diagram.columns]
    assert columns == ["sensory", "inter", "command", "motor"]
    for e in diagram.edges:  # sources sit in the sensory column or the source neuron's group column
        src_group = "sensory" if e.kind == "sensory" else wiring.get_type_of_neuron(e.src[1])
        assert diagram.positions[e.src][0] == columns.index(src_group)
        assert diagram.positions[e.dst][0] == columns.index(wiring.get_type_of_neuron(e.dst[1]))

    artists = save_wiring_plot(wiring, tmp_path / "w.svg")
    assert len(artists.excitatory.get_segments()) == expected[1]
    assert len(artists.inhibitory.get_segments()) == expected[-1]
    assert (tmp_path / "w.svg").read_text().lstrip().startswith("<?xml")


def test_wiring_plot_with_activity_and_errors(policy, rendered, tmp_path):
    rollout, _ = rendered
    activity = rollout.layout.per_neuron(rollout.mean_abs_activity())
    assert sorted(activity) == list(range(16))
    save_wiring_plot(policy.model, tmp_path / "w.png", activity=activity)
    img = iio.imread(tmp_path / "w.png")
    assert img.ndim == 3 and img.shape[0] > 100
    with pytest.raises(ValueError, match="no wiring"):
        save_wiring_plot(make("cfc", 4, 2, units=8), tmp_path / "x.png")
    with pytest.raises(ValueError, match=".png or .svg"):
        save_wiring_plot(policy.model, tmp_path / "x.jpg")


# -- summary figure ----------------------------------------------------------------------------

def test_summary_plot_writes_a_png(rendered, tmp_path):
    rollout, _ = rendered
    save_summary_plot(rollout, tmp_path / "s.png")
    img = iio.imread(tmp_path / "s.png")
    assert img.shape[:2] == (1290, 1500)
    assert img[..., :3].std() > 10  # something was drawn


# -- live ----------------------------------------------------------------------------------------

def test_live_without_display_says_to_use_out():
    with pytest.raises(NoDisplayError, match="--out"):
        check_display(environ={}, platform="linux")
    check_display(environ={"DISPLAY": ":0"}, platform="linux")


class _FakeViewer:
    def __init__(self):
        self.syncs, self.closed = 0, False
        self.cam = type("Cam", (), {"type": None, "fixedcamid": -1})()

    def is_running(self):
        return True

    def sync(self):
        self.syncs += 1

    def lock(self):
        import contextlib

        return contextlib.nullcontext()

    def close(self):
        self.closed = True


def test_live_loop_paces_to_simulated_time(policy):
    env = make_env("HalfCheetah-Full-Jitter")
    viewer = _FakeViewer()
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    result = run_live(policy, env, seed=1, max_steps=15, launch=lambda m, d: viewer,
                      clock=lambda: now[0], sleep=sleep)
    env.close()
    assert result.steps == 15 and viewer.syncs == 15 and viewer.closed
    sim_time = env.get_wrapper_attr("sim_time")
    assert sum(slept) == pytest.approx(sim_time)  # a frozen clock: the loop sleeps exactly sim time
    assert viewer.cam.fixedcamid >= 0  # follows the body through the model's tracking camera


# -- the command line ----------------------------------------------------------------------------

def _cli(args, env=None):
    return subprocess.run([sys.executable, "-m", "cfc_control.view", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_end_to_end(policy, tmp_path):
    save_policy(policy, tmp_path / "pol")
    out = tmp_path / "run.gif"
    proc = _cli([tmp_path / "pol", "--out", out, "--plots", tmp_path / "s.png", "--wiring", tmp_path / "w.svg",
                 "--max-steps", 12, "--width", 64, "--height", 48, "--seed", 2])
    assert proc.returncode == 0, proc.stderr
    assert iio.imread(out, index=None).shape[0] == 12
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "w.svg").stat().st_size > 0
    assert "12 steps" in proc.stdout

    no_display = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = _cli([tmp_path / "pol", "--live"], env=no_display)
    assert proc.returncode == 2 and "--out" in proc.stderr and "display" in proc.stderr

    proc = _cli([tmp_path / "pol", "--out", tmp_path / "run.avi"])
    assert proc.returncode == 2 and ".mp4 or .gif" in proc.stderr
    assert not Path(tmp_path / "run.avi").exists()
