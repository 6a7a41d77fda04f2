"""Under CI=true a missing optional package fails the run (tests/ci_optional.py); elsewhere the
tests it guards are skipped."""

import pytest

MISSING_AT_IMPORT = """
import pytest
pytest.importorskip("cfc_control_no_such_package")

def test_guarded():
    pass
"""

MISSING_IN_TEST = """
import pytest

def test_guarded():
    pytest.importorskip("cfc_control_no_such_package")

def test_unrelated():
    pass
"""


@pytest.mark.parametrize("source", [MISSING_AT_IMPORT, MISSING_IN_TEST], ids=["module-level", "in-a-test"])
def test_a_missing_optional_package_fails_in_ci_and_skips_elsewhere(pytester, monkeypatch, source):
    pytester.makeconftest('pytest_plugins = ["ci_optional"]')
    pytester.makepyfile(test_guarded=source, test_other="def test_other():\n    pass\n")
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    counts = result.parseoutcomes()
    assert counts.get("skipped", 0) == 0 and counts.get("failed", 0) + counts.get("errors", 0) == 1
    result.stdout.fnmatch_lines(["*CI=true: a test package is missing*cfc_control_no_such_package*"])
    monkeypatch.delenv("CI")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == 0 and result.parseoutcomes().get("skipped") == 1
