"""PPO for recurrent policies of any state shape, on stable-baselines3's machinery.

    from cfc_control.training.ppo import SequencePPO
    algo = SequencePPO("InvertedPendulum-Pos-Irregular", "cfc", seed=0)
    algo.learn(100_000, progress_bar=True)
    algo.save_policy("policies/cfc-pendulum")          # the policy directory every runtime loads

What comes from SB3 unchanged (:class:`OnPolicyAlgorithm` / :class:`BaseAlgorithm`): the VecEnv
handling and ``Monitor`` episode statistics, ``VecNormalize`` (reward only, see
:mod:`.vec_env`), seeding, the callback protocol (``on_rollout_start``, ``on_step``...), the logger
(stdout / CSV / TensorBoard, or any ``set_logger``), ``_setup_learn``, learning-rate schedules and
``dump_logs``; ``evaluate_policy`` works on this object or on its ``policy``.

What is rewritten, and why:

* ``_setup_model``: the policy is an :class:`~.actor_critic.ActorCritic` around a
  :class:`~cfc_control.policies.RecurrentPolicy` (the policy directory's object), not an SB3
  ``ActorCriticPolicy``; the buffer is :class:`~.buffer.RecurrentSequenceBuffer`.
* ``collect_rollouts``: carries each network's recurrent state (any shape) through the rollout,
  stores it per step, and bootstraps truncated episodes from the critic's state at their end.
  The structure follows SB3's (and sb3-contrib's) loop step for step; the policy step itself runs
  on torch or on the runtime's numpy kernels (:mod:`.rollout_step`).
* ``train``: PPO's clipped loss over minibatches of whole padded sequences, every term masked
  (sb3-contrib's idea, without its (h, c)-only state handling); one model call per minibatch, with
  the input half of each backbone one matmul over the sequence. With a ``teacher`` (any expert of
  :mod:`cfc_control.experts`, which acts from the full simulator state) and ``teacher_coef`` > 0,
  every rollout step is also labelled with the teacher's action, and the loss adds
  ``teacher_coef`` times the squared distance from the actor's mean action to it: PPO that
  improves on a student while kept near what its teacher would do. With ``aux_state_coef`` > 0
  every step also records the env's full observation (MuJoCo's ``_get_obs``, read before the
  step like the teacher's label) and the actor learns to estimate it (:mod:`.loss`); with
  ``critic_input="full"`` the critic reads it (a privileged critic, :mod:`.actor_critic`).
* ``learn``: SB3's loop, except that the logs are written *after* the update, so each row holds
  the rollout and the update of the same iteration, the observation statistics are updated after
  the update (the update must see the normalisation its rollout used, or the PPO ratio is off),
  and ``on_iteration`` lets a caller checkpoint between iterations.
* ``save``/``load``: SB3's pickle the whole object; here the actor is saved as a policy directory
  (:meth:`save_policy`) and the rest (critic, log-std, optimiser, counters, return statistics) by
  :meth:`save_state`, as safetensors and JSON only.
* The progress bar uses plain tqdm (SB3's needs ``rich``).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.utils import LinearSchedule, explained_variance
from stable_baselines3.common.vec_env import VecEnv

from cfc_control.experts.base import Expert
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput, save_policy
from cfc_control.policies.names import parse_policy_name
from cfc_control.training.ppo.buffer import RecurrentSequenceBuffer
from cfc_control.training.ppo.labels import StepLabels, in_process_envs
from cfc_control.training.ppo.hyperparams import PPOConfig, config_for, model_kwargs_for
from cfc_control.training.ppo.loss import UpdateLog, minibatch_loss
from cfc_control.training.ppo.actor_critic import ActorCritic, shrink_output_layer, zero_time_gate
from cfc_control.training.ppo.vec_env import (StepProgressBar, make_task_vec_env, vec_env_nominal_dt,
                                             vec_env_trained_periods)
from cfc_control.tasks import resolve_env_id
from cfc_control.models.registry import make
from cfc_control.training.ppo.persistence import load_state, save_state
from cfc_control.training.ppo.rollout_step import make_rollout_step

PolicySpec = Union[str, RecurrentPolicy, ActorCritic]


class SequencePPO(OnPolicyAlgorithm):
    """PPO with a recurrent actor and critic trained on whole sequences.

    Args:
        env: a task name (``n_envs`` copies with the Δt channel, reward-normalised per
            ``config``), a Gymnasium env or a VecEnv (observations with Δt / nominal as the last
            channel unless ``dt_channel=False``).
        policy: a model name (``cfc``, ``ncp``, ``ltc``, ``lstm``, ``gru``, ``mlp``... built fresh
            with :data:`~.hyperparams.MODEL_DEFAULTS` and the task family's
            :data:`~.hyperparams.TASK_MODEL_KWARGS`, updated by ``model_kw``), a
            :class:`RecurrentPolicy` to train further (e.g. behaviour-cloned), or a complete
            :class:`ActorCritic`.
        config: hyperparameters (default: :func:`~.hyperparams.config_for` the task).
        seed: seeds torch, numpy and the envs; device: torch device (CPU is the fast one here).
        timing, obs: override the task's timing and observation model (``env`` a task name).
        teacher: an expert (``cfc_control.experts.make_expert``) labelling every rollout step for
            the ``teacher_coef`` term; needs envs in this process (a task name, or a DummyVecEnv).
    """

    policy: ActorCritic
    rollout_buffer: RecurrentSequenceBuffer

    def __init__(self, env: Union[str, gym.Env, VecEnv], policy: PolicySpec = "cfc",
                 config: Optional[PPOConfig] = None, *, model_kw: Optional[Dict[str, Any]] = None,
                 seed: Optional[int] = None, device: Union[str, torch.device] = "cpu",
                 tensorboard_log: Optional[str] = None, verbose: int = 0, dt_channel: bool = True,
                 task: Optional[str] = None, timing: Optional[str] = None, obs: Optional[str] = None,
                 teacher: Optional[Expert] = None) -> None:
        if isinstance(env, str):
            task = resolve_env_id(env)
            config = config or config_for(task, model=_name_of(policy))
            env = make_task_vec_env(task, config.n_envs, normalize_reward=config.normalize_reward,
                                    gamma=config.gamma, timing=timing, obs=obs)
        config = config or config_for(task, model=_name_of(policy))
        if not isinstance(policy, (str, RecurrentPolicy, ActorCritic)):
            raise TypeError(f"policy must be a model name, a RecurrentPolicy or an ActorCritic, got {type(policy).__name__}")
        if (teacher is None) != (config.teacher_coef == 0):
            raise ValueError("teacher_coef > 0 needs a teacher (--expert), and a teacher needs teacher_coef > 0; "
                             f"got teacher_coef={config.teacher_coef} and {'no ' if teacher is None else ''}teacher")
        self.config = config
        self.task = task
        self.teacher = teacher
        self.dt_channel = bool(dt_channel)
        self._policy_spec = policy
        self.model_kw = model_kwargs_for(policy, model_kw, task=task) if isinstance(policy, str) else dict(model_kw or {})
        lr: Any = config.learning_rate
        if config.lr_schedule == "linear":
            # To 0 at the budget and 0 after it (the last rollout ends past a budget that is not a
            # whole number of rollouts, where progress_remaining turns negative).
            lr = LinearSchedule(config.learning_rate, 0.0, 1.0)
        super().__init__(
            policy=ActorCritic, env=env, learning_rate=lr, n_steps=config.n_steps, gamma=config.gamma,
            gae_lambda=config.gae_lambda, ent_coef=config.ent_coef, vf_coef=config.vf_coef,
            max_grad_norm=config.max_grad_norm, use_sde=False, sde_sample_freq=-1,
            tensorboard_log=tensorboard_log, verbose=verbose, seed=seed, device=device,
            _init_setup_model=False, supported_action_spaces=(spaces.Box,))
        if self.n_envs != config.n_envs:  # a given VecEnv decides; record what actually ran
            self.config = config = replace(config, n_envs=self.n_envs)
        self.iteration = 0
        # Discounting per unit of time reads each step's info["dt"] against the task's nominal period.
        self._nominal_dt = vec_env_nominal_dt(self.env) if config.period_discount else None
        self.rollout_time_s = 0.0
        self.update_time_s = 0.0
        # The envs the labels read, found once: labelling runs every rollout step.
        full_state = config.aux_state_coef > 0 or config.critic_input == "full"
        labelled = teacher is not None or full_state
        self.labels = StepLabels(self._env_copies() if labelled else [], teacher, full_state)
        self._setup_model()

    # -- construction -------------------------------------------------------------------------
    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        spec = self._policy_spec
        if isinstance(spec, ActorCritic):
            policy = spec
        else:
            fresh = not isinstance(spec, RecurrentPolicy)
            actor = self._fresh_actor(spec) if fresh else spec
            # A critic "same" as a fresh actor gets the actor's model arguments too; one around a
            # given actor gets its kind and size (ActorCritic.build).
            critic_kw = self.model_kw if fresh and self.config.critic == "same" else None
            critic_normalizer = None
            if self.config.critic_input == "full":
                n_full = self.labels.state_width
                critic_normalizer = (ObsNormalizer(np.zeros(n_full), np.ones(n_full), clip=self.config.obs_clip)
                                     if self.config.normalize_obs else ObsNormalizer.identity(n_full))
            policy = ActorCritic.build(actor, critic=self.config.critic, log_std_init=self.config.log_std_init,
                                       dt_channel=self.dt_channel, critic_kw=critic_kw,
                                       critic_normalizer=critic_normalizer,
                                       noise_period_power=self.config.noise_period_power)
            if self.config.time_gate_init == "zero":
                zero_time_gate(policy.critic)  # a fresh critic; a fresh actor's is zeroed when built
        if policy.privileged != (self.config.critic_input == "full"):
            raise ValueError(f"critic_input={self.config.critic_input!r}, but the given actor-critic's critic "
                             f"{'reads' if policy.privileged else 'does not read'} the full observation")
        policy.noise_period_power = float(self.config.noise_period_power)  # a given ActorCritic's too
        if self.config.aux_state_coef > 0 and policy.state_head is None:
            policy.attach_state_head(self.labels.state_width)
        elif self.config.aux_state_coef == 0:
            policy.state_head = None  # a given ActorCritic's head trains only with aux_state_coef > 0
        width = int(self.observation_space.shape[0])
        if policy.obs_width != width or policy.n_act != int(self.action_space.shape[0]):
            raise ValueError(f"the policy takes {policy.obs_width} observation features and gives {policy.n_act} "
                             f"actions; the env has {width} and {self.action_space.shape[0]}"
                             + (" (the last one the Δt channel)" if self.dt_channel else ""))
        self.policy = policy.to(self.device)
        self.policy.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr_schedule(1.0),
                                                 eps=self.config.adam_eps)
        self._rollout_step = make_rollout_step(self.config.rollout_kernel, self.policy, self.n_envs)
        actor_state, critic_state = self.policy.initial_states(self.n_envs)
        self.rollout_buffer = RecurrentSequenceBuffer(
            self.n_steps, self.observation_space, self.action_space,
            {"actor": actor_state, "critic": critic_state}, device=self.device, gae_lambda=self.gae_lambda,
            gamma=self.gamma, n_envs=self.n_envs, seq_len=self.config.seq_len,
            teacher_labels=self.teacher is not None,
            state_width=self.labels.state_width)
        self._last_states = (actor_state, critic_state)

    def _fresh_actor(self, model_name: str) -> RecurrentPolicy:
        n_obs = int(self.observation_space.shape[0]) - int(self.dt_channel)
        n_act = int(self.action_space.shape[0])
        normalizer = (ObsNormalizer(np.zeros(n_obs), np.ones(n_obs), clip=self.config.obs_clip)
                      if self.config.normalize_obs else ObsNormalizer.identity(n_obs))
        model_kind, blind = parse_policy_name(model_name)
        model = make(model_kind, n_obs, n_act, **self.model_kw)
        shrink_output_layer(model, self.config.actor_output_scale)
        if self.config.time_gate_init == "zero":
            zero_time_gate(model)
        time_input = TimeInput.around(vec_env_nominal_dt(self.env))
        time_input.trained, time_input.blind = vec_env_trained_periods(self.env), blind
        return RecurrentPolicy(model, normalizer, ActionMapping(self.action_space.low, self.action_space.high),
                               time_input, task=self.task, model_name=model_name)

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        if progress_bar:
            given = callback if isinstance(callback, list) else ([] if callback is None else [callback])
            callback = [c if isinstance(c, BaseCallback) else ConvertCallback(c) for c in given] + [StepProgressBar()]
        return super()._init_callback(callback, progress_bar=False)

    # -- rollout --------------------------------------------------------------------------------
    def _env_copies(self) -> List[gym.Env]:
        """The envs of an in-process VecEnv (what a teacher and the state labels read)."""
        return in_process_envs(self.env, "a teacher or the state estimate")

    def _critic_full_array(self, full: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Full observations as the privileged critic's input (float32); None for another critic."""
        if not self.policy.privileged:
            return None
        if full is None:
            raise ValueError("the privileged critic needs the full observation of every state it values; "
                             "the env gave none (its VecEnv must be this project's InProcessVecEnv)")
        return np.asarray(full, dtype=np.float32)

    def _critic_full(self, full: Optional[np.ndarray], row: bool = False) -> Optional[torch.Tensor]:
        """Full observations (n, n_full), or one (n_full,) as a row, as the privileged critic's
        input tensor; None for another critic."""
        full = self._critic_full_array(full)
        return None if full is None else torch.as_tensor(full[None] if row else full, device=self.device)

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: RecurrentSequenceBuffer,
                         n_rollout_steps: int) -> bool:
        """Fill the buffer with ``n_rollout_steps`` steps of every env (see the module docstring)."""
        assert self._last_obs is not None, "no previous observation: call learn()"
        start = time.perf_counter()
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        step = self._rollout_step
        step.start(self.policy, self._last_states)
        n_steps = 0
        dones = self._last_episode_starts
        new_obs = self._last_obs
        while n_steps < n_rollout_steps:
            teacher_actions = self.labels.teacher_actions(self.policy.actor.action_mapping)  # before the step
            full_observations = self.labels.full_observations()
            out = step.act(self._last_obs, self._last_episode_starts, self._critic_full_array(full_observations))
            new_obs, rewards, dones, infos = env.step(out.env_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            durations = self._durations(infos)
            for idx in np.flatnonzero(dones):  # bootstrap episodes cut by the time limit, as SB3 does
                final = infos[idx].get("terminal_observation")
                if final is not None and infos[idx].get("TimeLimit.truncated", False):
                    row = step.critic_row(idx)
                    final_t = torch.as_tensor(np.asarray(final)[None], dtype=torch.float32, device=self.device)
                    final_full = self._critic_full(infos[idx].get("terminal_full_observation"), row=True)
                    discount = self.gamma ** (1.0 if durations is None else float(durations[idx]))
                    rewards[idx] += discount * float(self.policy.value_step(final_t, row, final_full)[0])
            rollout_buffer.add(self._last_obs, out.actions, rewards, self._last_episode_starts,
                               torch.from_numpy(out.values), torch.from_numpy(out.log_probs), states=step.before,
                               teacher_actions=teacher_actions, full_observations=full_observations,
                               durations=durations)
            self._last_obs = new_obs
            self._last_episode_starts = dones
            step.advance()
        self._last_states = step.states()
        last_values = self.policy.value_step(torch.as_tensor(new_obs, dtype=torch.float32, device=self.device),
                                             self._last_states[1], self._critic_full(self.labels.full_observations()),
                                             torch.as_tensor(dones, device=self.device).bool())
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        self.rollout_time_s += time.perf_counter() - start
        return True

    def _durations(self, infos: List[Dict[str, Any]]) -> Optional[np.ndarray]:
        """Each env's last step in nominal periods (its ``info["dt"]``), for GAE discounted per
        unit of time (``period_discount``); None when discounting per step."""
        if self._nominal_dt is None:
            return None
        nominal = self._nominal_dt  # a stock env, without info["dt"], steps at its nominal period
        return np.array([info.get("dt", nominal) for info in infos], dtype=np.float32) / np.float32(nominal)

    # -- update ---------------------------------------------------------------------------------
    def train(self) -> None:
        """n_epochs passes of clipped-PPO minibatch updates over the rollout's sequences."""
        start = time.perf_counter()
        cfg = self.config
        policy = self.policy
        policy.set_training_mode(True)
        self._update_learning_rate(policy.optimizer)
        critic_only = self.iteration <= cfg.critic_warmup
        log = UpdateLog()
        loss = torch.zeros(())
        continue_training = True
        for epoch in range(cfg.n_epochs):
            for batch in self.rollout_buffer.minibatches(cfg.batch_size):
                terms = minibatch_loss(policy, batch, cfg, critic_only=critic_only)
                loss = terms.total
                log.add(terms)
                if cfg.target_kl is not None and terms.approx_kl > 1.5 * cfg.target_kl and not critic_only:
                    continue_training = False
                    break
                policy.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), self.max_grad_norm)
                policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break
        buffer = self.rollout_buffer
        record = self.logger.record
        log.record(record)
        record("train/loss", loss.item())
        record("train/explained_variance", float(explained_variance(buffer.values.flatten(), buffer.returns.flatten())))
        record("train/std", torch.exp(policy.log_std.detach()).mean().item())
        record("train/n_updates", self._n_updates, exclude="tensorboard")
        record("train/clip_range", cfg.clip_range)
        record("train/critic_only", int(critic_only))
        record("train/sequences", int(len(buffer.layout.lengths)) if buffer.layout is not None else 0)
        self.update_time_s += time.perf_counter() - start

    def _update_obs_normalizer(self) -> None:
        """Merge this rollout's observations (Δt channel excluded) into the actor's normaliser,
        and its full observations into a privileged critic's."""
        if self.config.normalize_obs:
            self.policy.update_normalizers(self.rollout_buffer.observations, self.rollout_buffer.full_observations)

    def learn(self, total_timesteps: int, callback: MaybeCallback = None, log_interval: int = 1,
              tb_log_name: str = "SequencePPO", reset_num_timesteps: bool = True, progress_bar: bool = False,
              on_iteration: Optional[Callable[["SequencePPO"], None]] = None) -> "SequencePPO":
        """SB3's ``learn`` (see the module docstring for the differences); ``on_iteration(self)`` is
        called after each rollout + update + log."""
        total_timesteps, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                                      progress_bar)
        if reset_num_timesteps:
            self.iteration = 0
        callback.on_training_start(locals(), globals())
        assert self.env is not None
        while self.num_timesteps < total_timesteps:
            if not self.collect_rollouts(self.env, callback, self.rollout_buffer, n_rollout_steps=self.n_steps):
                break
            self.iteration += 1
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            self.train()
            self._update_obs_normalizer()
            self.logger.record("time/rollout_s", round(self.rollout_time_s, 3))
            self.logger.record("time/update_s", round(self.update_time_s, 3))
            if log_interval is not None and self.iteration % log_interval == 0:
                self.dump_logs(self.iteration)
            if on_iteration is not None:
                on_iteration(self)
        callback.on_training_end()
        return self

    # -- files ----------------------------------------------------------------------------------
    def save_policy(self, directory: Union[str, "os.PathLike[str]"], card: Optional[Dict[str, Any]] = None) -> Path:
        """Write the actor as a policy directory (what ``load_policy``, the runner and exports read)."""
        return save_policy(self.policy.actor, directory, card)

    def save_state(self, directory: Union[str, "os.PathLike[str]"], optimizer: bool = True) -> Path:
        """Write everything else training needs to continue (critic, log-std, optimiser, counters,
        return statistics); see :mod:`.persistence`."""
        return save_state(self, directory, optimizer=optimizer)

    def load_state(self, directory: Union[str, "os.PathLike[str]"], optimizer: bool = True) -> None:
        """Restore what :meth:`save_state` wrote into this (identically configured) algorithm."""
        load_state(self, directory, optimizer=optimizer)

    def save(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise NotImplementedError("SequencePPO does not pickle itself: use save_policy(dir) for the policy "
                                  "directory and save_state(dir) for the rest of the training state")

    @classmethod
    def load(cls, *args: Any, **kwargs: Any) -> "SequencePPO":  # type: ignore[override]
        raise NotImplementedError("SequencePPO does not unpickle: build it with load_policy(dir) as the policy, "
                                  "then call load_state(dir)")


def _name_of(policy: Any) -> Optional[str]:
    """The model name of a policy spec (for the per-model defaults of ``config_for``)."""
    if isinstance(policy, str):
        return policy
    if isinstance(policy, ActorCritic):
        return policy.actor.model_name
    return getattr(policy, "model_name", None)
