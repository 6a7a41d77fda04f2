"""A pytest plugin (loaded by conftest.py): in CI (the environment variable CI set to true, as
.ci/run does) every optional package is installed, so a test skipped because an import failed
(``pytest.importorskip``, at module level or inside a test) is a broken environment, and it fails
instead of silently dropping the tests it guards. Elsewhere such skips stay skips."""

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_import_skip(report) -> None:
    if in_ci() and report.skipped and "could not import" in str(report.longrepr):
        message = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a test package is missing, not skipping: {message}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_import_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_import_skip(outcome.get_result())
