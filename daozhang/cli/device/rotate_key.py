"""`daozhang device rotate-key`: a new checkpoint-signing key for a terminal.

Run with the agent stopped.  The old key vouches for the new one in the
journal (SPEC 3.8), so the verifier and the backend follow the rotation by
themselves; give the technician's verifier the old public key (or both).
"""

import click

from daozhang.agent.config import load_agent_config
from daozhang.agent.key_rotation import describe, rotate_key


@click.command("rotate-key")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The device's agent.toml.")
def rotate_key_command(config_path):
    """Rotate the device's journal signing key (agent stopped)."""
    cfg = load_agent_config(config_path)
    old_public, new_public, seq = rotate_key(cfg["key"], cfg["journal"]["path"])
    click.echo(describe(old_public, new_public, seq))
