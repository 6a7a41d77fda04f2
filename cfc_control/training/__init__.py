"""Training: demonstrations, behaviour cloning, DAgger and recurrent PPO, as a library.

    from cfc_control.training import ImitationConfig, RunConfig, train
    outcome = train(RunConfig(env="InvertedPendulum-Pos-Irregular", algo="bc",
                              imitation=ImitationConfig(episodes=10)))

``python -m cfc_control.train`` is the command line over :func:`train`; its flags are the
fields of :class:`RunConfig`.
"""

from cfc_control.training.run_config import EvaluationConfig, ImitationConfig, PPOSettings, RunConfig, RunOptions
from cfc_control.training.dagger import DAggerConfig
from cfc_control.training.launch import RunOutcome, check_config, train

__all__ = ["DAggerConfig", "EvaluationConfig", "ImitationConfig", "PPOSettings", "RunConfig", "RunOptions",
           "RunOutcome", "check_config", "train"]
