"""Look at one rollout of a policy: a video with its neurons, its wiring, a summary figure, or
MuJoCo's live viewer.

    python -m cfc_control.view policies/ncp-halfcheetah --out cheetah.mp4
    python -m cfc_control.view DIR --env HalfCheetah-Full-Irregular --seed 3 --out run.gif --max-steps 200
    python -m cfc_control.view DIR --wiring wiring.svg --plots summary.png
    python -m cfc_control.view DIR --live

--env defaults to the task the policy was trained on; --timing (a preset or a spec in seconds)
and --obs override the task's. --out renders offscreen (MUJOCO_GL=egl is used when no display
exists), with the panels beside (--panels right), below, or none. --wiring colours each neuron by
its mean |state| over the rollout (--plain-wiring: no rollout, group colours).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import List, Optional

from cfc_control.cli import ArgumentParser, error_line
from cfc_control.files import check_writable
from cfc_control.policies import load_policy, resolve_policy_dir
from cfc_control.policies.periods import warn_if_env_outside
from cfc_control.tasks import make_env, resolve_env_id, resolve_stored_task
from cfc_control.tasks.observations import OBS_MODELS

VIDEO_SUFFIXES = (".mp4", ".gif")
WIRING_SUFFIXES = (".png", ".svg")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m cfc_control.view", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("policy", help="policy directory (or a training run directory holding policy/)")
    p.add_argument("--env", default=None, help="task (default: the policy's)")
    p.add_argument("--timing", default=None, help="timing preset or spec in seconds (default: the task's)")
    p.add_argument("--obs", default=None, help=f"observation model override ({', '.join(OBS_MODELS)})")
    p.add_argument("--seed", type=int, default=0, help="reset seed of the episode (default 0)")
    p.add_argument("--max-steps", type=_positive_int, default=None, help="stop after this many steps")
    p.add_argument("--out", default=None, help="video file, .mp4 or .gif")
    p.add_argument("--wiring", default=None, help="wiring diagram, .png or .svg")
    p.add_argument("--plain-wiring", action="store_true", help="wiring diagram without activity colours")
    p.add_argument("--plots", default=None, help="summary figure, .png, .svg or .pdf")
    p.add_argument("--live", action="store_true", help="MuJoCo's interactive viewer at real time (needs a display)")
    p.add_argument("--width", type=_positive_int, default=480, help="scene width in pixels (default 480)")
    p.add_argument("--height", type=_positive_int, default=480, help="scene height in pixels (default 480)")
    p.add_argument("--fps", type=float, default=None,
                   help="video frame rate (default: one frame per nominal period, at most 60; GIF 50)")
    p.add_argument("--panels", choices=("right", "below", "none"), default="right",
                   help="where the panels go (default right)")
    p.add_argument("--camera", default=None,
                   help="model camera to render from (default: the model's tracking camera 'track' if "
                        "it has one, else the env's default view)")
    p.add_argument("--msaa", type=int, default=0,
                   help="multisampling for smoother edges (default 0: off; 4 is MuJoCo's default, about "
                        "half the frame rate on a CPU)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.out or args.wiring or args.plots or args.live):
        parser.error("nothing to do: pass --out FILE.mp4|FILE.gif, --wiring FILE.png|FILE.svg, "
                     "--plots FILE.png and/or --live")
    for flag, value, suffixes in (("--out", args.out, VIDEO_SUFFIXES), ("--wiring", args.wiring, WIRING_SUFFIXES),
                                  ("--plots", args.plots, PLOT_SUFFIXES)):
        if value is not None and Path(value).suffix.lower() not in suffixes:
            parser.error(f"{flag} must end in {' or '.join(suffixes)}, got {value!r}")
    if args.msaa < 0:
        parser.error(f"--msaa must be >= 0, got {args.msaa}")
    for flag, value in (("--out", args.out), ("--wiring", args.wiring), ("--plots", args.plots)):
        if value is not None:  # before the rollout and the rendering, not after
            try:
                check_writable(Path(value).parent, f"{flag} {value}: directory")
            except ValueError as err:
                parser.error(str(err))

    # The viewer is imported here, not at the top: MuJoCo picks its rendering backend from
    # MUJOCO_GL when it is first imported, and that variable is settled just below.
    from cfc_control.viewer.live import NoDisplayError, check_display, display_available

    try:
        if args.live:
            check_display()  # before any work: without a display the window cannot open
    except NoDisplayError as err:
        return error_line("python -m cfc_control.view", err)
    if "MUJOCO_GL" not in os.environ and not display_available():
        os.environ["MUJOCO_GL"] = "egl"  # offscreen rendering on a headless machine

    try:
        return _run(args)
    except (FileNotFoundError, ValueError, NoDisplayError, OSError) as err:
        return error_line("python -m cfc_control.view", err)


def _run(args: argparse.Namespace) -> int:
    # Imported after main() settled MUJOCO_GL (see there).
    from cfc_control.viewer import (
        configure_rendering,
        record_rollout,
        run_live,
        save_summary_plot,
        save_wiring_plot,
        write_video,
    )
    from cfc_control.viewer.scene import TRACKING_CAMERA, has_camera

    directory = resolve_policy_dir(args.policy)
    policy = load_policy(directory)
    task = args.env or policy.task
    if not task:
        raise ValueError(f"{directory}: the policy names no task; pass --env")
    # A task read from the policy's files is data: never resolved by importing anything.
    env_id = resolve_env_id(task) if args.env else resolve_stored_task(task, f"{directory}/config.json")
    if args.wiring and getattr(policy.model, "wiring", None) is None:
        raise ValueError(f"--wiring: the {type(policy.model).__name__} model of {directory} has no wiring "
                         "(its units are not wired neurons): there is no wiring diagram to draw")
    needs_rollout = bool(args.out or args.plots or (args.wiring and not args.plain_wiring))

    rollout = None
    if needs_rollout:
        render = {}
        if args.out:
            render = dict(render_mode="rgb_array", width=args.width, height=args.height,
                          camera_name=args.camera or TRACKING_CAMERA)
        env = make_env(env_id, timing=args.timing, obs=args.obs, **render)
        warn_if_env_outside(policy.trained_periods(), env)
        try:
            if args.out:
                if args.camera is not None and not has_camera(env, args.camera):
                    raise ValueError(f"{env_id} has no camera named {args.camera!r}; {_camera_names(env)}")
                configure_rendering(env, msaa=args.msaa)  # before the first render
            rollout = record_rollout(policy, env, seed=args.seed, max_steps=args.max_steps, progress=True)
            end = "terminated" if rollout.terminated else ("truncated" if rollout.truncated else "stopped")
            print(f"{_short(env_id)} [{rollout.timing}] seed {args.seed}: return {rollout.total_return:.2f} "
                  f"in {rollout.steps} steps, {rollout.time[-1] + rollout.period[-1]:.2f} s simulated ({end})")
            title = f"{directory.name} · {_short(env_id)} · {rollout.timing} · seed {args.seed}"
            if args.out:
                if rollout.steps == 0:
                    raise ValueError("the episode has no steps: nothing to render")
                stats = write_video(rollout, env, args.out, fps=args.fps, layout=args.panels, title=title,
                                    progress=True)
                print(f"wrote {stats.summary()}")
            if args.plots:
                save_summary_plot(rollout, args.plots, title=f"{directory.name} on {_short(env_id)}")
                print(f"wrote {args.plots}")
        finally:
            env.close()
    if args.wiring:
        activity = None
        if rollout is not None:
            activity = rollout.layout.per_neuron(rollout.mean_abs_activity())
        save_wiring_plot(policy.model, args.wiring, activity=activity)
        print(f"wrote {args.wiring}")
    if args.live:
        env = make_env(env_id, timing=args.timing, obs=args.obs)
        warn_if_env_outside(policy.trained_periods(), env)
        try:
            result = run_live(policy, env, seed=args.seed, max_steps=args.max_steps, log=print)
        finally:
            env.close()
        print(f"live: {result.steps} steps, {len(result.returns)} finished episodes")
    return 0


def _short(env_id: str) -> str:
    """``cfc_control/HalfCheetah-Full-Jitter-v0`` -> ``HalfCheetah-Full-Jitter``."""
    name = env_id.split("/", 1)[-1]
    return name[: -len("-v0")] if env_id.startswith("cfc_control/") and name.endswith("-v0") else name


def _camera_names(env) -> str:
    import mujoco  # after MUJOCO_GL is settled (see main)

    model = env.unwrapped.model
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
    return f"its cameras: {', '.join(n for n in names if n)}" if any(names) else "it defines no camera"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
