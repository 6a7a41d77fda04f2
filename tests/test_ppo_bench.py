"""python -m cfc_control.bench rl on a tiny budget: every row runs and the ratios are printed."""

from cfc_control.bench import rl


def test_rl_benchmark_rows_and_ratios(capsys):
    rc = rl.main(["--env", "InvertedPendulum-Pos-Irregular", "--steps", "64", "--n-envs", "2", "--same-recipe",
                  "--eval-episodes", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "return Fixed / Jitter / Irregular" in out
    for row in ("| cfc |", "| lstm |", "| rppo |", "| rppo64 |", "| mlp |", "| env |", "| mujoco |"):
        assert row in out
    assert "cfc / rppo64:" in out and "cfc / mlp:" in out and "cfc / env:" in out and "goal >= 0.5" in out


def test_ratios_are_throughput_quotients():
    results = [rl.Result("cfc", "", 1000, 1.0, 0, ""), rl.Result("rppo", "", 100, 1.0, 0, ""),
               rl.Result("mlp", "", 4000, 2.0, 0, ""), rl.Result("env", "", 8000, 2.0, 0, "")]
    assert rl.ratios(results) == {"cfc / rppo": 10.0, "cfc / mlp": 0.5, "cfc / env": 0.25}


def test_env_rows_step_the_env_alone():
    """The env rows run the given number of steps (rounded up to whole ticks) and learn nothing."""
    for row in ("env", "mujoco"):
        result = rl._env_only("InvertedPendulum-Pos-Irregular", row, 10, 4, seed=0)
        assert result.steps == 12 and result.seconds > 0 and result.returns is None


def test_our_rows_train_with_the_models_own_settings():
    """The cfc row gets the CfC's own settings on the task (HalfCheetah: minibatches of 1024), the
    lstm row the family's (512), both without the training-only state estimate."""
    for row, batch in (("cfc", 1024), ("lstm", 512)):
        result, algo = rl._ours("HalfCheetah-Pos-Jitter", row, steps=8, n_envs=1, seed=0)
        assert algo.config.batch_size == batch and f"~{batch} steps" in result.minibatch
        assert algo.config.aux_state_coef == 0.0 and algo.config.critic_input == "observation"
