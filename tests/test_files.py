"""Atomic writes: a failed write leaves the old file whole and no temporary file behind."""

import os
import stat

import pytest

from cfc_control.files import atomic_path, atomic_write_text


def test_atomic_write_replaces_and_is_readable_by_others(tmp_path):
    target = tmp_path / "config.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) & 0o044  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.safetensors"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    from cfc_control.files import atomic_directory

    target = tmp_path / "checkpoint"
    with atomic_directory(target) as tmp:
        (tmp / "a.json").write_text("1")
    assert (target / "a.json").read_text() == "1"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target) as tmp:
            (tmp / "a.json").write_text("2")
            raise KeyboardInterrupt
    assert (target / "a.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
