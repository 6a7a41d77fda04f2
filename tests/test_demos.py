"""Demonstrations: collection records what the student sees with the expert's labels and each
step's Δt; files round-trip and bad files fail with errors that say what is wrong."""

import json

import numpy as np
import pytest

from cfc_control.collect import main as collect_main
from cfc_control.training.collection import collect_demos
from cfc_control.episodes.demos import load_demos, save_demos

TASK = "InvertedPendulum-Pos-Irregular"


@pytest.fixture(scope="module")
def demos():
    return collect_demos(TASK, "lqr", 3, seed=7, noise=0.1)


def test_collection_records_student_view_labels_and_dt(demos):
    assert demos.n_episodes == 3 and demos.n_obs == 2 and demos.n_act == 1  # Pos: velocities removed
    assert demos.episode_seeds.tolist() == [7, 8, 9]
    offsets = demos.episode_offsets
    # Δt is the policy's time input: nominal at each episode's first step, the realised period after.
    np.testing.assert_allclose(demos.dt[offsets[:-1]], 0.04)
    assert demos.dt.min() >= 0.02 * 0.95 and demos.dt.max() <= 0.08 * 1.05
    assert np.std(demos.dt) > 0.005  # irregular
    for e in range(3):
        lo, hi = offsets[e], offsets[e + 1]
        # The periods that elapsed inside the episode, plus the last one, span the 40 s horizon.
        assert demos.dt[lo + 1:hi].sum() < 40.0 <= demos.dt[lo + 1:hi].sum() + 0.08 + 1e-9
        assert demos.truncations[hi - 1] and not demos.terminations[lo:hi].any()
    # DART: the executed action is perturbed, the label is the expert's.
    # DART noise: std 0.1 half-ranges = 0.3 N on InvertedPendulum's [-3, 3].
    assert 0.27 < np.std(demos.executed_actions - demos.actions) < 0.33
    assert np.all(np.abs(demos.actions) <= 3.0) and np.all(np.abs(demos.executed_actions) <= 3.0)
    assert demos.metadata["expert"] == "lqr" and demos.metadata["noise"] == 0.1
    assert demos.metadata["nominal_dt"] == 0.04


def test_falls_are_recorded_as_terminations():
    d = collect_demos(TASK, "lqr", 4, seed=7, noise=0.3)  # too much noise: the pole falls
    last = d.episode_offsets[1:] - 1
    assert d.terminations[last].all() and not d.truncations.any()
    assert d.terminations.sum() == 4
    np.testing.assert_allclose(d.final_observations[:, 1] ** 2 > 0.2**2, True)  # the pole angle left the band


def test_noise_free_collection_executes_the_labels():
    d = collect_demos(TASK, "lqr", 1, seed=0)
    np.testing.assert_array_equal(d.actions, d.executed_actions)
    assert d.episode_returns()[0] == pytest.approx(1000.0)


def test_round_trip(tmp_path, demos):
    path = save_demos(demos, tmp_path / "d.npz")
    back = load_demos(path)
    for name in ("observations", "actions", "executed_actions", "dt", "rewards", "terminations",
                 "truncations", "episode_offsets", "episode_seeds", "final_observations"):
        np.testing.assert_array_equal(getattr(back, name), getattr(demos, name), err_msg=name)
    assert back.metadata["task"] == demos.metadata["task"]
    assert back.metadata["format"] == "cfc-control-demos" and back.metadata["version"] == 1
    # Open format: plain numpy arrays, readable without this library and without pickles.
    with np.load(path, allow_pickle=False) as raw:
        assert json.loads(str(raw["metadata"]))["n_obs"] == 2
        assert raw["observations"].shape == (demos.n_steps, 2)


def test_select_concat_split(demos):
    two = demos.select([2, 0])
    assert two.episode_seeds.tolist() == [9, 7]
    np.testing.assert_array_equal(two.observations[: demos.episode_lengths[2]],
                                  demos.observations[demos.episode_offsets[2]:])
    both = demos.concat(two)
    assert both.n_episodes == 5 and both.n_steps == demos.n_steps + two.n_steps
    assert len(both.metadata["sources"]) == 2
    train, val = both.split(0.4, seed=0)
    assert train.n_episodes == 3 and val.n_episodes == 2
    assert train.n_steps + val.n_steps == both.n_steps
    with pytest.raises(ValueError, match="episode indices"):
        demos.select([3])
    with pytest.raises(ValueError, match="at least 2 episodes"):
        demos.select([0]).split(0.5)


def _arrays(demos):
    names = ("observations", "actions", "executed_actions", "dt", "rewards", "terminations", "truncations",
             "episode_offsets", "episode_seeds", "final_observations")
    meta = {"format": "cfc-control-demos", "version": 1}
    return {n: getattr(demos, n) for n in names}, meta


def _write(path, arrays, meta):
    np.savez(path, metadata=np.asarray(json.dumps(meta)), **arrays)
    return path


@pytest.mark.parametrize("corrupt, message", [
    (lambda a, m: a.pop("dt"), "missing entries \\['dt'\\]"),
    (lambda a, m: a.update(episode_offsets=np.array([0, 5, 3, a["observations"].shape[0]])), "episode_offsets"),
    (lambda a, m: a.update(actions=a["actions"][:-1]), "'actions' must have shape"),
    (lambda a, m: a.update(rewards=np.where(np.arange(len(a["rewards"])) == 3, np.nan, a["rewards"])), "non-finite"),
    (lambda a, m: a.update(dt=-a["dt"]), "'dt' must be positive"),
    (lambda a, m: a.update(observations=a["observations"].astype(np.int32)), "dtype"),
    (lambda a, m: a.update(truncations=np.ones_like(a["truncations"])), "not the last of its episode"),
    (lambda a, m: m.update(format="something"), "not a cfc-control demonstration file"),
    (lambda a, m: m.update(version=99), "version 99"),
])
def test_bad_files_raise_clear_errors(tmp_path, demos, corrupt, message):
    arrays, meta = _arrays(demos)
    corrupt(arrays, meta)
    path = _write(tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(ValueError, match=message) as info:
        load_demos(path)
    assert str(path) in str(info.value)


def test_pickled_and_non_npz_files_are_refused(tmp_path, demos):
    arrays, meta = _arrays(demos)
    arrays["rewards"] = np.array([{"evil": 1}] * len(arrays["rewards"]), dtype=object)
    path = _write(tmp_path / "pickled.npz", arrays, meta)
    with pytest.raises(ValueError, match="unpickling"):
        load_demos(path)
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_demos(text)
    with pytest.raises(FileNotFoundError, match="no such demonstration file"):
        load_demos(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=".npz"):
        save_demos(demos, tmp_path / "demos.pkl")


def test_collect_cli(tmp_path, capsys):
    out = tmp_path / "ip.npz"
    rc = collect_main(["--env", "InvertedDoublePendulum-Pos-Jitter", "--expert", "lqr", "--episodes", "2",
                       "--out", str(out), "--noise", "0.05", "--seed", "3"])
    assert rc == 0
    d = load_demos(out)
    assert d.n_episodes == 2 and d.n_obs == 6 and d.episode_seeds.tolist() == [3, 4]
    assert d.episode_returns().min() > 9000
    assert "2 episodes" in capsys.readouterr().out
    assert collect_main(["--env", "Swimmer-Pos-Fixed", "--expert", "lqr", "--episodes", "1",
                         "--out", str(tmp_path / "x.npz")]) == 2
    assert "LQR expert supports" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_period_scaled_noise_pushes_alike_per_second_at_every_period():
    """noise_period_power p: the DART noise's std at a steady period r x nominal is noise * r^-p,
    so with p = 0.5 a noisy action held for the period gives the same variance of impulse per
    second at 0.5x and 2x (std x period^0.5 equal)."""
    nominal = 0.04
    stds = {}
    for ratio in (0.5, 2.0):
        d = collect_demos(TASK, "lqr", 2, seed=0, noise=0.05, noise_period_power=0.5, timing=f"fixed:{ratio * nominal}")
        assert d.metadata["noise_period_power"] == 0.5
        later = np.concatenate([np.arange(lo + 1, hi) for lo, hi in zip(d.episode_offsets[:-1], d.episode_offsets[1:])])
        assert np.allclose(d.dt[later], ratio * nominal)  # the first step of an episode reports the nominal period
        stds[ratio] = float(np.std(d.executed_actions[later] - d.actions[later]) / 3.0)  # action half-range 3
    assert stds[0.5] == pytest.approx(0.05 * 0.5 ** -0.5, rel=0.1)
    assert stds[2.0] == pytest.approx(0.05 * 2.0 ** -0.5, rel=0.1)
    assert stds[0.5] * 0.5 ** 0.5 == pytest.approx(stds[2.0] * 2.0 ** 0.5, rel=0.15)
