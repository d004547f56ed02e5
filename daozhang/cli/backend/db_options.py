"""Options shared by the `daozhang backend ...` operator commands: which database."""

import click

from daozhang.agent.core.errors import LocalError


def db_options(f):
    f = click.option("--db", "db", default=None,
                     help="SQLite file or postgresql:// URL (default: the config's backend.db).")(f)
    f = click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
                     help="The backend's TOML config (for its database).")(f)
    return f


def open_backend_store(config_path, db):
    from daozhang.backend.config import load_backend_config
    from daozhang.backend.store import open_store

    if db is None:
        if config_path is None:
            raise LocalError("give --config FILE or --db PATH|URL")
        db = load_backend_config(config_path)["backend"]["db"]
    return open_store(db)
