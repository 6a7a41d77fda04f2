"""Oracles shared by tests: the torch RecurrentPolicy as the reference for every other step path
(runner, exports), given raw observations and Δt in seconds, clamping and mapping on its own."""

import numpy as np
import torch


def torch_actions(policy, obs_seq, dt_seq, resets=None):
    """Actions (T, B, n_act) of the torch policy for raw observations (T, B, n_obs) and Δt (T, B)
    in seconds, unclamped; ``resets`` (T, B) bool starts a row's episode anew."""
    hx, out = None, []
    with torch.no_grad():
        for t, (obs, dt) in enumerate(zip(obs_seq, dt_seq)):
            start = None if resets is None else torch.as_tensor(resets[t])
            y, hx = policy.step(torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(dt, dtype=torch.float32),
                                hx, start)
            out.append(policy.to_action(y).numpy())
    return np.stack(out)
