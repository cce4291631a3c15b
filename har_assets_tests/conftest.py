"""Shared pytest hooks: each test item remembers its phase reports (`item.rep_setup`, `item.rep_call`), so
fixtures can act on failure (the browser tests save a screenshot of the page as it was)."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(scope="module", autouse=True)
def mlflow_env_stays_in_its_module():
    """`mlflow.set_tracking_uri`/`set_registry_uri` (test helpers call them) also export the URIs as environment
    variables; restore them so no module sees another's store."""
    saved = {var: os.environ.get(var) for var in MLFLOW_ENV}
    yield
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
