"""Which of the backend's stored records a device's journal no longer holds.

After `journal salvage` (SPEC 3.14) or a recovery cut (3.9), a device's
journal lacks records the backend received while they were committed.  Given
the journal (pulled over USB, or copied), this lists the backend's stored
records of that device, within the sequence range the journal covers, that
the journal does not hold with the same hash: the backend's copy is now the
only one.  Records older than the journal's oldest kept record were
reclaimed normally (released) and are not listed.
"""

from daozhang.host_tools.verify.reader import iter_records

PAGE = 10000


def records_not_held(store, device_id, journal_source):
    """[{"seq", "hash", "type", "why"}] of stored records the journal lacks ("missing")
    or holds with a different hash ("differs"), oldest first."""
    held = {}
    for rec in iter_records(journal_source):
        held[rec.seq] = rec.hash
    if not held:
        return []
    oldest, newest = min(held), max(held)
    out = []
    from_seq = oldest
    while True:
        rows = store.records(device_id, from_seq=from_seq, to_seq=newest, limit=PAGE)
        for row in rows:
            have = held.get(row["seq"])
            if have != row["hash"]:
                out.append({"seq": row["seq"], "hash": row["hash"].hex(), "type": row["type"],
                            "why": "missing" if have is None else "differs"})
        if len(rows) < PAGE:
            return out
        from_seq = rows[-1]["seq"] + 1
