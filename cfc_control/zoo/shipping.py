"""Ship a family's students: the CfC and NCP runs of its timing study, one seed each, as policy
directories under ``policies/`` whose cards record the study's evaluations.

Which seed ships is a rule, not a choice: the seed whose mean return under Jitter is the median
of the study's seeds (the lowest such seed on a tie), so the shipped policy is the typical one of
its recipe, not the luckiest. Its card gets the evaluations the study made of it under Fixed,
Jitter, Irregular and steady 0.5x and 2x periods (the same episodes ``python -m cfc_control.eval
DIR --card`` replays), the other seeds' Jitter returns and the teacher it learned from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List

from cfc_control.episodes.evaluation import EvalResult, card_entry
from cfc_control.files import MANIFEST, atomic_directory, atomic_write_text, manifest_text
from cfc_control.study import load_results
from cfc_control.study.jobs import StudyPlan
from cfc_control.zoo.recipes import CARD_TIMINGS, FINE_TUNED_MODELS, SHIPPED_MODELS, FamilyRecipe

SELECTION_RULE = "the seed whose mean return under Jitter is the median of the study's seeds"


def median_seed(jitter_means: Dict[int, float]) -> int:
    """The seed with the median mean (the lower median for an even count; lowest seed on ties)."""
    ranked = sorted(jitter_means, key=lambda s: (jitter_means[s], s))
    return ranked[(len(ranked) - 1) // 2]


def card_evaluation(records: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The card's evaluation section (:func:`~cfc_control.episodes.evaluation.card_entry`) from the
    study's evaluation records of one policy (by the study's timing name), keyed by the card's
    timing names."""
    return card_entry({name: EvalResult(task="", timing=r["timing_spec"], episodes=r["episodes"], seed=r["eval_seed"],
                                        mean=r["mean"], std=r["std"], returns=r["returns"], lengths=r["lengths"])
                       for name, r in ((name, records[t]) for name, t in CARD_TIMINGS.items())})


def ship_students(recipe: FamilyRecipe, study: StudyPlan, policies: Path,
                  log: Callable[[str], None] = print, runs_root: Path = Path("runs/zoo"),
                  fine_tuned: bool = False) -> List[Path]:
    """Write ``policies/<model>-dagger-<task>`` (``fine_tuned``: ``<model>-dagger-ppo-<task>``
    from the fine-tune's study) for each shipped model the study has finished (every seed trained
    and evaluated under the card's timings); returns the directories written."""
    trains, evals = load_results(study)
    written = []
    for model in (m for m in (FINE_TUNED_MODELS if fine_tuned else SHIPPED_MODELS) if m in study.models):
        chosen = _choose(study, model, trains, evals)
        if isinstance(chosen, str):
            log(f"  {recipe.family} {model}{' fine-tuned' if fine_tuned else ''}: not shipped yet: {chosen}")
            continue
        train, records, jitter = chosen
        target = Path(policies) / recipe.shipped_name(model, fine_tuned)
        _write(target, Path(train["run_dir"]) / "policy", recipe, records, jitter, train["seed"], runs_root)
        written.append(target)
        ev = records["Jitter"]
        log(f"  shipped {target} (seed {train['seed']}): Jitter {ev['mean']:.1f} ± {ev['std']:.1f}")
    return written


def _choose(study: StudyPlan, model: str, trains: List[Dict[str, Any]], evals: List[Dict[str, Any]]):
    """(training record, its evaluations by timing, Jitter means by seed), or why not yet."""
    runs = {r["seed"]: r for r in trains if r["model"] == model}
    missing = [s for s in study.seeds if s not in runs]
    if missing:
        return f"seeds {missing} not trained"
    by_seed: Dict[int, Dict[str, Dict[str, Any]]] = {s: {} for s in study.seeds}
    for e in evals:
        if e["model"] == model and e["seed"] in by_seed:
            by_seed[e["seed"]][e["timing"]] = e
    needed = set(CARD_TIMINGS.values())
    lacking = {s: sorted(needed - set(r)) for s, r in by_seed.items() if not needed <= set(r)}
    if lacking:
        return f"evaluations missing: {lacking}"
    jitter = {s: by_seed[s]["Jitter"]["mean"] for s in study.seeds}
    seed = median_seed(jitter)
    return runs[seed], by_seed[seed], jitter


def _write(target: Path, source: Path, recipe: FamilyRecipe, records: Dict[str, Dict[str, Any]],
           jitter: Dict[int, float], seed: int, runs_root: Path) -> None:
    card = json.loads((source / "card.json").read_text())
    # Paths from the repository's root, not this machine's: the command of a run made before studies
    # recorded relative paths, and the student a fine-tune started from (a study passes it absolute).
    for key in ("command", "init_from"):
        if key in card:
            card[key] = str(card[key]).replace(str(runs_root.resolve()), str(runs_root))
    card["evaluation"] = card_evaluation(records)
    card["teacher"] = recipe.expert
    card["selection"] = {"rule": SELECTION_RULE, "seed": seed,
                         "jitter_mean_by_seed": {str(s): round(m, 3) for s, m in sorted(jitter.items())}}
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as tmp:
        for name in ("config.json", "model.safetensors"):
            shutil.copyfile(source / name, tmp / name)
        atomic_write_text(tmp / "card.json", json.dumps(card, indent=2) + "\n")
        atomic_write_text(tmp / MANIFEST, manifest_text(tmp, ["config.json", "model.safetensors", "card.json"]))

