"""Whole-suite rule: where the real-ComfyUI tier is required (CI), a skipped tier is a failure.

``EMS_REQUIRE_INTEGRATION=1`` (scripts/test.sh sets it when ``CI=true``) fails the run when no
test under tests/integration ran, or when any of them was skipped — a CI run that quietly ran the
unit tier alone must not look green.
"""

from __future__ import annotations

import os

import pytest

_INTEGRATION = "tests/integration/"
_outcomes = {"passed": 0, "failed": 0, "skipped": []}


def _required() -> bool:
    return os.environ.get("EMS_REQUIRE_INTEGRATION", "") not in ("", "0")


def pytest_runtest_logreport(report):
    if not report.nodeid.startswith(_INTEGRATION):
        return
    if report.skipped and not hasattr(report, "wasxfail"):  # an xfail ran (and failed as expected)
        _outcomes["skipped"].append(report.nodeid)
    elif report.when == "call":
        _outcomes["passed" if report.passed else "failed"] += 1


def pytest_sessionfinish(session, exitstatus):
    if not _required() or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return
    ran = _outcomes["passed"] + _outcomes["failed"]
    problem = None
    if _outcomes["skipped"]:
        problem = f"{len(_outcomes['skipped'])} integration test(s) skipped, e.g. {_outcomes['skipped'][0]}"
    elif ran == 0:
        problem = "no integration test ran"
    if problem:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        _outcomes["problem"] = problem


def pytest_terminal_summary(terminalreporter):
    if _outcomes.get("problem"):
        terminalreporter.write_line(
            f"EMS_REQUIRE_INTEGRATION: {_outcomes['problem']} — the real-ComfyUI tier is required here "
            "(CI), so this run FAILS. Give it a ComfyUI (COMFYUI_DIR or COMFYUI_ARCHIVE) and Chromium "
            "(scripts/install-browser.sh).",
            red=True,
            bold=True,
        )
