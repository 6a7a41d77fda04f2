"""How much of the simulator's velocities a policy's recurrent state holds: a linear probe.

    python tools/state_probe.py RUN/policy [--timing Irregular] [--episodes 8]

Runs the policy (deterministic, each step's realised period) for ``--episodes`` episodes from the
evaluation's reset seeds and records, per step, the recurrent state after the step and the
simulator's generalised velocities (MuJoCo ``qvel``) at that step. A ridge regression from the
state (standardised) to each velocity is fitted on the first half of the steps and scored on the
second (R², 1 = the velocity is a linear function of the state). The same fit from the step's
observation alone is printed beside it: what the state adds to what the policy sees now.

A policy's state holds a velocity when its training asked for it (``--aux-state``) or when
imitation alone made it useful; on Hopper under Irregular timing, the zoo's CfC student of seed 0
holds the forward speed at R² 0.68 (no more than its observation alone: 0.70) and the other
velocities at 0.45-0.86; with the auxiliary state estimate at 0.96 and 0.90-0.97
(studies/hopper-students.md).
"""

from __future__ import annotations

import argparse
from typing import List, Tuple

import numpy as np
import torch

from cfc_control.episodes.evaluation import EVAL_SEED
from cfc_control.policies import load_policy
from cfc_control.tasks import env_nominal_dt, make_env


def record(policy_dir: str, task: str, timing: str, episodes: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states (N, H), qvel (N, V), observations (N, O)) over the episodes' steps."""
    policy = load_policy(policy_dir)
    policy.eval()
    states: List[np.ndarray] = []
    velocities: List[np.ndarray] = []
    observations: List[np.ndarray] = []
    for episode in range(episodes):
        env = make_env(task, timing=timing)
        try:
            obs, _ = env.reset(seed=EVAL_SEED + episode)
            dt, hx, done = env_nominal_dt(env), None, False
            while not done:
                velocities.append(np.array(env.unwrapped.data.qvel, dtype=np.float64))
                observations.append(np.asarray(obs, dtype=np.float64))
                with torch.no_grad():
                    y, hx = policy.step(torch.as_tensor(obs[None], dtype=torch.float32),
                                        torch.tensor([dt], dtype=torch.float32), hx)
                states.append(torch.cat([h[0] for h in hx]).numpy().astype(np.float64))
                obs, _, terminated, truncated, info = env.step(policy.to_action(y)[0].numpy())
                dt, done = float(info.get("dt", dt)), terminated or truncated
        finally:
            env.close()
    return np.array(states), np.array(velocities), np.array(observations)


def probe_r2(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """R² per column of ``y`` of a ridge regression from ``x``, fitted on the first half of the
    rows and scored on the second."""
    half = len(x) // 2
    mean, std = x[:half].mean(0), x[:half].std(0) + 1e-8
    design = [np.c_[(part - mean) / std, np.ones(len(part))] for part in (x[:half], x[half:])]
    weights = np.linalg.solve(design[0].T @ design[0] + ridge * np.eye(design[0].shape[1]), design[0].T @ y[:half])
    residual = ((design[1] @ weights - y[half:]) ** 2).sum(0)
    return 1.0 - residual / ((y[half:] - y[half:].mean(0)) ** 2).sum(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a policy directory")
    parser.add_argument("--env", default=None, help="task (default: the policy's own)")
    parser.add_argument("--timing", default="Irregular", help="timing preset or spec")
    parser.add_argument("--episodes", type=int, default=8)
    args = parser.parse_args()
    task = args.env or load_policy(args.policy).task
    states, velocities, observations = record(args.policy, task, args.timing, args.episodes)
    np.set_printoptions(precision=2, suppress=True)
    print(f"{args.policy} on {task} ({args.timing}): {len(states)} steps, R² per qvel entry")
    print(f"  from the state:       {probe_r2(states, velocities)}")
    print(f"  from the observation: {probe_r2(observations, velocities)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
