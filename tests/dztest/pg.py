"""A fresh PostgreSQL schema (or database) per test, dropped afterwards.

    from dztest.pg import postgres_url      # fixture: a URL whose search_path is a new schema

    with fresh_schema() as url: ...        # the same, as a context manager (fast: ~10 ms)
    with fresh_database() as url: ...      # a whole new database (slower: ~0.5 s)

A schema URL looks like postgresql://postgres@127.0.0.1:5432/dz_tests?options=-csearch_path%3Ddz_s_<hex>:
every unqualified table the code creates or uses lands in that schema.

The server is the one at DZ_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres,
trust auth).  Unreachable: the test is skipped, or fails when CI is set.
"""

import contextlib
import os
import uuid

import pytest

ADMIN_URL = os.environ.get("DZ_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_connection():
    # psycopg is a dependency (pyproject.toml): failing to import it is a broken
    # install, which fails the test; only an unreachable server may skip.
    import psycopg
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


SHARED_DATABASE = "dz_tests"


def _ensure_shared_database():
    import psycopg

    with _admin_connection() as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                         (SHARED_DATABASE,)).fetchone():
            return
        try:
            admin.execute('CREATE DATABASE "%s"' % SHARED_DATABASE)
        except psycopg.errors.DuplicateDatabase:
            pass  # another test process made it first
        except psycopg.errors.UniqueViolation:
            pass  # the same race, reported by the catalog


@contextlib.contextmanager
def fresh_schema():
    import psycopg

    _ensure_shared_database()
    name = "dz_s_" + uuid.uuid4().hex[:16]
    shared = database_url(SHARED_DATABASE)
    with psycopg.connect(shared, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "%s"' % name)
    try:
        yield shared + "?options=-csearch_path%3D" + name
    finally:
        with psycopg.connect(shared, autocommit=True) as conn:
            conn.execute('DROP SCHEMA IF EXISTS "%s" CASCADE' % name)


@pytest.fixture
def postgres_url():
    with fresh_schema() as url:
        yield url
