"""Rebuild the zoo: teachers, then each family's timing study (whose CfC and NCP runs are the
students), then, where the recipe says so, PPO fine-tunes of the CfC students (a study of their
own), then the shipped students with their cards, then the summary.

Every stage resumes job by job: a teacher continues from its newest checkpoint (or is skipped when
its expert directory already holds the finished teacher), a study reuses every training and
evaluation it has stored (:mod:`cfc_control.study.driver`), and shipping writes each policy
directory from the study's stored results (the same bytes again when nothing changed). Teachers are
jobs on the same backends as the study's (local processes or Ray), so N workers train N teachers at
once.

    plan = ZooPlan(recipes_for("InvertedPendulum,Walker2d"))
    with make_backend(workers=2) as backend:
        outcome = build_zoo(plan, backend)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from cfc_control.files import atomic_write_bytes, read_json
from cfc_control.study import load_expert_results, load_results, run_study, write_report
from cfc_control.study.backends import Backend, as_completed
from cfc_control.study.jobs import StudyPlan
from cfc_control.training.teachers import TeacherConfig, resolve, teacher_run_dir, train_teacher
from cfc_control.zoo.plan import ZooPlan
from cfc_control.zoo.recipes import FamilyRecipe
from cfc_control.zoo.shipping import ship_students
from cfc_control.zoo.overview import write_summary

EXPERT_FILES = ("config.json", "model.safetensors", "card.json")


@dataclass
class ZooOutcome:
    teachers_trained: List[str] = field(default_factory=list)
    teachers_ready: List[str] = field(default_factory=list)
    studied: List[str] = field(default_factory=list)
    fine_tuned: List[str] = field(default_factory=list)
    students_trained: int = 0  # training runs of the studies and fine-tunes (reused ones not counted)
    shipped: List[str] = field(default_factory=list)
    waiting: Dict[str, str] = field(default_factory=dict)  # family -> why its students wait
    failures: Dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def teacher_finished(config: TeacherConfig) -> bool:
    """Whether ``config.out`` holds this teacher, trained to the end (its card matches)."""
    try:
        card = read_json(Path(config.expert_dir) / "card.json")
    except (FileNotFoundError, ValueError):
        return False
    setup = resolve(config)
    return card.get("steps") == setup.steps and card.get("training_timing") == setup.timing and \
        card.get("algorithm") == setup.algo and bool(card.get("dt_input")) == setup.dt_input and \
        card.get("obs", "Full") == setup.obs


def run_teacher(config: TeacherConfig) -> Dict[str, Any]:
    """A worker's job: train (or resume) one teacher; returns its card and the expert directory's
    files, so a remote worker's teacher reaches the driver's disk."""
    resume = (teacher_run_dir(config) / "checkpoints" / "latest.json").is_file()
    start = time.time()
    result = train_teacher(config, resume=resume, progress=False,
                           command="python -m cfc_control.zoo --stages teachers")
    files = {name: (result.directory / name).read_bytes() for name in EXPERT_FILES}
    return {"out": str(config.expert_dir), "card": result.card, "resumed": resume, "job_time_s": round(time.time() - start, 1),
            "files": files}


def train_teachers(plan: ZooPlan, backend: Backend, outcome: ZooOutcome, log: Callable[[str], None]) -> None:
    pending: Dict[Any, str] = {}
    for family, recipe in plan.recipes.items():
        config = recipe.teacher
        if config is None:
            continue
        if teacher_finished(config):
            outcome.teachers_ready.append(family)
            continue
        pending[backend.submit(run_teacher, config)] = family
    log(f"teachers: {len(pending)} to train, {len(outcome.teachers_ready)} ready")
    for family, record, err in as_completed(backend, pending):
        if err is not None:  # one failed teacher must not stop the others
            outcome.failures[f"teacher {family}"] = f"{type(err).__name__}: {err}"
            log(f"  FAILED teacher {family}: {type(err).__name__}: {err}")
            continue
        out = Path(record["out"])
        out.mkdir(parents=True, exist_ok=True)
        for name, data in record["files"].items():
            atomic_write_bytes(out / name, data)
        outcome.teachers_trained.append(family)
        outcome.teachers_ready.append(family)
        log(f"  teacher {family}: {record['card']['evaluation']['mean']:.1f} (Fixed) in {record['job_time_s']} s")


def expert_ready(recipe: FamilyRecipe) -> Optional[str]:
    """None when the family's students can be trained, else why not."""
    config = recipe.teacher
    if config is None or teacher_finished(config):
        return None
    return f"its teacher {config.out} is not trained yet (stage 'teachers')"


def build_zoo(plan: ZooPlan, backend: Backend, *, reuse: bool = True,
              log: Callable[[str], None] = print) -> ZooOutcome:
    """Run the plan's stages in order on ``backend``; returns what was done."""
    start = time.time()
    outcome = ZooOutcome()
    if "teachers" in plan.stages:
        train_teachers(plan, backend, outcome, log)
    for family, recipe in plan.recipes.items():
        why = expert_ready(recipe)
        if why is not None:
            if {"students", "fine-tune", "ship"} & set(plan.stages):
                outcome.waiting[family] = why
                log(f"{family}: students wait: {why}")
            continue
        study, fine_tune = plan.study(recipe), plan.fine_tune_study(recipe)
        if "students" in plan.stages:
            _run_study(family, study, backend, outcome, reuse, log)
            outcome.studied.append(family)
        if fine_tune is not None and "fine-tune" in plan.stages:
            why = students_trained(fine_tune)
            if why is None:
                _run_study(family, fine_tune, backend, outcome, reuse, log)
                outcome.fine_tuned.append(family)
            else:
                outcome.waiting[family] = why
                log(f"{family}: fine-tune waits: {why}")
        if "ship" in plan.stages:
            shipped = ship_students(recipe, study, plan.policies, log=log, runs_root=plan.runs_root)
            if fine_tune is not None:
                shipped += ship_students(recipe, fine_tune, plan.policies, log=log, runs_root=plan.runs_root,
                                         fine_tuned=True)
            outcome.shipped.extend(str(p) for p in shipped)
        write_summary(plan, plan.studies / "README.md")  # after each family: progress shows
    outcome.wall_s = time.time() - start
    return outcome


def _run_study(family: str, study: StudyPlan, backend: Backend, outcome: ZooOutcome, reuse: bool,
               log: Callable[[str], None]) -> None:
    """Run one study of the family (its students, or their fine-tune) and write its report."""
    result = run_study(study, backend, reuse=reuse, log=log)
    prefix = family if study.start_from is None else f"{family} fine-tune"
    outcome.failures.update({f"{prefix} {k}": v for k, v in result.failures.items()})
    outcome.students_trained += result.trained
    trains, evals = load_results(study)
    meta = {"command": "python -m cfc_control.zoo", "backend": backend.name, "wall_s": round(result.wall_s, 1)}
    write_report(study, trains, evals, meta, load_expert_results(study))


def students_trained(fine_tune: StudyPlan) -> Optional[str]:
    """None when every run a fine-tune starts from is a finished policy, else which are not."""
    missing = [job.key for job in fine_tune.train_jobs() if not (Path(str(job.init_from)) / "config.json").is_file()]
    return f"its students {', '.join(missing)} are not trained yet (stage 'students')" if missing else None


def describe(plan: ZooPlan) -> List[str]:
    """One line per job the plan would run (for ``--dry-run``)."""
    lines = []
    for family, recipe in plan.recipes.items():
        config = recipe.teacher
        if config is not None and "teachers" in plan.stages:
            state = "done" if teacher_finished(config) else "to train"
            lines.append(f"teacher {family}: {config.algo} {config.steps} steps -> {config.out} ({state})")
        if {"students", "ship"} & set(plan.stages):
            lines.append(f"study {family}: {recipe.task}, {', '.join(plan.models)} x seeds "
                         f"{', '.join(map(str, plan.seeds))}; flags: {' '.join(recipe.train_args())}")
        fine_tune = plan.fine_tune_study(recipe)
        if fine_tune is not None and {"fine-tune", "ship"} & set(plan.stages):
            lines.append(f"fine-tune {family}: PPO from the {', '.join(fine_tune.models)} students x seeds "
                         f"{', '.join(map(str, plan.seeds))}; flags: {' '.join(recipe.fine_tune_args())}")
    return lines
