"""One study job, as a worker runs it: train (or reuse) one policy, or evaluate one under one timing.

Workers may be other processes or other machines (Ray), so jobs take and return plain data: a
training job returns the policy directory's files as bytes, and an evaluation job gets them and
loads the policy from a private temporary directory. Nothing here needs a file system shared with
the driver, except that a training job writes its run directory on the worker's.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from cfc_control.experts import make_expert
from cfc_control.flags import differences
from cfc_control.policies import load_policy
from cfc_control.policies.periods import PeriodOutsideTrainingWarning
from cfc_control.study.jobs import EvalJob, ExpertJob, TrainJob
from cfc_control.tasks import make_env, resolve_env_id
from cfc_control.training import RunConfig, RunOptions, train
from cfc_control.training.command_line import PROG, parse_config
from cfc_control.episodes.evaluation import EVAL_SEED, evaluate
from cfc_control.episodes.closed_loop import run_episodes
from cfc_control.training.run_context import read_run_config

POLICY_FILES = ("config.json", "model.safetensors", "card.json", "manifest.json")
OPTIONAL_POLICY_FILES = ("card.json", "manifest.json")  # the manifest travels with what it vouches for


def fingerprint(files: Dict[str, bytes]) -> str:
    """A short hash of a policy's weights and config: evaluations are tied to the exact policy."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update(name.encode())
        h.update(files[name])
    return h.hexdigest()[:16]


def read_policy_files(policy_dir: Path) -> Dict[str, bytes]:
    """The policy directory's files (card.json and manifest.json only if present). Raises
    FileNotFoundError."""
    files = {}
    for name in POLICY_FILES:
        path = Path(policy_dir) / name
        if path.is_file():
            files[name] = path.read_bytes()
        elif name not in OPTIONAL_POLICY_FILES:
            raise FileNotFoundError(f"{policy_dir}: no {name}; not a finished policy directory")
    return files


def expected_config(job: TrainJob, run_dir: Path) -> RunConfig:
    """The config of a training run of ``job`` in ``run_dir``. Raises ValueError naming a
    training flag that does not parse."""
    try:
        config, _ = parse_config(job.argv(run_dir))
    except SystemExit as err:  # argparse already printed why
        raise ValueError(f"bad training arguments for {job.key}: {list(job.train_args)!r}") from err
    return replace(config, env=resolve_env_id(config.env))


def reusable(job: TrainJob, run_dir: Path) -> Optional[str]:
    """None when ``run_dir`` holds a run of exactly ``job`` (its recorded config equals the
    job's), else why not. A run without run.json is not ours to judge: reason given."""
    try:
        stored = read_run_config(run_dir)
    except ValueError as err:
        return str(err)
    if stored is None:
        return f"{run_dir} has no run.json"
    expected = expected_config(job, run_dir)
    if stored[0] == expected:
        return None
    return "; ".join(f"{path}: {have!r} (run) vs {want!r} (study)"
                     for path, have, want in differences(stored[0], expected))


def run_train(job: TrainJob, run_dir: str, reuse: bool) -> Dict[str, Any]:
    """Train ``job`` into ``run_dir`` (or reuse/resume the run there when ``reuse``); returns the
    record (model, seed, run_dir, reused, training_time_s, fingerprint, ...) with ``files``, the
    policy's files as bytes. Raises ValueError when ``run_dir`` holds a different run; a failed
    training raises its own error."""
    torch.set_num_threads(1)
    run_path = Path(run_dir)
    start = time.time()
    mismatch = reusable(job, run_path) if reuse and run_path.exists() else "not reusing"
    if reuse and run_path.exists() and (run_path / "run.json").is_file() and mismatch:
        raise ValueError(f"{run_path} holds a different run ({mismatch}); remove it, pass --runs-root "
                         f"elsewhere or --no-reuse to overwrite it")
    finished = mismatch is None and (run_path / "policy" / "config.json").is_file()
    resumed = mismatch is None and not finished
    if not finished:
        config = expected_config(job, run_path)
        options = RunOptions(resume=resumed, progress=False, tensorboard=False, threads=1)
        train(config, options, command=f"{PROG} {shlex.join(job.argv(_shown(run_path)))}")
    files = read_policy_files(run_path / "policy")
    card = json.loads(files["card.json"]) if "card.json" in files else {}
    return {"model": job.model, "seed": job.seed, "task": job.task, "algo": job.algo, "run_dir": str(run_path),
            "reused": finished, "resumed": resumed, "training_time_s": card.get("training_time_s"),
            "parameters": card.get("parameters"), "command": card.get("command"),
            "final": card.get("final"), "job_time_s": round(time.time() - start, 2),
            "fingerprint": fingerprint(files), "files": files}


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when inside it: the command a card records
    reruns from the repository's root, not only on this machine."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def run_eval(job: EvalJob, files: Dict[str, bytes]) -> Dict[str, Any]:
    """Evaluate the policy given as its files under ``job.timing``; returns the record (model,
    seed, timing, timing_spec, period_s, episodes, mean, std, returns, lengths, fingerprint)."""
    torch.set_num_threads(1)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="cfc-study-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        policy = load_policy(tmp)
    with warnings.catch_warnings():  # the grid leaves the trained periods on purpose: no warning
        warnings.simplefilter("ignore", PeriodOutsideTrainingWarning)
        r = evaluate(policy, job.train.task, timing=job.timing.spec, episodes=job.episodes)
    return {"model": job.train.model, "seed": job.train.seed, "timing": job.timing.name,
            "timing_spec": job.timing.spec, "period_s": job.timing.period_s, "episodes": job.episodes,
            "eval_seed": r.seed, "mean": r.mean, "std": r.std, "returns": r.returns, "lengths": r.lengths,
            "fingerprint": fingerprint(files), "eval_time_s": round(time.time() - start, 2)}


def run_expert(job: ExpertJob) -> Dict[str, Any]:
    """Evaluate the expert under ``job.timing`` on the evaluation's reset seeds; returns the record
    (expert, timing, timing_spec, period_s, episodes, mean, std, returns, lengths)."""
    start = time.time()

    def env_fn():
        return make_env(job.task, timing=job.timing.spec)

    probe = env_fn()
    try:
        expert = make_expert(job.expert, probe)
    finally:
        probe.close()
    result = run_episodes(env_fn, [EVAL_SEED + i for i in range(job.episodes)], expert=expert)
    returns = np.asarray(result.returns, dtype=float)
    return {"model": "expert", "expert": job.expert, "timing": job.timing.name, "timing_spec": job.timing.spec,
            "period_s": job.timing.period_s, "episodes": job.episodes, "eval_seed": EVAL_SEED,
            "mean": float(returns.mean()), "std": float(returns.std()), "returns": returns.tolist(),
            "lengths": np.asarray(result.lengths).astype(int).tolist(), "eval_time_s": round(time.time() - start, 2)}
