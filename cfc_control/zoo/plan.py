"""One zoo rebuild's plan: which families, which stages, and where everything goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from cfc_control.study import make_plan
from cfc_control.study.jobs import StudyPlan
from cfc_control.zoo.recipes import FINE_TUNED_MODELS, SEEDS, STUDY_MODELS, STUDY_TIMINGS, FamilyRecipe

STAGES = ("teachers", "students", "fine-tune", "ship")


@dataclass
class ZooPlan:
    """What one rebuild covers. Paths are relative to the working directory (the repository's
    root), as in the commands the cards record: teachers go to ``policies/experts/`` with their
    checkpoints under ``runs/teachers/``, students' runs under ``runs/zoo/``, each family's study
    under ``studies/zoo/<family>/`` (its PPO fine-tune's under ``fine-tune/`` there), shipped
    students to ``policies/``."""

    recipes: Dict[str, FamilyRecipe]
    stages: Tuple[str, ...] = STAGES
    models: Tuple[str, ...] = STUDY_MODELS
    seeds: Tuple[int, ...] = SEEDS
    episodes: int = 20
    studies: Path = Path("studies/zoo")
    runs_root: Path = Path("runs/zoo")
    policies: Path = Path("policies")

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise ValueError(f"stages must be a non-empty subset of {', '.join(STAGES)}, got {list(self.stages)!r}")
        if not self.recipes:
            raise ValueError("no family to build")

    def study(self, recipe: FamilyRecipe) -> StudyPlan:
        return make_plan(recipe.task, algo="dagger", models=self.models, seeds=self.seeds, timings=STUDY_TIMINGS,
                         episodes=self.episodes, out=self.studies / recipe.family, runs_root=self.runs_root,
                         train_args=recipe.train_args())

    def fine_tune_study(self, recipe: FamilyRecipe) -> Optional[StudyPlan]:
        """The PPO fine-tune of the family's students, each run starting from the student of the
        same model and seed; None when the recipe has no such stage or the plan studies none of
        :data:`FINE_TUNED_MODELS`. Its evaluations are the students' grid; the teacher's row is the
        students' study's."""
        models = [m for m in FINE_TUNED_MODELS if m in self.models]
        if not recipe.fine_tune or not models:
            return None
        return make_plan(recipe.task, algo="ppo", models=models, seeds=self.seeds, timings=STUDY_TIMINGS,
                         episodes=self.episodes, out=self.studies / recipe.family / "fine-tune",
                         runs_root=self.runs_root, train_args=recipe.fine_tune_args(), expert=None,
                         start_from=self.study(recipe))
