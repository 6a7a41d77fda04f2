"""One study job, as a worker runs it: train (or reuse) one policy, or evaluate one under one timing.

Workers may be other processes or other machines (Ray), so jobs take and return plain data: a
training job returns the policy directory's files as bytes, and an evaluation job gets them and
loads the policy from a private temporary directory. Nothing here needs a file system shared with
the driver, except that a training job writes its run directory on the worker's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

from cfc_control.study.jobs import EvalJob, ExpertJob, TrainJob

POLICY_FILES = ("config.json", "model.safetensors", "card.json", "manifest.json")
OPTIONAL_POLICY_FILES = ("card.json", "manifest.json")  # the manifest travels with what it vouches for
# run.json keys that may differ between a reusable run and the study's request: where it lives,
# how it logs, and the evaluation the study does itself.
_FREE_KEYS = {"out", "resume", "no_progress", "no_tensorboard", "threads", "eval_episodes", "eval_timings",
              "checkpoint_every"}


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


def expected_run_args(job: TrainJob, run_dir: Path) -> Dict[str, Any]:
    """The run.json a training run of ``job`` writes, without the keys that may differ."""
    from cfc_control.training.launch import build_parser, parse_model_kw

    try:
        args = build_parser().parse_args(job.argv(run_dir))
    except SystemExit as err:  # argparse already printed why
        raise ValueError(f"bad training arguments for {job.key}: {list(job.train_args)!r}") from err
    args.model_kw = parse_model_kw(args.model_kw)
    return {k: v for k, v in vars(args).items() if k not in _FREE_KEYS}


def reusable(job: TrainJob, run_dir: Path) -> Optional[str]:
    """None when ``run_dir`` holds a run of exactly ``job`` (same task, algorithm, model, seed and
    training flags), else why not. A run without run.json is not ours to judge: reason given."""
    from cfc_control.tasks import resolve_env_id

    path = run_dir / "run.json"
    if not path.is_file():
        return f"{run_dir} has no run.json"
    stored = json.loads(path.read_text())
    expected = expected_run_args(job, run_dir)
    diffs = []
    for key, want in expected.items():
        have = stored.get(key)
        if key == "env" and have is not None:
            have, want = resolve_env_id(have), resolve_env_id(want)
        if have != want:
            diffs.append(f"{key}: {have!r} (run) vs {want!r} (study)")
    return "; ".join(diffs) or None


def run_train(job: TrainJob, run_dir: str, reuse: bool) -> Dict[str, Any]:
    """Train ``job`` into ``run_dir`` (or reuse/resume the run there when ``reuse``); returns the
    record (model, seed, run_dir, reused, training_time_s, fingerprint, ...) with ``files``, the
    policy's files as bytes. Raises ValueError when ``run_dir`` holds a different run and
    RuntimeError when training fails (with the end of its log)."""
    import torch

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
        from cfc_control.training.launch import main as train_main

        argv = job.argv(run_path) + (["--resume"] if resumed else [])
        run_path.mkdir(parents=True, exist_ok=True)
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                code = train_main(argv)
            except SystemExit as err:  # argparse errors exit
                code = err.code if isinstance(err.code, int) else 2
        from cfc_control.files import atomic_write_text

        atomic_write_text(run_path / "study-train.log", log.getvalue())
        if code != 0:
            raise RuntimeError(f"training {job.key} failed (exit {code}): {log.getvalue()[-1500:]}")
    files = read_policy_files(run_path / "policy")
    card = json.loads(files["card.json"]) if "card.json" in files else {}
    return {"model": job.model, "seed": job.seed, "task": job.task, "algo": job.algo, "run_dir": str(run_path),
            "reused": finished, "resumed": resumed, "training_time_s": card.get("training_time_s"),
            "parameters": card.get("parameters"), "command": card.get("command"),
            "final": card.get("final"), "job_time_s": round(time.time() - start, 2),
            "fingerprint": fingerprint(files), "files": files}


def run_eval(job: EvalJob, files: Dict[str, bytes]) -> Dict[str, Any]:
    """Evaluate the policy given as its files under ``job.timing``; returns the record (model,
    seed, timing, timing_spec, period_s, episodes, mean, std, returns, lengths, fingerprint)."""
    import torch

    from cfc_control.policies import load_policy
    from cfc_control.training.evaluation import evaluate

    torch.set_num_threads(1)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="cfc-study-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        policy = load_policy(tmp)
    r = evaluate(policy, job.train.task, timing=job.timing.spec, episodes=job.episodes)
    return {"model": job.train.model, "seed": job.train.seed, "timing": job.timing.name,
            "timing_spec": job.timing.spec, "period_s": job.timing.period_s, "episodes": job.episodes,
            "eval_seed": r.seed, "mean": r.mean, "std": r.std, "returns": r.returns, "lengths": r.lengths,
            "fingerprint": fingerprint(files), "eval_time_s": round(time.time() - start, 2)}


def run_expert(job: ExpertJob) -> Dict[str, Any]:
    """Evaluate the expert under ``job.timing`` on the evaluation's reset seeds; returns the record
    (expert, timing, timing_spec, period_s, episodes, mean, std, returns, lengths)."""
    import numpy as np

    from cfc_control.experts import make_expert
    from cfc_control.tasks import make_env
    from cfc_control.training.evaluation import EVAL_SEED
    from cfc_control.training.rollout import run_episodes

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
