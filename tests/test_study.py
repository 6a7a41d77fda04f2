"""The timing study (cfc_control.study): job grid, resume, report formats, and tiny end-to-end
studies on the inline, local-process and Ray backends."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cfc_control.training.command_line import parse_config
from cfc_control.episodes.evaluation import evaluate
from cfc_control.study import load_expert_results, load_results, make_backend, make_plan, parse_timings, run_study, write_report
from cfc_control.study.__main__ import main as study_main
from cfc_control.study.backends import InlineBackend, ProcessBackend
from cfc_control.study.jobs import DEFAULT_TIMINGS, REQUIRED_TIMINGS, TrainJob, same_expert
from cfc_control.study.work import reusable

TASK = "InvertedPendulum-Pos-Irregular"
# Tiny BC: 2 demonstration episodes (1 train, 1 validation), 1 epoch, a small model.
TINY = ("--episodes", "2", "--epochs", "1", "--model-kw", "units=8", "--window", "16", "--burn-in", "8")


def tiny_plan(tmp: Path, models=("cfc", "mlp"), seeds=(0,), timings=("0.5x", "Jitter"), expert=None, **kw):
    return make_plan(TASK, models=models, seeds=seeds, timings=timings, episodes=2, out=tmp / "study",
                     runs_root=tmp / "runs", train_args=TINY, expert=expert, **kw)


@pytest.fixture(scope="module")
def inline_study(tmp_path_factory):
    """A finished tiny study (2 models, 1 seed, 2 timings, the LQR reference row) run in this process."""
    tmp = tmp_path_factory.mktemp("study")
    plan = tiny_plan(tmp, expert="auto")
    outcome = run_study(plan, InlineBackend(), log=lambda _: None)
    return plan, outcome


# -- the job grid ----------------------------------------------------------------------------------
def test_grid_is_models_times_seeds_then_timings(tmp_path):
    plan = make_plan(TASK, models=["cfc", "ncp", "mlp"], seeds=[0, 1, 2], out=tmp_path, runs_root=tmp_path)
    jobs = plan.train_jobs()
    assert [(j.model, j.seed) for j in jobs] == [(m, s) for m in ("cfc", "ncp", "mlp") for s in (0, 1, 2)]
    assert [e.timing.name for e in plan.eval_jobs(jobs[0])] == list(DEFAULT_TIMINGS)
    assert set(REQUIRED_TIMINGS) <= set(DEFAULT_TIMINGS)
    keys = {plan.result_path(e) for j in jobs for e in plan.eval_jobs(j)} | {plan.result_path(j) for j in jobs}
    assert len(keys) == 9 * (1 + len(DEFAULT_TIMINGS))  # every job has its own result file


def test_timings_resolve_to_seconds_of_the_task():
    grid = {t.name: t for t in parse_timings("0.5x,1x,2x,Jitter,Irregular,Wide", nominal_dt=0.04)}
    assert grid["0.5x"].spec == "fixed:0.02" and grid["0.5x"].period_s == pytest.approx(0.02)
    assert grid["2x"].spec == "fixed:0.08" and grid["1x"].required
    assert grid["Jitter"].spec == "uniform:0.032,0.048" and grid["Jitter"].period_s is None
    assert grid["Irregular"].spec == "loguniform:0.02,0.08" and grid["Irregular"].required
    assert grid["Wide"].spec == "loguniform:0.01,0.16" and not grid["Wide"].required


@pytest.mark.parametrize("bad, needle", [("0.5x,Sometimes", "Sometimes"), ("1x,1x", "twice"), ("", "empty"),
                                         ("0x", "positive")])
def test_bad_timings_are_named(bad, needle):
    with pytest.raises(ValueError, match=needle):
        parse_timings(bad, nominal_dt=0.04)


@pytest.mark.parametrize("kw, needle", [({"models": ["cfc", "transformer"]}, "transformer"),
                                        ({"seeds": [0, 0]}, "seeds"), ({"algo": "sac"}, "sac"),
                                        ({"episodes": 0}, "episodes")])
def test_bad_plans_are_named(tmp_path, kw, needle):
    with pytest.raises(ValueError, match=needle):
        make_plan(TASK, out=tmp_path, **kw)


def test_the_reference_row_is_the_expert_the_students_learn_from(tmp_path):
    plan = make_plan(TASK, out=tmp_path, train_args=("--expert", "lqr-scheduled"))
    assert plan.expert == "lqr-scheduled"
    assert make_plan(TASK, out=tmp_path, train_args=("--expert=lqr-scheduled",)).expert == "lqr-scheduled"
    assert make_plan(TASK, out=tmp_path).expert == "lqr"  # the task's default expert otherwise
    assert make_plan(TASK, out=tmp_path, train_args=("--expert", "lqr-scheduled"), expert=None).expert is None


def test_an_expert_row_stored_in_another_checkout_still_counts():
    assert same_expert("/elsewhere/policies/experts/swimmer-ppo-teacher", "policies/experts/swimmer-ppo-teacher")
    assert not same_expert("/elsewhere/policies/experts/walker2d-ppo-teacher", "policies/experts/swimmer-ppo-teacher")
    assert same_expert("lqr", "lqr") and not same_expert("lqr", "lqr-scheduled")


def test_run_dirs_match_the_train_cli_default_so_hand_made_runs_are_reused(tmp_path):
    job = TrainJob("cfc_control/InvertedPendulum-Pos-Irregular-v0", "bc", "lstm", 2)
    config, _ = parse_config(["--env", TASK, "--policy", "lstm", "--seed", "2"])
    assert job.run_dir(Path("runs")) == config.run_dir
    other = TrainJob(job.task, "bc", "lstm", 2, ("--epochs", "80"))
    assert other.run_dir(tmp_path) != job.run_dir(tmp_path)  # other training flags, other directory


def test_a_study_that_starts_from_another_continues_the_run_of_each_model_and_seed(tmp_path):
    students = make_plan(TASK, algo="dagger", models=["cfc", "lstm"], out=tmp_path / "s", runs_root=tmp_path / "runs")
    tuned = make_plan(TASK, algo="ppo", models=["cfc"], seeds=[1, 2], out=tmp_path / "t", runs_root=tmp_path / "runs",
                      start_from=students)
    for job in tuned.train_jobs():
        student = next(j for j in students.train_jobs() if (j.model, j.seed) == (job.model, job.seed))
        assert job.init_from == str(student.run_dir(students.runs_root) / "policy")
        assert job.argv(tmp_path)[-2:] == ["--init-from", job.init_from]
    assert parse_config(tuned.train_jobs()[0].argv(tmp_path))[0].ppo.init_from == tuned.train_jobs()[0].init_from
    with pytest.raises(ValueError, match="no runs of \\['ncp'\\]"):
        make_plan(TASK, algo="ppo", models=["ncp"], out=tmp_path / "t", start_from=students)
    with pytest.raises(ValueError, match="PPO study"):
        make_plan(TASK, algo="bc", out=tmp_path / "t", start_from=students)


def test_a_fine_tune_of_students_made_by_another_recipe_gets_another_run_directory(tmp_path):
    def fine_tune(student_flags, runs_root):
        students = make_plan(TASK, algo="dagger", models=["cfc"], seeds=[0], out=tmp_path / "s",
                             runs_root=runs_root, train_args=student_flags)
        tuned = make_plan(TASK, algo="ppo", models=["cfc"], seeds=[0], out=tmp_path / "t", runs_root=runs_root,
                          start_from=students)
        return tuned.train_jobs()[0].run_dir(runs_root)

    before = fine_tune(("--epochs", "80"), tmp_path / "runs")
    assert fine_tune(("--epochs", "40"), tmp_path / "runs") != before
    # The same runs under another root keep their names (reuse compares names, not roots).
    assert fine_tune(("--epochs", "80"), tmp_path / "elsewhere").name == before.name


# -- resume ----------------------------------------------------------------------------------------
def test_a_finished_study_reruns_nothing(inline_study):
    plan, first = inline_study
    assert first.trained == 2 and first.evaluated == 4 + 2 and not first.failures
    stamps = {p: p.stat().st_mtime_ns for p in (plan.out / "jobs").iterdir()}
    again = run_study(plan, InlineBackend(), log=lambda _: None)
    assert (again.trained, again.evaluated, again.reused_train, again.reused_eval) == (0, 0, 2, 6)
    assert {p: p.stat().st_mtime_ns for p in (plan.out / "jobs").iterdir()} == stamps


def test_an_interrupted_study_resumes_only_the_missing_jobs(inline_study, monkeypatch):
    plan, _ = inline_study
    (plan.out / "jobs" / "eval-mlp-s0-Jitter.json").unlink()
    (plan.out / "jobs" / "eval-cfc-s0-0.5x.json").write_text("{ truncated")  # a torn write is rerun
    done = run_study(plan, InlineBackend(), log=lambda _: None)
    assert (done.trained, done.evaluated, done.reused_eval) == (0, 2, 2 + 2)
    trains, evals = load_results(plan)
    assert len(trains) == 2 and len(evals) == 4


def test_a_failed_job_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    from cfc_control.study import driver as runner

    real = runner.run_eval

    def flaky(job, files):
        if job.timing.name == "Jitter":
            raise RuntimeError("simulated crash")
        return real(job, files)

    plan = tiny_plan(tmp_path, models=("mlp",))
    monkeypatch.setattr(runner, "run_eval", flaky)
    out = run_study(plan, InlineBackend(), log=lambda _: None)
    assert out.failures == {"mlp-s0-Jitter": "RuntimeError: simulated crash"} and out.evaluated == 1
    monkeypatch.setattr(runner, "run_eval", real)
    out = run_study(plan, InlineBackend(), log=lambda _: None)
    assert (out.trained, out.evaluated, out.failures) == (0, 1, {})


def test_a_run_directory_with_other_flags_is_not_reused(inline_study):
    plan, _ = inline_study
    job = plan.train_jobs()[0]
    run_dir = job.run_dir(plan.runs_root)
    assert reusable(job, run_dir) is None
    stored = json.loads((run_dir / "run.json").read_text())
    changed = TrainJob(job.task, job.algo, job.model, job.seed, tuple(a if a != "1" else "3" for a in TINY))
    (run_dir.parent / "other").mkdir()
    (run_dir.parent / "other" / "run.json").write_text(json.dumps(stored))
    assert "epochs: 1 (run) vs 3 (study)" in reusable(changed, run_dir.parent / "other")


def test_results_of_a_recipe_since_changed_do_not_count(inline_study):
    plan, _ = inline_study
    trains, evals = load_results(plan)
    assert len(trains) == 2 and evals
    changed = make_plan(TASK, models=plan.models, seeds=plan.seeds, timings=("0.5x", "Jitter"), episodes=2,
                        out=plan.out, runs_root=plan.runs_root, train_args=(*TINY, "--lr", "0.001"), expert=None)
    assert load_results(changed) == ([], [])  # the stored records are the old flags' runs


# -- report ----------------------------------------------------------------------------------------
def _fake_evals(plan, skip=()):
    out = []
    for j in plan.train_jobs():
        for e in plan.eval_jobs(j):
            if (j.model, j.seed, e.timing.name) in skip:
                continue
            mean = 100.0 * (1 + j.seed) + (500 if j.model == "cfc" else 0)
            out.append({"model": j.model, "seed": j.seed, "timing": e.timing.name, "timing_spec": e.timing.spec,
                        "period_s": e.timing.period_s, "episodes": e.episodes, "mean": mean, "std": 1.0,
                        "returns": [mean - 1, mean + 1], "lengths": [10, 12]})
    return out


def test_report_has_every_model_and_timing_a_row_per_seed_and_a_plot(tmp_path):
    plan = make_plan(TASK, models=["cfc", "lstm", "mlp"], seeds=[0, 1], episodes=2, out=tmp_path / "s",
                     runs_root=tmp_path)
    evals = _fake_evals(plan, skip={("mlp", 1, "Wide")})
    paths = write_report(plan, [], evals, {"command": "python -m cfc_control.study timing", "wall_s": 12.0,
                                           "backend": "processes"})
    md = paths["md"].read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    header = table[0]
    assert all(f" {t.name}" in header for t in plan.timings)
    assert "Wide*" in header and "0.25x*" in header and "Jitter*" not in header  # extras marked
    rows = {line.split("|")[1].strip(): line for line in table[1:4]}
    assert set(rows) == {"cfc", "lstm", "mlp"}
    assert "**650 ± 50**" in rows["cfc"]  # seeds 0, 1: per-seed means 600, 700; best in bold
    assert "100 ± 0 (n=1)" in rows["mlp"]  # a cell with fewer seeds says so
    assert "python -m cfc_control.study timing" in md and "12 s" in md
    with paths["csv"].open() as fh:
        rows_csv = list(csv.DictReader(fh))
    assert len(rows_csv) == 3 * 2 * len(plan.timings) - 1
    assert {r["timing"] for r in rows_csv} == {t.name for t in plan.timings}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- end to end ------------------------------------------------------------------------------------
def _check_against_direct_evaluation(plan):
    trains, evals = load_results(plan)
    assert len(trains) == len(plan.models) * len(plan.seeds)
    assert len(evals) == len(trains) * len(plan.timings)
    r = evals[-1]
    run_dir = next(t["run_dir"] for t in trains if (t["model"], t["seed"]) == (r["model"], r["seed"]))
    direct = evaluate(Path(run_dir) / "policy", TASK, timing=r["timing_spec"], episodes=r["episodes"])
    assert r["returns"] == pytest.approx(direct.returns)


def test_tiny_study_on_local_processes_end_to_end(tmp_path, capsys):
    argv = ["timing", "--env", TASK, "--models", "cfc,mlp", "--seeds", "0", "--timings", "0.5x,Irregular",
            "--episodes", "2", "--out", str(tmp_path / "study"), "--runs-root", str(tmp_path / "runs"),
            "--workers", "2", "--", *TINY]
    assert study_main(argv) == 0
    plan = tiny_plan(tmp_path, timings=("0.5x", "Irregular"))
    for name in ("results.md", "results.csv", "returns_vs_period.png", "study.json"):
        assert (plan.out / name).is_file(), name
    md = (plan.out / "results.md").read_text()
    assert "| cfc |" in md and "| mlp |" in md and "--workers 2" in md and "processes (2 workers)" in md
    _check_against_direct_evaluation(plan)
    history = json.loads((plan.out / "study.json").read_text())["invocations"]
    assert history[-1]["trained"] == 2 and history[-1]["evaluated"] == 4 + 2  # + the expert's row
    assert "_expert (lqr, full state)_" in md
    assert study_main(argv[:-len(TINY) - 1] + ["--report-only", "--", *TINY]) == 0


def test_tiny_study_on_ray_local(tmp_path, inline_study):
    pytest.importorskip("ray")
    # Reuse the inline study's demonstrations: a fresh Ray worker is slow enough to start.
    demos = inline_study[0].train_jobs()[0].run_dir(inline_study[0].runs_root) / "demos.npz"
    plan = make_plan(TASK, models=["mlp"], seeds=[0], timings=["Jitter"], episodes=2, out=tmp_path / "s",
                     runs_root=tmp_path / "runs", train_args=TINY + ("--demos", str(demos)), expert=None)
    with make_backend(workers=1, ray_address="local") as backend:
        assert backend.name == "ray"
        outcome = run_study(plan, backend, log=lambda _: None)
    assert (outcome.trained, outcome.evaluated, outcome.failures) == (1, 1, {})
    _check_against_direct_evaluation(plan)


def test_missing_ray_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[ray\]'"):
        make_backend(ray_address="local")


def test_backend_choice_and_bad_workers():
    assert isinstance(make_backend(workers=0), InlineBackend)
    with make_backend(workers=1) as b:
        assert isinstance(b, ProcessBackend)
    with pytest.raises(ValueError, match="-1"):
        make_backend(workers=-1)


DRIVER = """
import sys, time
from pathlib import Path
from cfc_control.study.backends import ProcessBackend

def job(path):
    import os
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    backend = ProcessBackend(1)
    backend.submit(job, sys.argv[1])
    time.sleep(120)
"""


def test_workers_end_when_their_driver_is_killed(tmp_path):
    (tmp_path / "driver.py").write_text(DRIVER)
    pid_file = tmp_path / "worker.pid"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(pid_file)], cwd=tmp_path, env=env)
    try:
        deadline = time.time() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.time() < deadline and driver.poll() is None, "the worker never started"
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        driver.kill()  # no chance to stop its pool
        driver.wait()
        deadline = time.time() + 15
        while _alive(worker):
            assert time.time() < deadline, "the worker outlived its driver"
            time.sleep(0.2)
    finally:
        if driver.poll() is None:
            driver.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")  # a zombie (exited, not yet reaped) is not alive
    return not (status.is_file() and "\tZ" in status.read_text())


def test_cli_rejects_bad_input_with_the_value(capsys, tmp_path):
    with pytest.raises(SystemExit):
        study_main(["timing", "--timings", "0.5x,Often", "--out", str(tmp_path)])
    assert "Often" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study_main(["timing", "--out", str(tmp_path), "--", "--epochs", "many"])
    err = capsys.readouterr().err
    assert "many" in err and "--epochs" in err


def test_the_expert_reference_row(inline_study):
    plan, _ = inline_study
    experts = load_expert_results(plan)
    assert [r["timing"] for r in experts] == ["0.5x", "Jitter"] and experts[0]["expert"] == "lqr"
    # The LQR expert balances the pendulum: every episode lasts the whole 40 s horizon.
    assert experts[0]["lengths"] == [2000, 2000] and experts[1]["mean"] > 950
    paths = write_report(plan, *load_results(plan), {"command": "c", "wall_s": 1.0}, experts)
    md = paths["md"].read_text()
    assert "| _expert (lqr, full state)_ |" in md
    with paths["csv"].open() as fh:
        assert sum(r["model"] == "expert" for r in csv.DictReader(fh)) == 2


def test_an_interrupted_training_is_resumed_from_its_checkpoint(inline_study):
    import shutil

    plan, _ = inline_study
    job = next(j for j in plan.train_jobs() if j.model == "mlp")
    before = load_results(plan)[1]
    shutil.rmtree(job.run_dir(plan.runs_root) / "policy")  # died after its last checkpoint
    plan.result_path(job).unlink()
    out = run_study(plan, InlineBackend(), log=lambda _: None)
    record = json.loads(plan.result_path(job).read_text())
    assert record["resumed"] and not record["reused"] and out.trained == 1
    # Resumed from the final checkpoint, the policy is the same one: its evaluations still count.
    assert out.evaluated == 0 and load_results(plan)[1] == before
