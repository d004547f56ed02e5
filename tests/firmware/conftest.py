from dztest.broker import fleet_pki, tls_broker  # noqa: F401  (fixtures)
from dztest.sync_world import sqlite_world  # noqa: F401  (fixture)
