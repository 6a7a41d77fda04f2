"""The shipped-policy table (python -m cfc_control.policies) and the card check
(python -m cfc_control.eval DIR --card)."""

import json
import shutil
from pathlib import Path

import pytest

from cfc_control import eval as eval_cli
from cfc_control.episodes.evaluation import evaluate
from cfc_control.policies import read_card, write_card
from cfc_control.policies.__main__ import main as policies_main
from cfc_control.policies.catalog import catalog, compare_with_card, markdown_table
from cfc_control.tasks import task_info

SHIPPED = Path(__file__).resolve().parents[1] / "policies"
DEFAULT = SHIPPED / "cfc-invertedpendulum-pos-irregular"


def test_catalog_rows_come_from_the_cards():
    rows = {r["name"]: r for r in catalog(SHIPPED)}
    card = read_card(DEFAULT)
    row = rows[DEFAULT.name]
    assert row["task"] == "InvertedPendulum-Pos-Irregular"
    assert row["algorithm"] == card["algorithm"] and row["parameters"] == card["parameters"]
    assert row["evaluation"]["Jitter"][0] == card["evaluation"]["Jitter"]["mean"]
    table = markdown_table(list(rows.values()))
    assert f"`{DEFAULT.name}`" in table and "experts" not in table  # experts have no card timings
    assert len(table.splitlines()) == 2 + len(rows)


def test_the_teachers_table_comes_from_their_cards():
    rows = {r["name"]: r for r in catalog(SHIPPED / "experts")}
    teacher = rows["walker2d-ppo-teacher"]
    card = read_card(SHIPPED / "experts" / "walker2d-ppo-teacher")
    assert teacher["task"] == "Walker2d-v5 (full state)" and teacher["training_time_s"] == card["training_time_s"]
    assert teacher["evaluation"]["2x"][0] == card["timings"]["2x"]["mean"]
    assert "| 3.0 h |" in markdown_table([teacher])


def test_a_teacher_trained_on_from_another_says_where_it_started():
    row = {r["name"]: r for r in catalog(SHIPPED / "experts")}["reacher-sac-teacher-400k"]
    assert "| 0.2M env steps from `reacher-sac-teacher` |" in markdown_table([row])
    plain = {r["name"]: r for r in catalog(SHIPPED / "experts")}["reacher-sac-teacher"]
    assert "| 0.2M env steps |" in markdown_table([plain])


def test_a_fine_tune_names_the_run_of_the_student_it_started_from():
    row = {r["name"]: r for r in catalog(SHIPPED)}["cfc-dagger-ppo-hopper-pos-irregular"]
    student_run = Path(read_card(SHIPPED / "cfc-dagger-ppo-hopper-pos-irregular")["init_from"]).parent.name
    assert student_run.startswith("Hopper-Pos-Irregular-dagger-cfc-")
    assert f"env steps from `{student_run}` |" in markdown_table([row])


def test_a_teacher_that_saw_less_than_the_full_state_says_so(tmp_path):
    shutil.copytree(SHIPPED / "experts" / "hopper-sac-teacher", tmp_path / "t")
    card = json.loads((tmp_path / "t" / "card.json").read_text())
    (tmp_path / "t" / "card.json").write_text(json.dumps({**card, "obs": "PosVel"}))
    assert catalog(tmp_path)[0]["task"] == "Hopper-v5 (PosVel state)"


def test_catalog_shows_the_steady_periods_when_a_card_has_them():
    rows = [{"name": "a", "task": "T", "algorithm": "dagger", "policy": "cfc", "parameters": 10, "bytes": 2048,
             "budget": "", "training_time_s": 30.0, "seed": 0, "evaluation": {"Jitter": (900.0, 5.0, 20)}}]
    assert "0.5x" not in markdown_table(rows)
    rows[0]["evaluation"].update({"0.5x": (850.0, 3.0, 20), "2x": (700.0, 40.0, 20)})
    head, _, row = markdown_table(rows).splitlines()
    assert head.endswith("| 0.5x | 2x |") and row.endswith("| 850 ± 3 | 700 ± 40 |")


def test_a_steady_period_evaluated_as_a_spec_fills_its_column():
    # A training command's --eval-timings fixed:0.004 on the 0.008 s Hopper is the 0.5x column.
    name = "cfc-ppo-hopper-pos-irregular"
    card = read_card(SHIPPED / name)
    assert card["evaluation"]["fixed:0.004"]["timing_spec"] == "fixed:0.004" and "0.5x" not in card["evaluation"]
    row = {r["name"]: r for r in catalog(SHIPPED)}[name]
    assert row["evaluation"]["0.5x"][0] == card["evaluation"]["fixed:0.004"]["mean"]
    assert row["evaluation"]["2x"][0] == card["evaluation"]["fixed:0.016"]["mean"]
    assert row["evaluation"]["Fixed"][0] == card["evaluation"]["Fixed"]["mean"] != row["evaluation"]["0.5x"][0]


def test_policies_cli(capsys, tmp_path):
    assert policies_main([str(SHIPPED)]) == 0
    assert DEFAULT.name in capsys.readouterr().out
    assert policies_main([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert policies_main([str(SHIPPED), "--json"]) == 0
    assert any(r["name"] == DEFAULT.name for r in json.loads(capsys.readouterr().out))


def test_compare_with_card_needs_the_cards_numbers_to_its_rounding():
    """Evaluation is deterministic: a re-run reproduces the card, so a difference within the
    card's std is a different policy or environment, not noise."""
    card = {"mean": 100.0, "std": 10.0, "episodes": 20}
    assert compare_with_card(card, 100.0004, 10.0004) == ("reproduced", pytest.approx(0.0004))
    assert not compare_with_card(card, 109.0, 10.0).ok  # within the spread, not the same episodes
    assert not compare_with_card(card, 100.002, 10.0).ok
    assert not compare_with_card(card, 100.0, 10.002).ok  # the std is compared too
    assert compare_with_card({"mean": 9359.7, "std": 0.0}, 9359.7 + 0.0012, 0.0).ok  # 1e-6 relative
    assert not compare_with_card({"mean": 1000.0, "std": 0.0}, 999.0, 0.0).ok


def test_a_rounding_sensitive_task_holds_its_card_to_three_standard_errors():
    """Locomotion on another CPU: other episodes, the same policy. 3 x 10 / sqrt(20) = 6.7."""
    card = {"mean": 100.0, "std": 10.0, "episodes": 20}
    assert compare_with_card(card, 106.0, 10.0, rounding_sensitive=True) == ("within sampling error", 6.0)
    assert compare_with_card(card, 93.6, 9.0, rounding_sensitive=True).ok
    assert not compare_with_card(card, 107.0, 10.0, rounding_sensitive=True).ok  # another policy
    assert compare_with_card(card, 100.0, 10.0, rounding_sensitive=True).verdict == "reproduced"
    assert all(task_info(f"{family}-Pos-Jitter")["rounding_sensitive"]
               for family in ("HalfCheetah", "Hopper", "Walker2d", "Swimmer"))
    assert not any(task_info(f"{family}-Pos-Jitter")["rounding_sensitive"]
                   for family in ("InvertedPendulum", "InvertedDoublePendulum", "Reacher"))


def test_eval_card_reports_a_locomotion_column_within_its_sampling_error(tmp_path, capsys):
    shipped = SHIPPED / "cfc-dagger-swimmer-pos-irregular"
    entry = dict(read_card(shipped)["evaluation"]["Jitter"], episodes=2)
    result = evaluate(shipped, read_card(shipped)["task"], timing=entry["timing_spec"], episodes=2, seed=entry["seed"])
    shift = result.std / 2 ** 0.5  # one standard error: other episodes could give this

    def shifted(card, by):
        card["evaluation"]["Jitter"] = dict(entry, mean=result.mean + by, std=result.std)

    near = _copy_with_card(tmp_path / "near", lambda c: shifted(c, shift), source=shipped)
    assert eval_cli.main([str(near), "--card"]) == 0
    assert "within sampling error" in capsys.readouterr().out
    far = _copy_with_card(tmp_path / "far", lambda c: shifted(c, 4 * shift), source=shipped)
    assert eval_cli.main([str(far), "--card"]) == 1
    assert "OUTSIDE" in capsys.readouterr().out


def _copy_with_card(tmp_path, edit, source=DEFAULT):
    d = tmp_path / "p"
    shutil.copytree(source, d)
    card = read_card(d)
    card["evaluation"] = {"Jitter": card["evaluation"]["Jitter"]}
    edit(card)
    write_card(d, card)  # records the edited card in the manifest
    return d


def test_eval_card_reproduces_and_flags_a_wrong_card(tmp_path, capsys):
    good = _copy_with_card(tmp_path / "a", lambda c: None)
    assert eval_cli.main([str(good), "--card"]) == 0
    assert "ok" in capsys.readouterr().out

    def wrong(card):
        card["evaluation"]["Jitter"]["mean"] = 500.0
        card["evaluation"]["Jitter"]["std"] = 1.0

    bad = _copy_with_card(tmp_path / "b", wrong)
    assert eval_cli.main([str(bad), "--card"]) == 1
    assert "OUTSIDE" in capsys.readouterr().out


def test_eval_card_refuses_other_flags_and_cardless_dirs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        eval_cli.main([str(DEFAULT), "--card", "--timing", "Fixed"])
    nocard = _copy_with_card(tmp_path, lambda c: c.pop("evaluation"))
    assert eval_cli.main([str(nocard), "--card"]) == 2
    assert "no evaluation" in capsys.readouterr().err
