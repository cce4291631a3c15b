"""Shared pytest hooks: each test item remembers its phase reports (`item.rep_setup`, `item.rep_call`), so
fixtures can act on failure (the browser tests save a screenshot of the page as it was); under pytest-xdist
(`scripts/test.sh` runs one worker per core) the longest files start first and each worker's torch gets its
share of the cores."""

from __future__ import annotations

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Set before any test imports torch, and inherited by every process a test starts (`har pipeline`, the
    # daemon's runs): without it each worker's torch spreads over every core, and two workers training at once
    # run several times slower than one after the other.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(_share))

# Files are handed to workers in collection order (`--dist loadfile --no-loadscope-reorder`): the longest first,
# so that no worker starts a 10-minute file while the other one has nothing left.
LONGEST_FIRST = ("compose", "integration", "slow", "browser")


def _rank(item: pytest.Item) -> int:
    marks = {m.name for m in item.iter_markers()}
    return next((i for i, name in enumerate(LONGEST_FIRST) if name in marks), len(LONGEST_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: a file's tests stay together and in order


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
