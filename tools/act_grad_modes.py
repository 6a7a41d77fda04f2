"""What the rollout's policy step costs under ``torch.no_grad`` and under ``torch.inference_mode``.

    python tools/act_grad_modes.py [--envs 4] [--units 64] [--calls 2000] [--repeats 6]

Times ``ActorCritic.act`` (a CfC actor and a CfC critic of ``--units`` units, HalfCheetah-Pos's
widths: 9 positions, 6 actions, the Δt channel) for ``--envs`` envs at once, alternating the two
modes ``--repeats`` times so that both see the same load, and prints each mode's median
microseconds per call and their ratio. The rollout runs ``act`` under ``inference_mode``
(studies/ppo-throughput.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cfc_control.models.registry import make
from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput
from cfc_control.training.ppo.actor_critic import ActorCritic

N_OBS, N_ACT = 9, 6


def _actor_critic(units: int) -> ActorCritic:
    actor = RecurrentPolicy(make("cfc", N_OBS, N_ACT, units=units),
                            ObsNormalizer(np.zeros(N_OBS), np.ones(N_OBS), clip=10.0),
                            ActionMapping(-np.ones(N_ACT), np.ones(N_ACT)), TimeInput.around(0.05),
                            task=None, model_name="cfc")
    return ActorCritic(actor, make("cfc", N_OBS, 1, units=units))


def _us_per_call(ac: ActorCritic, obs: torch.Tensor, mode, calls: int) -> float:
    step = ActorCritic.act.__wrapped__  # act without its own decorator: the mode is the caller's
    starts = torch.zeros(obs.shape[0], dtype=torch.bool)
    actor_state = critic_state = None
    start = time.perf_counter()
    for _ in range(calls):
        with mode():
            _, _, _, actor_state, critic_state = step(ac, obs, actor_state, critic_state, starts)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ac = _actor_critic(args.units)
    obs = torch.cat([torch.randn(args.envs, N_OBS), torch.ones(args.envs, 1)], dim=1)
    modes = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}
    times = {name: [] for name in modes}
    for _ in range(args.repeats):
        for name, mode in modes.items():
            times[name].append(_us_per_call(ac, obs, mode, args.calls))
    medians = {name: float(np.median(t)) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:15s} median {median:7.1f} us per call  (runs: {', '.join(f'{t:.0f}' for t in times[name])})")
    print(f"no_grad / inference_mode: {medians['no_grad'] / medians['inference_mode']:.2f}x")


if __name__ == "__main__":
    main()
