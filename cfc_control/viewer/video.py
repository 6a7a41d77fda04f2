"""The rollout video: scene and panels side by side (or stacked), played in simulated time,
encoded as MP4 (H.264) or GIF by imageio-ffmpeg's ffmpeg.

Frames stream straight from the renderer into ffmpeg, which runs as a separate process and so
encodes on another core while the next frame renders. A GIF gets one palette for the whole clip,
computed from a few frames up front (ffmpeg's ``paletteuse``), so it streams too.

Frames are sampled in simulated time: frame ``k`` of a video at ``fps`` frames per second shows
the step under way at ``k / fps`` seconds (its observation's scene and the panels' cursor at that
step), so an episode of 40 simulated seconds plays in 40 seconds whatever its periods were: a long
period holds its frame, steps shorter than a frame are skipped. The default rate is one frame per
nominal period (one frame per step at a fixed period), capped for the format. A status line on
the scene gives the simulated time, the step, its Δt and the return so far; the Δt panel shows
how the real periods varied.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from cfc_control.files import atomic_path
from cfc_control.viewer.panels import PanelStrip
from cfc_control.viewer.rollout import Rollout
from cfc_control.viewer.scene import render_states

FORMATS = (".mp4", ".gif")
LAYOUTS = ("right", "below", "none")
MAX_FPS = {".mp4": 60.0, ".gif": 50.0}  # GIF delays are whole centiseconds; players cap at 50
# The panels beside a scene of height H are ``PANEL_ASPECT * H`` wide; below a scene of width W,
# ``PANEL_ASPECT_BELOW * W`` tall.
PANEL_ASPECT = 1.0
PANEL_ASPECT_BELOW = 0.8
PANEL_COLORS = 96  # of a GIF's 256 palette entries, those kept for the panels


@dataclass
class VideoStats:
    """What was written and where the time went (seconds; ffmpeg encodes concurrently, so
    ``encode_s`` is the time spent waiting on it)."""

    path: str
    frames: int
    width: int
    height: int
    fps: float
    render_s: float
    compose_s: float
    encode_s: float
    total_s: float

    def summary(self) -> str:
        def rate(seconds: float) -> str:
            return f"{self.frames / seconds:.0f} frames/s" if seconds > 0 else "n/a"

        return (f"{self.path}: {self.frames} frames, {self.width}x{self.height} at {self.fps:g} fps in "
                f"{self.total_s:.1f} s (render {rate(self.render_s)}, compose {rate(self.compose_s)}, "
                f"encoder wait {self.encode_s:.1f} s)")


def default_fps(rollout: Rollout, suffix: str = ".mp4") -> float:
    """One frame per nominal period (real time at a fixed period), capped for the format."""
    return float(min(1.0 / rollout.nominal_dt, MAX_FPS.get(suffix, 60.0)))


def frame_steps(rollout: Rollout, fps: float) -> np.ndarray:
    """The step each frame shows: frame ``k`` the one under way at ``k / fps`` simulated seconds,
    for as many frames as the episode lasts."""
    end = float(rollout.time[-1] + rollout.period[-1])
    # The tolerance keeps float sums of periods (0.05 + 0.05 + ...) on the frame they fall on.
    tol = 1e-6 * float(rollout.nominal_dt)
    count = max(1, int(np.ceil(end * fps - tol * fps)))
    times = np.arange(count) / fps + tol
    return np.clip(np.searchsorted(rollout.time, times, side="right") - 1, 0, rollout.steps - 1)


def video_format(path: Union[str, "os.PathLike[str]"]) -> str:
    """The output suffix (".mp4" or ".gif"); anything else raises ValueError."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"video output must end in .mp4 or .gif, got {str(path)!r}")
    return suffix


class FrameComposer:
    """Puts a scene frame and the panels into one frame of even width and height (H.264's 4:2:0
    needs both even), and writes the status line onto the scene."""

    def __init__(self, rollout: Rollout, scene_height: int, scene_width: int, layout: str = "right",
                 title: Optional[str] = None) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.rollout, self.layout = rollout, layout
        self.scene_hw = (int(scene_height), int(scene_width))
        self.panels: Optional[PanelStrip] = None
        if layout == "right":
            self.panels = PanelStrip(rollout, _even(PANEL_ASPECT * scene_height), scene_height, title)
        elif layout == "below":
            self.panels = PanelStrip(rollout, scene_width, _even(PANEL_ASPECT_BELOW * scene_width), title)
        h, w = self.scene_hw
        if layout == "right":
            w += self.panels.width
        elif layout == "below":
            h += self.panels.height
        self.height, self.width = h + h % 2, w + w % 2
        self._frame = np.full((self.height, self.width, 3), 255, dtype=np.uint8)
        self._status = StatusLine(scene_width, scene_height, _widest_status(rollout))

    def compose(self, step: int, scene: np.ndarray) -> np.ndarray:
        """The frame of step ``step`` from its scene image (H, W, 3) uint8. The array returned is
        reused by the next call."""
        h, w = self.scene_hw
        if scene.shape != (h, w, 3):
            raise ValueError(f"scene frame {step} has shape {scene.shape}, expected {(h, w, 3)}")
        out = self._frame
        out[:h, :w] = scene
        self._status.draw(out[:h, :w], status_text(self.rollout, step))
        if self.panels is not None:
            if self.layout == "right":
                self.panels.frame(step, out[: self.panels.height, w : w + self.panels.width])
            else:
                self.panels.frame(step, out[h : h + self.panels.height, : self.panels.width])
        return out


class StatusLine:
    """A line of text on a darkened band at the top of the scene, drawn with Pillow on the band
    only (a fraction of a millisecond per frame). The font shrinks until ``widest`` fits."""

    def __init__(self, width: int, height: int, widest: str) -> None:
        from matplotlib import font_manager
        from PIL import ImageFont

        self.band = max(int(round(height / 22)), 8)
        self.pad = max(self.band // 3, 2)
        path = font_manager.findfont("DejaVu Sans Mono", fallback_to_default=True)
        size = max(int(self.band * 0.7), 6)
        while True:
            try:
                font = ImageFont.truetype(path, size)
            except OSError:  # no TrueType font: Pillow's bitmap font still reads
                font = ImageFont.load_default()
                break
            if size <= 6 or font.getlength(widest) <= width - 2 * self.pad:
                break
            size -= 1
        self.font = font

    def draw(self, scene: np.ndarray, text: str) -> None:
        from PIL import Image, ImageDraw

        band = scene[: self.band]
        band[...] = (band * 0.45).astype(np.uint8)  # darken: white text reads on any scene
        img = Image.fromarray(band)
        ImageDraw.Draw(img).text((self.pad, self.band // 2), text, fill=(255, 255, 255), font=self.font,
                                 anchor="lm")
        band[...] = np.asarray(img)


def status_text(rollout: Rollout, step: int) -> str:
    """The status line of step ``step``: simulated time, step, Δt and return so far."""
    return (f"t {rollout.time[step]:.2f} s · step {step + 1}/{rollout.steps} · "
            f"Δt {rollout.dt[step] * 1e3:.1f} ms · return {rollout.returns[step]:.1f}")


def _widest_status(rollout: Rollout) -> str:
    return (f"t {rollout.time.max():.2f} s · step {rollout.steps}/{rollout.steps} · "
            f"Δt {rollout.dt.max() * 1e3:.1f} ms · return {-np.abs(rollout.returns).max():.1f}")


class Encoder:
    """Streams (H, W, 3) uint8 frames to ffmpeg, writing ``path`` as ``fmt`` (".mp4" or ".gif";
    default: ``path``'s suffix). A GIF needs the clip's ``palette`` (see :func:`gif_palette`).
    Write to a temporary name and rename (:func:`cfc_control.files.atomic_path`): a stopped
    encoder leaves a partial file."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], width: int, height: int, fps: float,
                 palette: Optional[np.ndarray] = None, fmt: Optional[str] = None) -> None:
        import imageio_ffmpeg
        from PIL import Image

        self.path = Path(path)
        self.suffix = video_format(self.path) if fmt is None else video_format(f"x{fmt}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self._palette_dir: Optional[tempfile.TemporaryDirectory] = None
        if self.suffix == ".mp4":
            h264 = ["-preset", "veryfast", "-crf", "20", "-movflags", "+faststart", "-f", "mp4"]
            kwargs: dict = dict(codec="libx264", pix_fmt_out="yuv420p", quality=None, macro_block_size=2,
                                output_params=h264)
        else:
            if palette is None or np.shape(palette) != (256, 3):
                raise ValueError("a GIF needs a (256, 3) palette (see gif_palette)")
            self._palette_dir = tempfile.TemporaryDirectory(prefix="cfc-view-")
            palette_png = Path(self._palette_dir.name) / "palette.png"
            Image.fromarray(np.asarray(palette, dtype=np.uint8).reshape(16, 16, 3)).save(palette_png)
            graph = f"movie={_filter_path(palette_png)}[p];[in][p]paletteuse=dither=bayer:bayer_scale=4"
            kwargs = dict(codec="gif", pix_fmt_out="pal8", quality=None, macro_block_size=1,
                          output_params=["-vf", graph, "-f", "gif"])
        self._gen = imageio_ffmpeg.write_frames(str(self.path), (width, height), fps=float(fps), **kwargs)
        self._gen.send(None)
        self.frames = 0

    def send(self, frame: np.ndarray) -> None:
        self._gen.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> None:
        """Finish the file (waits for ffmpeg)."""
        try:
            self._gen.close()
        finally:
            if self._palette_dir is not None:
                self._palette_dir.cleanup()
                self._palette_dir = None


def gif_palette(scenes: Sequence[np.ndarray], panels: Sequence[np.ndarray] = ()) -> np.ndarray:
    """A 256-colour palette, (256, 3) uint8, for a GIF of these sample scene images and panel
    images. The panels get their own share of colours: quantised together, the scene's many
    shades would take them all and the thin plot lines would lose their colours."""
    from PIL import Image

    def quantize(images: Sequence[np.ndarray], n: int, method: int) -> np.ndarray:
        mosaic = np.concatenate([np.asarray(i, dtype=np.uint8).reshape(-1, 3) for i in images])[:, None, :]
        q = Image.fromarray(mosaic).quantize(colors=n, method=method)
        used = len(q.getcolors(n) or ()) or n
        return np.asarray(q.getpalette()[: 3 * used], dtype=np.uint8).reshape(-1, 3)

    if not scenes:
        raise ValueError("a GIF palette needs at least one sample scene")
    # Octree keeps the panels' few saturated colours (median cut spends them on near-whites);
    # median cut suits the scene's smooth shading.
    parts = [quantize(panels, PANEL_COLORS, Image.Quantize.FASTOCTREE)] if panels else []
    parts.append(quantize(scenes, 256 - sum(len(p) for p in parts), Image.Quantize.MEDIANCUT))
    colors = np.concatenate(parts)[:256]
    out = np.zeros((256, 3), dtype=np.uint8)
    out[: len(colors)] = colors
    return out


def write_video(
    rollout: Rollout,
    env: Any,
    path: Union[str, "os.PathLike[str]"],
    *,
    fps: Optional[float] = None,
    layout: str = "right",
    title: Optional[str] = None,
    progress: bool = False,
) -> VideoStats:
    """Render ``rollout`` with ``env`` (the env it ran on or one like it, render_mode="rgb_array",
    renderer configured) and write the video to ``path`` (.mp4 or .gif)."""
    suffix = video_format(path)
    if rollout.steps == 0:
        raise ValueError("the rollout has no steps: nothing to render")
    fps = default_fps(rollout, suffix) if fps is None else float(fps)
    if not (np.isfinite(fps) and 0 < fps <= MAX_FPS[suffix]):
        raise ValueError(f"fps for {suffix} must be in (0, {MAX_FPS[suffix]:g}], got {fps!r}")
    t_start = time.perf_counter()
    timer = _Timer()
    steps = frame_steps(rollout, fps)
    shown = np.unique(steps)  # each step shown is rendered once, in order
    scenes = _timed(render_states(env, rollout.sim_states[shown]), timer)
    first = next(scenes)
    composer = FrameComposer(rollout, first.shape[0], first.shape[1], layout, title)
    palette = None
    if suffix == ".gif":  # sample the clip's colours: first, middle and last frames
        picks = sorted({0, rollout.steps // 2, rollout.steps - 1})
        h, w = composer.scene_hw
        samples = [composer.compose(k, s)[:h, :w].copy()
                   for k, s in zip(picks, render_states(env, rollout.sim_states[picks]))]
        panels = [composer.panels.image, composer.panels.faded] if composer.panels is not None else []
        palette = gif_palette(samples, panels)
    bar = _progress(progress, len(steps), f"video {Path(path).name}")
    compose_s = encode_s = 0.0
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            encoder = Encoder(tmp, composer.width, composer.height, fps, palette, fmt=suffix)
            try:
                scene, frame, current = first, None, int(shown[0])
                for step in steps:
                    t0 = time.perf_counter()
                    if frame is None or step != current:
                        if step != current:
                            scene, current = next(scenes), int(step)
                        frame = composer.compose(current, scene)
                    t1 = time.perf_counter()
                    encoder.send(frame)
                    compose_s += t1 - t0
                    encode_s += time.perf_counter() - t1
                    if bar is not None:
                        bar.update(1)
            finally:
                t0 = time.perf_counter()
                encoder.close()
                encode_s += time.perf_counter() - t0
    finally:
        if bar is not None:
            bar.close()
    return VideoStats(str(path), encoder.frames, composer.width, composer.height, fps, timer.seconds,
                      compose_s, encode_s, time.perf_counter() - t_start)


@dataclass
class _Timer:
    seconds: float = 0.0


def _timed(frames: Iterator[np.ndarray], timer: _Timer) -> Iterator[np.ndarray]:
    """Wrap a frame generator, adding the time spent producing each frame to ``timer``."""
    while True:
        t0 = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            return
        timer.seconds += time.perf_counter() - t0
        yield frame


def _even(x: float) -> int:
    n = int(round(x))
    return n + n % 2


def _filter_path(path: Path) -> str:
    """``path`` escaped for an ffmpeg filter option value inside a filtergraph."""
    value = str(path)
    for ch in ("\\", "'", ":"):
        value = value.replace(ch, "\\" + ch)
    for ch in ("\\", "'", "[", "]", ",", ";"):
        value = value.replace(ch, "\\" + ch)
    return value


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", leave=False, disable=None)  # None: off unless a TTY
