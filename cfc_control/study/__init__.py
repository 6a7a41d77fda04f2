"""The study of time-awareness: train several models with several seeds on a task, evaluate each
under a grid of control-period timings, and report the returns (table, CSV, plot).

    python -m cfc_control.study timing --env InvertedPendulum-Pos-Irregular

Library use: :func:`~cfc_control.study.jobs.make_plan`, :func:`~cfc_control.study.driver.run_study`
on a backend from :func:`~cfc_control.study.backends.make_backend`, then
:func:`~cfc_control.study.report.write_report`.
"""

from cfc_control.study.backends import make_backend
from cfc_control.study.jobs import StudyPlan, make_plan, parse_timings
from cfc_control.study.report import write_report
from cfc_control.study.driver import load_expert_results, load_results, run_study

__all__ = ["StudyPlan", "load_expert_results", "load_results", "make_backend", "make_plan", "parse_timings", "run_study", "write_report"]
