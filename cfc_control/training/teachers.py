"""Train a privileged teacher: an SB3 agent (SAC or PPO, MLP) acting on a task's full state.

A *teacher* for a student that sees positions only and irregular periods acts on the full
simulator state, optionally with the period that just elapsed as an extra input, and is trained
under a period distribution (``timing``), so that its labels stay good at every period the student
will meet. It may also see less than the full state (``obs="PosVel"``: not the velocities a
positions-only student cannot reconstruct). Without ``timing``, ``dt_input`` and ``obs`` it is a
plain expert of the stock env.

Training is resumable: every ``checkpoint_every`` steps the whole training state (weights,
optimisers, normalisation, replay buffer, counters; :mod:`cfc_control.training.sb3_state`) is
written atomically under ``<run_dir>/checkpoints/<step>/``, and ``resume=True`` continues from the
newest one, refusing a run directory whose recorded settings differ. The result is an expert
directory (:mod:`cfc_control.experts.sb3`) with a card that reports its return under each timing.

    from cfc_control.training.teachers import TeacherConfig, train_teacher
    result = train_teacher(TeacherConfig(env="Hopper", algo="ppo", timing="Irregular+drop:0.05",
                                         dt_input=True, out="policies/experts/hopper-ppo-teacher"))
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from tqdm import tqdm

from cfc_control.experts.sb3 import (ALGOS, DEFAULT_POLICY_KWARGS, KIND, SB3Expert, _base_name,
                                     _torch_policy_kwargs, hyperparams_for, load_sb3_expert,
                                     save_sb3_expert, stock_env_id)
from cfc_control.files import atomic_directory, atomic_write_text, read_json, remove_temporaries
from cfc_control.flags import setting
from cfc_control.tasks import parse_timing
from cfc_control.tasks.env import make_task
from cfc_control.tasks.observations import OBS_MODELS, canonical_obs, dropped_entries
from cfc_control.tasks.specs import task_families
from cfc_control.episodes.evaluation import card_entry, evaluate_expert
from cfc_control.training.checkpoint import CheckpointManager
from cfc_control.training.sb3_state import load_training_state, save_training_state

# The timings a teacher's card reports: the presets, and steady periods at half and twice the
# nominal one (the bounds of the Irregular preset, held for a whole episode).
STEADY_FACTORS = {"0.5x": 0.5, "2x": 2.0}
ALGORITHM_CLASSES = {"sac": SAC, "ppo": PPO}


@dataclass(frozen=True)
class TeacherConfig:
    """One teacher training run; ``python -m cfc_control.experts.train``'s flags are generated
    from these fields. Settings that do not change what is trained (where it is written, how often
    it checkpoints, how it is evaluated) do not take part in the comparison a resume makes."""

    env: Optional[str] = setting(None, "task family or stock MuJoCo id (Hopper, HalfCheetah-v5, ...); required")
    algo: str = setting("sac", "stable-baselines3 algorithm", choices=ALGOS)
    steps: Optional[int] = setting(None, "environment steps (none: the family's budget in "
                                         "cfc_control.experts.sb3.HYPERPARAMS)")
    seed: int = setting(0, "seeds the agent and the envs")
    timing: Optional[str] = setting(None, "train under this period distribution: a preset such as "
                                          "Irregular+drop:0.05, or a spec in seconds (none: the stock fixed period)")
    dt_input: bool = setting(False, "give the agent the period that just elapsed (Δt / nominal) as its last input")
    obs: str = setting("Full", "what the agent sees of the state: Full, or PosVel (without the velocities of "
                               "coordinates a positions-only student does not see, such as a walker's forward "
                               "speed)", choices=OBS_MODELS)
    overrides: Dict[str, Any] = setting({}, "SB3 hyperparameter override, value as JSON, e.g. --set "
                                            "learning_starts=1000 (repeatable)", flag="--set")
    normalize: Optional[bool] = setting(None, "VecNormalize on observations and rewards (none: PPO yes, SAC no)")
    init_from: Optional[str] = setting(None, "start from this expert directory's weights (an expert of the same "
                                             "algorithm, env, inputs and network): its policy, critics and target "
                                             "critics and its observation statistics; optimisers and, for SAC, the "
                                             "replay buffer start empty (a small initial entropy coefficient keeps "
                                             "SAC near the expert: --set ent_coef=auto_0.01)", metavar="DIR")
    out: Optional[str] = setting(None, "expert directory (default policies/experts/<env>-<algo>)", metavar="DIR",
                                 compare=False)
    run_dir: Optional[str] = setting(None, "checkpoints (default runs/teachers/<name of the expert directory>)",
                                     metavar="DIR", compare=False)
    checkpoint_every: int = setting(50_000, "environment steps between checkpoints", compare=False)
    eval_episodes: int = setting(20, "evaluation episodes per timing", compare=False)

    @property
    def expert_dir(self) -> Path:
        return Path(self.out or Path("policies") / "experts" / f"{stock_env_id(self.env or '').split('-v')[0].lower()}-{self.algo}")


@dataclass
class TeacherResult:
    expert: SB3Expert
    card: Dict[str, Any]
    directory: Path


@dataclass(frozen=True)
class _Setup:
    """What a config resolves to; recorded in ``<run_dir>/run.json`` and compared on resume."""

    env_id: str
    algo: str
    seed: int
    steps: int
    hyperparameters: Dict[str, Any]
    policy_kwargs: Dict[str, Any]
    normalize: bool
    timing: Optional[str]
    dt_input: bool
    nominal_dt: float
    obs: str = "Full"
    # The entries of the stock observation the agent does not see (from ``obs``).
    dropped: Tuple[int, ...] = ()
    # The expert directory whose weights a fresh run starts from.
    init_from: Optional[str] = None


def resolve(config: TeacherConfig) -> _Setup:
    """Check a config and resolve its defaults; ValueError naming what is wrong."""
    if config.algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {config.algo!r}")
    if not config.env:
        raise ValueError("--env is required: a task family such as Hopper, or its stock id")
    env_id = stock_env_id(config.env)
    try:
        gym.spec(env_id)
    except gym.error.Error:
        raise ValueError(f"unknown env {config.env!r} (a MuJoCo task family such as Hopper, or its stock id)") from None
    hp = hyperparams_for(config.algo, env_id)
    hp.update(config.overrides)
    accepted = inspect.signature(ALGORITHM_CLASSES[config.algo]).parameters
    unknown = sorted(k for k in hp if k not in accepted and k not in ("steps", "policy_kwargs"))
    if unknown:
        raise ValueError(f"--set {', '.join(unknown)}: not a {config.algo.upper()} argument of stable-baselines3")
    steps = int(config.steps if config.steps is not None else hp.get("steps", 0))
    hp.pop("steps", None)
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if config.checkpoint_every <= 0 or config.eval_episodes <= 0:
        raise ValueError("checkpoint_every and eval_episodes must be positive")
    policy_kwargs = dict(DEFAULT_POLICY_KWARGS[config.algo])
    policy_kwargs.update(hp.pop("policy_kwargs", {}))
    _torch_policy_kwargs(policy_kwargs)  # checks the activation name
    obs = canonical_obs(config.obs)
    timing, dropped = None, ()
    if config.timing is not None or config.dt_input or obs != "Full":
        base = _base_name(env_id)
        if base not in task_families():
            raise ValueError(f"{env_id} has no task family in envs/: a timing, a Δt input or --obs {obs} needs one")
        family = task_families()[base]
        nominal = family.nominal_dt
        timing = parse_timing(config.timing or "Fixed", nominal).spec
        dropped = dropped_entries(obs, family.velocity_indices, family.unobserved_velocity_indices)
    else:
        probe = gym.make(env_id)
        nominal = float(probe.unwrapped.dt)
        probe.close()
    normalize = (config.algo == "ppo") if config.normalize is None else bool(config.normalize)
    setup = _Setup(env_id, config.algo, int(config.seed), steps, hp, policy_kwargs, normalize, timing,
                   bool(config.dt_input), nominal, obs, tuple(dropped), config.init_from)
    if config.init_from is not None:
        try:
            expert = load_sb3_expert(config.init_from)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"--init-from: {err}") from None
        _check_init_from(expert, setup)
    return setup


def _check_init_from(expert: SB3Expert, setup: _Setup) -> None:
    """ValueError naming the first way ``expert`` cannot seed a run of ``setup``."""
    got = expert.config
    wanted = {"algo": setup.algo, "env_id": setup.env_id, "dt_input": setup.dt_input,
              "dropped_observations": sorted(setup.dropped), "policy_kwargs": setup.policy_kwargs,
              "normalized observations": setup.normalize}
    have = {"algo": got.get("algo"), "env_id": got.get("env_id"), "dt_input": bool(got.get("dt_input", False)),
            "dropped_observations": sorted(got.get("dropped_observations", [])),
            "policy_kwargs": got.get("policy_kwargs"), "normalized observations": got.get("obs_normalization") is not None}
    for key, want in wanted.items():
        if json.loads(json.dumps(have[key])) != json.loads(json.dumps(want)):
            raise ValueError(f"--init-from {expert.directory}: its {key} is {have[key]!r}, this run's is {want!r}")


def _start_from(model: Any, norm: Optional[VecNormalize], directory: str) -> None:
    """Load an expert directory's weights (policy, critics, target critics) into a fresh ``model``
    and its observation statistics into ``norm``, held as if measured over the expert's training
    (so that the first rollouts do not shift the inputs the weights were trained on)."""
    expert = load_sb3_expert(directory)
    model.policy.load_state_dict(expert.policy.state_dict(), strict=True)
    stats = expert.config.get("obs_normalization")
    if norm is not None and stats is not None:
        norm.obs_rms.mean = np.asarray(stats["mean"], dtype=np.float64)
        norm.obs_rms.var = np.asarray(stats["var"], dtype=np.float64)
        card = Path(directory) / "card.json"
        steps = read_json(card).get("steps") if card.is_file() else None
        norm.obs_rms.count = float(steps or 1e6)


def env_factory(setup: _Setup) -> Callable[[], gym.Env]:
    """The training env: the stock env, or the task with the setup's observation model, timing and
    Δt channel."""
    if setup.timing is None:
        return lambda: Monitor(gym.make(setup.env_id))
    base = _base_name(setup.env_id)
    return lambda: Monitor(make_task(base, obs=setup.obs, timing=setup.timing, dt_in_obs=setup.dt_input))


def teacher_run_dir(config: TeacherConfig) -> Path:
    """Where the teacher's checkpoints go: ``run_dir``, or ``runs/teachers/<expert directory name>``."""
    return Path(config.run_dir or Path("runs") / "teachers" / config.expert_dir.name)


def train_teacher(config: TeacherConfig, *, resume: bool = False, progress: bool = True,
                  command: Optional[str] = None) -> TeacherResult:
    """Train the teacher ``config`` describes (``resume``: continue its run from the newest
    checkpoint), save it to ``config.expert_dir`` with its card and return it. KeyboardInterrupt
    leaves the newest checkpoint in place for ``resume``."""
    setup = resolve(config)
    run = _RunDirectory(teacher_run_dir(config))
    latest = run.prepare(setup, resume=resume)
    venv = DummyVecEnv([env_factory(setup)])
    norm = None
    if setup.normalize:
        venv = norm = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=setup.hyperparameters.get("gamma", 0.99))
    model = ALGORITHM_CLASSES[setup.algo]("MlpPolicy", venv, seed=setup.seed, verbose=0, device="cpu",
                policy_kwargs=_torch_policy_kwargs(setup.policy_kwargs), **setup.hyperparameters)
    wall = 0.0
    if latest is not None:
        wall = float(load_training_state(model, norm, latest)["info"].get("wall_s", 0.0))
    elif setup.init_from is not None:
        _start_from(model, norm, setup.init_from)
    # Fresh episodes after a resume, not the ones the run began with.
    venv.seed(setup.seed + model.num_timesteps)
    done = model.num_timesteps
    start = time.time()

    def checkpoint() -> Path:
        return run.save(model, norm, {"wall_s": wall + time.time() - start})

    if done < setup.steps:
        callback = _TeacherCallback(setup.steps, config.checkpoint_every, checkpoint, progress)
        model.learn(total_timesteps=setup.steps - done, callback=callback, reset_num_timesteps=done == 0)
        checkpoint()
    wall += time.time() - start
    return _finish(model, norm, setup, config, wall, command)


def _finish(model: Any, norm: Optional[VecNormalize], setup: _Setup, config: TeacherConfig, wall: float,
            command: Optional[str]) -> TeacherResult:
    out = config.expert_dir
    time_input = {"nominal_dt": setup.nominal_dt, "timing": setup.timing} if setup.dt_input else None
    save_sb3_expert(model, out, env_id=setup.env_id, algo=setup.algo, policy_kwargs=setup.policy_kwargs,
                    obs_rms=norm.obs_rms if norm is not None else None,
                    clip_obs=norm.clip_obs if norm is not None else 10.0, time_input=time_input,
                    dropped_observations=setup.dropped)
    card: Dict[str, Any] = {"kind": KIND, "env_id": setup.env_id, "algorithm": setup.algo, "steps": setup.steps,
                            "seed": setup.seed, "hyperparameters": setup.hyperparameters,
                            "policy_kwargs": setup.policy_kwargs, "normalize_obs": setup.normalize,
                            "training_timing": setup.timing, "dt_input": setup.dt_input, "obs": setup.obs,
                            "training_time_s": round(wall, 1), "init_from": setup.init_from, "command": command,
                            "reward_threshold": gym.spec(setup.env_id).reward_threshold}
    card.update(evaluation_sections(out, setup, config.eval_episodes))
    atomic_write_text(out / "card.json", json.dumps(card, indent=2) + "\n")
    return TeacherResult(load_sb3_expert(out), card, out)


def evaluation_sections(directory: Path, setup: _Setup, episodes: int) -> Dict[str, Any]:
    """The card's evaluation: ``evaluation`` (the stock period: mean, std, returns) and, for a
    teacher trained under a timing or with a Δt input, ``timings`` (Fixed, Jitter, Irregular and
    steady 0.5x / 2x periods, on the task's evaluation seeds)."""
    if setup.timing is None:
        returns = _stock_returns(load_sb3_expert(directory), setup.env_id, episodes)
        return {"evaluation": {"env_id": setup.env_id, "episodes": episodes, "mean": float(np.mean(returns)),
                               "std": float(np.std(returns)), "returns": returns}}
    task = f"{_base_name(setup.env_id)}-Full-Fixed"
    timings = {"Fixed": "Fixed", "Jitter": "Jitter", "Irregular": "Irregular"}
    timings.update({name: f"fixed:{factor * setup.nominal_dt:.12g}" for name, factor in STEADY_FACTORS.items()})
    results = {name: evaluate_expert(directory, task, timing=spec, episodes=episodes) for name, spec in timings.items()}
    fixed = results["Fixed"]
    return {"evaluation": {"env_id": setup.env_id, "episodes": episodes, "mean": fixed.mean, "std": fixed.std,
                           "returns": fixed.returns},
            "timings": card_entry(results)}


def _stock_returns(expert: SB3Expert, env_id: str, episodes: int, seed: int = 10_000) -> list:
    """Returns of deterministic episodes on the stock env, reset seeds seed, seed + 1, ..."""
    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            _, reward, terminated, truncated, _ = env.step(expert.act(env))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


class _RunDirectory:
    """``<run>/run.json`` (the resolved settings) and ``<run>/checkpoints/<step>/`` with
    ``latest.json`` naming the newest complete one; the two newest are kept."""

    keep = 2

    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkpoints = root / "checkpoints"

    def prepare(self, setup: _Setup, *, resume: bool) -> Optional[Path]:
        """Record or check the settings; the checkpoint to resume from, or None."""
        recorded = asdict(setup)
        settings = self.root / "run.json"
        latest = self.latest()
        if settings.is_file() and latest is not None:
            if not resume:
                raise ValueError(f"{self.root} already holds a run: pass --resume to continue it, "
                                 "or choose another --run-dir")
            before = read_json(settings)
            # The budget may grow on resume (train on to more steps); nothing else may change. A
            # setting a run recorded before it existed had its default.
            defaults = {f.name: f.default for f in fields(_Setup) if f.default is not MISSING}

            def as_json(value: Any) -> Any:  # tuples and lists compare as JSON stores them
                return json.loads(json.dumps(value))

            diff = sorted(k for k in recorded if k != "steps" and as_json(before.get(k, defaults.get(k))) != as_json(recorded[k]))
            if diff:
                raise ValueError(f"{settings}: the run was started with other settings ({', '.join(diff)}); "
                                 "resume it with the same ones or choose another --run-dir")
            atomic_write_text(settings, json.dumps(recorded, indent=2) + "\n")
            return latest
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(settings, json.dumps(recorded, indent=2) + "\n")
        return None

    def latest(self) -> Optional[Path]:
        # The same pointer as every run's (checkpoints/latest.json naming a checkpoint of the run).
        return CheckpointManager(self.root).latest()

    def save(self, model: Any, norm: Optional[VecNormalize], info: Dict[str, Any]) -> Path:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.checkpoints)  # left by a run killed mid-write
        final = self.checkpoints / f"{int(model.num_timesteps):010d}"
        with atomic_directory(final) as tmp:
            save_training_state(model, norm, tmp, info)
        atomic_write_text(self.checkpoints / "latest.json", json.dumps({"path": final.name}) + "\n")
        for old in sorted(p for p in self.checkpoints.iterdir() if p.is_dir() and not p.name.startswith("."))[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final


class _TeacherCallback(BaseCallback):
    """Checkpoints every ``every`` steps (between an update and the next rollout, where the
    state is whole) and shows a progress bar with the recent episode return."""

    def __init__(self, total: int, every: int, checkpoint: Callable[[], Path], progress: bool) -> None:
        super().__init__()
        self.total, self.every, self.checkpoint, self.progress = total, every, checkpoint, progress
        self.bar: Optional[tqdm] = None
        self.last_saved = 0

    def _on_training_start(self) -> None:
        self.last_saved = self.model.num_timesteps
        if self.progress:
            self.bar = tqdm(total=self.total, initial=self.model.num_timesteps, unit="step", desc="teacher")

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps - self.last_saved >= self.every:
            self.checkpoint()
            self.last_saved = self.model.num_timesteps

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
            if self.model.ep_info_buffer:
                recent = [info["r"] for info in list(self.model.ep_info_buffer)[-20:]]
                self.bar.set_postfix(ret=f"{np.mean(recent):.0f}", refresh=False)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
