from dztest.broker import fleet_pki, tls_broker  # noqa: F401  (fixtures)
from dztest.sync_world import sqlite_world  # noqa: F401  (fixture)

import pytest  # noqa: E402


@pytest.fixture
def world(sqlite_world):
    """The settlement end-to-end tests' world: TLS broker, SQLite backend."""
    return sqlite_world
