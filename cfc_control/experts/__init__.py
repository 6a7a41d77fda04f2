"""Experts that demonstrate a task from its full simulator state: an LQR for the pendulums
(:mod:`cfc_control.experts.lqr`), a planner for Reacher (:mod:`cfc_control.experts.mpc`) and
stable-baselines3 agents (:mod:`cfc_control.experts.sb3`)."""

from cfc_control.experts.base import Expert, make_expert

__all__ = ["Expert", "make_expert"]
