"""The transactions of a journal, for reconciliation, even a damaged one.

`verify_journal` decides whether the journal is intact; this module only
reads.  It must not stop at the first damaged byte (a tampered journal is
still reconciled, with the tampering reported, README.md),
so it walks the frames with the independent reader's primitives
(reader.py) and resynchronises on the next frame whose CRC and
body check out.

What is left out, and why (each transaction left out is listed with its
reason, so the report can say what it did not count):
- a record whose seq a verification finding names (ChainBroken,
  DuplicateRecord...): its content is not what the device signed; for
  ChainBroken also the record before it (either may be the altered one);
- every record of a commit whose checkpoint a finding names (BadSignature,
  UnknownKey...): nothing vouches for them;
- records after the last checkpoint: never committed (a crash before the
  fdatasync), so the POS never got a receipt for them (SPEC 3.9).
"""

from daozhang.host_tools.verify import reader
from daozhang.host_tools.verify.frames import FRAME_HEADER, FRAME_OVERHEAD, frame_head, next_frame


def _segments(data):
    """(Superblock or None, [(offset, end)] of every segment that may hold records)."""
    try:
        sb = reader.parse_superblock(data[0:reader.SUPERBLOCK_SIZE])
    except reader.LayoutProblem:
        return None, []
    spans = []
    for _index, offset, parsed in reader.segment_headers(data, sb):
        if parsed is None or isinstance(parsed, reader.ForeignHeader):
            continue        # free, or another journal's: nothing of ours there
        # A damaged header (LayoutProblem) may sit over intact records: read them.
        spans.append((offset, min(offset + sb.segment_size, len(data))))
    return sb, spans


def _frames(data, start, end):
    """(seq, type, payload) of every intact frame in [start, end)."""
    pos = next_frame(data, start, end)
    while pos is not None:
        rtype, _flags, n = frame_head(data, pos)
        if rtype in reader.TYPE_NAMES:
            value, problem = reader.decode_body(rtype, bytes(data[pos + FRAME_HEADER:pos + FRAME_HEADER + n]))
            if problem is None:
                yield value[0], rtype, value[5]
                pos = next_frame(data, pos + FRAME_OVERHEAD + n, end)
                continue
        # A valid frame we cannot use: resynchronise on the next one after it.
        pos = next_frame(data, pos + 1, end)


def read_records(source):
    """Every intact record, by seq (first copy of a repeated seq): [(seq, type, payload)]."""
    data, close = reader.load(source)
    try:
        _sb, spans = _segments(data)
        records = {}
        for start, end in spans:
            for seq, rtype, payload in _frames(data, start + reader.SEGMENT_HEADER_SIZE, end):
                records.setdefault(seq, (seq, rtype, payload))
        return [records[s] for s in sorted(records)]
    finally:
        close()


def _txn_id(payload):
    """The pos_txn_id to name in a report, if it is text (a damaged one may not be)."""
    value = payload.get("pos_txn_id")
    return value if isinstance(value, str) else None


def journal_transactions(source, findings=()):
    """(transactions, excluded) of a journal.

    transactions: the type-1 payloads as dicts plus `seq`, in seq order.
    excluded: [{"seq", "pos_txn_id", "why", "reason"}] for transactions left
    out (see the module doc); `why` is "finding" or "uncommitted".
    `findings` are the verifier's Finding objects.
    """
    bad = {}
    for f in findings:
        if f.seq is not None and not f.informational:
            bad.setdefault(f.seq, f.kind)
            if f.kind == "ChainBroken":
                # Record seq carries the wrong prev: it or the one before it changed.
                bad.setdefault(f.seq - 1, f.kind + " at seq %d" % f.seq)
    records = read_records(source)
    last_checkpoint = None
    for seq, rtype, _payload in records:
        if rtype == reader.TYPE_CHECKPOINT:
            last_checkpoint = seq
    transactions, excluded, commit = [], [], []

    def close_commit(reason):
        for txn in commit:
            if reason is None:
                transactions.append(txn)
            else:
                excluded.append({"seq": txn["seq"], "pos_txn_id": _txn_id(txn),
                                 "why": "finding", "reason": reason})
        del commit[:]

    for seq, rtype, payload in records:
        if rtype == reader.TYPE_CHECKPOINT:
            close_commit(None if seq not in bad else
                         "in a commit whose checkpoint (seq %d) has finding %s" % (seq, bad[seq]))
        elif rtype == reader.TYPE_TRANSACTION:
            txn = dict(payload)
            txn["seq"] = seq
            if seq in bad:
                excluded.append({"seq": seq, "pos_txn_id": _txn_id(txn), "why": "finding",
                                 "reason": "record has finding %s" % bad[seq]})
            elif last_checkpoint is None or seq > last_checkpoint:
                excluded.append({"seq": seq, "pos_txn_id": _txn_id(txn), "why": "uncommitted",
                                 "reason": "uncommitted (after the last checkpoint)"})
            else:
                commit.append(txn)
    close_commit(None)      # cannot hold anything: every committed record precedes a checkpoint
    return transactions, excluded
