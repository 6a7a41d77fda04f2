"""The MuJoCo scene, offscreen: renderer settings, and re-rendering recorded physics states.

A rollout records the simulator's state (a few dozen floats) at every control step rather than
images; the video renders them afterwards, one at a time, straight into the encoder. A 1000-step
rollout thus never holds a thousand frames in memory, and the panels (which need the whole
episode) can be drawn before the first frame.

A redrawn frame shows exactly the recorded state, the one the policy observed. (Gymnasium's own
``render()`` right after ``step()`` draws body poses from before the last physics step: MuJoCo
computes them at the start of ``mj_step``; a redraw runs ``mj_forward`` on the state first.)

Speed on a CPU (Mesa llvmpipe under MUJOCO_GL=egl, HalfCheetah at 480x480): the offscreen
multisampling buffer is the dominant cost (4 samples by default: ~14 frames/s here; none: ~35),
then the 4096-texel shadow map (~7 frames/s with it). Both are model settings read when the GL
context is made, so :func:`configure_rendering` must run before the first ``render()``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

# Camera name the Gymnasium locomotion models (HalfCheetah, Hopper, Walker2d, Swimmer) define to
# follow the body; Gymnasium 1.x renders them with a free camera that stays where the episode
# started, so a running policy leaves the picture within seconds.
TRACKING_CAMERA = "track"
SHADOW_SIZE = 1024
DEFAULT_MSAA = 0


def _mujoco():
    import mujoco  # imported late: MUJOCO_GL must be set before the first import

    return mujoco


def state_spec() -> int:
    """The mjtState bits recorded per step: everything integration reads (time, qpos, qvel,
    actuator activations, mocap poses, controls), enough to redraw the scene exactly."""
    return int(_mujoco().mjtState.mjSTATE_INTEGRATION)


def capture_state(env: Any) -> np.ndarray:
    """The simulator state of ``env`` (a Gymnasium MuJoCo env, wrapped or not), (S,) float64."""
    mujoco = _mujoco()
    base = env.unwrapped
    spec = state_spec()
    out = np.empty(mujoco.mj_stateSize(base.model, spec), dtype=np.float64)
    mujoco.mj_getState(base.model, base.data, out, spec)
    return out


def configure_rendering(env: Any, msaa: int = DEFAULT_MSAA, shadow_size: int = SHADOW_SIZE) -> None:
    """Set the renderer speed-ups on ``env``'s model; call before its first ``render()``.

    ``msaa``: offscreen multisampling samples (0 = off, the fast default; MuJoCo's own is 4,
    smoother edges at about half the frame rate on a CPU). ``shadow_size``: shadow-map texels
    (MuJoCo's default 4096; 1024 looks the same at video sizes and renders twice as fast)."""
    for name, value, low in (("msaa", msaa, 0), ("shadow_size", shadow_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    quality = env.unwrapped.model.vis.quality
    quality.offsamples = int(msaa)
    quality.shadowsize = int(shadow_size)


def has_camera(env: Any, name: str) -> bool:
    """Whether ``env``'s model defines a camera called ``name``."""
    mujoco = _mujoco()
    base = env.unwrapped
    return mujoco.mj_name2id(base.model, mujoco.mjtObj.mjOBJ_CAMERA, name) >= 0


def render_states(env: Any, states: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Render each recorded state (from :func:`capture_state`) with ``env``'s renderer: yields
    (H, W, 3) uint8 frames. ``env`` may be a fresh env of the same task (it is reset if it never
    was); its simulator is left in the last state rendered."""
    mujoco = _mujoco()
    base = env.unwrapped
    spec = state_spec()
    size = mujoco.mj_stateSize(base.model, spec)
    if not _has_reset(env):  # Gymnasium refuses to render before a reset; the state is set below
        env.reset()
    for k, state in enumerate(states):
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (size,):
            raise ValueError(f"recorded state {k} has shape {s.shape}, the model's state is ({size},)")
        mujoco.mj_setState(base.model, base.data, s, spec)
        mujoco.mj_forward(base.model, base.data)  # positions, cameras and lights follow the state
        frame = env.render()
        if frame is None:
            raise ValueError("the env renders nothing: build it with render_mode='rgb_array'")
        yield frame


def _has_reset(env: Any) -> bool:
    try:
        return bool(env.get_wrapper_attr("has_reset"))
    except AttributeError:  # no order-enforcing wrapper
        return True
