"""Where the settlement watchdog's alert transitions go (docs/SPEC.md
§7.8.4): the journal (type 3 records, in commits a segment can hold), and
alerts.json next to agent.toml (what `daozhang agent alerts` reads).  The
settlement plugin also publishes them through the sync link and shows them
on the board's outputs (agent/settlement_plugin.py `_emit`).

Also the helpers the alerts CLI shares: plain() (an alert as CBOR/JSON),
alerts_file_path().
"""

import json
import os

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import JournalFull, StorageError
from daozhang.agent.core.journal import record
from daozhang.files import atomic_write

# alerts.json lists at most this many single alerts; the groups count them all.
ALERTS_FILE_LIMIT = 200
FRAME_OVERHEAD = 64          # a record frame's header, over the payload's CBOR


def alerts_file_path(agent_config_path):
    return os.path.join(os.path.dirname(os.path.abspath(agent_config_path)), "alerts.json")


def plain(value):
    """CBOR/JSON-safe copy of an alert detail (str keys, no floats, no tuples)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)



def commit_chunks(actions, budget):
    """Split actions into commits of at most `budget` bytes each (a quarter
    segment): a first tick after a rebuild may emit thousands at once, and
    one commit must fit a segment (the rest is left to records sharing it)."""
    chunk, size = [], 0
    for action in actions:
        n = len(cbor.dumps(action)) + FRAME_OVERHEAD
        if chunk and size + n > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(action)
        size += n
    if chunk:
        yield chunk


def journal_actions(journal, actions, log):
    """Journal the actions as type 3 records; their seqs (None for those the
    journal refused: they are shown and published anyway, a reboot will not
    remember them)."""
    seqs = []
    try:
        for chunk in commit_chunks(actions, journal.ring.capacity() // 4):
            done = journal.append_many([(record.TYPE_ALERT, a) for a in chunk])
            seqs.extend(d.seq for d in done)
    except (JournalFull, StorageError) as exc:
        log("alert_journal_failed", level="error", error=str(exc))
    return seqs + [None] * (len(actions) - len(seqs))


def write_alerts_file(path, view, log):
    """alerts.json, replaced atomically (a reader never sees half of it)."""
    try:
        atomic_write(path, json.dumps(view, sort_keys=True, ensure_ascii=False), durable=True)
    except OSError as exc:
        log("alerts_file_failed", level="error", error=str(exc))
