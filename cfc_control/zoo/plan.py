"""One zoo rebuild's plan: which families, which stages, and where everything goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

from cfc_control.study import make_plan
from cfc_control.study.jobs import StudyPlan
from cfc_control.zoo.recipes import SEEDS, STUDY_MODELS, STUDY_TIMINGS, FamilyRecipe

STAGES = ("teachers", "students", "ship")


@dataclass
class ZooPlan:
    """What one rebuild covers. Paths are relative to the working directory (the repository's
    root), as in the commands the cards record: teachers go to ``policies/experts/`` with their
    checkpoints under ``runs/teachers/``, students' runs under ``runs/zoo/``, each family's study
    under ``studies/zoo/<family>/``, shipped students to ``policies/``."""

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
