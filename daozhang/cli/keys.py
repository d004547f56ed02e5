"""`daozhang keys new`: an Ed25519 key pair for a device or a technician."""

import os

import click

from daozhang.agent.core.errors import LocalError
from daozhang.signing import fingerprint, generate_keypair


@click.group(help="Create signing keys.")
def keys():
    pass


@keys.command("new")
@click.option("--out", "prefix", required=True, metavar="PREFIX",
              help="Writes PREFIX.key (private, mode 0600) and PREFIX.pub.")
def new(prefix):
    """Create an Ed25519 key pair: PREFIX.key and PREFIX.pub."""
    for path in (prefix + ".key", prefix + ".pub"):
        if os.path.exists(path):
            raise LocalError("%s exists: refusing to overwrite a key (choose another --out)" % path)
    public = generate_keypair(prefix)
    click.echo("%s.key %s.pub fingerprint %s" % (prefix, prefix, fingerprint(public)))
