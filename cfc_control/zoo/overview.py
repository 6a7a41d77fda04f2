"""The zoo's summary (``studies/zoo/README.md``): per family, the teacher and every studied model
under the card timings (mean ± std over seeds), what share of its Jitter return each keeps at the
other timings, whether the shipped CfC student meets the robustness goal, and the job time each
family took (teacher, students' trainings, evaluations, as each job recorded it), from which the
summary estimates a whole rebuild's wall time on one worker and on N.

The goal, per timing T of Irregular, 0.5x and 2x: the CfC student keeps at least 90% of its Jitter
return at T, or, where the physics itself does not allow that (the teacher keeps less), at least
90% of what the teacher keeps. "Keeps" is return(T) / return(Jitter); for a task whose returns are
negative costs (Reacher) it is return(Jitter) / return(T), so that a cost twice as large keeps 50%.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from cfc_control.files import atomic_write_text, read_json
from cfc_control.study import load_expert_results, load_results
from cfc_control.study.report import aggregate
from cfc_control.zoo.plan import ZooPlan
from cfc_control.policies.catalog import format_mean_std
from cfc_control.zoo.recipes import CARD_TIMINGS, RECIPES, STUDY_MODELS, FamilyRecipe

GOAL_SHARE = 0.9
FINE_TUNED_SUFFIX = " + PPO"  # the row of a student fine-tuned by PPO with the teacher in its loss
ROBUSTNESS_TIMINGS = ("Irregular", "0.5x", "2x")


def kept(at: float, jitter: float) -> float:
    """The share of the Jitter return kept at another timing (see the module docstring)."""
    if jitter < 0 and at < 0:
        return jitter / at
    return at / jitter if jitter else float("nan")


def robustness(student: Dict[str, float], teacher: Optional[Dict[str, float]]) -> Dict[str, Tuple[float, Optional[float], bool]]:
    """Per robustness timing: (share the student keeps, share the teacher keeps, goal met)."""
    out = {}
    for t in ROBUSTNESS_TIMINGS:
        s = kept(student[t], student["Jitter"])
        k = kept(teacher[t], teacher["Jitter"]) if teacher else None
        out[t] = (s, k, _meets(s, k))
    return out


def _meets(share: float, teacher_share: Optional[float]) -> bool:
    """The goal at one timing: 90% of the Jitter return, or 90% of what the teacher keeps where it keeps less."""
    physics_limited = teacher_share is not None and teacher_share < 1
    return share >= GOAL_SHARE or (physics_limited and share >= GOAL_SHARE * teacher_share)


def share_text(share: float, teacher_share: Optional[float], met: bool) -> str:
    """A share in whole percent, or to a tenth where the whole percent would read as the goal's
    other side (89.8% is not shown as 90% beside a miss)."""
    if not met and _meets(round(share, 2), teacher_share):
        return f"{share:.1%}"
    return f"{share:.0%}"


def family_table(recipe: FamilyRecipe, plan: ZooPlan) -> Tuple[List[str], Dict[str, Dict[str, float]]]:
    """The family's markdown table and the means by row (model or 'teacher') and card timing."""
    study = plan.study(recipe)
    _, evals = load_results(study)
    cells = aggregate(evals)
    experts = {r["timing"]: r for r in load_expert_results(study)}
    means: Dict[str, Dict[str, float]] = {}
    head = ["", *CARD_TIMINGS, *(f"keeps at {t}" for t in ROBUSTNESS_TIMINGS)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    rows: List[Tuple[str, Dict[str, Tuple[float, float, int]]]] = []
    if experts:
        rows.append((f"teacher (`{recipe.expert}`, over episodes)",
                     {name: (experts[t]["mean"], experts[t]["std"], 1) for name, t in CARD_TIMINGS.items() if t in experts}))
    for model in plan.models:
        rows.append((model, {name: cells[(model, t)] for name, t in CARD_TIMINGS.items() if (model, t) in cells}))
    fine_tune = plan.fine_tune_study(recipe)
    if fine_tune is not None:
        tuned = aggregate(load_results(fine_tune)[1])
        for model in fine_tune.models:
            rows.append((f"{model}{FINE_TUNED_SUFFIX}",
                         {name: tuned[(model, t)] for name, t in CARD_TIMINGS.items() if (model, t) in tuned}))
    for label, row in rows:
        if not row:
            continue
        key = "teacher" if label.startswith("teacher") else label
        means[key] = {name: m for name, (m, _, _) in row.items()}
        shares = [f"{kept(means[key][t], means[key]['Jitter']):.0%}" if t in row and "Jitter" in row else ""
                  for t in ROBUSTNESS_TIMINGS]
        values = [format_mean_std(row[n][0], row[n][1]) if n in row else "" for n in CARD_TIMINGS]
        lines.append("| " + " | ".join([label, *values, *shares]) + " |")
    return lines, means


def job_seconds(recipe: FamilyRecipe, plan: ZooPlan) -> Dict[str, float]:
    """The job time a family's build recorded: ``teacher`` (its card's training time), ``students``
    (every training job of the study) and ``evaluations`` (the study's evaluations, the teacher's
    included), in seconds; zero for what has no record."""
    study, fine_tune = plan.study(recipe), plan.fine_tune_study(recipe)
    trains, evals = load_results(study)
    if fine_tune is not None:
        tuned_trains, tuned_evals = load_results(fine_tune)
        trains, evals = [*trains, *tuned_trains], [*evals, *tuned_evals]
    return {
        "teacher": teacher_seconds(_teacher_card(recipe)),
        "students": sum(float(r.get("training_time_s") or 0.0) for r in trains),
        "evaluations": sum(float(r.get("eval_time_s", 0.0)) for r in [*evals, *load_expert_results(study)]),
    }


def teacher_seconds(card: Optional[Dict[str, Any]], limit: int = 16) -> float:
    """A teacher's training time from nothing: its card's, plus, for a teacher trained on from
    another's weights (``init_from``), that teacher's, and so on down the chain (the earlier
    teachers stay in the repository; a rebuild from nothing trains them all). At most ``limit``
    cards are read, so that cards naming each other cannot loop."""
    total = 0.0
    while card is not None and limit > 0:
        total += float(card.get("training_time_s", 0.0))
        start = card.get("init_from")
        try:
            card = read_json(Path(start) / "card.json") if start else None
        except (FileNotFoundError, ValueError):
            card = None
        limit -= 1
    return total


def rebuild_estimate(times: Dict[str, Dict[str, float]], workers: int) -> float:
    """A whole rebuild's wall time (s) on ``workers`` workers from the families' recorded job times:
    the teachers run first, each on its own worker (one worker: one after the other), then the
    students and evaluations spread over all workers. An estimate from per-job records, which on
    a shared machine carry its load, not a measured end-to-end rebuild."""
    teachers = sorted((t["teacher"] for t in times.values()), reverse=True)
    lanes = [0.0] * max(1, workers)
    for seconds in teachers:  # longest first onto the least loaded worker
        lanes[lanes.index(min(lanes))] += seconds
    rest = sum(t["students"] + t["evaluations"] for t in times.values())
    return max(lanes) + rest / max(1, workers)


def write_summary(plan: ZooPlan, path: Path) -> Path:
    """Write the summary of every family that has results (not only the plan's: rebuilds of some
    families keep the others' tables), with every model studied; returns its path."""
    plan = replace(plan, recipes={**RECIPES, **plan.recipes}, models=tuple(dict.fromkeys([*plan.models, *STUDY_MODELS])))
    out = ["# The zoo: teachers, students and the timing study, per family", "",
           "Written by `python -m cfc_control.zoo` (see the README's \"The zoo\"). Each table: the teacher "
           "(full state, over the evaluation episodes) and every model of the family's study (positions only, "
           "DAgger from the teacher under the mixture of Irregular timing and steady periods, 0.5x-2x unless "
           f"its flags say otherwise; mean ± std over seeds {', '.join(map(str, plan.seeds))} of "
           f"{plan.episodes}-episode means), then the share of its "
           "Jitter return each keeps. The full grid (0.25x-4x) is in each family's `results.md`.", ""]
    times: Dict[str, Dict[str, float]] = {}
    for family, recipe in plan.recipes.items():
        if not (plan.study(recipe).out / "jobs").is_dir():
            continue
        times[family] = job_seconds(recipe, plan)
        lines, means = family_table(recipe, plan)
        out += [f"## {family} (`{recipe.task}`)", "", f"Students' flags: `{' '.join(recipe.train_args())}`", ""]
        if recipe.fine_tune:
            out += [f"`cfc{FINE_TUNED_SUFFIX}`: PPO (`--algo ppo`) from each seed's CfC student with the teacher "
                    f"in its loss: `{' '.join(recipe.fine_tune_args())}`.", ""]
        out += [*lines, ""]
        teacher_card = _teacher_card(recipe)
        if teacher_card:
            chain = teacher_seconds(teacher_card)
            own = float(teacher_card.get("training_time_s", 0.0))
            out.append(f"Teacher: `{teacher_card.get('command')}`, trained in {own / 3600:.1f} h here"
                       + (f" ({chain / 3600:.1f} h from nothing, with the teachers it continues)." if chain > own else "."))
        for row, name in (("cfc", "CfC"), (f"cfc{FINE_TUNED_SUFFIX}", f"CfC{FINE_TUNED_SUFFIX}")):
            if row in means and all(t in means[row] for t in ("Jitter", *ROBUSTNESS_TIMINGS)):
                verdict = robustness(means[row], means.get("teacher"))
                parts = [f"{t}: keeps {share_text(s, k, ok)}" + (f" (teacher {k:.0%})" if k is not None else "")
                         + (" ✓" if ok else " ✗") for t, (s, k, ok) in verdict.items()]
                out.append(f"{name} robustness goal (≥ 90% of its Jitter return, or of what the teacher keeps): "
                           + "; ".join(parts) + ".")
        out.append("")
    out += _time_table(times)
    out.append(f"Written {time.strftime('%Y-%m-%d %H:%M %Z')}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(out) + "\n")
    return path


def _time_table(times: Dict[str, Dict[str, float]]) -> List[str]:
    """The job-time section: per family, then the whole-rebuild estimates."""
    if not times:
        return []
    lines = ["## Job time", "",
             "As each job recorded it on the machine that ran it (here: 2 cores, shared with other jobs), in hours.", "",
             "| family | teacher | students' training | evaluations | total |", "|---|---:|---:|---:|---:|"]
    for family, t in times.items():
        lines.append(f"| {family} | {t['teacher'] / 3600:.2f} | {t['students'] / 3600:.2f} | "
                     f"{t['evaluations'] / 3600:.2f} | {sum(t.values()) / 3600:.2f} |")
    estimates = ", ".join(f"{n} worker{'s' if n > 1 else ''} {rebuild_estimate(times, n) / 3600:.1f} h" for n in (1, 2, 4, 8))
    lines += ["", f"A rebuild of these families from nothing, estimated from these records (teachers first, one "
                  f"per worker, then students and evaluations over all workers): {estimates}.", ""]
    return lines


def _teacher_card(recipe: FamilyRecipe) -> Optional[Dict[str, Any]]:
    if recipe.teacher is None:
        return None
    try:
        return read_json(Path(recipe.teacher.expert_dir) / "card.json")
    except (FileNotFoundError, ValueError):
        return None
