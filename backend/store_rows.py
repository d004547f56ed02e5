"""What the backend store takes and gives back, whichever database holds
it (backend/store.py): a record checked and turned into a row, JSON text
both SQLite and PostgreSQL accept the same way, and rows back as dicts.
"""

import json

from daozhang.agent.core.errors import LocalError

HASH_SIZE = 32


class BatchResult:
    """What store_batch did: lists of seqs, and the device's progress after."""

    __slots__ = ("new", "duplicate", "forked", "contiguous_seq", "head_hash")

    def __init__(self, new, duplicate, forked, contiguous_seq, head_hash):
        self.new = new
        self.duplicate = duplicate
        self.forked = forked
        self.contiguous_seq = contiguous_seq
        self.head_hash = head_hash

    def __repr__(self):
        return ("BatchResult(new=%d, duplicate=%d, forked=%r, contiguous_seq=%r)"
                % (len(self.new), len(self.duplicate), self.forked, self.contiguous_seq))


class BadRecord(LocalError):
    """A record handed to store_batch is not what the store takes."""



def json_text(value, what):
    """JSON text from a str (checked) or a JSON-able value (canonical dump).

    Refuses what only one database would take, so both behave alike:
    NaN/Infinity, and a NUL character (PostgreSQL's JSONB cannot hold one).
    """
    if isinstance(value, str):
        text = value
        try:
            json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise BadRecord("%s: not JSON text (%s)" % (what, exc))
    else:
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BadRecord("%s: cannot be JSON (%s); encode bytes as hex first" % (what, exc))
    if "\\u0000" in text or "\x00" in text:
        raise BadRecord("%s: contains a NUL character (\\u0000), which PostgreSQL JSON refuses"
                        % what)
    return text


def _refuse_constant(name):
    raise ValueError("%s is not JSON" % name)


def json_value(stored):
    # SQLite hands back the text, PostgreSQL's JSONB an already parsed value.
    return json.loads(stored) if isinstance(stored, str) else stored


def bytes_or_none(value):
    return None if value is None else bytes(value)


RECORD_FIELDS = ("seq", "type", "hash", "prev_hash", "frame", "payload")


def normalise_record(record, index):
    """(seq, type, hash, prev_hash, frame, payload_json) from a dict or tuple."""
    if isinstance(record, dict):
        missing = [f for f in RECORD_FIELDS if f not in record]
        if missing:
            raise BadRecord("record %d: missing %s" % (index, ", ".join(missing)))
        values = [record[f] for f in RECORD_FIELDS]
    else:
        values = list(record)
        if len(values) != len(RECORD_FIELDS):
            raise BadRecord("record %d: expected %d fields (%s), got %d"
                            % (index, len(RECORD_FIELDS), ", ".join(RECORD_FIELDS), len(values)))
    seq, rtype, rhash, prev_hash, frame, payload = values
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or seq >= 2 ** 63:
        raise BadRecord("record %d: seq %r, expected an integer 0..2^63-1" % (index, seq))
    if not isinstance(rtype, int) or isinstance(rtype, bool) or not 0 <= rtype < 2 ** 31:
        raise BadRecord("record %d (seq %d): type %r, expected an integer 0..2^31-1"
                        % (index, seq, rtype))
    for name, value, optional in (("hash", rhash, False), ("prev_hash", prev_hash, True)):
        if value is None and optional:
            continue
        if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != HASH_SIZE:
            raise BadRecord("record %d (seq %d): %s must be %d bytes, got %r"
                            % (index, seq, name, HASH_SIZE, type(value).__name__ if not
                               isinstance(value, (bytes, bytearray, memoryview)) else len(value)))
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise BadRecord("record %d (seq %d): frame must be bytes, got %s"
                        % (index, seq, type(frame).__name__))
    return (seq, rtype, bytes(rhash), bytes_or_none(prev_hash), bytes(frame),
            json_text(payload, "record %d (seq %d) payload" % (index, seq)))


def fork_detail(seq, stored_hash, offered_hash):
    return json.dumps({"seq": seq, "stored_hash": stored_hash.hex(),
                       "offered_hash": offered_hash.hex()}, sort_keys=True)


DEVICE_COLUMNS = ("device_id", "public_key", "key_id", "added_at", "first_seq",
                   "contiguous_seq", "head_hash")
RECORD_COLUMNS = ("device_id", "seq", "type", "hash", "prev_hash", "frame", "payload",
                   "received_at")
FINDING_COLUMNS = ("id", "device_id", "seq", "kind", "detail", "evidence", "dedup_key", "at")
ALERT_COLUMNS = ("id", "device_id", "seq", "kind", "state", "severity", "payload", "at")
SETTLEMENT_COLUMNS = ("id", "acquirer_ref", "row", "device_id", "seq", "status", "at")


def as_dicts(columns, rows, json_columns=(), bytes_columns=()):
    out = []
    for row in rows:
        item = dict(zip(columns, row))
        for name in json_columns:
            item[name] = json_value(item[name])
        for name in bytes_columns:
            item[name] = bytes_or_none(item[name])
        out.append(item)
    return out


INSERT_CHUNK = 500       # rows per multi-row INSERT (SQLite; see insert_records)
COLUMNS_CHUNK = 2000     # rows per unnest() INSERT (PostgreSQL)
# ON CONFLICT DO NOTHING as in the multi-row INSERT; records_claim_key
# (backend/partitions.py) still claims each (device, seq) once per row.
INSERT_RECORDS_COLUMNS = (
    "INSERT INTO records (device_id, seq, type, hash, prev_hash, frame, payload, received_at) "
    "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::integer[], %b::bytea[], %b::bytea[], "
    "%b::bytea[], %b::text[]::jsonb[], %b::bigint[]) ON CONFLICT DO NOTHING")


def insert_records(tx, rows):
    """New rows of `records` (the 8 columns in order), in few statements."""
    # One statement per chunk: a round trip per chunk, not per row (3x
    # faster on PostgreSQL than executemany).  On PostgreSQL the rows go
    # as column arrays through unnest(): one statement text whatever the
    # row count, so psycopg does not re-parse a query of 8 parameters
    # per row each time (about 25 us per record measured) and the server
    # prepares it once.  On SQLite a multi-row INSERT; 500 rows x 8
    # values stay under its 32766-variable limit.
    columns = getattr(tx, "insert_columns", None)
    if columns is not None:          # PostgreSQL
        for start in range(0, len(rows), COLUMNS_CHUNK):
            columns(INSERT_RECORDS_COLUMNS, rows[start:start + COLUMNS_CHUNK])
        return
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start:start + INSERT_CHUNK]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
        tx.execute("INSERT INTO records (device_id, seq, type, hash, prev_hash, frame, "
                   "payload, received_at) VALUES %s ON CONFLICT DO NOTHING"
                   % values, [value for row in chunk for value in row])
