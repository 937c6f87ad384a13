"""Suite-wide rules.

Tests that need tshark, Lua, lua-luaossl, root or network namespaces skip on a developer's
machine that lacks them, but under ``CI=true`` (set by ``.ci/run``, which installs all of
them) such a skip is a failure: a missing install step must not pass silently.
"""

from __future__ import annotations

import os

import pytest

CI_REQUIRED = ("tshark", "lua", "root", "namespace", "netns", "not installed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(word in reason.lower() for word in CI_REQUIRED):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where .ci/run installs what it needs: {reason}"
