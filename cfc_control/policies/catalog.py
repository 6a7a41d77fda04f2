"""The shipped policies at a glance: one markdown table built from their cards.

    python -m cfc_control.policies            # the table for ./policies
    python -m cfc_control.policies DIR --json

Every number comes from a card (written by the training command the card names, evaluated on
the evaluation seeds); ``python -m cfc_control.eval DIR --card`` re-evaluates one policy and
compares it with its card.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Union

from cfc_control.files import read_json
from cfc_control.policies.directory import read_card

CARD_TIMINGS = ("Fixed", "Jitter", "Irregular")
# Steady half and double periods: recorded by the students the zoo ships under these names, by a
# training command as the spec (``--eval-timings fixed:0.004`` on a 0.008 s task); columns shown
# when any card has them.
STEADY_TIMINGS = ("0.5x", "2x")
STEADY_FACTORS = {"0.5x": 0.5, "2x": 2.0}


def policy_dirs(root: Union[str, "os.PathLike[str]"]) -> List[Path]:
    """The policy directories directly under ``root`` (those with a config.json and a card),
    sorted by name. FileNotFoundError when ``root`` is not a directory."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file() and (p / "card.json").is_file())


def _teacher_view(card: Dict[str, Any]) -> str:
    """What a teacher saw, as the catalog's task column says it."""
    obs = card.get("obs", "Full")
    return "full state" if obs == "Full" else f"{obs} state"


def catalog(root: Union[str, "os.PathLike[str]"]) -> List[Dict[str, Any]]:
    """One row per shipped policy (or teacher, for ``policies/experts``): name, task, algorithm,
    model, parameters, size on disk, training budget and wall time, run seed, and each card
    timing's (mean, std, episodes)."""
    rows = []
    for d in policy_dirs(root):
        card = read_card(d)
        teacher = card.get("kind") == "sb3-expert"  # a teacher's card: its timings under "timings"
        evaluation = (card.get("timings") if teacher else card.get("evaluation")) or {}
        rows.append({
            "name": d.name,
            "task": (f"{card.get('env_id')} ({_teacher_view(card)})" if teacher
                     else str(card.get("task", "")).split("/")[-1].removesuffix("-v0")),
            "algorithm": card.get("algorithm"),
            "policy": "mlp (SB3)" if teacher else card.get("policy"),
            "parameters": card.get("parameters"),
            "bytes": sum(f.stat().st_size for f in d.iterdir() if f.is_file()),
            "budget": _budget(card),
            "training_time_s": card.get("training_time_s"),
            "seed": card.get("seed") if teacher else (card.get("seeds") or {}).get("run"),
            "evaluation": {t: (e["mean"], e["std"], e["episodes"])
                           for t, e in _by_table_timing(evaluation, _nominal_dt(d)).items()},
        })
    return rows


def _nominal_dt(directory: Path) -> Any:
    """The policy's nominal period (s) from its config.json; None when it records none."""
    policy = read_json(directory / "config.json", "no config.json").get("policy")
    time = policy.get("time") if isinstance(policy, dict) else None
    return time.get("nominal_dt") if isinstance(time, dict) else None


def _by_table_timing(evaluation: Dict[str, Any], nominal_dt: Any) -> Dict[str, Any]:
    """A card's evaluation entries under the table's column names: the entries named so, and for
    a steady column a card lacks, its entry whose spec is that steady period (``fixed:0.004`` is
    0.5x of 0.008 s)."""
    found = {t: evaluation[t] for t in (*CARD_TIMINGS, *STEADY_TIMINGS) if t in evaluation}
    if not isinstance(nominal_dt, (int, float)) or nominal_dt <= 0:
        return found
    for name, factor in STEADY_FACTORS.items():
        for entry in evaluation.values():
            period = _steady_period(entry.get("timing_spec"))
            if name not in found and period is not None and math.isclose(period, factor * nominal_dt, rel_tol=1e-9):
                found[name] = entry
    return found


def _steady_period(spec: Any) -> Any:
    """The period of a ``fixed:P`` spec, else None."""
    head, sep, value = str(spec).partition(":")
    if head.strip() != "fixed" or not sep:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _start_name(start: Any) -> str:
    """The name of the policy a training started from: a run's ``<run>/policy`` is named by its run."""
    path = Path(str(start))
    return path.parent.name if path.name == "policy" and path.parent.name else path.name


def _budget(card: Dict[str, Any]) -> str:
    if card.get("steps"):
        budget = f"{card['steps'] / 1e6:.2g}M env steps"
        start = card.get("init_from")  # trained on from another policy's weights (a teacher, a student)
        return f"{budget} from `{_start_name(start)}`" if start else budget
    episodes = (card.get("data") or {}).get("episodes")
    return f"{episodes} demo episodes" if episodes else ""


def markdown_table(rows: List[Dict[str, Any]]) -> str:
    """The catalog as a markdown table (returns as mean ± std over the card's episodes)."""
    timings = [*CARD_TIMINGS, *(t for t in STEADY_TIMINGS if any(t in r["evaluation"] for r in rows))]
    head = ["policy", "task", "algorithm", "model", "parameters", "size", "training", "time", "seed", *timings]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 5 + "---:|" + "---|" + "---:|" + "---|" + "---:|" * len(timings)]
    for r in rows:
        cells = [f"`{r['name']}`", r["task"], r["algorithm"], r["policy"], f"{r['parameters']:,}" if r["parameters"] else "",
                 f"{r['bytes'] / 1024:.0f} KB", r["budget"], _duration(r.get("training_time_s")), str(r["seed"])]
        for t in timings:
            m = r["evaluation"].get(t)
            cells.append(format_mean_std(m[0], m[1]) if m else "")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def format_mean_std(mean: float, std: float) -> str:
    """mean ± std with the mean's precision: whole numbers from 100 up, three significant digits
    below (Reacher's costs are a few units)."""
    decimals = 0 if abs(mean) >= 100 or mean == 0 else max(0, 2 - int(math.floor(math.log10(abs(mean)))))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _duration(seconds: Any) -> str:
    """Training wall time as the table shows it: seconds, minutes or hours."""
    if not isinstance(seconds, (int, float)):
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


# Evaluation is deterministic (the same policy and seeds give the same episodes), so a re-run
# must reproduce the card: within the card's rounding to 3 decimals and 1e-6 of the value for float
# summation order. A looser bound (the card's std, say) would pass a re-run of a changed policy.
CARD_RELATIVE_TOLERANCE = 1e-6
CARD_ROUNDING = 5e-4
# Except on another CPU for a rounding-sensitive task (locomotion: contacts grow a last-bit
# difference of a float kernel into other episodes; seen 2026-12-01, HalfCheetah 7386 against its
# card's 7321 with the recording's very packages). There the card holds to its sampling error:
# the means within three standard errors of the card's episodes.
CARD_STANDARD_ERRORS = 3.0


class CardCheck(NamedTuple):
    """How a re-evaluation compares with a card's entry: ``verdict`` is "reproduced" (to the
    card's rounding), "within sampling error" (a rounding-sensitive task only) or "outside";
    ``diff`` is the new mean minus the card's."""

    verdict: str
    diff: float

    @property
    def ok(self) -> bool:
        return self.verdict != "outside"


def compare_with_card(card_entry: Dict[str, Any], mean: float, std: float,
                      rounding_sensitive: bool = False) -> CardCheck:
    """Compare a new evaluation (mean, std) with the card's entry (mean, std, episodes).

    Reproduced: mean and std each within CARD_ROUNDING + CARD_RELATIVE_TOLERANCE * |value|. For a
    ``rounding_sensitive`` task, failing that, within sampling error: |mean - card mean| at most
    CARD_STANDARD_ERRORS * max(std, card std) / sqrt(episodes).
    """
    def same(new: float, recorded: float) -> bool:
        return abs(new - recorded) <= CARD_ROUNDING + CARD_RELATIVE_TOLERANCE * abs(recorded)

    recorded_mean, recorded_std = float(card_entry["mean"]), float(card_entry["std"])
    diff = float(mean) - recorded_mean
    if same(float(mean), recorded_mean) and same(float(std), recorded_std):
        return CardCheck("reproduced", diff)
    if rounding_sensitive:
        error = max(float(std), recorded_std) / math.sqrt(int(card_entry["episodes"]))
        if abs(diff) <= CARD_STANDARD_ERRORS * error:
            return CardCheck("within sampling error", diff)
    return CardCheck("outside", diff)
