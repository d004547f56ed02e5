import os

import pytest

from dztest.pg import fresh_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """The same test against a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield os.path.join(str(tmp_path), "backend.db")
    else:
        with fresh_schema() as url:
            yield url
