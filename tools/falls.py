"""Why a recurrent policy falls: record evaluation episodes step by step and summarise the falls.

    python tools/falls.py RUN/policy [--timing Irregular] [--episodes 100] [--before 10]
    python tools/falls.py RUN/policy --probe        # also the action's response to Δt
    python tools/falls.py RUN/policy --clamp 0.25,1  # the model time clamped (x nominal): return

Runs the same episodes as ``python -m cfc_control.eval`` (reset seeds EVAL_SEED + i, the policy
stepped with each step's realised period) and records per step the model time Δt / nominal, the
observation, the unclipped normalised action y, the state's norm and, for an unwired CfC without
mixed memory, its time gate s = sigmoid(t_a Δt + t_b) and the gate's time coefficient t_a.
Prints, for the episodes that end early (falls) and for all steps: the mean model time over the
last ``--before`` steps, how often the action is clipped (|y| > 1), the state norm, and the
gate's statistics by Δt bin. ``--probe`` replays the visited (observation, state) pairs with
the step's Δt replaced by 0.5, 1 and 2 (model time) and prints how much the action moves: the
policy's time response, where a velocity read from positions needs one of about 1/Δt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout's package

import numpy as np
import torch

from cfc_control.episodes.evaluation import EVAL_SEED
from cfc_control.models.cfc_cell import closed_form_parts
from cfc_control.policies import load_policy, resolve_policy_dir
from cfc_control.tasks import env_nominal_dt, make_env, resolve_stored_task


def _cfc_cell(policy):
    """The unwired, memory-free CfC cell of ``policy``'s model, or None."""
    model = policy.model
    if type(model).__name__ != "CfC" or model.wiring is not None or model.lstm is not None:
        return None
    return model.rnn_cell


def record(policy, task: str, timing: str, episodes: int, seed: int = EVAL_SEED) -> List[Dict[str, np.ndarray]]:
    """Run ``episodes`` episodes in lockstep; per episode a dict of per-step arrays."""
    envs = [make_env(task, timing=timing) for _ in range(episodes)]
    nominal = env_nominal_dt(envs[0])
    obs = np.stack([np.asarray(e.reset(seed=seed + i)[0], dtype=np.float64) for i, e in enumerate(envs)])
    n = len(envs)
    dt = np.full(n, nominal)
    alive = np.ones(n, dtype=bool)
    logs: List[Dict[str, list]] = [{k: [] for k in ("t", "obs", "state", "y", "hnorm", "gate", "ta", "terminated")}
                                   for _ in range(n)]
    cell = _cfc_cell(policy)
    hx = None
    policy.eval()
    while alive.any():
        with torch.no_grad():
            o = torch.as_tensor(obs, dtype=torch.float32)
            d = torch.as_tensor(dt, dtype=torch.float32)
            gate = ta = None
            if cell is not None:
                x = policy.normalize_obs(o)
                t = policy.model_time(d).unsqueeze(-1)
                h = hx if hx is not None else policy.initial_state(n)
                heads = cell.head_preactivations(cell.input_projection(x), h)
                _, _, gate = closed_form_parts(heads, t, cell.mode, cell.w_tau, cell.A)
                ta = heads[:, 2 * cell.hidden_size: 3 * cell.hidden_size]
            y, hx = policy.step(o, d, hx)
            action = policy.to_action(y).numpy().astype(np.float64)
        h0 = hx[0] if isinstance(hx, tuple) else hx
        hn = h0.norm(dim=-1).numpy() / np.sqrt(h0.shape[-1])
        for i in np.flatnonzero(alive):
            log = logs[i]
            log["t"].append(dt[i] / nominal)
            log["obs"].append(obs[i].copy())
            data = envs[i].unwrapped.data
            log["state"].append(np.concatenate([data.qpos, data.qvel]).copy())
            log["y"].append(y[i].numpy().copy())
            log["hnorm"].append(float(hn[i]))
            if gate is not None:
                log["gate"].append(gate[i].numpy().copy())
                log["ta"].append(ta[i].numpy().copy())
            nxt, _, term, trunc, info = envs[i].step(action[i].astype(np.float32))
            log["terminated"].append(bool(term))
            obs[i] = np.asarray(nxt, dtype=np.float64)
            dt[i] = float(info.get("dt", nominal))
            if term or trunc:
                alive[i] = False
    for e in envs:
        e.close()
    return [{k: np.asarray(v) for k, v in log.items()} for log in logs]


def summarise(eps: List[Dict[str, np.ndarray]], before: int) -> Dict[str, Any]:
    falls = [e for e in eps if e["terminated"][-1]]
    t_all = np.concatenate([e["t"] for e in eps])
    y_all = np.concatenate([e["y"] for e in eps]).reshape(-1)
    out: Dict[str, Any] = {
        "episodes": len(eps), "falls": len(falls),
        "steps": int(t_all.size),
        "all_steps": {"mean_t": float(t_all.mean()), "clipped": float(np.mean(np.abs(y_all) > 1)),
                      "hnorm": float(np.mean(np.concatenate([e["hnorm"] for e in eps])))},
    }
    if falls:
        tail_t = np.concatenate([e["t"][-before:] for e in falls])
        tail_y = np.concatenate([e["y"][-before:] for e in falls]).reshape(-1)
        # runs of long periods: how many of the last `before` periods are >= 1.5x nominal
        long_share = float(np.mean(tail_t >= 1.5))
        out["before_fall"] = {"steps": before, "mean_t": float(tail_t.mean()), "share_t_ge_1.5": long_share,
                              "share_t_ge_1.5_all": float(np.mean(t_all >= 1.5)),
                              "clipped": float(np.mean(np.abs(tail_y) > 1)),
                              "hnorm": float(np.mean(np.concatenate([e["hnorm"][-before:] for e in falls]))),
                              # the cart at the end of its rail (|x| >= 0.95 of the slider's 1 m) at the fall
                              "at_rail": int(sum(np.max(np.abs(e["state"][-before:, 0])) >= 0.95 for e in falls)),
                              "fall_step": [int(len(e["t"])) for e in falls]}
    if eps[0]["gate"].size:
        g = np.concatenate([e["gate"] for e in eps])
        ta = np.concatenate([e["ta"] for e in eps])
        bins = [(0.5, 0.75), (0.75, 1.0), (1.0, 1.5), (1.5, 2.01)]
        rows = {}
        for lo, hi in bins:
            m = (t_all >= lo) & (t_all < hi)
            if m.any():
                rows[f"{lo}-{hi}"] = {"n": int(m.sum()), "gate_mean": float(g[m].mean()),
                                      "gate_saturated": float(np.mean((g[m] < 0.02) | (g[m] > 0.98)))}
        # how much the gate could move between Δt = 0.5 and 2 at the visited states: |t_a| * 1.5
        out["gate"] = {"by_t": rows, "mean_abs_ta": float(np.abs(ta).mean()),
                       "share_units_abs_ta_gt_1": float(np.mean(np.abs(ta) > 1.0))}
    return out


def gains(eps: List[Dict[str, np.ndarray]]) -> Dict[str, Any]:
    """The policy as a linear state feedback, fitted per Δt bin: y ~ c + K [x, θ, ẋ, θ̇] from the
    simulator's true state at each observation (the policy sees only x and θ). A policy that
    reads velocities right from positions has the same K in every bin; one that takes the
    per-step difference for a velocity has velocity gains that grow with Δt."""
    t = np.concatenate([e["t"] for e in eps])
    X = np.concatenate([e["state"] for e in eps])
    y = np.concatenate([e["y"] for e in eps])[:, 0]
    names = ["x", "theta", "xdot", "thetadot"]
    out = {}
    for lo, hi in ((0.5, 0.75), (0.75, 1.0), (1.0, 1.5), (1.5, 2.01)):
        m = (t >= lo) & (t < hi)
        A = np.column_stack([np.ones(m.sum()), X[m]])
        coef, *_ = np.linalg.lstsq(A, y[m], rcond=None)
        r2 = 1 - np.var(y[m] - A @ coef) / np.var(y[m])
        out[f"{lo}-{hi}"] = {**{k: round(float(c), 3) for k, c in zip(names, coef[1:])}, "r2": round(float(r2), 3)}
    # Which velocity the policy reads from the positions: the finite difference over the period
    # (Δpos / Δt) or the per-step difference (Δpos, as if every period were nominal). R² of y on
    # [pos, that velocity, the previous step's], all steps but each episode's first two.
    fits = {}
    for name, per_time in (("dpos_over_dt", True), ("dpos_per_step", False)):
        rows, ys = [], []
        for e in eps:
            p = e["obs"][:, :2]
            d = p[1:] - p[:-1]
            if per_time:
                d = d / e["t"][1:, None]
            rows.append(np.column_stack([p[2:], d[1:], d[:-1]]))
            ys.append(e["y"][2:, 0])
        A = np.concatenate(rows)
        A = np.column_stack([np.ones(len(A)), A])
        yy = np.concatenate(ys)
        coef, *_ = np.linalg.lstsq(A, yy, rcond=None)
        fits[name] = round(float(1 - np.var(yy - A @ coef) / np.var(yy)), 3)
    out["r2_velocity_from"] = fits
    return out


def hold_stability(env_id: str, gains_by_t: Dict[str, Any], nominal: float) -> Dict[str, Any]:
    """Spectral radius of the linearised plant (the LQR expert's linearisation at upright, exact
    zero-order hold) under each bin's fitted gains, held for 1x and 2x the nominal period: above
    1, the gains the policy uses after such periods make an oscillation grow if the next period
    is that long too. Pendulum tasks only (None elsewhere)."""
    from cfc_control.experts.lqr import discretize, linearize
    env = make_env(env_id)
    try:
        a, b = linearize(env.unwrapped.model)
        low, high = env.action_space.low.astype(float), env.action_space.high.astype(float)
    except Exception:  # not a pendulum (quaternions, several actuators)
        return None
    finally:
        env.close()
    if a.shape[0] != 4 or b.shape[1] != 1:
        return None
    half = float((high - low)[0] / 2)
    out = {}
    for name, g in gains_by_t.items():
        if not isinstance(g, dict) or "theta" not in g:
            continue
        k = half * np.array([[g["x"], g["theta"], g["xdot"], g["thetadot"]]])  # u = +K s
        row = {}
        for hold in (1.0, 2.0):
            ad, bd = discretize(a, b, hold * nominal)
            row[f"hold_{hold:g}x"] = round(float(np.max(np.abs(np.linalg.eigvals(ad + bd @ k)))), 3)
        out[name] = row
    return out


def probe(policy, eps: List[Dict[str, np.ndarray]], limit: int = 4000) -> Dict[str, Any]:
    """Re-run the visited steps with the step's Δt replaced: mean |y(Δt=a) - y(Δt=b)|."""
    rng = np.random.default_rng(0)
    # states are rebuilt by replaying each episode; collect (obs, prev state) pairs
    pairs_obs, pairs_h = [], []
    with torch.no_grad():
        for e in eps:
            hx = None
            for k in range(len(e["t"])):
                o = torch.as_tensor(e["obs"][k][None], dtype=torch.float32)
                d = torch.as_tensor([e["t"][k] * policy.time_input.nominal_dt], dtype=torch.float32)
                pairs_obs.append(o)
                pairs_h.append(hx if hx is not None else policy.initial_state(1))
                _, hx = policy.step(o, d, hx)
        idx = rng.choice(len(pairs_obs), size=min(limit, len(pairs_obs)), replace=False)
        o = torch.cat([pairs_obs[i] for i in idx])
        first = pairs_h[0]
        if isinstance(first, tuple):
            h = tuple(torch.cat([pairs_h[i][j] for i in idx]) for j in range(len(first)))
        else:
            h = torch.cat([pairs_h[i] for i in idx])
        ys = {}
        for t in (0.5, 1.0, 2.0):
            d = torch.full((o.shape[0],), t * policy.time_input.nominal_dt)
            ys[t], _ = policy.step(o, d, h)
        scale = float(ys[1.0].abs().mean())
    return {"mean_abs_y": scale,
            "dy_0.5_vs_1": float((ys[0.5] - ys[1.0]).abs().mean()),
            "dy_2_vs_1": float((ys[2.0] - ys[1.0]).abs().mean())}


def history(policy, eps: List[Dict[str, np.ndarray]], lags=(0, 1, 2, 4, 8), windows: int = 400,
            length: int = 12) -> Dict[str, Any]:
    """How much the action at a step depends on the model time ``lag`` steps earlier: windows of
    ``length`` steps cut from the recorded episodes are replayed from the recorded state... from
    zero state twice, once as recorded and once with the period ``lag`` steps before the window's
    last step set to 2x (the input only, the observations unchanged). Returns, per lag, the mean
    |Δy| at the last step over the mean |y|. A policy that reads velocities from the last two
    positions depends on lag 0 only; the rest is the time history it carries in its state."""
    rng = np.random.default_rng(1)
    nominal = policy.time_input.nominal_dt
    cand = [(i, k) for i, e in enumerate(eps) for k in range(length + 40, len(e["t"]), 7)]
    pick = [cand[j] for j in rng.choice(len(cand), size=min(windows, len(cand)), replace=False)]
    warm = 40  # steps run before the window to reach a typical state
    obs = torch.as_tensor(np.stack([eps[i]["obs"][k - length - warm + 1: k + 1] for i, k in pick]), dtype=torch.float32)
    ts = np.stack([eps[i]["t"][k - length - warm + 1: k + 1] for i, k in pick])
    out = {}
    with torch.no_grad():
        def last_y(tt):
            d = torch.as_tensor(tt * nominal, dtype=torch.float32)
            y, _ = policy(obs, d)
            return y[:, -1, 0]
        y0 = last_y(ts)
        scale = float(y0.abs().mean())
        for lag in lags:
            tt = ts.copy()
            tt[:, -1 - lag] = 2.0
            out[f"lag{lag}"] = round(float((last_y(tt) - y0).abs().mean()) / scale, 4)
    return {"mean_abs_y": round(scale, 4), "rel_dy_when_period_set_to_2x": out}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("policy")
    p.add_argument("--env", default=None)
    p.add_argument("--timing", default="Irregular")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--before", type=int, default=10)
    p.add_argument("--probe", action="store_true")
    p.add_argument("--clamp", default=None, metavar="LO,HI",
                   help="clamp the policy's model time to [LO, HI] (x nominal) and print the mean return")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    policy = load_policy(resolve_policy_dir(a.policy))
    task = a.env or resolve_stored_task(policy.task, "the policy's config.json")
    if a.clamp:
        from cfc_control.episodes.evaluation import evaluate
        lo, hi = (float(v) for v in a.clamp.split(","))
        n = policy.time_input.nominal_dt
        policy.time_input.dt_min, policy.time_input.dt_max = lo * n, hi * n
        r = evaluate(policy, task, timing=a.timing, episodes=a.episodes)
        print(json.dumps({"model_time_clamped_to": [lo, hi], "timing": a.timing, "episodes": a.episodes,
                          "mean": r.mean, "std": r.std}))
        return 0
    eps = record(policy, task, a.timing, a.episodes)
    out = summarise(eps, a.before)
    out["gains_by_t"] = gains(eps)
    out["closed_loop_radius_by_t"] = hold_stability(task, out["gains_by_t"], policy.time_input.nominal_dt)
    if a.probe:
        out["time_response"] = probe(policy, eps)
        out["time_history"] = history(policy, eps)
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
