"""Rotate the device's checkpoint-signing key (SPEC 3.8), crash-safely.

The old key vouches for the new one: a key-rotation record (type 7: alg,
kid, pub) is committed under a checkpoint signed by the *old* key, and
every later checkpoint is signed by the new key.  The verifier and the
backend follow the rotation from the journal alone.

Files, in this order, so a crash at any point leaves one consistent key:

1. the new key is written to KEY.new (0600) and fsync'd;
2. the rotation record is committed (old key signs);
3. KEY.new is renamed over KEY, KEY's .pub is rewritten, the directory
   fsync'd.

After a crash KEY.new exists; `finish_interrupted_rotation` (the daemon
calls it before opening the journal) looks at the journal's last commit:
if it holds the rotation to KEY.new's key, step 3 is finished; if not, the
rotation never happened and KEY.new is removed.  The journal is never
written by a key it has not announced.

Rotation runs with the daemon stopped (the journal takes one writer).
"""

import os

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.journal import checkpoint, record
from daozhang.agent.journal_file import JournalFile
from daozhang.signing import (
    FileSigner, fingerprint, generate_keypair, load_signer)
from daozhang.files import fsync_directory, fsync_file

# How far back from the tail the rotation record of an interrupted rotation
# can be: the rotation command's own last commit is [rotation, checkpoint].
_TAIL_RECORDS = 4


class RotationRefused(LocalError):
    """The rotation cannot be done now (message says why and what to do)."""


def _prefix(key_path):
    if not key_path.endswith(".key"):
        raise RotationRefused("key file %s: expected a name ending in .key" % key_path)
    return key_path[:-4]


def _new_prefix(key_path):
    return _prefix(key_path) + ".new"


def rotate_key(key_path, journal_path, clock=None):
    """Rotate; return (old public key, new public key, rotation seq)."""
    finish_interrupted_rotation(key_path, journal_path)
    old = FileSigner(key_path)
    if old.kid is None:
        raise RotationRefused("cannot read the current key %s: the old key must vouch for the "
                              "new one; restore it first" % key_path)
    # Opening takes the journal's writer lock (a running agent refuses us
    # here, before any key file is made) and commits a boot record signed
    # by the old key, which also ends a signer outage: the rotation is vouched.
    with JournalFile.open(journal_path, old, clock=clock) as journal:
        new_prefix = _new_prefix(key_path)
        for leftover in (new_prefix + ".key", new_prefix + ".pub"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        new_pub = generate_keypair(new_prefix)
        fsync_file(new_prefix + ".key")
        fsync_directory(key_path)   # its directory
        new_kid = checkpoint.key_id(new_pub)
        appended = journal.append(record.TYPE_KEY_ROTATION,
                                  {"alg": checkpoint.ALG_ED25519, "kid": new_kid, "pub": new_pub})
    _install_new_key(key_path)
    return old.public_bytes, new_pub, appended.seq


def finish_interrupted_rotation(key_path, journal_path):
    """Complete or undo a rotation a crash interrupted.  Returns "finished",
    "undone" or None (nothing was pending)."""
    new_key = _new_prefix(key_path) + ".key"
    if not os.path.exists(new_key):
        return None
    try:
        new_kid = load_signer(new_key).kid
    except LocalError:
        new_kid = None      # torn before step 1 completed: certainly not committed
    if new_kid is not None and _tail_announces(journal_path, new_kid):
        _install_new_key(key_path)
        return "finished"
    for path in (new_key, _new_prefix(key_path) + ".pub"):
        if os.path.exists(path):
            os.unlink(path)
    return "undone"


def _tail_announces(journal_path, kid):
    with JournalFile.open(journal_path, None, boot=False) as journal:
        start = max(0, journal.ring.next_seq - _TAIL_RECORDS)
        for rec in journal.records(from_seq=start):
            if rec.type == record.TYPE_KEY_ROTATION and bytes(rec.payload.get("kid", b"")) == kid:
                return True
    return False


def _install_new_key(key_path):
    new_prefix, prefix = _new_prefix(key_path), _prefix(key_path)
    if os.path.exists(new_prefix + ".pub"):
        os.replace(new_prefix + ".pub", prefix + ".pub")
    os.replace(new_prefix + ".key", key_path)
    fsync_directory(key_path)   # its directory


def describe(old_public, new_public, seq):
    return "rotated the journal key at seq %d: %s -> %s" % (
        seq, fingerprint(old_public), fingerprint(new_public))
