"""`journal salvage`: set a damaged range aside and let the journal go on (SPEC 3.14).

When recovery refuses to open (JournalDamaged in the head segment), the
operator - after `journal verify` has named the damage and the backend has
said which records it holds - runs this.  It never reuses a sequence number
and never destroys a byte it has not first kept:

1. the bytes from the last intact checkpoint to the last non-zero byte of
   the head segment are appended to PATH.quarantine (with their SHA-256)
   and fsynced;
2. those bytes are zeroed in the journal and synced;
3. a signed commit is written where they were: a salvage record (type 11)
   whose sequence jumps past every sequence seen in the set-aside bytes,
   naming the lost range, the offset, the length and the hash, chained to
   the last intact record.

The verifier reports that range as `Salvaged` on every later run.
"""

from daozhang import __version__
from daozhang.agent.core.errors import JournalDamaged, LocalError
from daozhang.agent.core.journal import layout, record, recovery, ring_storage
from daozhang.agent.core.journal.ring import Ring
from daozhang.agent.journal_file import SystemClock
from daozhang.agent.storage import FileStorage


class SalvageResult:
    __slots__ = ("lost_first", "lost_last", "offset", "length", "sha256", "seq")

    def __init__(self, lost_first, lost_last, offset, length, sha256, seq):
        self.lost_first, self.lost_last = lost_first, lost_last
        self.offset, self.length, self.sha256, self.seq = offset, length, sha256, seq


def salvage(path, signer, clock=None):
    """Salvage the head segment's damage; None if the journal opens cleanly."""
    storage = FileStorage(path)
    try:
        try:
            ring_storage.open_ring(storage)
            return None
        except JournalDamaged as exc:
            if exc.segment is None:
                raise LocalError("the damage is in the superblock (%s): salvage cannot rebuild it; keep the file "
                                 "and restore the journal from the backend" % exc) from None
            damage = exc
        geo = layout.decode_superblock(storage.pread(0, layout.SUPERBLOCK_SIZE))
        headers = [storage.pread(geo.segment_offset(i), layout.SEGMENT_HEADER_SIZE)
                   for i in range(geo.segment_count)]
        segs = recovery.in_use_segments(geo, headers)
        if not segs or segs[-1][0] != damage.segment:
            raise LocalError("the damage (segment %s) is not in the head segment: the journal still opens past it "
                             "only after a restore; `journal verify` names it" % damage.segment) from None
        index, first_seq, prev = segs[-1]
        base = geo.segment_offset(index)
        buf = storage.pread(base, geo.segment_size)
        scan = recovery.scan_segment(buf, index, first_seq, prev)
        if scan.tail is None:
            raise LocalError("segment %d holds no intact checkpoint to continue from; keep the file and restore "
                             "the journal from the backend" % index)
        frames = recovery.valid_frames(buf, scan.tail, scan.dirty_end)
        lost_first = scan.next_seq
        lost_last = max([lost_first] + [rec.seq for rec in frames])
        aside = bytes(buf[scan.tail:scan.dirty_end])
        digest = record.sha256(aside)
        storage.quarantine(base + scan.tail, aside)                 # 1. kept, durably
        storage.pwrite(base + scan.tail, bytes(len(aside)))         # 2. then zeroed
        storage.sync()
        ring = Ring(geo)
        ring.recover(headers, lambda i: storage.pread(geo.segment_offset(i), geo.segment_size))
        ring.next_seq = lost_last + 1                               # 3. no sequence number reused
        payload = {"lost_first": lost_first, "lost_last": lost_last, "offset": base + scan.tail,
                   "length": len(aside), "sha256": digest, "version": __version__}
        results = ring_storage.commit(storage, ring, [(record.TYPE_SALVAGE, payload)], (clock or SystemClock()).now(),
                                signer)
        return SalvageResult(lost_first, lost_last, base + scan.tail, len(aside), digest, results[0].seq)
    finally:
        storage.close()
