"""``--live``: MuJoCo's interactive viewer (passive mode) on the running policy, at real time.

The policy runs through :class:`~cfc_control.runtime.runner.PolicyRunner` as in a robot's loop:
each step it gets the observation and the Δt since the previous one, the env holds its action for
the next period (``info["dt"]``), and the loop sleeps until the wall clock has caught up with the
simulated time, so a 50 ms period takes 50 ms on screen. Episodes restart until the window is
closed (or ``max_steps``).

The window needs a display. Without one, GLFW aborts the whole process from C, uncatchable, so
the display is checked first and :class:`NoDisplayError` says to render to a file instead.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional

import numpy as np

from cfc_control.policies.policy import RecurrentPolicy
from cfc_control.runtime.runner import PolicyRunner
from cfc_control.viewer.scene import TRACKING_CAMERA, has_camera

NO_DISPLAY = (
    "--live opens MuJoCo's interactive viewer, which needs a display, and none was found{why}. "
    "On a headless machine render the rollout to a file instead: --out rollout.mp4 (or .gif)."
)


class NoDisplayError(RuntimeError):
    """The live viewer cannot open a window here."""


@dataclass
class LiveResult:
    """What a live session ran: steps in all, and each finished episode's return and steps."""

    steps: int = 0
    returns: List[float] = field(default_factory=list)
    lengths: List[int] = field(default_factory=list)


def display_available(environ: Optional[Mapping[str, str]] = None, platform: Optional[str] = None) -> bool:
    """Whether a window can open: on Linux and the BSDs an X11 or Wayland display must be set;
    macOS and Windows always have one."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if plat.startswith(("darwin", "win", "cygwin")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def check_display(environ: Optional[Mapping[str, str]] = None, platform: Optional[str] = None) -> None:
    """Raise :class:`NoDisplayError` (with the advice to use --out) when no display exists."""
    if not display_available(environ, platform):
        raise NoDisplayError(NO_DISPLAY.format(why=" (neither DISPLAY nor WAYLAND_DISPLAY is set)"))


def run_live(
    policy: RecurrentPolicy,
    env: Any,
    *,
    seed: Optional[int] = None,
    max_steps: Optional[int] = None,
    launch: Optional[Callable[..., Any]] = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    log: Optional[Callable[[str], None]] = None,
) -> LiveResult:
    """Step ``policy`` on ``env`` (a MuJoCo task env, render_mode None) in the passive viewer at
    real time until the window closes or ``max_steps`` steps have run.

    ``launch(model, data)`` opens the viewer (default ``mujoco.viewer.launch_passive``; a test
    passes a stand-in with ``is_running()``, ``sync()``, ``lock()``, ``close()`` and ``cam``);
    ``clock``/``sleep`` pace the loop; ``log`` receives a line per finished episode."""
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
    if launch is None:
        check_display()
        launch = _launch_passive
    base = env.unwrapped
    runner = PolicyRunner(policy, batch_size=1)
    runner.reset()
    obs, info = env.reset(seed=seed)
    nominal = float(info.get("dt", policy.time_input.nominal_dt))
    dt = nominal
    try:
        handle = launch(base.model, base.data)
    except NoDisplayError:
        raise
    except Exception as err:  # GLFW without a usable display, macOS outside mjpython, ...
        raise NoDisplayError(NO_DISPLAY.format(why=f" ({type(err).__name__}: {err})")) from err
    result = LiveResult()
    episode_return, episode_steps = 0.0, 0
    try:
        _follow_body(handle, env)
        start, sim_time = clock(), 0.0
        while handle.is_running() and (max_steps is None or result.steps < max_steps):
            action = runner.step(np.asarray(obs, dtype=np.float64), dt)
            with handle.lock():
                obs, reward, terminated, truncated, info = env.step(action)
            handle.sync()
            dt = float(info.get("dt", nominal))
            sim_time += dt
            episode_return += float(reward)
            episode_steps += 1
            result.steps += 1
            ahead = start + sim_time - clock()
            if ahead > 0:
                sleep(ahead)
            if terminated or truncated:
                result.returns.append(episode_return)
                result.lengths.append(episode_steps)
                if log is not None:
                    log(f"episode {len(result.returns)}: return {episode_return:.2f} in {episode_steps} steps")
                episode_return, episode_steps = 0.0, 0
                runner.reset()
                with handle.lock():
                    obs, info = env.reset()
                dt = float(info.get("dt", nominal))
                start, sim_time = clock(), 0.0
    finally:
        handle.close()
    return result


def _launch_passive(model: Any, data: Any) -> Any:
    import mujoco.viewer

    return mujoco.viewer.launch_passive(model, data)


def _follow_body(handle: Any, env: Any) -> None:
    """Look through the model's tracking camera when it has one (a running body stays in view;
    the user can still free the camera from the viewer)."""
    if not has_camera(env, TRACKING_CAMERA):
        return
    import mujoco

    base = env.unwrapped
    with handle.lock():
        handle.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        handle.cam.fixedcamid = mujoco.mj_name2id(base.model, mujoco.mjtObj.mjOBJ_CAMERA, TRACKING_CAMERA)
