"""A CA directory's JSON-lines ledgers: what the CA issued (issued.jsonl) and
what it revoked (revoked.jsonl, crl.py); the kinds of identity it issues."""

import datetime
import json
import os

INDEX = "issued.jsonl"

KIND_DEVICE = "device"
KIND_BACKEND = "backend"
KIND_SERVER = "server"


def utcnow():
    """The PKI's clock: whole seconds, UTC (certificate times have no fraction)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def read_ledger(directory, name):
    """The entries of a CA directory's JSON-lines ledger (`name`), [] if none."""
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_ledger(directory, name, entries):
    """Append entries (dicts) to a CA directory's ledger, durably."""
    with open(os.path.join(directory, name), "a") as f:
        for entry in entries:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def issued(directory):
    """The CA's index: a list of dicts {serial, kind, cn, not_after}."""
    return read_ledger(directory, INDEX)
