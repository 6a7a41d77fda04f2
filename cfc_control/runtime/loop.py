"""A real-time control loop: the simulator and the policy stepped against the wall clock.

Every tick (period 1 / rate): wait for the tick's start time (sleep, then spin the last half
millisecond) and read the clock; advance the simulator, which stands in for the plant, by the
*measured* time since the previous tick with the previous action held (zero-order hold); then ask
the policy for an action on the new observation with that timestamp. So the policy is fed the
wall-clock Δt between ticks, jitter and overruns included, and the plant has moved on by the same
Δt (its ``info["dt"]``): after an overrun both see the long period, as a real plant would. The
policy runs in-process (a :class:`PolicyRunner`) or in a control node (a :class:`PolicyClient`).

Reported: achieved rate, deadline misses (a tick whose simulator + policy work ended after the
next tick's start), policy step latency and whole-tick work p50/p99/max, start lateness, the
distribution of the Δt fed to the policy, clamped Δt, and the return. The garbage collector is
paused during the run (collected between episodes) so that its pauses do not land in a tick.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from cfc_control.policies.spaces import check_spaces
from cfc_control.runtime.errors import DtClampWarning
from cfc_control.tasks import make_env

SPIN_S = 5e-4  # the last part of a wait is spent spinning: sleep overshoots by ~0.1 ms


@dataclass
class LoopReport:
    task: str
    policy: str
    mode: str  # "in-process" or "node <address>"
    rate_hz: float
    duration_s: float
    ticks: int
    achieved_hz: float
    deadline_misses: int
    skipped_ticks: int  # tick slots dropped after an overrun (the schedule never bursts to catch up)
    latency_us: Dict[str, float]  # the policy step (obs -> action)
    work_us: Dict[str, float]  # simulator step + policy step
    lateness_us: Dict[str, float]  # tick start after its scheduled time
    dt_ms: Dict[str, float]  # the Δt the policy was fed (wall clock)
    clamped: int
    episodes: int
    episode_returns: List[float] = field(default_factory=list)
    current_return: float = 0.0
    scheduling: str = "normal"
    spin_ms: float = SPIN_S * 1e3

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        def q(d: Dict[str, float], unit: str) -> str:
            return " ".join(f"{k} {v:.1f}" for k, v in d.items()) + f" {unit}"

        done = (f"{len(self.episode_returns)} finished (mean return {np.mean(self.episode_returns):.1f}), "
                if self.episode_returns else "")
        return "\n".join([
            (f"{self.task} at {self.rate_hz:g} Hz for {self.duration_s:.2f} s, policy {self.policy} ({self.mode}, "
             f"{self.scheduling} scheduling, spin {self.spin_ms:g} ms)"),
            (f"  ticks {self.ticks}, achieved {self.achieved_hz:.1f} Hz, deadline misses {self.deadline_misses}"
             f" ({100.0 * self.deadline_misses / max(self.ticks, 1):.2f}%), skipped slots {self.skipped_ticks}"),
            f"  policy step latency: {q(self.latency_us, 'us')}",
            f"  tick work (policy + sim): {q(self.work_us, 'us')}",
            f"  start lateness: {q(self.lateness_us, 'us')}",
            f"  Δt fed to the policy: {q(self.dt_ms, 'ms')}; clamped {self.clamped}",
            f"  episodes: {done}current return {self.current_return:.1f}",
        ])


def percentiles(values: np.ndarray, scale: float = 1.0) -> Dict[str, float]:
    if values.size == 0:
        return {}
    v = values * scale
    return {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)), "max": float(v.max())}


def wait_until(deadline: float, clock: Callable[[], float] = time.perf_counter, spin_s: float = SPIN_S) -> None:
    """Return at ``deadline`` (``clock`` seconds): sleep most of the way, spin the last ``spin_s``."""
    left = deadline - clock()
    if left > spin_s:
        time.sleep(left - spin_s)
    while clock() < deadline:
        pass


def run_loop(
    env: Any,
    act: Callable[[np.ndarray, float], np.ndarray],
    reset_policy: Callable[[], None],
    rate_hz: float,
    duration_s: float,
    *,
    seed: Optional[int] = 0,
    clamp_count: Callable[[], int] = lambda: 0,
    labels: Optional[Dict[str, str]] = None,
    spin_s: float = SPIN_S,
) -> LoopReport:
    """Run ``env`` with ``act(obs, timestamp) -> action`` at ``rate_hz`` for ``duration_s`` of
    wall time; ``reset_policy()`` starts a new episode. ``env`` must have ``set_next_period(dt)``
    (directly or through its wrappers, as a task env has; see :func:`make_realtime_env`): each
    step advances it by the measured seconds since the previous tick. ``spin_s``: the last part
    of each wait is spent spinning; a longer spin keeps the core and its caches warm (a sleeping
    core wakes up cold: the step then takes several times longer) at the cost of burning that
    time."""
    if not (rate_hz > 0 and duration_s > 0):
        raise ValueError(f"rate and duration must be positive, got {rate_hz} Hz, {duration_s} s")
    set_next_period = _period_setter(env)
    labels = labels or {}
    period = 1.0 / rate_hz
    n_max = int(duration_s * rate_hz) + 1
    latency, work, lateness, fed_dt = (np.empty(n_max) for _ in range(4))
    returns: List[float] = []
    total = 0.0
    misses = skipped = 0
    obs, _ = env.reset(seed=seed)
    reset_policy()
    clamps0 = clamp_count()
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    clock = time.perf_counter
    try:
        start = clock() + 0.01
        end = start + duration_s
        tick = start
        prev = None  # the previous tick's clock reading; None at an episode's first tick
        action = None  # held by the plant since ``prev``
        n = 0
        while tick < end and n < n_max:
            wait_until(tick, clock, spin_s)
            t0 = clock()
            if action is not None:
                set_next_period(t0 - prev)  # the Δt the policy is fed below
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                if terminated or truncated:
                    returns.append(total)
                    total = 0.0
                    obs, _ = env.reset()
                    reset_policy()
                    action, prev = None, None
                    # Between episodes, while no action is held (the reset plant does not move
                    # until its first step), so the pause is not integrated by the plant; the
                    # next free tick starts the new episode.
                    gc.collect()
                    tick, behind = _next_tick(tick, period, clock())
                    skipped += behind
                    continue
            t1 = clock()
            action = act(obs, t0)
            t2 = clock()
            latency[n], work[n], lateness[n] = t2 - t1, t2 - t0, t0 - tick
            fed_dt[n] = np.nan if prev is None else t0 - prev
            prev = t0
            n += 1
            if t2 > tick + period:
                misses += 1
            tick, behind = _next_tick(tick, period, t2)
            skipped += behind
        elapsed = clock() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    dts = fed_dt[:n][~np.isnan(fed_dt[:n])]
    return LoopReport(
        task=labels.get("task", "?"),
        policy=labels.get("policy", "?"),
        mode=labels.get("mode", "in-process"),
        rate_hz=rate_hz,
        duration_s=elapsed,
        ticks=n,
        achieved_hz=n / elapsed if elapsed > 0 else 0.0,
        deadline_misses=misses,
        skipped_ticks=skipped,
        latency_us=percentiles(latency[:n], 1e6),
        work_us=percentiles(work[:n], 1e6),
        lateness_us=percentiles(lateness[:n], 1e6),
        dt_ms={**percentiles(dts, 1e3), "min": float(dts.min() * 1e3) if dts.size else 0.0,
               "mean": float(dts.mean() * 1e3) if dts.size else 0.0},
        clamped=clamp_count() - clamps0,
        episodes=len(returns) + 1,
        episode_returns=returns,
        current_return=total,
        spin_ms=spin_s * 1e3,
    )


@contextmanager
def realtime_priority(priority: Optional[int]) -> Iterator[str]:
    """Run the block under SCHED_FIFO at ``priority`` (1-99) when given and permitted, as a robot
    controller would; yields what was obtained ("SCHED_FIFO 50" or "normal (...)") and restores
    the previous policy after. Without it, other processes on the machine preempt the loop."""
    if priority is None:
        yield "normal"
        return
    if not hasattr(os, "sched_setscheduler"):
        yield "normal (SCHED_FIFO unavailable on this platform)"
        return
    old_policy, old_param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (OSError, ValueError) as err:
        yield f"normal (SCHED_FIFO refused: {err})"
        return
    try:
        yield f"SCHED_FIFO {int(priority)}"
    finally:
        os.sched_setscheduler(0, old_policy, old_param)


def _next_tick(tick: float, period: float, now: float) -> Tuple[float, int]:
    """The next tick's start after ``tick``, and how many slots were skipped: after an overrun
    the loop resumes at the next free slot instead of bursting to catch up."""
    tick += period
    if now > tick:
        behind = int((now - tick) / period) + 1
        return tick + behind * period, behind
    return tick, 0


def make_realtime_env(task: str, rate_hz: float, seed: Optional[int] = 0) -> Any:
    """The task at a fixed period of 1 / rate_hz, whose steps :func:`run_loop` sets to the
    measured time between ticks (``set_next_period``); 1 / rate_hz is what a tick should take."""
    return make_env(task, timing=f"fixed:{1.0 / rate_hz!r}", seed=seed)


def run_in_process(runner: Any, task: str, rate_hz: float, duration_s: float, seed: Optional[int] = 0,
                   spin_s: float = SPIN_S) -> LoopReport:
    """The loop with a :class:`~cfc_control.runtime.runner.PolicyRunner` (batch 1)."""
    env = make_realtime_env(task, rate_hz, seed)
    check_spaces(runner.n_obs, runner.n_act, env.observation_space, env.action_space, what=task)
    step = runner.step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtClampWarning)  # counted and reported instead
        return run_loop(
            env, lambda obs, t: step(obs, timestamp=t), runner.reset, rate_hz, duration_s, seed=seed,
            clamp_count=lambda: runner.stats.clamped_low + runner.stats.clamped_high,
            labels={"task": task, "policy": f"{type(runner.policy.model).__name__} ({runner.backend})"},
            spin_s=spin_s,
        )


def run_through_node(client: Any, task: str, rate_hz: float, duration_s: float, n_obs: int, n_act: int,
                     seed: Optional[int] = 0, spin_s: float = SPIN_S) -> LoopReport:
    """The loop with a :class:`~cfc_control.runtime.client.PolicyClient`; episode starts are sent
    as ``reset`` requests."""
    env = make_realtime_env(task, rate_hz, seed)
    check_spaces(n_obs, n_act, env.observation_space, env.action_space, what=task)
    state = {"reset": True, "clamped": 0}

    def act(obs: np.ndarray, t: float) -> np.ndarray:
        action = client.step(obs, timestamp=t, reset=state["reset"])
        state["reset"] = False
        state["clamped"] += int(bool(client.last_reply.get("clamped")))
        return action

    def reset() -> None:
        state["reset"] = True

    return run_loop(env, act, reset, rate_hz, duration_s, seed=seed, clamp_count=lambda: state["clamped"],
                    labels={"task": task, "policy": f"robot {client.robot!r}", "mode": f"node {client.address}"},
                    spin_s=spin_s)


def _period_setter(env: Any) -> Callable[[float], None]:
    """``env``'s ``set_next_period``, looked up through Gymnasium wrappers."""
    try:
        getter = getattr(env, "get_wrapper_attr", None)
        return getter("set_next_period") if getter is not None else env.set_next_period
    except AttributeError:
        raise TypeError(
            f"the loop advances the simulator by the measured Δt, so the env needs set_next_period(dt) "
            f"(a task env from make_env has it); {type(env).__name__} has none"
        ) from None


__all__ = ["LoopReport", "run_loop", "run_in_process", "run_through_node", "make_realtime_env", "wait_until", "percentiles"]
