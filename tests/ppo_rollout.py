"""One rollout of a SequencePPO outside ``learn`` (what the PPO tests inspect)."""

from stable_baselines3.common.callbacks import CallbackList


def one_rollout(algo, before=None):
    """Set ``algo`` up as ``learn`` would (the envs reset), call ``before(algo)`` if given, collect
    one rollout; returns the buffer and what ``before`` returned."""
    algo._setup_learn(10_000, None, True, "test", False)
    callback = CallbackList([])
    callback.init_callback(algo)
    seen = before(algo) if before is not None else None
    assert algo.collect_rollouts(algo.env, callback, algo.rollout_buffer, algo.n_steps)
    return algo.rollout_buffer, seen
