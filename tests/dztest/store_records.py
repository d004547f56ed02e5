"""Synthetic journal records for backend-store tests (not the real framing:
the store does not decode frames, it stores what the sync core verified)."""

import hashlib
import json


def make_chain(count, start=0, salt=b"", prev=None, rtype=None):
    """`count` chained records from seq `start`: dicts as store_batch takes them.
    Types alternate 1 (transaction) and 2 unless `rtype` is given."""
    records = []
    for seq in range(start, start + count):
        payload = {"seq": seq, "amount": seq * 100, "salt": salt.hex()}
        frame = b"frame|" + salt + b"|" + json.dumps(payload, sort_keys=True).encode()
        digest = hashlib.sha256((prev or b"") + frame).digest()
        records.append({"seq": seq, "type": rtype if rtype is not None else (1 if seq % 2 else 2),
                        "hash": digest, "prev_hash": prev, "frame": frame,
                        "payload": json.dumps(payload, sort_keys=True)})
        prev = digest
    return records


def batches(records, size):
    return [records[i:i + size] for i in range(0, len(records), size)]


def store_batches_worker(url, device_id, records, batch_size, start_event, out_queue, reverse=False):
    """Run in a child process: wait for `start_event`, store `records` in
    batches, put (new seqs, duplicate seqs, forked seqs) on `out_queue`."""
    from daozhang.backend.store import open_store

    try:
        store = open_store(url)
        groups = batches(records, batch_size)
        if reverse:
            groups.reverse()
        new, duplicate, forked = [], [], []
        start_event.wait(60)
        for group in groups:
            result = store.store_batch(device_id, group)
            new += result.new
            duplicate += result.duplicate
            forked += result.forked
        store.close()
        out_queue.put(("ok", new, duplicate, forked))
    except BaseException as exc:  # report it to the parent instead of dying silently
        out_queue.put(("error", repr(exc), [], []))
