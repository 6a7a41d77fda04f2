"""The rollout viewer: one episode of a policy as a video with synchronised panels (hidden state,
actions, Δt, return), the NCP wiring diagram, a static summary figure, and MuJoCo's live viewer.

``python -m cfc_control.view DIR --env TASK --out rollout.mp4`` is the command line; the pieces:

* :func:`record_rollout` -> :class:`Rollout` (what the policy saw, did, earned; its hidden state;
  the simulator state at every step for rendering afterwards);
* :func:`write_video` (MP4 or GIF), :func:`save_wiring_plot`, :func:`save_summary_plot`;
* :func:`run_live` (needs a display).

Importing this package does not import MuJoCo: set ``MUJOCO_GL`` (``egl`` headless) before the
first env is made.
"""

from cfc_control.viewer.live import NoDisplayError, run_live
from cfc_control.viewer.neurons import NeuronLayout, neuron_layout
from cfc_control.viewer.rollout import Rollout, record_rollout
from cfc_control.viewer.scene import configure_rendering
from cfc_control.viewer.summary import save_summary_plot
from cfc_control.viewer.video import VideoStats, write_video
from cfc_control.viewer.wiring_plot import save_wiring_plot, wiring_diagram

__all__ = [
    "NeuronLayout",
    "NoDisplayError",
    "Rollout",
    "VideoStats",
    "configure_rendering",
    "neuron_layout",
    "record_rollout",
    "run_live",
    "save_summary_plot",
    "save_wiring_plot",
    "wiring_diagram",
    "write_video",
]
