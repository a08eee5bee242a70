"""Shared fixtures: a real xmppd on an ephemeral port with trustme certificates."""
from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (XMPPD_REQUIRE_EXTERNAL=1) a skipped test that needs an external
    program is a failure: CI installs those programs, so a skip means it didn't."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("XMPPD_REQUIRE_EXTERNAL") and item.get_closest_marker("external"):
        rep.outcome = "failed"
        rep.longrepr = f"{item.nodeid}: a test that needs an external program was skipped in CI: {rep.longrepr}"


@pytest.fixture
def pg_database():
    """A fresh database on the test suite's PostgreSQL (tests/pg.py): the options
    of ``open_storage("postgres", **options)``. Mark the test
    ``pytest.mark.external("postgres")``: it is skipped without PostgreSQL."""
    from tests import pg
    if not pg.available():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return pg.cluster().new_database()
