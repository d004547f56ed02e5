"""`daozhang journal salvage`: set damaged records aside, signed, and go on (SPEC 3.14)."""

import click

from daozhang.agent.journal_salvage import salvage as run_salvage
from daozhang.signing import load_signer


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="The device's private key: the salvage record is signed like every commit.")
def salvage(path, key_path):
    """Set the damaged range of PATH's head segment aside and continue the journal.

    The bytes go to PATH.quarantine with their SHA-256, then a signed salvage
    record names the lost sequence range; no sequence number is reused, and
    `journal verify` reports the range (Salvaged) on every later run.
    Exit 0 when done or when there is nothing to salvage, 2 on error.
    """
    result = run_salvage(path, load_signer(key_path))
    if result is None:
        click.echo("%s: no damage that stops the writer; nothing to salvage" % path)
        return
    click.echo("%s: records %d..%d set aside (%d bytes from offset %d, sha256 %s) in %s.quarantine; "
               "salvage record %d written, the journal continues"
               % (path, result.lost_first, result.lost_last, result.length, result.offset, result.sha256.hex(),
                  path, result.seq))
