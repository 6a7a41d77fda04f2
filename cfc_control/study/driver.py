"""Run a study's jobs on a backend, resuming from the results already stored.

The driver submits every training job whose result is not stored yet; as each finishes it writes
the result (``out/jobs/train-<model>-s<seed>.json``, atomically) and submits that policy's
evaluation jobs, one per timing, whose results go to ``out/jobs/eval-<model>-s<seed>-<timing>.json``.
A stored result is reused when it answers the same job for the same policy (the hash of its
weights), so an interrupted study rerun with the same command does only what is missing, and a
retrained policy is evaluated again. A failed job is reported and the others go on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from cfc_control.files import atomic_write_bytes, atomic_write_text
from cfc_control.study.backends import Backend, as_completed
from cfc_control.study.jobs import StudyPlan, TrainJob
from cfc_control.study.work import fingerprint, read_policy_files, run_eval, run_expert, run_train


@dataclass
class StudyOutcome:
    """What one invocation did: counts of jobs run and reused, failures (job key -> message)."""

    trained: int = 0
    reused_train: int = 0
    evaluated: int = 0
    reused_eval: int = 0
    failures: Dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def read_record(path: Path) -> Optional[Dict[str, Any]]:
    """A stored job result, or None when missing or unreadable (then the job runs again)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_record(path: Path, record: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def _stored_policy(plan: StudyPlan, job: TrainJob) -> Optional[Dict[str, bytes]]:
    """The policy files of a finished training job whose stored result still matches them."""
    record = read_record(plan.result_path(job))
    if record is None:
        return None
    try:
        files = read_policy_files(Path(record["run_dir"]) / "policy")
    except (FileNotFoundError, KeyError):
        return None
    expected = str(job.run_dir(plan.runs_root))
    return files if record["run_dir"] == expected and record.get("fingerprint") == fingerprint(files) else None


def _store_policy(run_dir: Path, files: Dict[str, bytes]) -> None:
    """Write a remote worker's policy files into the local run directory when they differ."""
    policy_dir = run_dir / "policy"
    policy_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = policy_dir / name
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)


def run_study(plan: StudyPlan, backend: Backend, *, reuse: bool = True,
              log: Callable[[str], None] = print) -> StudyOutcome:
    """Run (or resume) ``plan`` on ``backend``; returns what was done. With ``reuse=False``
    every policy is retrained and every evaluation rerun, and existing run directories are
    overwritten."""
    start = time.time()
    outcome = StudyOutcome()
    plan.out.mkdir(parents=True, exist_ok=True)
    pending: Dict[Any, Any] = {}  # handle -> job

    def submit_evals(train: TrainJob, files: Dict[str, bytes]) -> None:
        fp = fingerprint(files)
        for job in plan.eval_jobs(train):
            record = read_record(plan.result_path(job)) if reuse else None
            if record is not None and job.matches(record) and record.get("fingerprint") == fp:
                outcome.reused_eval += 1
                continue
            pending[backend.submit(run_eval, job, files)] = job

    for job in plan.expert_jobs():
        record = read_record(plan.result_path(job)) if reuse else None
        if record is not None and job.matches(record):
            outcome.reused_eval += 1
        else:
            pending[backend.submit(run_expert, job)] = job
    for job in plan.train_jobs():
        files = _stored_policy(plan, job) if reuse else None
        if files is not None:
            outcome.reused_train += 1
            submit_evals(job, files)
        else:
            pending[backend.submit(run_train, job, str(job.run_dir(plan.runs_root)), reuse)] = job
    log(f"study {plan.task}: {len(pending)} jobs to start ({outcome.reused_train} trainings and "
        f"{outcome.reused_eval} evaluations reused) on {backend.name}")
    try:
        for job, record, err in as_completed(backend, pending):
            if err is not None:  # one failed job must not stop the study
                outcome.failures[job.key] = f"{type(err).__name__}: {err}"
                log(f"  FAILED {job.key}: {type(err).__name__}: {err}")
            elif isinstance(job, TrainJob):
                files = record.pop("files")
                _store_policy(Path(record["run_dir"]), files)
                write_record(plan.result_path(job), record)
                outcome.reused_train += bool(record["reused"])
                outcome.trained += not record["reused"]
                how = "reused" if record["reused"] else f"trained in {record['training_time_s']} s"
                log(f"  train {job.key}: {how}")
                submit_evals(job, files)
            else:  # an evaluation of a policy or of the expert
                write_record(plan.result_path(job), record)
                outcome.evaluated += 1
                log(f"  eval {job.key}: {record['mean']:.1f} ± {record['std']:.1f} "
                    f"({record['eval_time_s']} s)")
    finally:
        outcome.wall_s = time.time() - start
    return outcome


def load_results(plan: StudyPlan) -> tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(training records, evaluation records) stored for the plan's jobs, in plan order; a
    training counts only if it was run with the plan's flags (its run directory's name, which
    carries their hash: a record left by a recipe since changed does not), an evaluation only if it
    matches its job and the policy its training record names."""
    trains, evals = [], []
    for job in plan.train_jobs():
        record = read_record(plan.result_path(job))
        if record is None or Path(str(record.get("run_dir"))).name != job.run_dir(plan.runs_root).name:
            continue
        trains.append(record)
        for ev in plan.eval_jobs(job):
            r = read_record(plan.result_path(ev))
            if r is not None and ev.matches(r) and r.get("fingerprint") == record.get("fingerprint"):
                evals.append(r)
    return trains, evals


def load_expert_results(plan: StudyPlan) -> List[Dict[str, Any]]:
    """The stored evaluations of the expert (the reference row) that match the plan."""
    out = []
    for job in plan.expert_jobs():
        r = read_record(plan.result_path(job))
        if r is not None and job.matches(r):
            out.append(r)
    return out
