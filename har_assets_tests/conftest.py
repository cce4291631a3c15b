"""Shared pytest hooks: each test item remembers its phase reports (`item.rep_setup`, `item.rep_call`), so
fixtures can act on failure (the browser tests save a screenshot of the page as it was)."""

from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
