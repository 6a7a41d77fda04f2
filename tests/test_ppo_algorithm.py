"""SequencePPO: rollout states feed the update, the update learns, evaluate_policy, files."""

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from cfc_control.policies import load_policy
from cfc_control.training.ppo import PPOConfig, SequencePPO, config_for, make_task_vec_env
from cfc_control.training.ppo.hyperparams import model_kwargs_for
from ppo_toy_env import CueEnv
from ppo_rollout import one_rollout

TASK = "InvertedPendulum-Pos-Irregular"


def _cue_vec(n=3):
    return DummyVecEnv([lambda: Monitor(CueEnv()) for _ in range(n)])


def _tiny(**kw):
    base = dict(total_steps=600, n_envs=3, n_steps=20, seq_len=4, batch_size=24, n_epochs=2,
                learning_rate=3e-3, normalize_reward=False)
    return PPOConfig(**{**base, **kw})


def _rollout(algo):
    return one_rollout(algo)[0]


@pytest.mark.parametrize("kernel", ["torch", "numpy"])
@pytest.mark.parametrize("name", ["cfc", "cfc-mm", "ncp", "lstm", "mlp"])
def test_the_update_starts_from_the_states_stored_at_rollout_time(name, kernel):
    algo = SequencePPO(_cue_vec(), name, _tiny(rollout_kernel=kernel), model_kw={"units": 8}, seed=0)
    buf = _rollout(algo)
    # a second rollout continues the first: its sequences start from non-zero carried states
    callback = CallbackList([])
    callback.init_callback(algo)
    algo.collect_rollouts(algo.env, callback, buf, algo.n_steps)
    torch.manual_seed(0)
    mid_episode = 0
    with torch.no_grad():
        for batch in buf.minibatches(batch_size=24):
            values, log_prob, *_ = algo.policy.evaluate(batch.observations, batch.actions, batch.episode_starts,
                                                       batch.states["actor"], batch.states["critic"])
            real = batch.mask.bool()
            torch.testing.assert_close(values[real], batch.old_values[real], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(log_prob[real], batch.old_log_prob[real], atol=1e-4, rtol=1e-5)
            mid_episode += int((~batch.episode_starts[:, 0]).sum())
            if name != "mlp" and bool((~batch.episode_starts[:, 0]).any()):
                # the stored state matters: starting those sequences from zeros changes the values
                zeros = algo.policy.initial_states(batch.observations.shape[0])
                v0, *_ = algo.policy.evaluate(batch.observations, batch.actions, batch.episode_starts, *zeros)
                assert not torch.allclose(v0[real], values[real], atol=1e-4)
    assert mid_episode > 0


def test_ppo_learns_the_cue_task():
    torch.manual_seed(0)
    env = _cue_vec(4)
    cfg = _tiny(n_envs=4, n_steps=32, seq_len=8, batch_size=64, n_epochs=4, log_std_init=-1.0)
    algo = SequencePPO(env, "cfc", cfg, model_kw={"units": 16}, seed=0)
    eval_env = _cue_vec(2)
    before, _ = evaluate_policy(algo, eval_env, n_eval_episodes=20, deterministic=True)
    algo.learn(4096)
    after, _ = evaluate_policy(algo, eval_env, n_eval_episodes=20, deterministic=True)
    # acting 0 scores about -0.21 a step, -1.5 an episode; repeating the cue scores 0
    assert after > before + 0.4 and after > -0.6, (before, after)


def test_the_first_minibatch_of_an_update_has_ratio_one_and_training_lowers_the_value_loss():
    algo = SequencePPO(_cue_vec(), "cfc", _tiny(n_epochs=1), model_kw={"units": 8}, seed=0)
    from stable_baselines3.common.logger import configure

    algo.set_logger(configure(None, []))
    _rollout(algo)
    recorded = {}
    algo.logger.record = lambda key, value, exclude=None: recorded.__setitem__(key, value)
    losses = []
    for epoch in range(6):
        algo.train()
        losses.append(recorded["train/value_loss"])
        if epoch == 0:
            assert recorded["train/approx_kl"] < 0.05
    assert losses[-1] < losses[0]


def test_evaluate_policy_runs_on_the_algorithm_and_on_its_policy():
    cfg = config_for(TASK, {"n_envs": 2, "n_steps": 16, "total_steps": 32})
    algo = SequencePPO(TASK, "cfc", cfg, model_kw={"units": 8}, seed=0)
    algo.learn(32)
    env = make_task_vec_env(TASK, 2)
    mean, std = evaluate_policy(algo, env, n_eval_episodes=2, deterministic=True)
    assert np.isfinite(mean) and mean > 0
    mean2, _ = evaluate_policy(algo.policy, env, n_eval_episodes=2, deterministic=False)
    assert np.isfinite(mean2)


def test_a_linear_learning_rate_ends_at_zero_when_the_last_rollout_passes_the_budget():
    algo = SequencePPO(_cue_vec(), "mlp", _tiny(lr_schedule="linear"), seed=0)
    algo.learn(70)  # rollouts of 3 envs x 20 steps: the second ends at 120
    assert algo.num_timesteps == 120
    assert {g["lr"] for g in algo.policy.optimizer.param_groups} == {0.0}


def test_save_state_and_policy_round_trip(tmp_path):
    cfg = _tiny(lr_schedule="linear")
    algo = SequencePPO(_cue_vec(), "cfc-mm", cfg, model_kw={"units": 8}, seed=0)
    algo.learn(120)
    algo.save_policy(tmp_path / "policy")
    algo.save_state(tmp_path / "state")
    restored = SequencePPO(_cue_vec(), load_policy(tmp_path / "policy"), cfg, seed=5)
    restored.load_state(tmp_path / "state")
    assert restored.num_timesteps == algo.num_timesteps and restored.iteration == algo.iteration
    for a, b in zip(algo.policy.state_dict().values(), restored.policy.state_dict().values()):
        torch.testing.assert_close(a, b)
    np.testing.assert_allclose(restored.policy.actor.obs_normalizer.mean, algo.policy.actor.obs_normalizer.mean)
    opt_a, opt_b = algo.policy.optimizer.state_dict(), restored.policy.optimizer.state_dict()
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for key in opt_a["state"]:
        torch.testing.assert_close(opt_a["state"][key]["exp_avg"], opt_b["state"][key]["exp_avg"])
    obs = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    a1, s1 = algo.predict(obs, None, np.ones(3), deterministic=True)
    a2, s2 = restored.predict(obs, None, np.ones(3), deterministic=True)
    np.testing.assert_allclose(a1, a2, atol=1e-6)
    x = torch.as_tensor(obs)
    torch.testing.assert_close(algo.policy.value_step(x, algo.policy.initial_states(3)[1]),
                               restored.policy.value_step(x, restored.policy.initial_states(3)[1]))


def test_load_state_rejects_a_critic_of_another_kind(tmp_path):
    algo = SequencePPO(_cue_vec(), "cfc", _tiny(), model_kw={"units": 8}, seed=0)
    algo.save_state(tmp_path / "state")
    other = SequencePPO(_cue_vec(), "gru", _tiny(), model_kw={"units": 8}, seed=0)
    with pytest.raises(ValueError, match="critic"):
        other.load_state(tmp_path / "state")


def test_sb3_pickle_save_is_refused():
    algo = SequencePPO(_cue_vec(), "mlp", _tiny(), seed=0)
    with pytest.raises(NotImplementedError, match="save_policy"):
        algo.save("x.zip")


def test_starting_from_a_given_policy_keeps_it_and_critic_warmup_freezes_it():
    first = SequencePPO(_cue_vec(), "cfc", _tiny(), model_kw={"units": 8}, seed=0)
    actor = first.policy.actor
    before = {k: v.clone() for k, v in actor.state_dict().items()}
    cfg = _tiny(critic_warmup=2, normalize_obs=False)
    algo = SequencePPO(_cue_vec(), actor, cfg, seed=1)
    assert algo.policy.actor is actor
    critic_before = {k: v.clone() for k, v in algo.policy.critic.state_dict().items()}
    algo.learn(2 * cfg.rollout_steps)  # two iterations: both critic-only
    for k, v in actor.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert any(not torch.equal(v, critic_before[k]) for k, v in algo.policy.critic.state_dict().items())
    algo.learn(cfg.rollout_steps, reset_num_timesteps=False)  # the third trains the actor too
    assert any(not torch.equal(v, before[k]) for k, v in actor.state_dict().items())


def test_an_actor_started_from_a_policy_keeps_its_observation_statistics():
    """--init-from's defaults leave a given actor's normaliser as it was trained: merging PPO's
    rollouts into it would move the inputs the actor learned on."""
    actor = SequencePPO(_cue_vec(), "cfc", _tiny(), model_kw={"units": 8}, seed=0).policy.actor
    normalizer = actor.obs_normalizer
    normalizer.update(np.full((50, 1), 3.0))
    actor.set_normalizer(normalizer)
    before = actor.obs_normalizer.to_config()
    cfg = config_for(None, {k: getattr(_tiny(), k) for k in ("total_steps", "n_envs", "n_steps", "seq_len",
                                                            "batch_size", "n_epochs")}, init_from=True)
    assert cfg.normalize_obs is False
    algo = SequencePPO(_cue_vec(), actor, cfg, seed=1)
    algo.learn(2 * cfg.rollout_steps)
    assert algo.policy.actor.obs_normalizer.to_config() == before


def test_observation_statistics_exclude_the_dt_channel_and_follow_the_rollouts():
    algo = SequencePPO(_cue_vec(), "cfc", _tiny(), model_kw={"units": 8}, seed=0)
    algo.learn(algo.config.rollout_steps)
    norm = algo.policy.actor.obs_normalizer
    assert norm.size == 1 and norm.count == algo.config.rollout_steps
    cues = algo.rollout_buffer.observations[..., 0].reshape(-1)
    assert norm.mean[0] == pytest.approx(cues.mean(), abs=1e-6)


def test_config_for_a_task_and_overrides():
    cfg = config_for(TASK, {"n_epochs": "5", "target_kl": "0.02", "normalize_reward": "false"})
    assert cfg.total_steps == 100_000 and cfg.n_epochs == 5 and cfg.target_kl == 0.02
    assert cfg.normalize_reward is False
    assert config_for(TASK, init_from=True).critic_warmup > 0
    with pytest.raises(ValueError, match="unknown PPO hyperparameters"):
        config_for(TASK, {"n_epoch": 3})
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        config_for(TASK, {"n_steps": 0})
    with pytest.raises(ValueError, match="normalize_obs expects bool"):
        config_for(None, {"normalize_obs": "maybe"})
    with pytest.raises(ValueError, match="noise_period_power must be >= 0"):
        config_for(TASK, {"noise_period_power": "-0.5"})


def test_ppo_model_defaults_apply_unless_overridden():
    plain = SequencePPO(_cue_vec(), "cfc", _tiny(), model_kw={"units": 8}, seed=0)
    assert plain.model_kw == {"backbone_layers": 0, "units": 8}
    assert plain.policy.actor.model.config["backbone_layers"] == 0
    assert plain.policy.critic.config["backbone_layers"] == 0
    given = SequencePPO(_cue_vec(), "cfc", _tiny(), model_kw={"units": 8, "backbone_layers": 1}, seed=0)
    assert given.policy.actor.model.config["backbone_layers"] == 1


def _dt_response(model, steps=6, seed=0):
    """Largest change of the model's outputs over a sequence when every period is replaced."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, steps, model.input_size, generator=g)
    t1 = torch.empty(4, steps).uniform_(0.5, 2.0, generator=g)
    t2 = torch.empty(4, steps).uniform_(0.5, 2.0, generator=g)
    with torch.no_grad():
        return float((model(x, None, t1)[0] - model(x, None, t2)[0]).abs().max())


def test_time_gate_init_zero_starts_the_cfc_actor_and_critic_without_a_time_response():
    # --hp time_gate_init=zero (studies/ppo-cfc-long-periods.md): a fresh CfC actor's and
    # critic's outputs do not depend on the periods, past or present, until training makes them;
    # the default keeps the reference initialisation, whose outputs do.
    zero = SequencePPO(_cue_vec(), "cfc", _tiny(time_gate_init="zero"), model_kw={"units": 8}, seed=0)
    assert _dt_response(zero.policy.actor.model) == 0.0
    assert _dt_response(zero.policy.critic) == 0.0
    ref = SequencePPO(_cue_vec(), "cfc", _tiny(), model_kw={"units": 8}, seed=0)
    assert config_for(TASK).time_gate_init == "reference"
    assert _dt_response(ref.policy.actor.model) > 0.0 and _dt_response(ref.policy.critic) > 0.0
    # only the time head differs: the same draws, t_a rows zeroed
    za, ra = zero.policy.actor.model.rnn_cell, ref.policy.actor.model.rnn_cell
    assert torch.equal(za.in_proj.weight[:16], ra.in_proj.weight[:16])
    assert not za.in_proj.weight[16:24].any() and not za.rec_proj.weight[16:24].any()
    with pytest.raises(ValueError, match="time_gate_init"):
        config_for(TASK, {"time_gate_init": "small"})


def test_the_halfcheetah_cfc_takes_larger_minibatches_and_other_models_keep_the_familys():
    # Half the gradient steps per update at the same return (hyperparams.py, TASK_MODEL_DEFAULTS).
    assert config_for("HalfCheetah-Pos-Jitter", model="cfc").batch_size == 1024
    for other in ("lstm", "ncp", "cfc-mm", None):
        assert config_for("HalfCheetah-Pos-Jitter", model=other).batch_size == 512
    assert config_for("HalfCheetah-Pos-Jitter", {"batch_size": "256"}, model="cfc").batch_size == 256  # --hp wins


def test_the_plain_cfc_explores_less_on_the_pendulum_and_other_models_keep_the_family_setting():
    # studies/ppo-cfc-long-periods.md: with exp(-1.5) = 0.22 action half-ranges of exploration
    # noise, held for each (up to 2x nominal) period, the plain CfC learns a high-gain controller
    # that overcorrects after runs of long periods; exp(-2.5) = 0.08 is its setting there.
    # With a linear learning-rate decay and 10 epochs a seed's outcome stops being chaotic.
    cfc = config_for(TASK, model="cfc")
    assert (cfc.log_std_init, cfc.lr_schedule, cfc.n_epochs) == (-2.5, "linear", 10)
    assert np.exp(cfc.log_std_init) < 0.1
    for other in ("cfc-mm", "lstm", "mlp", "ncp", None):
        config = config_for(TASK, model=other)
        assert (config.log_std_init, config.lr_schedule, config.n_epochs) == (-1.5, "constant", 15)
    assert config_for("HalfCheetah-Pos-Jitter", model="cfc").log_std_init == -1.0  # other families as they were
    assert config_for(TASK, init_from=True, model="cfc").log_std_init == -1.5  # a cloned actor: INIT_FROM_DEFAULTS
    assert config_for(TASK, {"log_std_init": "-1"}, model="cfc").log_std_init == -1.0  # --hp wins
    algo = SequencePPO(TASK, "cfc", config_for(TASK, {"n_envs": 2, "n_steps": 16, "total_steps": 32}, model="cfc"),
                       model_kw={"units": 8}, seed=0)
    assert torch.equal(algo.policy.log_std.detach(), torch.full((1,), -2.5))


def test_the_task_vec_env_hands_out_each_steps_own_infos_and_the_terminal_observation():
    """Without SB3's deep copy, each step still gets fresh info dicts (changing one changes no
    later step's), and an ended episode carries its last observation before the reset."""
    from cfc_control.training.ppo.vec_env import InProcessVecEnv

    env = make_task_vec_env(TASK, 2)
    assert isinstance(env, InProcessVecEnv)
    env.seed(0)
    env.reset()
    previous, ended = None, 0
    for _ in range(300):  # a pendulum left alone falls within this
        _, _, dones, infos = env.step(np.full((2, 1), 0.5, dtype=np.float32))
        assert len(infos) == 2 and infos[0] is not infos[1]
        if previous is not None:
            previous[0]["dt"] = -1.0
            assert infos[0]["dt"] > 0
        previous = infos
        for done, info in zip(dones, infos):
            if done:
                ended += 1
                assert info["terminal_observation"].shape == env.observation_space.shape
                assert info["TimeLimit.truncated"] is False
    env.close()
    assert ended >= 2


@pytest.mark.parametrize("task", ["Hopper-Pos-Irregular", "Walker2d-Pos-Irregular"])
def test_a_fresh_legged_actor_gets_the_exploration_and_state_estimate_recipe_and_a_student_does_not(task):
    # studies/ppo-hopper-from-scratch.md: from scratch, PPO stands still on Hopper (falls on
    # Walker2d) unless it explores with std 1 and no KL stop, and falls unless the actor estimates
    # the velocities and the critic reads the full state; a fine-tuned student keeps the family's
    # settings.
    scratch = config_for(task, model="cfc")
    assert scratch.log_std_init == 0.0 and scratch.target_kl is None and scratch.lr_schedule == "linear"
    assert scratch.aux_state_coef == 1.0 and scratch.critic_input == "full" and scratch.total_steps == 2_000_000
    student = config_for(task, init_from=True, model="cfc")
    assert student.aux_state_coef == 0.0 and student.critic_input == "observation"
    assert student.gamma == {"Hopper-Pos-Irregular": 0.999, "Walker2d-Pos-Irregular": 0.99}[task]
    assert student.target_kl == 0.03 and student.log_std_init == -1.5 and student.total_steps == 1_000_000
    assert config_for(task, {"critic_input": "observation"}).critic_input == "observation"
    assert config_for("Swimmer-Pos-Irregular").aux_state_coef == 0.0  # other families as they were


def test_a_fresh_hopper_actor_scales_its_noise_to_the_period_and_others_do_not():
    # studies/ppo-hopper-from-scratch.md, "Hopper's falls under Irregular timing": with the same std
    # at every period the long periods shake the hopper off its feet (74-89% of Jitter kept).
    assert config_for("Hopper-Pos-Irregular", model="cfc").noise_period_power == 0.5
    assert config_for("Hopper-Pos-Irregular", model="lstm").noise_period_power == 0.5  # the same recipe
    assert config_for("Hopper-Pos-Irregular", init_from=True, model="cfc").noise_period_power == 0.0
    assert config_for("Walker2d-Pos-Irregular", model="cfc").noise_period_power == 0.0
    assert config_for("Hopper-Pos-Irregular", {"noise_period_power": "0"}).noise_period_power == 0.0


def test_a_fresh_walker2d_cfc_gets_one_backbone_layer_and_other_actors_keep_their_defaults():
    # studies/ppo-hopper-from-scratch.md, "A backbone layer for Walker2d": from scratch on Walker2d the CfC
    # walks further with one 64-unit layer in front of its heads; on Hopper it did not help.
    walker = model_kwargs_for("cfc", task="Walker2d-Pos-Irregular")
    assert walker == {"backbone_layers": 1, "backbone_units": 64}
    assert model_kwargs_for("cfc", {"backbone_layers": 0}, task="Walker2d-Pos-Irregular")["backbone_layers"] == 0
    assert model_kwargs_for("cfc", task="Hopper-Pos-Irregular") == {"backbone_layers": 0}
    assert model_kwargs_for("lstm", task="Walker2d-Pos-Irregular") == {}
    assert model_kwargs_for("cfc") == {"backbone_layers": 0}  # no task: the model's own defaults


def test_a_fresh_halfcheetah_actor_estimates_its_state_with_the_familys_own_exploration():
    # studies/ppo-halfcheetah-recipes.md, e9: the estimate and the full-state critic take the CfC
    # past 5000 under Jitter; Hopper's std of 1 makes the cheetah flip (e6).
    scratch = config_for("HalfCheetah-Pos-Jitter", model="cfc")
    assert scratch.aux_state_coef == 1.0 and scratch.critic_input == "full"
    assert scratch.log_std_init == -1.0 and scratch.target_kl == 0.03 and scratch.total_steps == 1_000_000
    student = config_for("HalfCheetah-Pos-Irregular", init_from=True, model="cfc")
    assert student.aux_state_coef == 0.0 and student.critic_input == "observation"
    assert config_for("HalfCheetah-Pos-Jitter", model="lstm").aux_state_coef == 1.0
    # A memoryless MLP has no state to hold the estimate in, and did worse with it.
    mlp = config_for("HalfCheetah-Pos-Jitter", model="mlp")
    assert mlp.aux_state_coef == 0.0 and mlp.critic_input == "observation"


@pytest.mark.parametrize("period_discount", [False, True])
def test_period_discount_discounts_each_step_by_its_own_elapsed_time(period_discount):
    env = make_task_vec_env(TASK, 2)
    algo = SequencePPO(env, "cfc", _tiny(n_envs=2, period_discount=period_discount), model_kw={"units": 8}, seed=0)
    buf = _rollout(algo)
    # the Δt channel of the observation after a step is that step's elapsed time / nominal
    after = np.concatenate([buf.observations[1:, :, -1], algo._last_obs[None, :, -1]])
    inside = ~np.concatenate([buf.episode_starts[1:], algo._last_episode_starts[None]]).astype(bool)
    if period_discount:
        assert np.ptp(buf.durations[inside]) > 0.5  # Irregular timing: periods of 0.5x-2x
        np.testing.assert_allclose(buf.durations[inside], after[inside], rtol=1e-5)
    else:
        assert np.all(buf.durations == 1.0)
