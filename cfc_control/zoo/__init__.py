"""The zoo: for every task family a teacher, CfC and NCP students that hold when the control
period changes, their cards, and the timing study that compares them with LSTM, GRU and MLP.

    python -m cfc_control.zoo                                # everything, resuming what is done
    python -m cfc_control.zoo --families InvertedPendulum --stages students,ship

Library use: :class:`~cfc_control.zoo.plan.ZooPlan` of :data:`~cfc_control.zoo.recipes.RECIPES`,
then :func:`~cfc_control.zoo.rebuild.build_zoo` on a backend of :func:`cfc_control.study.make_backend`.
"""

from cfc_control.zoo.rebuild import ZooOutcome, build_zoo, describe
from cfc_control.zoo.plan import STAGES, ZooPlan
from cfc_control.zoo.recipes import RECIPES, FamilyRecipe, recipes_for

__all__ = ["RECIPES", "STAGES", "FamilyRecipe", "ZooOutcome", "ZooPlan", "build_zoo", "describe", "recipes_for"]
