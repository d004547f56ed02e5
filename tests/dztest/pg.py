"""A fresh PostgreSQL database per test, dropped afterwards.

    from dztest.pg import postgres_url      # fixture: "postgresql://.../dz_t_<hex>"

    with fresh_database() as url: ...      # the same, as a context manager

The server is the one at DZ_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres,
trust auth).  Unreachable: the test is skipped, or fails when CI is set.
"""

import contextlib
import os
import uuid

import pytest

ADMIN_URL = os.environ.get("DZ_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_connection():
    try:
        import psycopg
    except ImportError as exc:
        _unavailable("psycopg is not installed (%s)" % exc)
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL at %s is not reachable: %s" % (ADMIN_URL, exc))


def _unavailable(why):
    if os.environ.get("CI"):
        pytest.fail(why + " (and CI is set: the PostgreSQL tests must run)")
    pytest.skip(why)


def database_url(name):
    base, _, _ = ADMIN_URL.rpartition("/")
    return base + "/" + name


@contextlib.contextmanager
def fresh_database():
    name = "dz_t_" + uuid.uuid4().hex[:16]
    with _admin_connection() as admin:
        admin.execute('CREATE DATABASE "%s"' % name)
    try:
        yield database_url(name)
    finally:
        with _admin_connection() as admin:
            # WITH (FORCE): a crashed test may have left connections open.
            admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def postgres_url():
    with fresh_database() as url:
        yield url
