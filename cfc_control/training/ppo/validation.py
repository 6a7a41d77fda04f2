"""Validation during PPO: the actor scored every few iterations, the best one kept.

PPO's last iterate is not its best: on the walkers a fine-tune that lifts the return it trains on
can lose a timing it was good at (a steady 0.5x period), and which iterate is best differs from
seed to seed. As stable-baselines3's ``EvalCallback`` keeps its best model, a run with
``--val-every K`` scores a copy of the actor every K iterations (and once before the first, so a
fine-tune is measured against the policy it started from): deterministic actions, ``episodes``
episodes under each of ``timings``, reset seeds of their own (:data:`VALIDATION_SEED` + episode,
far from the evaluation's and the demonstrations'), the score the mean of the timings' mean
returns. The run's policy is then the copy with the best score; the last iterate stays in the
final checkpoint.

Validation draws from no global generator and leaves the actor it copies untouched, so a run
trains the same weights with or without it; the best copy and the history ride in every
checkpoint (:meth:`BestActor.state`), so a resumed run selects as one run straight through.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from cfc_control.episodes.evaluation import evaluate
from cfc_control.policies import RecurrentPolicy
from cfc_control.policies.normalization import ObsNormalizer

VALIDATION_SEED = 1_500_000_000
_PREFIX = "validation.best."


@dataclass
class ValidationScore:
    """One validation: the iteration and env steps it came after, the score and each timing's mean."""

    iteration: int
    steps: int
    score: float
    returns: Dict[str, float]


class BestActor:
    """Scores copies of the actor (:meth:`consider`) and keeps the best (:attr:`best`)."""

    def __init__(self, task: str, timings: Sequence[str], episodes: int, obs: Optional[str] = None) -> None:
        if episodes <= 0:
            raise ValueError(f"validation episodes must be positive, got {episodes}")
        if not timings:
            raise ValueError("validation needs at least one timing")
        self.task, self.timings, self.episodes, self.obs = task, tuple(timings), int(episodes), obs
        self.history: List[ValidationScore] = []
        self.best: Optional[RecurrentPolicy] = None
        self.best_score: Optional[ValidationScore] = None

    def consider(self, actor: RecurrentPolicy, iteration: int, steps: int) -> ValidationScore:
        """Score a copy of ``actor``; keep it if it beats every copy before (ties keep the earlier)."""
        candidate = copy.deepcopy(actor)  # in memory only: evaluation switches modes, training goes on
        returns = {t: round(evaluate(candidate, self.task, timing=t, obs=self.obs, episodes=self.episodes,
                                     seed=VALIDATION_SEED).mean, 3) for t in self.timings}
        scored = ValidationScore(int(iteration), int(steps), round(sum(returns.values()) / len(returns), 3), returns)
        self.history.append(scored)
        if self.best_score is None or scored.score > self.best_score.score:
            self.best, self.best_score = candidate, scored
        return scored

    def done_at(self, iteration: int) -> bool:
        return any(v.iteration == iteration for v in self.history)

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
        """(tensors, JSON) of the best copy and the history, for a checkpoint."""
        meta: Dict[str, Any] = {"history": [asdict(v) for v in self.history],
                                "best": None if self.best_score is None else asdict(self.best_score)}
        tensors: Dict[str, torch.Tensor] = {}
        if self.best is not None:
            meta["normalizer"] = self.best.obs_normalizer.to_config()
            tensors = {_PREFIX + k: v.detach().cpu().clone() for k, v in self.best.model.state_dict().items()}
        return tensors, meta

    def restore(self, tensors: Dict[str, torch.Tensor], meta: Dict[str, Any], actor: RecurrentPolicy) -> None:
        """Put :meth:`state` back; ``actor`` (the checkpoint's) gives the copy its structure."""
        self.history = [ValidationScore(**v) for v in meta.get("history", [])]
        self.best = self.best_score = None
        if meta.get("best") is not None:
            best = copy.deepcopy(actor)
            best.model.load_state_dict({k[len(_PREFIX):]: v for k, v in tensors.items() if k.startswith(_PREFIX)})
            best.set_normalizer(ObsNormalizer.from_config(meta["normalizer"], best.n_obs))
            self.best, self.best_score = best, ValidationScore(**meta["best"])

    def card(self, every: int) -> Dict[str, Any]:
        """The card's record: the settings, every score, and the one selected."""
        return {"every_iterations": every, "episodes": self.episodes, "timings": list(self.timings),
                "seed": f"{VALIDATION_SEED} + episode", "score": "mean over the timings of the mean return",
                "selected": None if self.best_score is None else asdict(self.best_score),
                "history": [asdict(v) for v in self.history]}


__all__ = ["BestActor", "VALIDATION_SEED", "ValidationScore"]
