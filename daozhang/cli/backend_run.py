"""`daozhang backend run --config FILE`: one backend worker."""

import sys

import click


@click.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Backend TOML config: [broker] host/port/TLS files, [backend] key, db, share_group.")
@click.option("--db", default=None, help="Override the config's database (SQLite path or postgresql://).")
@click.option("--worker", type=click.IntRange(1, 9999), default=None,
              help="This worker's number on its host (its MQTT client id backend-<host>-<N>, "
                   "the same across restarts); overrides [backend] worker.")
def run(config_path, db, worker):
    """Run a backend worker: verify, store, and acknowledge device receipts.

    Several workers with the same share_group split the load (MQTT 5 shared
    subscription).  Stops on SIGTERM/SIGINT.
    """
    from daozhang.backend.service import load_backend_config, run_service

    config = load_backend_config(config_path)
    if db:
        config["backend"]["db"] = db
    if worker is not None:
        config["backend"]["worker"] = worker
    sys.exit(run_service(config))
