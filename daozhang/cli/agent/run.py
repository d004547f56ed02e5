"""`daozhang agent run --config DIR/agent.toml`: the terminal daemon."""

import sys

import click

from daozhang.agent.daemon import run_from_config


@click.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The agent.toml written by `daozhang device provision`.")
def run(config_path):
    """Run the agent in the foreground (systemd Type=notify; logs to stderr).

    Exits 0 after SIGTERM once every transaction in flight is committed.
    """
    sys.exit(run_from_config(config_path))
