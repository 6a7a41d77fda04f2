"""Recurrent PPO for any recurrent model of cfc_control (CfC, NCP, LTC, LSTM, GRU, MLP) on
stable-baselines3's machinery: :class:`SequencePPO`, its :class:`ActorCritic`, the sequence
buffer, and the hyperparameters per task (:mod:`.hyperparams`)."""

from cfc_control.training.ppo.algorithm import SequencePPO
from cfc_control.training.ppo.buffer import RecurrentSequenceBuffer, SequenceBatch, cut_sequences
from cfc_control.training.ppo.hyperparams import PPOConfig, config_for
from cfc_control.training.ppo.actor_critic import ActorCritic
from cfc_control.training.ppo.vec_env import make_task_vec_env

__all__ = [
    "ActorCritic",
    "PPOConfig",
    "RecurrentSequenceBuffer",
    "SequenceBatch",
    "SequencePPO",
    "config_for",
    "cut_sequences",
    "make_task_vec_env",
]
