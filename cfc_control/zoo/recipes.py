"""What the zoo builds for each task family: the teacher, the students' recipe and what ships.

Every family follows one recipe. A *teacher* acts on the full simulator state with the elapsed
period as an input and is trained under Irregular timing with lost packets (an SB3 agent), or needs
no training (the gain-scheduled LQR of the pendulums, Reacher's planner on its arm's model).
*Students* see positions only and learn from it by DAgger under a per-episode mixture of
Irregular timing and steady periods from half to twice the nominal one (``Irregular|steady:LO,HI``;
0.4x-2.5x for the walkers and Reacher), so that they meet runs of long periods as well as
ever-changing ones. The timing study of each family trains every model of :data:`STUDY_MODELS` by
that recipe on seeds 0-2; the CfC and NCP students ship. Where the students fall short (the
walkers), PPO with the teacher in its loss continues each CfC student, and the result ships too.

    recipe = RECIPES["Walker2d"]
    recipe.task, recipe.train_args()   # ('Walker2d-Pos-Irregular', ('--expert', ..., '--timing', ...))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from cfc_control.tasks.specs import task_families
from cfc_control.training.teachers import TeacherConfig

SHIPPED_MODELS = ("cfc", "ncp")
FINE_TUNED_MODELS = ("cfc",)  # the students PPO fine-tunes, where the family's recipe has that stage
# LSTM, GRU and MLP take Δt as an input too; cfc-blind is the CfC with its time input held at the
# nominal period (the ablation that shows what the explicit time input is worth).
STUDY_MODELS = ("cfc", "ncp", "lstm", "gru", "mlp", "cfc-blind")
SEEDS = (0, 1, 2)
# The grid: fixed multiples of the nominal period, Jitter and Irregular.
STUDY_TIMINGS = ("0.25x", "0.5x", "1x", "2x", "4x", "Jitter", "Irregular")
# What a shipped student's card records: the presets, and steady half and double periods.
CARD_TIMINGS = {"Fixed": "1x", "Jitter": "Jitter", "Irregular": "Irregular", "0.5x": "0.5x", "2x": "2x"}
STEADY_RANGE = (0.5, 2.0)  # the steady periods of the students' training mixture, x nominal (default)
WIDE_STEADY_RANGE = (0.4, 2.5)  # walkers, Reacher: 0.5x and 2x inside the mixture, not at its edge (see Walker2d)
TEACHER_TIMING = "Irregular+drop:0.05"

# PPO from a DAgger student with the teacher in its loss (README, "Reinforcement learning"): little
# exploration, a small step, the critic fitted first (studies/ppo-fine-tune-walker2d.md); 1M steps.
_FINE_TUNE = ("--hp", "log_std_init=-2.5", "--hp", "learning_rate=5e-5", "--hp", "critic_warmup=10",
              "--total-steps", "1000000")

# Locomotion, reaching and the double pendulum need more data than the single pendulum: 40
# demonstrations, then 6 rounds of 10 student-driven episodes (100 episodes labelled in all).
_MORE_DATA = ("--episodes", "40", "--iterations", "6")


@dataclass(frozen=True)
class FamilyRecipe:
    """One family's row of the zoo. ``teacher``: the training of an SB3 teacher (None: the expert
    ``expert`` needs none); ``expert``: what students learn from (the teacher's directory);
    ``student_flags``: training flags added to the common recipe; ``steady_range``: the steady
    periods of the students' mixture, as multiples of the nominal period; ``fine_tune``: the flags
    of PPO (``--algo ppo``, beside the expert and the timing) that continues each student of
    :data:`FINE_TUNED_MODELS` with the teacher in its loss (empty: no such stage);
    ``fine_tune_steady_range``: the steady periods of the fine-tune's mixture (None: the students')."""

    family: str
    expert: str
    teacher: Optional[TeacherConfig] = None
    student_flags: Tuple[str, ...] = ()
    steady_range: Tuple[float, float] = STEADY_RANGE
    fine_tune: Tuple[str, ...] = ()
    fine_tune_steady_range: Optional[Tuple[float, float]] = None

    @property
    def task(self) -> str:
        """The students' task: positions only, Irregular timing."""
        return f"{self.family}-Pos-Irregular"

    @property
    def nominal_dt(self) -> float:
        return task_families()[self.family].nominal_dt

    def training_timing(self, steady_range: Optional[Tuple[float, float]] = None) -> str:
        """The students' period distribution: Irregular, or a whole episode at one steady period
        (from ``steady_range`` x nominal; None: the recipe's)."""
        lo, hi = (f * self.nominal_dt for f in (steady_range or self.steady_range))
        return f"Irregular|steady:{lo:.12g},{hi:.12g}"

    def train_args(self) -> Tuple[str, ...]:
        """Flags of ``python -m cfc_control.train`` (beside env, algo, policy, seed, out) for every
        student of the family; the study names its run directories by them."""
        return ("--expert", self.expert, "--timing", self.training_timing(), *self.student_flags)

    def fine_tune_args(self) -> Tuple[str, ...]:
        """Flags of the PPO fine-tune of each student: the students' expert, their timing with the
        fine-tune's steady periods, then ``fine_tune`` (empty when the family has no such stage)."""
        if not self.fine_tune:
            return ()
        return ("--expert", self.expert, "--timing", self.training_timing(self.fine_tune_steady_range),
                *self.fine_tune)

    def shipped_name(self, model: str, fine_tuned: bool = False) -> str:
        """The shipped policy directory's name, e.g. ``cfc-dagger-walker2d-pos-irregular``, or
        ``cfc-dagger-ppo-walker2d-pos-irregular`` for the student fine-tuned by PPO."""
        return f"{model}-dagger-{'ppo-' if fine_tuned else ''}{self.task.lower()}"


def _sb3_teacher(family: str, algo: str, steps: int) -> Tuple[str, TeacherConfig]:
    out = f"policies/experts/{family.lower()}-{algo}-teacher"
    return out, TeacherConfig(env=family, algo=algo, steps=steps, timing=TEACHER_TIMING, dt_input=True, out=out)


def _family(family: str, algo: str, steps: int, flags: Tuple[str, ...] = _MORE_DATA,
            steady_range: Tuple[float, float] = STEADY_RANGE, teacher_coef: Optional[float] = None,
            fine_tune_steady_range: Optional[Tuple[float, float]] = None,
            fine_tune_flags: Tuple[str, ...] = ()) -> FamilyRecipe:
    """``teacher_coef``: the weight of the teacher's term in the PPO fine-tune (None: none);
    ``fine_tune_flags``: the family's own flags added to the fine-tune's."""
    out, config = _sb3_teacher(family, algo, steps)
    fine_tune = () if teacher_coef is None else ("--hp", f"teacher_coef={teacher_coef:g}", *_FINE_TUNE,
                                                 *fine_tune_flags)
    return FamilyRecipe(family, expert=out, teacher=config, student_flags=flags, steady_range=steady_range,
                        fine_tune=fine_tune, fine_tune_steady_range=fine_tune_steady_range)


# PPO with the zoo's tuned settings where they learn under irregular timing in a session or two
# here; SAC for Hopper, where PPO under Irregular timing settles on standing still (988 at 2M steps),
# and for HalfCheetah, where PPO reached 3217 under Jitter at 2M steps (the SAC expert: 6626).
# SAC stops at 300k steps, not rl-zoo3's 1M: at 300k its teachers score 3149 (Hopper) and 7643
# (HalfCheetah) under Jitter (their cards), well above the students' anchors (2410, 5819), and
# each further 100k costs ~40 min of a core here. Their students train on the Walker2d range of
# steady periods (0.4x-2.5x), where 0.5x is not the edge of what they have seen.
RECIPES: Dict[str, FamilyRecipe] = {
    "InvertedPendulum": FamilyRecipe("InvertedPendulum", expert="lqr-scheduled"),
    # More data for the double pendulum: with the defaults its students kept 74% of what the
    # teacher keeps at a steady 2x period (README, "Pendulum students").
    "InvertedDoublePendulum": FamilyRecipe("InvertedDoublePendulum", expert="lqr-scheduled", student_flags=_MORE_DATA),
    "HalfCheetah": _family("HalfCheetah", "sac", 300_000, steady_range=WIDE_STEADY_RANGE),
    # The walkers' students fall short of their anchors under Irregular timing or at 0.5x: PPO with
    # the teacher in its loss continues each CfC student (Hopper: coefficient 50 > 20, Walker2d:
    # 20 > 5 > 1; studies/hopper-students.md, studies/ppo-fine-tune-walker2d.md).
    # Hopper's students also learn to estimate the full observation (--aux-state 1): without it the
    # CfC's state held the velocities it must infer poorly (a linear probe's R² 0.45-0.86, the forward
    # speed 0.68; with it 0.90-0.97 and 0.96: tools/state_probe.py, seed 0, Irregular) and it kept 64%
    # of its Jitter return under Irregular timing (seeds 0-2: 1379 against 2151); with it 93% (1913
    # against 2058; studies/hopper-students.md).
    # Each second of demonstration weighed alike (--period-weight 1; the steps of the short periods
    # outweighed the long ones six to one) and a fine-tune whose steady periods are 1x-2.5x: over
    # seeds 0-4 the fine-tunes keep 98 / 95 / 69% of their Jitter return (2382 ± 300) at Irregular,
    # 0.5x and 2x; the students and fine-tune before kept 93 / 101 / 54% and 94 / 115 / 55%
    # (studies/hopper-students.md, last section).
    "Hopper": _family("Hopper", "sac", 300_000, flags=(*_MORE_DATA, "--aux-state", "1", "--period-weight", "1"),
                      steady_range=WIDE_STEADY_RANGE, teacher_coef=50, fine_tune_steady_range=(1.0, 2.5)),
    # Steady periods from 0.4x to 2.5x: with 0.5x-2x every Walker2d student fell after a
    # seed-specific number of steps at a steady 0.5x period (CfC 44% of its Jitter return over
    # seeds 0-2, the LSTM of seed 0 45%), where 0.5x is the edge of what it was trained on; with
    # the range widened the CfC of seed 0 kept 82% at 0.5x (before: 55%).
    # The state estimate at a third of Hopper's weight: with --aux-state 1 two seeds of three fell at
    # 0.5x (46% kept); with 0.3 the CfC students gain at every timing (Irregular 77 -> 88%, 0.5x 71 ->
    # 75%; studies/walker2d-steady-periods.md).
    # The short periods' steps weighed up (--period-weight -1): the steadiest students (seeds 0-2:
    # 3890 ± 16 under Jitter, keeping 90 / 80 / 26% against 88 / 75 / 23% with steps alike). Their
    # fine-tune's return at a steady 0.5x period flips between ~1000 and ~3800 from one validation to
    # the next (every 10 iterations), so the last iterate is a draw: the fine-tune keeps its best
    # validated iterate (--val-every), and 32 envs of 64 steps a rollout (the same 2048 steps, four
    # times the episodes and their periods): seeds 0-2 keep 92 / 95 / 32% at 3870 under Jitter, the
    # last iterates of 8 envs 90 / 65 / 28% (studies/ppo-fine-tune-walker2d.md, last section).
    "Walker2d": _family("Walker2d", "ppo", 2_000_000,
                        flags=(*_MORE_DATA, "--aux-state", "0.3", "--period-weight", "-1"),
                        steady_range=WIDE_STEADY_RANGE, teacher_coef=20,
                        fine_tune_flags=("--n-envs", "32", "--n-steps", "64", "--val-every", "10",
                                         "--val-episodes", "10")),
    "Swimmer": _family("Swimmer", "ppo", 1_000_000),
    # Reacher's expert plans on the arm's own model (experts/mpc.py): it needs no training and
    # scores -3.33 under Jitter over 50 episodes where the SAC teacher, trained 800k steps under
    # Irregular timing, scored -3.59; with that teacher the CfC students stayed at -3.86 ± 0.09
    # (studies/reacher-students.md). Ten times the demonstrations of the other families (a Reacher
    # episode is 50 steps: 40 of them hold 2,000 samples) and the state estimate: with 40 episodes
    # the SAC teacher's CfC students stayed at -4.70 ± 0.12; with 400 and --aux-state 1 they
    # reached that teacher (-4.14 ± 0.04 against -4.10, seeds 0-2). The walkers' wider steady periods:
    # with 0.5x-2x the planner's CfC students kept 87% of their Jitter return at a steady 2x (seeds
    # 0-2, -4.21 ± 0.08 against -3.66 ± 0.05), with 0.4x-2.5x 95% (-3.85 ± 0.16 against -3.65 ± 0.02).
    "Reacher": FamilyRecipe("Reacher", expert="mpc", steady_range=WIDE_STEADY_RANGE,
                            student_flags=("--episodes", "400", "--iterations", "6", "--aux-state", "1")),
}


def recipes_for(names: Optional[str] = None) -> Dict[str, FamilyRecipe]:
    """The recipes of ``names`` (comma-separated families, case-insensitive; None: all). Raises
    ValueError naming an unknown family."""
    if not names:
        return dict(RECIPES)
    by_lower = {k.lower(): k for k in RECIPES}
    chosen: Dict[str, FamilyRecipe] = {}
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name.lower() not in by_lower:
            raise ValueError(f"unknown family {name!r}: choose from {', '.join(RECIPES)}")
        chosen[by_lower[name.lower()]] = RECIPES[by_lower[name.lower()]]
    if not chosen:
        raise ValueError(f"--families is empty: {names!r}")
    return chosen
