"""`daozhang backend run --config FILE [--workers N] [--http ADDR]`: the backend."""

import sys

import click


@click.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Backend TOML config: [broker] host/port/TLS files, [backend] key, db, share_group.")
@click.option("--db", default=None, help="Override the config's database (SQLite path or postgresql://).")
@click.option("--worker", type=click.IntRange(1, 9999), default=None,
              help="This worker's number on its host (its MQTT client id backend-<host>-<N>, "
                   "the same across restarts); overrides [backend] worker. With --workers, "
                   "the supervisor's workers are numbered from it.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes on the shared subscription (restarted if one dies).")
@click.option("--http", "http", default=None, metavar="HOST:PORT",
              help="Serve the fleet view and /metrics (Prometheus) here, e.g. 127.0.0.1:8080.")
@click.option("--silent-after", type=float, default=300.0, show_default=True,
              help="Fleet view: a terminal with no message for this many seconds is 'silent'.")
@click.option("--overdue-after", type=float, default=172800.0, show_default=True,
              help="Fleet view: an unsettled sale received longer ago than this (seconds) is overdue.")
@click.option("--all-signatures", is_flag=True, default=False,
              help="Audit: verify every checkpoint's signature, not only the newest of each chained "
                   "run (SPEC 6.7.1); overrides [backend] all_signatures.")
@click.option("--worker-index", type=int, default=None, hidden=True)
def run(config_path, db, worker, workers, http, silent_after, overdue_after, all_signatures, worker_index):
    """Run the backend: verify, store, and acknowledge device receipts.

    Several workers with the same share_group split the load (MQTT 5 shared
    subscription), in one supervisor (--workers) or on several hosts.
    Stops on SIGTERM/SIGINT.
    """
    from daozhang.backend.config import load_backend_config
    from daozhang.backend.service import run_service

    config = load_backend_config(config_path)
    if db:
        config["backend"]["db"] = db
    if worker is not None:
        config["backend"]["worker"] = worker
    if all_signatures:
        config["backend"]["all_signatures"] = True
    if worker_index is not None:
        # A supervised worker: its number (hence its stable MQTT client id,
        # SPEC 6.10.4) is the supervisor's base number plus its index, so a
        # restarted worker takes back its own broker session.
        config["backend"]["worker"] = int(config["backend"].get("worker", 1)) + worker_index
        from daozhang.backend.metrics import install_worker_metrics
        install_worker_metrics(worker_index)
        sys.exit(run_service(config))
    if workers == 1 and http is None:
        sys.exit(run_service(config))
    from daozhang.backend.workers import Supervisor

    supervisor = Supervisor(config_path, workers, db=db, log_path=config["backend"].get("log") or None,
                            worker=worker, all_signatures=all_signatures)
    try:
        if http is not None:
            from daozhang.backend.fleet_view.server import serve_in_thread
            serve_in_thread(http, config, supervisor, silent_after_s=silent_after,
                            overdue_after_s=overdue_after)
        sys.exit(supervisor.run())
    finally:
        supervisor.close()
